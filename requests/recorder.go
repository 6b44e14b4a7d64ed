package requests

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"gorm.io/gorm"

	"github.com/provisor/provisor/connectors"
	"github.com/provisor/provisor/database"
	"github.com/provisor/provisor/identities"
)

// recorder writes the results of job sets that end at about the same time
// in one transaction. While transactions write, the sets that end wait in
// line, and the next transaction writes all of them: a run of many sets (a
// workgroup's, or many runs at once) costs a few transactions instead of
// one each, all taking turns on the same instance's lock.
//
// Up to writers goroutines of the recorder's own write what is in line,
// one batch after the other, and end when the line is empty; a set that
// ends starts one when fewer are writing. The line and the count of
// writers change together under one lock, so the line is never left with
// nobody to write it, and the sets only wait for their answer (or their
// context).
type recorder struct {
	// write writes a batch in one transaction.
	write func(ctx context.Context, batch []*pendingWrite) error

	mu      sync.Mutex
	line    []*pendingWrite
	writing int
}

func newRecorder(s *Service) *recorder {
	return &recorder{write: func(ctx context.Context, batch []*pendingWrite) error {
		// A write that quarantines a connector (or finds it so) keeps the
		// cached states out of use from before its commit until after it:
		// a set that starts once the commit is visible reads the new state,
		// even before the set whose results these are has heard of it.
		changing := false
		defer func() {
			if changing {
				s.stateChangeEnded(batch)
			}
		}()
		return s.inTxWith(ctx, s.db.InTxAsync, func(ctx context.Context, tx *gorm.DB) error {
			if err := s.writeOutcomesTx(ctx, tx, batch); err != nil {
				return err
			}
			for _, w := range batch {
				if w.hold != nil && !changing {
					changing = true
					s.stateChangeBegun()
				}
			}
			return nil
		})
	}}
}

// writers is how many transactions of a process record results at a time.
const writers = 2

// writeTimeout bounds one batch's transaction.
const writeTimeout = time.Minute

// pendingWrite is what one set has to write: its outcomes, or only its
// run's roll-up while a job of it runs.
type pendingWrite struct {
	r    *setRun
	outs []outcome
	done chan error // the answer, once written
	// hold is the state of the set's connector when the write found it
	// quarantined or paused: the set stops and waits.
	hold *ConnectorState
}

// maxLine bounds the outcomes written in one transaction.
const maxLine = 1000

