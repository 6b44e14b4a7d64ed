package database

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivertype"
	"gorm.io/gorm"
)

// Queue is the durable job queue (River) on the same database, with the
// transaction type of the dialect hidden from the domain packages.
type Queue struct {
	insertTx func(ctx context.Context, tx *gorm.DB, params []river.InsertManyParams) ([]*rivertype.JobInsertResult, error)
	retryTx  func(ctx context.Context, tx *gorm.DB, id int64) error
	cancelTx func(ctx context.Context, tx *gorm.DB, id int64) error
	list     func(ctx context.Context, params *river.JobListParams) (*river.JobListResult, error)
	start    func(ctx context.Context) error
	stop     func(ctx context.Context) error
	cancel   func(ctx context.Context) error
}

// QueueOptions configure a Queue. A nil *QueueOptions gives an insert-only
// queue (no workers), as a command-line tool needs.
type QueueOptions struct {
	Workers     *river.Workers
	MaxWorkers  int
	JobTimeout  time.Duration
	RescueAfter time.Duration
	// PollInterval is how often idle workers look for work when no
	// notification arrives (SQLite has none; default 50ms there, 100ms on PostgreSQL).
	PollInterval time.Duration
	Logger       *slog.Logger
	// ID names this process among the queue's clients.
	ID string

	// Queues are queues besides the default one, with how many of their
	// jobs run at once.
	Queues map[string]int
	// Periodic are entries the queue's leader inserts on a schedule.
	Periodic []*river.PeriodicJob
}

// NewQueue builds the queue client for db.
func NewQueue(db *DB, opts *QueueOptions) (*Queue, error) {
	if db.Dialect == Postgres {
		// New jobs wake workers through LISTEN/NOTIFY, but jobs made
		// available again (a dependent whose predecessor completed, a
		// revocation run by Force End) are only seen by polling: poll often.
		return newQueue(riverpgxv5.New(db.Pool), pgxTx, opts, 100*time.Millisecond)
	}
	return newQueue(riversqlite.New(db.SQL), sqlTx, opts, 50*time.Millisecond)
}

func newQueue[TTx any](driver riverdriver.Driver[TTx], txOf func(*gorm.DB) (TTx, error), opts *QueueOptions, poll time.Duration) (*Queue, error) {
	cfg := &river.Config{Logger: slog.New(slog.DiscardHandler)}
	if opts != nil {
		if opts.Logger != nil {
			cfg.Logger = opts.Logger
		}
		if opts.PollInterval > 0 {
			poll = opts.PollInterval
		}
		cfg.ID = opts.ID
		if opts.Workers != nil {
			cfg.Workers = opts.Workers
			cfg.Queues = map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: opts.MaxWorkers}}
			for name, n := range opts.Queues {
				cfg.Queues[name] = river.QueueConfig{MaxWorkers: n}
			}
			cfg.JobTimeout = opts.JobTimeout
			cfg.RescueStuckJobsAfter = opts.RescueAfter
			cfg.PeriodicJobs = opts.Periodic
			cfg.FetchPollInterval = poll
			cfg.FetchCooldown = min(poll, 10*time.Millisecond)
		}
	}
	client, err := river.NewClient(driver, cfg)
	if err != nil {
		return nil, fmt.Errorf("database: queue: %w", err)
	}
	return &Queue{
		insertTx: func(ctx context.Context, tx *gorm.DB, params []river.InsertManyParams) ([]*rivertype.JobInsertResult, error) {
			t, err := txOf(tx)
			if err != nil {
				return nil, err
			}
			return client.InsertManyTx(ctx, t, params)
		},
		retryTx: func(ctx context.Context, tx *gorm.DB, id int64) error {
			t, err := txOf(tx)
			if err != nil {
				return err
			}
			_, err = client.JobRetryTx(ctx, t, id)
			return err
		},
		cancelTx: func(ctx context.Context, tx *gorm.DB, id int64) error {
			t, err := txOf(tx)
			if err != nil {
				return err
			}
			_, err = client.JobCancelTx(ctx, t, id)
			return err
		},
		list:   client.JobList,
		start:  client.Start,
		stop:   client.Stop,
		cancel: client.StopAndCancel,
	}, nil
}

