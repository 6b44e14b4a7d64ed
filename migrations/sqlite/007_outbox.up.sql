-- A run's email is the same for each of its recipients: its body is kept
-- once, in the notification_bodies row of the run's first message, and the
-- other messages name that row in body_id. NULL means the message has a
-- body row of its own (every message written before this version).
-- Messages share a body only within one run, and a run's messages are
-- deleted together, so the row outlives every message that reads it.
ALTER TABLE notifications ADD COLUMN body_id text;

-- The Outbox page filters by status, and every status it filters by but
-- "sent" is rare: only messages not yet sent are indexed. Recording a
-- message as sent then removes its entry instead of moving it, and the
-- statements that send and record messages, which look them up by id,
-- are no longer planned through the status index, which made each of
-- them read every queued message.
DROP INDEX notifications_status;
CREATE INDEX notifications_unsent ON notifications (status, created_at DESC) WHERE status <> 'sent';
