package requests

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/provisor/provisor/internal/testwait"
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
	waitIdle(t, rc)
}

// waitIdle waits until the recorder has no writer and nothing in line.
func waitIdle(t *testing.T, rc *recorder) {
	t.Helper()
	testwait.Until(t, 10*time.Second, func() error {
		rc.mu.Lock()
		writing, line := rc.writing, len(rc.line)
		rc.mu.Unlock()
		if writing != 0 || line != 0 {
			return fmt.Errorf("recorder left with %d writing and %d in line", writing, line)
		}
		return nil
	})
}

// Sets as large as a whole transaction, each written alone while others
// line up behind it: no writer is lost, every set is answered, and the
// recorder still writes at full strength afterwards.
func TestRecorderKeepsItsWriters(t *testing.T) {
	t.Parallel()
	var running, most atomic.Int64
	rc := &recorder{write: func(ctx context.Context, batch []*pendingWrite) error {
		n := running.Add(1)
		defer running.Add(-1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		time.Sleep(time.Duration(rand.IntN(500)) * time.Microsecond)
		return nil
	}}
	for round := range 20 {
		var wg sync.WaitGroup
		for i := range 40 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				size := 1
				if i%2 == 0 {
					size = maxLine
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				if err := rc.record(ctx, &setRun{}, make([]outcome, size)); err != nil {
					t.Errorf("round %d, set %d: %v", round, i, err)
				}
			}()
		}
		wg.Wait()
	}
	waitIdle(t, rc)
	// Both writers are there: two writes that wait to be let go are under
	// way at once.
	most.Store(0)
	release := make(chan struct{})
	slow := &recorder{write: func(ctx context.Context, batch []*pendingWrite) error {
		n := running.Add(1)
		defer running.Add(-1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		<-release
		return nil
	}}
	rc.write = slow.write
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := rc.record(context.Background(), &setRun{}, make([]outcome, maxLine)); err != nil {
				t.Error(err)
			}
		}()
	}
	err := testwait.Poll(context.Background(), 10*time.Second, func() error {
		if n := running.Load(); n != writers {
			return fmt.Errorf("%d transactions writing", n)
		}
		return nil
	})
	close(release)
	wg.Wait()
	if err != nil {
		t.Error(err)
	}
	if most.Load() != writers {
		t.Errorf("%d transactions wrote at once after the storm, want %d", most.Load(), writers)
	}
}

// A set whose context ends stops waiting; what it left in line is still
// written, and the recorder goes on.
func TestRecorderHonoursContext(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	var wrote atomic.Int64
	rc := &recorder{write: func(ctx context.Context, batch []*pendingWrite) error {
		<-release
		wrote.Add(int64(len(batch)))
		return nil
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := rc.record(ctx, &setRun{}, make([]outcome, 1)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("record with an ended context = %v, want the context's error", err)
	}
	close(release)
	if err := rc.record(context.Background(), &setRun{}, make([]outcome, 1)); err != nil {
		t.Fatal(err)
	}
	waitIdle(t, rc)
	if wrote.Load() != 2 {
		t.Errorf("%d sets written, want 2", wrote.Load())
	}
}

// While a result write that found a connector quarantined is under way,
// and after it, no set uses the state cached before it, nor keeps one read
// meanwhile: a set that starts once the write is visible reads the new
// state, even before the set that wrote it has heard of the commit.
func TestStateCacheAroundAQuarantine(t *testing.T) {
	t.Parallel()
	s := &Service{}
	const id = "c1"
	_, ok, gen := s.cachedState(id)
	if ok {
		t.Fatal("a state cached before any was kept")
	}
	s.keepState(id, ConnectorState{State: StateActive}, gen)
	if st, ok, _ := s.cachedState(id); !ok || st.State != StateActive {
		t.Fatalf("kept state not cached: %+v %v", st, ok)
	}
	_, _, before := s.cachedState(id) // a read that begins before the write's commit
	w := &pendingWrite{r: &setRun{first: &Job{ConnectorID: id}}, hold: &ConnectorState{State: StateQuarantined}}
	s.stateChangeBegun()
	if _, ok, _ := s.cachedState(id); ok {
		t.Fatal("the cached state was used while a write changes it")
	}
	_, _, during := s.cachedState(id)
	s.keepState(id, ConnectorState{State: StateActive}, during)
	s.keepState(id, ConnectorState{State: StateActive}, before)
	s.stateChangeEnded([]*pendingWrite{w})
	if st, ok, _ := s.cachedState(id); ok {
		t.Fatalf("a state read before the change was kept: %+v", st)
	}
	_, _, after := s.cachedState(id)
	s.keepState(id, ConnectorState{State: StateQuarantined}, after)
	if st, ok, _ := s.cachedState(id); !ok || st.State != StateQuarantined {
		t.Fatalf("the state read after the change is not cached: %+v %v", st, ok)
	}
}
