package database

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"

	"gorm.io/gorm"
)

// ErrOutsideTx is returned, when the transaction check is on, by a
// statement that a goroutine sends through the connection pool while it
// holds a transaction open. Such a statement needs a second connection of
// the same pool: with many transactions open at once, every connection is
// held by a transaction that waits for another one, and the process stops
// (every read inside a transaction goes through that transaction, or
// happens before it begins).
var ErrOutsideTx = errors.New("database: statement sent through the pool while this goroutine holds a transaction open")

// txGuard knows which goroutines hold a transaction open, and turns a
// statement that would wait for a second connection of its own pool into
// an error instead of a latent self-deadlock. Strict (in test binaries),
// every such statement fails; otherwise a write or a second transaction
// fails (on SQLite's one writer connection it would wait for ever) and a
// read is let through and logged, once per place in the code.
type txGuard struct {
	strict bool
	log    *slog.Logger

	mu     sync.Mutex
	open   map[uint64]int
	logged map[string]bool
}

func newTxGuard(strict bool, log *slog.Logger) *txGuard {
	return &txGuard{strict: strict, log: log, open: map[uint64]int{}, logged: map[string]bool{}}
}

// goroutineID reads the running goroutine's number from its stack header
// ("goroutine 123 [running]:"). It costs about a microsecond, little beside
// a statement's round trip.
func goroutineID() uint64 {
	var buf [64]byte
	b := buf[:runtime.Stack(buf[:], false)]
	b = bytes.TrimPrefix(b, []byte("goroutine "))
	if i := bytes.IndexByte(b, ' '); i > 0 {
		b = b[:i]
	}
	id, _ := strconv.ParseUint(string(b), 10, 64)
	return id
}

// enter notes that the running goroutine opened a transaction; the
// function it returns notes that it ended. A goroutine that already holds
// one is refused: the second would wait for a connection its own first
// one may be keeping from it.
func (g *txGuard) enter() (func(), error) {
	if g == nil {
		return func() {}, nil
	}
	id := goroutineID()
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.open[id] > 0 {
		return nil, fmt.Errorf("%w: a second transaction was begun", ErrOutsideTx)
	}
	g.open[id]++
	return func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		if g.open[id]--; g.open[id] <= 0 {
			delete(g.open, id)
		}
	}, nil
}

func (g *txGuard) holding() bool {
	if g == nil {
		return false
	}
	id := goroutineID()
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.open[id] > 0
}

// install checks every statement of db: one that does not go through a
// transaction fails while its goroutine holds one.
func (g *txGuard) install(db *gorm.DB) error {
	// check is the callback of statements that write (write) or that may
	// (nil write: read the SQL, which Raw has built already).
	check := func(write *bool) func(tx *gorm.DB) {
		return func(tx *gorm.DB) {
			switch tx.Statement.ConnPool.(type) {
			case *pgTxConn, *guardedTx, *sql.Tx:
				return
			}
			if !g.holding() {
				return
			}
			writes := write == nil && !readsOnly(tx.Statement.SQL.String()) || write != nil && *write
			where := caller()
			if g.strict || writes {
				_ = tx.AddError(fmt.Errorf("%w: %s (table %s)", ErrOutsideTx, where, tx.Statement.Table))
				return
			}
			g.mu.Lock()
			first := !g.logged[where]
			g.logged[where] = true
			g.mu.Unlock()
			if first {
				g.log.Error("a read went through the pool while its goroutine held a transaction open; under load this waits for a connection its own transaction keeps",
					"caller", where, "table", tx.Statement.Table)
			}
		}
	}
	yes, no := true, false
	cb := db.Callback()
	for _, err := range []error{
		cb.Query().Before("gorm:query").Register("provisor:txguard", check(&no)),
		cb.Create().Before("gorm:create").Register("provisor:txguard", check(&yes)),
		cb.Update().Before("gorm:update").Register("provisor:txguard", check(&yes)),
		cb.Delete().Before("gorm:delete").Register("provisor:txguard", check(&yes)),
		cb.Row().Before("gorm:row").Register("provisor:txguard", check(nil)),
		cb.Raw().Before("gorm:raw").Register("provisor:txguard", check(nil)),
	} {
		if err != nil {
			return fmt.Errorf("database: transaction check: %w", err)
		}
	}
	return nil
}

// caller names the function of the project that sent a statement.
func caller() string {
	pcs := make([]uintptr, 32)
	frames := runtime.CallersFrames(pcs[:runtime.Callers(3, pcs)])
	for {
		f, more := frames.Next()
		if strings.Contains(f.Function, "provisor/provisor/") && !strings.Contains(f.Function, "provisor/database.") {
			return fmt.Sprintf("%s (%s:%d)", f.Function, filepath.Base(f.File), f.Line)
		}
		if !more {
			return "unknown caller"
		}
	}
}

// txPool is a connection pool GORM can begin transactions on: a *sql.DB,
// or SQLite's splitPool.
type txPool interface {
	gorm.ConnPool
	BeginTx(ctx context.Context, opts *sql.TxOptions) (*sql.Tx, error)
}

// guardedPool is the connection pool GORM sees when the check is on: the
// transactions it begins are known to the guard until they end.
type guardedPool struct {
	txPool
	sql *sql.DB
	g   *txGuard
}

// GetDBConn gives GORM the handle behind the checked pool (gorm.DB.DB).
func (p guardedPool) GetDBConn() (*sql.DB, error) { return p.sql, nil }

// BeginTx begins a transaction that the guard knows of.
func (p guardedPool) BeginTx(ctx context.Context, opts *sql.TxOptions) (gorm.ConnPool, error) {
	leave, err := p.g.enter()
	if err != nil {
		return nil, err
	}
	tx, err := p.txPool.BeginTx(ctx, opts)
	if err != nil {
		leave()
		return nil, err
	}
	return &guardedTx{Tx: tx, leave: leave}, nil
}

// guardedTx is a transaction begun through a guardedPool.
type guardedTx struct {
	*sql.Tx
	leave func()
	once  sync.Once
}

func (t *guardedTx) Commit() error {
	defer t.once.Do(t.leave)
	return t.Tx.Commit()
}

func (t *guardedTx) Rollback() error {
	defer t.once.Do(t.leave)
	return t.Tx.Rollback()
}
