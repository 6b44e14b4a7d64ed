package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/provisor/provisor/app"
	"github.com/provisor/provisor/app/config"
	"github.com/provisor/provisor/database"
)

// DefaultPostgres is the server the PostgreSQL runs create their database on.
const DefaultPostgres = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// Defaults sized so that a whole run takes two to three minutes on two cores.
const (
	DefaultJobs = 10000
	// DefaultTasks runs of ten jobs make as many connector jobs as the raw
	// River run's DefaultJobs: both sides are timed over the same amount of
	// work, start-up and the last batch of completions included.
	DefaultTasks       = 1000
	DefaultLatencyRuns = 50
)

// Options say what to measure. A nil *Options, or zero fields, mean the defaults.
type Options struct {
	// PostgresURL names the server on which a throwaway database is created
	// for the PostgreSQL runs; it needs the right to create databases.
	PostgresURL string
	// Dialects to measure, in order: database.Postgres, database.SQLite.
	Dialects []string
	// Jobs is how many no-op jobs the raw River run drains.
	Jobs int
	// Tasks is how many times the ten-job task is triggered.
	Tasks int
	// LatencyRuns is how many one-job runs the latency is taken from.
	LatencyRuns int
	// Config holds the server settings the measured app is built with
	// (workers, timeouts, attempts); its database and data folder are
	// replaced per dialect. Nil means the defaults.
	Config *config.Config
	// Logger receives the app's logs (default: warnings and errors to stderr
	// of Main, nothing for Run).
	Logger *slog.Logger
	// ProgressFunc, if set, is told what each step is about to do.
	ProgressFunc func(format string, args ...any)
}

func (o *Options) withDefaults() (*Options, error) {
	out := Options{}
	if o != nil {
		out = *o
	}
	if out.PostgresURL == "" {
		out.PostgresURL = DefaultPostgres
	}
	if len(out.Dialects) == 0 {
		out.Dialects = []string{database.Postgres, database.SQLite}
	}
	for _, d := range out.Dialects {
		if d != database.Postgres && d != database.SQLite {
			return nil, fmt.Errorf("bench: unknown dialect %q: use %s or %s", d, database.Postgres, database.SQLite)
		}
	}
	if out.Jobs <= 0 {
		out.Jobs = DefaultJobs
	}
	if out.Tasks <= 0 {
		out.Tasks = DefaultTasks
	}
	if out.LatencyRuns <= 0 {
		out.LatencyRuns = DefaultLatencyRuns
	}
	var err error
	if out.Config, out.Logger, out.ProgressFunc, err = appDefaults(out.Config, out.Logger, out.ProgressFunc); err != nil {
		return nil, err
	}
	return &out, nil
}

