package requests

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/riverqueue/river"
	"gorm.io/gorm"
)

// SweepArgs is the periodic entry that hands runs and job sets that no
// worker owns back to the queue (see Service.Sweep), expires approvals
// and prunes the connectors' hourly counts.
type SweepArgs struct{}

// Kind is the queue's name for the run sweep.
func (SweepArgs) Kind() string { return "run_sweep" }

// SweepWorker runs the run sweep.
type SweepWorker struct {
	river.WorkerDefaults[SweepArgs]
	s *Service
	// After is how long a job must have been left alone before the sweep
	// takes its set for abandoned.
	After time.Duration
}

// NewSweepWorker returns the worker of the run sweep.
func NewSweepWorker(s *Service, after time.Duration) *SweepWorker {
	return &SweepWorker{s: s, After: after}
}

// Work sweeps once.
func (w *SweepWorker) Work(ctx context.Context, _ *river.Job[SweepArgs]) error {
	if _, err := w.s.ExpireApprovals(ctx, time.Now().UTC()); err != nil {
		return err
	}
	if _, err := w.s.PruneConnectorHours(ctx, time.Now().Add(-HoursKept)); err != nil {
		return err
	}
	_, err := w.s.Sweep(ctx, w.After)
	return err
}

// SweepResult says what a sweep handed back.
type SweepResult struct {
	// Sets is how many job sets got a new queue entry, Jobs how many jobs
	// they hold.
	Sets, Jobs int
	// Runs is how many runs had their status rolled up again.
	Runs int
}

// sweepRuns bounds the runs one sweep looks at.
const sweepRuns = 5000

// Sweep finds the jobs of unfinished runs that wait for a queue entry that
// will not run again (it completed, was discarded after its attempts or
// cancelled, or is gone) and that nothing changed for olderThan, and gives
// each such set a new entry; and it rolls up runs still shown busy whose
// jobs have all ended. So no run waits for ever, whatever happened to its
// entries. It logs what it did.
func (s *Service) Sweep(ctx context.Context, olderThan time.Duration) (SweepResult, error) {
	var res SweepResult
	if s.queue == nil {
		return res, nil
	}
	db := s.db.Gorm.WithContext(ctx)
	var runs []string
	if err := db.Model(&Instance{}).Where("status IN ?", []string{InstancePending, InstanceRunning, InstanceActive}).
		Order("updated_at").Limit(sweepRuns).Pluck("id", &runs).Error; err != nil {
		return res, fmt.Errorf("requests: sweep: %w", err)
	}
	if len(runs) == 0 {
		return res, nil
	}
	// Jobs first, then the entries: a set's entry that ends after its
	// jobs were read ended with its jobs written.
	var jobs []Job
	for start := 0; start < len(runs); start += 500 {
		var part []Job
		if err := db.Select("id, instance_id, seq, status, priority, run_at, queue_job_id, updated_at").
			Where("instance_id IN ? AND status IN ?", runs[start:min(start+500, len(runs))], []string{JobPending, JobRunning, JobScheduled}).
			Find(&part).Error; err != nil {
			return res, fmt.Errorf("requests: sweep: %w", err)
		}
		jobs = append(jobs, part...)
	}
	waiting := map[string]bool{}
	bySet := map[int64][]Job{}
	var entryIDs []int64
	cutoff := time.Now().UTC().Add(-olderThan)
	for _, j := range jobs {
		waiting[j.InstanceID] = true
		if j.QueueJobID == nil || !j.UpdatedAt.Before(cutoff) {
			continue
		}
		if _, ok := bySet[*j.QueueJobID]; !ok {
			entryIDs = append(entryIDs, *j.QueueJobID)
		}
		bySet[*j.QueueJobID] = append(bySet[*j.QueueJobID], j)
	}
	entries, err := s.queue.Entries(ctx, entryIDs)
	if err != nil {
		return res, fmt.Errorf("requests: sweep: %w", err)
	}
	for _, id := range entryIDs {
		e, ok := entries[id]
		if ok && !e.Final() {
			continue
		}
		state := "gone"
		if ok {
			state = e.State
		}
		n, err := s.requeueSet(ctx, id, state, bySet[id])
		if err != nil {
			return res, err
		}
		if n > 0 {
			res.Sets++
			res.Jobs += n
		}
	}
	// Runs shown busy with every job ended: their last roll-up was lost.
	for _, id := range runs {
		if waiting[id] {
			continue
		}
		moved, err := s.rollUpIfEnded(ctx, id, cutoff)
		if err != nil {
			return res, err
		}
		if moved {
			res.Runs++
		}
	}
	if res.Sets > 0 || res.Runs > 0 {
		s.opts.Logger.Warn("run sweep: work that no worker owned was handed back", "sets", res.Sets, "jobs", res.Jobs, "runs", res.Runs)
	}
	return res, nil
}

