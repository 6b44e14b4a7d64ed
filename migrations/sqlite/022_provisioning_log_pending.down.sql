-- Entries still pending go into the log first.
INSERT INTO provisioning_logs (id, at, duration_ms, connector_id, connector_name, connector_type,
action, operation, kind, identity_id, identity_name, identity_email, target_username,
target_external_id, entitlement_name, entitlement_external_id, initiated_by, trigger, instance_id,
task_id, task_name, job_id, job_seq, attempt, status, error_class, error_code, error_message,
request_id, message, steps, changes, search) SELECT v ->> 0, v ->> 1, v ->> 2, v ->> 3, v ->> 4, v
->> 5, v ->> 6, v ->> 7, v ->> 8, v ->> 9, v ->> 10, v ->> 11, v ->> 12, v ->> 13, v ->> 14, v ->>
15, v ->> 16, v ->> 17, v ->> 18, v ->> 19, v ->> 20, v ->> 21, v ->> 22, v ->> 23, v ->> 24, v ->>
25, v ->> 26, v ->> 27, v ->> 28, v ->> 29, v ->> 30, v ->> 31, v ->> 32 FROM (SELECT jsonb(j.value)
AS v FROM provisioning_log_pending p, json_each(p.entries) j ORDER BY p.id, j.key) r;

DROP TABLE provisioning_log_pending;
