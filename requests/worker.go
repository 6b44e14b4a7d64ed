package requests

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/riverqueue/river"
	"gorm.io/gorm"

	"github.com/provisor/provisor/connectors"
	"github.com/provisor/provisor/connectors/configured"
	"github.com/provisor/provisor/identities"
)

// JobArgs is the queue entry of a job set: the jobs of one beneficiary in
// one run (or its revocations), or a workgroup's grants (or revokes) of
// one entitlement, run in order by one worker. The jobs' rows
// are the source of truth: the entry's jobs are those whose queue_job_id is
// the entry's id.
type JobArgs struct {
	InstanceID string `json:"instance_id"`
	// Jobs is how many jobs the set had when it was queued; it bounds the
	// entry's run time.
	Jobs int `json:"jobs,omitempty"`
}

// Kind is the queue's name for connector job sets.
func (JobArgs) Kind() string { return "connector_job" }

// flushAfter is how long a set's results may wait in memory before they are
// written: a set of fast operations is recorded in one transaction at its
// end, while an operation that takes longer than this shows the ones before
// it done, and itself running, this long after it started. Shorter would
// cost a transaction for every operation of a loaded system, and a person
// watching the Connector Jobs page does not see a quarter of a second.
const flushAfter = 250 * time.Millisecond

// Worker runs job sets. It is safe to run twice for the same set: a job that
// reached a final status is left alone, a job is claimed before its
// operation runs (so a job canceled a moment ago does not run), and
// connector operations are idempotent.
type Worker struct {
	river.WorkerDefaults[JobArgs]
	s *Service
}

// NewWorker returns the worker of s's jobs.
func NewWorker(s *Service) *Worker { return &Worker{s: s} }

// Timeout bounds one attempt of a set. The queue takes over an entry whose
// worker died only once both this and its rescue delay have passed, so an
// attempt is bounded by the rescue delay, whatever the size of the set: it
// stops starting operations in time (see slice) and the set goes on in a
// new attempt at once. Each operation has the job timeout, which the worker
// enforces itself.
func (w *Worker) Timeout(qj *river.Job[JobArgs]) time.Duration {
	if w.s.opts.RescueAfter > 0 {
		return w.s.opts.RescueAfter
	}
	if w.s.opts.JobTimeout <= 0 {
		return -1
	}
	return time.Duration(max(qj.Args.Jobs, 1)+1) * w.s.opts.JobTimeout
}

// slice is how long an attempt of a set may go on starting operations:
// the last one it starts, with its job timeout, and the writing of the
// results still end before the attempt's bound (Timeout). Zero means no
// limit. An attempt always runs at least one operation.
func (s *Service) slice() time.Duration {
	rescue := s.opts.RescueAfter
	if rescue <= 0 {
		return 0
	}
	// What the attempt keeps for writing its results: a tenth of the
	// delay, and more of a short one (a quarter, up to 5 s).
	margin := max(rescue/10, min(rescue/4, 5*time.Second))
	if s.opts.JobTimeout <= 0 {
		return rescue / 2
	}
	return max(rescue-s.opts.JobTimeout-margin, time.Millisecond)
}

