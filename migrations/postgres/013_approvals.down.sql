-- Approval emails that no run holds go; runs awaiting approval end canceled.
DELETE FROM notifications WHERE instance_id IS NULL;
ALTER TABLE notifications DROP CONSTRAINT notifications_about;
DELETE FROM notifications WHERE recipient_type = 'approver';
DELETE FROM notifications n USING notifications o
    WHERE n.instance_id = o.instance_id AND n.address = o.address AND n.created_at > o.created_at;
ALTER TABLE notifications DROP CONSTRAINT notifications_recipient_type_check;
ALTER TABLE notifications ADD CONSTRAINT notifications_recipient_type_check
    CHECK (recipient_type IN ('identity', 'requester', 'beneficiary'));
DROP INDEX notifications_approval;
DROP INDEX notifications_instance;
DROP INDEX notifications_once;
ALTER TABLE notifications ADD CONSTRAINT notifications_instance_id_address_key UNIQUE (instance_id, address);
ALTER TABLE notifications DROP COLUMN once_key;
ALTER TABLE notifications DROP COLUMN approval_id;
ALTER TABLE notifications ALTER COLUMN instance_id SET NOT NULL;
UPDATE request_instances SET status = 'canceled', ended_at = COALESCE(ended_at, updated_at)
    WHERE status IN ('awaiting_approval', 'denied', 'withdrawn', 'expired');
ALTER TABLE tasks DROP COLUMN approval_id;
ALTER TABLE request_instances DROP COLUMN approval_id;
DROP TABLE approval_steps;
DROP TABLE approvals;
