package requests

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"github.com/provisor/provisor/audit"
	"github.com/provisor/provisor/database"
	"github.com/provisor/provisor/identities"
	"github.com/provisor/provisor/input"
)

// Approval statuses.
const (
	ApprovalPending   = "pending"
	ApprovalApproved  = "approved"
	ApprovalDenied    = "denied"
	ApprovalWithdrawn = "withdrawn"
	ApprovalExpired   = "expired"
)

// ApprovalStatuses lists the approval statuses in the order a filter offers them.
var ApprovalStatuses = []string{ApprovalPending, ApprovalApproved, ApprovalDenied, ApprovalWithdrawn, ApprovalExpired}

// Step statuses. A waiting step belongs to a stage that has not opened
// yet; a closed one was still open when its approval ended otherwise.
const (
	StepWaiting  = "waiting"
	StepPending  = "pending"
	StepApproved = "approved"
	StepDenied   = "denied"
	StepClosed   = "closed"
)

// Who decides a step.
const (
	StepOwner = "owner"
	StepAdmin = "admin"
)

// DefaultApprovalExpiry is how long a request waits for its approvals
// when the setting does not say.
const DefaultApprovalExpiry = 7 * 24 * time.Hour

// Approval is what stands between a request that needs approval and its
// provisioning: the request as it was asked, who asked, and the steps that
// decide it. It belongs to a run (a direct submission, which waits in
// status Awaiting approval with no jobs) or to a task (whose runs start
// once it is approved).
type Approval struct {
	ID                  string     `gorm:"primaryKey" json:"id"`
	InstanceID          *string    `json:"instance_id"`
	TaskID              *string    `json:"task_id"`
	TaskName            string     `json:"task_name,omitempty"`
	Request             string     `json:"-"`
	Type                Type       `json:"type"`
	BeneficiaryType     string     `json:"beneficiary_type"`
	BeneficiaryID       string     `json:"beneficiary_id"`
	BeneficiaryName     string     `json:"beneficiary_name"`
	ConnectorID         string     `json:"connector_id"`
	ConnectorName       string     `json:"connector_name"`
	EntitlementNames    []string   `gorm:"serializer:json" json:"entitlements"`
	RequestedBy         string     `json:"requested_by"`
	RequesterIdentityID *string    `json:"requester_identity_id"`
	Status              string     `json:"status"`
	CreatedAt           time.Time  `json:"created_at"`
	ExpiresAt           time.Time  `json:"expires_at"`
	DecidedAt           *time.Time `json:"decided_at,omitempty"`
	// DecidedBy and Comment are who ended the approval (the last approver,
	// the denier, the requester who withdrew it) and what they said.
	DecidedBy string `json:"decided_by,omitempty"`
	Comment   string `json:"comment,omitempty"`

	Steps []ApprovalStep `gorm:"-" json:"steps"`
}

// TableName is the table of approvals.
func (Approval) TableName() string { return "approvals" }

// RequestOf decodes the request the approval is for.
func (a *Approval) RequestOf() (Request, error) {
	var r Request
	err := json.Unmarshal([]byte(a.Request), &r)
	return r, err
}

// Open reports whether the approval still waits for a decision.
func (a *Approval) Open() bool { return a.Status == ApprovalPending }

// Current returns the steps open now.
func (a *Approval) Current() []ApprovalStep {
	var out []ApprovalStep
	for _, st := range a.Steps {
		if st.Status == StepPending {
			out = append(out, st)
		}
	}
	return out
}

// Approvers says who approved, in order: "Bob Owner (owner of VPN), Ada
// Admin (admin)"; "" when nobody has yet.
func (a *Approval) Approvers() string {
	var parts []string
	for _, st := range a.Steps {
		if st.Status == StepApproved {
			parts = append(parts, st.DecidedByName+" ("+st.Role()+")")
		}
	}
	return strings.Join(parts, ", ")
}

// ApprovalStep is one decision an approval needs.
type ApprovalStep struct {
	ID         string `gorm:"primaryKey" json:"id"`
	ApprovalID string `json:"-"`
	Seq        int    `json:"number"`
	// Stage orders the steps: a stage opens when every step of the stages
	// before it is approved.
	Stage               int     `json:"stage"`
	Kind                string  `json:"kind"`
	ApproverIdentityID  *string `json:"approver_identity_id,omitempty"`
	ApproverWorkgroupID *string `json:"approver_workgroup_id,omitempty"`
	// ApproverName is who decides: the owner's name, or "Admins".
	ApproverName string `json:"approver"`
	// Entitlements names the entitlements the step decides for.
	Entitlements string `json:"entitlements"`
	// Reason says why the step has these approvers when it is not the
	// entitlement's own rule (no eligible owner: it went to the admins).
	Reason        string     `json:"reason,omitempty"`
	Status        string     `json:"status"`
	DecidedBy     string     `json:"decided_by,omitempty"`
	DecidedByName string     `json:"decided_by_name,omitempty"`
	Comment       string     `json:"comment,omitempty"`
	DecidedAt     *time.Time `json:"decided_at,omitempty"`
}