// InsertTx adds jobs to the queue inside tx (made by DB.InTx): they exist if
// and only if tx commits. It returns the queue ids in the order given.
func (q *Queue) InsertTx(ctx context.Context, tx *gorm.DB, params []river.InsertManyParams) ([]int64, error) {
	if len(params) == 0 {
		return nil, nil
	}
	res, err := q.insertTx(ctx, tx, params)
	if err != nil {
		return nil, fmt.Errorf("queue: insert: %w", err)
	}
	ids := make([]int64, len(res))
	for i, r := range res {
		ids[i] = r.Job.ID
	}
	return ids, nil
}

// RetryTx makes a queue entry available to run now, whatever its state
// (scheduled, snoozed, discarded, canceled), unless it is running.
func (q *Queue) RetryTx(ctx context.Context, tx *gorm.DB, id int64) error {
	if err := q.retryTx(ctx, tx, id); err != nil {
		return fmt.Errorf("queue: retry %d: %w", id, err)
	}
	return nil
}

// CancelTx cancels a queue entry that has not finished.
func (q *Queue) CancelTx(ctx context.Context, tx *gorm.DB, id int64) error {
	if err := q.cancelTx(ctx, tx, id); err != nil {
		return fmt.Errorf("queue: cancel %d: %w", id, err)
	}
	return nil
}

// Entry is what a sweep (or a test of attempts) needs of a queue entry.
type Entry struct {
	ID    int64
	State string
	// Args are the entry's arguments as JSON.
	Args []byte
	// Attempt is the attempts the entry spent (the one running included);
	// Errors the attempts that ended in an error, and Snoozes the times it
	// waited, which spend none.
	Attempt, Errors, Snoozes int
}

// Final reports whether the entry will not run again by itself
// (completed, discarded or cancelled).
func (e Entry) Final() bool {
	switch rivertype.JobState(e.State) {
	case rivertype.JobStateCompleted, rivertype.JobStateDiscarded, rivertype.JobStateCancelled:
		return true
	}
	return false
}

// listPage is how many entries one read of the queue returns.
const listPage = 1000

// Entries returns the entries with the given ids that exist, by id.
func (q *Queue) Entries(ctx context.Context, ids []int64) (map[int64]Entry, error) {
	out := make(map[int64]Entry, len(ids))
	for start := 0; start < len(ids); start += listPage {
		part := ids[start:min(start+listPage, len(ids))]
		res, err := q.list(ctx, river.NewJobListParams().IDs(part...).First(len(part)))
		if err != nil {
			return nil, fmt.Errorf("queue: list entries: %w", err)
		}
		for _, j := range res.Jobs {
			e := Entry{ID: j.ID, State: string(j.State), Args: j.EncodedArgs, Attempt: j.Attempt, Errors: len(j.Errors)}
			var meta struct {
				Snoozes int `json:"snoozes"`
			}
			if json.Unmarshal(j.Metadata, &meta) == nil {
				e.Snoozes = meta.Snoozes
			}
			out[j.ID] = e
		}
	}
	return out, nil
}

// LiveEntries returns every entry of kind that has not finished: it is
// available, scheduled, running, retryable or pending.
func (q *Queue) LiveEntries(ctx context.Context, kind string) ([]Entry, error) {
	var out []Entry
	params := river.NewJobListParams().Kinds(kind).First(listPage).States(rivertype.JobStateAvailable, rivertype.JobStateScheduled,
		rivertype.JobStateRunning, rivertype.JobStateRetryable, rivertype.JobStatePending)
	for {
		res, err := q.list(ctx, params)
		if err != nil {
			return nil, fmt.Errorf("queue: list %s entries: %w", kind, err)
		}
		for _, j := range res.Jobs {
			out = append(out, Entry{ID: j.ID, State: string(j.State), Args: j.EncodedArgs})
		}
		if len(res.Jobs) < listPage || res.LastCursor == nil {
			return out, nil
		}
		params = params.After(res.LastCursor)
	}
}

// Start starts the workers.
func (q *Queue) Start(ctx context.Context) error { return q.start(ctx) }

// Stop stops fetching jobs and waits for running ones to finish, until ctx ends.
func (q *Queue) Stop(ctx context.Context) error { return q.stop(ctx) }

// StopAndCancel is Stop that also cancels the contexts of the running jobs,
// and waits, until ctx ends, for them to return.
func (q *Queue) StopAndCancel(ctx context.Context) error { return q.cancel(ctx) }
