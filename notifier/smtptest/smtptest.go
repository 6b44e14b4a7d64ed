// Package smtptest runs a real SMTP server (github.com/emersion/go-smtp) in
// the test process: STARTTLS with a self-signed certificate made for the
// test, AUTH PLAIN only after STARTTLS, and every message kept (or only
// counted) for the test to inspect. It can be stopped and started again on
// the same port, told to refuse messages with a given reply, and made to
// close connections.
package smtptest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Options shape the server. A nil *Options means STARTTLS and AUTH PLAIN
// with the user "provisor" and the password "s3cret pass".
type Options struct {
	// NoTLS serves plain SMTP without STARTTLS (and then without AUTH).
	NoTLS bool
	// Username and Password are what AUTH PLAIN accepts; empty Username
	// with TLS means the defaults.
	Username, Password string
	// Discard counts messages without keeping them (a sink for benchmarks).
	Discard bool
}

// Message is one message the server accepted.
type Message struct {
	From   string
	To     []string
	Raw    []byte
	Header mail.Header
	Body   []byte
}

// Server is a running SMTP server on 127.0.0.1.
type Server struct {
	// Addr is host:port; Port the port alone.
	Addr string
	Port int
	// CAFile is a PEM file of the server's certificate, to trust it.
	CAFile   string
	Username string
	Password string

	t       testing.TB
	opts    Options
	tlsConf *tls.Config

	mu       sync.Mutex
	srv      *smtp.Server
	messages []Message
	accepted int
	datas    map[string]int
	reply    func(m *Message, attempt int) *smtp.SMTPError
	conns    map[*smtp.Conn]bool
	hangUpAt int           // see HangUpAfter
	delay    time.Duration // see SetDelay
}

// Start starts a server, stopped when the test ends.
func Start(t testing.TB, opts *Options) *Server {
	t.Helper()
	if opts == nil {
		opts = &Options{}
	}
	s := &Server{t: t, opts: *opts, datas: map[string]int{}, conns: map[*smtp.Conn]bool{}}
	if !opts.NoTLS {
		s.Username, s.Password = opts.Username, opts.Password
		if s.Username == "" {
			s.Username, s.Password = "provisor", "s3cret pass"
		}
		cert, caPEM := selfSigned(t)
		s.tlsConf = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		s.CAFile = filepath.Join(t.TempDir(), "smtp-ca.pem")
		if err := os.WriteFile(s.CAFile, caPEM, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("smtptest: listen: %v", err)
	}
	s.Addr = ln.Addr().String()
	s.Port = ln.Addr().(*net.TCPAddr).Port
	s.serve(ln)
	t.Cleanup(s.Stop)
	return s
}

// URL is the server as PROVISOR_SMTP_URL, credentials included.
func (s *Server) URL() string {
	u := url.URL{Scheme: "smtp", Host: s.Addr, RawQuery: "tls=starttls"}
	if s.opts.NoTLS {
		u.RawQuery = "tls=none"
	}
	if s.Username != "" {
		u.User = url.UserPassword(s.Username, s.Password)
	}
	return u.String()
}

// Args are the server flags that make Provisor use this server.
func (s *Server) Args() []string {
	args := []string{"--smtp-url", s.URL(), "--smtp-from", "Provisor <provisor@example.test>"}
	if s.CAFile != "" {
		args = append(args, "--smtp-ca-file", s.CAFile)
	}
	return args
}

func (s *Server) serve(ln net.Listener) {
	srv := smtp.NewServer(&backend{s})
	srv.Domain = "mx.example.test"
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	srv.MaxMessageBytes = 10 << 20
	srv.AllowInsecureAuth = false
	srv.TLSConfig = s.tlsConf
	srv.ErrorLog = quietLog{}
	s.mu.Lock()
	s.srv = srv
	s.mu.Unlock()
	go func() { _ = srv.Serve(ln) }()
}

// Stop closes the listener and every connection: the server is down.
func (s *Server) Stop() {
	s.mu.Lock()
	srv := s.srv
	s.srv = nil
	s.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	}
}

// Restart starts the server again on the same port after Stop.
func (s *Server) Restart() {
	s.t.Helper()
	var ln net.Listener
	var err error
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if ln, err = net.Listen("tcp", s.Addr); err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		s.t.Fatalf("smtptest: listen again on %s: %v", s.Addr, err)
	}
	s.serve(ln)
}

// SetReply makes the server answer the end of each message's DATA with
// what fn returns (nil accepts it); attempt counts the DATA commands of the
// message's Message-ID, from 1. nil restores accepting everything.
func (s *Server) SetReply(fn func(m *Message, attempt int) *smtp.SMTPError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reply = fn
}

// HangUpAfter makes the server close a connection, without a reply, at
// the first MAIL FROM once n messages were accepted in all: a server that
// drops a connection between two messages. It happens once.
func (s *Server) HangUpAfter(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hangUpAt = n
}

// SetDelay makes the server wait d before it answers each MAIL FROM: a
// slow server, so that deliveries are still under way a while after they
// started. The wait comes before the message is sent, so a client that goes
// away meanwhile has not had it accepted. 0 answers at once again.
func (s *Server) SetDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delay = d
}

// HangUp closes every open connection and goes on listening, as a server
// does with connections that stayed idle too long.
func (s *Server) HangUp() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		_ = c.Close()
	}
}

// Messages returns the messages accepted so far.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.messages...)
}

// Accepted returns how many messages were accepted (kept or discarded).
func (s *Server) Accepted() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.accepted
}