// appDefaults fills what every bench's options share: the server settings
// (the defaults when nil), a silent logger and a silent progress function.
func appDefaults(cfg *config.Config, log *slog.Logger, progress func(string, ...any)) (*config.Config, *slog.Logger, func(string, ...any), error) {
	if cfg == nil {
		var err error
		if cfg, err = config.Load("bench", nil, func(string) string { return "" }, io.Discard, nil); err != nil {
			return nil, nil, nil, fmt.Errorf("bench: default settings: %w", err)
		}
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if progress == nil {
		progress = func(string, ...any) {}
	}
	return cfg, log, progress, nil
}

// Main runs `provisor bench`: it parses args, measures every dialect asked
// for, and prints a table and a markdown block for BENCHMARKS.md to stdout.
// Progress goes to stderr. `provisor bench portal` runs PortalMain instead,
// and `provisor bench burst` BurstMain.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "portal" {
		return PortalMain(ctx, args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "burst" {
		return BurstMain(ctx, args[1:], stdout, stderr)
	}
	opts, err := parseArgs(args, config.Getenv, stderr)
	if err != nil {
		return err
	}
	start := time.Now()
	rep, err := Run(ctx, opts)
	if err != nil {
		return err
	}
	rep.Took = time.Since(start)
	rep.Print(stdout)
	return nil
}

// parseArgs reads the bench flags and the server settings (--workers and the
// like, and their PROVISOR_* variables). The database and data folder are
// the bench's own, so their settings are refused rather than ignored.
func parseArgs(args []string, getenv func(string) string, stderr io.Writer) (*Options, error) {
	// Refused before parsing, since the settings' own checks would
	// otherwise complain first (a database URL without a secret key).
	var refused []string
	for _, a := range args {
		if a == "--" {
			break
		}
		name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if strings.HasPrefix(a, "-") && (name == "database" || name == "data-dir" || name == "secret-key") {
			refused = append(refused, "--"+name)
		}
	}
	if len(refused) > 0 {
		return nil, fmt.Errorf("bench: %s not accepted: the bench makes its own databases (use --postgres to name the PostgreSQL server)", strings.Join(refused, ", "))
	}
	var (
		pgURL       string
		dialects    string
		jobs, tasks int
		latencyRuns int
	)
	owned := map[string]bool{"PROVISOR_DATABASE_URL": true, "PROVISOR_DATA_DIR": true, "PROVISOR_SECRET_KEY": true}
	benchEnv := func(key string) string {
		if owned[key] {
			return ""
		}
		if v := getenv(key); v != "" {
			return v
		}
		if key == "PROVISOR_LOG_LEVEL" {
			return "warn" // River's start-up chatter would hide the figures
		}
		return ""
	}
	cfg, err := config.Load("provisor bench", args, benchEnv, stderr, func(f *flag.FlagSet) {
		f.StringVar(&pgURL, "postgres", DefaultPostgres, "PostgreSQL server on which a throwaway database provisor_bench_<random> is created and dropped")
		f.StringVar(&dialects, "dialects", database.Postgres+","+database.SQLite, "comma-separated dialects to measure")
		f.IntVar(&jobs, "jobs", DefaultJobs, "no-op jobs of the raw River run")
		f.IntVar(&tasks, "tasks", DefaultTasks, "runs of the ten-job task (10 connector jobs each)")
		f.IntVar(&latencyRuns, "latency-runs", DefaultLatencyRuns, "one-job runs the latency percentiles are taken from")
	})
	if err != nil {
		return nil, err
	}
	if jobs < 1 || tasks < 1 || latencyRuns < 1 {
		return nil, errors.New("bench: --jobs, --tasks and --latency-runs must be at least 1")
	}
	var list []string
	for _, d := range strings.Split(dialects, ",") {
		if d = strings.TrimSpace(d); d != "" {
			list = append(list, d)
		}
	}
	if len(list) == 0 {
		return nil, errors.New("bench: --dialects names no dialect")
	}
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(cfg.LogLevel))
	return &Options{
		PostgresURL: pgURL, Dialects: list, Jobs: jobs, Tasks: tasks, LatencyRuns: latencyRuns, Config: cfg,
		Logger: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lvl})),
		ProgressFunc: func(format string, args ...any) {
			fmt.Fprintf(stderr, "bench: "+format+"\n", args...)
		},
	}, nil
}

// Run measures every dialect of opts in turn and returns the figures.
func Run(ctx context.Context, opts *Options) (*Report, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	rep := &Report{Workers: o.Config.Workers, Jobs: o.Jobs, Tasks: o.Tasks, LatencyRuns: o.LatencyRuns}
	for _, d := range o.Dialects {
		res, err := runDialect(ctx, o, d)
		if err != nil {
			return nil, fmt.Errorf("bench: %s: %w", d, err)
		}
		rep.Results = append(rep.Results, res)
	}
	return rep, nil
}

