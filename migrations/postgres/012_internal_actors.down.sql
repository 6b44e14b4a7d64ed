-- Internal actors go back to bare names. Users 012 disabled stay disabled:
-- nothing says which were.
UPDATE tasks SET created_by = 'system' WHERE created_by = 'system:provisor';
UPDATE tasks SET created_by = 'demo' WHERE created_by = 'system:demo';
UPDATE request_instances SET triggered_by = 'scheduler' WHERE triggered_by = 'system:scheduler';
UPDATE request_instances SET triggered_by = 'demo' WHERE triggered_by = 'system:demo';
UPDATE api_clients SET created_by = 'demo' WHERE created_by = 'system:demo';
UPDATE api_clients SET created_by = 'cli' WHERE created_by = 'system:cli';
