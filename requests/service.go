package requests

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/riverqueue/river"
	"gorm.io/gorm"

	"github.com/provisor/provisor/audit"
	"github.com/provisor/provisor/connectors"
	"github.com/provisor/provisor/connectors/configured"
	"github.com/provisor/provisor/database"
	"github.com/provisor/provisor/identities"
	"github.com/provisor/provisor/input"
)

// Errors a caller can act on.
var (
	ErrNotFound = fmt.Errorf("%w", input.ErrNotFound)
	// ErrConflict is wrapped by errors that say why an action does not apply
	// to the current state (cancel a running job, retry a completed one).
	ErrConflict = fmt.Errorf("%w", input.ErrConflict)
)

func conflict(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrConflict, fmt.Sprintf(format, a...))
}

// SettledFunc is called in the transaction that moves an instance between
// busy (pending, running) and settled (active, completed, failed, canceled),
// either way. prev is the status before the change.
type SettledFunc func(ctx context.Context, tx *gorm.DB, inst *Instance, prev string) error

// AfterSettledFunc is called after the transaction that moved an instance
// between busy and settled has committed. It cannot undo the change; it
// deals with its own errors.
type AfterSettledFunc func(ctx context.Context, inst *Instance, prev string)

// Options configure the Service. A nil *Options means defaults.
type Options struct {
	// MaxAttempts is how many times a job with transient errors is tried (default 10).
	MaxAttempts int
	// JobTimeout bounds one connector operation (none if zero).
	JobTimeout time.Duration
	// RescueAfter is how long the queue lets a set's entry run before it
	// takes the entry as abandoned (its worker died) and runs it again. An
	// attempt of a set stops starting operations in time to end before it,
	// and the set goes on at once in a new attempt, so that a set of any
	// size whose worker died is taken over this long after (see
	// Worker.Timeout). Zero leaves attempts unbounded but for JobTimeout.
	RescueAfter time.Duration
	// DependencyWait is how long a job set waits before it looks again when
	// one of its jobs waits for a job of another set that has not finished
	// (default 5s). Within a set, order alone keeps dependencies.
	DependencyWait time.Duration
	Logger         *slog.Logger
	// ImportFunc runs the jobs of data_import requests.
	ImportFunc ImportFunc
	// People finds who may decide approvals (the portal's users).
	People People
	// ApprovalExpiry is how long a request waits for its approvals before
	// it expires (default DefaultApprovalExpiry).
	ApprovalExpiry time.Duration
	// NoProvisioningLog writes no provisioning log entries; only the
	// benchmark sets it, to measure what the entries cost.
	NoProvisioningLog bool
	// SettledFuncs run, in order, in the transaction that moves an
	// instance between busy and settled, either way.
	SettledFuncs []SettledFunc
	// AfterSettledFuncs run, in order, once that transaction committed.
	AfterSettledFuncs []AfterSettledFunc
	// ApprovalFuncs run, in order, in the transaction that opens approval
	// steps or ends a task's approval.
	ApprovalFuncs []ApprovalFunc
	// ConnectorStateFuncs run, in order, in the transaction that puts a
	// connector in or out of quarantine or a pause.
	ConnectorStateFuncs []ConnectorStateFunc
	// Quarantine says when a failing connector is quarantined.
	Quarantine QuarantineRules
	// ObserveFunc, when set, is told of every operation that ran: its
	// connector, kind, outcome (completed, no_change, failed, retrying,
	// waiting) and how long it took. It must be fast (a metric).
	ObserveFunc func(connector, kind, outcome string, took time.Duration)
}

// Service starts and steers request instances.
type Service struct {
	db         *database.DB
	queue      *database.Queue
	ids        *identities.Service
	connectors *configured.Store
	opts       Options
	settled    []SettledFunc
	after      []AfterSettledFunc
	onApproval []ApprovalFunc

	openMu sync.Mutex
	open   map[string]openConnector // by connector id, see openConnector
	states map[string]cachedState   // by connector id, see connectorState
	// stateGen counts the state changes this process committed, so that a
	// state read before one is not cached after it.
	stateGen uint64
	// changing counts the result writes under way that found a connector
	// quarantined or paused: until they end, no state is read from the
	// cache or kept in it (see recorder.write).
	changing int

	onState []ConnectorStateFunc

	recorder *recorder
}

