// Package database opens Provisor's database (the embedded SQLite file or
// PostgreSQL), applies the schema, and runs transactions that hold both the
// portal's rows and the job queue's entries, so that either both commit or
// neither does.
package database

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/glebarez/sqlite"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"
	"gorm.io/gorm/logger"

	"github.com/provisor/provisor/migrations"
)

// Dialects.
const (
	Postgres = "postgres"
	SQLite   = "sqlite"
)

// DB is an open database: GORM for the portal's rows, and the raw handles the
// job queue needs.
type DB struct {
	Gorm *gorm.DB
	// SQL is the handle of the job queue and the migrations; on SQLite it
	// is the one writer connection (see openSQLite).
	SQL     *sql.DB
	Dialect string
	// Pool is the pgx pool behind SQL on PostgreSQL; nil on SQLite.
	Pool *pgxpool.Pool
	// Relaxed is for single statements whose commit need not wait for the
	// disk, because a later durable commit covers them or because losing
	// them in a crash is harmless (see InTxAsync): on PostgreSQL, a
	// small pool of its own with synchronous_commit off; on SQLite, Gorm.
	Relaxed *gorm.DB

	relaxedPool *pgxpool.Pool
	// readers are SQLite's read-only connections (see splitPool); nil on
	// PostgreSQL.
	readers *sql.DB
	// guard, when the transaction check is on, knows which goroutines
	// hold a transaction open (see ErrOutsideTx).
	guard *txGuard
	// writer admits one write transaction at a time on SQLite (see
	// writeTx).
	writer *turns
}

// Options tune Open. A nil *Options means defaults.
type Options struct {
	// MaxConns bounds the PostgreSQL pool (default 40).
	MaxConns int32
	// RelaxedConns bounds the pool of Relaxed on PostgreSQL (default 8).
	RelaxedConns int32
	// StrictTx makes every statement fail with ErrOutsideTx when it goes
	// through the pool while its goroutine holds a transaction open; by
	// default only writes and second transactions fail, and reads are
	// logged (see txGuard). It is on in test binaries whatever is set here.
	StrictTx bool
	// Logger receives the transaction check's reports (default none).
	Logger *slog.Logger
}

// Open connects to the database at databaseURL, or to the embedded SQLite
// file sqlitePath when databaseURL is empty.
func Open(ctx context.Context, databaseURL, sqlitePath string, opts *Options) (*DB, error) {
	if opts == nil {
		opts = &Options{}
	}
	gcfg := &gorm.Config{
		NowFunc:                func() time.Time { return time.Now().UTC().Truncate(time.Microsecond) },
		Logger:                 logger.Discard,
		SkipDefaultTransaction: true,
		TranslateError:         true,
	}
	db, err := open(ctx, databaseURL, sqlitePath, gcfg, opts)
	if err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := db.checkTx(opts.StrictTx || testing.Testing(), log); err != nil {
		_ = db.Close()
		return nil, err
	}
	return db, nil
}

// checkTx turns the transaction check on (see ErrOutsideTx).
func (db *DB) checkTx(strict bool, log *slog.Logger) error {
	db.guard = newTxGuard(strict, log)
	for _, g := range []*gorm.DB{db.Gorm, db.Relaxed} {
		if err := db.guard.install(g); err != nil {
			return err
		}
		if g == db.Relaxed && db.Relaxed == db.Gorm {
			break
		}
	}
	// Statement.ConnPool, not ConnPool: on PostgreSQL Gorm and Relaxed
	// share one gorm.Config, whose ConnPool is the last one opened.
	base, ok := db.Gorm.Statement.ConnPool.(txPool)
	if !ok {
		return fmt.Errorf("database: transaction check: unexpected connection pool %T", db.Gorm.Statement.ConnPool)
	}
	pool := guardedPool{txPool: base, sql: db.SQL, g: db.guard}
	db.Gorm.ConnPool, db.Gorm.Statement.ConnPool = pool, pool
	return nil
}

