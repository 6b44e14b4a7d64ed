-- A connector's current status: whether its jobs may run (active), wait
-- for a probe to succeed (quarantined) or for an admin (paused), why, and
-- what the last operations came to. The job results update it in the
-- transaction that records them, once per connector and batch.
CREATE TABLE connector_states (
    connector_id         text PRIMARY KEY REFERENCES connectors (id) ON DELETE CASCADE,
    state                text NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'quarantined', 'paused')),
    reason               text NOT NULL DEFAULT '',
    since                datetime,
    changed_by           text NOT NULL DEFAULT '',
    next_probe_at        datetime,
    probe_wait_ms        integer NOT NULL DEFAULT 0,
    consecutive_failures integer NOT NULL DEFAULT 0,
    -- The outcomes of the last operations, oldest first: 1 for a success,
    -- 0 for a failure; the failure ratio rule reads it.
    recent               text NOT NULL DEFAULT '',
    last_error           text NOT NULL DEFAULT '',
    last_error_at        datetime,
    last_success_at      datetime,
    -- The objects (accounts and groups) the running import of the
    -- connector read so far, and when it last said so: the progress bar.
    import_read          integer NOT NULL DEFAULT 0,
    import_read_at       datetime,
    updated_at           datetime NOT NULL
);

-- Operations and failures per connector and hour, for the status chart.
CREATE TABLE connector_hours (
    connector_id text NOT NULL REFERENCES connectors (id) ON DELETE CASCADE,
    hour         datetime NOT NULL,
    operations   integer NOT NULL DEFAULT 0,
    failures     integer NOT NULL DEFAULT 0,
    PRIMARY KEY (connector_id, hour)
);

-- A connector's queue (its pending and scheduled jobs), counted on its
-- page and released at once when a quarantine ends.
CREATE INDEX connector_jobs_waiting ON connector_jobs (connector_id, status, queue_job_id) WHERE status IN ('pending', 'scheduled');

-- A connector's import cycles, for its status: the running one and the last ones.
CREATE INDEX connector_jobs_imports ON connector_jobs (connector_id, ended_at) WHERE operation = 'import';

-- The outbox carries the admins' emails about a connector entering and
-- leaving quarantine: about a connector, not a run nor an approval.
-- SQLite changes no CHECK in place: the table is made anew, its bodies
-- moved first (see 013).
CREATE TABLE notifications_new (
    id              text PRIMARY KEY,
    instance_id     text REFERENCES request_instances (id) ON DELETE CASCADE,
    approval_id     text REFERENCES approvals (id) ON DELETE CASCADE,
    once_key        text NOT NULL,
    recipient_type  text NOT NULL CHECK (recipient_type IN ('identity', 'requester', 'beneficiary', 'approver', 'admin')),
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
    connector_id    text REFERENCES connectors (id) ON DELETE CASCADE,
    CHECK (instance_id IS NOT NULL OR approval_id IS NOT NULL OR connector_id IS NOT NULL)
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
CREATE INDEX notifications_connector ON notifications (connector_id) WHERE connector_id IS NOT NULL;
