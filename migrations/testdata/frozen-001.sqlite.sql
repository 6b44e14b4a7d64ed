PRAGMA foreign_keys=OFF;
BEGIN TRANSACTION;
CREATE TABLE users (
    id            text PRIMARY KEY,
    username      text NOT NULL UNIQUE,
    email         text NOT NULL DEFAULT '',
    display_name  text NOT NULL DEFAULT '',
    password_hash text NOT NULL,
    role          text NOT NULL CHECK (role IN ('requester', 'admin')),
    identity_id   text,
    disabled      integer NOT NULL DEFAULT 0,
    created_at    datetime NOT NULL,
    updated_at    datetime NOT NULL
);
INSERT INTO users VALUES('10000000-0000-4000-8000-000000000001','admin','admin@example.test','Ada Admin','$2a$10$7EqJtq98hPqEX7fNZaFWoOhi5BWX4Z2Fh1Q1n5s5Zn8m1c8Z6iQ1a','admin',NULL,0,'2026-01-15 09:00:00+00:00','2026-01-15 09:00:00+00:00');
INSERT INTO users VALUES('10000000-0000-4000-8000-000000000002','alice','alice@example.test','Alice Martin','$2a$10$7EqJtq98hPqEX7fNZaFWoOhi5BWX4Z2Fh1Q1n5s5Zn8m1c8Z6iQ1a','requester',NULL,0,'2026-01-15 09:00:00+00:00','2026-01-15 09:00:00+00:00');
CREATE TABLE api_clients (
    id          text PRIMARY KEY,
    client_id   text NOT NULL UNIQUE,
    name        text NOT NULL,
    secret_hash text NOT NULL,
    scopes      text NOT NULL,
    created_by  text NOT NULL DEFAULT '',
    created_at  datetime NOT NULL,
    revoked_at  datetime
);
INSERT INTO api_clients VALUES('11000000-0000-4000-8000-000000000001','pc_frozen00001','Nightly script','x','read trigger','demo','2026-01-15 09:00:00+00:00',NULL);
CREATE TABLE api_tokens (
    token_hash text PRIMARY KEY,
    client_id  text NOT NULL REFERENCES api_clients (id) ON DELETE CASCADE,
    scopes     text NOT NULL,
    expires_at datetime NOT NULL,
    created_at datetime NOT NULL
);
CREATE TABLE identities (
    id           text PRIMARY KEY,
    username     text NOT NULL UNIQUE,
    display_name text NOT NULL DEFAULT '',
    email        text NOT NULL DEFAULT '',
    source       text NOT NULL DEFAULT 'local',
    external_id  text NOT NULL DEFAULT '',
    status       text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'inactive', 'deleted')),
    created_at   datetime NOT NULL,
    updated_at   datetime NOT NULL
);
INSERT INTO identities VALUES('20000000-0000-4000-8000-000000000001','alice','Alice Martin','alice@example.test','local','','active','2026-01-15 09:00:00+00:00','2026-01-15 09:00:00+00:00');
INSERT INTO identities VALUES('20000000-0000-4000-8000-000000000002','bob','Bob Durand','bob@example.test','Corp Directory','uid=bob','active','2026-01-15 09:00:00+00:00','2026-01-15 09:00:00+00:00');
CREATE TABLE workgroups (
    id          text PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    description text NOT NULL DEFAULT '',
    created_at  datetime NOT NULL,
    updated_at  datetime NOT NULL
);
INSERT INTO workgroups VALUES('30000000-0000-4000-8000-000000000001','Finance','Finance department','2026-01-15 09:00:00+00:00','2026-01-15 09:00:00+00:00');
CREATE TABLE workgroup_members (
    workgroup_id text NOT NULL REFERENCES workgroups (id) ON DELETE CASCADE,
    identity_id  text NOT NULL REFERENCES identities (id) ON DELETE CASCADE,
    added_at     datetime NOT NULL,
    PRIMARY KEY (workgroup_id, identity_id)
);
INSERT INTO workgroup_members VALUES('30000000-0000-4000-8000-000000000001','20000000-0000-4000-8000-000000000001','2026-01-15 09:00:00+00:00');
INSERT INTO workgroup_members VALUES('30000000-0000-4000-8000-000000000001','20000000-0000-4000-8000-000000000002','2026-01-15 09:00:00+00:00');
CREATE TABLE connectors (
    id             text PRIMARY KEY,
    name           text NOT NULL UNIQUE,
    type           text NOT NULL,
    description    text NOT NULL DEFAULT '',
    settings       text NOT NULL DEFAULT '{}',
    secrets        blob,
    enabled        integer NOT NULL DEFAULT 1,
    health         text NOT NULL DEFAULT 'unknown',
    health_message text NOT NULL DEFAULT '',
    health_at      datetime,
    import_cookie  text NOT NULL DEFAULT '',
    created_at     datetime NOT NULL,
    updated_at     datetime NOT NULL
);
INSERT INTO connectors VALUES('40000000-0000-4000-8000-000000000001','Corp Directory','internal','Accounts and groups kept in Provisor','{}',NULL,1,'ok','',NULL,'','2026-01-15 09:00:00+00:00','2026-01-15 09:00:00+00:00');
CREATE TABLE entitlements (
    id           text PRIMARY KEY,
    connector_id text NOT NULL REFERENCES connectors (id) ON DELETE CASCADE,
    external_id  text NOT NULL,
    name         text NOT NULL,
    kind         text NOT NULL DEFAULT 'group' CHECK (kind IN ('group', 'role')),
    description  text NOT NULL DEFAULT '',
    deleted      integer NOT NULL DEFAULT 0,
    created_at   datetime NOT NULL,
    updated_at   datetime NOT NULL,
    UNIQUE (connector_id, external_id)
);
INSERT INTO entitlements VALUES('50000000-0000-4000-8000-000000000001','40000000-0000-4000-8000-000000000001','VPN Users','VPN Users','group','Remote access',0,'2026-01-15 09:00:00+00:00','2026-01-15 09:00:00+00:00');
CREATE TABLE accounts (
    id           text PRIMARY KEY,
    connector_id text NOT NULL REFERENCES connectors (id) ON DELETE CASCADE,
    identity_id  text REFERENCES identities (id) ON DELETE SET NULL,
    username     text NOT NULL,
    external_id  text NOT NULL DEFAULT '',
    status       text NOT NULL CHECK (status IN ('enabled', 'locked', 'deleted')),
    created_at   datetime NOT NULL,
    updated_at   datetime NOT NULL,
    UNIQUE (connector_id, username)
);
INSERT INTO accounts VALUES('60000000-0000-4000-8000-000000000001','40000000-0000-4000-8000-000000000001','20000000-0000-4000-8000-000000000001','alice','alice','enabled','2026-01-15 09:00:00+00:00','2026-01-15 09:00:00+00:00');
CREATE TABLE memberships (
    account_id     text NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    entitlement_id text NOT NULL REFERENCES entitlements (id) ON DELETE CASCADE,
    granted_at     datetime NOT NULL,
    expires_at     datetime,
    PRIMARY KEY (account_id, entitlement_id)
);
INSERT INTO memberships VALUES('60000000-0000-4000-8000-000000000001','50000000-0000-4000-8000-000000000001','2026-01-15 09:01:00+00:00',NULL);
CREATE TABLE directory_accounts (
    connector_id text NOT NULL REFERENCES connectors (id) ON DELETE CASCADE,
    username     text NOT NULL,
    display_name text NOT NULL DEFAULT '',
    email        text NOT NULL DEFAULT '',
    locked       integer NOT NULL DEFAULT 0,
    created_at   datetime NOT NULL,
    updated_at   datetime NOT NULL,
    PRIMARY KEY (connector_id, username)
);
INSERT INTO directory_accounts VALUES('40000000-0000-4000-8000-000000000001','alice','Alice Martin','alice@example.test',0,'2026-01-15 09:00:00+00:00','2026-01-15 09:00:00+00:00');
CREATE TABLE directory_groups (
    connector_id text NOT NULL REFERENCES connectors (id) ON DELETE CASCADE,
    name         text NOT NULL,
    kind         text NOT NULL DEFAULT 'group',
    description  text NOT NULL DEFAULT '',
    created_at   datetime NOT NULL,
    PRIMARY KEY (connector_id, name)
);
INSERT INTO directory_groups VALUES('40000000-0000-4000-8000-000000000001','VPN Users','group','Remote access','2026-01-15 09:00:00+00:00');
CREATE TABLE directory_members (
    connector_id text NOT NULL,
    group_name   text NOT NULL,
    username     text NOT NULL,
    added_at     datetime NOT NULL,
    PRIMARY KEY (connector_id, group_name, username),
    FOREIGN KEY (connector_id, group_name) REFERENCES directory_groups (connector_id, name) ON DELETE CASCADE,
    FOREIGN KEY (connector_id, username) REFERENCES directory_accounts (connector_id, username) ON DELETE CASCADE
);
INSERT INTO directory_members VALUES('40000000-0000-4000-8000-000000000001','VPN Users','alice','2026-01-15 09:01:00+00:00');
CREATE TABLE tasks (
    id                text PRIMARY KEY,
    name              text NOT NULL UNIQUE,
    description       text NOT NULL DEFAULT '',
    request           text NOT NULL,
    type              text NOT NULL,
    beneficiary_type  text NOT NULL,
    beneficiary_id    text NOT NULL,
    beneficiary_name  text NOT NULL,
    connector_id      text NOT NULL REFERENCES connectors (id),
    status            text NOT NULL CHECK (status IN ('idle', 'triggered', 'disabled')),
    cron              text NOT NULL DEFAULT '',
    timezone          text NOT NULL DEFAULT 'UTC',
    schedule_enabled  integer NOT NULL DEFAULT 0,
    notify            text NOT NULL DEFAULT '{}',
    last_result       text NOT NULL DEFAULT '',
    last_run_at       datetime,
    last_instance_id  text,
    created_by        text NOT NULL DEFAULT '',
    created_at        datetime NOT NULL,
    updated_at        datetime NOT NULL
);
INSERT INTO tasks VALUES('70000000-0000-4000-8000-000000000001','Onboard Alice','VPN for Alice','{"type":"add_entitlements","beneficiary_type":"identity","beneficiary_id":"20000000-0000-4000-8000-000000000001","connector_id":"40000000-0000-4000-8000-000000000001","entitlements":["50000000-0000-4000-8000-000000000001"],"justification":"New hire","priority":"high"}','add_entitlements','identity','20000000-0000-4000-8000-000000000001','Alice Martin','40000000-0000-4000-8000-000000000001','idle','0 22 * * *','Europe/Paris',1,'{"enabled":true,"recipients":["requester"],"when":"always"}','completed','2026-01-15 09:01:00+00:00','80000000-0000-4000-8000-000000000001','demo','2026-01-15 09:00:00+00:00','2026-01-15 09:01:00+00:00');
CREATE TABLE schedule_ticks (
    task_id text NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    tick_at datetime NOT NULL,
    PRIMARY KEY (task_id, tick_at)
);
CREATE TABLE request_instances (
    id               text PRIMARY KEY,
    task_id          text REFERENCES tasks (id) ON DELETE SET NULL,
    task_name        text NOT NULL DEFAULT '',
    request          text NOT NULL,
    type             text NOT NULL,
    beneficiary_type text NOT NULL,
    beneficiary_id   text NOT NULL,
    beneficiary_name text NOT NULL,
    connector_id     text NOT NULL,
    trigger          text NOT NULL CHECK (trigger IN ('submission', 'manual', 'schedule', 'api', 'cli')),
    triggered_by     text NOT NULL DEFAULT '',
    priority         text NOT NULL,
    status           text NOT NULL,
    jobs_total       integer NOT NULL DEFAULT 0,
    jobs_done        integer NOT NULL DEFAULT 0,
    expires_at       datetime,
    created_at       datetime NOT NULL,
    updated_at       datetime NOT NULL,
    ended_at         datetime
);
INSERT INTO request_instances VALUES('80000000-0000-4000-8000-000000000001','70000000-0000-4000-8000-000000000001','Onboard Alice','{"type":"add_entitlements","beneficiary_type":"identity","beneficiary_id":"20000000-0000-4000-8000-000000000001","connector_id":"40000000-0000-4000-8000-000000000001","entitlements":["50000000-0000-4000-8000-000000000001"],"justification":"New hire","priority":"high"}','add_entitlements','identity','20000000-0000-4000-8000-000000000001','Alice Martin','40000000-0000-4000-8000-000000000001','schedule','scheduler','high','completed',1,1,NULL,'2026-01-15 09:00:30+00:00','2026-01-15 09:01:00+00:00','2026-01-15 09:01:00+00:00');
CREATE TABLE connector_jobs (
    id               text PRIMARY KEY,
    instance_id      text NOT NULL REFERENCES request_instances (id) ON DELETE CASCADE,
    seq              integer NOT NULL,
    connector_id     text NOT NULL,
    connector_name   text NOT NULL,
    connector_type   text NOT NULL,
    identity_id      text,
    username         text NOT NULL,
    entitlement_id   text,
    entitlement_name text NOT NULL DEFAULT '',
    operation        text NOT NULL,
    kind             text NOT NULL,
    status           text NOT NULL CHECK (status IN ('pending', 'scheduled', 'running', 'completed', 'failed', 'canceled')),
    priority         text NOT NULL,
    depends_on       text,
    revocation       integer NOT NULL DEFAULT 0,
    run_at           datetime,
    attempts         integer NOT NULL DEFAULT 0,
    queue_job_id     bigint,
    message          text NOT NULL DEFAULT '',
    created_at       datetime NOT NULL,
    started_at       datetime,
    ended_at         datetime,
    updated_at       datetime NOT NULL,
    UNIQUE (instance_id, seq)
);
INSERT INTO connector_jobs VALUES('90000000-0000-4000-8000-000000000001','80000000-0000-4000-8000-000000000001',1,'40000000-0000-4000-8000-000000000001','Corp Directory','internal','20000000-0000-4000-8000-000000000001','alice','50000000-0000-4000-8000-000000000001','VPN Users','entitlement.grant','Directory.AddToGroup','completed','high',NULL,0,NULL,1,NULL,'added to VPN Users','2026-01-15 09:00:30+00:00','2026-01-15 09:00:40+00:00','2026-01-15 09:01:00+00:00','2026-01-15 09:01:00+00:00');
CREATE TABLE job_events (
    id      integer PRIMARY KEY AUTOINCREMENT,
    job_id  text NOT NULL REFERENCES connector_jobs (id) ON DELETE CASCADE,
    at      datetime NOT NULL,
    status  text NOT NULL,
    attempt integer NOT NULL DEFAULT 0,
    message text NOT NULL DEFAULT ''
);
INSERT INTO job_events VALUES(1,'90000000-0000-4000-8000-000000000001','2026-01-15 09:00:30+00:00','pending',0,'queued');
INSERT INTO job_events VALUES(2,'90000000-0000-4000-8000-000000000001','2026-01-15 09:00:40+00:00','running',1,'started');
INSERT INTO job_events VALUES(3,'90000000-0000-4000-8000-000000000001','2026-01-15 09:01:00+00:00','completed',1,'added to VPN Users');
CREATE TABLE audit_events (
    id          integer PRIMARY KEY AUTOINCREMENT,
    at          datetime NOT NULL,
    actor       text NOT NULL,
    action      text NOT NULL,
    target_type text NOT NULL DEFAULT '',
    target_id   text NOT NULL DEFAULT '',
    details     text NOT NULL DEFAULT '{}'
);
INSERT INTO audit_events VALUES(1,'2026-01-15 09:00:00+00:00','demo','task.create','task','70000000-0000-4000-8000-000000000001','{"name":"Onboard Alice"}');
CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at text NOT NULL);
INSERT INTO schema_migrations VALUES(1,'initial','2026-01-15T08:59:00Z');
DELETE FROM sqlite_sequence;
INSERT INTO sqlite_sequence VALUES('job_events',3);
INSERT INTO sqlite_sequence VALUES('audit_events',1);
CREATE INDEX api_tokens_expires_at ON api_tokens (expires_at);
CREATE INDEX identities_display_name ON identities (lower(display_name));
CREATE INDEX workgroup_members_identity ON workgroup_members (identity_id);
CREATE INDEX accounts_identity ON accounts (identity_id);
CREATE INDEX memberships_entitlement ON memberships (entitlement_id);
CREATE INDEX tasks_schedule ON tasks (schedule_enabled);
CREATE INDEX request_instances_task ON request_instances (task_id, created_at);
CREATE INDEX request_instances_status ON request_instances (status, updated_at);
CREATE INDEX request_instances_updated ON request_instances (updated_at, id);
CREATE INDEX connector_jobs_status ON connector_jobs (status, instance_id);
CREATE INDEX connector_jobs_depends_on ON connector_jobs (depends_on);
CREATE INDEX job_events_job ON job_events (job_id, id);
CREATE INDEX audit_events_at ON audit_events (at);
CREATE INDEX audit_events_actor ON audit_events (actor, at);
CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit_events is append-only');
END;
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit_events is append-only');
END;
COMMIT;
