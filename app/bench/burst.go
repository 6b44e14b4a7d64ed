package bench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/provisor/provisor/access"
	"github.com/provisor/provisor/app"
	"github.com/provisor/provisor/app/api"
	"github.com/provisor/provisor/app/config"
	"github.com/provisor/provisor/connectors/builtin"
	"github.com/provisor/provisor/connectors/configured"
	"github.com/provisor/provisor/database"
	"github.com/provisor/provisor/identities"
	"github.com/provisor/provisor/requests"
)

// The burst's target, checked on PostgreSQL: no error, and the 99th
// percentile answer under a second.
const TargetBurstP99 = time.Second

// Burst bench defaults.
const (
	DefaultBurstRequests = 1000
	DefaultBurstClients  = 50
	// DefaultBurstTimeout bounds each request, so that a server that stops
	// answering is counted as errors rather than hanging the bench.
	DefaultBurstTimeout = 10 * time.Second
	// DefaultBurstLimit bounds the whole burst: requests not sent by then
	// count as errors ("not sent"), so that a frozen server costs minutes,
	// not a request timeout per request.
	DefaultBurstLimit = 2 * time.Minute
	// burstPeople and burstGroups make the requests' beneficiaries and
	// entitlements: each request grants one group to one person.
	burstPeople = 100
	burstGroups = 10
)

// BurstOptions say how many submissions are sent and by how many clients.
// A nil *BurstOptions, or zero fields, mean the defaults.
type BurstOptions struct {
	// PostgresURL names the server on which a throwaway database is created.
	PostgresURL string
	// Dialects to measure, in order.
	Dialects []string
	// Requests is how many POST /api/v1/requests are sent in all, by
	// Clients concurrent clients; each is given up after Timeout, and
	// those not sent within Limit are not sent.
	Requests, Clients int
	Timeout, Limit    time.Duration
	// Drain is how long the runs may take to end after the burst before
	// the bench stops waiting for them (default one minute).
	Drain time.Duration
	// Config holds the server settings of the app; its database and data
	// folder are replaced. Nil means the defaults, as `provisor serve`.
	Config       *config.Config
	Logger       *slog.Logger
	ProgressFunc func(format string, args ...any)
}

func (o *BurstOptions) withDefaults() (*BurstOptions, error) {
	out := BurstOptions{}
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
			return nil, fmt.Errorf("bench burst: unknown dialect %q: use %s or %s", d, database.Postgres, database.SQLite)
		}
	}
	if out.Requests <= 0 {
		out.Requests = DefaultBurstRequests
	}
	if out.Clients <= 0 {
		out.Clients = DefaultBurstClients
	}
	if out.Timeout <= 0 {
		out.Timeout = DefaultBurstTimeout
	}
	if out.Limit <= 0 {
		out.Limit = DefaultBurstLimit
	}
	if out.Drain <= 0 {
		out.Drain = time.Minute
	}
	var err error
	if out.Config, out.Logger, out.ProgressFunc, err = appDefaults(out.Config, out.Logger, out.ProgressFunc); err != nil {
		return nil, err
	}
	return &out, nil
}

// BurstReport is the figures of one burst bench run.
type BurstReport struct {
	Requests, Clients int
	Timeout           time.Duration
	// Workers and DBConns are the server's --workers and --db-conns (0: sized by the CPUs).
	Workers, DBConns int
	Results          []*BurstResult
	Took             time.Duration
}

// BurstResult is one dialect's burst.
type BurstResult struct {
	Dialect string
	// DBConns is the PostgreSQL connections the server may open (0 on SQLite).
	DBConns int
	// Answers holds the answer time of every request that got a 2xx answer.
	Answers []time.Duration
	// Errors counts the other requests by kind: "status 503", "timeout",
	// "transport", "not sent".
	Errors map[string]int
	// Elapsed is from the first request sent to the last answer.
	Elapsed time.Duration
	// Drained is from the first request until every run was final, or 0
	// when they were not within the drain time; Completed counts the runs
	// that completed by then (-1: the database did not say).
	Drained   time.Duration
	Completed int
}

