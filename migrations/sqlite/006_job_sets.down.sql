DROP INDEX IF EXISTS request_instances_task_busy;
CREATE INDEX connector_jobs_status ON connector_jobs (status, instance_id);
DROP INDEX IF EXISTS connector_jobs_queue_job;