// TableName is the table of approval steps.
func (ApprovalStep) TableName() string { return "approval_steps" }

// Role is the step's approver as a decision is labelled with it: "owner
// of VPN", "admin".
func (st *ApprovalStep) Role() string {
	if st.Kind == StepAdmin {
		return "admin"
	}
	return "owner of " + st.Entitlements
}

// Person is a portal user as the approval flow needs them: who may decide,
// and where to write to them.
type Person struct {
	Username   string
	Name       string
	Email      string
	IdentityID string
	Admin      bool
}

// People finds the portal users who may decide approvals; the access
// service implements it. Disabled users are never returned.
type People interface {
	// UsersOfTx returns the users linked to any of the identities: by the
	// user's identity, or, for a user linked to none, by username.
	UsersOfTx(ctx context.Context, tx *gorm.DB, identityIDs []string) ([]Person, error)
	// AdminsTx returns every admin.
	AdminsTx(ctx context.Context, tx *gorm.DB) ([]Person, error)
	// UserTx returns the user with that name, or nil.
	UserTx(ctx context.Context, tx *gorm.DB, username string) (*Person, error)
}

// Ask is a step that opened, with the people who may decide it: each gets
// an email.
type Ask struct {
	Step ApprovalStep
	To   []Person
}

// ApprovalEvent is what an approval hook hears: steps that opened, or a
// task's approval that ended (a run's ends its run, which mails its
// requester as any run does).
type ApprovalEvent struct {
	Approval *Approval
	Asks     []Ask
	// Ended is set when a task's approval ended.
	Ended bool
}

// ApprovalFunc runs in the transaction that opens steps or ends a task's
// approval.
type ApprovalFunc func(ctx context.Context, tx *gorm.DB, ev *ApprovalEvent) error

// Errors of the approval flow. A *DecisionError wraps ErrNotAllowed.
var ErrNotAllowed = errors.New("not allowed to decide this approval")

// DecisionError says why someone may not decide or withdraw an approval.
type DecisionError struct{ Reason string }

func (e *DecisionError) Error() string { return e.Reason }

// Unwrap makes errors.Is(err, ErrNotAllowed) hold.
func (e *DecisionError) Unwrap() error { return ErrNotAllowed }

func notAllowed(format string, a ...any) error {
	return &DecisionError{Reason: fmt.Sprintf(format, a...)}
}

// planned is one step an approval will need.
type planned struct {
	kind        string
	identityID  *string
	workgroupID *string
	name        string
	ents        []string
	reason      string
}

// planTx returns the steps a request needs before it may run for who, in
// order, or none. Admins never need one. Owner steps (one per owner) come
// first, together; the admin step after them. An owner with nobody who
// may decide (no portal user, or only the requester or a beneficiary)
// gives way to the admins.
func (s *Service) planTx(ctx context.Context, tx *gorm.DB, who Requester, res *resolved) ([][]planned, error) {
	if who.Admin || (res.req.Type != AddEntitlements && res.req.Type != CreateAccount) {
		return nil, nil
	}
	var owners []planned
	var admin *planned
	byOwner := map[string]int{}
	needAdmin := func(ent, reason string) {
		if admin == nil {
			admin = &planned{kind: StepAdmin, name: "Admins"}
		}
		admin.ents = append(admin.ents, ent)
		if reason != "" && !strings.Contains(admin.reason, reason) {
			admin.reason = strings.TrimPrefix(admin.reason+"; "+reason, "; ")
		}
	}
	for _, ref := range res.ents {
		e, err := s.ids.GetEntitlementTx(ctx, tx, ref.ID)
		if err != nil {
			return nil, err
		}
		switch e.Approval {
		case identities.ApprovalOwner, identities.ApprovalOwnerThenAdmin:
			key, p, err := s.ownerStepTx(ctx, tx, who, res, e)
			if err != nil {
				return nil, err
			}
			if p == nil {
				needAdmin(e.Name, key)
				continue
			}
			if i, ok := byOwner[key]; ok {
				owners[i].ents = append(owners[i].ents, e.Name)
			} else {
				byOwner[key] = len(owners)
				p.ents = []string{e.Name}
				owners = append(owners, *p)
			}
			if e.Approval == identities.ApprovalOwnerThenAdmin {
				needAdmin(e.Name, "")
			}
		case identities.ApprovalAdmin:
			needAdmin(e.Name, "")
		}
	}
	var stages [][]planned
	if len(owners) > 0 {
		stages = append(stages, owners)
	}
	if admin != nil {
		stages = append(stages, []planned{*admin})
	}
	return stages, nil
}