// ErrorCount is how many requests failed, whatever the way.
func (r *BurstResult) ErrorCount() int {
	n := 0
	for _, c := range r.Errors {
		n += c
	}
	return n
}

// Pass says whether the burst met the target: no error, p99 under TargetBurstP99.
func (r *BurstResult) Pass() bool {
	return r.ErrorCount() == 0 && len(r.Answers) > 0 && percentile(r.Answers, 0.99) < TargetBurstP99
}

// BurstMain runs `provisor bench burst`: it starts Provisor with the
// process defaults on each dialect, sends the submissions from concurrent
// clients, and prints the figures and a markdown block for BENCHMARKS.md.
func BurstMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	opts, err := parseBurstArgs(args, config.Getenv, stderr)
	if err != nil {
		return err
	}
	start := time.Now()
	rep, err := Burst(ctx, opts)
	if err != nil {
		return err
	}
	rep.Took = time.Since(start)
	rep.Print(stdout)
	return nil
}

func parseBurstArgs(args []string, getenv func(string) string, stderr io.Writer) (*BurstOptions, error) {
	if err := refuseOwnedFlags("bench burst", args); err != nil {
		return nil, err
	}
	o := BurstOptions{}
	var dialects string
	env := ownedEnv(getenv)
	cfg, err := config.Load("provisor bench burst", args, env, stderr, func(f *flag.FlagSet) {
		f.StringVar(&o.PostgresURL, "postgres", DefaultPostgres, "PostgreSQL server on which a throwaway database provisor_bench_<random> is created and dropped")
		f.StringVar(&dialects, "dialects", database.Postgres+","+database.SQLite, "comma-separated dialects to measure")
		f.IntVar(&o.Requests, "requests", DefaultBurstRequests, "submissions (POST /api/v1/requests) to send in all")
		f.IntVar(&o.Clients, "clients", DefaultBurstClients, "concurrent clients sending them")
		f.DurationVar(&o.Timeout, "request-timeout", DefaultBurstTimeout, "time limit of each submission; one without an answer by then counts as an error")
		f.DurationVar(&o.Limit, "burst-limit", DefaultBurstLimit, "time limit of the whole burst; submissions not sent by then count as errors")
	})
	if err != nil {
		return nil, err
	}
	if o.Requests < 1 || o.Clients < 1 || o.Timeout <= 0 || o.Limit <= 0 {
		return nil, errors.New("bench burst: --requests, --clients, --request-timeout and --burst-limit must be positive")
	}
	for _, d := range strings.Split(dialects, ",") {
		if d = strings.TrimSpace(d); d != "" {
			o.Dialects = append(o.Dialects, d)
		}
	}
	if len(o.Dialects) == 0 {
		return nil, errors.New("bench burst: --dialects names no dialect")
	}
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(cfg.LogLevel))
	o.Config = cfg
	o.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lvl}))
	o.ProgressFunc = func(format string, args ...any) { fmt.Fprintf(stderr, "bench burst: "+format+"\n", args...) }
	return &o, nil
}

// Burst measures every dialect of opts in turn.
func Burst(ctx context.Context, opts *BurstOptions) (*BurstReport, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	rep := &BurstReport{Requests: o.Requests, Clients: o.Clients, Timeout: o.Timeout, Workers: o.Config.Workers, DBConns: o.Config.DBConns}
	for _, d := range o.Dialects {
		res, err := burstDialect(ctx, o, d)
		if err != nil {
			return nil, fmt.Errorf("bench burst: %s: %w", d, err)
		}
		rep.Results = append(rep.Results, res)
	}
	return rep, nil
}

