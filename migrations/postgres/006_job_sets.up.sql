-- Job sets: the jobs of one beneficiary in one run share one queue entry,
-- and the entry's worker finds them by its id.
CREATE INDEX connector_jobs_queue_job ON connector_jobs (queue_job_id);