// Work runs one attempt of a job set: the jobs still waiting, in order. A
// job whose predecessor failed or was canceled is canceled; a job whose
// predecessor is not done yet waits for the next attempt. Results are
// written in a few transactions, and the set returns the first transient
// error so that the queue tries it again with backoff.
func (w *Worker) Work(ctx context.Context, qj *river.Job[JobArgs]) error {
	s := w.s
	// The set's jobs, with the entitlements they name.
	var rows []struct {
		Job
		EntExternalID *string
		EntName       string
		EntKind       string
	}
	if err := s.db.Gorm.WithContext(ctx).Table("connector_jobs").
		Select("connector_jobs.*, e.external_id AS ent_external_id, e.name AS ent_name, e.kind AS ent_kind").
		Joins("LEFT JOIN entitlements e ON e.id = connector_jobs.entitlement_id").
		Where("connector_jobs.queue_job_id = ?", qj.ID).Order("connector_jobs.seq").Scan(&rows).Error; err != nil {
		return err
	}
	if len(rows) == 0 {
		return nil // the run was deleted, or its jobs were retried into another entry
	}
	jobs := make([]Job, len(rows))
	r := &setRun{s: s, qj: qj, first: &jobs[0], status: map[string]string{}, byID: map[string]*Job{},
		people: map[string]*identities.Identity{}, ents: map[string]*identities.Entitlement{}, lastFlush: time.Now()}
	for i, row := range rows {
		jobs[i] = row.Job
		r.status[jobs[i].ID] = jobs[i].Status
		r.byID[jobs[i].ID] = &jobs[i]
		if row.EntExternalID != nil && jobs[i].EntitlementID != nil {
			r.ents[*jobs[i].EntitlementID] = &identities.Entitlement{ID: *jobs[i].EntitlementID, ConnectorID: jobs[i].ConnectorID,
				ExternalID: *row.EntExternalID, Name: row.EntName, Kind: row.EntKind}
		}
	}
	return r.run(ctx, jobs)
}

// setRun is one attempt of a job set.
type setRun struct {
	s  *Service
	qj *river.Job[JobArgs]
	// first is the set's first job: its instance and connector are the set's.
	first *Job
	// status is each job's status as this attempt knows it, for the
	// dependency checks of the jobs after it.
	status map[string]string
	byID   map[string]*Job

	// What the connector operations need, loaded once per set.
	loaded bool
	rec    *configured.Record
	conn   connectors.Connector
	// openErr is why the connector cannot be used; every job fails or
	// waits with it.
	openErr error
	people  map[string]*identities.Identity
	ents    map[string]*identities.Entitlement
	// accounts are the portal's accounts of the set's identities on the
	// connector, read once: operations get their external ids.
	accounts map[string]*identities.Account
	// made are the external ids of the accounts the set created, by
	// identity, for the provisioning log of the jobs after the create.
	made map[string]string

	outcomes  []outcome // not written yet
	lastFlush time.Time
	transient error // the first transient error: the set runs again
	// snooze is the longest wait a system asked for (Retry-After): the set
	// runs again after it without spending an attempt.
	snooze   time.Duration
	dbErr    error // the database failed: the set stops and runs again
	waiting  bool  // a job waits for a job of another set
	operated bool  // an operation ran in this attempt
	more     bool  // the attempt's time is up: the set goes on in a new one
	// quarantined is set when the results of this attempt found the set's
	// connector quarantined (or paused): the set waits for its probe
	// instead of retrying.
	quarantined *ConnectorState
}

// outcome is what happened to one job in this attempt, kept until written.
type outcome struct {
	job *Job
	// claimed says the job ran: it was claimed at startedAt (found running
	// when interrupted says an earlier attempt died with it).
	claimed, interrupted bool
	startedAt, endedAt   time.Time
	status, message      string
	event                string // the message of the history entry; message if empty
	result               connectors.Result
	err                  error // the operation's error, for the provisioning log
	// targetID and entitlementID are the external ids of the job's account
	// and entitlement as the set knew them, for the provisioning log.
	targetID, entitlementID string
	// waits counts the rate-limit waits of this attempt.
	waits int
	// class is the class of the operation's error ("" for a success),
	// errText its message; uncounted says the operation did not come to
	// an answer of the system (stopped, throttled): the connector's
	// health leaves it out.
	class     connectors.Class
	errText   string
	uncounted bool
}

// unchanged says the job completed and its connector changed nothing.
func (o *outcome) unchanged() bool { return o.status == JobCompleted && !o.result.Changed }

