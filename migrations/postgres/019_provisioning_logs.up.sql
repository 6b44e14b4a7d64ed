-- The provisioning log: one entry per attempt of an operation on a target
-- system (and one per import cycle), written in the transaction that
-- records the job's result. Entries outlive what they name (a connector,
-- a run or an identity deleted later), so nothing here is a foreign key;
-- a daily job deletes the entries older than the retention.
--
-- search holds the entry's identifiers of the source and of the target
-- (name, email, username, external id or DN, group), lowercased, so that
-- one trigram index answers a case-insensitive search on any of them.

CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TABLE provisioning_logs (
    id uuid PRIMARY KEY,
    at timestamptz NOT NULL,
    duration_ms bigint NOT NULL DEFAULT 0,
    connector_id uuid,
    connector_name text NOT NULL DEFAULT '',
    connector_type text NOT NULL DEFAULT '',
    action text NOT NULL,
    operation text NOT NULL DEFAULT '',
    kind text NOT NULL DEFAULT '',
    identity_id uuid,
    identity_name text NOT NULL DEFAULT '',
    identity_email text NOT NULL DEFAULT '',
    target_username text NOT NULL DEFAULT '',
    target_external_id text NOT NULL DEFAULT '',
    entitlement_name text NOT NULL DEFAULT '',
    entitlement_external_id text NOT NULL DEFAULT '',
    initiated_by text NOT NULL DEFAULT '',
    trigger text NOT NULL DEFAULT '',
    instance_id uuid,
    task_id uuid,
    task_name text NOT NULL DEFAULT '',
    job_id uuid,
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
CREATE INDEX provisioning_logs_search ON provisioning_logs USING gin (search gin_trgm_ops);