// New returns the service; its jobs go to queue.
func New(db *database.DB, queue *database.Queue, ids *identities.Service, store *configured.Store, opts *Options) *Service {
	o := Options{MaxAttempts: 10, DependencyWait: 5 * time.Second, Logger: slog.New(slog.DiscardHandler)}
	if opts != nil {
		if opts.MaxAttempts > 0 {
			o.MaxAttempts = opts.MaxAttempts
		}
		o.JobTimeout = opts.JobTimeout
		o.RescueAfter = opts.RescueAfter
		if opts.DependencyWait > 0 {
			o.DependencyWait = opts.DependencyWait
		}
		if opts.Logger != nil {
			o.Logger = opts.Logger
		}
		o.ImportFunc = opts.ImportFunc
		o.People = opts.People
		o.ApprovalExpiry = opts.ApprovalExpiry
		o.NoProvisioningLog = opts.NoProvisioningLog
		o.Quarantine = opts.Quarantine
		o.ObserveFunc = opts.ObserveFunc
	}
	o.Quarantine = o.Quarantine.withDefaults()
	s := &Service{db: db, queue: queue, ids: ids, connectors: store, opts: o}
	if opts != nil {
		s.settled = slices.Clone(opts.SettledFuncs)
		s.after = slices.Clone(opts.AfterSettledFuncs)
		s.onApproval = slices.Clone(opts.ApprovalFuncs)
		s.onState = slices.Clone(opts.ConnectorStateFuncs)
	}
	s.recorder = newRecorder(s)
	return s
}

// transition is an instance that moved between busy and settled in a
// transaction, kept for the AfterSettledFuncs.
type transition struct {
	inst Instance
	prev string
}

type transitionsKey struct{}

// inTx runs fn in a transaction, then the AfterSettledFuncs of the
// instances it settled, once it committed.
func (s *Service) inTx(ctx context.Context, fn func(ctx context.Context, tx *gorm.DB) error) error {
	return s.inTxWith(ctx, s.db.InTx, fn)
}

// inTxWith is inTx on a transaction that begin makes (DB.InTx or DB.InTxAsync).
func (s *Service) inTxWith(ctx context.Context, begin func(context.Context, func(*gorm.DB) error) error,
	fn func(ctx context.Context, tx *gorm.DB) error) error {
	var moved []transition
	tctx := context.WithValue(ctx, transitionsKey{}, &moved)
	if err := begin(tctx, func(tx *gorm.DB) error {
		moved = moved[:0] // a retried transaction starts over
		return fn(tctx, tx)
	}); err != nil {
		return err
	}
	for _, t := range moved {
		for _, fn := range s.after {
			fn(context.WithoutCancel(ctx), &t.inst, t.prev)
		}
	}
	return nil
}

// StartOpts say who started a run and how.
type StartOpts struct {
	Trigger  string
	Actor    string
	TaskID   string
	TaskName string
	// ID, if set, is the new run's id (a UUID).
	ID string
	// ApprovalID, if set, is the approval the run goes ahead under: its
	// task's.
	ApprovalID string
	// Key, if set, makes Submit idempotent: see IdempotencyKey.
	Key *IdempotencyKey
	// By, if set, is the requester whose request this is: the request is
	// checked against the request policy for them first (see Authorize).
	// Runs of a task leave it nil: its request was checked when it was saved.
	By *Requester
}

// resolved is a request checked against the database.
type resolved struct {
	req       Request
	connector *configured.Record
	conn      connectors.Connector
	benName   string
	people    []beneficiary
	ents      []entitlementRef
	expiresAt *time.Time
	// accounts are the beneficiaries' accounts on the connector as the
	// portal knows them, by identity id.
	accounts map[string]*identities.Account
}

// Validate checks a request and returns every problem by field, or nil. A
// valid request is normalized in place (trimmed, default priority).
func (s *Service) Validate(ctx context.Context, r *Request) error {
	res, err := s.resolve(ctx, s.db.Gorm.WithContext(ctx), *r)
	if err != nil {
		return err
	}
	*r = res.req
	return nil
}