func open(ctx context.Context, databaseURL, sqlitePath string, gcfg *gorm.Config, opts *Options) (*DB, error) {
	if databaseURL == "" {
		return openSQLite(sqlitePath, gcfg)
	}
	pcfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		return nil, fmt.Errorf("database: %w", err)
	}
	pcfg.MaxConns = 40
	if opts.MaxConns > 0 {
		pcfg.MaxConns = opts.MaxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("database: %w", err)
	}
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := pool.Ping(pingCtx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("database: cannot reach PostgreSQL at %s: %w", pcfg.ConnConfig.Host, err)
	}
	sqlDB := stdlib.OpenDBFromPool(pool)
	g, err := gorm.Open(postgres.New(postgres.Config{Conn: sqlDB}), gcfg)
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("database: %w", err)
	}
	rcfg := pcfg.Copy()
	rcfg.MaxConns = 8
	if opts.RelaxedConns > 0 {
		rcfg.MaxConns = opts.RelaxedConns
	}
	rcfg.MinConns = 0
	rcfg.ConnConfig.RuntimeParams["synchronous_commit"] = "off"
	rpool, err := pgxpool.NewWithConfig(ctx, rcfg)
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("database: %w", err)
	}
	relaxed, err := gorm.Open(postgres.New(postgres.Config{Conn: stdlib.OpenDBFromPool(rpool)}), gcfg)
	if err != nil {
		pool.Close()
		rpool.Close()
		return nil, fmt.Errorf("database: %w", err)
	}
	return &DB{Gorm: g, SQL: sqlDB, Dialect: Postgres, Pool: pool, Relaxed: relaxed, relaxedPool: rpool}, nil
}

// readConns is how many read-only connections SQLite's readers open.
const readConns = 4

func openSQLite(path string, gcfg *gorm.Config) (*DB, error) {
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("database: create %s: %w", dir, err)
		}
	}
	// SQLite has one writer at a time. The writer is one connection, shared
	// by the job queue, every write of the portal and every transaction:
	// they queue up for it in this process instead of waiting for the
	// file's lock (busy_timeout sleeps, and fails after ten seconds), and
	// nothing is ever held by a transaction that waits for another one (the
	// transaction check makes sure a transaction reads only through itself).
	// Every transaction still takes the write lock when it begins
	// (_txlock=immediate), for another process on the same file (a
	// command-line tool). WAL lets the readers, a pool of read-only
	// connections, work beside the writer.
	writer, err := sql.Open("sqlite", sqliteDSN(path, true, "journal_mode(WAL)", "busy_timeout(10000)", "foreign_keys(1)", "synchronous(NORMAL)"))
	if err != nil {
		return nil, fmt.Errorf("database: open %s: %w", path, err)
	}
	writer.SetMaxOpenConns(1)
	writer.SetMaxIdleConns(1)
	if err := writer.Ping(); err != nil {
		_ = writer.Close()
		return nil, fmt.Errorf("database: open %s: %w", path, err)
	}
	readers, err := sql.Open("sqlite", sqliteDSN(path, false, "busy_timeout(10000)", "query_only(1)"))
	if err != nil {
		_ = writer.Close()
		return nil, fmt.Errorf("database: open %s: %w", path, err)
	}
	readers.SetMaxOpenConns(readConns)
	readers.SetMaxIdleConns(readConns)
	g, err := gorm.Open(sqlite.Dialector{Conn: splitPool{writer: writer, readers: readers}}, gcfg)
	if err != nil {
		_ = writer.Close()
		_ = readers.Close()
		return nil, fmt.Errorf("database: open %s: %w", path, err)
	}
	return &DB{Gorm: g, SQL: writer, Dialect: SQLite, Relaxed: g, readers: readers, writer: &turns{}}, nil
}

func sqliteDSN(path string, immediate bool, pragmas ...string) string {
	q := url.Values{}
	for _, p := range pragmas {
		q.Add("_pragma", p)
	}
	if immediate {
		q.Set("_txlock", "immediate")
	}
	return "file:" + path + "?" + q.Encode()
}

// Close releases the connections.
func (db *DB) Close() error {
	err := db.SQL.Close()
	if db.readers != nil {
		err = errors.Join(err, db.readers.Close())
	}
	if db.Pool != nil {
		db.Pool.Close()
	}
	if db.relaxedPool != nil {
		db.relaxedPool.Close()
	}
	return err
}

// WriteRelaxed runs fn's writes where Relaxed says: on PostgreSQL as
// statements on the relaxed pool; on SQLite in a transaction that takes the
// write lock when it begins, because there a lone statement that turns a
// read into a write fails at once, instead of waiting, when another
// process wrote meanwhile. Such writes are short: on SQLite they go before
// the transactions waiting for their turn.
func (db *DB) WriteRelaxed(ctx context.Context, fn func(g *gorm.DB) error) error {
	if db.Dialect == SQLite {
		return db.writeTx(ctx, fn, true)
	}
	return fn(db.Relaxed.WithContext(ctx))
}

