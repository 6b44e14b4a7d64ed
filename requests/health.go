package requests

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/riverqueue/river"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/provisor/provisor/audit"
	"github.com/provisor/provisor/connectors"
	"github.com/provisor/provisor/database"
)

// A connector's states. Active, Quarantined and Paused are stored;
// Degraded (active, with recent failures) and Disabled (the connector is
// switched off) are what the pages show on top of them.
const (
	StateActive      = "active"
	StateDegraded    = "degraded"
	StateQuarantined = "quarantined"
	StatePaused      = "paused"
	StateDisabled    = "disabled"
)

// QuarantineRules say when a connector that keeps failing is quarantined.
// A refusal of its credentials quarantines it at once. Zero values mean
// the defaults.
type QuarantineRules struct {
	// ConnectionFailures is how many failures to reach the system in a
	// row quarantine it (default 5).
	ConnectionFailures int
	// FailureRatio is the percentage of failed operations, over the last
	// Window, above which it is quarantined (default 80).
	FailureRatio int
	// Window is how many of the last operations the ratio is taken over
	// (default 20); the ratio applies once that many ran.
	Window int
	// ProbeMin and ProbeMax bound the wait between probes of a
	// quarantined connector, which doubles after each failed probe
	// (defaults 1 min and 1 h).
	ProbeMin, ProbeMax time.Duration
}

func (q QuarantineRules) withDefaults() QuarantineRules {
	if q.ConnectionFailures <= 0 {
		q.ConnectionFailures = 5
	}
	if q.FailureRatio <= 0 || q.FailureRatio > 100 {
		q.FailureRatio = 80
	}
	if q.Window <= 0 {
		q.Window = 20
	}
	if q.ProbeMin <= 0 {
		q.ProbeMin = time.Minute
	}
	if q.ProbeMax < q.ProbeMin {
		q.ProbeMax = max(time.Hour, q.ProbeMin)
	}
	return q
}

// ConnectorState is a connector's stored current status.
type ConnectorState struct {
	ConnectorID string `gorm:"primaryKey" json:"connector_id"`
	State       string `json:"state"`
	// Reason says why the connector is quarantined or paused.
	Reason string `json:"reason,omitempty"`
	// Since is when it entered its state (quarantined or paused).
	Since       *time.Time `json:"since,omitempty"`
	ChangedBy   string     `json:"changed_by,omitempty"`
	NextProbeAt *time.Time `json:"next_probe_at,omitempty"`
	ProbeWaitMs int64      `json:"-"`
	// ConsecutiveFailures counts the operations that failed since the
	// last success.
	ConsecutiveFailures int `json:"consecutive_failures"`
	// Recent holds the outcomes of the last operations, oldest first:
	// '1' a success, '0' a failure, 'c' a failure to reach the system.
	Recent      string     `json:"recent,omitempty"`
	LastError   string     `json:"last_error,omitempty"`
	LastErrorAt *time.Time `json:"last_error_at,omitempty"`
	// LastSuccessAt is the last time Provisor signed in to the system and
	// an operation or a probe succeeded.
	LastSuccessAt *time.Time `json:"last_success_at,omitempty"`
	// ImportRead is how many objects the connector's running import read
	// so far, as it said at ImportReadAt.
	ImportRead   int        `json:"-"`
	ImportReadAt *time.Time `json:"-"`
	UpdatedAt    time.Time  `json:"updated_at"`
}

// NoteImportProgress keeps how many objects a connector's running import
// read so far, for its progress bar. It writes only those columns, so
// that it never undoes what the job results wrote meanwhile; a failure is
// logged, and the import goes on.
func (s *Service) NoteImportProgress(ctx context.Context, connectorID string, read int) {
	now := time.Now().UTC()
	err := s.db.Gorm.WithContext(ctx).Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "connector_id"}},
		DoUpdates: clause.AssignmentColumns([]string{"import_read", "import_read_at"})}).
		Create(&ConnectorState{ConnectorID: connectorID, State: StateActive, ImportRead: read, ImportReadAt: &now, UpdatedAt: now}).Error
	if err != nil {
		s.opts.Logger.Warn("import progress not recorded", "connector", connectorID, "err", err)
	}
}