func (s *Service) resolve(ctx context.Context, tx *gorm.DB, r Request) (*resolved, error) {
	v := r.checkShape()
	out := &resolved{req: r}
	if r.ConnectorID != "" {
		rec, err := s.connectors.GetTx(ctx, tx, r.ConnectorID)
		switch {
		case errors.Is(err, connectors.ErrNotFound):
			v.add("connector_id", "no connector with id %s", r.ConnectorID)
		case err != nil:
			return nil, err
		case !rec.Enabled:
			v.add("connector_id", "connector %s is disabled", rec.Name)
		default:
			out.connector = rec
			conn, err := s.connectors.Open(ctx, rec)
			if err != nil {
				v.add("connector_id", "connector %s cannot be used: %v", rec.Name, err)
			}
			out.conn = conn
			if conn != nil && r.Type != DataImport && len(r.Type.Operations()) > 0 && !Offers(conn, r.Type) {
				v.add("type", "connector %s cannot run %s requests", rec.Name, r.Type)
			}
			if r.Type == DataImport && conn != nil {
				if !connectors.Supports(conn, connectors.OpImport) {
					v.add("connector_id", "connector %s does not support data import", rec.Name)
				}
				out.benName = rec.Name
				out.people = []beneficiary{{}}
			}
		}
	}
	// An empty beneficiary is reported as required by checkShape.
	switch benType := r.BeneficiaryType; {
	case r.BeneficiaryID == "":
	case benType == BeneficiaryIdentity:
		id, err := s.ids.GetIdentityTx(ctx, tx, r.BeneficiaryID)
		switch {
		case errors.Is(err, identities.ErrNotFound):
			v.add("beneficiary_id", "no identity with id %s", r.BeneficiaryID)
		case err != nil:
			return nil, err
		case id.Status != "active":
			v.add("beneficiary_id", "identity %s is %s", id.Username, id.Status)
		default:
			out.benName = id.DisplayName
			out.people = []beneficiary{{IdentityID: id.ID, Username: id.Username}}
		}
	case benType == BeneficiaryWorkgroup:
		wg, err := s.ids.GetWorkgroupTx(ctx, tx, r.BeneficiaryID)
		switch {
		case errors.Is(err, identities.ErrNotFound):
			v.add("beneficiary_id", "no workgroup with id %s", r.BeneficiaryID)
		case err != nil:
			return nil, err
		default:
			out.benName = wg.Name
			members, err := s.ids.Members(ctx, tx, wg.ID)
			if err != nil {
				return nil, err
			}
			if len(members) == 0 {
				v.add("beneficiary_id", "workgroup %s has no members", wg.Name)
			}
			for _, m := range members {
				out.people = append(out.people, beneficiary{IdentityID: m.ID, Username: m.Username})
			}
		}
	}
	for i, eid := range r.Entitlements {
		field := fmt.Sprintf("entitlements[%d]", i)
		e, err := s.ids.GetEntitlementTx(ctx, tx, eid)
		switch {
		case errors.Is(err, identities.ErrNotFound):
			v.add(field, "no entitlement with id %s", eid)
		case err != nil:
			return nil, err
		case e.Deleted:
			v.add(field, "entitlement %s no longer exists on its connector", e.Name)
		case e.ConnectorID != r.ConnectorID:
			v.add(field, "entitlement %s belongs to another connector", e.Name)
		default:
			out.ents = append(out.ents, entitlementRef{ID: e.ID, ExternalID: e.ExternalID, Name: e.Name, Kind: e.Kind})
		}
	}
	if err := v.orNil(); err != nil {
		return nil, err
	}
	if r.Duration != "" {
		d, _ := ParseDuration(r.Duration)
		at := time.Now().UTC().Add(d)
		out.expiresAt = &at
	}
	// Accounts that exist under another name are addressed by that name.
	var idents []string
	for _, p := range out.people {
		if p.IdentityID != "" {
			idents = append(idents, p.IdentityID)
		}
	}
	accounts, err := s.ids.AccountsOfTx(ctx, tx, r.ConnectorID, idents)
	if err != nil {
		return nil, err
	}
	for i, p := range out.people {
		if a := accounts[p.IdentityID]; a != nil && p.IdentityID != "" {
			out.people[i].Username = a.Username
			out.people[i].HasAccount = a.Status != "deleted"
		}
	}
	out.accounts = accounts
	out.req = r
	return out, nil
}

