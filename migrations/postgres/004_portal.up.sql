-- The web portal: sign-in sessions, the slow-down after failed sign-ins,
-- and the request wizard's drafts.

CREATE TABLE web_sessions (
    token_hash   text PRIMARY KEY,
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    csrf_token   text NOT NULL,
    created_at   timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL,
    last_seen_at timestamptz NOT NULL
);
CREATE INDEX web_sessions_user ON web_sessions (user_id);
CREATE INDEX web_sessions_expires ON web_sessions (expires_at);

CREATE TABLE login_failures (
    key            text PRIMARY KEY,
    failures       integer NOT NULL,
    last_failed_at timestamptz NOT NULL
);

CREATE TABLE request_drafts (
    id         uuid PRIMARY KEY,
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    data       jsonb NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);
CREATE INDEX request_drafts_user ON request_drafts (user_id, updated_at DESC);

-- The requests grid of a requester lists their own runs.
CREATE INDEX request_instances_triggered_by ON request_instances (triggered_by, created_at DESC);