// Connections returns how many SMTP connections were opened.
func (s *Server) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// ByMessageID counts accepted messages per Message-ID header.
func (s *Server) ByMessageID() map[string]int {
	out := map[string]int{}
	for _, m := range s.Messages() {
		out[m.Header.Get("Message-Id")]++
	}
	return out
}

// Wait waits until n messages were accepted, and fails the test after timeout.
func (s *Server) Wait(t testing.TB, n int, timeout time.Duration) []Message {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for s.Accepted() < n {
		if time.Now().After(deadline) {
			t.Fatalf("smtptest: %d messages after %s, want %d", s.Accepted(), timeout, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return s.Messages()
}

// Parts decodes a multipart message into its parts' bodies by media type
// (text/plain, text/html), decoding quoted-printable and base64.
func (m *Message) Parts() (map[string]string, error) {
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	if !strings.HasPrefix(mt, "multipart/") {
		b, err := decode(m.Header.Get("Content-Transfer-Encoding"), bytes.NewReader(m.Body))
		out[mt] = string(b)
		return out, err
	}
	r := multipart.NewReader(bytes.NewReader(m.Body), params["boundary"])
	for {
		p, err := r.NextRawPart()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		pt, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
		b, err := decode(p.Header.Get("Content-Transfer-Encoding"), p)
		if err != nil {
			return nil, err
		}
		out[pt] = string(b)
	}
}

func decode(cte string, r io.Reader) ([]byte, error) {
	switch strings.ToLower(cte) {
	case "quoted-printable":
		r = quotedprintable.NewReader(r)
	case "base64":
		b, err := io.ReadAll(r)
		if err != nil {
			return nil, err
		}
		return decodeBase64(b)
	}
	return io.ReadAll(r)
}

type backend struct{ s *Server }

func (b *backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	// Called on every EHLO, so again after STARTTLS: count connections.
	b.s.mu.Lock()
	b.s.conns[c] = true
	b.s.mu.Unlock()
	return &session{s: b.s, c: c}, nil
}

type session struct {
	s      *Server
	c      *smtp.Conn
	authed bool
	from   string
	to     []string
}

func (se *session) AuthMechanisms() []string {
	if se.s.Username == "" {
		return nil
	}
	return []string{sasl.Plain}
}

func (se *session) Auth(mech string) (sasl.Server, error) {
	if mech != sasl.Plain || se.s.Username == "" {
		return nil, smtp.ErrAuthUnknownMechanism
	}
	return sasl.NewPlainServer(func(identity, username, password string) error {
		if username != se.s.Username || password != se.s.Password {
			return &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "Authentication credentials invalid"}
		}
		se.authed = true
		return nil
	}), nil
}

func (se *session) Mail(from string, _ *smtp.MailOptions) error {
	if se.s.Username != "" && !se.authed {
		return &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "Authentication required"}
	}
	s := se.s
	s.mu.Lock()
	hangUp := s.hangUpAt > 0 && s.accepted >= s.hangUpAt
	if hangUp {
		s.hangUpAt = 0
	}
	delay := s.delay
	s.mu.Unlock()
	time.Sleep(delay)
	if hangUp {
		_ = se.c.Close()
		return errors.New("smtptest: hung up")
	}
	se.from = from
	return nil
}

func (se *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	se.to = append(se.to, to)
	return nil
}

func (se *session) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s := se.s
	if s.opts.Discard {
		s.mu.Lock()
		s.accepted++
		s.mu.Unlock()
		return nil
	}
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: "unreadable message: " + err.Error()}
	}
	body, _ := io.ReadAll(msg.Body)
	m := Message{From: se.from, To: append([]string(nil), se.to...), Raw: raw, Header: msg.Header, Body: body}
	// The reply is decided under the lock, but not the wait: a slow message
	// must not hold up the others.
	s.mu.Lock()
	id := m.Header.Get("Message-Id")
	s.datas[id]++
	var rerr *smtp.SMTPError
	if s.reply != nil {
		rerr = s.reply(&m, s.datas[id])
	}
	if rerr == nil {
		s.messages = append(s.messages, m)
		s.accepted++
	}
	s.mu.Unlock()
	if rerr != nil {
		return rerr
	}
	return nil
}

func (se *session) Reset()        { se.from, se.to = "", nil }
func (se *session) Logout() error { return nil }

type quietLog struct{}

func (quietLog) Printf(string, ...any) {}
func (quietLog) Println(...any)        {}

// selfSigned makes a certificate for 127.0.0.1 and localhost that is its
// own CA, and its PEM.
func selfSigned(t testing.TB) (tls.Certificate, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "smtptest"},
		NotBefore:    time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, IsCA: true,
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	cert, err := tls.X509KeyPair(certPEM, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}))
	if err != nil {
		t.Fatal(err)
	}
	return cert, certPEM
}

// Reply builds an SMTP reply such as Reply(451, "4.3.0", "try again later").
func Reply(code int, enhanced, text string) *smtp.SMTPError {
	var e smtp.EnhancedCode
	if _, err := fmt.Sscanf(enhanced, "%d.%d.%d", &e[0], &e[1], &e[2]); err != nil {
		e = smtp.EnhancedCodeNotSet
	}
	return &smtp.SMTPError{Code: code, EnhancedCode: e, Message: text}
}

func decodeBase64(b []byte) ([]byte, error) {
	clean := strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' || r == ' ' {
			return -1
		}
		return r
	}, string(b))
	return base64.StdEncoding.DecodeString(clean)
}
