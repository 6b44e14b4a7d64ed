-- The notification outbox: one completion email per recipient of a request
-- instance, written in the transaction that ends the instance and delivered
-- by a queue job. (instance_id, address) makes the write idempotent; the
-- Message-ID is made with the row so that every attempt sends the same one.
-- claimed_by is the queue job that marked the message "sending": only that
-- job may claim it again (after its process died mid-send).

CREATE TABLE notifications (
    id              uuid PRIMARY KEY,
    instance_id     uuid NOT NULL REFERENCES request_instances (id) ON DELETE CASCADE,
    recipient_type  text NOT NULL CHECK (recipient_type IN ('identity', 'requester', 'beneficiary')),
    recipient       text NOT NULL,
    address         text NOT NULL,
    subject         text NOT NULL,
    message_id      text NOT NULL UNIQUE,
    status          text NOT NULL CHECK (status IN ('held', 'queued', 'sending', 'sent', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,
    claimed_by      bigint,
    last_error      text NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL,
    queued_at       timestamptz NOT NULL,
    next_attempt_at timestamptz,
    last_attempt_at timestamptz,
    sent_at         timestamptz,
    updated_at      timestamptz NOT NULL,
    UNIQUE (instance_id, address)
);
CREATE INDEX notifications_created ON notifications (created_at DESC, id DESC);
CREATE INDEX notifications_status ON notifications (status, created_at DESC);

-- The rendered bodies, apart from the row whose status changes with every
-- attempt, so that those updates do not rewrite kilobytes of HTML.
CREATE TABLE notification_bodies (
    notification_id uuid PRIMARY KEY REFERENCES notifications (id) ON DELETE CASCADE,
    body_text       text NOT NULL,
    body_html       text NOT NULL
);
