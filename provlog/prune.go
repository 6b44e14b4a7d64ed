package provlog

import (
	"context"
	"log/slog"
	"time"

	"github.com/riverqueue/river"
)

// PruneArgs is the queue entry of the daily deletion of old entries.
type PruneArgs struct{}

// Kind is the queue's name for the deletion of old entries.
func (PruneArgs) Kind() string { return "provisioning_log_prune" }

// PruneWorker deletes the entries older than the retention.
type PruneWorker struct {
	river.WorkerDefaults[PruneArgs]
	log       *Log
	retention time.Duration
	logger    *slog.Logger
}

// NewPruneWorker returns the worker that keeps l to retention.
func NewPruneWorker(l *Log, retention time.Duration, logger *slog.Logger) *PruneWorker {
	return &PruneWorker{log: l, retention: retention, logger: logger}
}

// Work deletes what is older than the retention, in small batches; an
// interrupted run leaves the rest for the next day's.
func (w *PruneWorker) Work(ctx context.Context, _ *river.Job[PruneArgs]) error {
	n, err := w.log.Prune(ctx, time.Now().Add(-w.retention))
	if n > 0 && w.logger != nil {
		w.logger.Info("old provisioning log entries deleted", "entries", n, "retention", w.retention.String())
	}
	return err
}
