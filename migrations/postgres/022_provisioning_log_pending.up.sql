-- Provisioning log entries are written in the transaction of the jobs'
-- results as one row of this table per result batch: the batch's entries
-- as one JSON array, in the order of provlog's insert columns. Writing one
-- short row there costs the jobs' transaction little; expanding it into
-- provisioning_logs (a row per entry, its B-tree indexes and the trigram
-- index) is done apart, in batches, a few seconds later, and before any
-- read of the log, so that a search, a page or a download always sees
-- every entry committed before it.
--
-- The entries are short-lived here: no compression (STORAGE EXTERNAL keeps
-- a long array out of line without spending the jobs' time on it).

CREATE TABLE provisioning_log_pending (
    id bigserial PRIMARY KEY,
    at timestamptz NOT NULL,
    entries text NOT NULL
);

ALTER TABLE provisioning_log_pending ALTER COLUMN entries SET STORAGE EXTERNAL;
