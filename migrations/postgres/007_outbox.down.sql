DROP INDEX IF EXISTS notifications_unsent;
CREATE INDEX notifications_status ON notifications (status, created_at DESC);

INSERT INTO notification_bodies (notification_id, body_text, body_html)
SELECT n.id, b.body_text, b.body_html
FROM notifications n JOIN notification_bodies b ON b.notification_id = n.body_id;
ALTER TABLE notifications DROP COLUMN body_id;
