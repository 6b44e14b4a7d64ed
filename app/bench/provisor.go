package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/provisor/provisor/app"
	"github.com/provisor/provisor/app/config"
	"github.com/provisor/provisor/connectors/builtin"
	"github.com/provisor/provisor/connectors/configured"
	"github.com/provisor/provisor/identities"
	"github.com/provisor/provisor/requests"
	"github.com/provisor/provisor/tasks"
)

// stallAfter is how long a run may make no progress before the bench gives up.
const stallAfter = time.Minute

// actor is who the bench's changes are recorded as made by.
const actor = "bench"

// env is one dialect's database and the settings apps are built with.
type env struct {
	cfg      *config.Config
	log      *slog.Logger
	progress func(format string, args ...any)
	fx       *fixture
	// noLog builds the apps without provisioning log entries.
	noLog bool
}

// fixture is what the runs work on: one identity with an account on a
// built-in directory of ten groups, and two tasks granting it groups.
type fixture struct {
	identityID, connectorID string
	// tenJobs grants all ten groups: a run is ten connector jobs.
	tenJobs string
	// oneJob grants the first group: a run is one connector job.
	oneJob string
}

// newApp builds Provisor as `provisor serve` does; its workers start when
// the caller starts a.Queue. The HTTP server and the scheduler stay off:
// nothing reaches them here.
func (e *env) newApp(ctx context.Context) (*app.App, error) {
	a, err := app.New(ctx, e.cfg, e.log, &app.Options{NoProvisioningLog: e.noLog})
	if err != nil {
		return nil, fmt.Errorf("build app: %w", err)
	}
	return a, nil
}

// closeApp stops the workers, letting running jobs finish, and closes the database.
func (e *env) closeApp(a *app.App) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := a.Queue.Stop(ctx); err != nil {
		e.progress("stop workers: %v", err)
	}
	if err := a.DB.Close(); err != nil {
		e.progress("close database: %v", err)
	}
}

// setup makes the fixture through the services, as an admin would.
func setup(ctx context.Context, a *app.App) (*fixture, error) {
	id, err := a.Identities.CreateIdentity(ctx, identities.IdentityInput{Username: "bench.user", DisplayName: "Bench User", Email: "bench.user@example.test"})
	if err != nil {
		return nil, fmt.Errorf("setup: identity: %w", err)
	}
	dir, err := a.Connectors.Create(ctx, configured.Input{Name: "Bench Directory", Type: builtin.TypeName, Description: "Built-in directory of the benchmark"})
	if err != nil {
		return nil, fmt.Errorf("setup: connector: %w", err)
	}
	ents := make([]string, 10)
	for i := range ents {
		e, err := a.Identities.CreateEntitlement(ctx, dir.ID, identities.EntitlementInput{Name: fmt.Sprintf("Bench Group %02d", i+1), Kind: "group"})
		if err != nil {
			return nil, fmt.Errorf("setup: entitlement: %w", err)
		}
		ents[i] = e.ID
	}
	fx := &fixture{identityID: id.ID, connectorID: dir.ID}
	for _, t := range []struct {
		name string
		ents []string
		id   *string
	}{
		{"Bench: ten grants", ents, &fx.tenJobs},
		{"Bench: one grant", ents[:1], &fx.oneJob},
	} {
		name, desc := t.name, "Benchmark task"
		task, err := a.Tasks.Create(ctx, tasks.Input{Name: &name, Description: &desc, Request: &requests.Request{
			Type: requests.AddEntitlements, BeneficiaryType: requests.BeneficiaryIdentity, BeneficiaryID: id.ID,
			ConnectorID: dir.ID, Entitlements: t.ents, Justification: "benchmark", Priority: requests.Normal,
		}}, actor)
		if err != nil {
			return nil, fmt.Errorf("setup: task %s: %w", name, err)
		}
		*t.id = task.ID
	}
	return fx, nil
}

// createAccount runs a create_account request for the fixture's identity to
// completion: grants on the built-in directory need the account.
func createAccount(ctx context.Context, a *app.App, fx *fixture) error {
	inst, err := a.Requests.Submit(ctx, requests.Request{
		Type: requests.CreateAccount, BeneficiaryType: requests.BeneficiaryIdentity, BeneficiaryID: fx.identityID,
		ConnectorID: fx.connectorID, Justification: "benchmark account", Priority: requests.Normal,
	}, requests.StartOpts{Trigger: requests.TriggerSubmission, Actor: actor})
	if err != nil {
		return fmt.Errorf("create account: %w", err)
	}
	deadline := time.Now().Add(stallAfter)
	for {
		got, err := a.Requests.GetInstance(ctx, inst.ID)
		if err != nil {
			return fmt.Errorf("create account: %w", err)
		}
		if requests.Final(got.Status) {
			return mustComplete(got)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("create account: run %s still %s after %s", got.ID, got.Status, stallAfter)
		}
		if err := sleep(ctx, 10*time.Millisecond); err != nil {
			return err
		}
	}
}