// runDialect measures one dialect on a database of its own.
func runDialect(ctx context.Context, o *Options, dialect string) (*Result, error) {
	cfg := *o.Config
	dir, err := os.MkdirTemp("", "provisor-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	cfg.DataDir = dir
	cfg.DatabaseURL = ""
	cfg.SecretKey = randomHex(24) // 48 characters
	if dialect == database.Postgres {
		dbURL, drop, err := createPostgres(ctx, o.PostgresURL)
		if err != nil {
			return nil, err
		}
		defer func() {
			if err := drop(); err != nil {
				o.ProgressFunc("%s: %v", dialect, err)
			} else {
				o.ProgressFunc("%s: dropped database %s", dialect, dbName(dbURL))
			}
		}()
		cfg.DatabaseURL = dbURL
		o.ProgressFunc("%s: created database %s", dialect, dbName(dbURL))
		if free, err := freeConnections(ctx, o.PostgresURL); err == nil && free < app.DBConns(&cfg) {
			o.ProgressFunc("%s: warning: the server has %d connections free and the app may use %d; "+
				"other clients may make the runs fail (\"too many clients\")", dialect, free, app.DBConns(&cfg))
		}
	} else {
		o.ProgressFunc("%s: database in %s", dialect, dir)
	}
	res := &Result{Dialect: dialect}
	env := &env{cfg: &cfg, log: o.Logger, progress: func(format string, args ...any) {
		o.ProgressFunc(dialect+": "+format, args...)
	}}
	if res.River, err = env.rawRiver(ctx, o.Jobs); err != nil {
		return nil, err
	}
	if res.Latency, err = env.latency(ctx, o.LatencyRuns); err != nil {
		return nil, err
	}
	// The same drain without provisioning log entries and with them, in
	// the order off, on, on, off, each half of the runs, on one database:
	// what the entries cost, measured in the same run. The mirrored order
	// cancels what grows steadily meanwhile (the tables, another
	// process's load), which a plain "off, then on" charged to the entries.
	first := o.Tasks / 2
	for _, step := range []struct {
		noLog bool
		runs  int
		into  *ProvisorResult
	}{{true, first, &res.ProvisorNoLog}, {false, first, &res.Provisor}, {false, o.Tasks - first, &res.Provisor},
		{true, o.Tasks - first, &res.ProvisorNoLog}} {
		if step.runs == 0 {
			continue
		}
		env.noLog = step.noLog
		r, err := env.throughput(ctx, step.runs)
		if err != nil {
			return nil, err
		}
		step.into.add(r)
	}
	return res, nil
}

// createPostgres makes an empty database on the server at serverURL and
// returns its URL and the function that drops it.
func createPostgres(ctx context.Context, serverURL string) (string, func() error, error) {
	u, err := url.Parse(serverURL)
	if err != nil {
		return "", nil, fmt.Errorf("--postgres: %w", err)
	}
	cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	admin, err := pgx.Connect(cctx, serverURL)
	if err != nil {
		return "", nil, fmt.Errorf("cannot reach PostgreSQL at %s (--postgres; start it with "+
			"'pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start'): %w", u.Host, err)
	}
	defer admin.Close(context.WithoutCancel(cctx))
	name := "provisor_bench_" + randomHex(6)
	if _, err := admin.Exec(cctx, "CREATE DATABASE "+name); err != nil {
		return "", nil, fmt.Errorf("create database %s: %w", name, err)
	}
	drop := func() error {
		// Dropped even when the bench was interrupted.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(dctx, serverURL)
		if err != nil {
			return fmt.Errorf("drop database %s: %w", name, err)
		}
		defer c.Close(dctx)
		if _, err := c.Exec(dctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			return fmt.Errorf("drop database %s: %w", name, err)
		}
		return nil
	}
	u.Path = "/" + name
	return u.String(), drop, nil
}

// freeConnections is how many more connections the server at serverURL accepts now.
func freeConnections(ctx context.Context, serverURL string) (int, error) {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := pgx.Connect(cctx, serverURL)
	if err != nil {
		return 0, err
	}
	defer c.Close(context.WithoutCancel(cctx))
	var free int
	err = c.QueryRow(cctx, `SELECT current_setting('max_connections')::int - current_setting('superuser_reserved_connections')::int
		- (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')`).Scan(&free)
	return free, err
}

// dbName is the database a PostgreSQL URL names.
func dbName(dbURL string) string {
	u, err := url.Parse(dbURL)
	if err != nil {
		return ""
	}
	return strings.TrimPrefix(u.Path, "/")
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
