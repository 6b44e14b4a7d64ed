package notifier

import (
	"sync"
	"time"
)

// group runs one statement for many workers. A call waits up to linger
// for others to join it (and joins those waiting while the previous batch
// ran); a batch then takes them all, at most max. Under load, workers
// share statements and commits; alone, a call costs one statement and the
// linger. No goroutine when idle.
type group[T, R any] struct {
	max    int
	linger time.Duration
	run    func(args []T) ([]R, error)

	mu      sync.Mutex
	pending []*groupCall[T, R]
	running bool
}

type groupCall[T, R any] struct {
	arg  T
	at   time.Time
	res  R
	err  error
	done chan struct{}
}

// add queues arg; its call's done is closed when its batch has run.
func (g *group[T, R]) add(arg T) *groupCall[T, R] {
	c := &groupCall[T, R]{arg: arg, at: time.Now(), done: make(chan struct{})}
	g.mu.Lock()
	g.pending = append(g.pending, c)
	if !g.running {
		g.running = true
		go g.drain()
	}
	g.mu.Unlock()
	return c
}

// wait returns the call's result once its batch has run.
func (c *groupCall[T, R]) wait() (R, error) {
	<-c.done
	return c.res, c.err
}

func (g *group[T, R]) drain() {
	for {
		g.mu.Lock()
		n := len(g.pending)
		if n == 0 {
			g.running = false
			g.mu.Unlock()
			return
		}
		if wait := g.linger - time.Since(g.pending[0].at); n < g.max && wait > 0 {
			g.mu.Unlock()
			time.Sleep(wait)
			continue
		}
		n = min(n, g.max)
		batch := g.pending[:n:n]
		g.pending = g.pending[n:]
		g.mu.Unlock()

		args := make([]T, n)
		for i, c := range batch {
			args[i] = c.arg
		}
		res, err := g.run(args)
		for i, c := range batch {
			c.err = err
			if err == nil {
				c.res = res[i]
			}
			close(c.done)
		}
	}
}
