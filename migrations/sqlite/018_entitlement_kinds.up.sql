-- Entitlements of an Entra ID connector are groups, directory roles or app
-- roles. Until now the two roles were stored as kind 'role', told apart by
-- their external ids ("role:{roleDefinitionId}", "approle:{spId}:{appRoleId}");
-- they get kinds of their own. 'role' stays for other systems' roles.

-- SQLite cannot change a CHECK constraint: the kind moves to a new column
-- with the new check (a column's own check goes with it when it is dropped).
ALTER TABLE entitlements ADD COLUMN kind_new text NOT NULL DEFAULT 'group' CHECK (kind_new IN ('group', 'role', 'directory_role', 'app_role'));
UPDATE entitlements SET kind_new = kind;
ALTER TABLE entitlements DROP COLUMN kind;
ALTER TABLE entitlements RENAME COLUMN kind_new TO kind;

UPDATE entitlements SET kind = 'directory_role'
WHERE external_id LIKE 'role:%' AND connector_id IN (SELECT id FROM connectors WHERE type = 'entra');
UPDATE entitlements SET kind = 'app_role'
WHERE external_id LIKE 'approle:%' AND connector_id IN (SELECT id FROM connectors WHERE type = 'entra');