// writeTx runs fn in a SQLite transaction on the writer, which holds the
// database's write lock from its start. The transactions of this process
// take turns before they ask for the writer, because the connection pool
// hands a freed connection to any one of those waiting: a short write (a
// job's claim) goes first, so that a job does not wait to start behind the
// results of others, and the longer ones go in the order they came.
func (db *DB) writeTx(ctx context.Context, fn func(tx *gorm.DB) error, short bool) error {
	if db.guard.holding() {
		// Its turn would wait for the one this goroutine holds.
		return fmt.Errorf("%w: a second transaction was begun", ErrOutsideTx)
	}
	if err := db.writer.take(ctx, short); err != nil {
		return err
	}
	defer db.writer.give()
	return db.Gorm.WithContext(ctx).Transaction(fn)
}

// Waiting is how many transactions of this process wait for another to end
// before they can write: on SQLite those in line for the write turn, on
// PostgreSQL the database's sessions waiting for a lock. A test that makes
// transactions meet waits for it instead of sleeping.
func (db *DB) Waiting(ctx context.Context) (int, error) {
	if db.Dialect != Postgres {
		return db.writer.waiting(), nil
	}
	var n int
	err := db.Gorm.WithContext(ctx).Raw(`SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&n).Error
	return n, err
}

// migrateLockKey is the PostgreSQL advisory lock held while migrating.
const migrateLockKey = 0x70726f76 // "prov"

// Migrate applies Provisor's schema and the job queue's schema. On
// PostgreSQL an advisory lock makes processes that start together migrate
// one after the other.
func (db *DB) Migrate(ctx context.Context) error {
	if db.Dialect == Postgres {
		conn, err := db.SQL.Conn(ctx)
		if err != nil {
			return fmt.Errorf("database: migrate: %w", err)
		}
		defer conn.Close()
		if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock($1)", migrateLockKey); err != nil {
			return fmt.Errorf("database: migrate: lock: %w", err)
		}
		defer func() {
			_, _ = conn.ExecContext(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", migrateLockKey)
		}()
	}
	if _, err := migrations.Up(ctx, db.SQL, db.Dialect); err != nil {
		return err
	}
	var err error
	var m interface {
		Migrate(context.Context, rivermigrate.Direction, *rivermigrate.MigrateOpts) (*rivermigrate.MigrateResult, error)
	}
	if db.Dialect == Postgres {
		m, err = rivermigrate.New(riverpgxv5.New(db.Pool), nil)
	} else {
		m, err = rivermigrate.New(riversqlite.New(db.SQL), nil)
	}
	if err != nil {
		return fmt.Errorf("database: queue schema: %w", err)
	}
	if _, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return fmt.Errorf("database: queue schema: %w", err)
	}
	return nil
}

type pgxTxKey struct{}

// InTx runs fn in one transaction and commits if fn returns nil. Queue
// entries inserted through the Queue with the same tx commit with it.
func (db *DB) InTx(ctx context.Context, fn func(tx *gorm.DB) error) error {
	return db.inTx(ctx, fn, "")
}

// InTxAsync is InTx for a transaction whose commit need not wait for its
// write-ahead log to reach the disk (PostgreSQL's synchronous_commit off,
// for this transaction only, set in the same round trip as its BEGIN);
// SQLite in WAL mode with synchronous=NORMAL already commits so. The commit
// is visible at once, and a crash within a fraction of a second may lose
// it, never half of it. Use it only where losing the transaction is
// harmless: a job set's results are made durable by the queue's own commit
// of the set's entry, which follows it in the log, and a set whose entry
// was not recorded as done runs again.
func (db *DB) InTxAsync(ctx context.Context, fn func(tx *gorm.DB) error) error {
	return db.inTx(ctx, fn, "BEGIN; SET LOCAL synchronous_commit TO OFF")
}

func (db *DB) inTx(ctx context.Context, fn func(tx *gorm.DB) error, begin string) error {
	if db.Dialect == SQLite {
		return db.writeTx(ctx, fn, false)
	}
	// On PostgreSQL the queue needs the pgx transaction itself, and GORM needs a
	// database/sql handle: both are given the same connection, on which a pgx
	// transaction is open.
	leave, err := db.guard.enter()
	if err != nil {
		return err
	}
	defer leave()
	conn, err := db.SQL.Conn(ctx)
	if err != nil {
		return fmt.Errorf("database: %w", err)
	}
	defer conn.Close()
	var ptx pgx.Tx
	if err := conn.Raw(func(dc any) error {
		c, ok := dc.(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("database: unexpected driver connection %T", dc)
		}
		ptx, err = c.Conn().BeginTx(ctx, pgx.TxOptions{BeginQuery: begin})
		return err
	}); err != nil {
		return fmt.Errorf("database: begin: %w", err)
	}
	tx := db.Gorm.Session(&gorm.Session{NewDB: true, Context: context.WithValue(ctx, pgxTxKey{}, ptx)})
	tx.Statement.ConnPool = &pgTxConn{conn: conn, tx: ptx}
	committed := false
	defer func() {
		if !committed {
			_ = ptx.Rollback(context.WithoutCancel(ctx))
		}
	}()
	if err := fn(tx); err != nil {
		return err
	}
	if err := ptx.Commit(ctx); err != nil {
		return fmt.Errorf("database: commit: %w", err)
	}
	committed = true
	return nil
}

// pgTxConn is a GORM connection pool that is a transaction: GORM sees the
// Commit/Rollback methods and does not open a transaction of its own.
type pgTxConn struct {
	conn *sql.Conn
	tx   pgx.Tx
}

func (c *pgTxConn) PrepareContext(ctx context.Context, q string) (*sql.Stmt, error) {
	return c.conn.PrepareContext(ctx, q)
}
func (c *pgTxConn) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	return c.conn.ExecContext(ctx, q, args...)
}
func (c *pgTxConn) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	return c.conn.QueryContext(ctx, q, args...)
}
func (c *pgTxConn) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	return c.conn.QueryRowContext(ctx, q, args...)
}
func (c *pgTxConn) Commit() error   { return c.tx.Commit(context.Background()) }
func (c *pgTxConn) Rollback() error { return c.tx.Rollback(context.Background()) }

// pgxTx returns the pgx transaction behind a GORM transaction made by InTx.
func pgxTx(tx *gorm.DB) (pgx.Tx, error) {
	if t, ok := tx.Statement.Context.Value(pgxTxKey{}).(pgx.Tx); ok {
		return t, nil
	}
	return nil, errors.New("database: not inside DB.InTx")
}

// sqlTx returns the database/sql transaction behind a GORM transaction on SQLite.
func sqlTx(tx *gorm.DB) (*sql.Tx, error) {
	switch t := tx.Statement.ConnPool.(type) {
	case *sql.Tx:
		return t, nil
	case *guardedTx:
		return t.Tx, nil
	}
	return nil, errors.New("database: not inside DB.InTx")
}

// IsUniqueViolation reports whether err is a unique-constraint violation.
func IsUniqueViolation(err error) bool {
	if errors.Is(err, gorm.ErrDuplicatedKey) {
		return true
	}
	s := err.Error()
	return strings.Contains(s, "UNIQUE constraint failed") || strings.Contains(s, "SQLSTATE 23505")
}

// ForUpdate makes tx's next read lock the rows it reads until tx ends: on
// PostgreSQL with SELECT ... FOR UPDATE, which writes nothing; on SQLite
// every transaction holds the write lock from its BEGIN (_txlock=immediate),
// so a plain read does.
func ForUpdate(tx *gorm.DB) *gorm.DB {
	if tx.Dialector.Name() == Postgres {
		return tx.Clauses(clause.Locking{Strength: clause.LockingStrengthUpdate})
	}
	return tx
}

// SkipLocked is the clause that ends a raw SELECT whose rows tx locks,
// leaving those another transaction holds: " FOR UPDATE SKIP LOCKED" on
// PostgreSQL; nothing on SQLite, whose transactions do not overlap.
func SkipLocked(tx *gorm.DB) string {
	if tx.Dialector.Name() == Postgres {
		return " FOR UPDATE SKIP LOCKED"
	}
	return ""
}

// Typed is the placeholder of a value of SQL type typ (uuid, timestamptz)
// in a VALUES list: PostgreSQL types the columns of a VALUES list from
// their text, so it needs a cast; SQLite takes the value as it is.
func Typed(tx *gorm.DB, typ string) string {
	if tx.Dialector.Name() == Postgres {
		return "CAST(? AS " + typ + ")"
	}
	return "?"
}