// TableName is the table of connector states.
func (ConnectorState) TableName() string { return "connector_states" }

// Shown is the state the pages show: Disabled for a connector switched
// off, Degraded for an active one whose last operation failed.
func (c ConnectorState) Shown(enabled bool) string {
	switch {
	case !enabled:
		return StateDisabled
	case c.State == StateActive && c.ConsecutiveFailures > 0:
		return StateDegraded
	case c.State == "":
		return StateActive
	}
	return c.State
}

// Waiting says whether the connector's jobs wait instead of running.
func (c ConnectorState) Waiting() bool {
	return c.State == StateQuarantined || c.State == StatePaused
}

// WaitReason is what a job waiting for the connector says, such as
// "connector quarantined: bind refused, next probe 10:42".
func (c ConnectorState) WaitReason() string {
	switch c.State {
	case StateQuarantined:
		msg := "connector quarantined: " + c.Reason
		if c.NextProbeAt != nil {
			msg += ", next probe " + c.NextProbeAt.UTC().Format("15:04:05") + " UTC"
		}
		return msg
	case StatePaused:
		return "connector paused: " + c.Reason
	}
	return ""
}

// FailureRatio is the percentage of the recent operations that failed.
func (c ConnectorState) FailureRatio() int {
	if c.Recent == "" {
		return 0
	}
	return 100 * (len(c.Recent) - strings.Count(c.Recent, "1")) / len(c.Recent)
}

// ConnectorStateChange is a connector entering or leaving quarantine (or
// a pause), as the Options.ConnectorStateFuncs see it, in the
// transaction that changes it.
type ConnectorStateChange struct {
	ConnectorID, ConnectorName string
	From, To                   string
	Reason                     string
	Actor                      string
	At                         time.Time
	// Since is when the quarantine (or pause) began: for a release, that
	// of the quarantine it ends.
	Since       time.Time
	NextProbeAt *time.Time
}

// ConnectorStateFunc is called in the transaction that changes a
// connector's state.
type ConnectorStateFunc func(ctx context.Context, tx *gorm.DB, ch *ConnectorStateChange) error

type cachedState struct {
	st ConnectorState
	at time.Time
}

// connectorState returns the state of a connector, read from the database
// at most once per connectorTTL: a quarantine entered by another process
// applies to the sets that start this long after at the latest.
func (s *Service) connectorState(ctx context.Context, id string) (ConnectorState, error) {
	c, ok, gen := s.cachedState(id)
	if ok {
		return c, nil
	}
	st, err := s.readState(ctx, id)
	if err != nil {
		return st, err
	}
	s.keepState(id, st, gen)
	return st, nil
}

// cachedState is the state of a connector kept less than connectorTTL
// ago, if any and if no result write changes states now, and the
// generation of the states a read from the database now is of.
func (s *Service) cachedState(id string) (st ConnectorState, ok bool, gen uint64) {
	s.openMu.Lock()
	defer s.openMu.Unlock()
	c, ok := s.states[id]
	if !ok || s.changing > 0 || time.Since(c.at) >= connectorTTL {
		return ConnectorState{}, false, s.stateGen
	}
	return c.st, true, s.stateGen
}

// keepState caches st, read at generation gen, unless a state changed
// since or is being changed: a state read then may be older than the
// change, and is used, not kept.
func (s *Service) keepState(id string, st ConnectorState, gen uint64) {
	s.openMu.Lock()
	defer s.openMu.Unlock()
	if gen != s.stateGen || s.changing > 0 {
		return
	}
	if s.states == nil {
		s.states = map[string]cachedState{}
	}
	s.states[id] = cachedState{st: st, at: time.Now()}
}

// readState reads a connector's state from the database, bypassing the
// cache.
func (s *Service) readState(ctx context.Context, id string) (ConnectorState, error) {
	var st ConnectorState
	err := s.db.Gorm.WithContext(ctx).Where("connector_id = ?", id).Limit(1).Find(&st).Error
	return st, err
}

// stateChangeBegun and stateChangeEnded bracket a result write that
// found connectors quarantined or paused (see recorder.write): in between,
// states are read from the database only; at the end, those of the
// write's connectors are dropped from the cache.
func (s *Service) stateChangeBegun() {
	s.openMu.Lock()
	s.changing++
	s.stateGen++
	s.openMu.Unlock()
}

