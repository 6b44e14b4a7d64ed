package requests

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Sets that end together are written together, at most writers
// transactions at a time; every set gets its own answer, and one set whose
// write fails does not fail the others of its batch.
func TestRecorderWritesTogether(t *testing.T) {
	t.Parallel()
	bad := &setRun{}
	var running, most, batches, shared atomic.Int64
	rc := &recorder{write: func(ctx context.Context, batch []*pendingWrite) error {
		n := running.Add(1)
		defer running.Add(-1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		batches.Add(1)
		if len(batch) > 1 {
			shared.Add(1)
		}
		time.Sleep(time.Duration(rand.IntN(2000)) * time.Microsecond)
		for _, w := range batch {
			if w.r == bad {
				return errors.New("bad set")
			}
		}
		return nil
	}}
	// run records sets from as many goroutines, every 50th of them bad
	// when withBad, and returns their answers.
	run := func(sets int, withBad bool) []error {
		errs := make([]error, sets)
		var wg sync.WaitGroup
		for i := range sets {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := &setRun{}
				if withBad && i%50 == 7 {
					r = bad
				}
				// Sets end at different times, and several times each, as
				// a set whose operation is slow writes what came before it.
				time.Sleep(time.Duration(rand.IntN(20)) * time.Millisecond)
				for range 1 + i%2 {
					if err := rc.record(context.Background(), r, make([]outcome, 1+i%3)); err != nil {
						errs[i] = err
					}
				}
			}()
		}
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Fatal("sets still waiting for their record after 30 s")
		}
		return errs
	}
	for i, err := range run(300, false) {
		if err != nil {
			t.Errorf("set %d: %v", i, err)
		}
	}
	if shared.Load() == 0 || batches.Load() > 100 {
		t.Errorf("%d transactions for 300 sets, %d of them shared", batches.Load(), shared.Load())
	}
	for i, err := range run(300, true) {
		if (i%50 == 7) != (err != nil) {
			t.Errorf("set %d: %v", i, err)
		}
	}
	if most.Load() > writers {
		t.Errorf("%d transactions wrote at once, want at most %d", most.Load(), writers)
	}
	if rc.writing != 0 || len(rc.line) != 0 {
		t.Errorf("recorder left with %d writing and %d in line", rc.writing, len(rc.line))
	}
}
