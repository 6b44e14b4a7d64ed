package database

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/provisor/provisor/internal/testwait"
)

// A short write goes before the transactions waiting, which go in order;
// a waiter that gives up leaves the line without holding anyone back.
func TestTurnsShortWritesFirst(t *testing.T) {
	t.Parallel()
	var tu turns
	ctx := context.Background()
	if err := tu.take(ctx, false); err != nil {
		t.Fatal(err)
	}
	order := make(chan string, 8)
	// wait starts a goroutine that waits for the turn, and returns once it
	// is the line's n-th.
	wait := func(name string, short bool, ctx context.Context, n int) {
		go func() {
			if err := tu.take(ctx, short); err != nil {
				order <- name + " gave up"
				return
			}
			order <- name
			tu.give()
		}()
		// Let it join the line before the next one.
		testwait.Until(t, 10*time.Second, func() error {
			if in := tu.waiting(); in != n {
				return fmt.Errorf("%d in line, want %d", in, n)
			}
			return nil
		})
	}
	gone, cancel := context.WithCancel(ctx)
	wait("long 1", false, ctx, 1)
	wait("gives up", false, gone, 2)
	wait("long 2", false, ctx, 3)
	wait("short", true, ctx, 4)
	cancel()
	if got := <-order; got != "gives up gave up" {
		t.Fatalf("first answer %q", got)
	}
	tu.give()
	var got []string
	for range 3 {
		got = append(got, <-order)
	}
	if strings.Join(got, ", ") != "short, long 1, long 2" {
		t.Errorf("turns went to %v", got)
	}
	tu.mu.Lock()
	defer tu.mu.Unlock()
	if tu.held || len(tu.short)+len(tu.long) != 0 {
		t.Errorf("held %v with %d waiting", tu.held, len(tu.short)+len(tu.long))
	}
}
