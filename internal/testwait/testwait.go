// Package testwait lets tests wait for a condition instead of for a time:
// a test that checks every few milliseconds whether the system got where it
// should passes as soon as it did, however fast or slow the machine, and
// fails with what it last saw when it never does.
//
// A test that asserts something does not happen waits the same way for an
// event that proves the system reached the point where it would have
// happened (a later message handled, the job finished), then checks.
package testwait

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

// Interval is the pause between two checks.
const Interval = 10 * time.Millisecond

// Until calls check until it returns nil, and fails t with the error check
// last returned when timeout passes first. The timeout only bounds a wait
// that would otherwise hang: pick it well above what the slowest machine
// needs, since a passing test never waits for it.
func Until(t testing.TB, timeout time.Duration, check func() error) {
	t.Helper()
	if err := Poll(context.Background(), timeout, check); err != nil {
		t.Fatal(err)
	}
}

// For returns the value get returns with a nil error, polling as Until.
func For[T any](t testing.TB, timeout time.Duration, get func() (T, error)) T {
	t.Helper()
	var v T
	Until(t, timeout, func() error {
		var err error
		v, err = get()
		return err
	})
	return v
}

// Poll calls check until it returns nil, ctx ends or timeout passes, and
// returns nil or the last error: Until for code that cannot fail the test
// itself (a goroutine, a helper that returns errors).
func Poll(ctx context.Context, timeout time.Duration, check func() error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(Interval)
	defer tick.Stop()
	for {
		err := check()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			// One last look: the condition may have become true while
			// the deadline passed.
			if err = check(); err == nil {
				return nil
			}
			return fmt.Errorf("still not so after %s: %w", timeout, err)
		case <-tick.C:
		}
	}
}

// Clock is a clock a test moves by hand, for services that take a
// function returning the time (a NowFunc option). It goes on with the real
// time, plus what Advance added: timestamps stay ordered and near the
// database's own clock, and a test skips a wait of minutes in one step.
type Clock struct {
	mu     sync.Mutex
	offset time.Duration
}

// NewClock returns a clock at the real time.
func NewClock() *Clock { return &Clock{} }

// Now is the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset += d
}
