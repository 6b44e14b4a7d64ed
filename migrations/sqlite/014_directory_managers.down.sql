ALTER TABLE identities DROP COLUMN manager_source_connector_id;
ALTER TABLE accounts DROP COLUMN manager_external_id;
