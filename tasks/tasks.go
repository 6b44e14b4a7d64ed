// Package tasks keeps reusable requests: a task is a saved request with a
// name, a status (idle, triggered, disabled), an optional cron schedule and
// notification settings. Triggering a task (by hand, by its schedule, through
// the API or the CLI) starts a request instance.
package tasks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/robfig/cron/v3"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/provisor/provisor/audit"
	"github.com/provisor/provisor/database"
	"github.com/provisor/provisor/identities"
	"github.com/provisor/provisor/input"
	"github.com/provisor/provisor/requests"
)

// Task statuses.
const (
	StatusIdle      = "idle"
	StatusTriggered = "triggered"
	StatusDisabled  = "disabled"
)

// Task is a saved, reusable request.
type Task struct {
	ID              string           `gorm:"primaryKey" json:"id"`
	Name            string           `json:"name"`
	Description     string           `json:"description"`
	RequestJSON     string           `gorm:"column:request" json:"-"`
	Request         requests.Request `gorm:"-" json:"request"`
	Type            requests.Type    `json:"type"`
	BeneficiaryType string           `json:"beneficiary_type"`
	BeneficiaryID   string           `json:"beneficiary_id"`
	BeneficiaryName string           `json:"beneficiary_name"`
	ConnectorID     string           `json:"connector_id"`
	Status          string           `json:"status"`
	Cron            string           `json:"cron"`
	Timezone        string           `json:"timezone"`
	ScheduleEnabled bool             `json:"schedule_enabled"`
	NotifyJSON      string           `gorm:"column:notify" json:"-"`
	Notify          Notify           `gorm:"-" json:"notify"`
	LastResult      string           `json:"last_result"`
	LastRunAt       *time.Time       `json:"last_run_at"`
	LastInstanceID  *string          `json:"last_instance_id"`
	// ApprovalID is the approval that covers the task's request, or that
	// it waits for; nil when its request needs none (an admin's, or one
	// whose entitlements need no approval). Runs start only under an
	// approved one.
	ApprovalID *string     `json:"approval_id"`
	CreatedBy  string      `json:"created_by"`
	CreatedAt  time.Time   `json:"created_at"`
	UpdatedAt  time.Time   `json:"updated_at"`
	NextRuns   []time.Time `gorm:"-" json:"next_runs,omitempty"`
}

// TableName is the table of tasks.
func (Task) TableName() string { return "tasks" }

// Notify are a task's notification settings; they are delivered by the notifier.
type Notify struct {
	Enabled bool `json:"enabled"`
	// Recipients are identity ids, or "requester" and "beneficiary".
	Recipients []string `json:"recipients"`
	// When is always, failure or success.
	When string `json:"when"`
}

// Dynamic notification recipients, resolved when a run ends.
const (
	// NotifyRequester is who started the run, when that is a portal user.
	NotifyRequester = "requester"
	// NotifyBeneficiary is the run's identity, or every member of its workgroup.
	NotifyBeneficiary = "beneficiary"
)

// MaxRecipients bounds a task's notification recipients.
const MaxRecipients = 50

// NotifySettings decodes the notification settings of a task as stored.
func (t *Task) NotifySettings() (Notify, error) {
	var n Notify
	if t.NotifyJSON == "" {
		return n, nil
	}
	if err := json.Unmarshal([]byte(t.NotifyJSON), &n); err != nil {
		return n, fmt.Errorf("tasks: %s: stored notification settings: %w", t.ID, err)
	}
	return n, nil
}

// NotifyTx returns the notification settings of task id, read in tx, or
// nil when the task is gone.
func NotifyTx(ctx context.Context, tx *gorm.DB, id string) (*Notify, error) {
	var t Task
	err := tx.WithContext(ctx).Select("id", "notify").Where("id = ?", id).Take(&t).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	n, err := t.NotifySettings()
	return &n, err
}

// Input creates or changes a task. On update, nil fields keep their value.
type Input struct {
	Name            *string           `json:"name"`
	Description     *string           `json:"description"`
	Request         *requests.Request `json:"request"`
	Cron            *string           `json:"cron"`
	Timezone        *string           `json:"timezone"`
	ScheduleEnabled *bool             `json:"schedule_enabled"`
	Enabled         *bool             `json:"enabled"`
	Notify          *Notify           `json:"notify"`
	// By, if set, is the requester who saves the task: a request given in
	// Request is checked against the request policy for them. Triggers of
	// the task, by hand or on schedule, are not checked again.
	By *requests.Requester `json:"-"`
}

// Errors.
var (
	ErrNotFound = fmt.Errorf("task %w", input.ErrNotFound)
	ErrConflict = requests.ErrConflict
)

// FieldErrors lists problems by field.
type FieldErrors = requests.ValidationError

// Service manages tasks.
type Service struct {
	db     *database.DB
	reqs   *requests.Service
	rollUp *RollUp
	opts   Options
}