func (s *Service) stateChangeEnded(batch []*pendingWrite) {
	s.openMu.Lock()
	for _, w := range batch {
		if w.hold != nil {
			delete(s.states, w.r.first.ConnectorID)
		}
	}
	s.changing--
	s.stateGen++
	s.openMu.Unlock()
}

// forgetState drops the cached state of a connector whose change this
// process committed.
func (s *Service) forgetState(id string) {
	s.openMu.Lock()
	delete(s.states, id)
	s.stateGen++
	s.openMu.Unlock()
}

// lockStateTx returns a connector's state row, locked. The row is made
// first when the connector has none: a lock on a row that does not exist
// holds nothing, and two transactions would each count from nothing.
func lockStateTx(tx *gorm.DB, id string) (*ConnectorState, error) {
	if err := tx.Clauses(clause.OnConflict{DoNothing: true}).Create(&ConnectorState{ConnectorID: id, State: StateActive,
		UpdatedAt: time.Now().UTC()}).Error; err != nil {
		return nil, err
	}
	var st ConnectorState
	if err := database.ForUpdate(tx).Where("connector_id = ?", id).Take(&st).Error; err != nil {
		return nil, err
	}
	return &st, nil
}

func saveStateTx(tx *gorm.DB, st *ConnectorState) error {
	st.UpdatedAt = time.Now().UTC()
	return tx.Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "connector_id"}}, UpdateAll: true}).Create(st).Error
}

// health is what a batch of results says of one connector.
type health struct {
	outs []*outcome
	sets []*pendingWrite
	name string
}

// noteHealthTx updates, in the transaction that records a batch of
// results, the state of each connector the batch ran operations on: its
// recent outcomes, failures in a row, last error and success, the hour's
// counts, and quarantines it when the rules say so. It costs a few
// statements per connector and batch, not per job.
func (s *Service) noteHealthTx(ctx context.Context, tx *gorm.DB, batch []*pendingWrite) error {
	by := map[string]*health{}
	for _, w := range batch {
		w.hold = nil // from an earlier try of this write
		id := w.r.first.ConnectorID
		for i := range w.outs {
			o := &w.outs[i]
			if !o.counted() {
				continue
			}
			h := by[id]
			if h == nil {
				h = &health{name: w.r.first.ConnectorName}
				by[id] = h
			}
			h.outs = append(h.outs, o)
		}
		if h := by[id]; h != nil {
			h.sets = append(h.sets, w)
		}
	}
	if len(by) == 0 {
		return nil
	}
	ids := make([]string, 0, len(by))
	for id := range by {
		ids = append(ids, id)
	}
	sort.Strings(ids) // lock in one order
	rules := s.opts.Quarantine
	keep := max(rules.Window, rules.ConnectionFailures)
	for _, id := range ids {
		h := by[id]
		sort.SliceStable(h.outs, func(a, b int) bool { return h.outs[a].endedAt.Before(h.outs[b].endedAt) })
		st, err := lockStateTx(tx, id)
		if err != nil {
			return err
		}
		var recent strings.Builder
		recent.WriteString(st.Recent)
		hours := map[time.Time][2]int{}
		var authErr, lastErr string
		for _, o := range h.outs {
			at := o.endedAt.UTC()
			hr := hours[at.Truncate(time.Hour)]
			hr[0]++
			switch o.class {
			case "":
				recent.WriteByte('1')
				st.ConsecutiveFailures = 0
				st.LastSuccessAt = &at
			case connectors.ClassConnection:
				recent.WriteByte('c')
			default:
				recent.WriteByte('0')
			}
			if o.class != "" {
				hr[1]++
				st.ConsecutiveFailures++
				lastErr = o.errText
				st.LastError, st.LastErrorAt = o.errText, &at
				if o.class == connectors.ClassAuth {
					authErr = o.errText
				}
			}
			hours[at.Truncate(time.Hour)] = hr
		}
		st.Recent = recent.String()
		if len(st.Recent) > keep {
			st.Recent = st.Recent[len(st.Recent)-keep:]
		}
		if st.State == StateActive || st.State == "" {
			var reason string
			tail := len(st.Recent) - len(strings.TrimRight(st.Recent, "c"))
			window := st.Recent[max(len(st.Recent)-rules.Window, 0):]
			failed := len(window) - strings.Count(window, "1")
			switch {
			case authErr != "":
				reason = "authentication failed: " + authErr
			case tail >= rules.ConnectionFailures:
				reason = fmt.Sprintf("%d connection failures in a row: %s", tail, lastErr)
			case len(window) >= rules.Window && failed*100 > rules.FailureRatio*len(window):
				reason = fmt.Sprintf("%d of the last %d operations failed: %s", failed, len(window), lastErr)
			}
			if reason != "" {
				if err := s.quarantineTx(ctx, tx, st, h.name, reason); err != nil {
					return err
				}
			}
		}
		if st.Waiting() {
			// Quarantined by these results, or by others a moment ago, or
			// paused: the sets stop and wait, and the attempts they are in
			// are not spent.
			for _, w := range h.sets {
				q := *st
				w.hold = &q
			}
		}
		if err := saveStateTx(tx, st); err != nil {
			return fmt.Errorf("requests: record the state of connector %s: %w", h.name, err)
		}
		for hour, n := range hours {
			if err := tx.Exec(`INSERT INTO connector_hours (connector_id, hour, operations, failures) VALUES (?, ?, ?, ?)
			ON CONFLICT (connector_id, hour) DO UPDATE SET operations = connector_hours.operations + excluded.operations,
			failures = connector_hours.failures + excluded.failures`, id, hour, n[0], n[1]).Error; err != nil {
				return fmt.Errorf("requests: count the operations of connector %s: %w", h.name, err)
			}
		}
	}
	return nil
}

