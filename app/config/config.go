// Package config loads and validates Provisor's settings from command-line
// flags and PROVISOR_* environment variables. Flags win over the environment,
// the environment wins over the defaults.
package config

import (
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/mail"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Config is everything a Provisor process needs to start.
type Config struct {
	// Addr is the host:port the HTTP server listens on.
	Addr string
	// DatabaseURL is a postgres:// URL, or empty for the embedded SQLite
	// database in DataDir.
	DatabaseURL string
	// DataDir holds the embedded database and the generated secret key.
	DataDir string
	// BaseURL is the address people use to reach the portal; links in emails
	// and the start-up banner use it.
	BaseURL string
	// SecretKey encrypts connector secrets at rest. Generated into DataDir for
	// the embedded database when empty; required with PostgreSQL, where every
	// process must share it.
	SecretKey string
	// LogLevel is debug, info, warn or error.
	LogLevel string
	// Workers is how many connector jobs one process runs at once.
	Workers int
	// DBConns bounds this process's PostgreSQL connections; 0 sizes them
	// by the CPUs.
	DBConns int
	// JobTimeout bounds one attempt of a connector job.
	JobTimeout time.Duration
	// RescueAfter is how long a job may stay running before another process
	// takes it over as abandoned (its worker died). Must exceed JobTimeout.
	RescueAfter time.Duration
	// MaxAttempts is how many times a job with transient errors is tried.
	MaxAttempts int
	// ScheduleSync is how often the scheduler re-reads task schedules, so a
	// schedule changed through another process takes effect.
	ScheduleSync time.Duration
	// StuckAfter flags jobs pending or running longer than this as
	// possibly stuck on the Connector Jobs page.
	StuckAfter time.Duration
	// ApprovalExpiry is how long a request waits for its approvals before
	// it expires.
	ApprovalExpiry time.Duration
	// LogRetention is how long provisioning log entries are kept; a daily
	// job deletes older ones.
	LogRetention time.Duration
	// LogFormat is text or json: the process log's format.
	LogFormat string
	// QuarantineFailures is how many connection failures in a row
	// quarantine a connector.
	QuarantineFailures int
	// QuarantineRatio is the percentage of failed operations, over the
	// last QuarantineWindow, above which a connector is quarantined.
	QuarantineRatio  int
	QuarantineWindow int
	// ProbeMin and ProbeMax bound the doubling wait between probes of a
	// quarantined connector.
	ProbeMin, ProbeMax time.Duration
	// MetricsAddr, when set, is a host:port of its own that serves
	// /metrics without authentication.
	MetricsAddr string
	// MetricsToken, when set, serves /metrics on the main address to
	// requests that bear it (Authorization: Bearer TOKEN).
	MetricsToken string
	// Demo loads demo data into an empty database.
	Demo bool
	// SMTP is where completion emails go; nil when no SMTP server is
	// configured, and then they are held in the outbox.
	SMTP *SMTP
	// SMTPRetryFor is how long a message is retried after a transient
	// failure (connection refused, timeout, 4xx reply) before it fails.
	SMTPRetryFor time.Duration
}

// SMTP is the mail server completion emails are sent through.
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
	// RootCAs are the certificates trusted for the server, from
	// PROVISOR_SMTP_CA_FILE; nil means the system's.
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

// Setting describes one configuration setting: its flag, its environment
// variable, its default and what it does. The README's configuration table
// is written by hand; TestReadmeListsEverySetting fails when it lacks the
// row of a setting.
type Setting struct {
	Flag, Env, Default, Usage string
	// Bool settings are switches: --demo alone means true.
	Bool bool
}

// Settings lists every setting, in the order the README's table lists them.
var Settings = []Setting{
	{"addr", "PROVISOR_ADDR", "127.0.0.1:8080", "host:port to listen on", false},
	{"database", "PROVISOR_DATABASE_URL", "", "postgres://user@host:5432/db; empty for the embedded SQLite database in the data folder", false},
	{"data-dir", "PROVISOR_DATA_DIR", "./data", "folder for the embedded database and the generated secret key", false},
	{"base-url", "PROVISOR_BASE_URL", "", "public URL of the portal (default http://ADDR)", false},
	{"secret-key", "PROVISOR_SECRET_KEY", "", "key that encrypts connector secrets (at least 32 characters); generated into the data folder with the embedded database, required with PostgreSQL", false},
	{"log-level", "PROVISOR_LOG_LEVEL", "info", "debug, info, warn or error", false},
	{"workers", "PROVISOR_WORKERS", "50", "job sets (a beneficiary's connector jobs of one run, in order) run at once by this process (1-1000)", false},
	{"db-conns", "PROVISOR_DB_CONNS", "0", "PostgreSQL connections this process opens at most (8-500); 0 sizes them by the CPUs, 8 + 4 per CPU", false},
	{"job-timeout", "PROVISOR_JOB_TIMEOUT", "2m", "time limit of one attempt of a connector job (one connector operation)", false},
	{"rescue-after", "PROVISOR_RESCUE_AFTER", "5m", "bound of one attempt of a job set or of an email delivery job; one whose worker died is taken over by another process this long after it started, plus at most 30 s (must exceed the job timeout)", false},
	{"max-attempts", "PROVISOR_MAX_ATTEMPTS", "10", "attempts for a job whose errors are transient (1-100)", false},
	{"schedule-sync", "PROVISOR_SCHEDULE_SYNC", "10s", "how often schedules are re-read from the database", false},
	{"stuck-after", "PROVISOR_STUCK_AFTER", "15m", "jobs pending or running longer than this are flagged as possibly stuck", false},
	{"approval-expiry", "PROVISOR_APPROVAL_EXPIRY", "7d", "how long a request that needs approval waits for it before it expires (1h to 90d; such as 72h, 7d or 2w)", false},
	{"log-retention", "PROVISOR_LOG_RETENTION", "90d", "how long provisioning log entries are kept (1d to 3650d; such as 30d or 52w); a daily job deletes older ones", false},
	{"log-format", "PROVISOR_LOG_FORMAT", "text", "format of the process log: text (key=value) or json (one object a line)", false},
	{"quarantine-failures", "PROVISOR_QUARANTINE_FAILURES", "5", "connection failures in a row that quarantine a connector (1-1000); a refusal of its credentials quarantines it at once", false},
	{"quarantine-ratio", "PROVISOR_QUARANTINE_RATIO", "80", "percentage of failed operations over the last --quarantine-window above which a connector is quarantined (1-100)", false},
	{"quarantine-window", "PROVISOR_QUARANTINE_WINDOW", "20", "how many of a connector's last operations the failure ratio is taken over (1-1000)", false},
	{"probe-min", "PROVISOR_PROBE_MIN", "1m", "first wait before a quarantined connector is probed (1s to 24h); it doubles after each failed probe", false},
	{"probe-max", "PROVISOR_PROBE_MAX", "1h", "longest wait between probes of a quarantined connector (at least --probe-min, at most 7 days)", false},
	{"metrics-addr", "PROVISOR_METRICS_ADDR", "", "host:port of a listener of its own that serves /metrics (Prometheus) without authentication; empty for none", false},
	{"metrics-token", "PROVISOR_METRICS_TOKEN", "", "serve /metrics on --addr to requests with Authorization: Bearer TOKEN (at least 20 characters); empty for none", false},
	{"demo", "PROVISOR_DEMO", "false", "load demo data into an empty database", true},
	{"smtp-url", "PROVISOR_SMTP_URL", "", "SMTP server for completion emails, smtp://user:pass@host:587?tls=starttls (tls=tls for implicit TLS, tls=none for a local relay); empty holds emails in the outbox", false},
	{"smtp-from", "PROVISOR_SMTP_FROM", "", "sender address of completion emails, such as Provisor <provisor@example.com>; required with --smtp-url", false},
	{"smtp-ca-file", "PROVISOR_SMTP_CA_FILE", "", "PEM file of the certificates to trust for the SMTP server instead of the system's", false},
	{"smtp-insecure-skip-verify", "PROVISOR_SMTP_INSECURE_SKIP_VERIFY", "false", "accept any SMTP server certificate (testing only)", true},
	{"smtp-timeout", "PROVISOR_SMTP_TIMEOUT", "10s", "time limit of connecting to the SMTP server and of each SMTP command", false},
	{"smtp-retry-for", "PROVISOR_SMTP_RETRY_FOR", "24h", "how long an email is retried after transient failures before it is marked failed", false},
}

// Load reads the settings from args (without the program and subcommand
// names) and the environment given by getenv, then validates them. extra,
// if not nil, may register more flags on the same flag set before parsing.
func Load(name string, args []string, getenv func(string) string, stderr io.Writer, extra func(*flag.FlagSet)) (*Config, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	values := make(map[string]*string, len(Settings))
	for _, s := range Settings {
		def := s.Default
		if v := getenv(s.Env); v != "" {
			def = v
		}
		v := &value{s: def, isBool: s.Bool}
		fs.Var(v, s.Flag, s.Usage+" ("+s.Env+")")
		values[s.Flag] = &v.s
	}
	if extra != nil {
		extra(fs)
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return parse(values)
}

func parse(v map[string]*string) (*Config, error) {
	var errs []error
	bad := func(flagName, format string, a ...any) {
		env := ""
		for _, s := range Settings {
			if s.Flag == flagName {
				env = s.Env
			}
		}
		errs = append(errs, fmt.Errorf("%s (--%s): %s", env, flagName, fmt.Sprintf(format, a...)))
	}
	duration := func(name string) time.Duration {
		d, err := time.ParseDuration(*v[name])
		if err != nil || d <= 0 {
			bad(name, "%q is not a positive duration such as 30s or 5m", *v[name])
		}
		return d
	}
	integer := func(name string, lo, hi int) int {
		n, err := strconv.Atoi(*v[name])
		if err != nil || n < lo || n > hi {
			bad(name, "%q is not a whole number from %d to %d", *v[name], lo, hi)
		}
		return n
	}
	c := &Config{
		Addr:               strings.TrimSpace(*v["addr"]),
		DatabaseURL:        strings.TrimSpace(*v["database"]),
		DataDir:            strings.TrimSpace(*v["data-dir"]),
		BaseURL:            strings.TrimRight(strings.TrimSpace(*v["base-url"]), "/"),
		SecretKey:          *v["secret-key"],
		LogLevel:           strings.ToLower(strings.TrimSpace(*v["log-level"])),
		Workers:            integer("workers", 1, 1000),
		DBConns:            integer("db-conns", 0, 500),
		JobTimeout:         duration("job-timeout"),
		RescueAfter:        duration("rescue-after"),
		MaxAttempts:        integer("max-attempts", 1, 100),
		ScheduleSync:       duration("schedule-sync"),
		StuckAfter:         duration("stuck-after"),
		LogFormat:          strings.ToLower(strings.TrimSpace(*v["log-format"])),
		QuarantineFailures: integer("quarantine-failures", 1, 1000),
		QuarantineRatio:    integer("quarantine-ratio", 1, 100),
		QuarantineWindow:   integer("quarantine-window", 1, 1000),
		ProbeMin:           duration("probe-min"),
		ProbeMax:           duration("probe-max"),
		MetricsAddr:        strings.TrimSpace(*v["metrics-addr"]),
		MetricsToken:       strings.TrimSpace(*v["metrics-token"]),
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		bad("log-format", "%q is not text or json", c.LogFormat)
	}
	if c.ProbeMin > 0 && (c.ProbeMin < time.Second || c.ProbeMin > 24*time.Hour) {
		bad("probe-min", "%s is not from 1s to 24h", c.ProbeMin)
	}
	if c.ProbeMax > 0 && c.ProbeMax > 7*24*time.Hour {
		bad("probe-max", "%s is longer than 7 days", c.ProbeMax)
	}
	if c.ProbeMax < c.ProbeMin {
		bad("probe-max", "%s is shorter than --probe-min (%s)", c.ProbeMax, c.ProbeMin)
	}
	if c.MetricsAddr != "" {
		if _, _, err := net.SplitHostPort(c.MetricsAddr); err != nil {
			bad("metrics-addr", "%q is not host:port (%v)", c.MetricsAddr, err)
		}
	}
	if c.MetricsToken != "" && len(c.MetricsToken) < 20 {
		bad("metrics-token", "must be at least 20 characters long (it is %d)", len(c.MetricsToken))
	}
	if d, err := days(strings.TrimSpace(*v["approval-expiry"])); err != nil || d < time.Hour || d > 90*24*time.Hour {
		bad("approval-expiry", "%q is not a duration from 1h to 90d, such as 72h, 7d or 2w", *v["approval-expiry"])
	} else {
		c.ApprovalExpiry = d
	}
	if d, err := days(strings.TrimSpace(*v["log-retention"])); err != nil || d < 24*time.Hour || d > 3650*24*time.Hour {
		bad("log-retention", "%q is not a duration from 1d to 3650d, such as 30d or 52w", *v["log-retention"])
	} else {
		c.LogRetention = d
	}
	demo, err := strconv.ParseBool(*v["demo"])
	if err != nil {
		bad("demo", "%q is not true or false", *v["demo"])
	}
	c.Demo = demo
	c.SMTPRetryFor = duration("smtp-retry-for")
	c.SMTP = parseSMTP(v, bad, duration("smtp-timeout"))

	if _, port, err := net.SplitHostPort(c.Addr); err != nil {
		bad("addr", "%q is not host:port (%v)", c.Addr, err)
	} else if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		bad("addr", "port %q is not a number from 0 to 65535", port)
	}
	if c.DatabaseURL != "" {
		u, err := url.Parse(c.DatabaseURL)
		switch {
		case err != nil:
			bad("database", "not a URL: %v", err)
		case u.Scheme != "postgres" && u.Scheme != "postgresql":
			bad("database", "scheme %q is not supported; use postgres://, or leave it empty for the embedded database", u.Scheme)
		case u.Host == "" && u.Query().Get("host") == "":
			bad("database", "no host in %q", redact(u))
		}
		if c.SecretKey == "" {
			bad("secret-key", "required with PostgreSQL so that every process decrypts the same connector secrets")
		}
	}
	if c.DataDir == "" {
		bad("data-dir", "must not be empty")
	}
	if c.SecretKey != "" && len(c.SecretKey) < 32 {
		bad("secret-key", "must be at least 32 characters long (it is %d)", len(c.SecretKey))
	}
	if c.BaseURL != "" {
		u, err := url.Parse(c.BaseURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("base-url", "%q is not an http:// or https:// URL", c.BaseURL)
		}
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		bad("log-level", "%q is not debug, info, warn or error", c.LogLevel)
	}
	if c.DBConns > 0 && c.DBConns < 8 {
		bad("db-conns", "%d is too few: the queue alone holds several; give 0 or at least 8", c.DBConns)
	}
	if c.JobTimeout > 0 && c.RescueAfter > 0 && c.RescueAfter <= c.JobTimeout {
		bad("rescue-after", "%s must be longer than the job timeout (%s)", c.RescueAfter, c.JobTimeout)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if c.BaseURL == "" {
		c.BaseURL = "http://" + displayAddr(c.Addr)
	}
	return c, nil
}

// parseSMTP reads the SMTP settings; it returns nil when no server is
// configured. Each problem names the part of the URL that is wrong.
func parseSMTP(v map[string]*string, bad func(flagName, format string, a ...any), timeout time.Duration) *SMTP {
	raw := strings.TrimSpace(*v["smtp-url"])
	from := strings.TrimSpace(*v["smtp-from"])
	caFile := strings.TrimSpace(*v["smtp-ca-file"])
	skip, err := strconv.ParseBool(*v["smtp-insecure-skip-verify"])
	if err != nil {
		bad("smtp-insecure-skip-verify", "%q is not true or false", *v["smtp-insecure-skip-verify"])
	}
	var roots *x509.CertPool
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			bad("smtp-ca-file", "cannot read %s: %v", caFile, err)
		} else {
			roots = x509.NewCertPool()
			if !roots.AppendCertsFromPEM(pem) {
				bad("smtp-ca-file", "%s holds no PEM certificate", caFile)
			}
		}
	}
	if raw == "" {
		if from != "" {
			if _, err := mail.ParseAddress(from); err != nil {
				bad("smtp-from", "%q is not an email address such as Provisor <provisor@example.com>", from)
			}
		}
		return nil
	}
	s := &SMTP{From: from, InsecureSkipVerify: skip, Timeout: timeout}
	u, err := url.Parse(raw)
	if err != nil {
		// url.Parse quotes the whole URL, password included: say only what failed.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		bad("smtp-url", "not a URL such as smtp://user:pass@host:587?tls=starttls: %v", err)
		return nil
	}
	shown := redact(u)
	q := u.Query()
	s.TLS = strings.ToLower(q.Get("tls"))
	switch u.Scheme {
	case "smtp":
		if s.TLS == "" {
			s.TLS = SMTPStartTLS
		}
	case "smtps":
		if s.TLS == "" {
			s.TLS = SMTPTLS
		} else if s.TLS != SMTPTLS {
			bad("smtp-url", "tls=%s in %s: smtps:// always uses implicit TLS; use smtp:// for %s", s.TLS, shown, s.TLS)
		}
	default:
		bad("smtp-url", "scheme %q in %s is not supported; use smtp:// (or smtps:// for implicit TLS)", u.Scheme, shown)
	}
	switch s.TLS {
	case SMTPStartTLS, SMTPTLS, SMTPNoTLS:
	default:
		bad("smtp-url", "tls=%s in %s is not starttls, tls or none", s.TLS, shown)
	}
	for k := range q {
		if k != "tls" {
			bad("smtp-url", "unknown parameter %q in %s; the only parameter is tls", k, shown)
		}
	}
	s.Host = u.Hostname()
	if s.Host == "" {
		bad("smtp-url", "no host in %s", shown)
	}
	switch port := u.Port(); {
	case port == "" && s.TLS == SMTPTLS:
		s.Port = 465
	case port == "" && s.TLS == SMTPNoTLS:
		s.Port = 25
	case port == "":
		s.Port = 587
	default:
		p, err := strconv.Atoi(port)
		if err != nil || p < 1 || p > 65535 {
			bad("smtp-url", "port %q in %s is not a number from 1 to 65535", port, shown)
		}
		s.Port = p
	}
	if u.Path != "" && u.Path != "/" {
		bad("smtp-url", "path %q in %s: an SMTP URL has none", u.Path, shown)
	}
	if u.User != nil {
		s.Username = u.User.Username()
		s.Password, _ = u.User.Password()
	}
	if from == "" {
		bad("smtp-from", "required with PROVISOR_SMTP_URL: the sender address of completion emails")
	} else if a, err := mail.ParseAddress(from); err != nil || !strings.Contains(a.Address, "@") {
		bad("smtp-from", "%q is not an email address such as Provisor <provisor@example.com>", from)
	}
	s.RootCAs = roots
	return s
}