// requeueSet gives the jobs of an entry that will not run again a new
// entry, with a history entry each, and returns how many it moved: only
// jobs still waiting for that entry move.
func (s *Service) requeueSet(ctx context.Context, entry int64, state string, jobs []Job) (int, error) {
	sort.Slice(jobs, func(a, b int) bool { return jobs[a].Seq < jobs[b].Seq })
	moved := 0
	err := s.inTx(ctx, func(ctx context.Context, tx *gorm.DB) error {
		moved = 0
		if _, err := lockInstanceTx(tx, jobs[0].InstanceID); err != nil {
			return err
		}
		now := time.Now().UTC()
		opts := &river.InsertOpts{Priority: jobs[0].Priority.queuePriority(), MaxAttempts: s.opts.MaxAttempts}
		if at := jobs[0].RunAt; at != nil && at.After(now) {
			opts.ScheduledAt = *at
		}
		ids, err := s.queue.InsertTx(ctx, tx, []river.InsertManyParams{{
			Args: JobArgs{InstanceID: jobs[0].InstanceID, Jobs: len(jobs)}, InsertOpts: opts}})
		if err != nil {
			return err
		}
		jobIDs := make([]string, len(jobs))
		for i, j := range jobs {
			jobIDs[i] = j.ID
		}
		var got []string
		if err := tx.Raw(`UPDATE connector_jobs SET queue_job_id = ?, updated_at = ? WHERE id IN ? AND queue_job_id = ? AND status IN ? RETURNING id`,
			ids[0], now, jobIDs, entry, []string{JobPending, JobRunning, JobScheduled}).Scan(&got).Error; err != nil {
			return fmt.Errorf("requests: sweep: %w", err)
		}
		events := make([]Event, len(got))
		for i, id := range got {
			events[i] = Event{JobID: id, At: now, Status: JobPending,
				Message: fmt.Sprintf("handed back to the queue: the entry it waited for (%d) was %s", entry, state)}
		}
		if len(events) > 0 {
			if err := tx.CreateInBatches(&events, 500).Error; err != nil {
				return err
			}
		}
		moved = len(got)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("requests: sweep: hand back the jobs of entry %d: %w", entry, err)
	}
	return moved, nil
}

// rollUpIfEnded rolls up a run shown busy whose jobs have all ended, if
// nothing changed it since cutoff, and reports whether its status moved.
func (s *Service) rollUpIfEnded(ctx context.Context, id string, cutoff time.Time) (bool, error) {
	moved := false
	err := s.inTx(ctx, func(ctx context.Context, tx *gorm.DB) error {
		inst, err := lockInstanceTx(tx, id)
		if err != nil {
			return err
		}
		if !inst.UpdatedAt.Before(cutoff) || Final(inst.Status) {
			return nil
		}
		prev := inst.Status
		if err := s.rollUpTx(ctx, tx, inst); err != nil {
			return err
		}
		moved = inst.Status != prev
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("requests: sweep: roll up run %s: %w", id, err)
	}
	return moved, nil
}
