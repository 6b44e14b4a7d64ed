package bench

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/provisor/provisor/database/dbtest"
)

// tiny are flags that keep a whole run to a few seconds. Few workers keep
// the PostgreSQL pool small beside the other tests.
var tiny = []string{"--jobs", "40", "--tasks", "3", "--latency-runs", "2", "--workers", "4"}

func TestMainSQLite(t *testing.T) {
	t.Parallel()
	var out, errs bytes.Buffer
	args := append([]string{"--dialects", "sqlite"}, tiny...)
	if err := Main(context.Background(), args, &out, &errs); err != nil {
		t.Fatalf("Main: %v\nstderr:\n%s", err, errs.String())
	}
	got := out.String()
	for _, want := range []string{"SQLite", "raw River: start to all completed, jobs/s", "Provisor / raw River",
		"Markdown for BENCHMARKS.md", "| | SQLite |", "| Provisor runs not completed | 0 of 3 |"} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "Targets") {
		t.Errorf("targets are for PostgreSQL only, yet printed:\n%s", got)
	}
}

func TestMainPostgresDropsItsDatabase(t *testing.T) {
	t.Parallel()
	var out, errs bytes.Buffer
	args := append([]string{"--dialects", "postgres", "--postgres", dbtest.ServerURL()}, tiny...)
	if err := Main(context.Background(), args, &out, &errs); err != nil {
		t.Fatalf("Main: %v\nstderr:\n%s", err, errs.String())
	}
	got := out.String()
	for _, want := range []string{"PostgreSQL", "| Provisor runs not completed | 0 of 3 |", "Targets on PostgreSQL:",
		"p50 trigger-to-completion < 100.0 ms"} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	checkDropped(t, errs.String())
}

// checkDropped finds the throwaway database a bench names in its progress
// and checks it is gone.
func checkDropped(t *testing.T, progress string) {
	t.Helper()
	m := regexp.MustCompile(`created database (provisor_bench_[0-9a-f]+)`).FindStringSubmatch(progress)
	if m == nil {
		t.Fatalf("progress does not name the database:\n%s", progress)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, dbtest.ServerURL())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var n int
	if err := c.QueryRow(ctx, "SELECT count(*) FROM pg_database WHERE datname = $1", m[1]).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("database %s is still there", m[1])
	}
}

func TestRunFigures(t *testing.T) {
	t.Parallel()
	rep, err := Run(context.Background(), &Options{Dialects: []string{"sqlite"}, Jobs: 30, Tasks: 2, LatencyRuns: 3})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Results) != 1 {
		t.Fatalf("%d results, want 1", len(rep.Results))
	}
	r := rep.Results[0]
	if r.River.Jobs != 30 || r.River.Elapsed <= 0 || r.River.Worked > r.River.Elapsed {
		t.Errorf("raw River = %+v", r.River)
	}
	if r.Provisor.Jobs != 20 || r.Provisor.Failed != 0 || r.Provisor.Elapsed <= 0 {
		t.Errorf("Provisor = %+v", r.Provisor)
	}
	if len(r.Latency.DB) != 3 || len(r.Latency.Observed) != 3 {
		t.Errorf("latency has %d and %d samples, want 3", len(r.Latency.DB), len(r.Latency.Observed))
	}
	for i, d := range r.Latency.DB {
		if d <= 0 || d > r.Latency.Observed[i] {
			t.Errorf("run %d: created_at to ended_at %s, observed %s", i, d, r.Latency.Observed[i])
		}
	}
}

func TestParseArgs(t *testing.T) {
	t.Parallel()
	env := func(k string) string {
		return map[string]string{"PROVISOR_DATABASE_URL": "postgres://elsewhere/db", "PROVISOR_WORKERS": "7"}[k]
	}
	cases := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"defaults", nil, ""},
		{"own database refused", []string{"--database", "postgres://x/y"}, "--database"},
		{"data dir refused", []string{"--data-dir", "/tmp/x"}, "--data-dir"},
		{"unknown dialect", []string{"--dialects", "mysql"}, "unknown dialect"},
		{"no dialect", []string{"--dialects", " , "}, "no dialect"},
		{"zero runs", []string{"--tasks", "0"}, "at least 1"},
	}
	for _, c := range cases {
		o, err := parseArgs(c.args, env, &bytes.Buffer{})
		if err == nil && c.wantErr == "" {
			if _, err = o.withDefaults(); err != nil {
				t.Errorf("%s: %v", c.name, err)
			}
			if o.Config.Workers != 7 || o.Config.DatabaseURL != "" || o.Jobs != DefaultJobs || len(o.Dialects) != 2 {
				t.Errorf("%s: workers %d, database %q, jobs %d, dialects %v", c.name, o.Config.Workers, o.Config.DatabaseURL, o.Jobs, o.Dialects)
			}
			continue
		}
		if err == nil {
			_, err = o.withDefaults()
		}
		if c.wantErr == "" || err == nil || !strings.Contains(err.Error(), c.wantErr) {
			t.Errorf("%s: err = %v, want one saying %q", c.name, err, c.wantErr)
		}
	}
}

func TestPercentile(t *testing.T) {
	t.Parallel()
	ms := func(n ...int) []time.Duration {
		out := make([]time.Duration, len(n))
		for i, v := range n {
			out[i] = time.Duration(v) * time.Millisecond
		}
		return out
	}
	cases := []struct {
		in   []time.Duration
		q    float64
		want time.Duration
	}{
		{nil, 0.5, 0},
		{ms(7), 0.95, 7 * time.Millisecond},
		{ms(5, 1, 4, 2, 3), 0.5, 3 * time.Millisecond},
		{ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20), 0.95, 19 * time.Millisecond},
	}
	for _, c := range cases {
		if got := percentile(c.in, c.q); got != c.want {
			t.Errorf("percentile(%v, %v) = %s, want %s", c.in, c.q, got, c.want)
		}
	}
}