// counted says an outcome is an operation the connector answered (or
// failed to): not a job that waited, was stopped or was throttled.
func (o *outcome) counted() bool { return o.claimed && !o.uncounted }

// quarantineTx quarantines st (unsaved): its jobs wait, and a probe job
// tries the connector after the first wait.
func (s *Service) quarantineTx(ctx context.Context, tx *gorm.DB, st *ConnectorState, name, reason string) error {
	now := time.Now().UTC()
	wait := s.opts.Quarantine.ProbeMin
	next := now.Add(wait)
	from := st.State
	st.State, st.Reason, st.Since, st.ChangedBy = StateQuarantined, oneLine(reason, 500), &now, "provisor"
	st.NextProbeAt, st.ProbeWaitMs = &next, wait.Milliseconds()
	if err := audit.RecordTx(tx, "provisor", "connector.quarantine", "connector", st.ConnectorID,
		map[string]any{"name": name, "reason": st.Reason, "next_probe_at": next}); err != nil {
		return err
	}
	if s.queue != nil {
		if _, err := s.queue.InsertTx(ctx, tx, []river.InsertManyParams{{Args: ProbeArgs{ConnectorID: st.ConnectorID},
			InsertOpts: &river.InsertOpts{ScheduledAt: next, MaxAttempts: 5}}}); err != nil {
			return err
		}
	}
	s.opts.Logger.Warn("connector quarantined", "connector", name, "reason", st.Reason, "next_probe", next)
	return s.stateChangedTx(ctx, tx, &ConnectorStateChange{ConnectorID: st.ConnectorID, ConnectorName: name, From: shownFrom(from),
		To: StateQuarantined, Reason: st.Reason, Actor: "provisor", At: now, Since: now, NextProbeAt: &next})
}

func shownFrom(state string) string {
	if state == "" {
		return StateActive
	}
	return state
}

func (s *Service) stateChangedTx(ctx context.Context, tx *gorm.DB, ch *ConnectorStateChange) error {
	for _, fn := range s.onState {
		if err := fn(ctx, tx, ch); err != nil {
			return err
		}
	}
	return nil
}

// oneLine shortens s to one line of at most n bytes.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		s = string(r[:n])
	}
	return s
}

