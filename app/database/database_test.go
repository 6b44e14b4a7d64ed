package database_test

import (
	"testing"

	"gorm.io/gorm"

	"github.com/provisor/provisor/app/database"
	"github.com/provisor/provisor/app/database/dbtest"
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
