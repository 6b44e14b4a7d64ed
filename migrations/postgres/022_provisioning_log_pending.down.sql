-- Entries still pending go into the log first.
INSERT INTO provisioning_logs (id, at, duration_ms, connector_id, connector_name, connector_type,
action, operation, kind, identity_id, identity_name, identity_email, target_username,
target_external_id, entitlement_name, entitlement_external_id, initiated_by, trigger, instance_id,
task_id, task_name, job_id, job_seq, attempt, status, error_class, error_code, error_message,
request_id, message, steps, changes, search) SELECT CAST(r ->> 0 AS uuid), CAST(r ->> 1 AS
timestamptz), CAST(r ->> 2 AS bigint), CAST(r ->> 3 AS uuid), CAST(r ->> 4 AS text), CAST(r ->> 5 AS
text), CAST(r ->> 6 AS text), CAST(r ->> 7 AS text), CAST(r ->> 8 AS text), CAST(r ->> 9 AS uuid),
CAST(r ->> 10 AS text), CAST(r ->> 11 AS text), CAST(r ->> 12 AS text), CAST(r ->> 13 AS text),
CAST(r ->> 14 AS text), CAST(r ->> 15 AS text), CAST(r ->> 16 AS text), CAST(r ->> 17 AS text),
CAST(r ->> 18 AS uuid), CAST(r ->> 19 AS uuid), CAST(r ->> 20 AS text), CAST(r ->> 21 AS uuid),
CAST(r ->> 22 AS integer), CAST(r ->> 23 AS integer), CAST(r ->> 24 AS text), CAST(r ->> 25 AS
text), CAST(r ->> 26 AS text), CAST(r ->> 27 AS text), CAST(r ->> 28 AS text), CAST(r ->> 29 AS
text), CAST(r ->> 30 AS text), CAST(r ->> 31 AS text), CAST(r ->> 32 AS text) FROM
provisioning_log_pending b, jsonb_array_elements(CAST(b.entries AS jsonb)) AS r;

DROP TABLE provisioning_log_pending;
