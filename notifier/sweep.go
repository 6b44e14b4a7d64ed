package notifier

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/riverqueue/river"
	"gorm.io/gorm"
)

// SweepArgs is the periodic entry that hands messages no delivery job owns
// back to the queue (see Service.Sweep).
type SweepArgs struct{}

// Kind is the queue's name for the outbox sweep.
func (SweepArgs) Kind() string { return "outbox_sweep" }

// SweepWorker runs the outbox sweep.
type SweepWorker struct {
	river.WorkerDefaults[SweepArgs]
	s *Service
	// After is how long a message must have been left alone before the
	// sweep takes it for abandoned.
	After time.Duration
}

// NewSweepWorker returns the worker of the outbox sweep.
func NewSweepWorker(s *Service, after time.Duration) *SweepWorker {
	return &SweepWorker{s: s, After: after}
}

// Work sweeps once.
func (w *SweepWorker) Work(ctx context.Context, _ *river.Job[SweepArgs]) error {
	_, err := w.s.Sweep(ctx, w.After)
	return err
}

// sweepBatch bounds the messages one sweep hands back.
const sweepBatch = 5000

// Sweep finds queued messages that no live delivery job owns (the job was
// discarded after its attempts, cancelled, or deleted) and that nothing
// changed for olderThan, and gives them to new delivery jobs, so that no
// message waits for ever. It returns how many it handed back, and logs
// them.
func (s *Service) Sweep(ctx context.Context, olderThan time.Duration) (int, error) {
	if s.queue == nil || s.mailer == nil {
		return 0, nil
	}
	// Messages first, then the jobs: a message and its job committed in
	// between are too new to be taken.
	var msgs []Notification
	if err := s.db.Gorm.WithContext(ctx).Select("id, claimed_by").
		Where("status = ? AND "+unsent+" AND updated_at < ?", StatusQueued, time.Now().UTC().Add(-olderThan)).
		Order("created_at").Limit(sweepBatch).Find(&msgs).Error; err != nil {
		return 0, fmt.Errorf("notifier: sweep: %w", err)
	}
	if len(msgs) == 0 {
		return 0, nil
	}
	live, err := s.queue.LiveEntries(ctx, DeliveryArgs{}.Kind())
	if err != nil {
		return 0, fmt.Errorf("notifier: sweep: %w", err)
	}
	owners := map[string][]int64{} // message id: the live jobs that list it
	for _, e := range live {
		var args DeliveryArgs
		if err := json.Unmarshal(e.Args, &args); err != nil {
			continue
		}
		for _, id := range args.NotificationIDs {
			owners[id] = append(owners[id], e.ID)
		}
	}
	var orphans []Notification
	for _, n := range msgs {
		jobs := owners[n.ID]
		if n.ClaimedBy == nil && len(jobs) > 0 || n.ClaimedBy != nil && slices.Contains(jobs, *n.ClaimedBy) {
			continue
		}
		orphans = append(orphans, n)
	}
	if len(orphans) == 0 {
		return 0, nil
	}
	handed := 0
	err = s.db.InTx(ctx, func(tx *gorm.DB) error {
		handed = 0
		ids := make([]string, len(orphans))
		byID := make(map[string]*Notification, len(orphans))
		for i := range orphans {
			ids[i] = orphans[i].ID
			byID[ids[i]] = &orphans[i]
		}
		parts := s.jobParts(ids)
		jobs, err := s.queue.InsertTx(ctx, tx, deliveryJobs(parts))
		if err != nil {
			return err
		}
		now := time.Now().UTC()
		for i, part := range parts {
			// Only messages still as read: one that a job sent or claimed
			// meanwhile stays where it is.
			for _, id := range part {
				n := byID[id]
				q := tx.Model(&Notification{}).Where("id = ? AND status = ?", n.ID, StatusQueued)
				if n.ClaimedBy == nil {
					q = q.Where("claimed_by IS NULL")
				} else {
					q = q.Where("claimed_by = ?", *n.ClaimedBy)
				}
				res := q.Updates(map[string]any{"status": StatusQueued, "claimed_by": jobs[i], "next_attempt_at": nil, "updated_at": now})
				if res.Error != nil {
					return fmt.Errorf("notifier: sweep: %w", res.Error)
				}
				handed += int(res.RowsAffected)
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	if handed > 0 {
		s.log.Warn("outbox sweep: messages that no delivery job owned were queued again", "count", handed)
	}
	return handed, nil
}
