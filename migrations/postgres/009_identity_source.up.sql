-- An identity a directory import made belongs to its connector by id, so
-- that renaming the connector keeps its identities its own; source stays
-- the name shown, and follows the connector's name at its next import.
-- Identities imported before this version are found by that name; local
-- identities keep NULL.
ALTER TABLE identities ADD COLUMN source_connector_id text;

UPDATE identities SET source_connector_id = (SELECT c.id FROM connectors c WHERE c.name = identities.source)
WHERE source <> 'local' OR external_id <> '';

CREATE INDEX identities_source_connector ON identities (source_connector_id) WHERE source_connector_id IS NOT NULL;