// ownerStepTx returns the owner step of e, keyed by its owner, or nil and
// why the admins decide instead.
func (s *Service) ownerStepTx(ctx context.Context, tx *gorm.DB, who Requester, res *resolved, e *identities.Entitlement) (string, *planned, error) {
	var ids []string
	p := &planned{kind: StepOwner}
	switch {
	case e.OwnerIdentityID != nil:
		owner, err := s.ids.GetIdentityTx(ctx, tx, *e.OwnerIdentityID)
		if errors.Is(err, identities.ErrNotFound) {
			return "entitlement " + e.Name + " has no owner", nil, nil
		}
		if err != nil {
			return "", nil, err
		}
		if owner.Status != "active" {
			return "the owner of " + e.Name + " (" + owner.DisplayName + ") is " + owner.Status, nil, nil
		}
		ids, p.identityID, p.name = []string{owner.ID}, &owner.ID, owner.DisplayName
	case e.OwnerWorkgroupID != nil:
		wg, err := s.ids.GetWorkgroupTx(ctx, tx, *e.OwnerWorkgroupID)
		if errors.Is(err, identities.ErrNotFound) {
			return "entitlement " + e.Name + " has no owner", nil, nil
		}
		if err != nil {
			return "", nil, err
		}
		members, err := s.ids.Members(ctx, tx, wg.ID)
		if err != nil {
			return "", nil, err
		}
		for _, m := range members {
			ids = append(ids, m.ID)
		}
		p.workgroupID, p.name = &wg.ID, "Workgroup "+wg.Name
	default:
		return "entitlement " + e.Name + " has no owner", nil, nil
	}
	people, err := s.eligibleTx(ctx, tx, who.Username, res.beneficiaryIDs(), ids)
	if err != nil {
		return "", nil, err
	}
	if len(people) == 0 {
		return "nobody but the requester or a beneficiary may decide for the owner of " + e.Name +
			" (" + p.name + ")", nil, nil
	}
	key := "w:"
	if p.identityID != nil {
		key = "i:" + *p.identityID
	} else {
		key += *p.workgroupID
	}
	return key, p, nil
}

// beneficiaryIDs returns the identities a request is for.
func (res *resolved) beneficiaryIDs() []string {
	var out []string
	for _, p := range res.people {
		if p.IdentityID != "" {
			out = append(out, p.IdentityID)
		}
	}
	return out
}

// eligibleTx returns the users linked to any of ids (every admin when ids
// is nil) but the requester and the beneficiaries.
func (s *Service) eligibleTx(ctx context.Context, tx *gorm.DB, requester string, beneficiaries, ids []string) ([]Person, error) {
	if s.opts.People == nil {
		return nil, errors.New("requests: approvals need the portal's users (Options.People)")
	}
	var people []Person
	var err error
	if ids == nil {
		people, err = s.opts.People.AdminsTx(ctx, tx)
	} else if len(ids) > 0 {
		people, err = s.opts.People.UsersOfTx(ctx, tx, ids)
	}
	if err != nil {
		return nil, err
	}
	out := people[:0]
	for _, p := range people {
		if strings.EqualFold(p.Username, requester) || (p.IdentityID != "" && slices.Contains(beneficiaries, p.IdentityID)) {
			continue
		}
		out = append(out, p)
	}
	return out, nil
}

// ApprovalFor says for what an approval is asked: a run, or a task.
type ApprovalFor struct {
	InstanceID string
	TaskID     string
	TaskName   string
}

