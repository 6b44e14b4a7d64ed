CREATE INDEX request_instances_updated ON request_instances (updated_at DESC, id);
DROP INDEX IF EXISTS request_instances_updated_jobs;
DROP INDEX IF EXISTS request_instances_jobs_pending;
DROP INDEX IF EXISTS request_instances_jobs_scheduled;
DROP INDEX IF EXISTS request_instances_jobs_running;
DROP INDEX IF EXISTS request_instances_jobs_completed;
DROP INDEX IF EXISTS request_instances_jobs_failed;
DROP INDEX IF EXISTS request_instances_jobs_canceled;
ALTER TABLE request_instances
    DROP COLUMN jobs_pending,
    DROP COLUMN jobs_scheduled,
    DROP COLUMN jobs_running,
    DROP COLUMN jobs_completed,
    DROP COLUMN jobs_failed,
    DROP COLUMN jobs_canceled;
