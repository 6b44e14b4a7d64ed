-- Job sets: the jobs of one beneficiary in one run share one queue entry,
-- and the entry's worker finds them by its id.
CREATE INDEX connector_jobs_queue_job ON connector_jobs (queue_job_id);

-- A job's status changes twice or more while it runs; no query reads jobs by
-- status across runs (the Connector Jobs page filters runs by their
-- counters), so the index on it only made each change write it too.
DROP INDEX IF EXISTS connector_jobs_status;

-- A task is Triggered while one of its runs is pending or running: each run
-- that ends looks for the others, whatever the number of past runs.
CREATE INDEX request_instances_task_busy ON request_instances (task_id) WHERE status IN ('pending', 'running');