// holdSet keeps a set's waiting jobs waiting on a quarantined or paused
// connector: their message says why, and the set runs again at the next
// probe (or a minute on, for a pause; a release runs it at once). Neither
// spends an attempt.
func (r *setRun) holdSet(ctx context.Context, st *ConnectorState) error {
	msg := st.WaitReason()
	if err := r.s.db.Gorm.WithContext(ctx).Exec(`UPDATE connector_jobs SET message = ?, updated_at = ?
		WHERE queue_job_id = ? AND status IN ? AND message <> ?`, msg, time.Now().UTC(), r.qj.ID,
		[]string{JobPending, JobScheduled}, msg).Error; err != nil {
		return err
	}
	wait := time.Minute
	if st.State == StateQuarantined && st.NextProbeAt != nil {
		wait = time.Until(*st.NextProbeAt) + time.Second
	}
	return river.JobSnooze(min(max(wait, time.Second), r.s.opts.Quarantine.ProbeMax))
}

// ProbeArgs is the queue entry that probes a quarantined connector.
type ProbeArgs struct {
	ConnectorID string `json:"connector_id"`
}

// Kind is the queue's name for probes.
func (ProbeArgs) Kind() string { return "connector_probe" }

// ProbeWorker probes quarantined connectors: a probe that succeeds
// releases the connector, one that fails doubles the wait, up to the
// rules' ProbeMax. It waits by snoozing, which spends no attempt.
type ProbeWorker struct {
	river.WorkerDefaults[ProbeArgs]
	s *Service
}

// NewProbeWorker returns the worker of s's probes.
func NewProbeWorker(s *Service) *ProbeWorker { return &ProbeWorker{s: s} }

// Work probes the connector if it is still quarantined and its probe is due.
func (w *ProbeWorker) Work(ctx context.Context, qj *river.Job[ProbeArgs]) error {
	var st ConnectorState
	if err := w.s.db.Gorm.WithContext(ctx).Where("connector_id = ?", qj.Args.ConnectorID).Limit(1).Find(&st).Error; err != nil {
		return err
	}
	if st.State != StateQuarantined {
		return nil
	}
	if st.NextProbeAt != nil && time.Until(*st.NextProbeAt) > time.Second {
		return river.JobSnooze(time.Until(*st.NextProbeAt))
	}
	got, err := w.s.probe(ctx, qj.Args.ConnectorID, "provisor")
	if err != nil {
		return err
	}
	if got.State == StateQuarantined && got.NextProbeAt != nil {
		return river.JobSnooze(max(time.Until(*got.NextProbeAt), time.Second))
	}
	return nil
}

// probe tests a quarantined connector's connection: on success it is
// released, else its next probe waits twice as long.
func (s *Service) probe(ctx context.Context, id, actor string) (*ConnectorState, error) {
	rec, conn, err := s.connectors.OpenByID(ctx, id)
	var h connectors.Health
	switch {
	case errors.Is(err, connectors.ErrNotFound):
		return &ConnectorState{ConnectorID: id}, nil
	case err != nil:
		h = connectors.Health{Message: err.Error()}
	default:
		pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		h = connectors.CheckHealth(pctx, conn)
		cancel()
	}
	if h.OK {
		// Only a connector still quarantined: an admin may have released
		// and paused it while the probe ran.
		return s.setState(ctx, id, actor, StateActive, "probe succeeded", StateQuarantined)
	}
	var out *ConnectorState
	err = s.inTx(ctx, func(ctx context.Context, tx *gorm.DB) error {
		st, err := lockStateTx(tx, id)
		if err != nil || st.State != StateQuarantined {
			out = st
			return err
		}
		now := time.Now().UTC()
		wait := min(max(2*time.Duration(st.ProbeWaitMs)*time.Millisecond, s.opts.Quarantine.ProbeMin), s.opts.Quarantine.ProbeMax)
		next := now.Add(wait)
		st.NextProbeAt, st.ProbeWaitMs = &next, wait.Milliseconds()
		st.LastError, st.LastErrorAt = oneLine("probe: "+h.Message, 500), &now
		out = st
		return saveStateTx(tx, st)
	})
	name := id
	if rec != nil {
		name = rec.Name
	}
	if err == nil && out.State == StateQuarantined {
		s.opts.Logger.Info("connector probe failed", "connector", name, "err", h.Message, "next_probe", out.NextProbeAt)
	}
	s.forgetState(id)
	return out, err
}

