package scim

import "sync"

// patchStreams is how many PATCH requests a connector has in flight at
// once, whatever the number of batches it runs: a SCIM target takes one
// membership a request, and the memberships of a batch are independent of
// each other. The bound is the connector's, not a batch's, so that a
// workgroup's batches run side by side without multiplying the load on the
// target, and so that none of them is left with few requests in flight
// while the others have ended.
const patchStreams = 16

// streams runs the requests of a connector's batches, patchStreams at a
// time, taking the batches' requests in turn: a small batch that comes
// while a large one runs waits for one request of each other batch, not
// for the whole of them. Its goroutines end when nothing is left.
type streams struct {
	mu      sync.Mutex
	batches []*streamBatch // with requests not started
	turn    int
	running int
}

type streamBatch struct {
	sends []func()
	next  int
	wg    sync.WaitGroup
}

// run runs sends on the streams and returns once all have returned.
func (s *streams) run(sends []func()) {
	if len(sends) == 0 {
		return
	}
	b := &streamBatch{sends: sends}
	b.wg.Add(len(sends))
	s.mu.Lock()
	s.batches = append(s.batches, b)
	start := min(patchStreams-s.running, s.waiting())
	s.running += start
	s.mu.Unlock()
	for range start {
		go s.work()
	}
	b.wg.Wait()
}

// waiting counts the requests not started. The caller holds mu.
func (s *streams) waiting() int {
	n := 0
	for _, b := range s.batches {
		n += len(b.sends) - b.next
	}
	return n
}

// work runs requests until none is left.
func (s *streams) work() {
	for {
		s.mu.Lock()
		if len(s.batches) == 0 {
			s.running--
			s.mu.Unlock()
			return
		}
		s.turn %= len(s.batches)
		b := s.batches[s.turn]
		send := b.sends[b.next]
		b.next++
		if b.next == len(b.sends) {
			s.batches = append(s.batches[:s.turn], s.batches[s.turn+1:]...)
		} else {
			s.turn++
		}
		s.mu.Unlock()
		send()
		b.wg.Done()
	}
}
