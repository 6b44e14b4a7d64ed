-- Approvals: a request whose entitlements need an approval waits for it.
-- An approval belongs to a run (a direct submission, which waits in status
-- awaiting_approval with no jobs) or to a task (whose request is approved
-- once; its runs then start without a new approval). Its steps go stage by
-- stage: every step of a stage must be approved before the next stage's
-- steps open; one denial ends the approval.
CREATE TABLE approvals (
    id                    text PRIMARY KEY,
    instance_id           text REFERENCES request_instances (id) ON DELETE CASCADE,
    task_id               text REFERENCES tasks (id) ON DELETE SET NULL,
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
    requester_identity_id text REFERENCES identities (id) ON DELETE SET NULL,
    status                text NOT NULL CHECK (status IN ('pending', 'approved', 'denied', 'withdrawn', 'expired')),
    created_at            datetime NOT NULL,
    expires_at            datetime NOT NULL,
    decided_at            datetime,
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
    id                    text PRIMARY KEY,
    approval_id           text NOT NULL REFERENCES approvals (id) ON DELETE CASCADE,
    seq                   integer NOT NULL,
    stage                 integer NOT NULL,
    kind                  text NOT NULL CHECK (kind IN ('owner', 'admin')),
    approver_identity_id  text REFERENCES identities (id) ON DELETE SET NULL,
    approver_workgroup_id text REFERENCES workgroups (id) ON DELETE SET NULL,
    approver_name         text NOT NULL DEFAULT '',
    entitlements          text NOT NULL DEFAULT '',
    reason                text NOT NULL DEFAULT '',
    status                text NOT NULL CHECK (status IN ('waiting', 'pending', 'approved', 'denied', 'closed')),
    decided_by            text NOT NULL DEFAULT '',
    decided_by_name       text NOT NULL DEFAULT '',
    comment               text NOT NULL DEFAULT '',
    decided_at            datetime,
    UNIQUE (approval_id, seq)
);
CREATE INDEX approval_steps_open ON approval_steps (kind, approval_id) WHERE status = 'pending';

-- The approval a run went ahead under (its own, or its task's), and the
-- approval that covers (or is asked for) a task's request.
ALTER TABLE request_instances ADD COLUMN approval_id text REFERENCES approvals (id) ON DELETE SET NULL;
ALTER TABLE tasks ADD COLUMN approval_id text REFERENCES approvals (id) ON DELETE SET NULL;

-- The outbox carries approval emails too: a request to decide, to each
-- approver of a step, and a task approval's decision, to its requester.
-- once_key makes every write idempotent whatever the message is about:
-- "<run> <address>" for a run's email, "ask <step> <address>" and
-- "decision <approval> <address>" for the others.
--
-- SQLite changes neither a column's NOT NULL nor a table's UNIQUE or CHECK
-- in place: the table is made anew. Its bodies move first into a table of
-- their own, since dropping the old outbox would delete them with it.
CREATE TABLE notifications_new (
    id              text PRIMARY KEY,
    instance_id     text REFERENCES request_instances (id) ON DELETE CASCADE,
    approval_id     text REFERENCES approvals (id) ON DELETE CASCADE,
    once_key        text NOT NULL,
    recipient_type  text NOT NULL CHECK (recipient_type IN ('identity', 'requester', 'beneficiary', 'approver')),
    recipient       text NOT NULL,
    address         text NOT NULL,
    subject         text NOT NULL,
    message_id      text NOT NULL UNIQUE,
    status          text NOT NULL CHECK (status IN ('held', 'queued', 'sending', 'sent', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,
    claimed_by      integer,
    last_error      text NOT NULL DEFAULT '',
    created_at      datetime NOT NULL,
    queued_at       datetime NOT NULL,
    next_attempt_at datetime,
    last_attempt_at datetime,
    sent_at         datetime,
    updated_at      datetime NOT NULL,
    body_id         text,
    CHECK (instance_id IS NOT NULL OR approval_id IS NOT NULL)
);
INSERT INTO notifications_new (id, instance_id, once_key, recipient_type, recipient, address, subject, message_id,
        status, attempts, claimed_by, last_error, created_at, queued_at, next_attempt_at, last_attempt_at, sent_at,
        updated_at, body_id)
    SELECT id, instance_id, instance_id || ' ' || address, recipient_type, recipient, address, subject, message_id,
        status, attempts, claimed_by, last_error, created_at, queued_at, next_attempt_at, last_attempt_at, sent_at,
        updated_at, body_id
    FROM notifications;
CREATE TABLE notification_bodies_new (
    notification_id text PRIMARY KEY REFERENCES notifications_new (id) ON DELETE CASCADE,
    body_text       text NOT NULL,
    body_html       text NOT NULL
);
INSERT INTO notification_bodies_new SELECT notification_id, body_text, body_html FROM notification_bodies;
DROP TABLE notification_bodies;
DROP TABLE notifications;
ALTER TABLE notifications_new RENAME TO notifications;
ALTER TABLE notification_bodies_new RENAME TO notification_bodies;
CREATE INDEX notifications_created ON notifications (created_at DESC, id DESC);
CREATE INDEX notifications_unsent ON notifications (status, created_at DESC) WHERE status <> 'sent';
CREATE UNIQUE INDEX notifications_once ON notifications (once_key);
CREATE INDEX notifications_instance ON notifications (instance_id);
CREATE INDEX notifications_approval ON notifications (approval_id) WHERE approval_id IS NOT NULL;