// ConnectorAction is what an admin does to a connector's state.
type ConnectorAction string

// The admins' actions on a connector's state.
const (
	// ActionPause makes its jobs wait until Resume or Release.
	ActionPause ConnectorAction = "pause"
	// ActionResume ends a pause, or probes a quarantined connector now.
	ActionResume ConnectorAction = "resume"
	// ActionRelease ends a quarantine or a pause without probing.
	ActionRelease ConnectorAction = "release"
)

// SteerConnector applies an admin's action to a connector's state and
// returns the state it is in after.
func (s *Service) SteerConnector(ctx context.Context, id string, action ConnectorAction, actor string) (*ConnectorState, error) {
	if _, err := s.connectors.Get(ctx, id); err != nil {
		if errors.Is(err, connectors.ErrNotFound) {
			return nil, fmt.Errorf("%w: connector %s", ErrNotFound, id)
		}
		return nil, err
	}
	cur, err := s.connectorState(ctx, id)
	if err != nil {
		return nil, err
	}
	switch action {
	case ActionPause:
		if cur.State == StatePaused {
			return &cur, nil
		}
		return s.setState(ctx, id, actor, StatePaused, "paused by "+actor, "")
	case ActionResume:
		if cur.State == StateQuarantined {
			return s.probe(ctx, id, actor)
		}
		if cur.State != StatePaused {
			return nil, conflict("the connector is not paused nor quarantined")
		}
		return s.setState(ctx, id, actor, StateActive, "resumed by "+actor, "")
	case ActionRelease:
		if !cur.Waiting() {
			return nil, conflict("the connector is not quarantined nor paused")
		}
		return s.setState(ctx, id, actor, StateActive, "released by "+actor, "")
	}
	return nil, conflict("unknown action %q", action)
}

// setState moves a connector to state with reason, audits and announces
// it; leaving a quarantine or a pause makes its waiting jobs run now.
// With onlyFrom set, a connector no longer in that state is left as it is.
func (s *Service) setState(ctx context.Context, id, actor, state, reason, onlyFrom string) (*ConnectorState, error) {
	rec, err := s.connectors.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	var out *ConnectorState
	err = s.inTx(ctx, func(ctx context.Context, tx *gorm.DB) error {
		st, err := lockStateTx(tx, id)
		if err != nil {
			return err
		}
		out = st
		from := shownFrom(st.State)
		if from == state || (onlyFrom != "" && from != onlyFrom) {
			return nil
		}
		now := time.Now().UTC()
		since := now
		if st.Since != nil && state == StateActive {
			since = *st.Since
		}
		st.State, st.ChangedBy = state, actor
		action := "connector.pause"
		if state == StateActive {
			action = "connector.release"
			if from == StatePaused {
				action = "connector.resume"
			}
			st.Reason, st.Since, st.NextProbeAt, st.ProbeWaitMs = "", nil, nil, 0
			st.Recent, st.ConsecutiveFailures = "", 0
			if reason == "probe succeeded" {
				st.LastSuccessAt = &now
			}
		} else {
			st.Reason, st.Since, st.NextProbeAt = oneLine(reason, 500), &now, nil
		}
		if err := saveStateTx(tx, st); err != nil {
			return err
		}
		if err := audit.RecordTx(tx, actor, action, "connector", id, map[string]any{"name": rec.Name, "from": from, "reason": reason}); err != nil {
			return err
		}
		if state == StateActive {
			if err := s.releaseJobsTx(ctx, tx, id); err != nil {
				return err
			}
		}
		return s.stateChangedTx(ctx, tx, &ConnectorStateChange{ConnectorID: id, ConnectorName: rec.Name, From: from, To: state,
			Reason: reason, Actor: actor, At: now, Since: since})
	})
	if err != nil {
		return nil, fmt.Errorf("requests: connector %s to %s: %w", rec.Name, state, err)
	}
	s.forgetState(id)
	s.opts.Logger.Info("connector state changed", "connector", rec.Name, "state", out.State, "reason", reason, "by", actor)
	return out, nil
}

