package migrations_test

import (
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/provisor/provisor/database"
	"github.com/provisor/provisor/database/dbtest"
)

// schema is a database's tables with their columns, and its indexes, by
// name: what the two dialects' migrations must agree on. Types are left
// out (they are spelled differently: uuid and text, timestamptz and
// datetime); the queue's own tables are River's, not ours.
type schema struct {
	columns map[string][]string // table → sorted column names
	indexes []string            // "table.index", sorted
}

func readSchema(t *testing.T, db *database.DB, pgConstraints map[string]string) schema {
	t.Helper()
	s := schema{columns: map[string][]string{}}
	rows := func(q string, args ...any) *sql.Rows {
		t.Helper()
		r, err := db.SQL.Query(q, args...)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		return r
	}
	scan := func(r *sql.Rows, fn func(a, b string)) {
		t.Helper()
		defer r.Close()
		for r.Next() {
			var a, b string
			if err := r.Scan(&a, &b); err != nil {
				t.Fatal(err)
			}
			if ours(a) {
				fn(a, b)
			}
		}
		if err := r.Err(); err != nil {
			t.Fatal(err)
		}
	}
	if db.Dialect == database.Postgres {
		scan(rows(`SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = current_schema()`),
			func(tbl, col string) { s.columns[tbl] = append(s.columns[tbl], col) })
		// Unique constraints and primary keys are indexes in both.
		scan(rows(`SELECT tablename, indexname FROM pg_indexes WHERE schemaname = current_schema()`),
			func(tbl, idx string) { s.indexes = append(s.indexes, tbl+"."+indexName(pgConstraints, tbl, idx)) })
	} else {
		// A full-text table (FTS5, with its shadow tables) is SQLite's
		// form of an index: it counts as the index of its name on the
		// table it takes its content from.
		fts := map[string]bool{}
		scan(rows(`SELECT name, sql FROM sqlite_master WHERE type = 'table' AND sql LIKE 'CREATE VIRTUAL TABLE % USING fts5%'`),
			func(name, sql string) {
				fts[name] = true
				_, rest, _ := strings.Cut(sql, "content = '")
				if content, _, ok := strings.Cut(rest, "'"); ok {
					s.indexes = append(s.indexes, content+"."+name)
				}
			})
		shadow := func(tbl string) bool {
			for name := range fts {
				if tbl == name || strings.HasPrefix(tbl, name+"_") {
					return true
				}
			}
			return false
		}
		var tables []string
		scan(rows(`SELECT name, type FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'`),
			func(tbl, _ string) {
				if !shadow(tbl) {
					tables = append(tables, tbl)
				}
			})
		for _, tbl := range tables {
			r := rows(`SELECT name, '' FROM pragma_table_info(?)`, tbl)
			scan(r, func(col, _ string) { s.columns[tbl] = append(s.columns[tbl], col) })
			// SQLite names the indexes of inline UNIQUE and PRIMARY KEY
			// constraints itself; they are compared by their columns.
			r = rows(`SELECT l.name, coalesce(group_concat(coalesce(c.name, 'expr'), ','), '') FROM pragma_index_list(?) l, pragma_index_info(l.name) c GROUP BY l.name`, tbl)
			scan2(t, r, func(idx, cols string) {
				if strings.HasPrefix(idx, "sqlite_autoindex_") {
					idx = "(" + cols + ")"
				}
				s.indexes = append(s.indexes, tbl+"."+idx)
			})
		}
	}
	for tbl := range s.columns {
		slices.Sort(s.columns[tbl])
	}
	slices.Sort(s.indexes)
	return s
}

// scan2 is scan for a table whose name is already known to be ours.
func scan2(t *testing.T, r *sql.Rows, fn func(a, b string)) {
	t.Helper()
	defer r.Close()
	for r.Next() {
		var a, b string
		if err := r.Scan(&a, &b); err != nil {
			t.Fatal(err)
		}
		fn(a, b)
	}
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
}

// ours reports whether a table is Provisor's: River keeps its own, and
// each dialect keeps its migration bookkeeping its own way.
func ours(table string) bool {
	return !strings.HasPrefix(table, "river_") && table != "schema_migrations"
}

// indexName gives PostgreSQL's index of a constraint (in constraints, by
// "table.index") the name SQLite's comparison uses: "(columns)" for
// primary keys and inline unique constraints, whose names each database
// makes up its own way.
func indexName(constraints map[string]string, table, idx string) string {
	if cols, ok := constraints[table+"."+idx]; ok {
		return "(" + cols + ")"
	}
	return idx
}

// TestDialectsHaveTheSameSchema: after every migration, SQLite and
// PostgreSQL have the same tables, the same columns in each, and the same
// indexes, so that nothing written for one is missing on the other.
func TestDialectsHaveTheSameSchema(t *testing.T) {
	t.Parallel()
	pg := dbtest.Open(t, database.Postgres)
	// PostgreSQL's constraint indexes, by the columns they cover.
	constraints := map[string]string{}
	r, err := pg.SQL.Query(`SELECT t.relname, i.relname, string_agg(a.attname, ',' ORDER BY k.ord)
		FROM pg_index x
		JOIN pg_class i ON i.oid = x.indexrelid
		JOIN pg_class t ON t.oid = x.indrelid
		JOIN pg_namespace n ON n.oid = t.relnamespace AND n.nspname = current_schema()
		JOIN LATERAL unnest(x.indkey) WITH ORDINALITY AS k(attnum, ord) ON true
		JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum
		WHERE EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid AND c.contype IN ('p', 'u'))
		GROUP BY t.relname, i.relname`)
	if err != nil {
		t.Fatal(err)
	}
	for r.Next() {
		var tbl, idx, cols string
		if err := r.Scan(&tbl, &idx, &cols); err != nil {
			t.Fatal(err)
		}
		constraints[tbl+"."+idx] = cols
	}
	r.Close()
	sq := dbtest.Open(t, database.SQLite)
	a, b := readSchema(t, pg, constraints), readSchema(t, sq, nil)
	var diffs []string
	for tbl, cols := range a.columns {
		other, ok := b.columns[tbl]
		if !ok {
			diffs = append(diffs, "table "+tbl+" only on PostgreSQL")
			continue
		}
		for _, c := range cols {
			if !slices.Contains(other, c) {
				diffs = append(diffs, fmt.Sprintf("column %s.%s only on PostgreSQL", tbl, c))
			}
		}
		for _, c := range other {
			if !slices.Contains(cols, c) {
				diffs = append(diffs, fmt.Sprintf("column %s.%s only on SQLite", tbl, c))
			}
		}
	}
	for tbl := range b.columns {
		if _, ok := a.columns[tbl]; !ok {
			diffs = append(diffs, "table "+tbl+" only on SQLite")
		}
	}
	for _, idx := range a.indexes {
		if !slices.Contains(b.indexes, idx) && !rowIDKey(idx, b) {
			diffs = append(diffs, "index "+idx+" only on PostgreSQL")
		}
	}
	for _, idx := range b.indexes {
		if !slices.Contains(a.indexes, idx) {
			diffs = append(diffs, "index "+idx+" only on SQLite")
		}
	}
	for _, d := range diffs {
		t.Error(d)
	}
}

// rowIDKey reports whether idx is the primary key of a table whose key is
// SQLite's row id (an integer primary key, which has no index there).
func rowIDKey(idx string, sq schema) bool {
	tbl, name, _ := strings.Cut(idx, ".")
	return name == "(id)" && len(sq.columns[tbl]) > 0 && !slices.Contains(sq.indexes, idx)
}