// record writes outs (and the roll-up of r's run), in a transaction shared
// with the sets that end meanwhile, and returns when it committed, or when
// ctx ends (the write may then still happen: a set's record is idempotent).
func (rc *recorder) record(ctx context.Context, r *setRun, outs []outcome) error {
	w := &pendingWrite{r: r, outs: slices.Clone(outs), done: make(chan error, 1)}
	rc.mu.Lock()
	rc.line = append(rc.line, w)
	start := rc.writing < writers
	if start {
		rc.writing++
	}
	rc.mu.Unlock()
	if start {
		go rc.drain()
	}
	select {
	case err := <-w.done:
		if err == nil && w.hold != nil {
			// The write found the connector quarantined or paused (its
			// cached state was dropped when the write ended, see
			// stateChangeEnded): the set stops and waits.
			r.quarantined = w.hold
		}
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// drain writes the line in batches until it is empty.
func (rc *recorder) drain() {
	for {
		rc.mu.Lock()
		n, size := 0, 0
		for n < len(rc.line) && (n == 0 || size+len(rc.line[n].outs) <= maxLine) {
			size += len(rc.line[n].outs)
			n++
		}
		if n == 0 {
			rc.writing--
			rc.mu.Unlock()
			return
		}
		batch := slices.Clone(rc.line[:n])
		rc.line = slices.Delete(rc.line, 0, n)
		rc.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
		rc.commit(ctx, batch)
		cancel()
	}
}

// commit writes batch in one transaction. When it fails, each set is
// written alone, so that one set's trouble holds no other back.
func (rc *recorder) commit(ctx context.Context, batch []*pendingWrite) {
	err := rc.write(ctx, batch)
	if err != nil && len(batch) > 1 {
		for _, w := range batch {
			w.done <- rc.write(ctx, []*pendingWrite{w})
		}
		return
	}
	for _, w := range batch {
		w.done <- err
	}
}

// writeOutcomesTx writes the outcomes of sets: each job's status and
// history, the portal's record of what changed, and each run's roll-up,
// which also counts the jobs running now. The runs are locked first, in
// the order of their ids.
func (s *Service) writeOutcomesTx(ctx context.Context, tx *gorm.DB, batch []*pendingWrite) error {
	var ids []string
	for _, w := range batch {
		ids = append(ids, w.r.first.InstanceID)
	}
	sort.Strings(ids)
	ids = slices.Compact(ids)
	insts, err := lockInstancesTx(tx, ids)
	if err != nil {
		return err
	}
	var all []outcome
	for _, w := range batch {
		if insts[w.r.first.InstanceID] != nil { // else the run was deleted meanwhile
			all = append(all, w.outs...)
		}
	}
	updated, err := updateOutcomesTx(tx, all)
	if err != nil {
		return err
	}
	var events []Event
	var changes []identities.Change
	for _, w := range batch {
		inst := insts[w.r.first.InstanceID]
		if inst == nil {
			continue
		}
		qj := w.r.qj
		for i := range w.outs {
			o := &w.outs[i]
			j := o.job
			if !updated[j.ID] {
				continue // ended by someone else meanwhile
			}
			if o.interrupted {
				events = append(events, Event{JobID: j.ID, At: o.startedAt, Status: JobPending, Attempt: j.Attempts,
					Message: fmt.Sprintf("attempt %d ended without a result (its worker stopped or died); taken over by attempt %d", j.Attempts, w.r.qj.Attempt)})
			}
			attempt := 0
			if o.claimed {
				attempt = qj.Attempt
				events = append(events, Event{JobID: j.ID, At: o.startedAt, Status: JobRunning, Attempt: qj.Attempt,
					Message: fmt.Sprintf("attempt %d of %d", qj.Attempt, qj.MaxAttempts)})
			}
			msg := o.event
			if msg == "" {
				msg = o.message
			}
			events = append(events, Event{JobID: j.ID, At: o.endedAt, Status: o.status, Attempt: attempt, Message: msg})
			if o.status == JobCompleted && j.Operation != string(connectors.OpImport) {
				changes = append(changes, changeOf(j, &o.result, inst))
			}
		}
	}
	if err := insertEventsTx(tx, events); err != nil {
		return err
	}
	if err := s.logOutcomesTx(tx, batch, insts, updated); err != nil {
		return err
	}
	if err := s.ids.ApplyTx(ctx, tx, changes...); err != nil {
		return fmt.Errorf("requests: record the jobs' changes: %w", err)
	}
	if err := s.noteHealthTx(ctx, tx, batch); err != nil {
		return err
	}
	counts, err := countJobsTx(tx, ids)
	if err != nil {
		return err
	}
	for _, id := range ids {
		if inst := insts[id]; inst != nil {
			if err := s.rollUpCountedTx(ctx, tx, inst, counts[id]); err != nil {
				return err
			}
		}
	}
	return nil
}

// lockInstancesTx locks runs as lockInstanceTx does, in the order of ids
// (sorted), and returns those that exist.
func lockInstancesTx(tx *gorm.DB, ids []string) (map[string]*Instance, error) {
	if len(ids) == 1 {
		inst, err := lockInstanceTx(tx, ids[0])
		if errors.Is(err, ErrNotFound) {
			return map[string]*Instance{}, nil
		}
		return map[string]*Instance{ids[0]: inst}, err
	}
	q := database.ForUpdate(tx).Where("id IN ?", ids).Order("id")
	var rows []Instance
	if err := q.Find(&rows).Error; err != nil {
		return nil, err
	}
	out := make(map[string]*Instance, len(rows))
	for i := range rows {
		out[rows[i].ID] = &rows[i]
	}
	return out, nil
}

// jobCounts are a run's jobs by status, and how many of the completed ones
// changed nothing.
type jobCounts struct {
	byStatus  map[string]int
	unchanged int
}

// countJobsTx counts the jobs of runs by status, and the unchanged ones,
// in the one statement that counts them by status.
func countJobsTx(tx *gorm.DB, ids []string) (map[string]*jobCounts, error) {
	var rows []struct {
		InstanceID string
		Status     string
		N          int
		Unchanged  int
	}
	if err := tx.Model(&Job{}).Select("instance_id, status, count(*) AS n, "+
		"COALESCE(sum(CASE WHEN unchanged THEN 1 ELSE 0 END), 0) AS unchanged").Where("instance_id IN ?", ids).
		Group("instance_id, status").Scan(&rows).Error; err != nil {
		return nil, err
	}
	out := make(map[string]*jobCounts, len(ids))
	for _, r := range rows {
		c := out[r.InstanceID]
		if c == nil {
			c = &jobCounts{byStatus: map[string]int{}}
			out[r.InstanceID] = c
		}
		c.byStatus[r.Status] = r.N
		if r.Status == JobCompleted {
			c.unchanged += r.Unchanged
		}
	}
	return out, nil
}

// updateOutcomesTx writes the outcomes' statuses in one statement per few
// hundred and returns the jobs it changed. A claimed job is running and
// nobody else changes it; a job not run is pending, unless an admin
// canceled it meanwhile, and then it is left as it is.
func updateOutcomesTx(tx *gorm.DB, outs []outcome) (map[string]bool, error) {
	out := make(map[string]bool, len(outs))
	row := "(" + database.Typed(tx, "uuid") + ", ?, ?, " + database.Typed(tx, "boolean") + ", " + database.Typed(tx, "timestamptz") + ", " +
		database.Typed(tx, "timestamptz") + ", " + database.Typed(tx, "integer") + ")"
	for start := 0; start < len(outs); start += 500 {
		chunk := outs[start:min(start+500, len(outs))]
		var q strings.Builder
		args := make([]any, 0, 7*len(chunk)+1)
		q.WriteString("WITH v (id, status, message, unchanged, updated_at, ended_at, waits) AS (VALUES ")
		for i, o := range chunk {
			if i > 0 {
				q.WriteString(", ")
			}
			q.WriteString(row)
			var ended any
			if o.status != JobPending {
				ended = o.endedAt
			}
			args = append(args, o.job.ID, o.status, o.message, o.unchanged(), o.endedAt, ended, o.waits)
		}
		q.WriteString(") UPDATE connector_jobs SET status = v.status, message = v.message, unchanged = v.unchanged, " +
			"updated_at = v.updated_at, ended_at = COALESCE(v.ended_at, connector_jobs.ended_at), " +
			"rate_limit_waits = connector_jobs.rate_limit_waits + v.waits FROM v " +
			"WHERE connector_jobs.id = v.id AND connector_jobs.status IN ? RETURNING connector_jobs.id")
		args = append(args, []string{JobRunning, JobPending, JobScheduled})
		var changed []string
		if err := tx.Raw(q.String(), args...).Scan(&changed).Error; err != nil {
			return nil, fmt.Errorf("requests: record job results: %w", err)
		}
		for _, id := range changed {
			out[id] = true
		}
	}
	return out, nil
}

// insertEventsTx writes job history entries, a few hundred to a statement,
// built by hand: a batch's results have two entries a job, and the ORM's
// reflection over each of them cost more than the statement.
func insertEventsTx(tx *gorm.DB, events []Event) error {
	const chunk = 500
	for start := 0; start < len(events); start += chunk {
		part := events[start:min(start+chunk, len(events))]
		var q strings.Builder
		args := make([]any, 0, 5*len(part))
		q.WriteString("INSERT INTO job_events (job_id, at, status, attempt, message) VALUES ")
		for i, e := range part {
			if i > 0 {
				q.WriteString(", ")
			}
			q.WriteString("(?, ?, ?, ?, ?)")
			args = append(args, e.JobID, e.At, e.Status, e.Attempt, e.Message)
		}
		if err := tx.Exec(q.String(), args...).Error; err != nil {
			return fmt.Errorf("requests: record job history: %w", err)
		}
	}
	return nil
}
