package requests

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/provisor/provisor/audit"
	"github.com/provisor/provisor/identities"
)

// Requester is who asks for a request, as the request policy sees them.
type Requester struct {
	// Username is the portal user's name. Without IdentityID, the active
	// identity of that username is the requester's own.
	Username   string
	IdentityID string
	// Admin may ask for anyone and for any entitlement (admins, and API
	// clients that act as services). Helpdesk may ask for anyone, within
	// each entitlement's policy.
	Admin, Helpdesk bool
}

// The rules a refusal names.
const (
	// RuleBeneficiary: the requester may not ask for that beneficiary.
	RuleBeneficiary = "beneficiary"
	// RuleNotRequestable: only admins grant the entitlement.
	RuleNotRequestable = "not_requestable"
	// RuleMaxDuration: the grant would last longer than the entitlement allows.
	RuleMaxDuration = "max_duration"
	// RuleAdminOnly: only admins make requests of that type.
	RuleAdminOnly = "admin_only"
)

// ErrRefused is wrapped by a *PolicyError.
var ErrRefused = errors.New("refused by the request policy")

// Refusal is one reason the policy refuses a request.
type Refusal struct {
	Rule    string `json:"rule"`
	Field   string `json:"field"`
	Message string `json:"message"`
}

// PolicyError says why a request is refused.
type PolicyError struct {
	Refusals []Refusal
}

func (e *PolicyError) Error() string {
	msgs := make([]string, len(e.Refusals))
	for i, r := range e.Refusals {
		msgs[i] = r.Message
	}
	return strings.Join(msgs, "; ")
}

// Unwrap makes errors.Is(err, ErrRefused) hold.
func (e *PolicyError) Unwrap() error { return ErrRefused }

// Authorize checks r against the request policy for who, reading the
// database outside any transaction. A grant of an entitlement whose access
// is time-bound and that names no duration is given the longest one the
// entitlement allows, in r.
func (s *Service) Authorize(ctx context.Context, who Requester, r *Request) error {
	err := s.AuthorizeTx(ctx, s.db.Gorm.WithContext(ctx), who, r)
	s.auditRefusal(ctx, who.actor(), *r, err)
	return err
}

// auditRefusal records in the audit trail that the policy refused r, when
// err says so: who tried to ask for what, and which rules refused it.
func (s *Service) auditRefusal(ctx context.Context, actor string, r Request, err error) {
	var pe *PolicyError
	if !errors.As(err, &pe) {
		return
	}
	rules := make([]string, len(pe.Refusals))
	for i, f := range pe.Refusals {
		rules[i] = f.Rule + ": " + f.Message
	}
	details := map[string]any{"type": r.Type, "beneficiary_type": r.BeneficiaryType, "beneficiary_id": r.BeneficiaryID,
		"connector_id": r.ConnectorID, "entitlements": r.Entitlements, "refusals": rules}
	if err := s.db.InTx(context.WithoutCancel(ctx), func(tx *gorm.DB) error {
		return audit.RecordTx(tx, actor, "request.refused", "request", "", details)
	}); err != nil {
		s.opts.Logger.Warn("refused request not audited", "actor", actor, "err", err)
	}
}

// ApprovalPlan returns the steps r would need for who, without writing
// anything: what the review step shows before Submit. r may not resolve;
// then it returns none.
func (s *Service) ApprovalPlan(ctx context.Context, who Requester, r Request) ([]ApprovalStep, error) {
	db := s.db.Gorm.WithContext(ctx)
	res, err := s.resolve(ctx, db, r)
	var ve *ValidationError
	if errors.As(err, &ve) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	stages, err := s.planTx(ctx, db, who, res)
	if err != nil {
		return nil, err
	}
	return stepsOf(stages), nil
}

// AuthorizeTx is Authorize read in tx.
func (s *Service) AuthorizeTx(ctx context.Context, tx *gorm.DB, who Requester, r *Request) error {
	refusals, err := s.checkPolicy(ctx, tx, who, r)
	if err != nil {
		return err
	}
	if len(refusals) > 0 {
		return &PolicyError{Refusals: refusals}
	}
	return nil
}

// Refusals returns what the policy refuses in r for who, by field, for a
// form that shows each next to its field; r may be incomplete. It reads
// outside any transaction and does not change r.
func (s *Service) Refusals(ctx context.Context, who Requester, r Request) ([]Refusal, error) {
	return s.checkPolicy(ctx, s.db.Gorm.WithContext(ctx), who, &r)
}

