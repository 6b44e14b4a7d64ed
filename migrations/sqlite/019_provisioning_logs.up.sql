-- The provisioning log: one entry per attempt of an operation on a target
-- system (and one per import cycle), written in the transaction that
-- records the job's result. Entries outlive what they name (a connector,
-- a run or an identity deleted later), so nothing here is a foreign key;
-- a daily job deletes the entries older than the retention.
--
-- search holds the entry's identifiers of the source and of the target
-- (name, email, username, external id or DN, group), lowercased, so that
-- a case-insensitive search on any of them reads one column. PostgreSQL
-- indexes it with trigrams; SQLite has no such index, and its index of the
-- same name serves searches by the start of the first identifier.

CREATE TABLE provisioning_logs (
    id text PRIMARY KEY,
    at datetime NOT NULL,
    duration_ms integer NOT NULL DEFAULT 0,
    connector_id text,
    connector_name text NOT NULL DEFAULT '',
    connector_type text NOT NULL DEFAULT '',
    action text NOT NULL,
    operation text NOT NULL DEFAULT '',
    kind text NOT NULL DEFAULT '',
    identity_id text,
    identity_name text NOT NULL DEFAULT '',
    identity_email text NOT NULL DEFAULT '',
    target_username text NOT NULL DEFAULT '',
    target_external_id text NOT NULL DEFAULT '',
    entitlement_name text NOT NULL DEFAULT '',
    entitlement_external_id text NOT NULL DEFAULT '',
    initiated_by text NOT NULL DEFAULT '',
    trigger text NOT NULL DEFAULT '',
    instance_id text,
    task_id text,
    task_name text NOT NULL DEFAULT '',
    job_id text,
    job_seq integer NOT NULL DEFAULT 0,
    attempt integer NOT NULL DEFAULT 0,
    status text NOT NULL,
    error_class text NOT NULL DEFAULT '',
    error_code text NOT NULL DEFAULT '',
    error_message text NOT NULL DEFAULT '',
    request_id text NOT NULL DEFAULT '',
    message text NOT NULL DEFAULT '',
    steps text NOT NULL DEFAULT '[]',
    changes text NOT NULL DEFAULT '[]',
    search text NOT NULL DEFAULT ''
);

CREATE INDEX provisioning_logs_at ON provisioning_logs (at DESC, id DESC);
CREATE INDEX provisioning_logs_identity ON provisioning_logs (identity_id, at DESC, id DESC);
CREATE INDEX provisioning_logs_connector ON provisioning_logs (connector_id, at DESC, id DESC);
CREATE INDEX provisioning_logs_search ON provisioning_logs (search);
