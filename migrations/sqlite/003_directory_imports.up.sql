-- Directory imports: every import run of a connector with what it counted,
-- and the imports that would delete or lock more than the connector's
-- threshold of accounts, kept with their planned changes until an admin
-- approves (they are applied then) or rejects them.

CREATE TABLE imports (
    id             text PRIMARY KEY,
    connector_id   text NOT NULL REFERENCES connectors (id) ON DELETE CASCADE,
    connector_name text NOT NULL,
    mode           text NOT NULL CHECK (mode IN ('full', 'delta')),
    status         text NOT NULL CHECK (status IN ('awaiting_approval', 'approved', 'rejected', 'applied', 'superseded')),
    counts         text NOT NULL DEFAULT '{}',
    changes        text NOT NULL DEFAULT '[]',
    cookie         text NOT NULL DEFAULT '',
    threshold      real NOT NULL,
    message        text NOT NULL DEFAULT '',
    job_id         text,
    created_at     datetime NOT NULL,
    decided_by     text NOT NULL DEFAULT '',
    decided_at     datetime,
    applied_at     datetime
);
CREATE INDEX imports_connector ON imports (connector_id, created_at);
CREATE INDEX imports_status ON imports (status, created_at);

-- Imports correlate accounts with the identities they made before.
CREATE INDEX identities_source_external ON identities (source, external_id);
