-- A connector's current status: whether its jobs may run (active), wait
-- for a probe to succeed (quarantined) or for an admin (paused), why, and
-- what the last operations came to. The job results update it in the
-- transaction that records them, once per connector and batch.
CREATE TABLE connector_states (
    connector_id         uuid PRIMARY KEY REFERENCES connectors (id) ON DELETE CASCADE,
    state                text NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'quarantined', 'paused')),
    reason               text NOT NULL DEFAULT '',
    since                timestamptz,
    changed_by           text NOT NULL DEFAULT '',
    next_probe_at        timestamptz,
    probe_wait_ms        bigint NOT NULL DEFAULT 0,
    consecutive_failures integer NOT NULL DEFAULT 0,
    -- The outcomes of the last operations, oldest first: 1 for a success,
    -- 0 for a failure; the failure ratio rule reads it.
    recent               text NOT NULL DEFAULT '',
    last_error           text NOT NULL DEFAULT '',
    last_error_at        timestamptz,
    last_success_at      timestamptz,
    -- The objects (accounts and groups) the running import of the
    -- connector read so far, and when it last said so: the progress bar.
    import_read          integer NOT NULL DEFAULT 0,
    import_read_at       timestamptz,
    updated_at           timestamptz NOT NULL
);

-- Operations and failures per connector and hour, for the status chart.
CREATE TABLE connector_hours (
    connector_id uuid NOT NULL REFERENCES connectors (id) ON DELETE CASCADE,
    hour         timestamptz NOT NULL,
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
ALTER TABLE notifications ADD COLUMN connector_id uuid REFERENCES connectors (id) ON DELETE CASCADE;
ALTER TABLE notifications DROP CONSTRAINT notifications_recipient_type_check;
ALTER TABLE notifications ADD CONSTRAINT notifications_recipient_type_check
    CHECK (recipient_type IN ('identity', 'requester', 'beneficiary', 'approver', 'admin'));
ALTER TABLE notifications DROP CONSTRAINT notifications_about;
ALTER TABLE notifications ADD CONSTRAINT notifications_about
    CHECK (instance_id IS NOT NULL OR approval_id IS NOT NULL OR connector_id IS NOT NULL);
CREATE INDEX notifications_connector ON notifications (connector_id) WHERE connector_id IS NOT NULL;
