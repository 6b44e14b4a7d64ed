// Package app is Provisor's composition root: New builds the database, the
// queue, the domain services, the scheduler and the HTTP server from a
// Config; Run serves until the context ends; Close releases everything.
package app

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/riverqueue/river"

	"github.com/provisor/provisor/access"
	"github.com/provisor/provisor/app/api"
	"github.com/provisor/provisor/app/config"
	"github.com/provisor/provisor/app/web"
	"github.com/provisor/provisor/connectors"
	"github.com/provisor/provisor/connectors/builtin"
	"github.com/provisor/provisor/connectors/builtin/builtinstore"
	"github.com/provisor/provisor/connectors/configured"
	"github.com/provisor/provisor/connectors/entra"
	"github.com/provisor/provisor/connectors/ldap"
	"github.com/provisor/provisor/connectors/scim"
	"github.com/provisor/provisor/connectors/secrets"
	"github.com/provisor/provisor/database"
	"github.com/provisor/provisor/identities"
	"github.com/provisor/provisor/imports"
	"github.com/provisor/provisor/notifier"
	"github.com/provisor/provisor/provlog"
	"github.com/provisor/provisor/requests"
	"github.com/provisor/provisor/tasks"
)

// App is a running Provisor process.
type App struct {
	Config     *config.Config
	Log        *slog.Logger
	DB         *database.DB
	Queue      *database.Queue
	Connectors *configured.Store
	Identities *identities.Service
	Importer   *imports.Importer
	Requests   *requests.Service
	Tasks      *tasks.Service
	Access     *access.Service
	Notifier   *notifier.Service
	Logs       *provlog.Log
	Scheduler  *Scheduler
	HTTP       *fiber.App
	Metrics    *Metrics

	stopMetrics func(context.Context) error
	// stopExpander ends the provisioning log's expander and waits for it.
	stopExpander func()
	// runningSets is how many job sets this process's workers run now,
	// and setEnded when the last one ended (Unix nanoseconds).
	runningSets, setEnded atomic.Int64

	shutdownOnce sync.Once
	shutdownErr  error
}

// ShutdownTimeout bounds Shutdown.
const ShutdownTimeout = 15 * time.Second

// Options adjust New for tests and tools. A nil *Options means defaults.
type Options struct {
	// ConnectorTypes are added to the built-in ones.
	ConnectorTypes []connectors.Type
	// NoWorkers builds an app that inserts jobs but runs none.
	NoWorkers bool
	// NowFunc is the clock of the notifier's retry period (default
	// time.Now), for tests that end a period without waiting for it.
	NowFunc func() time.Time
	// NoProvisioningLog writes no provisioning log entries: the benchmark
	// measures their cost with it.
	NoProvisioningLog bool
}

// New opens the database, applies migrations and wires every component.
// DBConns is how many PostgreSQL connections a process with cfg opens at most.
func DBConns(cfg *config.Config) int {
	if cfg.DBConns > 0 {
		return cfg.DBConns
	}
	return 8 + 4*runtime.NumCPU()
}

