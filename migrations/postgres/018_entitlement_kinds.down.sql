UPDATE entitlements SET kind = 'role' WHERE kind IN ('directory_role', 'app_role');
ALTER TABLE entitlements DROP CONSTRAINT IF EXISTS entitlements_kind_check;
ALTER TABLE entitlements ADD CONSTRAINT entitlements_kind_check CHECK (kind IN ('group', 'role'));
