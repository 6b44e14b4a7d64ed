DROP TRIGGER provisioning_logs_search_update;
DROP TRIGGER provisioning_logs_search_delete;
DROP TRIGGER provisioning_logs_search_insert;
DROP TABLE provisioning_logs_search;
CREATE INDEX provisioning_logs_search ON provisioning_logs (search);
