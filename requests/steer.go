package requests

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"gorm.io/gorm"

	"github.com/provisor/provisor/audit"
	"github.com/provisor/provisor/input"
)

func (s *Service) loadJobTx(tx *gorm.DB, id string) (*Job, error) {
	if !input.ID(id) {
		return nil, ErrNotFound
	}
	var j Job
	if err := tx.Where("id = ?", id).Take(&j).Error; err != nil {
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return nil, ErrNotFound
		}
		return nil, err
	}
	return &j, nil
}

// steerTx runs fn on one job with its instance locked, then rolls the
// instance up and writes the audit entry.
func (s *Service) steerTx(ctx context.Context, jobID, actor, action string, fn func(tx *gorm.DB, j *Job) error) (*Job, error) {
	var out *Job
	err := s.inTx(ctx, func(ctx context.Context, tx *gorm.DB) error {
		j, err := s.loadJobTx(tx, jobID)
		if err != nil {
			return err
		}
		inst, err := lockInstanceTx(tx, j.InstanceID)
		if err != nil {
			return err
		}
		if j, err = s.loadJobTx(tx, jobID); err != nil { // re-read under the lock
			return err
		}
		if err := fn(tx, j); err != nil {
			return err
		}
		if err := audit.RecordTx(tx, actor, action, "connector_job", j.ID, map[string]any{
			"instance": j.InstanceID, "number": j.Seq, "kind": j.Kind,
		}); err != nil {
			return err
		}
		if err := s.rollUpTx(ctx, tx, inst); err != nil {
			return err
		}
		out, err = s.loadJobTx(tx, jobID)
		return err
	})
	return out, err
}

// CancelJob cancels a pending job. Running jobs, finished jobs and
// revocations cannot be canceled: a revocation ends time-bound access, so
// it only ever completes or fails (and a failed one can be retried),
// whether it waits for the expiry or Force End made it pending.
func (s *Service) CancelJob(ctx context.Context, jobID, actor string) (*Job, error) {
	return s.steerTx(ctx, jobID, actor, "job.cancel", func(tx *gorm.DB, j *Job) error {
		switch {
		case j.Revocation && j.Status == JobScheduled:
			return conflict("job #%d is a scheduled revocation and cannot be canceled; use Force End to run it now", j.Seq)
		case j.Revocation && !j.Terminal():
			return conflict("job #%d ends time-bound access and cannot be canceled; it runs until it completes or fails", j.Seq)
		}
		switch j.Status {
		case JobPending:
		case JobScheduled:
			return conflict("job #%d is scheduled and cannot be canceled", j.Seq)
		case JobRunning:
			return conflict("job #%d is running; wait for it to end", j.Seq)
		default:
			return conflict("job #%d is already %s", j.Seq, j.Status)
		}
		ok, err := s.cancelTx(ctx, tx, j, actor)
		if err == nil && !ok {
			err = conflict("job #%d has just started; wait for it to end", j.Seq)
		}
		return err
	})
}

// cancelTx cancels a pending job and the jobs waiting for it. It reports
// false, changing nothing, when the job is no longer pending: its set's
// worker claims jobs without the instance's lock, so a job may start at any
// moment.
func (s *Service) cancelTx(ctx context.Context, tx *gorm.DB, j *Job, actor string) (bool, error) {
	now := time.Now().UTC()
	ok, err := moveTx(tx, j, JobPending, JobCanceled, j.Attempts, "canceled by "+actor, map[string]any{"ended_at": now})
	if err != nil || !ok {
		return false, err
	}
	if err := cancelDependentsTx(tx, j); err != nil {
		return false, err
	}
	return true, s.releaseEntryTx(ctx, tx, j.QueueJobID)
}

