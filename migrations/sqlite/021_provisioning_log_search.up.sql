-- A search of the provisioning log by any identifier, in part and in any
-- case, reads a full-text index of trigrams instead of every entry: a
-- LIKE '%term%' on the search column scanned the whole table (seconds for
-- a million entries). The FTS5 table takes its text from
-- provisioning_logs (external content, by rowid) and keeps no positions
-- (detail=none): the index only narrows the entries down, and LIKE checks
-- each of them against the column itself. Triggers keep it in step with
-- the table; the B-tree index on search, of no use to a search in part,
-- is no longer written with every entry.
--
-- The index follows the table's rowids. A VACUUM may renumber them (the
-- table's key is not an integer); after one, rebuild the index with
--   INSERT INTO provisioning_logs_search(provisioning_logs_search) VALUES ('rebuild');

DROP INDEX provisioning_logs_search;

CREATE VIRTUAL TABLE provisioning_logs_search USING fts5(
    search,
    content = 'provisioning_logs',
    content_rowid = 'rowid',
    detail = none,
    tokenize = 'trigram'
);

INSERT INTO provisioning_logs_search(provisioning_logs_search) VALUES ('rebuild');

CREATE TRIGGER provisioning_logs_search_insert AFTER INSERT ON provisioning_logs BEGIN
    INSERT INTO provisioning_logs_search(rowid, search) VALUES (new.rowid, new.search);
END;

CREATE TRIGGER provisioning_logs_search_delete AFTER DELETE ON provisioning_logs BEGIN
    INSERT INTO provisioning_logs_search(provisioning_logs_search, rowid, search) VALUES ('delete', old.rowid, old.search);
END;

CREATE TRIGGER provisioning_logs_search_update AFTER UPDATE OF search ON provisioning_logs BEGIN
    INSERT INTO provisioning_logs_search(provisioning_logs_search, rowid, search) VALUES ('delete', old.rowid, old.search);
    INSERT INTO provisioning_logs_search(rowid, search) VALUES (new.rowid, new.search);
END;
