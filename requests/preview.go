package requests

import (
	"context"
	"fmt"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/provisor/provisor/connectors"
)

// Predictions: what a previewed job will do, as far as the portal knows the
// accounts and memberships (from the last import and the jobs it ran).
const (
	// PredictChange: the job will change the system.
	PredictChange = "change"
	// PredictNoChange: the system is already as asked; the job will
	// complete with no change.
	PredictNoChange = "no_change"
	// PredictUnknown: the portal knows too little to say, such as for an
	// account it has no record of, or an import.
	PredictUnknown = "unknown"
)

// PreviewJob is one connector job a run would write, numbered as the run
// numbers its jobs, with what it is predicted to do.
type PreviewJob struct {
	Number          int        `json:"number"`
	IdentityID      *string    `json:"identity_id"`
	Username        string     `json:"username"`
	ConnectorName   string     `json:"connector_name"`
	EntitlementID   *string    `json:"entitlement_id,omitempty"`
	EntitlementName string     `json:"entitlement_name,omitempty"`
	Operation       string     `json:"operation"`
	Kind            string     `json:"kind"`
	Status          string     `json:"status"`
	Priority        Priority   `json:"priority"`
	Revocation      bool       `json:"revocation"`
	RunAt           *time.Time `json:"run_at,omitempty"`
	// DependsOn is the number of the job it waits for, 0 for none.
	DependsOn  int    `json:"depends_on,omitempty"`
	Prediction string `json:"prediction"`
	// Reason says why, in words: "alice already is a member of VPN".
	Reason string `json:"reason"`
}

// Will says the job is predicted to change the system.
func (j *PreviewJob) Will() bool { return j.Prediction == PredictChange }

// PreviewStep is one decision a run would wait for.
type PreviewStep struct {
	Number       int    `json:"number"`
	Stage        int    `json:"stage"`
	Kind         string `json:"kind"`
	Approver     string `json:"approver"`
	Entitlements string `json:"entitlements,omitempty"`
	Reason       string `json:"reason,omitempty"`
}

// Preview is what a run of a request would do if it started now: the jobs
// it would write, in order (each beneficiary's in turn, a workgroup's per
// member), the revocations a duration schedules, what each is predicted to
// do, and whether the run would first wait for an approval.
type Preview struct {
	Type            Type         `json:"type"`
	BeneficiaryType string       `json:"beneficiary_type"`
	BeneficiaryID   string       `json:"beneficiary_id"`
	BeneficiaryName string       `json:"beneficiary_name"`
	ConnectorID     string       `json:"connector_id"`
	ConnectorName   string       `json:"connector_name"`
	Priority        Priority     `json:"priority"`
	Duration        string       `json:"duration,omitempty"`
	ExpiresAt       *time.Time   `json:"expires_at,omitempty"`
	Jobs            []PreviewJob `json:"jobs"`
	// Changes, NoChanges and Unknown count the jobs by prediction;
	// Revocations counts the scheduled ones among them.
	Changes     int `json:"changes"`
	NoChanges   int `json:"no_changes"`
	Unknown     int `json:"unknown"`
	Revocations int `json:"revocations"`
	// AwaitsApproval says the run would wait for an approval before any of
	// its jobs is written: they are written as the request resolves when
	// it is approved. Approval says what it waits for, and Steps lists the
	// decisions a submission would ask for.
	AwaitsApproval bool          `json:"awaits_approval"`
	Approval       string        `json:"approval,omitempty"`
	Steps          []PreviewStep `json:"approval_steps,omitempty"`
}

// PreviewOpts say whose run is previewed.
type PreviewOpts struct {
	// By, if set, is the requester: the request is checked against the
	// request policy for them, as Submit checks it, and the approvals it
	// would need for them are listed. A task's runs leave it nil.
	By *Requester
	// ApprovalID is the approval a task's runs go ahead under, if any.
	ApprovalID string
}

// Preview returns what a run of r would do if it started now, writing
// nothing. It expands r with the code a run uses (the same checks, the same
// jobs in the same order), so that the preview is what the run does; a
// request the policy refuses for opts.By is refused with the same
// *PolicyError.
func (s *Service) Preview(ctx context.Context, r Request, opts PreviewOpts) (*Preview, error) {
	return s.PreviewTx(ctx, s.db.Gorm.WithContext(ctx), r, opts)
}