// releaseJobsTx makes the queue entries of the connector's waiting jobs
// run now.
func (s *Service) releaseJobsTx(ctx context.Context, tx *gorm.DB, id string) error {
	if s.queue == nil {
		return nil
	}
	var qids []int64
	if err := tx.Model(&Job{}).Distinct("queue_job_id").Where("connector_id = ? AND status = ? AND queue_job_id IS NOT NULL", id, JobPending).
		Pluck("queue_job_id", &qids).Error; err != nil {
		return err
	}
	for _, q := range qids {
		if err := s.queue.RetryTx(ctx, tx, q); err != nil {
			return err
		}
	}
	return nil
}

// ConnectorStatus is a connector's current status as its page shows it.
type ConnectorStatus struct {
	ConnectorState
	// Shown is the state to show (see ConnectorState.Shown).
	Shown string `json:"shown_state"`
	// Queue counts its waiting jobs: pending (never tried), retrying
	// (pending after a failed attempt) and scheduled.
	Queue QueueCounts `json:"queue"`
	// Hours are the last 24 hours, oldest first.
	Hours []HourCount `json:"hours"`
	// Importing is its import job running now, if any, with how far it
	// got; Imports are its last import jobs that ended, newest first.
	Importing *Job            `json:"importing,omitempty"`
	Progress  *ImportProgress `json:"import_progress,omitempty"`
	Imports   []Job           `json:"-"`
}

// ImportProgress is how far a running import got: the objects it read of
// about as many as the last applied cycle read (Total is 0 when there was
// none), and the end the pace so far makes.
type ImportProgress struct {
	Done         int        `json:"done"`
	Total        int        `json:"total,omitempty"`
	Percent      int        `json:"percent,omitempty"`
	EstimatedEnd *time.Time `json:"estimated_end,omitempty"`
}

// EstimateImport fills in the progress of st's running import, if any,
// against the last import cycle that was applied: it read lastRead
// objects and was the import of job lastJobID ("" when there was none),
// whose length, found among st.Imports, is the estimate before anything
// is read.
func (st *ConnectorStatus) EstimateImport(now time.Time, lastRead int, lastJobID string) {
	j := st.Importing
	if j == nil || j.StartedAt == nil || st.Progress == nil {
		return
	}
	var took time.Duration
	for _, k := range st.Imports {
		if k.ID == lastJobID && k.StartedAt != nil && k.EndedAt != nil {
			took = k.EndedAt.Sub(*k.StartedAt)
		}
	}
	st.Progress = EstimateProgress(*j.StartedAt, now, st.Progress.Done, lastRead, took)
}

// EstimateProgress is the progress of an import that started at start
// and read done objects by now, of about total; with nothing read yet,
// the end is that of an import as long as took (the last cycle's length,
// when known).
func EstimateProgress(start, now time.Time, done, total int, took time.Duration) *ImportProgress {
	p := &ImportProgress{Done: done, Total: total}
	if total <= 0 {
		return p
	}
	p.Percent = min(100*done/total, 99)
	var end time.Time
	switch {
	case done > 0:
		elapsed := now.Sub(start)
		end = start.Add(time.Duration(float64(elapsed) * float64(max(total, done)) / float64(done)))
	case took > 0:
		end = start.Add(took)
	default:
		return p
	}
	if end.Before(now) {
		end = now
	}
	p.EstimatedEnd = &end
	return p
}

// QueueCounts are a connector's waiting jobs.
type QueueCounts struct {
	Pending   int `json:"pending"`
	Scheduled int `json:"scheduled"`
	Retrying  int `json:"retrying"`
}

// HourCount is how many operations ran in an hour, and how many failed.
type HourCount struct {
	Hour       time.Time `json:"hour"`
	Operations int       `json:"operations"`
	Failures   int       `json:"failures"`
}

// ConnectorStates returns the stored state of every connector that has
// one, by connector id.
func (s *Service) ConnectorStates(ctx context.Context) (map[string]ConnectorState, error) {
	var rows []ConnectorState
	if err := s.db.Gorm.WithContext(ctx).Find(&rows).Error; err != nil {
		return nil, err
	}
	out := make(map[string]ConnectorState, len(rows))
	for _, r := range rows {
		out[r.ConnectorID] = r
	}
	return out, nil
}