// Options configure the Service. A nil *Options means defaults.
type Options struct {
	// Identities are what notification recipients are checked against when
	// a task is saved; without them a task cannot notify an identity.
	Identities *identities.Service
	// ScheduleChangedFunc, if set, is called after a task's schedule may
	// have changed, so the scheduler of this process applies it at once.
	ScheduleChangedFunc func(taskID string)
}

// New returns the service. A task's status follows its runs through the
// hooks of a RollUp given to reqs.
func New(db *database.DB, reqs *requests.Service, opts *Options) *Service {
	s := &Service{db: db, reqs: reqs, rollUp: NewRollUp(db)}
	if opts != nil {
		s.opts = *opts
	}
	return s
}

var parser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// ParseSchedule validates a 5-field cron expression in a time zone.
func ParseSchedule(expr, tz string) (cron.Schedule, *time.Location, error) {
	loc, err := time.LoadLocation(tz)
	if err != nil || tz == "" || strings.EqualFold(tz, "local") {
		return nil, nil, fmt.Errorf("timezone: %q is not an IANA time zone such as UTC or Europe/Paris", tz)
	}
	if strings.HasPrefix(strings.TrimSpace(expr), "TZ=") || strings.HasPrefix(strings.TrimSpace(expr), "CRON_TZ=") {
		return nil, nil, errors.New("cron: give the time zone separately, not in the expression")
	}
	if strings.HasPrefix(strings.TrimSpace(expr), "@every") {
		return nil, nil, errors.New("cron: @every is not supported; use a 5-field expression such as */15 * * * *")
	}
	if f := strings.Fields(expr); len(f) != 5 && !strings.HasPrefix(expr, "@") {
		return nil, nil, fmt.Errorf("cron: %q has %d fields; a schedule has 5: minute hour day-of-month month day-of-week", expr, len(f))
	}
	sched, err := parser.Parse(expr)
	if err != nil {
		return nil, nil, fmt.Errorf("cron: %v", err)
	}
	return sched, loc, nil
}

// NextRuns returns the next n times a schedule fires after from.
func NextRuns(expr, tz string, from time.Time, n int) ([]time.Time, error) {
	sched, loc, err := ParseSchedule(expr, tz)
	if err != nil {
		return nil, err
	}
	out := make([]time.Time, 0, n)
	t := from.In(loc)
	for range n {
		t = sched.Next(t)
		if t.IsZero() {
			break
		}
		out = append(out, t)
	}
	return out, nil
}

// prevLookback bounds how far back PrevRun looks: past the longest gap
// between two activations of a 5-field schedule (29 February, with the
// leap years a century skips).
const prevLookback = 9 * 366 * 24 * time.Hour

// PrevRun returns the latest time at or before at that a schedule fires,
// in its time zone.
func PrevRun(expr, tz string, at time.Time) (time.Time, error) {
	sched, loc, err := ParseSchedule(expr, tz)
	if err != nil {
		return time.Time{}, err
	}
	at = at.In(loc)
	// Look back twice as far each time until an activation is in the
	// window, then walk forward to the last one in it.
	for back := time.Minute; back <= 2*prevLookback; back *= 2 {
		t := sched.Next(at.Add(-back))
		if t.IsZero() {
			break
		}
		if t.After(at) {
			continue
		}
		for next := sched.Next(t); !next.IsZero() && !next.After(at); next = sched.Next(next) {
			t = next
		}
		return t, nil
	}
	return time.Time{}, fmt.Errorf("cron: %q does not fire before %s", expr, at.Format(time.RFC3339))
}

// validate applies in to a new task t and checks every field.
func (s *Service) validate(ctx context.Context, t *Task, in Input) error {
	v := &requests.ValidationError{}
	if err := s.checkBasics(ctx, t, in, v); err != nil {
		return err
	}
	checkSchedule(t, in, v)
	if err := s.checkNotify(ctx, t, in, v); err != nil {
		return err
	}
	if len(v.Fields) > 0 {
		return v
	}
	return nil
}

// checkBasics applies and checks the name, the description and the
// request of in, adding problems to v.
func (s *Service) checkBasics(ctx context.Context, t *Task, in Input, v *requests.ValidationError) error {
	if in.Name != nil {
		t.Name = strings.TrimSpace(*in.Name)
	}
	if t.Name == "" {
		v.Fields = append(v.Fields, requests.FieldError{Field: "name", Message: "required, at most 200 characters"})
	} else if p := input.Line(t.Name, 200); p != "" {
		v.Fields = append(v.Fields, requests.FieldError{Field: "name", Message: p})
	}
	if in.Description != nil {
		t.Description = strings.TrimSpace(*in.Description)
	}
	if p := input.Text(t.Description, 4000); p != "" {
		v.Fields = append(v.Fields, requests.FieldError{Field: "description", Message: p})
	}
	if in.Request != nil {
		t.Request = *in.Request
		if err := s.reqs.Validate(ctx, &t.Request); err != nil {
			var ve *requests.ValidationError
			if !errors.As(err, &ve) {
				return err
			}
			for _, f := range ve.Fields {
				v.Fields = append(v.Fields, requests.FieldError{Field: "request." + f.Field, Message: f.Message})
			}
		} else if in.By != nil {
			if err := s.reqs.Authorize(ctx, *in.By, &t.Request); err != nil {
				return err
			}
		}
	} else if t.RequestJSON == "" {
		v.Fields = append(v.Fields, requests.FieldError{Field: "request", Message: "required"})
	}
	return nil
}

