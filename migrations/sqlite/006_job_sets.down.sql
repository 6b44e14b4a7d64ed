DROP INDEX IF EXISTS connector_jobs_queue_job;
