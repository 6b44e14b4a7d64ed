DROP INDEX IF EXISTS identities_source_external;
DROP TABLE IF EXISTS imports;