// openTx writes an approval of res for who with the planned stages, opens
// its first stage, and audits it.
func (s *Service) openTx(ctx context.Context, tx *gorm.DB, who Requester, res *resolved, stages [][]planned, about ApprovalFor) (*Approval, error) {
	reqJSON, err := json.Marshal(res.req)
	if err != nil {
		return nil, err
	}
	me, err := s.identityOf(ctx, tx, who)
	if err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	a := &Approval{
		ID: uuid.NewString(), TaskName: about.TaskName, Request: string(reqJSON), Type: res.req.Type,
		BeneficiaryType: res.req.BeneficiaryType, BeneficiaryID: res.req.BeneficiaryID, BeneficiaryName: res.benName,
		ConnectorID: res.req.ConnectorID, ConnectorName: res.connector.Name, RequestedBy: who.Username,
		Status: ApprovalPending, CreatedAt: now, ExpiresAt: now.Add(s.approvalExpiry()), EntitlementNames: []string{},
	}
	for _, e := range res.ents {
		a.EntitlementNames = append(a.EntitlementNames, e.Name)
	}
	if me != "" {
		a.RequesterIdentityID = &me
	}
	if about.InstanceID != "" {
		a.InstanceID = &about.InstanceID
	}
	if about.TaskID != "" {
		a.TaskID = &about.TaskID
	}
	seq := 0
	for stage, steps := range stages {
		for _, p := range steps {
			seq++
			status := StepWaiting
			if stage == 0 {
				status = StepPending
			}
			a.Steps = append(a.Steps, ApprovalStep{
				ID: uuid.NewString(), ApprovalID: a.ID, Seq: seq, Stage: stage + 1, Kind: p.kind,
				ApproverIdentityID: p.identityID, ApproverWorkgroupID: p.workgroupID, ApproverName: p.name,
				Entitlements: strings.Join(p.ents, ", "), Reason: p.reason, Status: status,
			})
		}
	}
	if err := tx.Create(a).Error; err != nil {
		return nil, fmt.Errorf("requests: create approval: %w", err)
	}
	if err := tx.Create(&a.Steps).Error; err != nil {
		return nil, fmt.Errorf("requests: create approval steps: %w", err)
	}
	details := map[string]any{"type": a.Type, "beneficiary": a.BeneficiaryName, "entitlements": a.EntitlementNames,
		"steps": len(a.Steps), "expires_at": a.ExpiresAt.Format(time.RFC3339)}
	if a.TaskName != "" {
		details["task"] = a.TaskName
	}
	if err := audit.RecordTx(tx, who.actor(), "approval.request", "approval", a.ID, details); err != nil {
		return nil, err
	}
	if err := s.askTx(ctx, tx, a, a.Current()); err != nil {
		return nil, err
	}
	return a, nil
}

// actor is the requester as the audit trail names them.
func (r Requester) actor() string {
	if r.Username == "" {
		return audit.ActorSystem
	}
	return r.Username
}

// askTx tells the approval hooks that steps opened, with who may decide each.
func (s *Service) askTx(ctx context.Context, tx *gorm.DB, a *Approval, steps []ApprovalStep) error {
	if len(s.onApproval) == 0 || len(steps) == 0 {
		return nil
	}
	bens, err := s.beneficiariesOfTx(ctx, tx, a)
	if err != nil {
		return err
	}
	ev := &ApprovalEvent{Approval: a}
	for _, st := range steps {
		ids, err := s.deciderIdentitiesTx(ctx, tx, &st)
		if err != nil {
			return err
		}
		to, err := s.eligibleTx(ctx, tx, a.RequestedBy, bens, ids)
		if err != nil {
			return err
		}
		ev.Asks = append(ev.Asks, Ask{Step: st, To: to})
	}
	for _, fn := range s.onApproval {
		if err := fn(ctx, tx, ev); err != nil {
			return err
		}
	}
	return nil
}

// deciderIdentitiesTx returns the identities whose users decide an owner
// step, or nil for an admin step.
func (s *Service) deciderIdentitiesTx(ctx context.Context, tx *gorm.DB, st *ApprovalStep) ([]string, error) {
	switch {
	case st.Kind == StepAdmin:
		return nil, nil
	case st.ApproverIdentityID != nil:
		return []string{*st.ApproverIdentityID}, nil
	case st.ApproverWorkgroupID != nil:
		members, err := s.ids.Members(ctx, tx, *st.ApproverWorkgroupID)
		if err != nil {
			return nil, err
		}
		ids := []string{}
		for _, m := range members {
			ids = append(ids, m.ID)
		}
		return ids, nil
	}
	return []string{}, nil // the owner is gone: nobody
}

// beneficiariesOfTx returns the identities an approval's request is for,
// as they are now.
func (s *Service) beneficiariesOfTx(ctx context.Context, tx *gorm.DB, a *Approval) ([]string, error) {
	if a.BeneficiaryType != BeneficiaryWorkgroup {
		return []string{a.BeneficiaryID}, nil
	}
	members, err := s.ids.Members(ctx, tx, a.BeneficiaryID)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(members))
	for i, m := range members {
		out[i] = m.ID
	}
	return out, nil
}

func (s *Service) approvalExpiry() time.Duration {
	if s.opts.ApprovalExpiry > 0 {
		return s.opts.ApprovalExpiry
	}
	return DefaultApprovalExpiry
}

// RequestApprovalTx asks, in tx, for the approval a task's request needs
// for who, and returns it; nil when the request needs none.
func (s *Service) RequestApprovalTx(ctx context.Context, tx *gorm.DB, who Requester, r Request, about ApprovalFor) (*Approval, error) {
	res, err := s.resolve(ctx, tx, r)
	if err != nil {
		return nil, err
	}
	stages, err := s.planTx(ctx, tx, who, res)
	if err != nil || len(stages) == 0 {
		return nil, err
	}
	return s.openTx(ctx, tx, who, res, stages, about)
}

