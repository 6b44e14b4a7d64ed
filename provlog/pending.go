package provlog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"gorm.io/gorm"

	"github.com/provisor/provisor/database"
)

// ExpandRows is how many rows of provisioning_log_pending (each the
// entries of one result transaction) one transaction of Expand moves:
// enough that the log's indexes are written in bulk, few enough that the
// transaction, on SQLite the database's only writer, stays short.
const ExpandRows = 20

// expandPostgres moves pending rows into the log in one statement: the
// rows are deleted and their entries inserted together. The subquery takes
// the rows older than the first parameter, the second parameter of them,
// locked (%s: SKIP LOCKED, or nothing to wait for another process moving
// them).
var expandPostgres = "WITH b AS (DELETE FROM provisioning_log_pending WHERE id IN " +
	"(SELECT id FROM provisioning_log_pending WHERE at <= ? ORDER BY id LIMIT ? FOR UPDATE %s) RETURNING entries) " +
	expandSelect("CAST(r ->> %d AS %t)", "b, jsonb_array_elements(CAST(b.entries AS jsonb)) AS r")

// expandSQLite inserts the entries of the pending rows of the ids given.
// Each entry is turned into the database's binary JSON once
// (MATERIALIZED), not once per column.
var expandSQLite = "WITH r AS MATERIALIZED (SELECT jsonb(j.value) AS v FROM provisioning_log_pending p, json_each(p.entries) j " +
	"WHERE p.id IN ? ORDER BY p.id, j.key) " + expandSelect("v ->> %d", "r")

// Expand moves the entries written before `before` from
// provisioning_log_pending into provisioning_logs, ExpandRows rows a
// transaction, and returns how many entries it moved. Two processes may
// expand at once: each row is moved by one of them, in the transaction
// that deletes it.
func (l *Log) Expand(ctx context.Context, before time.Time) (int64, error) {
	return l.expand(ctx, before, 0)
}

// How expand goes about rows another process is moving and about other
// writers.
const (
	// expandWait waits for the rows another process is moving, so that
	// they are in the log when expand returns.
	expandWait = 1 << iota
	// expandYield stops when the process runs jobs (Options.BusyFunc) or,
	// on SQLite, when other transactions wait for the write turn.
	expandYield
)

// expand is Expand, in the mode of the flags given.
func (l *Log) expand(ctx context.Context, before time.Time, mode int) (int64, error) {
	var total int64
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		if mode&expandYield != 0 {
			if l.busy() {
				return total, nil
			}
			if l.store.Dialect == database.SQLite {
				if n, err := l.store.Waiting(ctx); err != nil || n > 0 {
					return total, err
				}
			}
		}
		n, more, err := l.expandRows(ctx, before, mode&expandWait != 0)
		total += n
		if err != nil {
			return total, fmt.Errorf("provlog: expand pending entries: %w", err)
		}
		if !more {
			return total, nil
		}
	}
}

// expandRows moves up to ExpandRows pending rows in one transaction and
// returns the entries it moved, and whether more may be left.
func (l *Log) expandRows(ctx context.Context, before time.Time, wait bool) (entries int64, more bool, err error) {
	// Nothing to move is found with a read, without a write transaction
	// (on SQLite, without the write turn): the expander asks every second,
	// mostly for nothing.
	var found []int64
	if err := l.db.WithContext(ctx).Raw("SELECT id FROM provisioning_log_pending WHERE at <= ? LIMIT 1", before.UTC()).
		Scan(&found).Error; err != nil || len(found) == 0 {
		return 0, false, err
	}
	if l.store.Dialect == database.Postgres {
		lock := "SKIP LOCKED"
		if wait {
			lock = ""
		}
		// One statement is its own transaction.
		err := l.store.InTxAsync(ctx, func(tx *gorm.DB) error {
			res := tx.Exec(fmt.Sprintf(expandPostgres, lock), before.UTC(), ExpandRows)
			entries = res.RowsAffected
			return res.Error
		})
		if err != nil {
			return 0, false, err
		}
		// The statement counts entries, not rows: the next round's read
		// says whether any row is left.
		return entries, entries > 0, nil
	}
	err = l.store.InTx(ctx, func(tx *gorm.DB) error {
		var ids []int64
		if err := tx.Raw("SELECT id FROM provisioning_log_pending WHERE at <= ? ORDER BY id LIMIT ?", before.UTC(), ExpandRows).
			Scan(&ids).Error; err != nil || len(ids) == 0 {
			return err
		}
		more = len(ids) == ExpandRows
		res := tx.Exec(expandSQLite, ids)
		if res.Error != nil {
			return res.Error
		}
		entries = res.RowsAffected
		return tx.Exec("DELETE FROM provisioning_log_pending WHERE id IN ?", ids).Error
	})
	if err != nil {
		return 0, false, err
	}
	return entries, more, nil
}

// flush moves every pending entry into the log, waiting for those another
// process is moving: a read that follows sees every entry committed
// before it. With nothing pending it costs one short read (expandRows).
func (l *Log) flush(ctx context.Context) error {
	_, err := l.expand(ctx, time.Now().Add(time.Hour), expandWait)
	return err
}

// ExpandEvery, ExpandAfter and ExpandBy are how the process's expander
// runs: it wakes every ExpandEvery and moves the entries written at least
// ExpandAfter before. It gives way to the jobs: while the process runs
// connector jobs (Options.BusyFunc), or on SQLite while other
// transactions wait for the write turn, it moves only the entries older
// than ExpandBy. A burst of jobs writes its results without the log's
// indexes, and the entries reach them in bulk when the burst is over, or
// a minute later at most, or at once when someone reads the log.
const (
	ExpandEvery = time.Second
	ExpandAfter = 5 * time.Second
	ExpandBy    = time.Minute
)

// RunExpander moves pending entries into the log every ExpandEvery until
// ctx ends (see ExpandAfter and ExpandBy).
func (l *Log) RunExpander(ctx context.Context, logger *slog.Logger) {
	t := time.NewTicker(ExpandEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		_, err := l.Expand(ctx, now.Add(-ExpandBy))
		if err == nil && !l.busy() {
			_, err = l.expand(ctx, now.Add(-ExpandAfter), expandYield)
		}
		if err != nil && !errors.Is(err, context.Canceled) && logger != nil {
			// The entries stay pending; the next round, or a read, moves them.
			logger.Warn("provisioning log: expand pending entries", "err", err)
		}
	}
}
