DROP INDEX IF EXISTS request_instances_triggered_by;
DROP TABLE IF EXISTS request_drafts;
DROP TABLE IF EXISTS login_failures;
DROP TABLE IF EXISTS web_sessions;
