DROP TABLE provisioning_logs;