func (r *setRun) run(ctx context.Context, jobs []Job) error {
	// A quarantined or paused connector's jobs wait, spending no attempt.
	if st, err := r.s.connectorState(ctx, r.first.ConnectorID); err != nil {
		return err
	} else if st.Waiting() && !allTerminal(jobs) {
		return r.holdSet(ctx, &st)
	}
	var until time.Time
	if d := r.s.slice(); d > 0 {
		until = time.Now().Add(d)
	}
	for i := 0; i < len(jobs); {
		if err := ctx.Err(); err != nil {
			if !errors.Is(err, context.DeadlineExceeded) {
				r.fail(err) // stopped
			}
			break
		}
		if r.dbErr != nil || r.snooze > 0 || r.quarantined != nil {
			// A database error, a system that asked to wait, or a
			// connector quarantined by the results written so far: the
			// rest runs in the next attempt.
			break
		}
		if r.operated && !until.IsZero() && time.Now().After(until) && !allTerminal(jobs[i:]) {
			// Its time is up: the rest goes on in a new attempt, before the
			// queue would take this one for abandoned.
			r.more = true
			break
		}
		i += r.step(ctx, jobs, i)
	}
	if err := r.flush(ctx); err != nil {
		return errors.Join(r.dbErr, err)
	}
	switch {
	case r.dbErr != nil:
		return r.dbErr
	case r.quarantined != nil && !allTerminal(jobs):
		// This attempt's failures quarantined the connector: the set
		// waits for the probe, and the attempt is not spent.
		return r.holdSet(context.WithoutCancel(ctx), r.quarantined)
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		// The attempt's bound passed (a slow database made the slice run
		// over): the set goes on at once, and the operation cut short runs
		// again, which spends no attempt.
		return river.JobSnooze(0)
	case r.snooze > 0:
		// The system asked to wait: a snooze spends no attempt.
		return river.JobSnooze(r.snooze)
	case r.transient != nil:
		if c := connectors.ClassOf(r.transient); c == connectors.ClassConnection || c == connectors.ClassAuth {
			// Another set's results may have quarantined the connector
			// meanwhile: then this one waits too, without spending the
			// attempt.
			if st, err := r.s.readState(context.WithoutCancel(ctx), r.first.ConnectorID); err == nil && st.Waiting() {
				return r.holdSet(context.WithoutCancel(ctx), &st)
			}
		}
		return r.transient
	case r.more:
		return river.JobSnooze(0)
	case r.waiting:
		return river.JobSnooze(r.s.opts.DependencyWait)
	}
	return nil
}

// allTerminal reports whether every job has reached a final status.
func allTerminal(jobs []Job) bool {
	for i := range jobs {
		if !jobs[i].Terminal() {
			return false
		}
	}
	return true
}

// errAttemptEnded is why an operation was cut short by the end of its
// set's attempt (the worker's stop, or the attempt's bound), not by its
// own job timeout.
var errAttemptEnded = errors.New("stopped before the connector answered")

// maxBatch bounds how many grants or revokes of a set go in one request.
const maxBatch = 250

