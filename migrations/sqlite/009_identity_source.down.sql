DROP INDEX IF EXISTS identities_source_connector;
ALTER TABLE identities DROP COLUMN source_connector_id;
