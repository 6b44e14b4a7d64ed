package provlog_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/provisor/provisor/database"
	"github.com/provisor/provisor/database/dbtest"
	"github.com/provisor/provisor/internal/testwait"
	"github.com/provisor/provisor/migrations"
	"github.com/provisor/provisor/provlog"
)

// counts is how many rows are pending and how many entries are in the log.
func counts(t *testing.T, db *database.DB) (pending, entries int64) {
	t.Helper()
	if err := db.Gorm.Table("provisioning_log_pending").Count(&pending).Error; err != nil {
		t.Fatal(err)
	}
	if err := db.Gorm.Table("provisioning_logs").Count(&entries).Error; err != nil {
		t.Fatal(err)
	}
	return pending, entries
}

// waitCounts waits until pending rows are pending and entries are in the
// log.
func waitCounts(t *testing.T, db *database.DB, pending, entries int64) {
	t.Helper()
	testwait.Until(t, 10*time.Second, func() error {
		if p, e := counts(t, db); p != pending || e != entries {
			return fmt.Errorf("%d pending rows and %d entries, want %d and %d", p, e, pending, entries)
		}
		return nil
	})
}

// people are n entries of the people named prefix0 to prefix<n-1>.
func people(prefix string, n int) []provlog.Entry {
	now := time.Now().UTC()
	es := make([]provlog.Entry, n)
	for i := range es {
		es[i] = entry(now.Add(-time.Duration(i)*time.Millisecond), fmt.Sprintf("%s %d", prefix, i), "", fmt.Sprintf("%s%d", prefix, i), "")
	}
	return es
}

// The entries of a transaction wait as one pending row, not in the log;
// any read of the log moves them first, so that it finds them, and a
// transaction rolled back leaves none.
func TestPendingEntriesAreMovedBeforeEveryRead(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect string) {
		t.Parallel()
		db, l := open(t, dialect)
		ctx := context.Background()
		insert(t, db, people("ada", 30))
		if p, e := counts(t, db); p != 1 || e != 0 {
			t.Fatalf("after the write: %d pending rows and %d entries, want 1 and 0", p, e)
		}
		got, _, err := l.Search(ctx, provlog.Filter{Query: "ADA 7", Limit: 100})
		if err != nil || len(got) != 1 || got[0].TargetUsername != "ada7" {
			t.Fatalf("search found %+v, %v", got, err)
		}
		if p, e := counts(t, db); p != 0 || e != 30 {
			t.Fatalf("after the search: %d pending rows and %d entries, want 0 and 30", p, e)
		}

		// Get and the downloads move what is pending too.
		es := people("grace", 3)
		insert(t, db, es)
		e, err := l.Get(ctx, es[1].ID)
		if err != nil || e.TargetUsername != "grace1" {
			t.Fatalf("get: %+v, %v", e, err)
		}
		insert(t, db, people("alan", 2))
		n := 0
		if err := l.Stream(ctx, provlog.Filter{Query: "alan"}, func(*provlog.Entry) error { n++; return nil }); err != nil || n != 2 {
			t.Fatalf("stream found %d entries, %v", n, err)
		}

		boom := errors.New("the job's result failed")
		err = db.InTx(ctx, func(tx *gorm.DB) error {
			if err := provlog.InsertTx(tx, people("ghost", 5)); err != nil {
				return err
			}
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatal(err)
		}
		if got, _, err := l.Search(ctx, provlog.Filter{Query: "ghost"}); err != nil || len(got) != 0 {
			t.Fatalf("entries of a rolled-back transaction: %d, %v", len(got), err)
		}
		if p, e := counts(t, db); p != 0 || e != 35 {
			t.Fatalf("at the end: %d pending rows and %d entries, want 0 and 35", p, e)
		}
	})
}

// Expand moves the rows written before its cut and leaves the newer ones;
// processes expanding at once, with reads between them, move each entry
// once.
func TestExpandMovesEachEntryOnce(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect string) {
		t.Parallel()
		db, l := open(t, dialect)
		ctx := context.Background()
		insert(t, db, people("old", 4))
		if err := db.Gorm.Exec("UPDATE provisioning_log_pending SET at = ?", time.Now().Add(-time.Hour).UTC()).Error; err != nil {
			t.Fatal(err)
		}
		insert(t, db, people("new", 3))
		n, err := l.Expand(ctx, time.Now().Add(-time.Minute))
		if err != nil || n != 4 {
			t.Fatalf("expand moved %d entries, %v; want the 4 old ones", n, err)
		}
		if p, e := counts(t, db); p != 1 || e != 4 {
			t.Fatalf("%d pending rows and %d entries, want 1 and 4", p, e)
		}

		// 3 entries pending; 150 rows more of 2 entries each.
		const rows = 150
		for i := range rows {
			insert(t, db, people(fmt.Sprintf("p%d-", i), 2))
		}
		var wg sync.WaitGroup
		moved := make([]int64, 4)
		errs := make([]error, 5)
		for w := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				moved[w], errs[w] = l.Expand(ctx, time.Now().Add(time.Minute))
			}()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _, errs[4] = l.Search(ctx, provlog.Filter{Query: "p7-1"})
		}()
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatal(err)
		}
		if p, e := counts(t, db); p != 0 || e != 4+3+2*rows {
			t.Fatalf("%d pending rows and %d entries, want 0 and %d (moved by each: %v)", p, e, 4+3+2*rows, moved)
		}
	})
}