// RedactedSMTP is the SMTP server's URL without its password, for logs, or
// "none" when no server is configured.
func (c *Config) RedactedSMTP() string {
	if c.SMTP == nil {
		return "none"
	}
	u := &url.URL{Scheme: "smtp", Host: net.JoinHostPort(c.SMTP.Host, strconv.Itoa(c.SMTP.Port)), RawQuery: "tls=" + c.SMTP.TLS}
	if c.SMTP.Username != "" {
		u.User = url.User(c.SMTP.Username)
		if c.SMTP.Password != "" {
			u.User = url.UserPassword(c.SMTP.Username, "xxxxx")
		}
	}
	return u.String()
}

// value is a flag value kept as text until it is validated, so that a bad
// value is reported with the setting's name; a bool one can stand alone.
type value struct {
	s      string
	isBool bool
}

func (v *value) String() string {
	if v == nil {
		return ""
	}
	return v.s
}
func (v *value) Set(s string) error { v.s = s; return nil }
func (v *value) IsBoolFlag() bool   { return v.isBool }

// Embedded reports whether the process runs on the embedded SQLite database.
func (c *Config) Embedded() bool { return c.DatabaseURL == "" }

// SQLitePath is the file of the embedded database.
func (c *Config) SQLitePath() string { return filepath.Join(c.DataDir, "provisor.db") }