// step runs the job at jobs[i], if it is still waiting and its predecessor
// allows, and returns how many jobs it dealt with: on a connector that
// takes batches, the grants (or revokes) that follow it with the same
// predecessor go in the same request, whether they are one account's
// entitlements or one entitlement's accounts.
func (r *setRun) step(ctx context.Context, jobs []Job, i int) int {
	j := &jobs[i]
	if j.Terminal() {
		return 1
	}
	batch, n := []*Job{j}, 1
	if op := connectors.Operation(j.Operation); op == connectors.OpGrant || op == connectors.OpRevoke {
		r.load(ctx)
		if _, ok := r.conn.(connectors.Batcher); ok && r.openErr == nil {
			for m := i + 1; m < len(jobs) && len(batch) < maxBatch; m++ {
				next := &jobs[m]
				if !next.Terminal() && (next.Operation != j.Operation || !sameDep(next, j)) {
					break
				}
				n++
				if !next.Terminal() {
					batch = append(batch, next)
				}
			}
		}
	}
	if j.DependsOn != nil {
		dep, same := r.byID[*j.DependsOn]
		status := r.status[*j.DependsOn]
		if !same {
			// A predecessor in another set (after a retry).
			dep = &Job{}
			if err := r.s.db.Gorm.WithContext(ctx).Select("seq, kind, status").Where("id = ?", *j.DependsOn).Take(dep).Error; err != nil {
				r.fail(err)
				return n
			}
			status = dep.Status
		}
		switch status {
		case JobCompleted:
		case JobFailed, JobCanceled:
			now := time.Now().UTC()
			for _, b := range batch {
				r.record(outcome{job: b, startedAt: now, endedAt: now, status: JobCanceled,
					message: fmt.Sprintf("not run: job #%d (%s) %s", dep.Seq, dep.Kind, status)})
			}
			return n
		default:
			// Not done yet: it failed transiently in this attempt (the set
			// runs again), or it belongs to another set.
			r.waiting = r.waiting || !same
			return n
		}
	}

	claimed, startedAt := r.claim(ctx, batch)
	if len(claimed) == 0 {
		return n
	}
	r.operated = true
	if len(claimed) == 1 && len(batch) == 1 {
		result, err := r.operate(ctx, j)
		r.conclude(j, startedAt, result, err)
		return n
	}
	r.operateEach(ctx, claimed, startedAt)
	return n
}

// sameDep reports whether two jobs wait for the same job, or for none.
func sameDep(a, b *Job) bool {
	if a.DependsOn == nil || b.DependsOn == nil {
		return a.DependsOn == b.DependsOn
	}
	return *a.DependsOn == *b.DependsOn
}

// claim marks jobs running, in one statement, and returns those that were
// still waiting: a job canceled or retried elsewhere a moment ago does not
// start. Its commit need not reach the disk: after a crash, a claim lost
// leaves the job waiting, and the set runs it again either way.
func (r *setRun) claim(ctx context.Context, jobs []*Job) ([]*Job, time.Time) {
	now := time.Now().UTC()
	ids := make([]string, len(jobs))
	for i, j := range jobs {
		ids[i] = j.ID
	}
	var got []string
	if err := r.s.db.WriteRelaxed(ctx, func(g *gorm.DB) error {
		return g.Raw(`UPDATE connector_jobs SET status = ?, attempts = ?, started_at = COALESCE(started_at, ?),
		updated_at = ?, message = 'running' WHERE id IN ? AND queue_job_id = ? AND status IN ? RETURNING id`,
			JobRunning, r.qj.Attempt, now, now, ids, r.qj.ID, []string{JobPending, JobScheduled, JobRunning}).Scan(&got).Error
	}); err != nil {
		r.fail(err)
		return nil, now
	}
	ok := make(map[string]bool, len(got))
	for _, id := range got {
		ok[id] = true
	}
	var claimed, missed []*Job
	for _, j := range jobs {
		if ok[j.ID] {
			claimed = append(claimed, j)
		} else {
			missed = append(missed, j)
		}
	}
	for _, j := range missed {
		// Canceled or retried elsewhere a moment ago.
		var cur Job
		if err := r.s.db.Gorm.WithContext(ctx).Select("status").Where("id = ?", j.ID).Take(&cur).Error; err == nil {
			r.status[j.ID] = cur.Status
		}
	}
	for _, j := range claimed {
		r.status[j.ID] = JobRunning
	}
	return claimed, now
}

