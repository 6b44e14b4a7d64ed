-- Entitlements of an Entra ID connector are groups, directory roles or app
-- roles. Until now the two roles were stored as kind 'role', told apart by
-- their external ids ("role:{roleDefinitionId}", "approle:{spId}:{appRoleId}");
-- they get kinds of their own. 'role' stays for other systems' roles.
ALTER TABLE entitlements DROP CONSTRAINT IF EXISTS entitlements_kind_check;
ALTER TABLE entitlements ADD CONSTRAINT entitlements_kind_check CHECK (kind IN ('group', 'role', 'directory_role', 'app_role'));

UPDATE entitlements SET kind = 'directory_role'
WHERE external_id LIKE 'role:%' AND connector_id IN (SELECT id FROM connectors WHERE type = 'entra');
UPDATE entitlements SET kind = 'app_role'
WHERE external_id LIKE 'approle:%' AND connector_id IN (SELECT id FROM connectors WHERE type = 'entra');
