-- Managers read from a directory. An account keeps the manager its
-- directory states (the manager's external id, a DN, as the import wrote
-- it; '' for none), so a manager imported after its reports is found by a
-- later import. An identity keeps which connector's import set its
-- manager: NULL when it was set by hand (portal, API) or never set. An
-- import replaces a manager set by hand when its directory states one, and
-- clears only a manager it set itself.
ALTER TABLE accounts ADD COLUMN manager_external_id text NOT NULL DEFAULT '';
ALTER TABLE identities ADD COLUMN manager_source_connector_id text;
