package requests

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/riverqueue/river"
	"gorm.io/gorm"

	"github.com/provisor/provisor/connectors"
	"github.com/provisor/provisor/identities"
)

// JobArgs is the queue entry of a connector job. The job's row is the
// source of truth; the entry only says which row to work on.
type JobArgs struct {
	JobID string `json:"job_id"`
}

// Kind is the queue's name for connector jobs.
func (JobArgs) Kind() string { return "connector_job" }

// Worker runs connector jobs. It is safe to run twice for the same job: a
// job that reached a final status is left alone, and connector operations
// are idempotent.
type Worker struct {
	river.WorkerDefaults[JobArgs]
	s *Service
}

// NewWorker returns the worker of s's jobs.
func NewWorker(s *Service) *Worker { return &Worker{s: s} }

// Work runs one attempt of a connector job.
func (w *Worker) Work(ctx context.Context, qj *river.Job[JobArgs]) error {
	s := w.s
	db := s.db.Gorm.WithContext(ctx)
	var j Job
	if err := db.Where("id = ?", qj.Args.JobID).Take(&j).Error; err != nil {
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return nil // the instance was deleted
		}
		return err
	}
	if j.Terminal() {
		return nil
	}
	if j.DependsOn != nil {
		var dep Job
		if err := db.Where("id = ?", *j.DependsOn).Take(&dep).Error; err != nil {
			return err
		}
		if dep.Status != JobCompleted {
			if dep.Terminal() {
				return s.finish(ctx, &j, qj.Attempt, JobCanceled, fmt.Sprintf("not run: job #%d (%s) %s", dep.Seq, dep.Kind, dep.Status), nil)
			}
			return river.JobSnooze(s.opts.DependencyWait)
		}
	}

	// Claim the job: only a job still waiting can start, so a job canceled
	// a moment ago does not run.
	started := false
	if err := s.db.InTx(ctx, func(tx *gorm.DB) error {
		inst, err := lockInstanceTx(tx, j.InstanceID)
		if err != nil {
			return err
		}
		now := time.Now().UTC()
		res := tx.Model(&Job{}).Where("id = ? AND status IN ?", j.ID, []string{JobPending, JobScheduled, JobRunning}).
			Updates(map[string]any{"status": JobRunning, "attempts": qj.Attempt, "started_at": gorm.Expr("COALESCE(started_at, ?)", now), "updated_at": now, "message": "running"})
		if res.Error != nil || res.RowsAffected == 0 {
			return res.Error
		}
		started = true
		msg := fmt.Sprintf("attempt %d of %d", qj.Attempt, qj.MaxAttempts)
		if err := eventTx(tx, j.ID, JobRunning, qj.Attempt, msg); err != nil {
			return err
		}
		return s.rollUpTx(ctx, tx, inst)
	}); err != nil {
		return err
	}
	if !started {
		return nil
	}

	rec, conn, err := s.connectors.OpenByID(ctx, j.ConnectorID)
	var result connectors.Result
	if err == nil {
		acct := connectors.Account{Username: j.Username}
		if j.IdentityID != nil {
			if id, e := s.ids.GetIdentity(ctx, *j.IdentityID); e == nil {
				acct.DisplayName, acct.Email = id.DisplayName, id.Email
			}
		}
		var ent connectors.Entitlement
		if j.EntitlementID != nil {
			e, gerr := s.ids.GetEntitlement(ctx, *j.EntitlementID)
			if gerr != nil {
				err = connectors.Permanent(fmt.Errorf("entitlement %s: %w", j.EntitlementName, gerr))
			} else {
				ent = connectors.Entitlement{ExternalID: e.ExternalID, Name: e.Name, Kind: e.Kind}
			}
		}
		if err == nil {
			if !rec.Enabled {
				err = connectors.Transient(fmt.Errorf("connector %s is disabled; the job waits until it is enabled", rec.Name))
			} else if connectors.Operation(j.Operation) == connectors.OpImport {
				result, err = s.runImport(ctx, &j)
			} else {
				result, err = connectors.Do(ctx, conn, connectors.Operation(j.Operation), acct, ent)
			}
		}
	} else if errors.Is(err, connectors.ErrNotFound) {
		err = connectors.Permanent(fmt.Errorf("connector %s no longer exists", j.ConnectorName))
	}

	switch {
	case err == nil:
		msg := result.Message
		if msg == "" {
			msg = "done"
		}
		if !result.Changed {
			msg += " (no change)"
		}
		return s.finish(ctx, &j, qj.Attempt, JobCompleted, msg, &result)
	case connectors.IsPermanent(err):
		if ferr := s.finish(ctx, &j, qj.Attempt, JobFailed, err.Error(), nil); ferr != nil {
			return ferr
		}
		return river.JobCancel(err)
	case qj.Attempt >= qj.MaxAttempts:
		msg := fmt.Sprintf("gave up after %d attempts: %v", qj.Attempt, err)
		if ferr := s.finish(ctx, &j, qj.Attempt, JobFailed, msg, nil); ferr != nil {
			return ferr
		}
		return river.JobCancel(err)
	default:
		// Transient: back to pending; the queue retries with backoff.
		if perr := s.db.InTx(ctx, func(tx *gorm.DB) error {
			inst, lerr := lockInstanceTx(tx, j.InstanceID)
			if lerr != nil {
				return lerr
			}
			res := tx.Model(&Job{}).Where("id = ? AND status = ?", j.ID, JobRunning).
				Updates(map[string]any{"status": JobPending, "message": "retrying: " + err.Error(), "updated_at": time.Now().UTC()})
			if res.Error != nil || res.RowsAffected == 0 {
				return res.Error
			}
			if e := eventTx(tx, j.ID, JobPending, qj.Attempt, fmt.Sprintf("attempt %d failed, will retry: %v", qj.Attempt, err)); e != nil {
				return e
			}
			return s.rollUpTx(ctx, tx, inst)
		}); perr != nil {
			return errors.Join(err, perr)
		}
		return err
	}
}