// checkSchedule applies and checks the cron expression, the time zone and
// the schedule's switch of in, adding problems to v. The three are checked
// together, against t's current values of those not given: it reads
// nothing, so it can run under the task's lock.
func checkSchedule(t *Task, in Input, v *requests.ValidationError) {
	hadCron := t.Cron != ""
	if in.Cron != nil {
		t.Cron = strings.TrimSpace(*in.Cron)
	}
	if in.Timezone != nil {
		t.Timezone = strings.TrimSpace(*in.Timezone)
	}
	if t.Timezone == "" {
		t.Timezone = "UTC"
	}
	if in.ScheduleEnabled != nil {
		t.ScheduleEnabled = *in.ScheduleEnabled
	} else if in.Cron != nil && t.Cron != "" && !hadCron {
		// A schedule given where there was none is meant to run.
		t.ScheduleEnabled = true
	} else if in.Cron != nil && t.Cron == "" {
		t.ScheduleEnabled = false
	}
	// A time zone given is checked even without a schedule, so that a
	// later change of the cron expression alone cannot fail on it.
	if p := input.Line(t.Timezone, 64); p != "" {
		v.Fields = append(v.Fields, requests.FieldError{Field: "timezone", Message: p})
		return
	}
	if in.Timezone != nil && t.Cron == "" {
		if _, _, err := ParseSchedule("@daily", t.Timezone); err != nil {
			field, msg, _ := strings.Cut(err.Error(), ": ")
			v.Fields = append(v.Fields, requests.FieldError{Field: field, Message: msg})
		}
	}
	if p := input.Line(t.Cron, 200); p != "" {
		v.Fields = append(v.Fields, requests.FieldError{Field: "cron", Message: p})
		return
	}
	if t.Cron == "" {
		if t.ScheduleEnabled {
			v.Fields = append(v.Fields, requests.FieldError{Field: "cron", Message: "required to enable the schedule"})
		}
	} else if sched, loc, err := ParseSchedule(t.Cron, t.Timezone); err != nil {
		field, msg, _ := strings.Cut(err.Error(), ": ")
		v.Fields = append(v.Fields, requests.FieldError{Field: field, Message: msg})
	} else if sched.Next(time.Now().In(loc)).IsZero() {
		// cron gives up after five years without a match: 31 February, 30
		// February. (29 February fires within any five years.)
		v.Fields = append(v.Fields, requests.FieldError{Field: "cron", Message: fmt.Sprintf("%q never fires: no date matches it", t.Cron)})
	}
}

// checkNotify applies and checks the notification settings of in, adding
// problems to v.
func (s *Service) checkNotify(ctx context.Context, t *Task, in Input, v *requests.ValidationError) error {
	if in.Notify != nil {
		t.Notify = *in.Notify
	}
	if t.Notify.When == "" {
		t.Notify.When = "always"
	}
	switch t.Notify.When {
	case "always", "failure", "success":
	default:
		v.Fields = append(v.Fields, requests.FieldError{Field: "notify.when", Message: "must be always, failure or success"})
	}
	if in.Notify != nil {
		problems, err := s.checkRecipients(ctx, t.Notify)
		if err != nil {
			return err
		}
		v.Fields = append(v.Fields, problems...)
	}
	return nil
}

// checkRecipients validates notification recipients: identities that
// exist and have an email address (an address that is missing is reported
// now, not skipped when the run ends), or the dynamic requester and
// beneficiary, each once.
func (s *Service) checkRecipients(ctx context.Context, n Notify) ([]requests.FieldError, error) {
	var out []requests.FieldError
	bad := func(i int, format string, a ...any) {
		out = append(out, requests.FieldError{Field: fmt.Sprintf("notify.recipients[%d]", i), Message: fmt.Sprintf(format, a...)})
	}
	if n.Enabled && len(n.Recipients) == 0 {
		out = append(out, requests.FieldError{Field: "notify.recipients", Message: "choose at least one recipient, or turn notifications off"})
	}
	if len(n.Recipients) > MaxRecipients {
		out = append(out, requests.FieldError{Field: "notify.recipients", Message: fmt.Sprintf("at most %d recipients", MaxRecipients)})
		return out, nil
	}
	seen := map[string]int{}
	for i, r := range n.Recipients {
		if j, dup := seen[r]; dup {
			bad(i, "listed twice (also recipients[%d])", j)
			continue
		}
		seen[r] = i
		if r == NotifyRequester || r == NotifyBeneficiary {
			continue
		}
		if !input.ID(r) {
			bad(i, "%q is neither an identity id nor requester or beneficiary", r)
			continue
		}
		if s.opts.Identities == nil {
			return nil, errors.New("tasks: no identities to check notification recipients against")
		}
		id, err := s.opts.Identities.GetIdentity(ctx, r)
		switch {
		case errors.Is(err, identities.ErrNotFound):
			bad(i, "no identity with id %s", r)
		case err != nil:
			return nil, err
		case id.Status == "deleted":
			bad(i, "identity %s is deleted", id.Username)
		case strings.TrimSpace(id.Email) == "":
			bad(i, "identity %s has no email address", id.Username)
		}
	}
	return out, nil
}

