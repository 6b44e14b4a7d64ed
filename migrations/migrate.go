// Package migrations holds Provisor's versioned SQL schema, one folder per
// dialect, embedded in the binary, and applies it.
//
// A file is named NNN_name.up.sql (and NNN_name.down.sql to reverse it). A
// released migration never changes: a new version is a new file.
package migrations

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"
)

//go:embed postgres/*.sql sqlite/*.sql
var files embed.FS

// Migration is one version of the schema.
type Migration struct {
	Version int
	Name    string
	Up      string
	Down    string
}

// Applied is a migration recorded in the database.
type Applied struct {
	Version   int
	Name      string
	AppliedAt time.Time
}

// List returns the migrations of a dialect ("postgres" or "sqlite") in
// version order.
func List(dialect string) ([]Migration, error) {
	entries, err := fs.ReadDir(files, dialect)
	if err != nil {
		return nil, fmt.Errorf("migrations: unknown dialect %q", dialect)
	}
	byVersion := map[int]*Migration{}
	for _, e := range entries {
		name := e.Name()
		base, dir, ok := strings.Cut(strings.TrimSuffix(name, ".sql"), ".")
		if !ok || (dir != "up" && dir != "down") {
			return nil, fmt.Errorf("migrations: %s/%s: name is not NNN_name.up.sql or NNN_name.down.sql", dialect, name)
		}
		num, label, _ := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if err != nil || v <= 0 {
			return nil, fmt.Errorf("migrations: %s/%s: version %q is not a positive number", dialect, name, num)
		}
		body, err := files.ReadFile(path.Join(dialect, name))
		if err != nil {
			return nil, err
		}
		m := byVersion[v]
		if m == nil {
			m = &Migration{Version: v, Name: label}
			byVersion[v] = m
		}
		if dir == "up" {
			m.Up = string(body)
		} else {
			m.Down = string(body)
		}
	}
	out := make([]Migration, 0, len(byVersion))
	for _, m := range byVersion {
		if m.Up == "" {
			return nil, fmt.Errorf("migrations: %s version %d has no .up.sql", dialect, m.Version)
		}
		out = append(out, *m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out, nil
}

const createTable = `CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    applied_at text NOT NULL
)`

// Status returns the migrations applied to db.
func Status(ctx context.Context, db *sql.DB) ([]Applied, error) {
	if _, err := db.ExecContext(ctx, createTable); err != nil {
		return nil, fmt.Errorf("migrations: create schema_migrations: %w", err)
	}
	rows, err := db.QueryContext(ctx, `SELECT version, name, applied_at FROM schema_migrations ORDER BY version`)
	if err != nil {
		return nil, fmt.Errorf("migrations: read schema_migrations: %w", err)
	}
	defer rows.Close()
	var out []Applied
	for rows.Next() {
		var a Applied
		var at string
		if err := rows.Scan(&a.Version, &a.Name, &at); err != nil {
			return nil, err
		}
		a.AppliedAt, _ = time.Parse(time.RFC3339Nano, at)
		out = append(out, a)
	}
	return out, rows.Err()
}

// Up applies every migration of the dialect that db has not seen, each in its
// own transaction, and returns the versions it applied. A database newer than
// this binary is refused rather than run with a schema the code does not know.
func Up(ctx context.Context, db *sql.DB, dialect string) ([]int, error) {
	all, err := List(dialect)
	if err != nil {
		return nil, err
	}
	applied, err := Status(ctx, db)
	if err != nil {
		return nil, err
	}
	done := map[int]bool{}
	for _, a := range applied {
		done[a.Version] = true
	}
	if n := len(applied); n > 0 && len(all) > 0 && applied[n-1].Version > all[len(all)-1].Version {
		return nil, fmt.Errorf("migrations: the database is at version %d, newer than this binary knows (%d); upgrade Provisor", applied[n-1].Version, all[len(all)-1].Version)
	}
	var ran []int
	for _, m := range all {
		if done[m.Version] {
			continue
		}
		if err := inTx(ctx, db, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, m.Up); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)`,
				m.Version, m.Name, time.Now().UTC().Format(time.RFC3339Nano))
			return err
		}); err != nil {
			return ran, fmt.Errorf("migrations: apply %s %03d_%s: %w", dialect, m.Version, m.Name, err)
		}
		ran = append(ran, m.Version)
	}
	return ran, nil
}

// Down reverses the last steps applied migrations, newest first.
func Down(ctx context.Context, db *sql.DB, dialect string, steps int) ([]int, error) {
	all, err := List(dialect)
	if err != nil {
		return nil, err
	}
	byVersion := map[int]Migration{}
	for _, m := range all {
		byVersion[m.Version] = m
	}
	applied, err := Status(ctx, db)
	if err != nil {
		return nil, err
	}
	var ran []int
	for i := len(applied) - 1; i >= 0 && len(ran) < steps; i-- {
		m, ok := byVersion[applied[i].Version]
		if !ok || m.Down == "" {
			return ran, fmt.Errorf("migrations: version %d cannot be reversed: no .down.sql", applied[i].Version)
		}
		if err := inTx(ctx, db, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, m.Down); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, `DELETE FROM schema_migrations WHERE version = $1`, m.Version)
			return err
		}); err != nil {
			return ran, fmt.Errorf("migrations: reverse %s %03d_%s: %w", dialect, m.Version, m.Name, err)
		}
		ran = append(ran, m.Version)
	}
	return ran, nil
}

func inTx(ctx context.Context, db *sql.DB, fn func(*sql.Tx) error) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}