// BeneficiaryName returns the display name of an identity or the name of a workgroup.
func (s *Service) BeneficiaryName(ctx context.Context, kind, id string) (string, error) {
	if kind == BeneficiaryConnector {
		rec, err := s.connectors.Get(ctx, id)
		if err != nil {
			return "", err
		}
		return rec.Name, nil
	}
	if kind == BeneficiaryWorkgroup {
		wg, err := s.ids.GetWorkgroup(ctx, id)
		if err != nil {
			return "", err
		}
		return wg.Name, nil
	}
	p, err := s.ids.GetIdentity(ctx, id)
	if err != nil {
		return "", err
	}
	return p.DisplayName, nil
}

// Submit validates r and starts it as a new instance with its jobs. With
// opts.Key, a key that started a run already gives that run.
func (s *Service) Submit(ctx context.Context, r Request, opts StartOpts) (*Instance, error) {
	var inst *Instance
	var prior string
	if opts.Key != nil && opts.ID == "" {
		opts.ID = uuid.NewString()
	}
	err := s.db.InTx(ctx, func(tx *gorm.DB) error {
		var err error
		if opts.Key != nil {
			if prior, err = s.ClaimKeyTx(ctx, tx, opts.Key, opts.ID); err != nil || prior != "" {
				return err
			}
		}
		inst, err = s.StartTx(ctx, tx, r, opts)
		return err
	})
	if err == nil && prior != "" {
		return s.GetInstance(ctx, prior)
	}
	if opts.By != nil {
		s.auditRefusal(ctx, opts.Actor, r, err)
	}
	return inst, err
}

// StartTx validates r and, in tx, writes a request instance, its connector
// jobs with their first history entries, and their queue entries: all of
// them commit together or not at all. A request of opts.By that needs an
// approval is written as a run Awaiting approval, without jobs, with its
// approval; its jobs are written when the approval comes through.
func (s *Service) StartTx(ctx context.Context, tx *gorm.DB, r Request, opts StartOpts) (*Instance, error) {
	if s.queue == nil {
		return nil, errors.New("requests: no queue configured")
	}
	res, stages, err := s.prepareTx(ctx, tx, r, opts.By)
	if err != nil {
		return nil, err
	}
	reqJSON, err := json.Marshal(res.req)
	if err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	id := opts.ID
	if id == "" {
		id = uuid.NewString()
	}
	inst := &Instance{
		ID: id, TaskName: opts.TaskName, Request: string(reqJSON), Type: r.Type,
		BeneficiaryType: res.req.BeneficiaryType, BeneficiaryID: res.req.BeneficiaryID, BeneficiaryName: res.benName,
		ConnectorID: r.ConnectorID, Trigger: opts.Trigger, TriggeredBy: opts.Actor, Priority: res.req.Priority,
		Status: InstancePending, ExpiresAt: res.expiresAt, CreatedAt: now, UpdatedAt: now,
	}
	if opts.TaskID != "" {
		inst.TaskID = &opts.TaskID
	}
	if opts.ApprovalID != "" {
		inst.ApprovalID = &opts.ApprovalID
	}
	if len(stages) > 0 {
		inst.Status, inst.ExpiresAt = InstanceAwaitingApproval, nil
		if err := tx.Create(inst).Error; err != nil {
			return nil, fmt.Errorf("requests: create instance: %w", err)
		}
		a, err := s.openTx(ctx, tx, *opts.By, res, stages, ApprovalFor{InstanceID: inst.ID})
		if err != nil {
			return nil, err
		}
		inst.ApprovalID = &a.ID
		if err := tx.Model(&Instance{}).Where("id = ?", inst.ID).Update("approval_id", a.ID).Error; err != nil {
			return nil, err
		}
		if err := audit.RecordTx(tx, opts.Actor, "request.start", "request_instance", inst.ID, map[string]any{
			"trigger": opts.Trigger, "type": r.Type, "beneficiary": res.benName, "awaiting_approval": a.ID,
		}); err != nil {
			return nil, err
		}
		return inst, nil
	}
	jobs, events, sets := s.buildJobs(inst, res, now)
	if err := tx.Create(inst).Error; err != nil {
		return nil, fmt.Errorf("requests: create instance: %w", err)
	}
	if err := s.writeJobsTx(ctx, tx, jobs, events, sets, now); err != nil {
		return nil, err
	}
	if err := audit.RecordTx(tx, opts.Actor, "request.start", "request_instance", inst.ID, map[string]any{
		"trigger": opts.Trigger, "type": r.Type, "beneficiary": res.benName, "task": opts.TaskName, "jobs": len(jobs),
	}); err != nil {
		return nil, err
	}
	inst.Jobs = jobs
	return inst, nil
}