// mustComplete says why a final run did not complete, naming its first failed job.
func mustComplete(inst *requests.Instance) error {
	if inst.Status == requests.InstanceCompleted {
		return nil
	}
	for _, j := range inst.Jobs {
		if j.Status != requests.JobCompleted {
			return fmt.Errorf("run %s %s: job #%d (%s) %s: %s", inst.ID, inst.Status, j.Seq, j.Kind, j.Status, j.Message)
		}
	}
	return fmt.Errorf("run %s %s", inst.ID, inst.Status)
}

// latency makes the fixture, then triggers the one-job task runs times, one
// after the other on an otherwise idle process, and takes each run's
// trigger-to-completion time two ways: from the run's created_at to its
// ended_at as recorded in the database, and as seen by the caller (from
// the Trigger call to a 2 ms poll of the task seeing the run settled).
func (e *env) latency(ctx context.Context, runs int) (LatencyResult, error) {
	res := LatencyResult{Runs: runs}
	a, err := e.newApp(ctx)
	if err != nil {
		return res, err
	}
	defer e.closeApp(a)
	e.progress("setup: identity, built-in directory with 10 groups, tasks, account")
	if e.fx, err = setup(ctx, a); err != nil {
		return res, err
	}
	if err := a.Queue.Start(ctx); err != nil {
		return res, fmt.Errorf("start workers: %w", err)
	}
	if err := createAccount(ctx, a, e.fx); err != nil {
		return res, err
	}
	e.progress("latency: %d one-job runs, one at a time", runs)
	// The first run warms connections and caches up; it is not counted.
	for i := -1; i < runs; i++ {
		// Let the queue's batched bookkeeping of the previous run settle.
		if err := sleep(ctx, 20*time.Millisecond); err != nil {
			return res, err
		}
		db, seen, err := e.oneRun(ctx, a)
		if err != nil {
			return res, fmt.Errorf("latency: %w", err)
		}
		if i >= 0 {
			res.DB = append(res.DB, db)
			res.Observed = append(res.Observed, seen)
		}
	}
	return res, nil
}

// oneRun triggers the one-job task and waits for the run to settle.
func (e *env) oneRun(ctx context.Context, a *app.App) (db, seen time.Duration, err error) {
	start := time.Now()
	inst, err := a.Tasks.Trigger(ctx, e.fx.oneJob, requests.TriggerAPI, actor)
	if err != nil {
		return 0, 0, err
	}
	// The task leaves Triggered in the transaction that ends its last run:
	// one primary-key read per poll. The run itself is read now and then
	// too, so that a change in how tasks follow their runs cannot hang the
	// bench.
	for polls := 1; ; polls++ {
		t, err := a.Tasks.Get(ctx, e.fx.oneJob)
		if err != nil {
			return 0, 0, err
		}
		if t.Status != tasks.StatusTriggered && t.LastInstanceID != nil && *t.LastInstanceID == inst.ID {
			break
		}
		if polls%50 == 0 {
			got, err := a.Requests.GetInstance(ctx, inst.ID)
			if err != nil {
				return 0, 0, err
			}
			if requests.Final(got.Status) {
				break
			}
		}
		if time.Since(start) > stallAfter {
			return 0, 0, fmt.Errorf("run %s not settled after %s", inst.ID, stallAfter)
		}
		if err := sleep(ctx, 2*time.Millisecond); err != nil {
			return 0, 0, err
		}
	}
	seen = time.Since(start)
	got, err := a.Requests.GetInstance(ctx, inst.ID)
	if err != nil {
		return 0, 0, err
	}
	if err := mustComplete(got); err != nil {
		return 0, 0, err
	}
	if got.EndedAt == nil {
		return 0, 0, fmt.Errorf("run %s completed without an end time", got.ID)
	}
	return got.EndedAt.Sub(got.CreatedAt), seen, nil
}

