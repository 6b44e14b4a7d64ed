-- Provisioning log entries are written in the transaction of the jobs'
-- results as one row of this table per result batch: the batch's entries
-- as one JSON array, in the order of provlog's insert columns. Writing one
-- row there keeps the jobs' transaction, which holds the database's only
-- write turn, short; expanding it into provisioning_logs (a row per entry,
-- its indexes and the full-text table's trigger) is done apart, in
-- batches, a few seconds later, and before any read of the log, so that a
-- search, a page or a download always sees every entry committed before
-- it.

CREATE TABLE provisioning_log_pending (
    id integer PRIMARY KEY,
    at datetime NOT NULL,
    entries text NOT NULL
);