// Create validates and stores a task.
func (s *Service) Create(ctx context.Context, in Input, actor string) (*Task, error) {
	t := &Task{Status: StatusIdle, CreatedBy: actor}
	if in.Enabled != nil && !*in.Enabled {
		t.Status = StatusDisabled
	}
	if err := s.validate(ctx, t, in); err != nil {
		return nil, err
	}
	if err := s.fill(ctx, t); err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	t.ID, t.CreatedAt, t.UpdatedAt = uuid.NewString(), now, now
	err := s.db.InTx(ctx, func(tx *gorm.DB) error {
		if err := tx.Create(t).Error; err != nil {
			return err
		}
		if err := audit.RecordTx(tx, actor, "task.create", "task", t.ID, map[string]any{"name": t.Name}); err != nil {
			return err
		}
		if in.By == nil {
			return nil
		}
		return s.approvalTx(ctx, tx, nil, t, *in.By, actor)
	})
	if err != nil {
		if database.IsUniqueViolation(err) {
			return nil, &requests.ValidationError{Fields: []requests.FieldError{{Field: "name", Message: "a task called " + t.Name + " already exists"}}}
		}
		return nil, fmt.Errorf("tasks: create: %w", err)
	}
	s.scheduleChanged(t.ID)
	return s.Get(ctx, t.ID)
}

// fill encodes the request and notification settings and copies the
// request's summary fields.
func (s *Service) fill(ctx context.Context, t *Task) error {
	if err := s.fillRequest(ctx, t); err != nil {
		return err
	}
	return t.fillNotify()
}

// fillRequest encodes the request and copies its summary fields.
func (s *Service) fillRequest(ctx context.Context, t *Task) error {
	b, err := json.Marshal(t.Request)
	if err != nil {
		return err
	}
	t.RequestJSON = string(b)
	t.Type, t.BeneficiaryType, t.BeneficiaryID, t.ConnectorID = t.Request.Type, t.Request.BeneficiaryType, t.Request.BeneficiaryID, t.Request.ConnectorID
	name, err := s.reqs.BeneficiaryName(ctx, t.Request.BeneficiaryType, t.Request.BeneficiaryID)
	if err != nil {
		return err
	}
	t.BeneficiaryName = name
	return nil
}

// fillNotify encodes the notification settings.
func (t *Task) fillNotify() error {
	if t.Notify.Recipients == nil {
		t.Notify.Recipients = []string{}
	}
	n, err := json.Marshal(t.Notify)
	if err != nil {
		return err
	}
	t.NotifyJSON = string(n)
	return nil
}

// Update changes the fields of a task that in gives, and only those: two
// changes of different fields made at once both stay.
//
// The fields that stand alone (name, description, request, notification
// settings) are checked before the transaction, since checking them reads
// other things (identities, connectors); the schedule's fields, which are
// checked together, and the task's status are applied to the task's row
// as it is under its lock.
func (s *Service) Update(ctx context.Context, id string, in Input, actor string) (*Task, error) {
	return s.UpdateChecked(ctx, id, in, actor, nil)
}