// Nothing runs until Run.
func New(ctx context.Context, cfg *config.Config, log *slog.Logger, opts *Options) (*App, error) {
	if opts == nil {
		opts = &Options{}
	}
	key, err := secretKey(cfg)
	if err != nil {
		return nil, err
	}
	sealer, err := secrets.NewSealer(key)
	if err != nil {
		return nil, err
	}
	// PostgreSQL connections: a quarter for the relaxed pool (the workers'
	// job claims and built-in directory operations), the rest for their
	// results, the pages and the queue. Workers hold one only for a
	// statement or a short transaction, so a pool sized by the CPUs serves
	// any number of them, and keeps the server from thrashing when many
	// statements arrive at once.
	conns := DBConns(cfg)
	relaxed := max(conns/4, 2)
	db, err := database.Open(ctx, cfg.DatabaseURL, cfg.SQLitePath(), &database.Options{Logger: log.With("component", "database"),
		MaxConns: int32(conns - relaxed), RelaxedConns: int32(relaxed)})
	if err != nil {
		if cfg.Embedded() {
			return nil, fmt.Errorf("PROVISOR_DATA_DIR (--data-dir): %w", err)
		}
		return nil, fmt.Errorf("PROVISOR_DATABASE_URL (--database): %w", err)
	}
	if err := db.Migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	a := &App{Config: cfg, Log: log, DB: db, Metrics: newMetrics(db)}
	// The queue comes first: the services insert jobs into it. Its
	// workers need the services, and are added to its bundle once they
	// exist, before it starts (River allows workers added after the
	// client is made).
	var workers *river.Workers
	qopts := &database.QueueOptions{Logger: log.With("component", "queue"), ID: processID()}
	if !opts.NoWorkers {
		workers = river.NewWorkers()
		qopts.Workers = workers
		// The sweeps run on the queue's leader, one process of many.
		qopts.Periodic = []*river.PeriodicJob{
			river.NewPeriodicJob(river.PeriodicInterval(sweepEvery), func() (river.JobArgs, *river.InsertOpts) {
				return requests.SweepArgs{}, &river.InsertOpts{MaxAttempts: 1}
			}, nil),
			river.NewPeriodicJob(river.PeriodicInterval(sweepEvery), func() (river.JobArgs, *river.InsertOpts) {
				return notifier.SweepArgs{}, &river.InsertOpts{MaxAttempts: 1}
			}, nil),
			river.NewPeriodicJob(river.PeriodicInterval(pruneEvery), func() (river.JobArgs, *river.InsertOpts) {
				// A prune cut short by its process's end is taken over and
				// finished (it deletes in batches, so running it again is safe).
				return provlog.PruneArgs{}, &river.InsertOpts{MaxAttempts: 3}
			}, &river.PeriodicJobOpts{RunOnStart: true}),
		}
		qopts.MaxWorkers = cfg.Workers
		qopts.Queues = map[string]int{notifier.Queue: notifier.QueueWorkers}
		qopts.JobTimeout = cfg.JobTimeout
		qopts.RescueAfter = cfg.RescueAfter
	}
	a.Queue, err = database.NewQueue(db, qopts)
	if err != nil {
		db.Close()
		return nil, err
	}
	registry := connectors.NewRegistry(append([]connectors.Type{builtin.Type(builtinstore.New(db.Gorm, db.WriteRelaxed)), ldap.Type(), ldap.ADType(), entra.Type(), scim.Type()}, opts.ConnectorTypes...)...)
	// A directory connector, once saved, gets its Data Import tasks: the
	// tasks service needs the requests service, which needs the store, so
	// the store calls the app, which exists before both.
	a.Connectors = configured.NewStore(db.Gorm, registry, sealer, &configured.StoreOptions{SavedFunc: a.connectorSaved})
	a.Identities = identities.New(db.Gorm, a.Connectors)
	a.Importer = imports.NewImporter(db.Gorm, a.Connectors, &imports.ImporterOptions{ProgressFunc: a.importProgress})
	a.Access = access.New(db.Gorm, &access.Options{DirectoryFunc: directorySignIn(a.Connectors, log.With("component", "sign-in"))})
	a.Logs = provlog.New(db, &provlog.Options{BusyFunc: a.runningJobs})
	a.Notifier, err = notifier.New(db, a.Queue, &notifier.Options{
		SMTP: (*notifier.SMTP)(cfg.SMTP), SMTPName: cfg.RedactedSMTP(), RetryFor: cfg.SMTPRetryFor, BaseURL: cfg.BaseURL,
		AttemptBound: cfg.RescueAfter, Logger: log.With("component", "notifier"), NowFunc: opts.NowFunc,
		Directory: mailboxes{access: a.Access, identities: a.Identities},
	})
	if err != nil {
		db.Close()
		return nil, err
	}
	// The settled hooks run in order in the transaction that settles a
	// run: the task's (which locks the task's row, so that concurrent runs
	// of one task agree on Triggered or Idle) goes last, to hold that lock
	// for the shortest time.
	rollUp := tasks.NewRollUp(db)
	a.Requests = requests.New(db, a.Queue, a.Identities, a.Connectors, &requests.Options{MaxAttempts: cfg.MaxAttempts, JobTimeout: cfg.JobTimeout, RescueAfter: cfg.RescueAfter, Logger: log,
		ImportFunc: a.Importer.RunJob, People: people{a.Access}, ApprovalExpiry: cfg.ApprovalExpiry, NoProvisioningLog: opts.NoProvisioningLog,
		Quarantine: requests.QuarantineRules{ConnectionFailures: cfg.QuarantineFailures, FailureRatio: cfg.QuarantineRatio,
			Window: cfg.QuarantineWindow, ProbeMin: cfg.ProbeMin, ProbeMax: cfg.ProbeMax},
		ObserveFunc:         a.Metrics.observeJob,
		SettledFuncs:        []requests.SettledFunc{a.Notifier.InstanceSettledTx, rollUp.InstanceBusyTx},
		AfterSettledFuncs:   []requests.AfterSettledFunc{rollUp.InstanceSettled},
		ApprovalFuncs:       []requests.ApprovalFunc{a.Notifier.ApprovalTx},
		ConnectorStateFuncs: []requests.ConnectorStateFunc{a.Notifier.ConnectorStateTx},
	})
	// The scheduler reads the tasks, and the tasks tell it of the
	// schedules they change: through the app, which exists before both.
	a.Tasks = tasks.New(db, a.Requests, &tasks.Options{Identities: a.Identities, ScheduleChangedFunc: a.scheduleChanged})
	a.Scheduler = NewScheduler(a.Tasks, log.With("component", "scheduler"), cfg.ScheduleSync)
	if workers != nil {
		river.AddWorker(workers, river.Worker[requests.JobArgs](countingWorker{requests.NewWorker(a.Requests), &a.runningSets, &a.setEnded}))
		river.AddWorker(workers, requests.NewProbeWorker(a.Requests))
		river.AddWorker(workers, notifier.NewWorker(a.Notifier))
		river.AddWorker(workers, requests.NewSweepWorker(a.Requests, sweepAfter))
		river.AddWorker(workers, notifier.NewSweepWorker(a.Notifier, sweepAfter))
		river.AddWorker(workers, provlog.NewPruneWorker(a.Logs, cfg.LogRetention, log.With("component", "provisioning-log")))
	}
	portal, err := web.New(web.Deps{
		Log: log, DB: db.Gorm, Access: a.Access, Identities: a.Identities, Connectors: a.Connectors,
		Requests: a.Requests, Tasks: a.Tasks, Schedules: a.Scheduler, Notifier: a.Notifier, Imports: a.Importer, Logs: a.Logs,
		SecureCookies: strings.HasPrefix(cfg.BaseURL, "https://"), StuckAfter: cfg.StuckAfter,
	})
	if err != nil {
		db.Close()
		return nil, err
	}
	a.HTTP = a.newHTTP(api.New(api.Deps{
		Log: log, Access: a.Access, Identities: a.Identities, Connectors: a.Connectors,
		Requests: a.Requests, Tasks: a.Tasks, DB: db, Notifier: a.Notifier, Imports: a.Importer, Logs: a.Logs,
	}), portal)
	return a, nil
}

