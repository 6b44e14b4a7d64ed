DROP INDEX connector_jobs_imports;
DROP INDEX connector_jobs_waiting;
DROP TABLE connector_hours;
DROP TABLE connector_states;
