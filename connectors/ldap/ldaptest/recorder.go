package ldaptest

import (
	"bytes"
	"net"
	"sync"
	"testing"
	"time"
)

// Recorder is a listener on a free 127.0.0.1 port that answers nothing and
// keeps every byte sent to it: a server someone put in a connector's
// settings to see what the connector sends. An LDAP simple bind sends its
// password in clear over ldap://, so the password shows in what arrives.
type Recorder struct {
	// URL is ldap://127.0.0.1:PORT.
	URL string

	ln   net.Listener
	mu   sync.Mutex
	got  bytes.Buffer
	open int        // connections not closed yet
	idle *sync.Cond // signalled when open drops to zero
}

// StartRecorder starts a Recorder, closed when the test ends.
func StartRecorder(t testing.TB) *Recorder {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("ldaptest: recorder: %v", err)
	}
	r := &Recorder{URL: "ldap://" + ln.Addr().String(), ln: ln}
	r.idle = sync.NewCond(&r.mu)
	go r.serve()
	t.Cleanup(func() { _ = ln.Close() })
	return r
}

func (r *Recorder) serve() {
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		r.mu.Lock()
		r.open++
		r.mu.Unlock()
		go func() {
			defer func() {
				r.mu.Lock()
				if r.open--; r.open == 0 {
					r.idle.Broadcast()
				}
				r.mu.Unlock()
			}()
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			buf := make([]byte, 4096)
			for {
				n, err := c.Read(buf)
				r.mu.Lock()
				r.got.Write(buf[:n])
				r.mu.Unlock()
				if err != nil {
					return
				}
			}
		}()
	}
}

// Received returns everything sent so far, once the connections made until
// now have been closed by their clients (or have timed out).
func (r *Recorder) Received() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	for r.open > 0 {
		r.idle.Wait()
	}
	return bytes.Clone(r.got.Bytes())
}
