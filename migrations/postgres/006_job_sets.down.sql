DROP INDEX IF EXISTS request_instances_task_busy;
ALTER TABLE connector_jobs RESET (fillfactor);
CREATE INDEX connector_jobs_status ON connector_jobs (status, instance_id);
DROP INDEX IF EXISTS connector_jobs_queue_job;
