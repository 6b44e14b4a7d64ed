package bench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/provisor/provisor/access"
	"github.com/provisor/provisor/app"
	"github.com/provisor/provisor/app/config"
	"github.com/provisor/provisor/requests"
	"github.com/provisor/provisor/tasks"
)

// The portal's speed targets: server time at the 95th percentile.
const (
	TargetJobsPageP95  = 100 * time.Millisecond
	TargetTasksGridP95 = 50 * time.Millisecond
)

// Portal bench defaults: the sizes the targets are stated for.
const (
	DefaultPortalInstances = 100_000
	DefaultPortalJobs      = 1_000_000
	DefaultPortalTasks     = 10_000
	DefaultPortalSamples   = 30
)

// tasksGridPageSize is the tasks grid's page size (app/web's gridPageSize).
const tasksGridPageSize = 25

// PortalOptions say what the portal bench seeds and how often it asks for
// each page. A nil *PortalOptions, or zero fields, mean the defaults.
type PortalOptions struct {
	// PostgresURL names the server on which the throwaway database is made.
	PostgresURL string
	// Instances, Jobs and Tasks are how many request instances, connector
	// jobs and tasks are seeded.
	Instances, Jobs, Tasks int
	// Samples is how many times each page (filter, size, page) is timed.
	Samples int
	// Config holds the server settings of the app; its database and data
	// folder are replaced. Nil means the defaults.
	Config       *config.Config
	Logger       *slog.Logger
	ProgressFunc func(format string, args ...any)
}

func (o *PortalOptions) withDefaults() (*PortalOptions, error) {
	out := PortalOptions{}
	if o != nil {
		out = *o
	}
	if out.PostgresURL == "" {
		out.PostgresURL = DefaultPostgres
	}
	if out.Instances <= 0 {
		out.Instances = DefaultPortalInstances
	}
	if out.Jobs <= 0 {
		out.Jobs = DefaultPortalJobs
	}
	if out.Jobs < out.Instances || out.Jobs > 30*out.Instances {
		return nil, fmt.Errorf("bench: %d jobs cannot be spread over %d instances at 1 to 30 each", out.Jobs, out.Instances)
	}
	if out.Tasks <= 0 {
		out.Tasks = DefaultPortalTasks
	}
	if out.Samples <= 0 {
		out.Samples = DefaultPortalSamples
	}
	var err error
	if out.Config, out.Logger, out.ProgressFunc, err = appDefaults(out.Config, out.Logger, out.ProgressFunc); err != nil {
		return nil, err
	}
	return &out, nil
}

// PortalReport is the figures of one portal bench run.
type PortalReport struct {
	Instances, Jobs, Tasks, Samples int
	// Seed is the time to write the seeded rows and analyze them.
	Seed time.Duration
	// JobsPage is the Connector Jobs page by status filter ("all" first),
	// then by page size and by page position; JobsAll is every request.
	JobsPage, JobsBySize, JobsByPage []Timing
	JobsAll                          Timing
	// TasksGrid is the tasks grid by query; TasksAll is every request.
	TasksGrid []Timing
	TasksAll  Timing
	Took      time.Duration
}

// Timing is the server time of a set of requests.
type Timing struct {
	Name          string
	Samples       int
	P50, P95, Max time.Duration
}

func timing(name string, d []time.Duration) Timing {
	return Timing{Name: name, Samples: len(d), P50: percentile(d, 0.50), P95: percentile(d, 0.95), Max: percentile(d, 1)}
}

// JobsPass reports whether every status filter of the Connector Jobs page
// met its target.
func (r *PortalReport) JobsPass() bool {
	for _, t := range r.JobsPage {
		if t.P95 >= TargetJobsPageP95 {
			return false
		}
	}
	return len(r.JobsPage) > 0
}

// TasksPass reports whether the tasks grid met its target.
func (r *PortalReport) TasksPass() bool {
	return r.TasksAll.Samples > 0 && r.TasksAll.P95 < TargetTasksGridP95
}