// conclude keeps what an attempt of a claimed job came to.
func (r *setRun) conclude(j *Job, startedAt time.Time, result connectors.Result, err error) {
	o := outcome{job: j, claimed: true, interrupted: j.Status == JobRunning, startedAt: startedAt, endedAt: time.Now().UTC(),
		waits: result.RateLimitWaits, result: result, err: err}
	wait, throttled := connectors.RetryAfterOf(err)
	if err != nil {
		o.class, o.errText = connectors.ClassOf(err), oneLine(err.Error(), 500)
	}
	o.uncounted = throttled || errors.Is(err, errAttemptEnded)
	defer func() {
		if f := r.s.opts.ObserveFunc; f != nil {
			f(j.ConnectorName, j.Operation, observed(&o), o.endedAt.Sub(startedAt))
		}
	}()
	switch {
	case err == nil:
		o.status, o.result = JobCompleted, result
		o.message = result.Message
		if o.message == "" {
			o.message = "done"
		}
		if !result.Changed {
			o.message += " (no change)"
		}
		o.message = connectors.MessageWithRequest(o.message, result.RequestID)
	case errors.Is(err, connectors.ErrAuth):
		// The system refused the connector's credentials: the connector
		// is quarantined with this result, and the job waits for it.
		o.status, o.message = JobPending, "connector quarantined: authentication failed: "+err.Error()
		o.event = fmt.Sprintf("attempt %d: the system refused the connector's credentials: %v", r.qj.Attempt, err)
		r.snooze = max(r.snooze, r.s.opts.Quarantine.ProbeMin)
	case connectors.IsPermanent(err):
		o.status, o.message = JobFailed, err.Error()
	case errors.Is(err, errAttemptEnded):
		// The worker stopped or the attempt reached its bound: the job
		// waits for the set's next attempt, whatever the attempts left.
		o.status, o.message = JobPending, "waiting: "+err.Error()
	case throttled:
		// The system asked to slow down for wait: the job waits that long,
		// and the wait spends no attempt.
		o.waits++
		o.status, o.message = JobPending, fmt.Sprintf("waiting %s as the system asked: %v", wait.Round(time.Millisecond), err)
		r.snooze = max(r.snooze, wait)
	case r.qj.Attempt >= r.qj.MaxAttempts:
		o.status, o.message = JobFailed, fmt.Sprintf("gave up after %d attempts: %v", r.qj.Attempt, err)
	default:
		o.status, o.message = JobPending, "retrying: "+err.Error()
		o.event = fmt.Sprintf("attempt %d failed, will retry: %v", r.qj.Attempt, err)
		if r.transient == nil {
			r.transient = err
		}
	}
	r.record(o)
}

// observed is the outcome of o as the metrics name it.
func observed(o *outcome) string {
	switch {
	case o.status == JobCompleted && !o.result.Changed:
		return "no_change"
	case o.status == JobCompleted:
		return "completed"
	case o.status == JobFailed:
		return "failed"
	case o.uncounted || o.class == connectors.ClassAuth:
		return "waiting"
	}
	return "retrying"
}

// fail notes a database error: the set stops and runs again.
func (r *setRun) fail(err error) {
	if r.dbErr == nil {
		r.dbErr = err
	}
}

// record keeps an outcome for the next flush.
func (r *setRun) record(o outcome) {
	r.status[o.job.ID] = o.status
	if j := o.job; j.IdentityID != nil {
		if a := r.accounts[*j.IdentityID]; a != nil && a.Username == j.Username {
			o.targetID = a.ExternalID
		}
		if o.result.ExternalID != "" {
			if r.made == nil {
				r.made = map[string]string{}
			}
			r.made[*j.IdentityID] = o.result.ExternalID
		} else if o.targetID == "" {
			o.targetID = r.made[*j.IdentityID]
		}
	}
	if j := o.job; j.EntitlementID != nil {
		if e := r.ents[*j.EntitlementID]; e != nil {
			o.entitlementID = e.ExternalID
		}
	}
	r.outcomes = append(r.outcomes, o)
}

// ready says why the set's connector cannot run an operation now, or nil.
func (r *setRun) ready(ctx context.Context) error {
	r.load(ctx)
	if r.openErr != nil {
		return r.openErr
	}
	if !r.rec.Enabled {
		return connectors.Transient(fmt.Errorf("connector %s is disabled; the job waits until it is enabled", r.rec.Name))
	}
	return nil
}

