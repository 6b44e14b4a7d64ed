ALTER TABLE entitlements
    DROP CONSTRAINT IF EXISTS entitlements_one_owner,
    DROP COLUMN policy_updated_at,
    DROP COLUMN requestable,
    DROP COLUMN max_duration,
    DROP COLUMN approval,
    DROP COLUMN sensitivity,
    DROP COLUMN owner_workgroup_id,
    DROP COLUMN owner_identity_id;
DROP INDEX IF EXISTS workgroups_owner;
ALTER TABLE workgroups DROP COLUMN owner_id;
DROP INDEX IF EXISTS identities_manager;
ALTER TABLE identities DROP COLUMN manager_id;
ALTER TABLE api_clients DROP COLUMN user_id;
UPDATE users SET role = 'requester' WHERE role = 'helpdesk';
ALTER TABLE users DROP CONSTRAINT IF EXISTS users_role_check;
ALTER TABLE users ADD CONSTRAINT users_role_check CHECK (role IN ('requester', 'admin'));