// runExpander runs l's expander until the test ends.
func runExpander(t *testing.T, l *provlog.Log) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); l.RunExpander(ctx, nil) }()
	t.Cleanup(func() { cancel(); <-done })
}

// The expander moves the entries a few seconds old and leaves the newest
// for a later round.
func TestExpanderMovesOlderEntries(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect string) {
		t.Parallel()
		db, l := open(t, dialect)
		insert(t, db, people("old", 2))
		if err := db.Gorm.Exec("UPDATE provisioning_log_pending SET at = ?", time.Now().Add(-provlog.ExpandAfter-time.Second).UTC()).Error; err != nil {
			t.Fatal(err)
		}
		insert(t, db, people("new", 2))
		runExpander(t, l)
		waitCounts(t, db, 1, 2)
	})
}

// A downgrade past migration 022 moves the entries still pending into
// the log before it drops their table.
func TestDowngradeKeepsPendingEntries(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect string) {
		t.Parallel()
		db, l := open(t, dialect)
		ctx := context.Background()
		insert(t, db, people("kept", 3))
		insert(t, db, people("also", 2))
		all, err := migrations.List(dialect)
		if err != nil {
			t.Fatal(err)
		}
		steps := 0
		for _, m := range all {
			if m.Version >= 22 {
				steps++
			}
		}
		if _, err := migrations.Down(ctx, db.SQL, dialect, steps); err != nil {
			t.Fatal(err)
		}
		var n int64
		if err := db.Gorm.Table("provisioning_logs").Where("target_username LIKE ? OR target_username LIKE ?", "kept%", "also%").Count(&n).Error; err != nil || n != 5 {
			t.Fatalf("%d entries in the log after the downgrade (%v), want 5", n, err)
		}
		if _, err := migrations.Up(ctx, db.SQL, dialect); err != nil {
			t.Fatal(err)
		}
		if got, _, err := l.Search(ctx, provlog.Filter{Query: "KEPT1"}); err != nil || len(got) != 1 || got[0].IdentityName != "kept 1" {
			t.Fatalf("search after the upgrade: %+v, %v", got, err)
		}
	})
}

// While the process runs jobs, the expander moves only the entries older
// than ExpandBy; the others wait for the jobs to end.
func TestExpanderGivesWayToJobs(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect string) {
		t.Parallel()
		db := dbtest.Open(t, dialect)
		var busy atomic.Bool
		var asked atomic.Int64
		busy.Store(true)
		l := provlog.New(db, &provlog.Options{BusyFunc: func() bool { asked.Add(1); return busy.Load() }})
		backdate := func(name string, age time.Duration) {
			t.Helper()
			insert(t, db, people(name, 1))
			if err := db.Gorm.Exec("UPDATE provisioning_log_pending SET at = ? WHERE id = (SELECT max(id) FROM provisioning_log_pending)",
				time.Now().Add(-age).UTC()).Error; err != nil {
				t.Fatal(err)
			}
		}
		backdate("ancient", provlog.ExpandBy+time.Minute)
		backdate("recent", provlog.ExpandAfter+5*time.Second)
		insert(t, db, people("fresh", 1))
		runExpander(t, l)
		// Two rounds asked whether jobs run, and each moved what is older
		// than ExpandBy only.
		testwait.Until(t, 10*time.Second, func() error {
			if p, e := counts(t, db); p != 2 || e != 1 || asked.Load() < 2 {
				return fmt.Errorf("%d pending rows and %d entries after %d rounds, want 2 and 1 after 2", p, e, asked.Load())
			}
			return nil
		})
		busy.Store(false) // the jobs ended
		waitCounts(t, db, 1, 2)
	})
}

// The prune moves the pending entries older than its cut into the log and
// deletes them with the others; newer pending entries stay for the
// expander (the prune runs at a process's start, perhaps in a burst).
func TestPruneLeavesNewPendingEntries(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect string) {
		t.Parallel()
		db, l := open(t, dialect)
		old := time.Now().Add(-100 * 24 * time.Hour).UTC()
		es := people("stale", 3)
		for i := range es {
			es[i].At = old
		}
		insert(t, db, es)
		if err := db.Gorm.Exec("UPDATE provisioning_log_pending SET at = ?", old).Error; err != nil {
			t.Fatal(err)
		}
		insert(t, db, people("young", 2))
		n, err := l.Prune(context.Background(), time.Now().Add(-90*24*time.Hour))
		if err != nil || n != 3 {
			t.Fatalf("pruned %d, %v; want the 3 stale entries", n, err)
		}
		if p, e := counts(t, db); p != 1 || e != 0 {
			t.Fatalf("%d pending rows and %d entries, want the young row pending", p, e)
		}
	})
}