// operate runs a job's connector operation.
func (r *setRun) operate(ctx context.Context, j *Job) (connectors.Result, error) {
	if err := r.ready(ctx); err != nil {
		return connectors.Result{}, err
	}
	acct, ent, err := r.subjects(ctx, j)
	if err != nil {
		return connectors.Result{}, err
	}
	return within(ctx, r, func(ctx context.Context) (connectors.Result, error) {
		if connectors.Operation(j.Operation) == connectors.OpImport {
			return r.s.runImport(ctx, j)
		}
		return connectors.Do(ctx, r.conn, connectors.Operation(j.Operation), acct, ent)
	})
}

// flushEvery is how many results of a batch that is still running are
// kept before they are written: the results of a batch of many requests
// are recorded while the rest of it runs, about a hundred to a
// transaction, so that the end of the batch has only its last ones to
// write. Fewer would cost more transactions for each run, whose fixed part
// (the run's roll-up, the connector's state) is paid each time.
const flushEvery = 100

// operateEach runs the grants (or revokes) of jobs, claimed at startedAt,
// as one batch of the connector, and concludes each job when the connector
// reports its result. While the batch runs, the results are written as
// they gather (see flushEvery), and after flushAfter at the latest.
func (r *setRun) operateEach(ctx context.Context, jobs []*Job, startedAt time.Time) {
	if err := r.ready(ctx); err != nil {
		for _, j := range jobs {
			r.conclude(j, startedAt, connectors.Result{}, err)
		}
		return
	}
	var ms []connectors.Membership
	var of []*Job
	for _, j := range jobs {
		a, e, err := r.subjects(ctx, j)
		if err != nil {
			r.conclude(j, startedAt, connectors.Result{}, err)
			continue
		}
		ms, of = append(ms, connectors.Membership{Account: a, Entitlement: e}), append(of, j)
	}
	if len(ms) == 0 {
		return
	}
	opCtx, cancel := r.opContext(ctx)
	defer cancel()
	type report struct {
		i      int
		result connectors.Result
		err    error
	}
	// Buffered for every membership: the connector never waits for the
	// set, which writes results meanwhile.
	reports := make(chan report, len(ms))
	done := make(chan struct{})
	go func() {
		defer close(done)
		connectors.DoEach(opCtx, r.conn, connectors.Operation(of[0].Operation), ms, func(i int, result connectors.Result, err error) {
			reports <- report{i, result, err}
		})
	}()
	concluded := make([]bool, len(ms))
	left := len(ms)
	take := func(rep report) {
		if rep.i < 0 || rep.i >= len(ms) || concluded[rep.i] {
			return
		}
		concluded[rep.i], left = true, left-1
		err := rep.err
		if err != nil && opCtx.Err() != nil {
			err = r.cutShort(ctx, err)
		}
		r.conclude(of[rep.i], startedAt, rep.result, err)
	}
	// gather takes the reports that came meanwhile.
	gather := func() {
		for {
			select {
			case rep := <-reports:
				take(rep)
			default:
				return
			}
		}
	}
	wait := time.NewTimer(max(flushAfter-time.Since(r.lastFlush), time.Millisecond))
	defer wait.Stop()
	flush := func() {
		if err := r.flush(ctx); err != nil {
			r.fail(err)
		}
		wait.Reset(flushAfter)
	}
	for left > 0 {
		select {
		case rep := <-reports:
			take(rep)
			gather()
			if len(r.outcomes) >= flushEvery && left > 0 {
				flush()
			}
		case <-done:
			gather()
			for i := range ms {
				if !concluded[i] { // not reported: the connector's fault
					take(report{i: i, err: connectors.Transient(errors.New("the connector gave no result"))})
				}
			}
		case <-opCtx.Done():
			gather()
			for i := range ms {
				if !concluded[i] {
					take(report{i: i, err: opCtx.Err()})
				}
			}
		case <-wait.C:
			flush()
		}
	}
}

