package main

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestServeRejectsBadConfiguration checks that `provisor serve` with an
// invalid setting stops before it starts anything, exits non-zero, and says
// which setting is wrong by its environment variable.
func TestServeRejectsBadConfiguration(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		env  []string
		args []string
		want []string
	}{
		{name: "workers not a number", env: []string{"PROVISOR_WORKERS=abc"}, want: []string{"PROVISOR_WORKERS", `"abc" is not a whole number`}},
		{name: "workers out of range", args: []string{"--workers", "0"}, want: []string{"PROVISOR_WORKERS (--workers)"}},
		{name: "job timeout", env: []string{"PROVISOR_JOB_TIMEOUT=soon"}, want: []string{"PROVISOR_JOB_TIMEOUT"}},
		{name: "rescue before timeout", env: []string{"PROVISOR_JOB_TIMEOUT=5m", "PROVISOR_RESCUE_AFTER=1m"}, want: []string{"PROVISOR_RESCUE_AFTER", "must be longer than the job timeout"}},
		{name: "max attempts", env: []string{"PROVISOR_MAX_ATTEMPTS=1000"}, want: []string{"PROVISOR_MAX_ATTEMPTS"}},
		{name: "schedule sync", env: []string{"PROVISOR_SCHEDULE_SYNC=0s"}, want: []string{"PROVISOR_SCHEDULE_SYNC"}},
		{name: "log level", args: []string{"--log-level", "loud"}, want: []string{"PROVISOR_LOG_LEVEL (--log-level)"}},
		{name: "address", args: []string{"--addr", "nowhere"}, want: []string{"PROVISOR_ADDR (--addr)"}},
		{name: "base url", args: []string{"--base-url", "ftp://example.test"}, want: []string{"PROVISOR_BASE_URL"}},
		{name: "demo", env: []string{"PROVISOR_DEMO=maybe"}, want: []string{"PROVISOR_DEMO"}},
		{name: "database scheme", args: []string{"--database", "mysql://127.0.0.1/provisor"}, want: []string{"PROVISOR_DATABASE_URL"}},
		{name: "postgres without key", args: []string{"--database", "postgres://127.0.0.1/provisor"}, want: []string{"PROVISOR_SECRET_KEY"}},
		{name: "short key", env: []string{"PROVISOR_SECRET_KEY=short"}, want: []string{"PROVISOR_SECRET_KEY", "at least 32 characters"}},
		{name: "every problem at once", env: []string{"PROVISOR_WORKERS=abc", "PROVISOR_LOG_LEVEL=loud"}, want: []string{"PROVISOR_WORKERS", "PROVISOR_LOG_LEVEL"}},
		{name: "flag wins over environment", env: []string{"PROVISOR_WORKERS=8"}, args: []string{"--workers", "abc"}, want: []string{"PROVISOR_WORKERS", `"abc"`}},
	} {
		t.Run(strings.ReplaceAll(c.name, " ", "_"), func(t *testing.T) {
			t.Parallel()
			dataDir := filepath.Join(t.TempDir(), "data")
			// A setting given twice as a flag takes the last value, so c.args
			// may replace these.
			args := append([]string{"serve", "--data-dir", dataDir, "--addr", freeAddr(t)}, c.args...)
			r := runProvisorWithin(t, 20*time.Second, c.env, args...)
			if r.code == 0 {
				t.Errorf("exit code 0, want an error")
			}
			for _, w := range c.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr lacks %q", w)
				}
			}
			if _, err := os.Stat(dataDir); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the data folder was made (%v): start-up went on after a bad setting", err)
			}
			if t.Failed() {
				t.Logf("stdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
			}
		})
	}

	// A database that does not answer stops start-up too. (Its message
	// names the server rather than PROVISOR_DATABASE_URL.)
	t.Run("database_unreachable", func(t *testing.T) {
		t.Parallel()
		dataDir := filepath.Join(t.TempDir(), "data")
		r := runProvisorWithin(t, 20*time.Second, nil, "serve", "--data-dir", dataDir, "--addr", freeAddr(t),
			"--database", "postgres://postgres@"+freeAddr(t)+"/provisor", "--secret-key", testSecretKey)
		if r.code == 0 || !strings.Contains(r.stderr, "cannot reach PostgreSQL") {
			t.Errorf("exit code %d, stderr:\n%s\nwant an error saying PostgreSQL cannot be reached", r.code, r.stderr)
		}
	})

	// An address in use is found only when the server starts listening.
	t.Run("address_in_use", func(t *testing.T) {
		t.Parallel()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		r := runProvisorWithin(t, 20*time.Second, nil, "serve", "--data-dir", t.TempDir(), "--addr", ln.Addr().String())
		if r.code == 0 || !strings.Contains(r.stderr, "PROVISOR_ADDR") || !strings.Contains(r.stderr, "address already in use") {
			t.Errorf("exit code %d, stderr:\n%s\nwant an error naming PROVISOR_ADDR", r.code, r.stderr)
		}
	})
}
