package database

import (
	"context"
	"slices"
	"sync"
)

// turns admits one SQLite write transaction of this process at a time.
// A short write (WriteRelaxed: a job's claim, a directory change) goes
// before the longer transactions waiting, so that a job does not wait to
// start behind the results of others; the longer ones then go in the order
// they came.
type turns struct {
	mu    sync.Mutex
	held  bool
	short []chan struct{} // short writes waiting, in order
	long  []chan struct{}
}

// take waits for the turn; give hands it on.
func (t *turns) take(ctx context.Context, short bool) error {
	t.mu.Lock()
	if !t.held {
		t.held = true
		t.mu.Unlock()
		return nil
	}
	ch := make(chan struct{}, 1)
	if short {
		t.short = append(t.short, ch)
	} else {
		t.long = append(t.long, ch)
	}
	t.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
	}
	t.mu.Lock()
	waiting := false
	for _, q := range []*[]chan struct{}{&t.short, &t.long} {
		if i := slices.Index(*q, ch); i >= 0 {
			*q = slices.Delete(*q, i, i+1)
			waiting = true
		}
	}
	t.mu.Unlock()
	if !waiting {
		<-ch // handed over meanwhile: hand it on
		t.give()
	}
	return ctx.Err()
}

func (t *turns) give() {
	t.mu.Lock()
	defer t.mu.Unlock()
	var next chan struct{}
	switch {
	case len(t.short) > 0:
		next, t.short = t.short[0], t.short[1:]
	case len(t.long) > 0:
		next, t.long = t.long[0], t.long[1:]
	default:
		t.held = false
		return
	}
	next <- struct{}{}
}

// waiting is how many transactions wait for the turn.
func (t *turns) waiting() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.short) + len(t.long)
}
