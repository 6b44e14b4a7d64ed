package scim

import (
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/provisor/provisor/connectors"
	"github.com/provisor/provisor/internal/testwait"
)

// The requests of a connector's batches share patchStreams streams, and a
// batch that comes while a large one runs is served in turn: it ends after
// a few of the large one's requests, not after all of them.
func TestStreamsAreSharedAndTakeTurns(t *testing.T) {
	t.Parallel()
	var s streams
	var mu sync.Mutex
	inflight, most := 0, 0
	var bigStarted, smallStarted atomic.Int32
	track := func(started *atomic.Int32, wait <-chan struct{}) func() {
		return func() {
			started.Add(1)
			mu.Lock()
			inflight++
			most = max(most, inflight)
			mu.Unlock()
			<-wait
			mu.Lock()
			inflight--
			mu.Unlock()
		}
	}
	const large = 3 * patchStreams
	gates := make([]chan struct{}, large)
	big := make([]func(), large)
	for i := range big {
		gates[i] = make(chan struct{})
		big[i] = track(&bigStarted, gates[i])
	}
	open := make(chan struct{})
	close(open)
	small := []func(){track(&smallStarted, open), track(&smallStarted, open)}
	// bigStartedAre waits until n requests of the large batch started: the
	// small batch's requests do not wait, so each stream freed ends up
	// waiting in one of the large batch's.
	bigStartedAre := func(n int) func() error {
		return func() error {
			if got := bigStarted.Load(); int(got) != n {
				return fmt.Errorf("%d requests of the large batch started, want %d", got, n)
			}
			return nil
		}
	}

	bigDone, smallDone := make(chan struct{}), make(chan struct{})
	go func() { s.run(big); close(bigDone) }()
	testwait.Until(t, 10*time.Second, bigStartedAre(patchStreams))
	go func() { s.run(small); close(smallDone) }()
	testwait.Until(t, 10*time.Second, func() error {
		s.mu.Lock()
		defer s.mu.Unlock()
		if len(s.batches) != 2 {
			return fmt.Errorf("%d batches waiting, want 2", len(s.batches))
		}
		return nil
	})
	// Each request of the large batch that ends frees a stream, which
	// takes the next request of the batches in turn.
	released := 0
	for int(smallStarted.Load()) < len(small) {
		if released == 4 {
			t.Fatalf("%d of the small batch's requests started after %d of the large one's ended", smallStarted.Load(), released)
		}
		close(gates[released])
		released++
		testwait.Until(t, 10*time.Second, bigStartedAre(patchStreams+released))
	}
	// Its requests ran before the streams took the large batch's next.
	<-smallDone
	for _, g := range gates[released:] {
		close(g)
	}
	<-bigDone
	if got := bigStarted.Load(); int(got) != large {
		t.Errorf("%d requests of the large batch ran, want %d", got, large)
	}
	if most != patchStreams {
		t.Errorf("at most %d requests in flight, want %d", most, patchStreams)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.batches) != 0 || s.running != 0 {
		t.Errorf("left behind: %d batches, %d streams", len(s.batches), s.running)
	}
}

// The instances the portal opens of one connector share its streams; another
// connector has its own.
func TestInstancesOfAConnectorShareItsStreams(t *testing.T) {
	t.Parallel()
	typ := Type()
	open := func(id string) *Target {
		t.Helper()
		c, err := typ.New(connectors.Config{ID: id, Name: id, Settings: json.RawMessage(`{"base_url":"http://127.0.0.1:9/scim/v2"}`),
			Secrets: map[string]string{SecretToken: "t"}})
		if err != nil {
			t.Fatal(err)
		}
		return c.(*Target)
	}
	a1, a2, b := open("a"), open("a"), open("b")
	if a1 == a2 || a1.streams != a2.streams {
		t.Error("two instances of one connector have streams of their own")
	}
	if a1.streams == b.streams {
		t.Error("two connectors share their streams")
	}
}