// UpdateChecked is Update that first calls allow, when it is not nil, with
// the task as it is under its lock: an error from allow stops the change
// and is returned as it is. It lets a caller decide on the stored task
// itself, such as whether a change touches a schedule (TouchesSchedule),
// without another change slipping in between.
func (s *Service) UpdateChecked(ctx context.Context, id string, in Input, actor string, allow func(cur *Task) error) (*Task, error) {
	t, err := s.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	v := &requests.ValidationError{}
	if err := s.checkBasics(ctx, t, in, v); err != nil {
		return nil, err
	}
	checkSchedule(t, in, v) // to report every problem at once; checked again under the lock
	if err := s.checkNotify(ctx, t, in, v); err != nil {
		return nil, err
	}
	if len(v.Fields) > 0 {
		return nil, v
	}
	now := time.Now().UTC()
	updates := map[string]any{"updated_at": now}
	if in.Name != nil {
		updates["name"] = t.Name
	}
	if in.Description != nil {
		updates["description"] = t.Description
	}
	if in.Request != nil {
		if err := s.fillRequest(ctx, t); err != nil {
			return nil, fmt.Errorf("tasks: update %s: %w", id, err)
		}
		maps.Copy(updates, map[string]any{"request": t.RequestJSON, "type": t.Type, "beneficiary_type": t.BeneficiaryType,
			"beneficiary_id": t.BeneficiaryID, "beneficiary_name": t.BeneficiaryName, "connector_id": t.ConnectorID})
	}
	if in.Notify != nil {
		if err := t.fillNotify(); err != nil {
			return nil, fmt.Errorf("tasks: update %s: %w", id, err)
		}
		updates["notify"] = t.NotifyJSON
	}
	err = s.db.InTx(ctx, func(tx *gorm.DB) error {
		cur, err := lockTaskTx(tx, id)
		if err != nil {
			return err
		}
		if allow != nil {
			if err := cur.decode(); err != nil {
				return err
			}
			if err := allow(cur); err != nil {
				return &allowError{err}
			}
		}
		if in.Cron != nil || in.Timezone != nil || in.ScheduleEnabled != nil {
			sv := &requests.ValidationError{}
			if checkSchedule(cur, in, sv); len(sv.Fields) > 0 {
				return sv
			}
			maps.Copy(updates, map[string]any{"cron": cur.Cron, "timezone": cur.Timezone, "schedule_enabled": cur.ScheduleEnabled})
		}
		// Enabling or disabling is decided under the task's lock, so a
		// run ending at the same moment cannot undo it.
		switch {
		case in.Enabled == nil:
		case !*in.Enabled:
			updates["status"] = StatusDisabled
		case cur.Status == StatusDisabled:
			busy, err := busyTx(tx, id)
			if err != nil {
				return err
			}
			updates["status"] = map[bool]string{true: StatusTriggered, false: StatusIdle}[busy]
		}
		if err := tx.Model(&Task{}).Where("id = ?", id).Updates(updates).Error; err != nil {
			return err
		}
		if err := audit.RecordTx(tx, actor, "task.update", "task", id, map[string]any{"name": t.Name}); err != nil {
			return err
		}
		if in.Request == nil || in.By == nil {
			return nil
		}
		return s.approvalTx(ctx, tx, cur, t, *in.By, actor)
	})
	if err != nil {
		var ve *requests.ValidationError
		var ae *allowError
		switch {
		case errors.As(err, &ae):
			return nil, ae.err
		case errors.As(err, &ve), errors.Is(err, ErrNotFound):
			return nil, err
		case database.IsUniqueViolation(err):
			return nil, &requests.ValidationError{Fields: []requests.FieldError{{Field: "name", Message: "a task called " + t.Name + " already exists"}}}
		}
		return nil, fmt.Errorf("tasks: update %s: %w", id, err)
	}
	s.scheduleChanged(id)
	return s.Get(ctx, id)
}

// approvalTx asks, for by, for the approval t's new request needs, and
// names it on the task (or none, when it needs none); the approval the
// task's old request waited for, in cur, is withdrawn. An unchanged
// request keeps its approval.
func (s *Service) approvalTx(ctx context.Context, tx *gorm.DB, cur, t *Task, by requests.Requester, actor string) error {
	if cur != nil {
		if cur.RequestJSON == t.RequestJSON {
			return nil
		}
		if cur.ApprovalID != nil {
			if err := s.reqs.WithdrawTaskApprovalTx(ctx, tx, *cur.ApprovalID, actor, "the task's request changed"); err != nil {
				return err
			}
		}
	}
	a, err := s.reqs.RequestApprovalTx(ctx, tx, by, t.Request, requests.ApprovalFor{TaskID: t.ID, TaskName: t.Name})
	if err != nil {
		return err
	}
	t.ApprovalID = nil
	if a != nil {
		t.ApprovalID = &a.ID
	}
	return tx.Model(&Task{}).Where("id = ?", t.ID).Update("approval_id", t.ApprovalID).Error
}

// allowError carries the refusal of UpdateChecked's allow out of the
// transaction unchanged.
type allowError struct{ err error }

func (e *allowError) Error() string { return e.err.Error() }

// TouchesSchedule reports whether in, applied to cur (nil for a new task),
// gives the task a schedule, changes or switches its schedule, enables a
// disabled task whose schedule is on, or changes the request of a task that
// has a schedule. A schedule triggers its task: each of these decides what
// runs without anyone pressing Trigger, so the portal leaves them to admins
// and the API to clients that may trigger.
func TouchesSchedule(cur *Task, in Input) bool {
	if cur == nil {
		return (in.Cron != nil && strings.TrimSpace(*in.Cron) != "") || (in.ScheduleEnabled != nil && *in.ScheduleEnabled)
	}
	if in.Cron != nil && strings.TrimSpace(*in.Cron) != cur.Cron {
		return true
	}
	if in.Timezone != nil {
		tz := strings.TrimSpace(*in.Timezone)
		if tz == "" {
			tz = "UTC"
		}
		if tz != cur.Timezone {
			return true
		}
	}
	if in.ScheduleEnabled != nil && *in.ScheduleEnabled != cur.ScheduleEnabled {
		return true
	}
	if cur.Cron == "" {
		return false
	}
	if in.Enabled != nil && *in.Enabled && cur.Status == StatusDisabled && cur.ScheduleEnabled {
		return true
	}
	if in.Request != nil {
		given, err1 := json.Marshal(in.Request)
		stored, err2 := json.Marshal(cur.Request)
		return err1 != nil || err2 != nil || !bytes.Equal(given, stored)
	}
	return false
}