// GetApproval returns an approval with its steps.
func (s *Service) GetApproval(ctx context.Context, id string) (*Approval, error) {
	return getApproval(s.db.Gorm.WithContext(ctx), id, false)
}

// ApprovalTx reads an approval with its steps in tx.
func ApprovalTx(ctx context.Context, tx *gorm.DB, id string) (*Approval, error) {
	return getApproval(tx.WithContext(ctx), id, false)
}

func getApproval(tx *gorm.DB, id string, lock bool) (*Approval, error) {
	if !input.ID(id) {
		return nil, ErrApprovalNotFound
	}
	q := tx
	if lock {
		q = database.ForUpdate(tx)
	}
	q = q.Where("id = ?", id)
	var a Approval
	if err := q.Take(&a).Error; err != nil {
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return nil, ErrApprovalNotFound
		}
		return nil, err
	}
	if err := tx.Where("approval_id = ?", a.ID).Order("seq").Find(&a.Steps).Error; err != nil {
		return nil, err
	}
	return &a, nil
}

// ErrApprovalNotFound is returned for an unknown approval.
var ErrApprovalNotFound = fmt.Errorf("approval %w", ErrNotFound)

// Decision is what an approver says.
type Decision struct {
	Approve bool
	Comment string
}

// MaxComment bounds a decision's comment, in characters.
const MaxComment = 2000

// Decide approves or denies the open step of approval id that who may
// decide. On the last approval, a run's jobs are written and queued in the
// same transaction, and a task's runs may start; a denial ends the
// approval, and its run ends Denied.
func (s *Service) Decide(ctx context.Context, id string, who Requester, d Decision) (*Approval, error) {
	d.Comment = strings.TrimSpace(d.Comment)
	if msg := input.Text(d.Comment, MaxComment); msg != "" {
		return nil, &ValidationError{Fields: []FieldError{{Field: "comment", Message: msg}}}
	}
	err := s.inTx(ctx, func(ctx context.Context, tx *gorm.DB) error {
		a, err := getApproval(tx, id, true)
		if err != nil {
			return err
		}
		st, err := s.stepForTx(ctx, tx, a, who)
		if err != nil {
			return err
		}
		name := who.Username
		if s.opts.People != nil {
			if p, err := s.opts.People.UserTx(ctx, tx, who.Username); err != nil {
				return err
			} else if p != nil && p.Name != "" {
				name = p.Name
			}
		}
		now := time.Now().UTC()
		st.DecidedBy, st.DecidedByName, st.Comment, st.DecidedAt = who.Username, name, d.Comment, &now
		st.Status = StepDenied
		if d.Approve {
			st.Status = StepApproved
		}
		if err := tx.Model(&ApprovalStep{}).Where("id = ?", st.ID).Updates(map[string]any{"status": st.Status,
			"decided_by": st.DecidedBy, "decided_by_name": name, "comment": d.Comment, "decided_at": now}).Error; err != nil {
			return err
		}
		action := "approval.deny"
		if d.Approve {
			action = "approval.approve"
		}
		if err := audit.RecordTx(tx, who.Username, action, "approval", a.ID, map[string]any{
			"step": st.Seq, "as": st.Role(), "comment": d.Comment, "beneficiary": a.BeneficiaryName}); err != nil {
			return err
		}
		if !d.Approve {
			return s.endTx(ctx, tx, a, ApprovalDenied, who.Username, d.Comment, now)
		}
		return s.advanceTx(ctx, tx, a, who.Username, now)
	})
	if err != nil {
		return nil, err
	}
	return s.GetApproval(ctx, id)
}

// stepForTx returns the open step of a that who may decide, or says why
// there is none.
func (s *Service) stepForTx(ctx context.Context, tx *gorm.DB, a *Approval, who Requester) (*ApprovalStep, error) {
	if !a.Open() {
		return nil, conflict("this approval is %s", a.Status)
	}
	if strings.EqualFold(who.Username, a.RequestedBy) {
		return nil, notAllowed("you asked for this: nobody approves their own request")
	}
	me, err := s.identityOf(ctx, tx, who)
	if err != nil {
		return nil, err
	}
	bens, err := s.beneficiariesOfTx(ctx, tx, a)
	if err != nil {
		return nil, err
	}
	if me != "" && slices.Contains(bens, me) {
		return nil, notAllowed("this request is for you: nobody approves a request for themselves")
	}
	for _, st := range a.Steps {
		if st.Status == StepApproved && strings.EqualFold(st.DecidedBy, who.Username) {
			return nil, notAllowed("you approved step %d of this request: another approver decides the next", st.Seq)
		}
	}
	var reasons []string
	for i := range a.Steps {
		st := &a.Steps[i]
		if st.Status != StepPending {
			continue
		}
		ok, err := s.decidesTx(ctx, tx, st, who, me)
		if err != nil {
			return nil, err
		}
		if ok {
			return st, nil
		}
		if st.Kind == StepAdmin {
			reasons = append(reasons, "an admin")
		} else {
			reasons = append(reasons, st.ApproverName+" (owner of "+st.Entitlements+")")
		}
	}
	return nil, notAllowed("this approval waits for %s", strings.Join(reasons, " and "))
}