// identityOf returns the requester's identity id, or "".
func (s *Service) identityOf(ctx context.Context, tx *gorm.DB, who Requester) (string, error) {
	if who.IdentityID != "" || who.Username == "" {
		return who.IdentityID, nil
	}
	id, err := s.ids.IdentityByUsernameTx(ctx, tx, who.Username)
	if errors.Is(err, identities.ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return id.ID, nil
}

// Reach returns what a requester's beneficiary lists keep: nil for those
// who may ask for anyone.
func (s *Service) Reach(ctx context.Context, who Requester) (*identities.Reach, error) {
	if who.Admin || who.Helpdesk {
		return nil, nil
	}
	id, err := s.identityOf(ctx, s.db.Gorm.WithContext(ctx), who)
	if err != nil {
		return nil, err
	}
	return &identities.Reach{IdentityID: id}, nil
}

// EntitlementRefusal says why who may not ask for a grant of e, or returns
// nil when they may. Short is what a list shows next to an entitlement it
// does not offer, such as "privileged: not requestable".
func EntitlementRefusal(who Requester, e *identities.Entitlement) (r *Refusal, short string) {
	if who.Admin || e.Requestable {
		return nil, ""
	}
	what := "entitlement " + e.Name + " is "
	label := ""
	if e.Privileged() {
		what += "privileged and "
		label = "privileged: "
	}
	return &Refusal{Rule: RuleNotRequestable, Message: what + "not requestable: only an admin can grant it"}, label + "not requestable"
}

// ApprovalNote says whose approval a grant of e needs when who asks for
// it ("needs the approval of its owner, then an admin"), or "" when it
// needs none.
func ApprovalNote(who Requester, e *identities.Entitlement) string {
	if who.Admin {
		return ""
	}
	by := map[string]string{identities.ApprovalOwner: "its owner", identities.ApprovalAdmin: "an admin",
		identities.ApprovalOwnerThenAdmin: "its owner, then an admin"}[e.Approval]
	if by == "" {
		return ""
	}
	return "needs the approval of " + by
}

// checkPolicy returns the refusals of r for who, and gives a time-bound
// grant without a duration its longest allowed one. Parts of r that do not
// resolve are left to validation.
func (s *Service) checkPolicy(ctx context.Context, tx *gorm.DB, who Requester, r *Request) ([]Refusal, error) {
	var out []Refusal
	if r.Type == DataImport {
		if !who.Admin {
			out = append(out, Refusal{Rule: RuleAdminOnly, Field: "type", Message: "only admins start data imports"})
		}
		return out, nil
	}
	if !who.Admin && !who.Helpdesk && r.BeneficiaryID != "" {
		me, err := s.identityOf(ctx, tx, who)
		if err != nil {
			return nil, err
		}
		refusal, err := s.beneficiaryRefusal(ctx, tx, me, strings.TrimSpace(r.BeneficiaryType), r.BeneficiaryID)
		if err != nil {
			return nil, err
		}
		if refusal != "" {
			out = append(out, Refusal{Rule: RuleBeneficiary, Field: "beneficiary_id", Message: refusal})
		}
	}
	if r.Type != AddEntitlements && r.Type != CreateAccount {
		return out, nil // removing access and acting on accounts grant nothing
	}
	var bound time.Duration
	var boundBy string
	for i, id := range r.Entitlements {
		e, err := s.ids.GetEntitlementTx(ctx, tx, id)
		if errors.Is(err, identities.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if ref, _ := EntitlementRefusal(who, e); ref != nil {
			ref.Field = fmt.Sprintf("entitlements[%d]", i)
			out = append(out, *ref)
		}
		if m := e.Max(); m > 0 && (bound == 0 || m < bound) {
			bound, boundBy = m, e.Name
		}
	}
	if bound > 0 {
		r.Duration = strings.TrimSpace(r.Duration)
		if r.Duration == "" {
			r.Duration = FormatDuration(bound)
		} else if d, err := ParseDuration(r.Duration); err == nil && d > bound {
			out = append(out, Refusal{Rule: RuleMaxDuration, Field: "duration",
				Message: fmt.Sprintf("entitlement %s may be granted for at most %s", boundBy, FormatDuration(bound))})
		}
	}
	return out, nil
}

// beneficiaryRefusal says why the requester whose identity is me may not
// ask for the beneficiary, or returns "".
func (s *Service) beneficiaryRefusal(ctx context.Context, tx *gorm.DB, me, kind, id string) (string, error) {
	const rule = "you may ask for yourself, your direct reports and the members of workgroups you own"
	switch kind {
	case BeneficiaryIdentity:
		p, err := s.ids.GetIdentityTx(ctx, tx, id)
		if errors.Is(err, identities.ErrNotFound) {
			return "", nil
		}
		if err != nil {
			return "", err
		}
		rel, err := s.ids.RelationTx(ctx, tx, me, id)
		if err != nil || rel != "" {
			return "", err
		}
		if me == "" {
			return "Provisor knows no identity of yours, so you may ask for access for nobody: ask an admin to link one", nil
		}
		return p.DisplayName + " is not someone you may ask for: " + rule, nil
	case BeneficiaryWorkgroup:
		wg, err := s.ids.GetWorkgroupTx(ctx, tx, id)
		if errors.Is(err, identities.ErrNotFound) {
			return "", nil
		}
		if err != nil {
			return "", err
		}
		if me != "" && wg.OwnerID != nil && *wg.OwnerID == me {
			return "", nil
		}
		return "workgroup " + wg.Name + " is not yours: only its owner, the helpdesk and admins ask for a whole workgroup", nil
	}
	return "", nil
}

// FormatDuration writes d as a request duration: "8h", "30d", "90m".
func FormatDuration(d time.Duration) string {
	switch {
	case d%(24*time.Hour) == 0:
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	}
	return fmt.Sprintf("%dm", d/time.Minute)
}