// PortalMain runs `provisor bench portal`: it seeds a throwaway PostgreSQL
// database, times the Connector Jobs page and the tasks grid, and prints the
// figures, the verdicts and a markdown block for BENCHMARKS.md.
func PortalMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	opts, err := parsePortalArgs(args, config.Getenv, stderr)
	if err != nil {
		return err
	}
	start := time.Now()
	rep, err := Portal(ctx, opts)
	if err != nil {
		return err
	}
	rep.Took = time.Since(start)
	rep.Print(stdout)
	return nil
}

func parsePortalArgs(args []string, getenv func(string) string, stderr io.Writer) (*PortalOptions, error) {
	if err := refuseOwnedFlags("bench portal", args); err != nil {
		return nil, err
	}
	o := PortalOptions{}
	env := ownedEnv(getenv)
	cfg, err := config.Load("provisor bench portal", args, env, stderr, func(f *flag.FlagSet) {
		f.StringVar(&o.PostgresURL, "postgres", DefaultPostgres, "PostgreSQL server on which a throwaway database provisor_bench_<random> is created and dropped")
		f.IntVar(&o.Instances, "instances", DefaultPortalInstances, "request instances to seed")
		f.IntVar(&o.Jobs, "jobs", DefaultPortalJobs, "connector jobs to seed (1 to 30 per instance)")
		f.IntVar(&o.Tasks, "tasks", DefaultPortalTasks, "tasks to seed")
		f.IntVar(&o.Samples, "samples", DefaultPortalSamples, "timed requests per page (status filter or query, page size, page)")
	})
	if err != nil {
		return nil, err
	}
	if o.Instances < 1 || o.Jobs < 1 || o.Tasks < 1 || o.Samples < 1 {
		return nil, errors.New("bench portal: --instances, --jobs, --tasks and --samples must be at least 1")
	}
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(cfg.LogLevel))
	o.Config = cfg
	o.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lvl}))
	o.ProgressFunc = func(format string, args ...any) { fmt.Fprintf(stderr, "bench portal: "+format+"\n", args...) }
	return &o, nil
}

// Portal seeds a throwaway PostgreSQL database and times the portal's
// Connector Jobs page and tasks grid through the app's HTTP handler, as a
// signed-in admin.
func Portal(ctx context.Context, opts *PortalOptions) (*PortalReport, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	cfg := *o.Config
	dir, err := os.MkdirTemp("", "provisor-bench-portal-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	dbURL, drop, err := createPostgres(ctx, o.PostgresURL)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err := drop(); err != nil {
			o.ProgressFunc("%v", err)
		} else {
			o.ProgressFunc("dropped database %s", dbName(dbURL))
		}
	}()
	o.ProgressFunc("created database %s", dbName(dbURL))
	cfg.DataDir, cfg.DatabaseURL, cfg.SecretKey = dir, dbURL, randomHex(24)
	// The workers and the scheduler stay off: only the HTTP handler is used.
	a, err := app.New(ctx, &cfg, o.Logger, nil)
	if err != nil {
		return nil, fmt.Errorf("bench portal: build app: %w", err)
	}
	defer a.DB.Close()

	rep := &PortalReport{Instances: o.Instances, Jobs: o.Jobs, Tasks: o.Tasks, Samples: o.Samples}
	o.ProgressFunc("seeding %d request instances, %d connector jobs, %d tasks", o.Instances, o.Jobs, o.Tasks)
	start := time.Now()
	if err := seedPortal(ctx, a, o.Instances, o.Jobs, o.Tasks, o.ProgressFunc); err != nil {
		return nil, fmt.Errorf("bench portal: %w", err)
	}
	rep.Seed = time.Since(start)
	o.ProgressFunc("seeded in %s", rep.Seed.Round(time.Millisecond))
	if err := checkCounts(ctx, a); err != nil {
		return nil, fmt.Errorf("bench portal: %w", err)
	}
	cookie, err := signIn(ctx, a)
	if err != nil {
		return nil, fmt.Errorf("bench portal: %w", err)
	}
	if err := timeJobsPage(ctx, a, cookie, o, rep); err != nil {
		return nil, fmt.Errorf("bench portal: %w", err)
	}
	if err := timeTasksGrid(ctx, a, cookie, o, rep); err != nil {
		return nil, fmt.Errorf("bench portal: %w", err)
	}
	return rep, nil
}