// decidesTx reports whether who, whose identity is me, decides st.
func (s *Service) decidesTx(ctx context.Context, tx *gorm.DB, st *ApprovalStep, who Requester, me string) (bool, error) {
	if st.Kind == StepAdmin {
		return who.Admin, nil
	}
	if me == "" {
		return false, nil
	}
	ids, err := s.deciderIdentitiesTx(ctx, tx, st)
	if err != nil {
		return false, err
	}
	return slices.Contains(ids, me), nil
}

// advanceTx opens the next stage of a when every open step is approved,
// or approves a when none is left.
func (s *Service) advanceTx(ctx context.Context, tx *gorm.DB, a *Approval, by string, now time.Time) error {
	stage := 0
	for _, st := range a.Steps {
		if st.Status == StepPending {
			return nil // the stage waits for another owner
		}
		if st.Status == StepWaiting && (stage == 0 || st.Stage < stage) {
			stage = st.Stage
		}
	}
	if stage == 0 {
		return s.endTx(ctx, tx, a, ApprovalApproved, by, "", now)
	}
	var opened []ApprovalStep
	for i := range a.Steps {
		if a.Steps[i].Stage == stage {
			a.Steps[i].Status = StepPending
			opened = append(opened, a.Steps[i])
		}
	}
	if err := tx.Model(&ApprovalStep{}).Where("approval_id = ? AND stage = ?", a.ID, stage).Update("status", StepPending).Error; err != nil {
		return err
	}
	return s.askTx(ctx, tx, a, opened)
}

// endTx ends a with status: its open steps close; an approved run is
// expanded into its jobs and queued, any other ends with the approval's
// status; a task's approval tells the hooks.
func (s *Service) endTx(ctx context.Context, tx *gorm.DB, a *Approval, status, by, comment string, now time.Time) error {
	if err := tx.Model(&ApprovalStep{}).Where("approval_id = ? AND status IN ?", a.ID, []string{StepPending, StepWaiting}).
		Updates(map[string]any{"status": StepClosed}).Error; err != nil {
		return err
	}
	for i := range a.Steps {
		if a.Steps[i].Status == StepPending || a.Steps[i].Status == StepWaiting {
			a.Steps[i].Status = StepClosed
		}
	}
	a.Status, a.DecidedBy, a.Comment, a.DecidedAt = status, by, comment, &now
	if err := tx.Model(&Approval{}).Where("id = ?", a.ID).Updates(map[string]any{"status": status, "decided_by": by,
		"comment": comment, "decided_at": now}).Error; err != nil {
		return err
	}
	if a.InstanceID == nil {
		ev := &ApprovalEvent{Approval: a, Ended: true}
		for _, fn := range s.onApproval {
			if err := fn(ctx, tx, ev); err != nil {
				return err
			}
		}
		return nil
	}
	inst, err := lockInstanceTx(tx, *a.InstanceID)
	if err != nil {
		return err
	}
	if inst.Status != InstanceAwaitingApproval {
		return nil
	}
	if status == ApprovalApproved {
		return s.expandApprovedTx(ctx, tx, inst, a)
	}
	return s.endAwaitingTx(ctx, tx, inst, map[string]string{ApprovalDenied: InstanceDenied,
		ApprovalWithdrawn: InstanceWithdrawn, ApprovalExpired: InstanceExpired}[status])
}

// expandApprovedTx writes and queues the jobs of a run whose approval
// came through, resolving its request as things are now (a workgroup's
// members today, access that lasts from now).
func (s *Service) expandApprovedTx(ctx context.Context, tx *gorm.DB, inst *Instance, a *Approval) error {
	r, err := inst.RequestOf()
	if err != nil {
		return err
	}
	res, err := s.resolve(ctx, tx, r)
	if err != nil {
		var ve *ValidationError
		if errors.As(err, &ve) {
			return conflict("the request can no longer run as it was asked (%s): deny it, and ask for it anew", strings.TrimPrefix(ve.Error(), "invalid request: "))
		}
		return err
	}
	return s.expandTx(ctx, tx, inst, res, "approved by "+a.Approvers())
}