// lockTaskTx reads a task's row and locks it until tx ends: on PostgreSQL
// with SELECT ... FOR UPDATE; on SQLite every transaction holds the write
// lock from its BEGIN, so a plain read suffices.
func lockTaskTx(tx *gorm.DB, id string) (*Task, error) {
	q := database.ForUpdate(tx).Where("id = ?", id)
	var t Task
	if err := q.Take(&t).Error; err != nil {
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return nil, ErrNotFound
		}
		return nil, err
	}
	return &t, nil
}

// Delete removes a task; its past runs stay, without the link.
func (s *Service) Delete(ctx context.Context, id, actor string) error {
	t, err := s.Get(ctx, id)
	if err != nil {
		return err
	}
	err = s.db.InTx(ctx, func(tx *gorm.DB) error {
		if t.ApprovalID != nil {
			if err := s.reqs.WithdrawTaskApprovalTx(ctx, tx, *t.ApprovalID, actor, "the task was deleted"); err != nil {
				return err
			}
		}
		if err := tx.Where("id = ?", id).Delete(&Task{}).Error; err != nil {
			return err
		}
		return audit.RecordTx(tx, actor, "task.delete", "task", id, map[string]any{"name": t.Name})
	})
	if err != nil {
		return fmt.Errorf("tasks: delete %s: %w", id, err)
	}
	s.scheduleChanged(id)
	return nil
}

func (s *Service) scheduleChanged(id string) {
	if s.opts.ScheduleChangedFunc != nil {
		s.opts.ScheduleChangedFunc(id)
	}
}

// Get returns one task with its next five run times.
func (s *Service) Get(ctx context.Context, id string) (*Task, error) {
	if !input.ID(id) {
		return nil, ErrNotFound
	}
	var t Task
	if err := s.db.Gorm.WithContext(ctx).Where("id = ?", id).Take(&t).Error; err != nil {
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return nil, ErrNotFound
		}
		return nil, err
	}
	if err := t.decode(); err != nil {
		return nil, err
	}
	return &t, nil
}

// ByName returns the task with that name.
func (s *Service) ByName(ctx context.Context, name string) (*Task, error) {
	var t Task
	if input.Line(name, 0) != "" {
		return nil, ErrNotFound // a name no task can have
	}
	if err := s.db.Gorm.WithContext(ctx).Where("name = ?", name).Take(&t).Error; err != nil {
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return nil, ErrNotFound
		}
		return nil, err
	}
	if err := t.decode(); err != nil {
		return nil, err
	}
	return &t, nil
}

func (t *Task) decode() error {
	if err := json.Unmarshal([]byte(t.RequestJSON), &t.Request); err != nil {
		return fmt.Errorf("tasks: %s: stored request: %w", t.ID, err)
	}
	if t.NotifyJSON != "" {
		if err := json.Unmarshal([]byte(t.NotifyJSON), &t.Notify); err != nil {
			return fmt.Errorf("tasks: %s: stored notification settings: %w", t.ID, err)
		}
	}
	if t.Notify.Recipients == nil {
		t.Notify.Recipients = []string{}
	}
	if t.Cron != "" && t.ScheduleEnabled && t.Status != StatusDisabled {
		t.NextRuns, _ = NextRuns(t.Cron, t.Timezone, time.Now(), 5)
	}
	return nil
}

// ListOpts filter and page the task list.
type ListOpts struct {
	Query  string
	Status string
	// CreatedBy keeps the tasks one user created.
	CreatedBy string
	Limit     int
	Offset    int
}

// List returns tasks by name, and how many match.
func (s *Service) List(ctx context.Context, o ListOpts) ([]Task, int64, error) {
	q := s.db.Gorm.WithContext(ctx).Model(&Task{})
	if o.Query = input.Search(o.Query); o.Query != "" {
		r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
		p := "%" + strings.ToLower(r.Replace(o.Query)) + "%"
		q = q.Where(`lower(name) LIKE ? ESCAPE '\' OR lower(beneficiary_name) LIKE ? ESCAPE '\'`, p, p)
	}
	if o.Status != "" {
		q = q.Where("status = ?", o.Status)
	}
	if o.CreatedBy != "" {
		q = q.Where("created_by = ?", o.CreatedBy)
	}
	out, total, err := database.FindPage[Task](q, "name", database.PageLimit(o.Limit, 50), o.Offset, nil)
	if err != nil {
		return nil, 0, err
	}
	for i := range out {
		if err := out[i].decode(); err != nil {
			return nil, 0, err
		}
	}
	return out, total, nil
}

// Scheduled returns the tasks whose schedule is on.
func (s *Service) Scheduled(ctx context.Context) ([]Task, error) {
	var out []Task
	err := s.db.Gorm.WithContext(ctx).Where("schedule_enabled AND cron <> '' AND status <> ?", StatusDisabled).Find(&out).Error
	return out, err
}

// Trigger starts a run of a task now.
func (s *Service) Trigger(ctx context.Context, id, trigger, actor string) (*requests.Instance, error) {
	return s.TriggerWithKey(ctx, id, trigger, actor, nil)
}

