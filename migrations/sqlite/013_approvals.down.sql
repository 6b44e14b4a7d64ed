-- Approval emails that no run holds go; runs awaiting approval end canceled.
CREATE TABLE notifications_old (
    id              text PRIMARY KEY,
    instance_id     text NOT NULL REFERENCES request_instances (id) ON DELETE CASCADE,
    recipient_type  text NOT NULL CHECK (recipient_type IN ('identity', 'requester', 'beneficiary')),
    recipient       text NOT NULL,
    address         text NOT NULL,
    subject         text NOT NULL,
    message_id      text NOT NULL UNIQUE,
    status          text NOT NULL CHECK (status IN ('held', 'queued', 'sending', 'sent', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,
    claimed_by      integer,
    last_error      text NOT NULL DEFAULT '',
    created_at      datetime NOT NULL,
    queued_at       datetime NOT NULL,
    next_attempt_at datetime,
    last_attempt_at datetime,
    sent_at         datetime,
    updated_at      datetime NOT NULL,
    body_id         text,
    UNIQUE (instance_id, address)
);
INSERT OR IGNORE INTO notifications_old (id, instance_id, recipient_type, recipient, address, subject, message_id,
        status, attempts, claimed_by, last_error, created_at, queued_at, next_attempt_at, last_attempt_at, sent_at,
        updated_at, body_id)
    SELECT id, instance_id, recipient_type, recipient, address, subject, message_id,
        status, attempts, claimed_by, last_error, created_at, queued_at, next_attempt_at, last_attempt_at, sent_at,
        updated_at, body_id
    FROM notifications WHERE instance_id IS NOT NULL AND recipient_type <> 'approver' ORDER BY created_at;
CREATE TABLE notification_bodies_old (
    notification_id text PRIMARY KEY REFERENCES notifications_old (id) ON DELETE CASCADE,
    body_text       text NOT NULL,
    body_html       text NOT NULL
);
INSERT INTO notification_bodies_old SELECT notification_id, body_text, body_html FROM notification_bodies
    WHERE notification_id IN (SELECT id FROM notifications_old);
DROP TABLE notification_bodies;
DROP TABLE notifications;
ALTER TABLE notifications_old RENAME TO notifications;
ALTER TABLE notification_bodies_old RENAME TO notification_bodies;
CREATE INDEX notifications_created ON notifications (created_at DESC, id DESC);
CREATE INDEX notifications_unsent ON notifications (status, created_at DESC) WHERE status <> 'sent';

UPDATE request_instances SET status = 'canceled', ended_at = COALESCE(ended_at, updated_at)
    WHERE status IN ('awaiting_approval', 'denied', 'withdrawn', 'expired');
ALTER TABLE tasks DROP COLUMN approval_id;
ALTER TABLE request_instances DROP COLUMN approval_id;
DROP TABLE approval_steps;
DROP TABLE approvals;
