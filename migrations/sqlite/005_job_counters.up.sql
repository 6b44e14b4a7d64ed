-- Per-status job counters on request instances. The roll-up keeps them in
-- the transaction that changes a job's status, so the Connector Jobs page
-- counts and filters runs without reading every connector job.

ALTER TABLE request_instances ADD COLUMN jobs_pending   integer NOT NULL DEFAULT 0;
ALTER TABLE request_instances ADD COLUMN jobs_scheduled integer NOT NULL DEFAULT 0;
ALTER TABLE request_instances ADD COLUMN jobs_running   integer NOT NULL DEFAULT 0;
ALTER TABLE request_instances ADD COLUMN jobs_completed integer NOT NULL DEFAULT 0;
ALTER TABLE request_instances ADD COLUMN jobs_failed    integer NOT NULL DEFAULT 0;
ALTER TABLE request_instances ADD COLUMN jobs_canceled  integer NOT NULL DEFAULT 0;

UPDATE request_instances SET
    jobs_pending   = (SELECT count(*) FROM connector_jobs j WHERE j.instance_id = request_instances.id AND j.status = 'pending'),
    jobs_scheduled = (SELECT count(*) FROM connector_jobs j WHERE j.instance_id = request_instances.id AND j.status = 'scheduled'),
    jobs_running   = (SELECT count(*) FROM connector_jobs j WHERE j.instance_id = request_instances.id AND j.status = 'running'),
    jobs_completed = (SELECT count(*) FROM connector_jobs j WHERE j.instance_id = request_instances.id AND j.status = 'completed'),
    jobs_failed    = (SELECT count(*) FROM connector_jobs j WHERE j.instance_id = request_instances.id AND j.status = 'failed'),
    jobs_canceled  = (SELECT count(*) FROM connector_jobs j WHERE j.instance_id = request_instances.id AND j.status = 'canceled');

-- One index per status filter, newest first as the page lists them, with
-- the counter last so that the page's totals come from the index alone.
CREATE INDEX request_instances_jobs_pending   ON request_instances (updated_at DESC, id, jobs_pending)   WHERE jobs_pending > 0;
CREATE INDEX request_instances_jobs_scheduled ON request_instances (updated_at DESC, id, jobs_scheduled) WHERE jobs_scheduled > 0;
CREATE INDEX request_instances_jobs_running   ON request_instances (updated_at DESC, id, jobs_running)   WHERE jobs_running > 0;
CREATE INDEX request_instances_jobs_completed ON request_instances (updated_at DESC, id, jobs_completed) WHERE jobs_completed > 0;
CREATE INDEX request_instances_jobs_failed    ON request_instances (updated_at DESC, id, jobs_failed)    WHERE jobs_failed > 0;
CREATE INDEX request_instances_jobs_canceled  ON request_instances (updated_at DESC, id, jobs_canceled)  WHERE jobs_canceled > 0;
CREATE INDEX request_instances_updated_jobs   ON request_instances (updated_at DESC, id, jobs_total);
DROP INDEX request_instances_updated;