// PreviewTx is Preview read in tx.
func (s *Service) PreviewTx(ctx context.Context, tx *gorm.DB, r Request, opts PreviewOpts) (*Preview, error) {
	res, stages, err := s.prepareTx(ctx, tx, r, opts.By)
	if err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	inst := &Instance{ID: "preview", Type: res.req.Type, Priority: res.req.Priority}
	jobs, _, _ := s.buildJobs(inst, res, now)
	p := &Preview{
		Type: res.req.Type, BeneficiaryType: res.req.BeneficiaryType, BeneficiaryID: res.req.BeneficiaryID,
		BeneficiaryName: res.benName, ConnectorID: res.req.ConnectorID, ConnectorName: res.connector.Name,
		Priority: res.req.Priority, Duration: res.req.Duration, ExpiresAt: res.expiresAt, Jobs: make([]PreviewJob, len(jobs)),
	}
	number := make(map[string]int, len(jobs))
	for i := range jobs {
		j := &jobs[i]
		number[j.ID] = j.Seq
		pj := PreviewJob{Number: j.Seq, IdentityID: j.IdentityID, Username: j.Username, ConnectorName: j.ConnectorName,
			EntitlementID: j.EntitlementID, EntitlementName: j.EntitlementName, Operation: j.Operation, Kind: j.Kind,
			Status: j.Status, Priority: j.Priority, Revocation: j.Revocation, RunAt: j.RunAt}
		if j.DependsOn != nil {
			pj.DependsOn = number[*j.DependsOn]
		}
		p.Jobs[i] = pj
	}
	if err := s.predictTx(ctx, tx, res, p.Jobs); err != nil {
		return nil, err
	}
	for _, j := range p.Jobs {
		switch j.Prediction {
		case PredictChange:
			p.Changes++
		case PredictNoChange:
			p.NoChanges++
		default:
			p.Unknown++
		}
		if j.Revocation {
			p.Revocations++
		}
	}
	if len(stages) > 0 {
		p.AwaitsApproval = true
		var names []string
		for _, st := range stepsOf(stages) {
			p.Steps = append(p.Steps, PreviewStep{Number: st.Seq, Stage: st.Stage, Kind: st.Kind, Approver: st.ApproverName,
				Entitlements: st.Entitlements, Reason: st.Reason})
			names = append(names, st.ApproverName)
		}
		p.Approval = "the run waits for the approval of " + strings.Join(names, ", then ") +
			"; its jobs are written as the request stands when it is approved"
	}
	if opts.ApprovalID != "" {
		if err := s.CoversTx(ctx, tx, opts.ApprovalID); err != nil {
			p.AwaitsApproval = true
			p.Approval = strings.TrimPrefix(err.Error(), ErrConflict.Error()+": ")
		}
	}
	return p, nil
}

// stepsOf numbers the planned approval stages as the steps of an approval.
func stepsOf(stages [][]planned) []ApprovalStep {
	var out []ApprovalStep
	for i, st := range stages {
		for _, p := range st {
			out = append(out, ApprovalStep{Seq: len(out) + 1, Stage: i + 1, Kind: p.kind, ApproverName: p.name,
				Entitlements: strings.Join(p.ents, ", "), Reason: p.reason})
		}
	}
	return out
}

// Account statuses as the portal records them (identities.Account.Status).
const (
	accountEnabled = "enabled"
	accountLocked  = "locked"
	accountDeleted = "deleted"
)

// accountState is one beneficiary's account on the connector as the
// portal knows it, and as the previewed jobs before change it.
type accountState struct {
	username string
	status   string // "" when the portal has no record of it
	held     map[string]bool
	// before keeps what held before the run, for the revocations' reasons.
	heldBefore map[string]bool
	existed    bool
}

func (a *accountState) exists() bool { return a.status != "" && a.status != accountDeleted }

