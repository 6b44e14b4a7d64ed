package notifier

import (
	"crypto/x509"
	"time"
)

// SMTP is the mail server emails are sent through. Its fields are those
// of the server's configuration (app/config.SMTP), which converts to it.
type SMTP struct {
	Host     string
	Port     int
	Username string
	Password string
	// TLS is starttls (upgrade a plain connection, required), tls
	// (implicit TLS from the first byte) or none (a local relay).
	TLS string
	// From is the sender address, such as "Provisor <provisor@example.com>".
	From string
	// RootCAs are the certificates trusted for the server; nil means the
	// system's.
	RootCAs *x509.CertPool
	// InsecureSkipVerify accepts any server certificate.
	InsecureSkipVerify bool
	// Timeout bounds connecting and each SMTP command.
	Timeout time.Duration
}

// SMTP TLS modes.
const (
	SMTPStartTLS = "starttls"
	SMTPTLS      = "tls"
	SMTPNoTLS    = "none"
)