// TriggerWithKey is Trigger with an idempotency key (nil for none): a key
// that started a run already gives that run, and the task is not triggered
// again.
func (s *Service) TriggerWithKey(ctx context.Context, id, trigger, actor string, key *requests.IdempotencyKey) (*requests.Instance, error) {
	if !input.ID(id) {
		return nil, ErrNotFound
	}
	var inst *requests.Instance
	var prior string
	runID := uuid.NewString()
	err := s.db.InTx(ctx, func(tx *gorm.DB) error {
		var err error
		if key != nil {
			if prior, err = s.reqs.ClaimKeyTx(ctx, tx, key, runID); err != nil || prior != "" {
				return err
			}
		}
		inst, err = s.triggerTx(ctx, tx, id, trigger, actor, runID)
		return err
	})
	if err == nil && prior != "" {
		return s.reqs.GetInstance(ctx, prior)
	}
	return inst, err
}

func (s *Service) triggerTx(ctx context.Context, tx *gorm.DB, id, trigger, actor, runID string) (*requests.Instance, error) {
	// Lock the task row first: runs ending concurrently wait for this one.
	res := tx.Model(&Task{}).Where("id = ?", id).Update("updated_at", time.Now().UTC())
	if res.Error != nil {
		return nil, res.Error
	}
	if res.RowsAffected == 0 {
		return nil, ErrNotFound
	}
	var t Task
	if err := tx.Where("id = ?", id).Take(&t).Error; err != nil {
		return nil, err
	}
	if err := t.decode(); err != nil {
		return nil, err
	}
	if t.Status == StatusDisabled {
		return nil, fmt.Errorf("%w: task %s is disabled", ErrConflict, t.Name)
	}
	opts := requests.StartOpts{Trigger: trigger, Actor: actor, TaskID: t.ID, TaskName: t.Name, ID: runID}
	if t.ApprovalID != nil {
		if err := s.reqs.CoversTx(ctx, tx, *t.ApprovalID); err != nil {
			return nil, fmt.Errorf("task %s cannot run: %w", t.Name, err)
		}
		opts.ApprovalID = *t.ApprovalID
	}
	inst, err := s.reqs.StartTx(ctx, tx, t.Request, opts)
	if err != nil {
		var ve *requests.ValidationError
		if errors.As(err, &ve) {
			return nil, fmt.Errorf("%w: task %s can no longer run: %s", ErrConflict, t.Name, ve.Error())
		}
		return nil, err
	}
	if err := tx.Model(&Task{}).Where("id = ?", id).Updates(map[string]any{
		"status": StatusTriggered, "last_instance_id": inst.ID, "last_run_at": inst.CreatedAt,
	}).Error; err != nil {
		return nil, err
	}
	if err := audit.RecordTx(tx, actor, "task.trigger", "task", id, map[string]any{"name": t.Name, "trigger": trigger, "instance": inst.ID}); err != nil {
		return nil, err
	}
	return inst, nil
}

// Preview returns what a run of t would do if it were triggered now,
// writing nothing (see requests.Service.Preview): its request is expanded
// as a trigger expands it, and a task whose approval has not come through
// says so. A request that can no longer run is a conflict, as for Trigger.
func (s *Service) Preview(ctx context.Context, t *Task) (*requests.Preview, error) {
	opts := requests.PreviewOpts{}
	if t.ApprovalID != nil {
		opts.ApprovalID = *t.ApprovalID
	}
	p, err := s.reqs.Preview(ctx, t.Request, opts)
	var ve *requests.ValidationError
	if errors.As(err, &ve) {
		return nil, fmt.Errorf("%w: task %s can no longer run: %s", ErrConflict, t.Name, ve.Error())
	}
	return p, err
}

// TriggerTick starts the run of a schedule tick, once however many
// processes fire it: the tick is claimed in the same transaction. It returns
// nil, nil when another process claimed the tick first.
func (s *Service) TriggerTick(ctx context.Context, id string, tick time.Time) (*requests.Instance, error) {
	var inst *requests.Instance
	err := s.db.InTx(ctx, func(tx *gorm.DB) error {
		res := tx.Exec(`INSERT INTO schedule_ticks (task_id, tick_at) VALUES (?, ?) ON CONFLICT DO NOTHING`, id, tick.UTC())
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return nil
		}
		var err error
		inst, err = s.triggerTx(ctx, tx, id, requests.TriggerSchedule, audit.ActorScheduler, uuid.NewString())
		return err
	})
	return inst, err
}

// busyRuns selects the runs under way, as the partial index on them says it
// (literals, so that the planner always sees the index applies).
const busyRuns = "request_instances.status IN ('" + requests.InstancePending + "', '" + requests.InstanceRunning + "')"

// busyTx reports whether a run of the task is under way.
func busyTx(tx *gorm.DB, taskID string) (bool, error) {
	var n int64
	err := tx.Model(&requests.Instance{}).Where("task_id = ? AND "+busyRuns, taskID).Count(&n).Error
	return n > 0, err
}