// connectorSaved gives a directory connector, once saved, its Data Import
// tasks.
func (a *App) connectorSaved(ctx context.Context, r *configured.Record) {
	if _, err := a.Tasks.EnsureImportTasks(ctx, r); err != nil {
		a.Log.Warn("data import tasks not created", "connector", r.Name, "err", err)
	}
}

// importProgress tells the requests service, which keeps the connectors'
// states, how far a running import read: the importer exists before it.
func (a *App) importProgress(ctx context.Context, connectorID string, read int) {
	a.Requests.NoteImportProgress(ctx, connectorID, read)
}

// scheduleChanged has this process's scheduler apply a task's schedule at
// once.
func (a *App) scheduleChanged(taskID string) { a.Scheduler.Changed(taskID) }

// The sweeps look for work that no worker owns (see requests.Service.Sweep
// and notifier.Service.Sweep) every sweepEvery, and take for abandoned
// what nothing changed for sweepAfter.
const (
	sweepEvery = time.Minute
	sweepAfter = 2 * time.Minute
	// pruneEvery is how often old provisioning log entries are deleted.
	pruneEvery = 24 * time.Hour
)

// Start starts the workers, the scheduler and the provisioning log's expander.
func (a *App) Start(ctx context.Context) error {
	// Messages held while no SMTP server was configured go out now.
	if _, err := a.Notifier.ReleaseHeld(ctx); err != nil {
		return fmt.Errorf("app: queue held notifications: %w", err)
	}
	if err := a.Queue.Start(ctx); err != nil {
		return fmt.Errorf("app: start queue: %w", err)
	}
	if err := a.Scheduler.Start(ctx); err != nil {
		return fmt.Errorf("app: start scheduler: %w", err)
	}
	if a.stopExpander == nil {
		a.stopExpander = a.StartExpander()
	}
	if a.Config.MetricsAddr != "" && a.stopMetrics == nil {
		stop, err := a.Metrics.serve(ctx, a.Config.MetricsAddr)
		if err != nil {
			return fmt.Errorf("app: serve metrics on %s (PROVISOR_METRICS_ADDR): %w", a.Config.MetricsAddr, err)
		}
		a.stopMetrics = stop
	}
	return nil
}

// countingWorker runs job sets and counts those running, for the
// provisioning log's expander, which gives way to them.
type countingWorker struct {
	*requests.Worker
	running, ended *atomic.Int64
}

// Work runs the set of qj.
func (w countingWorker) Work(ctx context.Context, qj *river.Job[requests.JobArgs]) error {
	w.running.Add(1)
	defer func() {
		w.ended.Store(time.Now().UnixNano())
		w.running.Add(-1)
	}()
	return w.Worker.Work(ctx, qj)
}

// idleAfter is how long after its last job set a process counts as no
// longer running jobs: the gaps between the sets of a burst are shorter.
const idleAfter = time.Second