// throughput triggers the ten-job task n times while no worker runs, then
// builds a fresh app on the same database (as a restarted process), starts
// its workers and times it until every run is final. Provisor's Queue
// cannot pause its workers, hence the second app: the backlog is written
// first, then drained, as in the raw River run.
func (e *env) throughput(ctx context.Context, n int) (ProvisorResult, error) {
	res := ProvisorResult{Runs: n}
	if e.fx == nil {
		return res, errors.New("throughput: no fixture; the latency run makes it")
	}
	a, err := e.newApp(ctx)
	if err != nil {
		return res, err
	}
	defer e.closeApp(a)
	e.progress("Provisor: triggering the ten-job task %d times (provisioning log %s)", n, map[bool]string{true: "off", false: "on"}[e.noLog])
	start := time.Now()
	for range n {
		if _, err := a.Tasks.Trigger(ctx, e.fx.tenJobs, requests.TriggerAPI, actor); err != nil {
			return res, fmt.Errorf("throughput: trigger: %w", err)
		}
	}
	res.Trigger = time.Since(start)
	triggered := start

	e.warmPool(ctx, a)
	e.progress("Provisor: draining %d runs with %d workers", n, e.cfg.Workers)
	start = time.Now()
	if err := a.Queue.Start(ctx); err != nil {
		return res, fmt.Errorf("throughput: start workers: %w", err)
	}
	// As `provisor serve` runs it.
	stopExpander := a.StartExpander()
	defer stopExpander()
	busy, lastBusy, lastChange := 0, -1, time.Now()
	for {
		if busy, err = e.busyRuns(ctx, a); err != nil {
			return res, err
		}
		if busy == 0 {
			break
		}
		if busy != lastBusy {
			lastBusy, lastChange = busy, time.Now()
		} else if time.Since(lastChange) > stallAfter {
			return res, fmt.Errorf("throughput: stalled with %d of %d runs not final", busy, n)
		}
		if err := sleep(ctx, 20*time.Millisecond); err != nil {
			return res, err
		}
	}
	seen := time.Since(start)
	stopExpander()
	t0 := time.Now()
	if res.Expanded, err = a.Logs.Expand(ctx, time.Now().Add(time.Hour)); err != nil {
		return res, fmt.Errorf("throughput: move pending log entries: %w", err)
	}
	res.Expand = time.Since(t0)

	// The run ends when its last run ended, as the database records it;
	// the poll above only says when to look.
	var last time.Time
	for off := 0; off < n; off += 200 {
		page, _, err := a.Requests.ListInstances(ctx, requests.InstanceFilter{TaskID: e.fx.tenJobs, Limit: 200, Offset: off})
		if err != nil {
			return res, fmt.Errorf("throughput: list runs: %w", err)
		}
		for _, inst := range page {
			if inst.CreatedAt.Before(triggered) {
				continue // a run of an earlier throughput run on this database
			}
			res.Jobs += inst.JobsTotal
			if inst.Status != requests.InstanceCompleted {
				res.Failed++
			}
			if inst.EndedAt != nil && inst.EndedAt.After(last) {
				last = *inst.EndedAt
			}
		}
	}
	res.Elapsed = last.Sub(start)
	if res.Elapsed <= 0 || res.Elapsed > seen {
		res.Elapsed = seen
	}
	if res.Jobs != 10*n {
		return res, fmt.Errorf("throughput: %d runs made %d connector jobs, want %d", n, res.Jobs, 10*n)
	}
	return res, nil
}

// warmPool opens as many PostgreSQL connections as there are workers, as a
// process that has been running a while holds them: the drain then measures
// work, not connection set-up (which the raw River run, whose jobs need no
// connection, does not pay either). It is best effort: on a server short of
// connections it says so and goes on.
func (e *env) warmPool(ctx context.Context, a *app.App) {
	if a.DB.Pool == nil {
		return
	}
	n := min(e.cfg.Workers, int(a.DB.Pool.Config().MaxConns))
	conns := make([]*pgxpool.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Release()
		}
	}()
	for range n {
		c, err := a.DB.Pool.Acquire(ctx)
		if err != nil {
			e.progress("Provisor: opened %d of %d connections ahead: %v", len(conns), n, err)
			return
		}
		conns = append(conns, c)
	}
}

// busyRuns counts the ten-job task's runs that are not final yet.
func (e *env) busyRuns(ctx context.Context, a *app.App) (int, error) {
	total := 0
	for _, s := range []string{requests.InstancePending, requests.InstanceRunning} {
		_, n, err := a.Requests.ListInstances(ctx, requests.InstanceFilter{TaskID: e.fx.tenJobs, Status: s, Limit: 1})
		if err != nil {
			return 0, fmt.Errorf("throughput: count %s runs: %w", s, err)
		}
		total += int(n)
	}
	return total, nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