// cancelDependentsTx cancels the pending jobs that wait for j, canceled by
// an admin, and those that wait for them. (In a set's run, the worker
// cancels them itself when it reaches them.)
func cancelDependentsTx(tx *gorm.DB, j *Job) error {
	var deps []Job
	if err := tx.Where("depends_on = ? AND status = ? AND NOT revocation", j.ID, JobPending).Order("seq").Find(&deps).Error; err != nil {
		return err
	}
	now := time.Now().UTC()
	for _, d := range deps {
		msg := fmt.Sprintf("not run: job #%d (%s) %s", j.Seq, j.Kind, JobCanceled)
		ok, err := moveTx(tx, &d, JobPending, JobCanceled, 0, msg, map[string]any{"ended_at": now})
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		if err := cancelDependentsTx(tx, &d); err != nil {
			return err
		}
	}
	return nil
}

// moveTx changes a job's status from one to another, with its history
// entry, if it still has the first: a set's worker claims jobs without the
// run's lock. It reports whether it did.
func moveTx(tx *gorm.DB, j *Job, from, to string, attempt int, msg string, more map[string]any) (bool, error) {
	updates := map[string]any{"status": to, "message": msg, "updated_at": time.Now().UTC()}
	maps.Copy(updates, more)
	res := tx.Model(&Job{}).Where("id = ? AND status = ?", j.ID, from).Updates(updates)
	if res.Error != nil || res.RowsAffected == 0 {
		return false, res.Error
	}
	return true, eventTx(tx, j.ID, to, attempt, msg)
}

// releaseEntryTx cancels a set's queue entry once none of its jobs is left
// to run.
func (s *Service) releaseEntryTx(ctx context.Context, tx *gorm.DB, queueID *int64) error {
	if queueID == nil {
		return nil
	}
	var left int64
	if err := tx.Model(&Job{}).Where("queue_job_id = ? AND status IN ?", *queueID, []string{JobPending, JobScheduled, JobRunning}).
		Count(&left).Error; err != nil {
		return err
	}
	if left > 0 {
		return nil
	}
	return s.queue.CancelTx(ctx, tx, *queueID)
}

// CancelInstance cancels every pending job of an instance. Revocations
// stay, scheduled or pending (after Force End); running jobs finish.
func (s *Service) CancelInstance(ctx context.Context, instanceID, actor string) (*Instance, error) {
	err := s.inTx(ctx, func(ctx context.Context, tx *gorm.DB) error {
		inst, err := lockInstanceTx(tx, instanceID)
		if err != nil {
			return err
		}
		if inst.Status == InstanceAwaitingApproval && inst.ApprovalID != nil {
			// Nothing is queued yet: cancelling withdraws the request.
			a, err := getApproval(tx, *inst.ApprovalID, true)
			if err != nil {
				return err
			}
			if err := audit.RecordTx(tx, actor, "request.cancel", "request_instance", instanceID, map[string]any{"awaiting_approval": a.ID}); err != nil {
				return err
			}
			return s.withdrawTx(ctx, tx, a, actor, "canceled on the Connector Jobs page")
		}
		var pending []Job
		if err := tx.Where("instance_id = ? AND status = ? AND NOT revocation", instanceID, JobPending).Order("seq").Find(&pending).Error; err != nil {
			return err
		}
		if len(pending) == 0 {
			return conflict("no job of this run is pending (revocations are never canceled)")
		}
		canceled := 0
		for i := range pending {
			// A dependent may have been canceled along with its
			// predecessor, and a job may have started meanwhile.
			ok, err := s.cancelTx(ctx, tx, &pending[i], actor)
			if err != nil {
				return err
			}
			if ok {
				canceled++
			}
		}
		if canceled == 0 {
			return conflict("no job of this run is pending")
		}
		if err := audit.RecordTx(tx, actor, "request.cancel", "request_instance", instanceID, map[string]any{"jobs": canceled}); err != nil {
			return err
		}
		return s.rollUpTx(ctx, tx, inst)
	})
	if err != nil {
		return nil, err
	}
	return s.GetInstance(ctx, instanceID)
}

