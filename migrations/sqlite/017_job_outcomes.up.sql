-- "No change" is an outcome of its own: a completed job whose connector
-- found the system already as asked (a membership held, an account
-- already locked) is marked unchanged, and each run counts those jobs
-- beside its counters by status, kept by the same roll-up, so that the
-- Connector Jobs page filters and counts them from the runs alone.

ALTER TABLE connector_jobs ADD COLUMN unchanged integer NOT NULL DEFAULT 0;
ALTER TABLE request_instances ADD COLUMN jobs_unchanged integer NOT NULL DEFAULT 0;

-- Jobs recorded before said so in their message only.
UPDATE connector_jobs SET unchanged = 1 WHERE status = 'completed' AND message LIKE '%(no change)';

UPDATE request_instances SET jobs_unchanged =
    (SELECT count(*) FROM connector_jobs j WHERE j.instance_id = request_instances.id AND j.unchanged = 1)
WHERE id IN (SELECT instance_id FROM connector_jobs WHERE unchanged = 1);

CREATE INDEX request_instances_jobs_unchanged ON request_instances (updated_at DESC, id, jobs_unchanged) WHERE jobs_unchanged > 0;
