package database_test

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"gorm.io/gorm"

	. "github.com/provisor/provisor/database"
	"github.com/provisor/provisor/database/dbtest"
)

// A goroutine that holds a transaction and sends a statement through the
// pool gets ErrOutsideTx in test binaries (strict); in a server only a
// write or a second transaction fails (on SQLite's one writer they would
// wait for ever), while a read goes through and is logged once.
func TestStatementsOutsideTheirTransaction(t *testing.T) {
	t.Parallel()
	for _, dialect := range []string{SQLite, Postgres} {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			db := dbtest.Open(t, dialect)
			ctx := t.Context()
			if err := db.Gorm.Exec("CREATE TABLE guard_probe (name TEXT)").Error; err != nil {
				t.Fatal(err)
			}
			read := func(g *gorm.DB) error {
				var n int
				return g.WithContext(ctx).Raw("SELECT count(*) FROM guard_probe").Scan(&n).Error
			}
			write := func(g *gorm.DB) error {
				return g.WithContext(ctx).Exec("INSERT INTO guard_probe (name) VALUES ('x')").Error
			}
			inTx := func(fn func(tx *gorm.DB) error) error { return db.InTx(ctx, fn) }
			if err := read(db.Gorm); err != nil {
				t.Fatalf("a read outside any transaction: %v", err)
			}
			if err := inTx(func(tx *gorm.DB) error { return errors.Join(read(tx), write(tx)) }); err != nil {
				t.Fatalf("statements through the transaction: %v", err)
			}
			for name, fn := range map[string]func(tx *gorm.DB) error{
				"read":               func(*gorm.DB) error { return read(db.Gorm) },
				"write":              func(*gorm.DB) error { return write(db.Gorm) },
				"second transaction": func(*gorm.DB) error { return inTx(func(*gorm.DB) error { return nil }) },
			} {
				if err := inTx(fn); !errors.Is(err, ErrOutsideTx) {
					t.Errorf("strict, %s through the pool inside a transaction: %v, want ErrOutsideTx", name, err)
				}
			}

			var logged bytes.Buffer
			Lenient(db, slog.New(slog.NewTextHandler(&logged, nil)))
			for range 2 {
				if err := inTx(func(*gorm.DB) error { return read(db.Gorm) }); err != nil {
					t.Errorf("lenient, a read through the pool inside a transaction: %v", err)
				}
			}
			if n := strings.Count(logged.String(), "a read went through the pool"); n != 1 {
				t.Errorf("lenient read logged %d times, want once: %s", n, logged.String())
			}
			if err := inTx(func(*gorm.DB) error { return write(db.Gorm) }); !errors.Is(err, ErrOutsideTx) {
				t.Errorf("lenient, a write through the pool inside a transaction: %v, want ErrOutsideTx", err)
			}
		})
	}
}
