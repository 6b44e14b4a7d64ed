ALTER TABLE connector_jobs DROP COLUMN rate_limit_waits;
