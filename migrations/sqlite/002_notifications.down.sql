DROP TABLE IF EXISTS notification_bodies;
DROP TABLE IF EXISTS notifications;
