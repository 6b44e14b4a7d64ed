DELETE FROM notifications WHERE connector_id IS NOT NULL;
DROP INDEX notifications_connector;
ALTER TABLE notifications DROP CONSTRAINT notifications_about;
ALTER TABLE notifications ADD CONSTRAINT notifications_about CHECK (instance_id IS NOT NULL OR approval_id IS NOT NULL);
ALTER TABLE notifications DROP CONSTRAINT notifications_recipient_type_check;
ALTER TABLE notifications ADD CONSTRAINT notifications_recipient_type_check
    CHECK (recipient_type IN ('identity', 'requester', 'beneficiary', 'approver'));
ALTER TABLE notifications DROP COLUMN connector_id;
DROP INDEX connector_jobs_imports;
DROP INDEX connector_jobs_waiting;
DROP TABLE connector_hours;
DROP TABLE connector_states;