// RedactedDatabase is the database location without its password, for logs.
func (c *Config) RedactedDatabase() string {
	if c.Embedded() {
		return "sqlite:" + c.SQLitePath()
	}
	u, err := url.Parse(c.DatabaseURL)
	if err != nil {
		return "postgres"
	}
	return redact(u)
}

func redact(u *url.URL) string {
	if _, ok := u.User.Password(); ok {
		u = &url.URL{Scheme: u.Scheme, User: url.UserPassword(u.User.Username(), "xxxxx"), Host: u.Host, Path: u.Path, RawQuery: u.RawQuery}
	}
	return u.String()
}

// displayAddr turns a listen address into one a browser can open.
func displayAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}

// Getenv is os.Getenv, named for callers that pass the environment in.
func Getenv(key string) string { return os.Getenv(key) }

// days reads a duration that may also be in days or weeks ("7d", "2w"),
// as long-lived settings are written.
func days(s string) (time.Duration, error) {
	for suffix, unit := range map[string]time.Duration{"d": 24 * time.Hour, "w": 7 * 24 * time.Hour} {
		if n, ok := strings.CutSuffix(s, suffix); ok {
			v, err := strconv.Atoi(n)
			if err != nil || v < 0 || v > 10000 {
				return 0, fmt.Errorf("%q is not a whole number of %s", n, map[string]string{"d": "days", "w": "weeks"}[suffix])
			}
			return time.Duration(v) * unit, nil
		}
	}
	return time.ParseDuration(s)
}