// checkCounts compares the page's counters with counts taken from the jobs
// themselves: a fast page must still say the truth.
func checkCounts(ctx context.Context, a *app.App) error {
	for _, st := range append([]string{"all"}, requests.JobStatuses...) {
		page, err := a.Requests.ListGroups(ctx, requests.GroupFilter{Status: st, PageSize: 10})
		if err != nil {
			return err
		}
		var groups, jobs int64
		q := `SELECT count(DISTINCT instance_id), count(*) FROM connector_jobs`
		var qargs []any
		if st != "all" {
			q += ` WHERE status = $1`
			qargs = append(qargs, st)
		}
		if err := a.DB.Pool.QueryRow(ctx, q, qargs...).Scan(&groups, &jobs); err != nil {
			return err
		}
		if page.TotalGroups != groups || page.TotalJobs != jobs {
			return fmt.Errorf("status %s: the page counts %d runs and %d jobs, the jobs say %d and %d",
				st, page.TotalGroups, page.TotalJobs, groups, jobs)
		}
	}
	return nil
}

// signIn makes an admin and returns the session cookie the portal gave it.
func signIn(ctx context.Context, a *app.App) (*http.Cookie, error) {
	pw := access.GeneratePassword()
	if _, err := a.Access.CreateUser(ctx, access.UserInput{Username: "bench.admin", Email: "bench.admin@example.test",
		Password: pw, Role: access.RoleAdmin}, actor); err != nil {
		return nil, fmt.Errorf("create admin: %w", err)
	}
	_, token, err := a.Access.SignIn(ctx, "bench.admin", pw, "127.0.0.1")
	if err != nil {
		return nil, fmt.Errorf("sign in: %w", err)
	}
	return &http.Cookie{Name: "provisor_session", Value: token}, nil
}

// probe is one page address to time, with the labels it is reported under.
type probe struct {
	path             string
	group, size, pos string
}