// prepareTx checks r against the request policy for by (unless by is nil,
// as for the runs of a task) and resolves it, and returns the approval
// stages it needs for by: what a run of r is, before anything is written.
// StartTx and PreviewTx both begin here.
func (s *Service) prepareTx(ctx context.Context, tx *gorm.DB, r Request, by *Requester) (*resolved, [][]planned, error) {
	if by != nil {
		if err := s.AuthorizeTx(ctx, tx, *by, &r); err != nil {
			return nil, nil, err
		}
	}
	res, err := s.resolve(ctx, tx, r)
	if err != nil {
		return nil, nil, err
	}
	var stages [][]planned
	if by != nil {
		if stages, err = s.planTx(ctx, tx, *by, res); err != nil {
			return nil, nil, err
		}
	}
	return res, stages, nil
}

// buildJobs expands res into inst's jobs, their first history entries and
// the index of each job's set (see setsOf), and counts them on inst.
func (s *Service) buildJobs(inst *Instance, res *resolved, now time.Time) ([]Job, []Event, []int) {
	specs := expand(&res.req, res.people, res.ents, res.expiresAt)
	inst.JobsTotal = len(specs)
	for _, sp := range specs {
		if sp.revocation {
			inst.JobsScheduled++
		} else {
			inst.JobsPending++
		}
	}
	jobs := make([]Job, len(specs))
	for i, sp := range specs {
		j := Job{
			ID: uuid.NewString(), InstanceID: inst.ID, Seq: i + 1, ConnectorID: res.connector.ID,
			ConnectorName: res.connector.Name, ConnectorType: res.connector.Type, Username: sp.username,
			Operation: string(sp.op), Kind: jobKind(res.conn, sp.op, &res.req, sp.entitlement), Status: JobPending, Priority: res.req.Priority,
			Revocation: sp.revocation, RunAt: sp.runAt, CreatedAt: now, UpdatedAt: now,
		}
		if sp.identityID != "" {
			id := sp.identityID
			j.IdentityID = &id
		}
		if sp.entitlement != nil {
			id := sp.entitlement.ID
			j.EntitlementID = &id
			j.EntitlementName = sp.entitlement.Name
		}
		if sp.dependsOn >= 0 {
			dep := jobs[sp.dependsOn].ID
			j.DependsOn = &dep
		}
		if sp.revocation {
			j.Status = JobScheduled
		}
		jobs[i] = j
	}
	events := make([]Event, len(jobs))
	for i := range jobs {
		events[i] = Event{JobID: jobs[i].ID, At: now, Status: jobs[i].Status, Message: initialMessage(&jobs[i], jobs)}
	}
	return jobs, events, setsOf(specs)
}

// writeJobsTx queues jobs by their sets and writes them with their first
// history entries.
func (s *Service) writeJobsTx(ctx context.Context, tx *gorm.DB, jobs []Job, events []Event, sets []int, now time.Time) error {
	if err := s.enqueueSetsTx(ctx, tx, jobs, sets, now); err != nil {
		return err
	}
	if len(jobs) > 0 {
		if err := tx.CreateInBatches(jobs, 100).Error; err != nil {
			return fmt.Errorf("requests: create jobs: %w", err)
		}
		if err := tx.CreateInBatches(events, 100).Error; err != nil {
			return fmt.Errorf("requests: create job history: %w", err)
		}
	}
	return nil
}