// predictTx says what each job would do, from the accounts and memberships
// the portal knows: the jobs are played in order on that state, so that a
// grant after the account's creation is a change, and a revocation at the
// expiry removes what the run granted.
func (s *Service) predictTx(ctx context.Context, tx *gorm.DB, res *resolved, jobs []PreviewJob) error {
	var accountIDs, entIDs []string
	for _, a := range res.accounts {
		accountIDs = append(accountIDs, a.ID)
	}
	for _, e := range res.ents {
		entIDs = append(entIDs, e.ID)
	}
	held, err := s.ids.HeldTx(ctx, tx, accountIDs, entIDs)
	if err != nil {
		return fmt.Errorf("requests: preview: %w", err)
	}
	states := map[string]*accountState{}
	stateOf := func(j *PreviewJob) *accountState {
		key := j.Username
		if j.IdentityID != nil {
			key = *j.IdentityID
		}
		st := states[key]
		if st == nil {
			st = &accountState{username: j.Username, held: map[string]bool{}, heldBefore: map[string]bool{}}
			if j.IdentityID != nil {
				if a := res.accounts[*j.IdentityID]; a != nil {
					st.status = a.Status
					for _, e := range res.ents {
						if held[[2]string{a.ID, e.ID}] {
							st.held[e.ID], st.heldBefore[e.ID] = true, true
						}
					}
				}
			}
			st.existed = st.exists()
			states[key] = st
		}
		return st
	}
	conn := res.connector.Name
	for i := range jobs {
		j := &jobs[i]
		if connectors.Operation(j.Operation) == connectors.OpImport {
			j.Prediction, j.Reason = PredictUnknown, "an import reads "+conn+" into Provisor: what it finds is known when it runs"
			continue
		}
		predict(j, stateOf(j), conn)
	}
	return nil
}

// predict says what job j does to an account in state st, and changes st
// as the job would.
func predict(j *PreviewJob, st *accountState, conn string) {
	user := st.username
	at := ""
	if j.Revocation && j.RunAt != nil {
		at = "at the expiry (" + j.RunAt.UTC().Format("2006-01-02 15:04 UTC") + "): "
	}
	set := func(prediction, reason string) { j.Prediction, j.Reason = prediction, at+reason }
	unknown := func(what string) {
		set(PredictUnknown, "Provisor has no record of an account "+user+" on "+conn+": "+what)
	}
	ent := ""
	if j.EntitlementID != nil {
		ent = *j.EntitlementID
	}
	switch connectors.Operation(j.Operation) {
	case connectors.OpCreateAccount:
		switch {
		case st.exists():
			set(PredictNoChange, "account "+user+" already exists on "+conn+" ("+st.status+")")
		case st.status == accountDeleted:
			set(PredictChange, "creates account "+user+" again (it was deleted)")
			st.status = accountEnabled
		default:
			set(PredictChange, "creates account "+user)
			st.status = accountEnabled
		}
	case connectors.OpDeleteAccount:
		switch {
		case st.exists():
			reason := "deletes account " + user
			if j.Revocation && st.existed {
				reason += ", which existed before this run"
			}
			set(PredictChange, reason)
			st.status, st.held = accountDeleted, map[string]bool{}
		case st.status == accountDeleted:
			set(PredictNoChange, "account "+user+" is already deleted")
		default:
			unknown("if there is none, there is nothing to delete")
		}
	case connectors.OpDisableAccount:
		switch {
		case st.status == accountLocked:
			set(PredictNoChange, "account "+user+" is already locked")
		case st.exists():
			set(PredictChange, "locks account "+user)
			st.status = accountLocked
		default:
			unknown("the connector may refuse to lock it")
		}
	case connectors.OpEnableAccount:
		switch {
		case st.status == accountEnabled:
			set(PredictNoChange, "account "+user+" is already unlocked")
		case st.exists():
			set(PredictChange, "unlocks account "+user)
			st.status = accountEnabled
		default:
			unknown("the connector may refuse to unlock it")
		}
	case connectors.OpGrant:
		switch {
		case !st.exists():
			unknown("the connector may refuse the grant")
		case st.held[ent]:
			set(PredictNoChange, user+" already is a member of "+j.EntitlementName)
		default:
			set(PredictChange, "adds "+user+" to "+j.EntitlementName)
			st.held[ent] = true
		}
	case connectors.OpRevoke:
		switch {
		case !st.exists() && st.status == "":
			unknown("if there is none, there is nothing to remove")
		case !st.held[ent]:
			set(PredictNoChange, user+" is not a member of "+j.EntitlementName)
		default:
			reason := "removes " + user + " from " + j.EntitlementName
			if j.Revocation && st.heldBefore[ent] {
				reason += ", which " + user + " held before this run too"
			}
			set(PredictChange, reason)
			delete(st.held, ent)
		}
	default:
		set(PredictUnknown, "")
	}
}
