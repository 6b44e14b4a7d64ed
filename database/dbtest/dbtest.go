// Package dbtest gives tests a fresh, migrated database of either dialect:
// a SQLite file in the test's temporary folder, or a new database on the
// PostgreSQL server named by PROVISOR_TEST_POSTGRES (default
// postgres://postgres@127.0.0.1:5432/postgres). A missing PostgreSQL server
// fails the test: it is never skipped quietly.
package dbtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/provisor/provisor/database"
)

// Dialects are the dialects every store test runs on.
var Dialects = []string{database.SQLite, database.Postgres}

// ServerURL is the PostgreSQL server tests create their databases on.
func ServerURL() string {
	if u := os.Getenv("PROVISOR_TEST_POSTGRES"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
}

// NewPostgres creates an empty database for t and returns its URL. The
// database is dropped when the test ends.
func NewPostgres(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, ServerURL())
	if err != nil {
		t.Fatalf("dbtest: PostgreSQL is needed at %s (set PROVISOR_TEST_POSTGRES, or start it with "+
			"'pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start'): %v", ServerURL(), err)
	}
	defer admin.Close(ctx)
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := "provisor_test_" + hex.EncodeToString(b)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("dbtest: create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, ServerURL())
		if err != nil {
			t.Logf("dbtest: drop %s: %v", name, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Logf("dbtest: drop %s: %v", name, err)
		}
	})
	u, err := url.Parse(ServerURL())
	if err != nil {
		t.Fatalf("dbtest: PROVISOR_TEST_POSTGRES: %v", err)
	}
	u.Path = "/" + name
	return u.String()
}

// Location returns what database.Open needs for a fresh database of
// dialect: a PostgreSQL URL (empty for SQLite) and a SQLite file path.
func Location(t testing.TB, dialect string) (databaseURL, sqlitePath string) {
	t.Helper()
	switch dialect {
	case database.SQLite:
		return "", filepath.Join(t.TempDir(), "provisor.db")
	case database.Postgres:
		return NewPostgres(t), ""
	}
	t.Fatalf("dbtest: unknown dialect %q", dialect)
	return "", ""
}

// Open returns a fresh, migrated database of dialect, closed when the test ends.
func Open(t testing.TB, dialect string) *database.DB {
	t.Helper()
	dbURL, path := Location(t, dialect)
	ctx := context.Background()
	db, err := database.Open(ctx, dbURL, path, nil)
	if err != nil {
		t.Fatalf("dbtest: open %s: %v", dialect, err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if err := db.Migrate(ctx); err != nil {
		t.Fatalf("dbtest: migrate %s: %v", dialect, err)
	}
	return db
}

// Each runs fn as a subtest once per dialect.
func Each(t *testing.T, fn func(t *testing.T, dialect string)) {
	t.Helper()
	for _, d := range Dialects {
		t.Run(d, func(t *testing.T) { fn(t, d) })
	}
}

// Name is a short random suffix for names that must not collide.
func Name(prefix string) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%s-%s", prefix, hex.EncodeToString(b))
}
