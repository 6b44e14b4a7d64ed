-- Approvals: a request whose entitlements need an approval waits for it.
-- An approval belongs to a run (a direct submission, which waits in status
-- awaiting_approval with no jobs) or to a task (whose request is approved
-- once; its runs then start without a new approval). Its steps go stage by
-- stage: every step of a stage must be approved before the next stage's
-- steps open; one denial ends the approval.
CREATE TABLE approvals (
    id                    uuid PRIMARY KEY,
    instance_id           uuid REFERENCES request_instances (id) ON DELETE CASCADE,
    task_id               uuid REFERENCES tasks (id) ON DELETE SET NULL,
    task_name             text NOT NULL DEFAULT '',
    request               text NOT NULL,
    type                  text NOT NULL,
    beneficiary_type      text NOT NULL,
    beneficiary_id        text NOT NULL,
    beneficiary_name      text NOT NULL,
    connector_id          text NOT NULL,
    connector_name        text NOT NULL DEFAULT '',
    entitlement_names     text NOT NULL DEFAULT '[]',
    requested_by          text NOT NULL,
    requester_identity_id uuid REFERENCES identities (id) ON DELETE SET NULL,
    status                text NOT NULL CHECK (status IN ('pending', 'approved', 'denied', 'withdrawn', 'expired')),
    created_at            timestamptz NOT NULL,
    expires_at            timestamptz NOT NULL,
    decided_at            timestamptz,
    decided_by            text NOT NULL DEFAULT '',
    comment               text NOT NULL DEFAULT '',
    CHECK (instance_id IS NOT NULL OR task_id IS NOT NULL OR status <> 'pending')
);
CREATE INDEX approvals_pending ON approvals (expires_at) WHERE status = 'pending';
CREATE INDEX approvals_requested_by ON approvals (requested_by, created_at DESC);
CREATE INDEX approvals_created ON approvals (created_at DESC, id DESC);
CREATE INDEX approvals_instance ON approvals (instance_id);
CREATE INDEX approvals_task ON approvals (task_id);

-- A step is decided by the owner of the entitlements it names (an
-- identity, or any member of a workgroup) or by an admin. Waiting steps
-- belong to a later stage; closed ones were left open when the approval
-- ended otherwise.
CREATE TABLE approval_steps (
    id                    uuid PRIMARY KEY,
    approval_id           uuid NOT NULL REFERENCES approvals (id) ON DELETE CASCADE,
    seq                   integer NOT NULL,
    stage                 integer NOT NULL,
    kind                  text NOT NULL CHECK (kind IN ('owner', 'admin')),
    approver_identity_id  uuid REFERENCES identities (id) ON DELETE SET NULL,
    approver_workgroup_id uuid REFERENCES workgroups (id) ON DELETE SET NULL,
    approver_name         text NOT NULL DEFAULT '',
    entitlements          text NOT NULL DEFAULT '',
    reason                text NOT NULL DEFAULT '',
    status                text NOT NULL CHECK (status IN ('waiting', 'pending', 'approved', 'denied', 'closed')),
    decided_by            text NOT NULL DEFAULT '',
    decided_by_name       text NOT NULL DEFAULT '',
    comment               text NOT NULL DEFAULT '',
    decided_at            timestamptz,
    UNIQUE (approval_id, seq)
);
CREATE INDEX approval_steps_open ON approval_steps (kind, approval_id) WHERE status = 'pending';

-- The approval a run went ahead under (its own, or its task's), and the
-- approval that covers (or is asked for) a task's request.
ALTER TABLE request_instances ADD COLUMN approval_id uuid REFERENCES approvals (id) ON DELETE SET NULL;
ALTER TABLE tasks ADD COLUMN approval_id uuid REFERENCES approvals (id) ON DELETE SET NULL;

-- The outbox carries approval emails too: a request to decide, to each
-- approver of a step, and a task approval's decision, to its requester.
-- once_key makes every write idempotent whatever the message is about:
-- "<run> <address>" for a run's email, "ask <step> <address>" and
-- "decision <approval> <address>" for the others.
ALTER TABLE notifications ALTER COLUMN instance_id DROP NOT NULL;
ALTER TABLE notifications ADD COLUMN approval_id uuid REFERENCES approvals (id) ON DELETE CASCADE;
ALTER TABLE notifications ADD COLUMN once_key text;
UPDATE notifications SET once_key = instance_id::text || ' ' || address;
ALTER TABLE notifications ALTER COLUMN once_key SET NOT NULL;
ALTER TABLE notifications DROP CONSTRAINT notifications_instance_id_address_key;
CREATE UNIQUE INDEX notifications_once ON notifications (once_key);
CREATE INDEX notifications_instance ON notifications (instance_id);
CREATE INDEX notifications_approval ON notifications (approval_id) WHERE approval_id IS NOT NULL;
ALTER TABLE notifications DROP CONSTRAINT notifications_recipient_type_check;
ALTER TABLE notifications ADD CONSTRAINT notifications_recipient_type_check
    CHECK (recipient_type IN ('identity', 'requester', 'beneficiary', 'approver'));
ALTER TABLE notifications ADD CONSTRAINT notifications_about CHECK (instance_id IS NOT NULL OR approval_id IS NOT NULL);