// get asks the app for path and returns the server time: from the request
// handed to the handler until the whole response was read back.
func get(a *app.App, cookie *http.Cookie, path, want string) (time.Duration, error) {
	req := httptest.NewRequest(http.MethodGet, path, nil)
	req.AddCookie(cookie)
	start := time.Now()
	resp, err := a.HTTP.Test(req, -1)
	if err != nil {
		return 0, fmt.Errorf("GET %s: %w", path, err)
	}
	body, err := io.ReadAll(resp.Body)
	took := time.Since(start)
	resp.Body.Close()
	if err != nil {
		return 0, fmt.Errorf("GET %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), want) {
		return 0, fmt.Errorf("GET %s: status %d, the page lacks %q: %.300s", path, resp.StatusCode, want, body)
	}
	return took, nil
}

// run times every probe samples times, going round them so that a passing
// disturbance of the machine spreads over all of them; one round before
// warms the caches and is not counted.
func run(a *app.App, cookie *http.Cookie, probes []probe, samples int, want string, progress func(string, ...any)) ([][]time.Duration, error) {
	out := make([][]time.Duration, len(probes))
	for round := -1; round < samples; round++ {
		for i, p := range probes {
			d, err := get(a, cookie, p.path, want)
			if err != nil {
				return nil, err
			}
			if round >= 0 {
				out[i] = append(out[i], d)
			}
		}
		if round >= 0 && (round+1)%10 == 0 {
			progress("%d of %d rounds", round+1, samples)
		}
	}
	return out, nil
}

// groupBy merges the timings of the probes by one of their labels, in the
// order of names.
func groupBy(probes []probe, d [][]time.Duration, label func(probe) string, names []string) []Timing {
	by := map[string][]time.Duration{}
	for i, p := range probes {
		by[label(p)] = append(by[label(p)], d[i]...)
	}
	out := make([]Timing, 0, len(names))
	for _, n := range names {
		out = append(out, timing(n, by[n]))
	}
	return out
}

func flatten(d [][]time.Duration) []time.Duration {
	var out []time.Duration
	for _, x := range d {
		out = append(out, x...)
	}
	return out
}

// positions are the first, a middle and the last page of pages.
func positions(pages int) []struct {
	name string
	page int
} {
	pages = max(pages, 1)
	return []struct {
		name string
		page int
	}{{"first", 1}, {"middle", (pages + 1) / 2}, {"last", pages}}
}

func timeJobsPage(ctx context.Context, a *app.App, cookie *http.Cookie, o *PortalOptions, rep *PortalReport) error {
	filters := append([]string{"all"}, requests.JobStatuses...)
	var probes []probe
	for _, st := range filters {
		for _, size := range []int{10, 25, 50} {
			page, err := a.Requests.ListGroups(ctx, requests.GroupFilter{Status: st, PageSize: size})
			if err != nil {
				return err
			}
			for _, pos := range positions(page.Pages) {
				q := url.Values{"status": {st}, "page": {strconv.Itoa(pos.page)}, "size": {strconv.Itoa(size)}}
				probes = append(probes, probe{path: "/jobs?" + q.Encode(), group: st, size: strconv.Itoa(size), pos: pos.name})
			}
		}
	}
	o.ProgressFunc("Connector Jobs page: %d addresses x %d samples", len(probes), o.Samples)
	d, err := run(a, cookie, probes, o.Samples, "Connector Jobs", o.ProgressFunc)
	if err != nil {
		return err
	}
	rep.JobsPage = groupBy(probes, d, func(p probe) string { return p.group }, filters)
	rep.JobsBySize = groupBy(probes, d, func(p probe) string { return p.size }, []string{"10", "25", "50"})
	rep.JobsByPage = groupBy(probes, d, func(p probe) string { return p.pos }, []string{"first", "middle", "last"})
	rep.JobsAll = timing("all requests", flatten(d))
	return nil
}

func timeTasksGrid(ctx context.Context, a *app.App, cookie *http.Cookie, o *PortalOptions, rep *PortalReport) error {
	queries := []struct {
		name, q, status string
	}{
		{"every task", "", ""},
		{"q=finance", "finance", ""},
		{"q=ali (name or beneficiary)", "ali", ""},
		{"status=idle", "", tasks.StatusIdle},
		{"q=onboard&status=disabled", "onboard", tasks.StatusDisabled},
	}
	var probes []probe
	var names []string
	for _, c := range queries {
		_, total, err := a.Tasks.List(ctx, tasks.ListOpts{Query: c.q, Status: c.status, Limit: 1})
		if err != nil {
			return err
		}
		names = append(names, c.name)
		pages := int((total + tasksGridPageSize - 1) / tasksGridPageSize)
		for _, pos := range positions(pages) {
			q := url.Values{"q": {c.q}, "status": {c.status}, "page": {strconv.Itoa(pos.page)}}
			probes = append(probes, probe{path: "/tasks?" + q.Encode(), group: c.name, pos: pos.name})
		}
	}
	o.ProgressFunc("tasks grid: %d addresses x %d samples", len(probes), o.Samples)
	d, err := run(a, cookie, probes, o.Samples, "Tasks", o.ProgressFunc)
	if err != nil {
		return err
	}
	rep.TasksGrid = groupBy(probes, d, func(p probe) string { return p.group }, names)
	rep.TasksAll = timing("all requests", flatten(d))
	return nil
}

// Print writes the figures, the verdicts and a markdown block.
func (r *PortalReport) Print(w io.Writer) {
	fmt.Fprintf(w, "Portal on PostgreSQL: %d request instances, %d connector jobs, %d tasks (seeded in %s); %d samples per page; run took %s\n\n",
		r.Instances, r.Jobs, r.Tasks, r.Seed.Round(time.Second), r.Samples, r.Took.Round(time.Second))
	line := func(t Timing, target time.Duration) string {
		v := ""
		if target > 0 {
			v = " " + passMiss(t.P95 < target)
		}
		return fmt.Sprintf("  %-32s %6d  %9s  %9s  %9s%s\n", t.Name, t.Samples, ms(t.P50), ms(t.P95), ms(t.Max), v)
	}
	fmt.Fprintf(w, "Connector Jobs page (GET /jobs), server time, target p95 < %s per status filter:\n", ms(TargetJobsPageP95))
	fmt.Fprintf(w, "  %-32s %6s  %9s  %9s  %9s\n", "status filter", "n", "p50", "p95", "max")
	for _, t := range r.JobsPage {
		fmt.Fprint(w, line(t, TargetJobsPageP95))
	}
	for _, t := range append(append([]Timing{}, r.JobsBySize...), r.JobsByPage...) {
		t.Name = map[bool]string{true: "page size ", false: "page "}[t.Name[0] >= '0' && t.Name[0] <= '9'] + t.Name
		fmt.Fprint(w, line(t, 0))
	}
	fmt.Fprint(w, line(r.JobsAll, 0))
	fmt.Fprintf(w, "\nTasks grid (GET /tasks), server time, target p95 < %s:\n", ms(TargetTasksGridP95))
	fmt.Fprintf(w, "  %-32s %6s  %9s  %9s  %9s\n", "query", "n", "p50", "p95", "max")
	for _, t := range r.TasksGrid {
		fmt.Fprint(w, line(t, 0))
	}
	fmt.Fprint(w, line(r.TasksAll, TargetTasksGridP95))
	fmt.Fprintf(w, "\nTargets: Connector Jobs page p95 < %s for every filter: %s; tasks grid p95 < %s: %s\n",
		ms(TargetJobsPageP95), passMiss(r.JobsPass()), ms(TargetTasksGridP95), passMiss(r.TasksPass()))

	fmt.Fprintf(w, "\nMarkdown for BENCHMARKS.md:\n\n")
	fmt.Fprintf(w, "| Connector Jobs page | runs | p50 | p95 | max | p95 < %s |\n| --- | ---: | ---: | ---: | ---: | --- |\n", ms(TargetJobsPageP95))
	for _, t := range r.JobsPage {
		fmt.Fprintf(w, "| status=%s | %d | %s | %s | %s | %s |\n", t.Name, t.Samples, ms(t.P50), ms(t.P95), ms(t.Max), passMiss(t.P95 < TargetJobsPageP95))
	}
	for _, t := range r.JobsByPage {
		fmt.Fprintf(w, "| %s page, every filter | %d | %s | %s | %s | |\n", t.Name, t.Samples, ms(t.P50), ms(t.P95), ms(t.Max))
	}
	fmt.Fprintf(w, "| every request | %d | %s | %s | %s | %s |\n\n", r.JobsAll.Samples, ms(r.JobsAll.P50), ms(r.JobsAll.P95), ms(r.JobsAll.Max), passMiss(r.JobsPass()))
	fmt.Fprintf(w, "| Tasks grid | runs | p50 | p95 | max | p95 < %s |\n| --- | ---: | ---: | ---: | ---: | --- |\n", ms(TargetTasksGridP95))
	for _, t := range r.TasksGrid {
		fmt.Fprintf(w, "| %s | %d | %s | %s | %s | |\n", t.Name, t.Samples, ms(t.P50), ms(t.P95), ms(t.Max))
	}
	fmt.Fprintf(w, "| every request | %d | %s | %s | %s | %s |\n", r.TasksAll.Samples, ms(r.TasksAll.P50), ms(r.TasksAll.P95), ms(r.TasksAll.Max), passMiss(r.TasksPass()))
}

// refuseOwnedFlags refuses the settings a bench owns: it makes its own
// databases, data folder and secret key.
func refuseOwnedFlags(cmd string, args []string) error {
	for _, a := range args {
		name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if strings.HasPrefix(a, "-") && (name == "database" || name == "data-dir" || name == "secret-key") {
			return fmt.Errorf("%s: --%s not accepted: the bench makes its own database (use --postgres to name the server)", cmd, name)
		}
	}
	return nil
}

// ownedEnv is getenv without the settings a bench owns, and with warnings
// as the default log level.
func ownedEnv(getenv func(string) string) func(string) string {
	return func(key string) string {
		switch key {
		case "PROVISOR_DATABASE_URL", "PROVISOR_DATA_DIR", "PROVISOR_SECRET_KEY":
			return ""
		case "PROVISOR_LOG_LEVEL":
			if v := getenv(key); v != "" {
				return v
			}
			return "warn"
		}
		return getenv(key)
	}
}
