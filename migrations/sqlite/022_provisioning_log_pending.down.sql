DROP TABLE provisioning_log_pending;
