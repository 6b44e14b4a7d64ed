// Package config loads and validates Provisor's settings from command-line
// flags and PROVISOR_* environment variables. Flags win over the environment,
// the environment wins over the defaults.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
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
	// Demo loads demo data into an empty database.
	Demo bool
}

// Setting describes one configuration setting: its flag, its environment
// variable, its default and what it does. The README's table is made from it.
type Setting struct {
	Flag, Env, Default, Usage string
	// Bool settings are switches: --demo alone means true.
	Bool bool
}

// Settings lists every setting in the order the README shows them.
var Settings = []Setting{
	{"addr", "PROVISOR_ADDR", "127.0.0.1:8080", "host:port to listen on", false},
	{"database", "PROVISOR_DATABASE_URL", "", "postgres://user@host:5432/db; empty for the embedded SQLite database in the data folder", false},
	{"data-dir", "PROVISOR_DATA_DIR", "./data", "folder for the embedded database and the generated secret key", false},
	{"base-url", "PROVISOR_BASE_URL", "", "public URL of the portal (default http://ADDR)", false},
	{"secret-key", "PROVISOR_SECRET_KEY", "", "key that encrypts connector secrets (at least 32 characters); generated into the data folder with the embedded database, required with PostgreSQL", false},
	{"log-level", "PROVISOR_LOG_LEVEL", "info", "debug, info, warn or error", false},
	{"workers", "PROVISOR_WORKERS", "50", "connector jobs run at once by this process (1-1000)", false},
	{"job-timeout", "PROVISOR_JOB_TIMEOUT", "2m", "time limit of one attempt of a connector job", false},
	{"rescue-after", "PROVISOR_RESCUE_AFTER", "5m", "a job running longer than this is taken over by another process (must exceed the job timeout)", false},
	{"max-attempts", "PROVISOR_MAX_ATTEMPTS", "10", "attempts for a job whose errors are transient (1-100)", false},
	{"schedule-sync", "PROVISOR_SCHEDULE_SYNC", "10s", "how often schedules are re-read from the database", false},
	{"demo", "PROVISOR_DEMO", "false", "load demo data into an empty database", true},
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
		Addr:         strings.TrimSpace(*v["addr"]),
		DatabaseURL:  strings.TrimSpace(*v["database"]),
		DataDir:      strings.TrimSpace(*v["data-dir"]),
		BaseURL:      strings.TrimRight(strings.TrimSpace(*v["base-url"]), "/"),
		SecretKey:    *v["secret-key"],
		LogLevel:     strings.ToLower(strings.TrimSpace(*v["log-level"])),
		Workers:      integer("workers", 1, 1000),
		JobTimeout:   duration("job-timeout"),
		RescueAfter:  duration("rescue-after"),
		MaxAttempts:  integer("max-attempts", 1, 100),
		ScheduleSync: duration("schedule-sync"),
	}
	demo, err := strconv.ParseBool(*v["demo"])
	if err != nil {
		bad("demo", "%q is not true or false", *v["demo"])
	}
	c.Demo = demo

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
