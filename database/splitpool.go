package database

import (
	"context"
	"database/sql"
	"strings"
)

// splitPool is GORM's connection pool on SQLite: a statement that only
// reads goes to the read-only connections, and everything else, every
// transaction included, to the one writer connection (see openSQLite).
type splitPool struct {
	writer, readers *sql.DB
}

func (p splitPool) pick(query string) *sql.DB {
	if readsOnly(query) {
		return p.readers
	}
	return p.writer
}

func (p splitPool) PrepareContext(ctx context.Context, query string) (*sql.Stmt, error) {
	return p.pick(query).PrepareContext(ctx, query)
}

func (p splitPool) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return p.writer.ExecContext(ctx, query, args...)
}

func (p splitPool) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return p.pick(query).QueryContext(ctx, query, args...)
}

func (p splitPool) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	return p.pick(query).QueryRowContext(ctx, query, args...)
}

// BeginTx begins a transaction on the writer.
func (p splitPool) BeginTx(ctx context.Context, opts *sql.TxOptions) (*sql.Tx, error) {
	return p.writer.BeginTx(ctx, opts)
}

// GetDBConn gives GORM the writer (gorm.DB.DB).
func (p splitPool) GetDBConn() (*sql.DB, error) { return p.writer, nil }

// readsOnly reports whether query is a SELECT, after leading space and
// comments. Anything else goes to the writer: a WITH may end in an UPDATE,
// an INSERT or UPDATE may return rows, and a read-only connection refuses
// what it cannot do rather than lose it.
func readsOnly(query string) bool {
	q := query
	for {
		q = strings.TrimLeft(q, " \t\r\n\f")
		switch {
		case strings.HasPrefix(q, "--"):
			i := strings.IndexByte(q, '\n')
			if i < 0 {
				return false
			}
			q = q[i+1:]
		case strings.HasPrefix(q, "/*"):
			i := strings.Index(q[2:], "*/")
			if i < 0 {
				return false
			}
			q = q[2+i+2:]
		default:
			const kw = "select"
			if len(q) < len(kw) || !strings.EqualFold(q[:len(kw)], kw) {
				return false
			}
			if len(q) == len(kw) {
				return true
			}
			c := q[len(kw)]
			return !(c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z')
		}
	}
}