// opContext is ctx bounded by the job timeout.
func (r *setRun) opContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if t := r.s.opts.JobTimeout; t > 0 {
		return context.WithTimeout(ctx, t)
	}
	return ctx, func() {}
}

// cutShort is the error of an operation cut short by the job timeout, or
// by the end of the set's attempt (ctx).
func (r *setRun) cutShort(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return connectors.Transient(fmt.Errorf("%w: %w", errAttemptEnded, err))
	}
	return connectors.Transient(fmt.Errorf("no answer within %s: %w", r.s.opts.JobTimeout, err))
}

// within runs fn with the job timeout. While it runs past flushAfter, the
// results before it are written, so that a slow operation is seen running
// with everything before it done.
func within[T any](ctx context.Context, r *setRun, fn func(ctx context.Context) (T, error)) (T, error) {
	opCtx, cancel := r.opContext(ctx)
	defer cancel()
	type answer struct {
		v   T
		err error
	}
	done := make(chan answer, 1)
	go func() {
		v, err := fn(opCtx)
		done <- answer{v, err}
	}()
	wait := time.NewTimer(max(flushAfter-time.Since(r.lastFlush), time.Millisecond))
	defer wait.Stop()
	timedOut := func(err error) error { return r.cutShort(ctx, err) }
	answered := func(a answer) (T, error) {
		if a.err != nil && opCtx.Err() != nil {
			return a.v, timedOut(a.err)
		}
		return a.v, a.err
	}
	for {
		select {
		case a := <-done:
			return answered(a)
		case <-opCtx.Done():
			select {
			case a := <-done: // it answered just in time
				return answered(a)
			default:
			}
			var zero T
			return zero, timedOut(opCtx.Err())
		case <-wait.C:
			if err := r.flush(ctx); err != nil {
				r.fail(err)
			}
		}
	}
}

// load opens the set's connector once.
func (r *setRun) load(ctx context.Context) {
	if r.loaded {
		return
	}
	r.loaded = true
	var err error
	r.rec, r.conn, err = r.s.openConnector(ctx, r.first.ConnectorID)
	switch {
	case errors.Is(err, connectors.ErrNotFound):
		r.openErr = connectors.Permanent(fmt.Errorf("connector %s no longer exists", r.first.ConnectorName))
	case err != nil:
		r.openErr = connectors.Transient(err)
	}
}

// connectorTTL is how long a job set reuses the connector another set of
// the same connector opened: a connector disabled or changed applies to the
// sets that start this long after at the latest.
const connectorTTL = time.Second

type openConnector struct {
	rec  *configured.Record
	conn connectors.Connector
	at   time.Time
}

// openConnector returns the live connector of id, read from the database
// at most once per connectorTTL.
func (s *Service) openConnector(ctx context.Context, id string) (*configured.Record, connectors.Connector, error) {
	s.openMu.Lock()
	o, ok := s.open[id]
	s.openMu.Unlock()
	if ok && time.Since(o.at) < connectorTTL {
		return o.rec, o.conn, nil
	}
	rec, conn, err := s.connectors.OpenByID(ctx, id)
	if err != nil {
		return rec, conn, err
	}
	s.openMu.Lock()
	if s.open == nil {
		s.open = map[string]openConnector{}
	}
	s.open[id] = openConnector{rec: rec, conn: conn, at: time.Now()}
	s.openMu.Unlock()
	return rec, conn, nil
}