// finish moves a job to a final status in one transaction with its history
// entry, the portal's record of what changed, the wake-up or cancellation of
// jobs that wait for it, and the instance's roll-up.
func (s *Service) finish(ctx context.Context, j *Job, attempt int, status, message string, result *connectors.Result) error {
	return s.db.InTx(ctx, func(tx *gorm.DB) error {
		inst, err := lockInstanceTx(tx, j.InstanceID)
		if err != nil {
			return err
		}
		now := time.Now().UTC()
		res := tx.Model(&Job{}).Where("id = ? AND status IN ?", j.ID, []string{JobPending, JobScheduled, JobRunning}).
			Updates(map[string]any{"status": status, "message": message, "ended_at": now, "updated_at": now})
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return nil // already final: a second run of the same job
		}
		if err := eventTx(tx, j.ID, status, attempt, message); err != nil {
			return err
		}
		if status == JobCompleted && j.Operation != string(connectors.OpImport) {
			change := identities.Change{
				Operation: connectors.Operation(j.Operation), ConnectorID: j.ConnectorID, Username: j.Username,
				ExternalID: result.ExternalID,
			}
			if j.IdentityID != nil {
				change.IdentityID = *j.IdentityID
			}
			if j.EntitlementID != nil {
				change.EntitlementID = *j.EntitlementID
			}
			if change.Operation == connectors.OpGrant {
				change.ExpiresAt = inst.ExpiresAt
			}
			if err := s.ids.ApplyTx(ctx, tx, change); err != nil {
				return fmt.Errorf("requests: record job %s: %w", j.ID, err)
			}
		}
		if err := s.settleDependentsTx(ctx, tx, j, status); err != nil {
			return err
		}
		return s.rollUpTx(ctx, tx, inst)
	})
}

// settleDependentsTx wakes the jobs waiting for j when it completed, and
// cancels them when it failed or was canceled.
func (s *Service) settleDependentsTx(ctx context.Context, tx *gorm.DB, j *Job, status string) error {
	var deps []Job
	if err := tx.Where("depends_on = ? AND status = ?", j.ID, JobPending).Order("seq").Find(&deps).Error; err != nil {
		return err
	}
	now := time.Now().UTC()
	for _, d := range deps {
		if status == JobCompleted {
			if d.QueueJobID != nil {
				if err := s.queue.RetryTx(ctx, tx, *d.QueueJobID); err != nil {
					return err
				}
			}
			continue
		}
		msg := fmt.Sprintf("not run: job #%d (%s) %s", j.Seq, j.Kind, status)
		if err := tx.Model(&Job{}).Where("id = ?", d.ID).Updates(map[string]any{"status": JobCanceled, "message": msg, "ended_at": now, "updated_at": now}).Error; err != nil {
			return err
		}
		if err := eventTx(tx, d.ID, JobCanceled, 0, msg); err != nil {
			return err
		}
		if d.QueueJobID != nil {
			if err := s.queue.CancelTx(ctx, tx, *d.QueueJobID); err != nil {
				return err
			}
		}
		if err := s.settleDependentsTx(ctx, tx, &d, JobCanceled); err != nil {
			return err
		}
	}
	return nil
}
