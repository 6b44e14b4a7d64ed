package testwait_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/provisor/provisor/internal/testwait"
)

func TestPollReturnsOnceTheConditionHolds(t *testing.T) {
	var calls atomic.Int32
	err := testwait.Poll(context.Background(), time.Minute, func() error {
		if calls.Add(1) < 3 {
			return errors.New("not yet")
		}
		return nil
	})
	if err != nil || calls.Load() != 3 {
		t.Fatalf("err %v after %d calls, want nil after 3", err, calls.Load())
	}
}

func TestPollReportsTheLastError(t *testing.T) {
	err := testwait.Poll(context.Background(), 30*time.Millisecond, func() error { return errors.New("2 of 3 sent") })
	if err == nil || !strings.Contains(err.Error(), "2 of 3 sent") {
		t.Fatalf("err %v, want the condition's last word", err)
	}
}

func TestFor(t *testing.T) {
	n := 0
	got := testwait.For(t, time.Minute, func() (int, error) {
		if n++; n < 2 {
			return n, errors.New("not yet")
		}
		return n, nil
	})
	if got != 2 {
		t.Fatalf("got %d, want the value of the call that succeeded", got)
	}
}

func TestClock(t *testing.T) {
	c := testwait.NewClock()
	before := time.Now()
	c.Advance(time.Hour)
	if d := c.Now().Sub(before); d < time.Hour || d > time.Hour+time.Minute {
		t.Fatalf("clock %s ahead, want an hour", d)
	}
}
