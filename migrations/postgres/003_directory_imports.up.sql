-- Directory imports: every import run of a connector with what it counted,
-- and the imports that would delete or lock more than the connector's
-- threshold of accounts, kept with their planned changes until an admin
-- approves (they are applied then) or rejects them.

CREATE TABLE imports (
    id             uuid PRIMARY KEY,
    connector_id   uuid NOT NULL REFERENCES connectors (id) ON DELETE CASCADE,
    connector_name text NOT NULL,
    mode           text NOT NULL CHECK (mode IN ('full', 'delta')),
    status         text NOT NULL CHECK (status IN ('awaiting_approval', 'approved', 'rejected', 'applied', 'superseded')),
    counts         jsonb NOT NULL DEFAULT '{}',
    changes        jsonb NOT NULL DEFAULT '[]',
    cookie         text NOT NULL DEFAULT '',
    threshold      double precision NOT NULL,
    message        text NOT NULL DEFAULT '',
    job_id         uuid,
    created_at     timestamptz NOT NULL,
    decided_by     text NOT NULL DEFAULT '',
    decided_at     timestamptz,
    applied_at     timestamptz
);
CREATE INDEX imports_connector ON imports (connector_id, created_at DESC);
CREATE INDEX imports_status ON imports (status, created_at DESC);

-- Imports correlate accounts with the identities they made before.
CREATE INDEX identities_source_external ON identities (source, external_id);
