package notifier

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/wneessen/go-mail"
	"github.com/wneessen/go-mail/smtp"
)

// idleTimeout is how long an unused SMTP connection is kept. Servers wait
// at least five minutes for a command (RFC 5321 4.5.3.2.7); a connection
// older than this is closed rather than probed.
const idleTimeout = time.Minute

// mailer sends messages over a small pool of SMTP connections kept open
// between deliveries: a connection costs a TCP and TLS handshake, EHLO and
// AUTH, several times what one message costs. A connection that fails is
// closed and the next message dials a new one.
type mailer struct {
	// client checks a connection with a NOOP before each message; sender,
	// for a connection that has just been dialed or delivered a message,
	// does not: a round trip in six, saved for every message but the first
	// a job sends over a pooled connection.
	client, sender *mail.Client
	// slots are the connections in use; next the runs of messages that
	// wait for one, at most one per connection (see queue).
	slots chan struct{}
	next  chan struct{}

	mu     sync.Mutex
	idle   []pooled
	closed bool
}

type pooled struct {
	conn  *smtp.Client
	since time.Time
}

func newMailer(cfg *SMTP, maxConns int) (*mailer, error) {
	tlsConfig := &tls.Config{
		ServerName: cfg.Host, MinVersion: tls.VersionTLS12,
		RootCAs: cfg.RootCAs, InsecureSkipVerify: cfg.InsecureSkipVerify, //nolint:gosec // an operator's explicit choice, logged as a warning
	}
	opts := []mail.Option{mail.WithPort(cfg.Port), mail.WithTLSConfig(tlsConfig)}
	if cfg.Timeout > 0 {
		opts = append(opts, mail.WithTimeout(cfg.Timeout))
	}
	switch cfg.TLS {
	case SMTPTLS:
		opts = append(opts, mail.WithSSL())
	case SMTPNoTLS:
		opts = append(opts, mail.WithTLSPolicy(mail.NoTLS))
	default:
		opts = append(opts, mail.WithTLSPolicy(mail.TLSMandatory))
	}
	if cfg.Username != "" {
		// The strongest mechanism the server offers; PLAIN and LOGIN only
		// over TLS.
		opts = append(opts, mail.WithSMTPAuth(mail.SMTPAuthAutoDiscover), mail.WithUsername(cfg.Username), mail.WithPassword(cfg.Password))
	}
	c, err := mail.NewClient(cfg.Host, opts...)
	if err != nil {
		return nil, fmt.Errorf("notifier: SMTP client: %w", err)
	}
	sender, err := mail.NewClient(cfg.Host, append(opts, mail.WithoutNoop())...)
	if err != nil {
		return nil, fmt.Errorf("notifier: SMTP client: %w", err)
	}
	n := max(maxConns, 1)
	return &mailer{client: c, sender: sender, slots: make(chan struct{}, n), next: make(chan struct{}, n)}, nil
}

// lease is the use of one pooled connection for a run of messages. The
// connection is taken or dialed at the first message, and dialed again
// after a failure.
type lease struct {
	m      *mailer
	conn   *smtp.Client
	reused bool // conn was not dialed for this message: it may have been closed
	// live says conn was just dialed or has just delivered a message: the
	// next message goes without a NOOP first.
	live    bool
	waiting bool // holds a place in the queue, not yet a slot
	started bool // holds a connection slot
}

// queue waits for a place among the runs next in line for a connection:
// one per connection. A run reads its messages there while the
// connections send those of the runs before it, and start then waits for
// the connection.
func (m *mailer) queue(ctx context.Context) (*lease, error) {
	select {
	case m.next <- struct{}{}:
		return &lease{m: m, waiting: true}, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// start waits for a connection slot and gives up the place in the queue.
func (l *lease) start(ctx context.Context) error {
	if l.started {
		return nil
	}
	select {
	case l.m.slots <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	l.started = true
	if l.waiting {
		l.waiting = false
		<-l.m.next
	}
	return nil
}

// send delivers one message. A message the server accepted is sent even if
// what follows (RSET) fails. After an error the connection is closed.
func (l *lease) send(ctx context.Context, msg *mail.Msg) error {
	if l.conn == nil {
		if l.conn = l.m.take(); l.conn != nil {
			l.reused, l.live = true, false
		} else {
			conn, err := l.m.dial(ctx)
			if err != nil {
				return err
			}
			l.conn, l.reused, l.live = conn, false, true
		}
	}
	client := l.m.client
	if l.live {
		client = l.m.sender
	}
	err := client.SendWithSMTPClient(l.conn, msg)
	if err != nil && l.reused && !msg.IsDelivered() && closedConn(err) {
		// The server closed the connection since its last message: nothing
		// was sent. Dial again.
		_ = l.conn.Close()
		l.conn = nil
		conn, derr := l.m.dial(ctx)
		if derr != nil {
			return derr
		}
		l.conn, l.reused = conn, false
		err = l.m.sender.SendWithSMTPClient(l.conn, msg)
	}
	if err != nil {
		_ = l.conn.Close()
		l.conn = nil
		if msg.IsDelivered() {
			return nil
		}
		return err
	}
	l.reused, l.live = true, true
	return nil
}

// release returns the connection to the pool and frees the slot, or the
// place in the queue. It may be called more than once.
func (l *lease) release() {
	if l.conn != nil {
		l.m.put(l.conn)
		l.conn = nil
	}
	if l.started {
		l.started = false
		<-l.m.slots
	}
	if l.waiting {
		l.waiting = false
		<-l.m.next
	}
}

func (m *mailer) dial(ctx context.Context) (*smtp.Client, error) {
	conn, err := m.client.DialToSMTPClientWithContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("connect to the SMTP server: %w", err)
	}
	return conn, nil
}

// closedConn reports whether a send failed, before any of the message went
// out, on a connection the server had closed: the NOOP before the message
// failed, or, without one, MAIL FROM got no reply or a 421 (the server is
// closing the connection).
func closedConn(err error) bool {
	var se *mail.SendError
	if !errors.As(err, &se) {
		return false
	}
	switch se.Reason {
	case mail.ErrConnCheck:
		return true
	case mail.ErrSMTPMailFrom:
		code := se.ErrorCode()
		return code == 0 || code == 421
	}
	return false
}

// take returns the most recently used idle connection, closing those that
// waited too long, or nil.
func (m *mailer) take() *smtp.Client {
	m.mu.Lock()
	defer m.mu.Unlock()
	for len(m.idle) > 0 {
		p := m.idle[len(m.idle)-1]
		m.idle = m.idle[:len(m.idle)-1]
		if time.Since(p.since) < idleTimeout {
			return p.conn
		}
		go func() { _ = m.client.CloseWithSMTPClient(p.conn) }()
	}
	return nil
}

func (m *mailer) put(conn *smtp.Client) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		go func() { _ = m.client.CloseWithSMTPClient(conn) }()
		return
	}
	m.idle = append(m.idle, pooled{conn: conn, since: time.Now()})
}

// close says QUIT on the idle connections; connections in use are closed
// when their message is done.
func (m *mailer) close(ctx context.Context) error {
	m.mu.Lock()
	idle := m.idle
	m.idle, m.closed = nil, true
	m.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range idle {
		wg.Go(func() { _ = m.client.CloseWithSMTPClient(p.conn) })
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
