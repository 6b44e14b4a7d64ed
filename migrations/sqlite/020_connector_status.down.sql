DELETE FROM notifications WHERE connector_id IS NOT NULL;
CREATE TABLE notifications_new (
    id              text PRIMARY KEY,
    instance_id     text REFERENCES request_instances (id) ON DELETE CASCADE,
    approval_id     text REFERENCES approvals (id) ON DELETE CASCADE,
    once_key        text NOT NULL,
    recipient_type  text NOT NULL CHECK (recipient_type IN ('identity', 'requester', 'beneficiary', 'approver')),
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
    CHECK (instance_id IS NOT NULL OR approval_id IS NOT NULL)
);
INSERT INTO notifications_new (id, instance_id, approval_id, once_key, recipient_type, recipient, address, subject, message_id, status, attempts, claimed_by, last_error, created_at, queued_at, next_attempt_at, last_attempt_at, sent_at, updated_at, body_id)
    SELECT id, instance_id, approval_id, once_key, recipient_type, recipient, address, subject, message_id, status, attempts, claimed_by, last_error, created_at, queued_at, next_attempt_at, last_attempt_at, sent_at, updated_at, body_id FROM notifications;
CREATE TABLE notification_bodies_new (
    notification_id text PRIMARY KEY REFERENCES notifications_new (id) ON DELETE CASCADE,
    body_text       text NOT NULL,
    body_html       text NOT NULL
);
INSERT INTO notification_bodies_new SELECT notification_id, body_text, body_html FROM notification_bodies;
DROP TABLE notification_bodies;
DROP TABLE notifications;
ALTER TABLE notifications_new RENAME TO notifications;
ALTER TABLE notification_bodies_new RENAME TO notification_bodies;
CREATE INDEX notifications_created ON notifications (created_at DESC, id DESC);
CREATE INDEX notifications_unsent ON notifications (status, created_at DESC) WHERE status <> 'sent';
CREATE UNIQUE INDEX notifications_once ON notifications (once_key);
CREATE INDEX notifications_instance ON notifications (instance_id);
CREATE INDEX notifications_approval ON notifications (approval_id) WHERE approval_id IS NOT NULL;
DROP INDEX connector_jobs_imports;
DROP INDEX connector_jobs_waiting;
DROP TABLE connector_hours;
DROP TABLE connector_states;