// RetryJob runs a failed or canceled job again, with a fresh set of
// attempts; jobs that were not run because of it wait for it again.
func (s *Service) RetryJob(ctx context.Context, jobID, actor string) (*Job, error) {
	return s.steerTx(ctx, jobID, actor, "job.retry", func(tx *gorm.DB, j *Job) error {
		if j.Status != JobFailed && j.Status != JobCanceled {
			return conflict("job #%d is %s; only failed or canceled jobs can be retried", j.Seq, j.Status)
		}
		if j.DependsOn != nil {
			dep, err := s.loadJobTx(tx, *j.DependsOn)
			if err != nil {
				return err
			}
			if dep.Status == JobFailed || dep.Status == JobCanceled {
				return conflict("job #%d waits for job #%d, which is %s: retry that one", j.Seq, dep.Seq, dep.Status)
			}
		}
		return s.requeueTx(ctx, tx, j, "retry requested by "+actor, time.Now().UTC())
	})
}

// requeueTx puts a finished job back in the queue, with the jobs canceled
// because of it waiting for it again: together they are a new job set.
func (s *Service) requeueTx(ctx context.Context, tx *gorm.DB, j *Job, message string, now time.Time) error {
	jobs := []Job{*j}
	messages := []string{message}
	for i := 0; i < len(jobs); i++ {
		var deps []Job
		if err := tx.Where("depends_on = ? AND status = ? AND message LIKE ?", jobs[i].ID, JobCanceled, "not run: %").Order("seq").
			Find(&deps).Error; err != nil {
			return err
		}
		for _, d := range deps {
			jobs = append(jobs, d)
			messages = append(messages, fmt.Sprintf("waits for job #%d again", jobs[i].Seq))
		}
	}
	order := make([]int, len(jobs))
	for i := range jobs {
		order[i] = i
		jobs[i].Status, jobs[i].RunAt = JobPending, nil
	}
	slices.SortFunc(order, func(a, b int) int { return jobs[a].Seq - jobs[b].Seq })
	sorted := make([]Job, len(jobs))
	for i, k := range order {
		sorted[i] = jobs[k]
	}
	if err := s.enqueueSetsTx(ctx, tx, sorted, make([]int, len(sorted)), now); err != nil {
		return err
	}
	for i, k := range order {
		if err := tx.Model(&Job{}).Where("id = ?", sorted[i].ID).Updates(map[string]any{
			"status": JobPending, "message": messages[k], "run_at": nil, "ended_at": nil, "updated_at": now, "queue_job_id": *sorted[i].QueueJobID,
		}).Error; err != nil {
			return err
		}
		if err := eventTx(tx, sorted[i].ID, JobPending, 0, messages[k]); err != nil {
			return err
		}
	}
	return nil
}

// ForceEnd ends a time-bound run now: its scheduled revocations run at once.
func (s *Service) ForceEnd(ctx context.Context, instanceID, actor string) (*Instance, error) {
	err := s.inTx(ctx, func(ctx context.Context, tx *gorm.DB) error {
		inst, err := lockInstanceTx(tx, instanceID)
		if err != nil {
			return err
		}
		var scheduled []Job
		if err := tx.Where("instance_id = ? AND status = ?", instanceID, JobScheduled).Order("seq").Find(&scheduled).Error; err != nil {
			return err
		}
		if len(scheduled) == 0 {
			return conflict("this run has no scheduled revocation to run")
		}
		now := time.Now().UTC()
		msg := "Force End by " + actor + ": revocation runs now"
		entries := map[int64]bool{}
		for _, j := range scheduled {
			// The revocation may have come due and started a moment ago.
			ok, err := moveTx(tx, &j, JobScheduled, JobPending, 0, msg, map[string]any{"run_at": now})
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
			if j.QueueJobID != nil && !entries[*j.QueueJobID] {
				entries[*j.QueueJobID] = true
				if err := s.queue.RetryTx(ctx, tx, *j.QueueJobID); err != nil {
					return err
				}
			}
		}
		if err := tx.Model(&Instance{}).Where("id = ?", instanceID).Update("expires_at", now).Error; err != nil {
			return err
		}
		if err := audit.RecordTx(tx, actor, "request.force_end", "request_instance", instanceID, map[string]any{"revocations": len(scheduled)}); err != nil {
			return err
		}
		return s.rollUpTx(ctx, tx, inst)
	})
	if err != nil {
		return nil, err
	}
	return s.GetInstance(ctx, instanceID)
}
