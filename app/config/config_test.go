package config

import (
	"io"
	"os"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestDefaultsFlagsAndEnvironment(t *testing.T) {
	c, err := Load("t", nil, env(nil), io.Discard, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != "127.0.0.1:8080" || !c.Embedded() || c.DataDir != "./data" || c.BaseURL != "http://127.0.0.1:8080" ||
		c.Workers != 50 || c.JobTimeout != 2*time.Minute || c.Demo {
		t.Errorf("defaults: %+v", c)
	}
	if c.SQLitePath() != "data/provisor.db" {
		t.Errorf("sqlite path %s", c.SQLitePath())
	}
	c, err = Load("t", []string{"--addr", "0.0.0.0:9000", "--demo", "--workers", "5"},
		env(map[string]string{"PROVISOR_WORKERS": "7", "PROVISOR_LOG_LEVEL": "DEBUG", "PROVISOR_BASE_URL": "https://idm.example.com/"}), io.Discard, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Workers != 5 || c.LogLevel != "debug" || !c.Demo || c.BaseURL != "https://idm.example.com" {
		t.Errorf("flags over environment: %+v", c)
	}
	c, _ = Load("t", []string{"--addr", "0.0.0.0:9000"}, env(nil), io.Discard, nil)
	if c.BaseURL != "http://localhost:9000" {
		t.Errorf("base URL for 0.0.0.0: %s", c.BaseURL)
	}
	c, err = Load("t", nil, env(map[string]string{"PROVISOR_DATABASE_URL": "postgres://u:secret@db:5432/p",
		"PROVISOR_SECRET_KEY": strings.Repeat("k", 32)}), io.Discard, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Embedded() || strings.Contains(c.RedactedDatabase(), "secret") {
		t.Errorf("postgres: embedded=%v redacted=%s", c.Embedded(), c.RedactedDatabase())
	}
}

// Every invalid setting is reported with its variable and flag names.
func TestInvalidSettingsAreNamed(t *testing.T) {
	for _, c := range []struct {
		env  map[string]string
		args []string
		want []string
	}{
		{map[string]string{"PROVISOR_WORKERS": "abc"}, nil, []string{"PROVISOR_WORKERS (--workers)", `"abc" is not a whole number`}},
		{nil, []string{"--workers", "0"}, []string{"PROVISOR_WORKERS"}},
		{map[string]string{"PROVISOR_ADDR": "8080"}, nil, []string{"PROVISOR_ADDR (--addr)"}},
		{map[string]string{"PROVISOR_DATABASE_URL": "mysql://x/y"}, nil, []string{"PROVISOR_DATABASE_URL", `scheme "mysql"`, "PROVISOR_SECRET_KEY"}},
		{map[string]string{"PROVISOR_SECRET_KEY": "short"}, nil, []string{"PROVISOR_SECRET_KEY", "at least 32"}},
		{map[string]string{"PROVISOR_BASE_URL": "ftp://x"}, nil, []string{"PROVISOR_BASE_URL"}},
		{map[string]string{"PROVISOR_LOG_LEVEL": "loud"}, nil, []string{"PROVISOR_LOG_LEVEL"}},
		{map[string]string{"PROVISOR_JOB_TIMEOUT": "5m", "PROVISOR_RESCUE_AFTER": "1m"}, nil, []string{"PROVISOR_RESCUE_AFTER", "longer than the job timeout"}},
		{map[string]string{"PROVISOR_DEMO": "maybe"}, nil, []string{"PROVISOR_DEMO"}},
		{map[string]string{"PROVISOR_DATA_DIR": " "}, nil, []string{"PROVISOR_DATA_DIR"}},
		{nil, []string{"--probe-min", "100ms"}, []string{"PROVISOR_PROBE_MIN (--probe-min)", "from 1s to 24h"}},
		{nil, []string{"--probe-min", "soon"}, []string{"PROVISOR_PROBE_MIN", "not a positive duration"}},
		{nil, []string{"--probe-min", "10m", "--probe-max", "5m"}, []string{"PROVISOR_PROBE_MAX (--probe-max)", "shorter than --probe-min"}},
		{nil, []string{"--probe-max", "30d"}, []string{"PROVISOR_PROBE_MAX"}},
		{nil, []string{"extra"}, []string{`unexpected argument "extra"`}},
		{nil, []string{"--no-such-flag"}, []string{"no-such-flag"}},
	} {
		_, err := Load("t", c.args, env(c.env), io.Discard, nil)
		if err == nil {
			t.Errorf("%v %v: no error", c.env, c.args)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%v %v: %q does not mention %q", c.env, c.args, err, w)
			}
		}
	}
	// Several problems at once are all reported.
	_, err := Load("t", nil, env(map[string]string{"PROVISOR_WORKERS": "x", "PROVISOR_LOG_LEVEL": "y"}), io.Discard, nil)
	if err == nil || !strings.Contains(err.Error(), "PROVISOR_WORKERS") || !strings.Contains(err.Error(), "PROVISOR_LOG_LEVEL") {
		t.Errorf("two problems: %v", err)
	}
}

// The README's configuration table lists every setting with its flag,
// variable and default.
func TestReadmeListsEverySetting(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	for _, s := range Settings {
		row := "| `--" + s.Flag + "` | `" + s.Env + "` |"
		if !strings.Contains(readme, row) {
			t.Errorf("README has no row starting %q", row)
		}
	}
}
