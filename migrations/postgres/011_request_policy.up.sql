-- Who may ask for what. A requester asks for themselves; for others only
-- as the manager of their direct reports, the owner of a workgroup, or in
-- the helpdesk role. Entitlements carry the policy of their grants: an
-- owner (an identity or a workgroup), a sensitivity, the approval a grant
-- needs (kept now, enforced once approvals exist), the longest time a
-- grant may last, and whether requesters may ask for it at all.
ALTER TABLE users DROP CONSTRAINT IF EXISTS users_role_check;
ALTER TABLE users ADD CONSTRAINT users_role_check CHECK (role IN ('requester', 'helpdesk', 'admin'));

-- An API client may act for a portal user: its requests and tasks are then
-- checked as that user's.
ALTER TABLE api_clients ADD COLUMN user_id uuid REFERENCES users (id) ON DELETE CASCADE;

ALTER TABLE identities ADD COLUMN manager_id uuid REFERENCES identities (id) ON DELETE SET NULL;
CREATE INDEX identities_manager ON identities (manager_id) WHERE manager_id IS NOT NULL;

ALTER TABLE workgroups ADD COLUMN owner_id uuid REFERENCES identities (id) ON DELETE SET NULL;
CREATE INDEX workgroups_owner ON workgroups (owner_id) WHERE owner_id IS NOT NULL;

ALTER TABLE entitlements
    ADD COLUMN owner_identity_id  uuid REFERENCES identities (id) ON DELETE SET NULL,
    ADD COLUMN owner_workgroup_id uuid REFERENCES workgroups (id) ON DELETE SET NULL,
    ADD COLUMN sensitivity        text NOT NULL DEFAULT 'normal' CHECK (sensitivity IN ('normal', 'privileged')),
    ADD COLUMN approval           text NOT NULL DEFAULT 'none' CHECK (approval IN ('none', 'owner', 'admin', 'owner_then_admin')),
    ADD COLUMN max_duration       text NOT NULL DEFAULT '',
    ADD COLUMN requestable        boolean NOT NULL DEFAULT true,
    ADD COLUMN policy_updated_at  timestamptz,
    ADD CONSTRAINT entitlements_one_owner CHECK (owner_identity_id IS NULL OR owner_workgroup_id IS NULL);

-- The group whose members sign in as portal admins is privileged, needs an
-- admin's approval and is not requestable.
UPDATE entitlements e SET sensitivity = 'privileged', approval = 'admin', requestable = false
FROM connectors c
WHERE c.id = e.connector_id AND coalesce(c.settings->>'admin_group_dn', '') <> ''
  AND lower(replace(e.external_id, ', ', ',')) = lower(replace(c.settings->>'admin_group_dn', ', ', ','));
