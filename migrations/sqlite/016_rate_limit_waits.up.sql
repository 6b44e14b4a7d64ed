-- How many times a job waited because its system asked it to slow down (a
-- 429 or 503 with Retry-After): such waits spend no attempt, and are shown
-- on the job so that an admin sees a throttled system.
ALTER TABLE connector_jobs ADD COLUMN rate_limit_waits integer NOT NULL DEFAULT 0;