// runningJobs reports whether this process runs job sets, or ran one
// less than idleAfter ago.
func (a *App) runningJobs() bool {
	return a.runningSets.Load() > 0 || time.Since(time.Unix(0, a.setEnded.Load())) < idleAfter
}

// StartExpander runs the provisioning log's expander (provlog.RunExpander)
// until the function it returns is called, which waits for it to end.
func (a *App) StartExpander() (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		a.Logs.RunExpander(ctx, a.Log.With("component", "provisioning-log"))
	}()
	return func() { cancel(); <-done }
}

// Run starts the workers and the scheduler, and serves HTTP on ln (or on
// the configured address when ln is nil) until ctx ends.
func (a *App) Run(ctx context.Context, ln net.Listener) error {
	if err := a.Start(ctx); err != nil {
		return err
	}
	if ln == nil {
		var err error
		ln, err = net.Listen("tcp", a.Config.Addr)
		if err != nil {
			return fmt.Errorf("app: listen on %s (PROVISOR_ADDR): %w", a.Config.Addr, err)
		}
	}
	errc := make(chan error, 1)
	go func() { errc <- a.HTTP.Listener(ln) }()
	select {
	case <-ctx.Done():
	case err := <-errc:
		if err != nil {
			return fmt.Errorf("app: http: %w", err)
		}
	}
	return a.Shutdown()
}

// Shutdown stops taking work, lets running jobs finish for a while, and
// closes the database. It returns within ShutdownTimeout whatever the app's
// state: started or not, with Start's context ended or not; a second call
// returns the first one's result. Jobs cut short are taken over after a
// restart.
func (a *App) Shutdown() error {
	a.shutdownOnce.Do(func() { a.shutdownErr = a.shutdown(ShutdownTimeout) })
	return a.shutdownErr
}

func (a *App) shutdown(bound time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	var errs []error
	if err := a.HTTP.ShutdownWithContext(ctx); err != nil {
		errs = append(errs, fmt.Errorf("app: stop http: %w", err))
	}
	if a.stopMetrics != nil {
		if err := a.stopMetrics(ctx); err != nil {
			errs = append(errs, fmt.Errorf("app: stop metrics: %w", err))
		}
	}
	if err := a.Scheduler.Stop(ctx); err != nil {
		errs = append(errs, fmt.Errorf("app: %w", err))
	}
	// Running jobs get most of the time left to finish; then their
	// contexts are canceled, and the rest is theirs to return.
	left := time.Until(deadline(ctx))
	graceful, stopGraceful := context.WithTimeout(ctx, left*3/4)
	err := a.Queue.Stop(graceful)
	stopGraceful()
	if errors.Is(err, context.DeadlineExceeded) {
		err = a.Queue.StopAndCancel(ctx)
	}
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		errs = append(errs, fmt.Errorf("app: stop queue: %w", err))
	}
	if a.stopExpander != nil {
		// What it has not moved stays pending for the next start, or a read.
		a.stopExpander()
	}
	if err := a.Notifier.Close(ctx); err != nil {
		errs = append(errs, fmt.Errorf("app: stop notifier: %w", err))
	}
	// Closing the database waits for the connections in use, which a job
	// that ignores its context may keep: Shutdown does not wait for them
	// past its bound.
	closed := make(chan error, 1)
	go func() { closed <- a.DB.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			errs = append(errs, fmt.Errorf("app: close database: %w", err))
		}
	case <-ctx.Done():
		errs = append(errs, fmt.Errorf("app: close database: connections still in use after %s", bound))
	}
	return errors.Join(errs...)
}

func deadline(ctx context.Context) time.Time {
	d, _ := ctx.Deadline()
	return d
}

// secretKey returns the configured key, or for the embedded database the
// key kept in the data folder, generated on first start.
func secretKey(cfg *config.Config) (string, error) {
	if cfg.SecretKey != "" {
		return cfg.SecretKey, nil
	}
	path := filepath.Join(cfg.DataDir, "secret.key")
	b, err := os.ReadFile(path)
	if err == nil {
		key := strings.TrimSpace(string(b))
		if len(key) < 32 {
			return "", fmt.Errorf("app: %s is shorter than 32 characters; restore it or set PROVISOR_SECRET_KEY", path)
		}
		return key, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("app: read %s: %w", path, err)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return "", fmt.Errorf("app: create %s (PROVISOR_DATA_DIR): %w", cfg.DataDir, err)
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", err
	}
	key := base64.RawURLEncoding.EncodeToString(raw)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", fmt.Errorf("app: write %s: %w", path, err)
	}
	defer f.Close()
	if _, err := f.WriteString(key + "\n"); err != nil {
		return "", fmt.Errorf("app: write %s: %w", path, err)
	}
	return key, nil
}

func processID() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s-%d-%d", host, os.Getpid(), time.Now().UnixNano()%100000)
}
