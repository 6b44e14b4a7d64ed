package connectors

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/provisor/provisor/internal/testwait"
)

// The pacer learns the budget: the first estimate from the last second,
// the second from what got through between two throttles, pause included;
// after that it grows slowly, and a throttle never raises the pace.
func TestPacerEstimates(t *testing.T) {
	now := time.Unix(1000, 0)
	p := &Pacer{now: func() time.Time { return now }}
	// 40 units in the first second (a full bucket of 20 and 20 more).
	for range 40 {
		p.Done(1)
	}
	p.Throttled(time.Second)
	if r := p.Rate(); r < 38 || r > 40 {
		t.Fatalf("first estimate %.1f, want about 40", r)
	}
	// 20 units/s got through from then, over 5 s (the pause included).
	now = now.Add(5 * time.Second)
	p.Done(100)
	p.Refused(0)
	p.Throttled(time.Second)
	if r := p.Rate(); r < 19 || r > 20 {
		t.Fatalf("second estimate %.1f, want just under 20", r)
	}
	// A throttle after a slower stretch lowers the pace to what went.
	now = now.Add(10 * time.Second)
	p.Done(150)
	p.Throttled(time.Second)
	if r := p.Rate(); r < 14 || r > 15 {
		t.Fatalf("third estimate %.1f, want under 15", r)
	}
	// Units refused inside a batch do not count as got through.
	now = now.Add(10 * time.Second)
	p.Done(200)
	p.Refused(100)
	p.Throttled(time.Second)
	if r := p.Rate(); r > 10 {
		t.Fatalf("estimate %.1f with half refused, want under 10", r)
	}
	// Answers during the pause are the same throttle.
	n := p.Throttles()
	now = now.Add(100 * time.Millisecond)
	p.Throttled(2 * time.Second)
	if p.Throttles() != n || !p.until.Equal(now.Add(2*time.Second)) {
		t.Fatalf("an answer during the pause: throttles %d→%d, until %s", n, p.Throttles(), p.until)
	}
	// It grows slowly without throttles once learnt.
	if g := p.pace(p.since.Add(10*time.Second)) / p.rate; g < 1.01 || g > 1.03 {
		t.Fatalf("growth over 10 s: %.3f", g)
	}
}

// Before the first throttle at most probeUnits are in flight; after it,
// the requests that waited for a turn through the pause take new turns.
func TestPacerProbesAndRenewsTurns(t *testing.T) {
	p := NewPacer()
	ctx := context.Background()
	var inflight, most atomic.Int32
	var wg sync.WaitGroup
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := p.Wait(ctx, 10, time.Minute); err != nil {
				t.Error(err)
				return
			}
			n := inflight.Add(1)
			for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
			}
			time.Sleep(2 * time.Millisecond)
			inflight.Add(-1)
			p.Done(10)
			p.Release(10)
		}()
	}
	wg.Wait()
	if m := most.Load(); m > 2 {
		t.Fatalf("%d batches of 10 in flight before any throttle, want at most 2", m)
	}
	// Paced at 100 units/s: a turn given for 100 ms from now does not go
	// during a throttle of 300 ms that comes at 50 ms: it takes a new turn
	// after the pause.
	p.mu.Lock()
	p.rate, p.throttles, p.since = 100, 2, time.Now()
	p.next = time.Now().Add(100 * time.Millisecond)
	p.mu.Unlock()
	p.mu.Lock()
	given := p.next
	p.mu.Unlock()
	done := make(chan time.Time)
	go func() {
		_ = p.Wait(ctx, 10, time.Minute)
		done <- time.Now()
	}()
	// The throttle comes while the turn is taken and not yet due.
	testwait.Until(t, 10*time.Second, func() error {
		p.mu.Lock()
		defer p.mu.Unlock()
		if !p.next.After(given) {
			return errors.New("the waiting request has not taken its turn")
		}
		return nil
	})
	p.Throttled(300 * time.Millisecond)
	p.mu.Lock()
	until := p.until
	p.mu.Unlock()
	if went := <-done; went.Before(until) {
		t.Fatalf("the waiting turn went %s before the end of the pause, want after it", until.Sub(went))
	}
}