// burstDialect starts Provisor (HTTP, workers and scheduler, as `provisor
// serve`) on a database of its own and sends the burst to it.
func burstDialect(ctx context.Context, o *BurstOptions, dialect string) (*BurstResult, error) {
	cfg := *o.Config
	dir, err := os.MkdirTemp("", "provisor-bench-burst-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	progress := func(format string, args ...any) { o.ProgressFunc(dialect+": "+format, args...) }
	cfg.DataDir, cfg.DatabaseURL, cfg.SecretKey = dir, "", randomHex(24)
	res := &BurstResult{Dialect: dialect, Errors: map[string]int{}}
	if dialect == database.Postgres {
		dbURL, drop, err := createPostgres(ctx, o.PostgresURL)
		if err != nil {
			return nil, err
		}
		defer func() {
			if err := drop(); err != nil {
				progress("%v", err)
			} else {
				progress("dropped database %s", dbName(dbURL))
			}
		}()
		cfg.DatabaseURL = dbURL
		res.DBConns = app.DBConns(&cfg)
		progress("created database %s", dbName(dbURL))
	} else {
		progress("database in %s", dir)
	}
	a, err := app.New(ctx, &cfg, o.Logger, nil)
	if err != nil {
		return nil, fmt.Errorf("build app: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		_ = a.DB.Close()
		return nil, err
	}
	runCtx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- a.Run(runCtx, ln) }()
	defer func() {
		stop()
		// A server whose database froze may never finish closing it; the
		// throwaway database is dropped (with its connections) regardless.
		select {
		case err := <-served:
			if err != nil {
				progress("stop: %v", err)
			}
		case <-time.After(time.Minute):
			progress("stop: the server did not stop within a minute; left behind")
		}
	}()
	baseURL := "http://" + ln.Addr().String()

	progress("setup: built-in directory with %d groups, %d people with accounts, an API client", burstGroups, burstPeople)
	fx, err := burstSetup(ctx, a)
	if err != nil {
		return nil, err
	}
	c := &api.Client{BaseURL: baseURL, ClientID: fx.clientID, ClientSecret: fx.secret, HTTP: &http.Client{
		Timeout:   o.Timeout,
		Transport: &http.Transport{MaxIdleConns: o.Clients, MaxIdleConnsPerHost: o.Clients},
	}}
	if err := c.Authenticate(ctx); err != nil {
		return nil, err
	}

	progress("%d submissions from %d clients", o.Requests, o.Clients)
	limit := time.Now().Add(o.Limit)
	var (
		next    atomic.Int64
		mu      sync.Mutex
		wg      sync.WaitGroup
		answers = make([]time.Duration, 0, o.Requests)
	)
	start := time.Now()
	for range o.Clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= o.Requests || ctx.Err() != nil {
					return
				}
				if time.Now().After(limit) {
					mu.Lock()
					res.Errors["not sent"]++
					mu.Unlock()
					continue
				}
				r := requests.Request{Type: requests.AddEntitlements, BeneficiaryType: requests.BeneficiaryIdentity,
					BeneficiaryID: fx.people[i%len(fx.people)], ConnectorID: fx.connectorID,
					Entitlements:  []string{fx.groups[(i/len(fx.people))%len(fx.groups)]},
					Justification: "burst benchmark", Priority: requests.Normal}
				rctx, cancel := context.WithTimeout(ctx, o.Timeout)
				sent := time.Now()
				err := c.Do(rctx, http.MethodPost, "/api/v1/requests", r, nil)
				took := time.Since(sent)
				cancel()
				mu.Lock()
				if kind := errorKind(err); kind != "" {
					res.Errors[kind]++
				} else {
					answers = append(answers, took)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	res.Answers = answers
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	progress("burst sent in %s: %d answered, %d errors; waiting for the runs to end", res.Elapsed.Round(time.Millisecond), len(answers), res.ErrorCount())

	// The reads have the drain time too: a server whose database stopped
	// answering is reported, not waited for.
	drain := o.Drain
	if len(answers) == 0 {
		drain = time.Second // nothing was accepted: nothing to wait for
	}
	dctx, cancel := context.WithTimeout(ctx, drain)
	defer cancel()
	for {
		busy, err := burstBusy(dctx, a)
		if err == nil && busy == 0 {
			res.Drained = time.Since(start)
			break
		}
		if dctx.Err() != nil {
			progress("runs still not final %s after the burst (%d busy; %v)", drain, busy, err)
			break
		}
		if err != nil {
			return nil, err
		}
		if err := sleep(dctx, 50*time.Millisecond); err != nil && ctx.Err() != nil {
			return nil, err
		}
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, n, err := a.Requests.ListInstances(cctx, requests.InstanceFilter{Status: requests.InstanceCompleted, Limit: 1})
	if err != nil {
		progress("count completed runs: %v", err)
		res.Completed = -1
		return res, nil
	}
	res.Completed = int(n) - 1 // the setup's account creation
	return res, nil
}

// errorKind names how a submission failed, or "" when it got a 2xx answer.
func errorKind(err error) string {
	if err == nil {
		return ""
	}
	var ae *api.APIError
	if errors.As(err, &ae) {
		return fmt.Sprintf("status %d", ae.Status)
	}
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return "timeout"
	}
	return "transport"
}

// burstFixture is what the submissions name.
type burstFixture struct {
	connectorID      string
	people, groups   []string
	clientID, secret string
}

// burstSetup makes the directory, its groups, the people with their
// accounts (one workgroup run, waited for) and an API client.
func burstSetup(ctx context.Context, a *app.App) (*burstFixture, error) {
	fx := &burstFixture{}
	dir, err := a.Connectors.Create(ctx, configured.Input{Name: "Burst Directory", Type: builtin.TypeName, Description: "Built-in directory of the burst benchmark"})
	if err != nil {
		return nil, fmt.Errorf("setup: connector: %w", err)
	}
	fx.connectorID = dir.ID
	for i := range burstGroups {
		e, err := a.Identities.CreateEntitlement(ctx, dir.ID, identities.EntitlementInput{Name: fmt.Sprintf("Burst Group %02d", i+1), Kind: "group"})
		if err != nil {
			return nil, fmt.Errorf("setup: entitlement: %w", err)
		}
		fx.groups = append(fx.groups, e.ID)
	}
	for i := range burstPeople {
		u := fmt.Sprintf("burst.user%03d", i)
		id, err := a.Identities.CreateIdentity(ctx, identities.IdentityInput{Username: u, DisplayName: "Burst User " + u, Email: u + "@example.test"})
		if err != nil {
			return nil, fmt.Errorf("setup: identity: %w", err)
		}
		fx.people = append(fx.people, id.ID)
	}
	wg, err := a.Identities.CreateWorkgroup(ctx, identities.WorkgroupInput{Name: "Burst people", Members: fx.people})
	if err != nil {
		return nil, fmt.Errorf("setup: workgroup: %w", err)
	}
	inst, err := a.Requests.Submit(ctx, requests.Request{Type: requests.CreateAccount, BeneficiaryType: requests.BeneficiaryWorkgroup,
		BeneficiaryID: wg.ID, ConnectorID: dir.ID, Justification: "burst benchmark accounts", Priority: requests.Normal},
		requests.StartOpts{Trigger: requests.TriggerSubmission, Actor: actor})
	if err != nil {
		return nil, fmt.Errorf("setup: accounts: %w", err)
	}
	deadline := time.Now().Add(stallAfter)
	for {
		got, err := a.Requests.GetInstance(ctx, inst.ID)
		if err != nil {
			return nil, fmt.Errorf("setup: accounts: %w", err)
		}
		if requests.Final(got.Status) {
			if err := mustComplete(got); err != nil {
				return nil, fmt.Errorf("setup: accounts: %w", err)
			}
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("setup: accounts: run %s still %s after %s", got.ID, got.Status, stallAfter)
		}
		if err := sleep(ctx, 20*time.Millisecond); err != nil {
			return nil, err
		}
	}
	client, secret, err := a.Access.CreateClient(ctx, "Burst bench", []string{access.ScopeRequests, access.ScopeRead}, actor)
	if err != nil {
		return nil, fmt.Errorf("setup: API client: %w", err)
	}
	fx.clientID, fx.secret = client.ClientID, secret
	return fx, nil
}

// burstBusy counts the runs not final yet.
func burstBusy(ctx context.Context, a *app.App) (int, error) {
	total := 0
	for _, s := range []string{requests.InstancePending, requests.InstanceRunning} {
		_, n, err := a.Requests.ListInstances(ctx, requests.InstanceFilter{Status: s, Limit: 1})
		if err != nil {
			return 0, fmt.Errorf("count %s runs: %w", s, err)
		}
		total += int(n)
	}
	return total, nil
}

func (rep *BurstReport) settings() string {
	conns := "default (8 + 4 per CPU)"
	if rep.DBConns > 0 {
		conns = fmt.Sprint(rep.DBConns)
	}
	return fmt.Sprintf("%d submissions (POST /api/v1/requests, one grant on the built-in directory) from %d concurrent clients, %s limit each; server with %d workers, --db-conns %s",
		rep.Requests, rep.Clients, rep.Timeout, rep.Workers, conns)
}

// burstRow is one line of the figures of the burst bench.
type burstRow = tableRow[*BurstResult]

func burstRows() []burstRow {
	return []burstRow{
		{"answer time p50 / p99", func(r *BurstResult) string {
			if len(r.Answers) == 0 {
				return "no answer"
			}
			return ms(percentile(r.Answers, 0.5)) + " / " + ms(percentile(r.Answers, 0.99))
		}},
		{"answer time max", func(r *BurstResult) string {
			if len(r.Answers) == 0 {
				return "no answer"
			}
			return ms(percentile(r.Answers, 1))
		}},
		{"errors (non-2xx or no answer)", func(r *BurstResult) string { return errorText(r) }},
		{"answered submissions/s", func(r *BurstResult) string {
			return fmt.Sprintf("%.0f", rate(len(r.Answers), r.Elapsed))
		}},
		{"first submission to every run final", func(r *BurstResult) string {
			if r.Drained == 0 {
				return "not within the drain time"
			}
			return r.Drained.Round(time.Millisecond).String()
		}},
		{"runs completed", func(r *BurstResult) string {
			if r.Completed < 0 {
				return "not known (the database did not answer)"
			}
			return fmt.Sprintf("%d", r.Completed)
		}},
		{"PostgreSQL connections at most", func(r *BurstResult) string {
			if r.DBConns == 0 {
				return "-"
			}
			return fmt.Sprintf("%d", r.DBConns)
		}},
	}
}

func errorText(r *BurstResult) string {
	n := r.ErrorCount()
	if n == 0 {
		return "0"
	}
	kinds := make([]string, 0, len(r.Errors))
	for k, c := range r.Errors {
		kinds = append(kinds, fmt.Sprintf("%d %s", c, k))
	}
	sort.Strings(kinds)
	return fmt.Sprintf("%d (%s)", n, strings.Join(kinds, ", "))
}

func (rep *BurstReport) targets() []string {
	var out []string
	for _, r := range rep.Results {
		if r.Dialect == database.Postgres {
			out = append(out, fmt.Sprintf("0 errors and p99 answer time < %s: %s errors, p99 %s, %s",
				ms(TargetBurstP99), errorText(r), ms(percentile(r.Answers, 0.99)), passMiss(r.Pass())))
		}
	}
	return out
}

// Print writes the table, the target and the markdown block.
func (rep *BurstReport) Print(w io.Writer) { rep.table().print(w) }

// Markdown writes the figures as a markdown table and the target as a list.
func (rep *BurstReport) Markdown(w io.Writer) { rep.table().markdown(w) }

func (rep *BurstReport) table() table[*BurstResult] {
	t := table[*BurstResult]{title: "Provisor burst bench", settings: rep.settings(), took: rep.Took, results: rep.Results,
		rows: burstRows(), targetsTitle: "Target", targets: rep.targets()}
	for _, r := range rep.Results {
		t.dialects = append(t.dialects, r.Dialect)
	}
	return t
}