// endAwaitingTx ends a run that waited for its approval with status.
func (s *Service) endAwaitingTx(ctx context.Context, tx *gorm.DB, inst *Instance, status string) error {
	now := time.Now().UTC()
	if err := tx.Model(&Instance{}).Where("id = ?", inst.ID).Updates(map[string]any{"status": status, "updated_at": now, "ended_at": now}).Error; err != nil {
		return err
	}
	prev := inst.Status
	inst.Status, inst.UpdatedAt, inst.EndedAt = status, now, &now
	return s.settledTx(ctx, tx, inst, prev)
}

// Withdraw withdraws an approval that waits: only its requester may (or
// an admin, cancelling a run on the Connector Jobs page, with
// CancelInstance).
func (s *Service) Withdraw(ctx context.Context, id string, who Requester, comment string) (*Approval, error) {
	comment = strings.TrimSpace(comment)
	if msg := input.Text(comment, MaxComment); msg != "" {
		return nil, &ValidationError{Fields: []FieldError{{Field: "comment", Message: msg}}}
	}
	err := s.inTx(ctx, func(ctx context.Context, tx *gorm.DB) error {
		a, err := getApproval(tx, id, true)
		if err != nil {
			return err
		}
		if !strings.EqualFold(a.RequestedBy, who.Username) {
			return notAllowed("only %s, who asked for it, may withdraw this request", a.RequestedBy)
		}
		return s.withdrawTx(ctx, tx, a, who.Username, comment)
	})
	if err != nil {
		return nil, err
	}
	return s.GetApproval(ctx, id)
}

func (s *Service) withdrawTx(ctx context.Context, tx *gorm.DB, a *Approval, by, comment string) error {
	if !a.Open() {
		return conflict("this approval is %s", a.Status)
	}
	if err := audit.RecordTx(tx, by, "approval.withdraw", "approval", a.ID, map[string]any{
		"comment": comment, "beneficiary": a.BeneficiaryName}); err != nil {
		return err
	}
	return s.endTx(ctx, tx, a, ApprovalWithdrawn, by, comment, time.Now().UTC())
}

// WithdrawTaskApprovalTx withdraws, in tx, the approval a task waits for,
// when its request changes or the task goes: the new request needs its
// own.
func (s *Service) WithdrawTaskApprovalTx(ctx context.Context, tx *gorm.DB, approvalID, by, why string) error {
	a, err := getApproval(tx, approvalID, true)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil || !a.Open() {
		return err
	}
	return s.withdrawTx(ctx, tx, a, by, why)
}

// CoversTx says whether the approval a task names lets its runs start:
// nil when it is approved, otherwise an error that says what it waits for.
func (s *Service) CoversTx(ctx context.Context, tx *gorm.DB, approvalID string) error {
	a, err := getApproval(tx.WithContext(ctx), approvalID, false)
	if errors.Is(err, ErrNotFound) {
		return conflict("the approval of this task's request is gone: change the task's request to ask again")
	}
	if err != nil {
		return err
	}
	switch a.Status {
	case ApprovalApproved:
		return nil
	case ApprovalPending:
		return conflict("this task's request awaits approval (%s)", a.waitsFor())
	}
	return conflict("this task's request was not approved (%s): change its request to ask again", a.Status)
}

// waitsFor names who the open steps wait for.
func (a *Approval) waitsFor() string {
	var names []string
	for _, st := range a.Current() {
		names = append(names, st.ApproverName)
	}
	return "waits for " + strings.Join(names, " and ")
}

// ExpireApprovals ends the approvals whose time ran out: their runs end
// Expired, and their requesters are told. It returns how many it ended.
func (s *Service) ExpireApprovals(ctx context.Context, now time.Time) (int, error) {
	var ids []string
	if err := s.db.Gorm.WithContext(ctx).Model(&Approval{}).Where("status = ? AND expires_at <= ?", ApprovalPending, now).
		Order("expires_at").Limit(500).Pluck("id", &ids).Error; err != nil {
		return 0, fmt.Errorf("requests: expired approvals: %w", err)
	}
	n := 0
	for _, id := range ids {
		err := s.inTx(ctx, func(ctx context.Context, tx *gorm.DB) error {
			a, err := getApproval(tx, id, true)
			if err != nil || !a.Open() {
				return err
			}
			if err := audit.RecordTx(tx, audit.ActorSystem, "approval.expire", "approval", a.ID, map[string]any{
				"beneficiary": a.BeneficiaryName, "expires_at": a.ExpiresAt.Format(time.RFC3339), "waited_for": a.waitsFor()}); err != nil {
				return err
			}
			n++
			return s.endTx(ctx, tx, a, ApprovalExpired, audit.ActorSystem, "no decision within "+FormatDuration(s.approvalExpiry()), now)
		})
		if err != nil {
			return n, err
		}
	}
	if n > 0 {
		s.opts.Logger.Info("approvals expired", "count", n)
	}
	return n, nil
}

