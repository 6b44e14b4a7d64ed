-- "No change" is an outcome of its own: a completed job whose connector
-- found the system already as asked (a membership held, an account
-- already locked) is marked unchanged, and each run counts those jobs
-- beside its counters by status, kept by the same roll-up, so that the
-- Connector Jobs page filters and counts them from the runs alone.

ALTER TABLE connector_jobs ADD COLUMN unchanged boolean NOT NULL DEFAULT false;
ALTER TABLE request_instances ADD COLUMN jobs_unchanged integer NOT NULL DEFAULT 0;

-- Jobs recorded before said so in their message only.
UPDATE connector_jobs SET unchanged = true WHERE status = 'completed' AND message LIKE '%(no change)';

UPDATE request_instances i SET jobs_unchanged = c.n
FROM (SELECT instance_id, count(*) AS n FROM connector_jobs WHERE unchanged GROUP BY instance_id) c
WHERE c.instance_id = i.id;

CREATE INDEX request_instances_jobs_unchanged ON request_instances (updated_at DESC, id, jobs_unchanged) WHERE jobs_unchanged > 0;
