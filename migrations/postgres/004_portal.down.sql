DROP INDEX IF EXISTS request_instances_triggered_by;
DROP TABLE IF EXISTS request_drafts, login_failures, web_sessions;