// RollUp keeps each task's status in step with its runs. Its hooks go in
// requests.Options: InstanceBusyTx in SettledFuncs, InstanceSettled in
// AfterSettledFuncs. It needs only the database, so that it exists before
// the requests service, which the tasks service needs.
type RollUp struct{ db *database.DB }

// NewRollUp returns the roll-up of the tasks in db.
func NewRollUp(db *database.DB) *RollUp { return &RollUp{db: db} }

// InstanceBusyTx marks a task Triggered, in the same transaction, when one
// of its runs becomes busy again (a job retried, a revocation run by Force
// End).
func (r *RollUp) InstanceBusyTx(ctx context.Context, tx *gorm.DB, inst *requests.Instance, prev string) error {
	if inst.TaskID == nil || !requests.Busy(inst.Status) {
		return nil
	}
	return tx.Model(&Task{}).Where("id = ? AND status = ?", *inst.TaskID, StatusIdle).
		Updates(map[string]any{"status": StatusTriggered, "updated_at": time.Now().UTC()}).Error
}

// InstanceSettled brings a task to Idle once its last busy run settled, and
// records the result of its newest run. It runs after the run's
// transaction committed, and writes the task's row only when something
// changes: when many runs of one task end together, they do not queue up on
// that row.
//
// Skipping is safe: each settled run looks, after its own commit, for other
// busy runs; whichever of the last runs looks last sees them all settled.
// A process that dies between the commit and this look leaves the task
// Triggered until Reconcile finds it.
func (r *RollUp) InstanceSettled(ctx context.Context, inst *requests.Instance, prev string) {
	if inst.TaskID == nil || requests.Busy(inst.Status) {
		return
	}
	if err := r.settle(ctx, *inst.TaskID, inst); err != nil {
		slog.Warn("task status not updated after its run ended", "task", *inst.TaskID, "run", inst.ID, "err", err)
	}
}

// settle updates a task after inst (nil when reconciling) settled.
func (r *RollUp) settle(ctx context.Context, id string, inst *requests.Instance) error {
	// One look, without a lock: the task, and whether a run of it is
	// under way.
	var look struct {
		Task
		Busy bool
	}
	res := r.db.Gorm.WithContext(ctx).Model(&Task{}).
		Select("tasks.status, tasks.last_instance_id, tasks.last_run_at, EXISTS (SELECT 1 FROM request_instances WHERE request_instances.task_id = tasks.id AND "+busyRuns+") AS busy").
		Where("tasks.id = ?", id).Scan(&look)
	if res.Error != nil || res.RowsAffected == 0 {
		return res.Error // or the task was deleted
	}
	if newest := inst != nil && isNewest(&look.Task, inst); !newest && (look.Busy || look.Status != StatusTriggered) {
		return nil
	}
	return r.db.InTx(ctx, func(tx *gorm.DB) error {
		// Lock the task's row and read it again: the runs that end
		// together agree on Triggered or Idle.
		var t Task
		res := tx.Model(&t).Clauses(clause.Returning{}).Where("id = ?", id).Update("updated_at", time.Now().UTC())
		if res.Error != nil || res.RowsAffected == 0 {
			return res.Error
		}
		updates := map[string]any{}
		busy, err := busyTx(tx, id)
		if err != nil {
			return err
		}
		if !busy && t.Status == StatusTriggered {
			updates["status"] = StatusIdle
		}
		if inst != nil && isNewest(&t, inst) {
			updates["last_result"] = inst.Status
			updates["last_run_at"] = inst.CreatedAt
			updates["last_instance_id"] = inst.ID
		}
		if len(updates) == 0 {
			return nil
		}
		return tx.Model(&Task{}).Where("id = ?", id).Updates(updates).Error
	})
}

// isNewest reports whether inst is the task's newest run.
func isNewest(t *Task, inst *requests.Instance) bool {
	return t.LastInstanceID == nil || *t.LastInstanceID == inst.ID || t.LastRunAt == nil || !inst.CreatedAt.Before(*t.LastRunAt)
}

// Reconcile brings back to Idle the tasks left Triggered with no busy run,
// as a process that stopped right after a run ended may leave them. The
// scheduler calls it at each sync.
func (s *Service) Reconcile(ctx context.Context) error {
	var ids []string
	if err := s.db.Gorm.WithContext(ctx).Model(&Task{}).Where("status = ?", StatusTriggered).
		Where("NOT EXISTS (SELECT 1 FROM request_instances WHERE request_instances.task_id = tasks.id AND "+busyRuns+")").
		Pluck("id", &ids).Error; err != nil {
		return err
	}
	for _, id := range ids {
		// The newest run's result too may not be recorded yet.
		var last *requests.Instance
		var t Task
		if err := s.db.Gorm.WithContext(ctx).Where("id = ?", id).Take(&t).Error; err != nil {
			continue // deleted meanwhile
		}
		if t.LastInstanceID != nil {
			if inst, err := s.reqs.GetInstance(ctx, *t.LastInstanceID); err == nil && !requests.Busy(inst.Status) {
				last = inst
			}
		}
		if err := s.rollUp.settle(ctx, id, last); err != nil {
			return err
		}
	}
	return nil
}
