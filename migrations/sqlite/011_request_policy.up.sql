-- Who may ask for what. A requester asks for themselves; for others only
-- as the manager of their direct reports, the owner of a workgroup, or in
-- the helpdesk role. Entitlements carry the policy of their grants: an
-- owner (an identity or a workgroup), a sensitivity, the approval a grant
-- needs (kept now, enforced once approvals exist), the longest time a
-- grant may last, and whether requesters may ask for it at all.

-- SQLite cannot change a CHECK constraint: the role moves to a new column
-- with the new check (a column's own check goes with it when it is dropped).
ALTER TABLE users ADD COLUMN role_new text NOT NULL DEFAULT 'requester' CHECK (role_new IN ('requester', 'helpdesk', 'admin'));
UPDATE users SET role_new = role;
ALTER TABLE users DROP COLUMN role;
ALTER TABLE users RENAME COLUMN role_new TO role;

-- An API client may act for a portal user: its requests and tasks are then
-- checked as that user's.
ALTER TABLE api_clients ADD COLUMN user_id text REFERENCES users (id) ON DELETE CASCADE;

ALTER TABLE identities ADD COLUMN manager_id text REFERENCES identities (id) ON DELETE SET NULL;
CREATE INDEX identities_manager ON identities (manager_id) WHERE manager_id IS NOT NULL;

ALTER TABLE workgroups ADD COLUMN owner_id text REFERENCES identities (id) ON DELETE SET NULL;
CREATE INDEX workgroups_owner ON workgroups (owner_id) WHERE owner_id IS NOT NULL;

ALTER TABLE entitlements ADD COLUMN owner_identity_id text REFERENCES identities (id) ON DELETE SET NULL;
ALTER TABLE entitlements ADD COLUMN owner_workgroup_id text REFERENCES workgroups (id) ON DELETE SET NULL;
ALTER TABLE entitlements ADD COLUMN sensitivity text NOT NULL DEFAULT 'normal' CHECK (sensitivity IN ('normal', 'privileged'));
ALTER TABLE entitlements ADD COLUMN approval text NOT NULL DEFAULT 'none' CHECK (approval IN ('none', 'owner', 'admin', 'owner_then_admin'));
ALTER TABLE entitlements ADD COLUMN max_duration text NOT NULL DEFAULT '';
ALTER TABLE entitlements ADD COLUMN requestable integer NOT NULL DEFAULT 1;
ALTER TABLE entitlements ADD COLUMN policy_updated_at datetime;

-- The group whose members sign in as portal admins is privileged, needs an
-- admin's approval and is not requestable.
UPDATE entitlements SET sensitivity = 'privileged', approval = 'admin', requestable = 0
WHERE EXISTS (SELECT 1 FROM connectors c WHERE c.id = entitlements.connector_id
    AND coalesce(json_extract(c.settings, '$.admin_group_dn'), '') <> ''
    AND lower(replace(entitlements.external_id, ', ', ',')) = lower(replace(json_extract(c.settings, '$.admin_group_dn'), ', ', ',')));