// ApprovalListOpts filter a listing of approvals.
type ApprovalListOpts struct {
	// For lists the approvals who may decide now; Mine those who asked
	// for; neither, with All, every approval (for admins).
	For  *Requester
	Mine string
	All  bool
	// Status filters by status ("" for any).
	Status        string
	Limit, Offset int
}

// ListApprovals returns approvals newest first, with their steps, and how
// many match.
func (s *Service) ListApprovals(ctx context.Context, o ApprovalListOpts) ([]Approval, int64, error) {
	db := s.db.Gorm.WithContext(ctx)
	q := db.Model(&Approval{})
	switch {
	case o.For != nil:
		sub, err := s.decidable(ctx, db, *o.For)
		if err != nil || sub == nil {
			return []Approval{}, 0, err
		}
		q = q.Where("id IN (?)", sub)
	case o.Mine != "":
		q = q.Where("requested_by = ?", o.Mine)
	case !o.All:
		return nil, 0, nil
	}
	if o.Status != "" {
		q = q.Where("status = ?", o.Status)
	}
	if o.Limit <= 0 {
		o.Limit = 25
	}
	out, total, err := database.FindPage[Approval](q, "created_at DESC, id DESC", o.Limit, o.Offset, nil)
	if err != nil {
		return nil, 0, err
	}
	if err := s.withSteps(db, out); err != nil {
		return nil, 0, err
	}
	return out, total, nil
}

func (s *Service) withSteps(db *gorm.DB, as []Approval) error {
	if len(as) == 0 {
		return nil
	}
	ids := make([]string, len(as))
	at := map[string]int{}
	for i := range as {
		ids[i] = as[i].ID
		at[as[i].ID] = i
	}
	var steps []ApprovalStep
	if err := db.Where("approval_id IN ?", ids).Order("seq").Find(&steps).Error; err != nil {
		return err
	}
	for _, st := range steps {
		i := at[st.ApprovalID]
		as[i].Steps = append(as[i].Steps, st)
	}
	return nil
}

// decidable returns a query of the ids of the open approvals with a step
// who may decide now, or nil when there can be none: the rules of
// stepForTx, in one statement (never their own requests, nor requests
// for themselves, nor a step after one they approved).
func (s *Service) decidable(ctx context.Context, db *gorm.DB, who Requester) (*gorm.DB, error) {
	me, err := s.identityOf(ctx, db, who)
	if err != nil {
		return nil, err
	}
	var conds []string
	var args []any
	if who.Admin {
		conds = append(conds, "st.kind = 'admin'")
	}
	if me != "" {
		conds = append(conds, "st.approver_identity_id = ?",
			"st.approver_workgroup_id IN (SELECT workgroup_id FROM workgroup_members WHERE identity_id = ?)")
		args = append(args, me, me)
	}
	if len(conds) == 0 {
		return nil, nil
	}
	q := db.Table("approval_steps st").Select("st.approval_id").Joins("JOIN approvals a ON a.id = st.approval_id").
		Where("st.status = ? AND a.status = ?", StepPending, ApprovalPending).
		Where("("+strings.Join(conds, " OR ")+")", args...).
		Where("lower(a.requested_by) <> lower(?)", who.Username).
		Where(`NOT EXISTS (SELECT 1 FROM approval_steps d WHERE d.approval_id = a.id AND d.status = ? AND lower(d.decided_by) = lower(?))`,
			StepApproved, who.Username)
	if me != "" {
		q = q.Where("NOT (a.beneficiary_type = ? AND a.beneficiary_id = ?)", BeneficiaryIdentity, me).
			Where(`NOT (a.beneficiary_type = ? AND EXISTS (SELECT 1 FROM workgroup_members m
				WHERE CAST(m.workgroup_id AS text) = a.beneficiary_id AND m.identity_id = ?))`, BeneficiaryWorkgroup, me)
	}
	return q, nil
}

// CanDecide reports whether who may decide a step of a now, and if not, why.
func (s *Service) CanDecide(ctx context.Context, a *Approval, who Requester) (bool, string, error) {
	_, err := s.stepForTx(ctx, s.db.Gorm.WithContext(ctx), a, who)
	var de *DecisionError
	switch {
	case err == nil:
		return true, "", nil
	case errors.As(err, &de):
		return false, de.Reason, nil
	case errors.Is(err, ErrConflict):
		return false, err.Error(), nil
	}
	return false, "", err
}
