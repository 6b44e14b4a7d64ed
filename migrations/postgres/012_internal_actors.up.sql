-- Internal actors take a form no username can have, with a colon
-- ("system:provisor", "system:scheduler", "system:demo", "system:cli", as
-- "api:NAME" already did), so that a person called system, scheduler or
-- demo, signed in from a directory, owns nothing the system made. Rows
-- written before move to the new forms where they are surely the system's:
-- Data Import tasks, runs of schedule ticks, what the demo loaded into the
-- empty database before its users, or any row when no user has that name.
-- The audit trail is append-only and keeps the words of its time.
UPDATE tasks SET created_by = 'system:provisor'
WHERE created_by = 'system'
  AND (type = 'data_import' OR NOT EXISTS (SELECT 1 FROM users WHERE username = 'system'));

UPDATE request_instances SET triggered_by = 'system:scheduler'
WHERE triggered_by = 'scheduler'
  AND (trigger = 'schedule' OR NOT EXISTS (SELECT 1 FROM users WHERE username = 'scheduler'));

UPDATE tasks SET created_by = 'system:demo'
WHERE created_by = 'demo'
  AND (NOT EXISTS (SELECT 1 FROM users WHERE username = 'demo') OR created_at <= (SELECT min(created_at) FROM users));

UPDATE request_instances SET triggered_by = 'system:demo'
WHERE triggered_by = 'demo'
  AND (NOT EXISTS (SELECT 1 FROM users WHERE username = 'demo') OR created_at <= (SELECT min(created_at) FROM users));

UPDATE api_clients SET created_by = 'system:demo'
WHERE created_by = 'demo' AND NOT EXISTS (SELECT 1 FROM users WHERE username = 'demo');

UPDATE api_clients SET created_by = 'system:cli'
WHERE created_by = 'cli' AND NOT EXISTS (SELECT 1 FROM users WHERE username = 'cli');

-- A directory could sign in a name with a colon, which can pass for an
-- internal actor ("api:Nightly jobs"): such users are disabled. Sign-in now
-- refuses those names.
UPDATE users SET disabled = true WHERE username LIKE '%:%' AND NOT disabled;
