package database_test

import (
	"testing"

	"gorm.io/gorm"

	"github.com/provisor/provisor/database"
	"github.com/provisor/provisor/database/dbtest"
)

// Only the relaxed pool, and a transaction that asks for it, commit without
// waiting for the disk; everything else is durable at commit.
func TestOnlyRelaxedWritesCommitAsynchronously(t *testing.T) {
	t.Parallel()
	db := dbtest.Open(t, database.Postgres)
	setting := func(g *gorm.DB) string {
		t.Helper()
		var v string
		if err := g.Raw("SHOW synchronous_commit").Scan(&v).Error; err != nil {
			t.Fatal(err)
		}
		return v
	}
	if got := setting(db.Gorm); got != "on" {
		t.Errorf("main pool: synchronous_commit = %s, want on", got)
	}
	if got := setting(db.Relaxed); got != "off" {
		t.Errorf("relaxed pool: synchronous_commit = %s, want off", got)
	}
	var inTx, after string
	if err := db.InTxAsync(t.Context(), func(tx *gorm.DB) error {
		inTx = setting(tx)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	after = setting(db.Gorm)
	if inTx != "off" || after != "on" {
		t.Errorf("InTxAsync: %s inside the transaction, %s after it; want off, then on", inTx, after)
	}

	lite := dbtest.Open(t, database.SQLite)
	if lite.Relaxed != lite.Gorm {
		t.Error("on SQLite, Relaxed is not the one connection pool")
	}
}

// On SQLite, reads outside a transaction go to the read-only connections;
// writes, and everything inside a transaction, to the writer.
func TestSQLiteReadsGoToReadOnlyConnections(t *testing.T) {
	t.Parallel()
	db := dbtest.Open(t, database.SQLite)
	queryOnly := func(g *gorm.DB) int {
		t.Helper()
		var v int
		if err := g.Raw("SELECT query_only FROM pragma_query_only()").Scan(&v).Error; err != nil {
			t.Fatal(err)
		}
		return v
	}
	if got := queryOnly(db.Gorm); got != 1 {
		t.Errorf("a read outside a transaction: query_only = %d, want 1", got)
	}
	var inTx int
	if err := db.InTx(t.Context(), func(tx *gorm.DB) error {
		inTx = queryOnly(tx)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if inTx != 0 {
		t.Errorf("a read inside a transaction: query_only = %d, want 0", inTx)
	}
	var n int
	if err := db.Gorm.Raw("WITH d AS (SELECT 1) INSERT INTO audit_events (at, actor, action, details) SELECT '2026-01-01T00:00:00Z', 'a', 'b', '{}' FROM d RETURNING 1").Scan(&n).Error; err != nil || n != 1 {
		t.Errorf("a write that returns rows: %d, %v; want 1, nil", n, err)
	}
}