// ConnectorStatus returns a connector's current status.
func (s *Service) ConnectorStatus(ctx context.Context, id string) (*ConnectorStatus, error) {
	rec, err := s.connectors.Get(ctx, id)
	if err != nil {
		if errors.Is(err, connectors.ErrNotFound) {
			return nil, fmt.Errorf("%w: connector %s", ErrNotFound, id)
		}
		return nil, err
	}
	g := s.db.Gorm.WithContext(ctx)
	out := &ConnectorStatus{ConnectorState: ConnectorState{ConnectorID: id, State: StateActive}}
	if err := g.Where("connector_id = ?", id).Limit(1).Find(&out.ConnectorState).Error; err != nil {
		return nil, err
	}
	out.Shown = out.ConnectorState.Shown(rec.Enabled)
	var counts []struct {
		Status  string
		Retried bool
		N       int
	}
	if err := g.Model(&Job{}).Select("status, attempts > 0 AS retried, count(*) AS n").
		Where("connector_id = ? AND status IN ?", id, []string{JobPending, JobScheduled}).
		Group("status, attempts > 0").Scan(&counts).Error; err != nil {
		return nil, err
	}
	for _, c := range counts {
		switch {
		case c.Status == JobScheduled:
			out.Queue.Scheduled += c.N
		case c.Retried:
			out.Queue.Retrying += c.N
		default:
			out.Queue.Pending += c.N
		}
	}
	var running []Job
	if err := g.Where("connector_id = ? AND operation = ? AND status = ?", id, string(connectors.OpImport), JobRunning).
		Order("started_at DESC").Limit(1).Find(&running).Error; err != nil {
		return nil, err
	}
	if len(running) == 1 {
		out.Importing = &running[0]
		if j := out.Importing; j.StartedAt != nil {
			done := 0
			if at := out.ImportReadAt; at != nil && !at.Before(j.StartedAt.Add(-time.Second)) {
				done = out.ImportRead
			}
			out.Progress = EstimateProgress(*j.StartedAt, time.Now(), done, 0, 0)
		}
	}
	if err := g.Where("connector_id = ? AND operation = ? AND status IN ?", id, string(connectors.OpImport), []string{JobCompleted, JobFailed}).
		Order("ended_at DESC").Limit(20).Find(&out.Imports).Error; err != nil {
		return nil, err
	}
	now := time.Now().UTC().Truncate(time.Hour)
	from := now.Add(-23 * time.Hour)
	var hours []HourCount
	if err := g.Table("connector_hours").Select("hour, operations, failures").
		Where("connector_id = ? AND hour >= ?", id, from).Scan(&hours).Error; err != nil {
		return nil, err
	}
	byHour := map[int64]HourCount{}
	for _, h := range hours {
		byHour[h.Hour.UTC().Truncate(time.Hour).Unix()] = h
	}
	for t := from; !t.After(now); t = t.Add(time.Hour) {
		h := byHour[t.Unix()]
		h.Hour = t
		out.Hours = append(out.Hours, h)
	}
	return out, nil
}

// HoursKept is how long the hourly counts of the status chart are kept:
// the chart shows 24 hours; a day more leaves room for clocks and time
// zones.
const HoursKept = 48 * time.Hour

// hoursBatch is how many hourly counts one statement of
// PruneConnectorHours deletes: a short transaction that holds back no
// job result.
const hoursBatch = 500

// PruneConnectorHours deletes the hourly counts older than before,
// hoursBatch at a time, and returns how many it deleted.
func (s *Service) PruneConnectorHours(ctx context.Context, before time.Time) (int64, error) {
	var total int64
	for {
		res := s.db.Gorm.WithContext(ctx).Exec(`DELETE FROM connector_hours WHERE (connector_id, hour) IN
			(SELECT connector_id, hour FROM connector_hours WHERE hour < ? ORDER BY hour LIMIT ?)`, before.UTC(), hoursBatch)
		if res.Error != nil {
			return total, fmt.Errorf("requests: prune the connectors' hourly counts: %w", res.Error)
		}
		total += res.RowsAffected
		if res.RowsAffected < hoursBatch {
			return total, nil
		}
	}
}