// expandTx writes and queues the jobs of inst, a run that waited for its
// approval, as res resolves it now, and moves the run to Pending; why is
// its jobs' first history entry's addition ("approved by ...").
func (s *Service) expandTx(ctx context.Context, tx *gorm.DB, inst *Instance, res *resolved, why string) error {
	now := time.Now().UTC()
	inst.JobsPending, inst.JobsScheduled = 0, 0
	jobs, events, sets := s.buildJobs(inst, res, now)
	for i := range events {
		events[i].Message = why + "; " + events[i].Message
	}
	if err := s.writeJobsTx(ctx, tx, jobs, events, sets, now); err != nil {
		return err
	}
	prev := inst.Status
	inst.Status, inst.ExpiresAt, inst.UpdatedAt = InstancePending, res.expiresAt, now
	if len(jobs) == 0 {
		inst.Status = InstanceCompleted
		inst.EndedAt = &now
	}
	if err := tx.Model(&Instance{}).Where("id = ?", inst.ID).Updates(map[string]any{
		"status": inst.Status, "expires_at": inst.ExpiresAt, "updated_at": now, "ended_at": inst.EndedAt,
		"jobs_total": inst.JobsTotal, "jobs_pending": inst.JobsPending, "jobs_scheduled": inst.JobsScheduled,
	}).Error; err != nil {
		return err
	}
	if err := audit.RecordTx(tx, audit.ActorSystem, "request.expand", "request_instance", inst.ID, map[string]any{
		"jobs": len(jobs), "why": why}); err != nil {
		return err
	}
	return s.settledTx(ctx, tx, inst, prev)
}

func initialMessage(j *Job, all []Job) string {
	switch {
	case j.Revocation:
		return "revocation scheduled for " + j.RunAt.Format(time.RFC3339)
	case j.DependsOn != nil:
		for _, o := range all {
			if o.ID == *j.DependsOn {
				return fmt.Sprintf("queued; waits for job #%d (%s)", o.Seq, o.Kind)
			}
		}
	}
	return "queued"
}

// setsOf returns, for each job spec, the index of its job set, numbered in
// order of first appearance.
func setsOf(specs []jobSpec) []int {
	out := make([]int, len(specs))
	index := map[int]int{}
	for i, sp := range specs {
		k, ok := index[sp.set]
		if !ok {
			k = len(index)
			index[sp.set] = k
		}
		out[i] = k
	}
	return out
}

// enqueueSetsTx writes one queue entry per job set (sets[i] is the set of
// jobs[i]) and gives each job its set's queue id. A set's entry runs its
// jobs in order: scheduled revocations at their time, the rest now.
func (s *Service) enqueueSetsTx(ctx context.Context, tx *gorm.DB, jobs []Job, sets []int, now time.Time) error {
	n := 0
	for _, k := range sets {
		n = max(n, k+1)
	}
	params := make([]river.InsertManyParams, n)
	for i := range jobs {
		k := sets[i]
		if params[k].Args != nil {
			a := params[k].Args.(JobArgs)
			a.Jobs++
			params[k].Args = a
			continue
		}
		opts := &river.InsertOpts{Priority: jobs[i].Priority.queuePriority(), MaxAttempts: s.opts.MaxAttempts}
		if jobs[i].RunAt != nil && jobs[i].RunAt.After(now) {
			opts.ScheduledAt = *jobs[i].RunAt
		}
		params[k] = river.InsertManyParams{Args: JobArgs{InstanceID: jobs[i].InstanceID, Jobs: 1}, InsertOpts: opts}
	}
	ids, err := s.queue.InsertTx(ctx, tx, params)
	if err != nil {
		return err
	}
	for i := range jobs {
		jobs[i].QueueJobID = &ids[sets[i]]
	}
	return nil
}

// JobsTx reads the jobs of a run in tx, by number.
func JobsTx(ctx context.Context, tx *gorm.DB, instanceID string) ([]Job, error) {
	var jobs []Job
	err := tx.WithContext(ctx).Where("instance_id = ?", instanceID).Order("seq").Find(&jobs).Error
	return jobs, err
}

// GetInstance returns an instance with its jobs and their history.
func (s *Service) GetInstance(ctx context.Context, id string) (*Instance, error) {
	if !input.ID(id) {
		return nil, ErrNotFound
	}
	db := s.db.Gorm.WithContext(ctx)
	var inst Instance
	if err := db.Where("id = ?", id).Take(&inst).Error; err != nil {
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return nil, ErrNotFound
		}
		return nil, err
	}
	if err := db.Where("instance_id = ?", id).Order("seq").Find(&inst.Jobs).Error; err != nil {
		return nil, err
	}
	ids := make([]string, len(inst.Jobs))
	index := map[string]int{}
	for i, j := range inst.Jobs {
		ids[i] = j.ID
		index[j.ID] = i
	}
	if len(ids) > 0 {
		var events []Event
		if err := db.Where("job_id IN ?", ids).Order("id").Find(&events).Error; err != nil {
			return nil, err
		}
		for _, e := range events {
			k := index[e.JobID]
			inst.Jobs[k].Events = append(inst.Jobs[k].Events, e)
		}
	}
	return &inst, nil
}