// subjects returns the account and the entitlement a job works on, read
// once per set.
func (r *setRun) subjects(ctx context.Context, j *Job) (connectors.Account, connectors.Entitlement, error) {
	acct := connectors.Account{Username: j.Username}
	var ent connectors.Entitlement
	if j.IdentityID != nil {
		if err := r.loadAccounts(ctx); err != nil {
			return acct, ent, err
		}
		if a := r.accounts[*j.IdentityID]; a != nil && a.Username == j.Username {
			acct.ExternalID = a.ExternalID
		}
	}
	// The name and address matter to an account being made; the other
	// operations find the account by its external id or username.
	if j.IdentityID != nil && connectors.Operation(j.Operation) == connectors.OpCreateAccount {
		id, ok := r.people[*j.IdentityID]
		if !ok {
			if got, err := r.s.ids.GetIdentity(ctx, *j.IdentityID); err == nil {
				id = got
			}
			r.people[*j.IdentityID] = id
		}
		if id != nil {
			acct.DisplayName, acct.Email = id.DisplayName, id.Email
			acct.GivenName, acct.Surname = splitName(id.DisplayName)
		}
		acct.Attributes = map[string]string{connectors.AttributeIdentityID: *j.IdentityID}
	}
	if j.EntitlementID != nil {
		e, ok := r.ents[*j.EntitlementID]
		if !ok {
			got, err := r.s.ids.GetEntitlement(ctx, *j.EntitlementID)
			if err != nil {
				return acct, ent, connectors.Permanent(fmt.Errorf("entitlement %s: %w", j.EntitlementName, err))
			}
			e, r.ents[*j.EntitlementID] = got, got
		}
		ent = connectors.Entitlement{ExternalID: e.ExternalID, Name: e.Name, Kind: e.Kind}
	}
	return acct, ent, nil
}

// loadAccounts reads the portal's accounts of the set's identities on its
// connector, once per set.
func (r *setRun) loadAccounts(ctx context.Context) error {
	if r.accounts != nil {
		return nil
	}
	var ids []string
	for _, j := range r.byID {
		if j.IdentityID != nil {
			ids = append(ids, *j.IdentityID)
		}
	}
	got, err := r.s.ids.AccountsOfTx(ctx, r.s.db.Gorm, r.first.ConnectorID, ids)
	if err != nil {
		return connectors.Transient(fmt.Errorf("read the accounts of the jobs: %w", err))
	}
	r.accounts = got
	return nil
}

// splitName makes a given name and a surname of a display name: the
// surname is the last word.
func splitName(display string) (given, surname string) {
	f := strings.Fields(display)
	switch len(f) {
	case 0:
		return "", ""
	case 1:
		return f[0], ""
	}
	return strings.Join(f[:len(f)-1], " "), f[len(f)-1]
}

// flush writes the outcomes kept so far (see recorder), with the
// instance's roll-up, which also counts the job running now. A crash
// before it commits loses nothing but the record: the set runs again and
// its operations are idempotent.
func (r *setRun) flush(ctx context.Context) error {
	r.lastFlush = time.Now()
	if len(r.outcomes) == 0 && !r.anyRunning() {
		return nil
	}
	// The record is written even when the set is being stopped.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	if err := r.s.recorder.record(ctx, r, r.outcomes); err != nil {
		return fmt.Errorf("requests: record jobs of run %s: %w", r.first.InstanceID, err)
	}
	r.outcomes = r.outcomes[:0]
	return nil
}

// anyRunning reports whether a job of the set is claimed and not done.
func (r *setRun) anyRunning() bool {
	for _, st := range r.status {
		if st == JobRunning {
			return true
		}
	}
	return false
}

// changeOf is the portal's record of what a completed job changed.
func changeOf(j *Job, result *connectors.Result, inst *Instance) identities.Change {
	c := identities.Change{
		Operation: connectors.Operation(j.Operation), ConnectorID: j.ConnectorID, Username: j.Username,
		ExternalID: result.ExternalID,
	}
	if j.IdentityID != nil {
		c.IdentityID = *j.IdentityID
	}
	if j.EntitlementID != nil {
		c.EntitlementID = *j.EntitlementID
	}
	if c.Operation == connectors.OpGrant {
		c.ExpiresAt = inst.ExpiresAt
	}
	return c
}
