package ldap

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	ldapv3 "github.com/go-ldap/ldap/v3"

	"github.com/provisor/provisor/connectors"
)

// pool keeps a few bound connections of one connector. A connection serves
// one operation at a time; at most PoolSize exist, and callers beyond that
// wait. Connections that failed are dropped and dialled again, so the pool
// heals by itself after a server restart.
type pool struct {
	cfg   *config
	slots chan struct{}

	mu     sync.Mutex
	idle   []*ldapv3.Conn
	closed bool
}

func newPool(cfg *config) *pool {
	return &pool{cfg: cfg, slots: make(chan struct{}, cfg.PoolSize)}
}

// get returns a bound connection, and whether it was used before.
func (p *pool) get(ctx context.Context) (*ldapv3.Conn, bool, error) {
	select {
	case p.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, false, transient(fmt.Errorf("waiting for a directory connection: %w", ctx.Err()))
	}
	p.mu.Lock()
	// A closed pool (its connector was replaced by one with newer
	// settings) still serves whoever holds it, on connections closed after
	// each use.
	for len(p.idle) > 0 {
		c := p.idle[len(p.idle)-1]
		p.idle = p.idle[:len(p.idle)-1]
		if !c.IsClosing() {
			p.mu.Unlock()
			return c, true, nil
		}
		_ = c.Close()
	}
	p.mu.Unlock()
	c, _, err := dial(ctx, p.cfg, p.cfg.BindDN, p.cfg.bindPassword)
	if err != nil {
		<-p.slots
		return nil, false, err
	}
	return c, false, nil
}

// put gives a connection back; a broken one is closed.
func (p *pool) put(c *ldapv3.Conn, broken bool) {
	p.mu.Lock()
	if broken || p.closed || c.IsClosing() {
		p.mu.Unlock()
		_ = c.Close()
	} else {
		p.idle = append(p.idle, c)
		p.mu.Unlock()
	}
	<-p.slots
}

// Close closes the idle connections; busy ones close when given back, and
// later ones are not kept.
func (p *pool) Close() error {
	p.mu.Lock()
	idle := p.idle
	p.idle, p.closed = nil, true
	p.mu.Unlock()
	for _, c := range idle {
		_ = c.Close()
	}
	return nil
}

// dial connects to the first URL that answers, in the configured order, and
// binds as dn (anonymous when dn is empty). It returns the URL it reached.
// A failure is permanent only when every URL failed for a reason retrying
// cannot fix (certificate, credentials).
func dial(ctx context.Context, cfg *config, dn, password string) (*ldapv3.Conn, string, error) {
	var problems []string
	permanent, unreached, misconfigured := true, true, true
	for _, u := range cfg.URLs {
		c, err := dialOne(ctx, cfg, u)
		if err == nil && dn != "" {
			if err = c.Bind(dn, password); err != nil {
				_ = c.Close()
				err = classify("bind as "+dn, err)
				if connectors.IsPermanent(err) {
					// Every server holds the same credentials: another
					// answer would be the same.
					return nil, u, classify(u, err)
				}
			}
		}
		if err == nil {
			return c, u, nil
		}
		err = classify("", err)
		permanent = permanent && connectors.IsPermanent(err)
		unreached = unreached && connectors.ClassOf(err) == connectors.ClassConnection
		misconfigured = misconfigured && connectors.ClassOf(err) == connectors.ClassConfig
		problems = append(problems, u+": "+err.Error())
		if ctx.Err() != nil {
			break
		}
	}
	err := fmt.Errorf("no directory server answered: %s", strings.Join(problems, "; "))
	switch {
	case misconfigured:
		return nil, "", connectors.Misconfigured(err)
	case permanent:
		return nil, "", connectors.Permanent(err)
	case unreached:
		return nil, "", connectors.Connection(err)
	}
	return nil, "", connectors.Transient(err)
}

// dialOne connects to one URL, with TLS as configured.
func dialOne(ctx context.Context, cfg *config, rawURL string) (*ldapv3.Conn, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, permanent(err)
	}
	d := &net.Dialer{Timeout: cfg.connectTimeout}
	if dl, ok := ctx.Deadline(); ok {
		d.Deadline = dl
	}
	tc, verifyErr := tlsConfig(cfg, u.Hostname())
	c, err := ldapv3.DialURL(rawURL, ldapv3.DialWithDialer(d), ldapv3.DialWithTLSConfig(tc))
	if err == nil && cfg.StartTLS {
		if err = c.StartTLS(tc); err != nil {
			_ = c.Close()
		}
	}
	if err != nil {
		if v := verifyErr(); v != nil {
			return nil, permanent(fmt.Errorf("TLS with %s: %w (%s)", u.Host, v, tlsProblem(v)))
		}
		return nil, err
	}
	c.SetTimeout(cfg.requestTimeout)
	return c, nil
}

// tlsConfig returns the TLS settings for host, and a function that tells
// why the server's certificate was refused, if it was. Verification is done
// here rather than by crypto/tls so that the reason survives StartTLS, whose
// error keeps only the text.
func tlsConfig(cfg *config, host string) (*tls.Config, func() error) {
	name := host
	if cfg.TLSServerName != "" {
		name = cfg.TLSServerName
	}
	var mu sync.Mutex
	var failed error
	tc := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         name,
		InsecureSkipVerify: true, // verified in VerifyConnection unless skip-verify is set
	}
	if !cfg.InsecureSkipVerify {
		roots := cfg.roots
		tc.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("the server sent no certificate")
			}
			inter := x509.NewCertPool()
			for _, c := range cs.PeerCertificates[1:] {
				inter.AddCert(c)
			}
			_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{
				Roots: roots, Intermediates: inter, DNSName: name, CurrentTime: time.Now(),
			})
			if err != nil {
				mu.Lock()
				failed = err
				mu.Unlock()
			}
			return err
		}
	}
	return tc, func() error {
		mu.Lock()
		defer mu.Unlock()
		return failed
	}
}