// RequestOf decodes the request an instance ran.
func (inst *Instance) RequestOf() (Request, error) {
	var r Request
	err := json.Unmarshal([]byte(inst.Request), &r)
	return r, err
}

// eventTx records a status change of a job.
func eventTx(tx *gorm.DB, jobID, status string, attempt int, message string) error {
	return tx.Create(&Event{JobID: jobID, At: time.Now().UTC(), Status: status, Attempt: attempt, Message: message}).Error
}

// lockInstanceTx serializes changes to one instance and its jobs: every
// transaction that changes a job's status takes this lock first, so the
// roll-up sees every other job's committed status.
//
// On PostgreSQL the lock is a row lock (SELECT ... FOR UPDATE), which writes
// nothing (an UPDATE would leave a dead row version and index entries per
// lock); on SQLite every transaction holds the write lock from its BEGIN
// (_txlock=immediate), so a plain read suffices.
func lockInstanceTx(tx *gorm.DB, id string) (*Instance, error) {
	q := database.ForUpdate(tx).Where("id = ?", id)
	var inst Instance
	if err := q.Take(&inst).Error; err != nil {
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return nil, ErrNotFound
		}
		return nil, err
	}
	return &inst, nil
}

// rollUpTx recomputes an instance's status from its jobs and runs the
// settled hooks when it moves between busy and settled.
func (s *Service) rollUpTx(ctx context.Context, tx *gorm.DB, inst *Instance) error {
	counts, err := countJobsTx(tx, []string{inst.ID})
	if err != nil {
		return err
	}
	return s.rollUpCountedTx(ctx, tx, inst, counts[inst.ID])
}

// rollUpCountedTx is rollUpTx with the instance's jobs counted.
func (s *Service) rollUpCountedTx(ctx context.Context, tx *gorm.DB, inst *Instance, counted *jobCounts) error {
	if counted == nil {
		counted = &jobCounts{byStatus: map[string]int{}}
	}
	c := counted.byStatus
	total := 0
	for _, n := range c {
		total += n
	}
	done := c[JobCompleted] + c[JobFailed] + c[JobCanceled]
	var status string
	switch {
	case c[JobRunning] > 0 || (c[JobPending] > 0 && done > 0):
		status = InstanceRunning
	case c[JobPending] > 0:
		status = InstancePending
	case c[JobFailed] > 0:
		status = InstanceFailed
	case c[JobScheduled] > 0:
		status = InstanceActive
	case c[JobCanceled] > 0:
		status = InstanceCanceled
	default:
		status = InstanceCompleted
	}
	prev := inst.Status
	now := time.Now().UTC()
	updates := map[string]any{"status": status, "jobs_done": done, "jobs_total": total, "updated_at": now}
	inst.setJobCounts(c, updates)
	inst.JobsUnchanged, updates["jobs_unchanged"] = counted.unchanged, counted.unchanged
	if Final(status) {
		updates["ended_at"] = now
		inst.EndedAt = &now
	} else {
		updates["ended_at"] = nil
		inst.EndedAt = nil
	}
	if err := tx.Model(&Instance{}).Where("id = ?", inst.ID).Updates(updates).Error; err != nil {
		return err
	}
	inst.Status, inst.JobsDone, inst.JobsTotal, inst.UpdatedAt = status, done, total, now
	return s.settledTx(ctx, tx, inst, prev)
}

// settledTx runs the settled hooks of inst, whose status changed from
// prev, when it moved between busy and settled, and keeps it for the
// AfterSettledFuncs.
func (s *Service) settledTx(ctx context.Context, tx *gorm.DB, inst *Instance, prev string) error {
	status := inst.Status
	if Busy(prev) != Busy(status) || (Final(status) && !Final(prev)) {
		for _, fn := range s.settled {
			if err := fn(ctx, tx, inst, prev); err != nil {
				return err
			}
		}
		if moved, ok := ctx.Value(transitionsKey{}).(*[]transition); ok {
			t := transition{inst: *inst, prev: prev}
			t.inst.Jobs = nil
			*moved = append(*moved, t)
		}
	}
	return nil
}
