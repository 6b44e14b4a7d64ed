package bench

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/riverqueue/river"
	"gorm.io/gorm"

	"github.com/provisor/provisor/database"
)

// noopArgs is the job of the raw River run.
type noopArgs struct{}

// Kind is the queue's name for the no-op job.
func (noopArgs) Kind() string { return "bench_noop" }

// noopWorker does nothing but count, and says when it has worked want jobs.
type noopWorker struct {
	river.WorkerDefaults[noopArgs]
	want   int64
	worked atomic.Int64
	all    chan struct{}
}

func (w *noopWorker) Work(context.Context, *river.Job[noopArgs]) error {
	if w.worked.Add(1) == w.want {
		close(w.all)
	}
	return nil
}

// insertBatch is how many jobs one insert transaction carries.
const insertBatch = 1000

// rawRiver inserts n no-op jobs, starts a River client built as Provisor
// builds its own (database.NewQueue, the same workers, job timeout, rescue
// and poll settings as app.New), and times it until every job is completed
// in the database. The jobs are deleted afterwards so that they do not
// weigh on the runs that follow.
func (e *env) rawRiver(ctx context.Context, n int) (RiverResult, error) {
	res := RiverResult{Jobs: n}
	a, err := e.newApp(ctx)
	if err != nil {
		return res, err
	}
	defer e.closeApp(a)
	w := &noopWorker{want: int64(n), all: make(chan struct{})}
	workers := river.NewWorkers()
	river.AddWorker(workers, w)
	q, err := database.NewQueue(a.DB, &database.QueueOptions{
		Logger: e.log.With("component", "bench-queue"), ID: "bench-" + randomHex(4),
		Workers: workers, MaxWorkers: e.cfg.Workers, JobTimeout: e.cfg.JobTimeout, RescueAfter: e.cfg.RescueAfter,
	})
	if err != nil {
		return res, err
	}

	e.progress("raw River: inserting %d no-op jobs", n)
	start := time.Now()
	for off := 0; off < n; off += insertBatch {
		params := make([]river.InsertManyParams, min(insertBatch, n-off))
		for i := range params {
			params[i] = river.InsertManyParams{Args: noopArgs{}}
		}
		if err := a.DB.InTx(ctx, func(tx *gorm.DB) error {
			_, err := q.InsertTx(ctx, tx, params)
			return err
		}); err != nil {
			return res, fmt.Errorf("raw river: insert: %w", err)
		}
	}
	res.Insert = time.Since(start)

	e.progress("raw River: draining with %d workers", e.cfg.Workers)
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	start = time.Now()
	if err := q.Start(runCtx); err != nil {
		return res, fmt.Errorf("raw river: start: %w", err)
	}
	defer func() {
		stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
		defer cancel()
		_ = q.Stop(stopCtx)
	}()
	lastCount, lastChange := int64(0), time.Now()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
wait:
	for {
		select {
		case <-w.all:
			break wait
		case <-ctx.Done():
			return res, ctx.Err()
		case <-tick.C:
			if c := w.worked.Load(); c != lastCount {
				lastCount, lastChange = c, time.Now()
			} else if time.Since(lastChange) > stallAfter {
				return res, fmt.Errorf("raw river: stalled at %d of %d jobs worked", c, n)
			}
		}
	}
	res.Worked = time.Since(start)
	// River marks worked jobs completed in batches, a little later: the run
	// ends when the database says so.
	for {
		var done int64
		if err := a.DB.SQL.QueryRowContext(ctx, `SELECT count(*) FROM river_job WHERE kind = 'bench_noop' AND state = 'completed'`).Scan(&done); err != nil {
			return res, fmt.Errorf("raw river: count completed jobs: %w", err)
		}
		if done >= int64(n) {
			break
		}
		if time.Since(start)-res.Worked > stallAfter {
			return res, fmt.Errorf("raw river: %d of %d jobs worked but only %d marked completed", n, n, done)
		}
		time.Sleep(2 * time.Millisecond)
	}
	res.Elapsed = time.Since(start)
	if _, err := a.DB.SQL.ExecContext(ctx, `DELETE FROM river_job WHERE kind = 'bench_noop'`); err != nil {
		return res, fmt.Errorf("raw river: delete jobs: %w", err)
	}
	return res, nil
}
