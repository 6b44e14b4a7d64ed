UPDATE entitlements SET kind = 'role' WHERE kind IN ('directory_role', 'app_role');
ALTER TABLE entitlements ADD COLUMN kind_old text NOT NULL DEFAULT 'group' CHECK (kind_old IN ('group', 'role'));
UPDATE entitlements SET kind_old = kind;
ALTER TABLE entitlements DROP COLUMN kind;
ALTER TABLE entitlements RENAME COLUMN kind_old TO kind;
