DROP INDEX IF EXISTS request_instances_jobs_unchanged;
ALTER TABLE request_instances DROP COLUMN jobs_unchanged;
ALTER TABLE connector_jobs DROP COLUMN unchanged;
