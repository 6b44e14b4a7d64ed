package notifier

import "sync"

// group runs one statement for many workers: a call joins the calls
// waiting while the previous batch ran, and the next batch takes them all
// (at most max), so under load workers share statements and commits, and
// alone a call costs what a single statement does. No timer, no goroutine
// when idle.
type group[T, R any] struct {
	max int
	run func(args []T) ([]R, error)

	mu      sync.Mutex
	pending []*groupCall[T, R]
	running bool
}

type groupCall[T, R any] struct {
	arg  T
	res  R
	err  error
	done chan struct{}
}

// do queues arg and waits for its batch's result.
func (g *group[T, R]) do(arg T) (R, error) {
	c := &groupCall[T, R]{arg: arg, done: make(chan struct{})}
	g.mu.Lock()
	g.pending = append(g.pending, c)
	if !g.running {
		g.running = true
		go g.drain()
	}
	g.mu.Unlock()
	<-c.done
	return c.res, c.err
}

func (g *group[T, R]) drain() {
	for {
		g.mu.Lock()
		n := min(len(g.pending), g.max)
		if n == 0 {
			g.running = false
			g.mu.Unlock()
			return
		}
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
