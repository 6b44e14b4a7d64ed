package identities

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/provisor/provisor/audit"
	"github.com/provisor/provisor/connectors/configured"
)

// Sensitivities of an entitlement.
const (
	SensitivityNormal     = "normal"
	SensitivityPrivileged = "privileged"
)

// Approval policies of an entitlement: who must approve a grant before it
// runs.
const (
	ApprovalNone           = "none"
	ApprovalOwner          = "owner"
	ApprovalAdmin          = "admin"
	ApprovalOwnerThenAdmin = "owner_then_admin"
)

// Approvals lists the approval policies.
var Approvals = []string{ApprovalNone, ApprovalOwner, ApprovalAdmin, ApprovalOwnerThenAdmin}

// PrivilegedMaxDuration bounds a grant of a privileged entitlement that
// names no maximum of its own: privileged access is time-bound.
const PrivilegedMaxDuration = 8 * time.Hour

// Policy is what a grant of an entitlement is subject to.
type Policy struct {
	// OwnerIdentityID or OwnerWorkgroupID (at most one) owns the
	// entitlement: the approver of an "owner" approval.
	OwnerIdentityID  *string `json:"owner_identity_id"`
	OwnerWorkgroupID *string `json:"owner_workgroup_id"`
	Sensitivity      string  `json:"sensitivity"`
	Approval         string  `json:"approval"`
	// MaxDuration is the longest a grant may last ("8h", "30d"); a grant
	// asked for without a duration is given this one. Empty: no bound for
	// a normal entitlement, PrivilegedMaxDuration for a privileged one.
	MaxDuration string `json:"max_duration"`
	// Requestable is false for entitlements only admins grant.
	Requestable bool `json:"requestable"`
	// PolicyUpdatedAt is when someone last changed the policy; until then
	// imports may raise the policy of the connector's admin group.
	PolicyUpdatedAt *time.Time `json:"policy_updated_at"`
}

// Max returns the longest a grant may last, or 0 for no bound.
func (p *Policy) Max() time.Duration {
	if d, err := ParseDuration(p.MaxDuration); err == nil && p.MaxDuration != "" {
		return d
	}
	if p.Sensitivity == SensitivityPrivileged {
		return PrivilegedMaxDuration
	}
	return 0
}

// Privileged reports whether the entitlement is privileged.
func (p *Policy) Privileged() bool { return p.Sensitivity == SensitivityPrivileged }

// ErrDurationRange is ParseDuration's error for a duration too long (or
// too far below zero) to be held: callers report it as out of their range.
var ErrDurationRange = errors.New("duration out of range")

// ParseDuration reads "90m", "8h", "30d" or "2w". A number of days or
// weeks is checked before it is multiplied, so a huge one is refused
// (ErrDurationRange) rather than wrapped around to a short duration.
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if n := len(s); n > 1 && (s[n-1] == 'd' || s[n-1] == 'w') {
		v, err := strconv.ParseInt(s[:n-1], 10, 64)
		if err != nil && !errors.Is(err, strconv.ErrRange) {
			return 0, fmt.Errorf("%q is not a duration such as 8h, 30d or 2w", s)
		}
		day := 24 * time.Hour
		if s[n-1] == 'w' {
			day *= 7
		}
		if err != nil || v > int64(math.MaxInt64/day) || v < int64(math.MinInt64/day) {
			return 0, fmt.Errorf("%q: %w", s, ErrDurationRange)
		}
		return time.Duration(v) * day, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration such as 8h, 30d or 2w", s)
	}
	return d, nil
}

// normDN compares DNs as directories write them, case and the space after
// a comma aside.
func normDN(dn string) string {
	return strings.ToLower(strings.ReplaceAll(strings.TrimSpace(dn), ", ", ","))
}

// adminGroupDN returns the group whose members sign in to the portal as
// admins through the connector (its admin_group_dn setting), or "".
func adminGroupDN(rec *configured.Record) string {
	var s struct {
		AdminGroupDN string `json:"admin_group_dn"`
	}
	if json.Unmarshal([]byte(rec.Settings), &s) != nil {
		return ""
	}
	return normDN(s.AdminGroupDN)
}

// adminGroupPolicy is the policy of a connector's admin group: being in
// it makes a portal admin.
func adminGroupPolicy() Policy {
	return Policy{Sensitivity: SensitivityPrivileged, Approval: ApprovalAdmin, Requestable: false}
}

// defaultPolicy is the policy of a new entitlement of rec.
func DefaultPolicy(rec *configured.Record, externalID string) Policy {
	if dn := adminGroupDN(rec); dn != "" && normDN(externalID) == dn {
		return adminGroupPolicy()
	}
	return Policy{Sensitivity: SensitivityNormal, Approval: ApprovalNone, Requestable: true}
}

// raiseAdminGroupTx gives the admin group of rec its policy, unless
// someone set the group's policy: the setting may have named the group
// after it was imported.
func RaiseAdminGroupTx(tx *gorm.DB, rec *configured.Record, now time.Time) error {
	dn := adminGroupDN(rec)
	if dn == "" {
		return nil
	}
	p := adminGroupPolicy()
	return tx.Model(&Entitlement{}).
		Where("connector_id = ? AND policy_updated_at IS NULL AND lower(replace(external_id, ', ', ',')) = ?", rec.ID, dn).
		Where("sensitivity <> ? OR approval <> ? OR requestable", p.Sensitivity, p.Approval).
		Updates(map[string]any{"sensitivity": p.Sensitivity, "approval": p.Approval, "requestable": false, "updated_at": now}).Error
}

// PolicyInput changes an entitlement's policy; nil fields keep their
// value. An owner id of "" removes the owner; setting one kind of owner
// removes the other.
type PolicyInput struct {
	OwnerIdentityID  *string `json:"owner_identity_id"`
	OwnerWorkgroupID *string `json:"owner_workgroup_id"`
	Sensitivity      *string `json:"sensitivity"`
	Approval         *string `json:"approval"`
	MaxDuration      *string `json:"max_duration"`
	Requestable      *bool   `json:"requestable"`
}

// SetPolicy changes an entitlement's policy and records the change in the
// audit trail.
func (s *Service) SetPolicy(ctx context.Context, id string, in PolicyInput, actor string) (*Entitlement, error) {
	var out *Entitlement
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		e, err := get[Entitlement](ctx, tx, id)
		if err != nil {
			return err
		}
		before := e.Policy
		p := e.Policy
		problems := FieldErrors{}
		owner := func(field string, v *string, dst **string, other **string, exists func(string) error) {
			if v == nil {
				return
			}
			if *v == "" {
				*dst = nil
				return
			}
			if err := exists(*v); err != nil {
				problems[field] = "no such " + strings.TrimSuffix(strings.TrimPrefix(field, "owner_"), "_id") + ": " + *v
				return
			}
			id := *v
			*dst, *other = &id, nil
		}
		if in.OwnerIdentityID != nil && in.OwnerWorkgroupID != nil && *in.OwnerIdentityID != "" && *in.OwnerWorkgroupID != "" {
			problems["owner_identity_id"] = "an entitlement has one owner: an identity or a workgroup"
		} else {
			owner("owner_identity_id", in.OwnerIdentityID, &p.OwnerIdentityID, &p.OwnerWorkgroupID, func(v string) error {
				_, err := get[Identity](ctx, tx, v)
				return err
			})
			owner("owner_workgroup_id", in.OwnerWorkgroupID, &p.OwnerWorkgroupID, &p.OwnerIdentityID, func(v string) error {
				_, err := get[Workgroup](ctx, tx, v)
				return err
			})
		}
		if in.Sensitivity != nil {
			switch *in.Sensitivity {
			case SensitivityNormal, SensitivityPrivileged:
				p.Sensitivity = *in.Sensitivity
			default:
				problems["sensitivity"] = "must be normal or privileged"
			}
		}
		if in.Approval != nil {
			if !contains(Approvals, *in.Approval) {
				problems["approval"] = "must be one of " + strings.Join(Approvals, ", ")
			} else {
				p.Approval = *in.Approval
			}
		}
		if in.MaxDuration != nil {
			v := strings.TrimSpace(*in.MaxDuration)
			if v != "" {
				if d, err := ParseDuration(v); err != nil && !errors.Is(err, ErrDurationRange) {
					problems["max_duration"] = err.Error()
				} else if err != nil || d < time.Minute || d > 366*24*time.Hour {
					problems["max_duration"] = "must be from 1 minute to 366 days, or empty"
				}
			}
			p.MaxDuration = v
		}
		if in.Requestable != nil {
			p.Requestable = *in.Requestable
		}
		if (p.Approval == ApprovalOwner || p.Approval == ApprovalOwnerThenAdmin) && p.OwnerIdentityID == nil && p.OwnerWorkgroupID == nil {
			problems["approval"] = "an owner approval needs an owner: set owner_identity_id or owner_workgroup_id"
		}
		if len(problems) > 0 {
			return problems
		}
		now := time.Now().UTC()
		p.PolicyUpdatedAt = &now
		if err := tx.Model(&Entitlement{}).Where("id = ?", e.ID).Updates(map[string]any{
			"owner_identity_id": p.OwnerIdentityID, "owner_workgroup_id": p.OwnerWorkgroupID, "sensitivity": p.Sensitivity,
			"approval": p.Approval, "max_duration": p.MaxDuration, "requestable": p.Requestable,
			"policy_updated_at": now, "updated_at": now}).Error; err != nil {
			return err
		}
		if err := audit.RecordTx(tx, actor, "entitlement.policy", "entitlement", e.ID, map[string]any{
			"name": e.Name, "from": policyDetails(before), "to": policyDetails(p)}); err != nil {
			return err
		}
		e.Policy, e.UpdatedAt = p, now
		out = e
		return nil
	})
	if err != nil {
		var fe FieldErrors
		if errors.As(err, &fe) || errors.Is(err, ErrNotFound) {
			return nil, err
		}
		return nil, fmt.Errorf("identities: set policy of %s: %w", id, err)
	}
	return out, nil
}

func policyDetails(p Policy) map[string]any {
	str := func(v *string) string {
		if v == nil {
			return ""
		}
		return *v
	}
	return map[string]any{"owner_identity_id": str(p.OwnerIdentityID), "owner_workgroup_id": str(p.OwnerWorkgroupID),
		"sensitivity": p.Sensitivity, "approval": p.Approval, "max_duration": p.MaxDuration, "requestable": p.Requestable}
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// SetManager makes managerID (or nobody, when empty) the manager of an
// identity, and records it in the audit trail. The manager is then one set
// by hand: an import leaves it until its directory states a manager for
// the identity (see Importer).
func (s *Service) SetManager(ctx context.Context, id, managerID, actor string) (*Identity, error) {
	by := map[string]any{"manager_source_connector_id": nil}
	return setRef(ctx, s.db, "identities", id, "manager_id", managerID, actor, "identity.manager", by, func(tx *gorm.DB) error {
		if managerID == id {
			return FieldErrors{"manager_id": "an identity is not its own manager"}
		}
		return nil
	}, func(tx *gorm.DB) (*Identity, error) { return get[Identity](ctx, tx, id) })
}

// DirectReports returns the identities whose manager is id, by username.
func (s *Service) DirectReports(ctx context.Context, id string) ([]Identity, error) {
	var out []Identity
	err := s.db.WithContext(ctx).Where("manager_id = ? AND status <> 'deleted'", id).Order("username").Find(&out).Error
	return out, err
}

// SetOwner makes ownerID (an identity, or nobody when empty) the owner of a
// workgroup, and records it in the audit trail.
func (s *Service) SetOwner(ctx context.Context, id, ownerID, actor string) (*Workgroup, error) {
	return setRef(ctx, s.db, "workgroups", id, "owner_id", ownerID, actor, "workgroup.owner", nil, nil,
		func(tx *gorm.DB) (*Workgroup, error) { return get[Workgroup](ctx, tx, id) })
}

// setRef sets a column that names an identity, and the columns of also.
func setRef[T any](ctx context.Context, db *gorm.DB, table, id, column, identityID, actor, action string, also map[string]any,
	check func(*gorm.DB) error, load func(*gorm.DB) (*T, error)) (*T, error) {
	var out *T
	err := db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if _, err := load(tx); err != nil {
			return err
		}
		var v any
		if identityID != "" {
			if _, err := get[Identity](ctx, tx, identityID); err != nil {
				return FieldErrors{column: "no identity with id " + identityID}
			}
			v = identityID
		}
		if check != nil {
			if err := check(tx); err != nil {
				return err
			}
		}
		updates := map[string]any{column: v, "updated_at": time.Now().UTC()}
		for k, v := range also {
			updates[k] = v
		}
		if err := tx.Table(table).Where("id = ?", id).Updates(updates).Error; err != nil {
			return err
		}
		if err := audit.RecordTx(tx, actor, action, strings.TrimSuffix(table, "s"), id, map[string]any{column: identityID}); err != nil {
			return err
		}
		var err error
		out, err = load(tx)
		return err
	})
	return out, err
}

// Reach limits a listing to the people a requester may ask for without a
// broader role: themselves, their direct reports, and the members of the
// workgroups they own. IdentityID is the requester's identity; with none,
// the listing is empty.
type Reach struct {
	IdentityID string
}

// reachIdentities narrows q (on identities) to r.
func reachIdentities(q *gorm.DB, r *Reach) *gorm.DB {
	if r == nil {
		return q
	}
	if r.IdentityID == "" {
		return q.Where("1 = 0")
	}
	return q.Where(`identities.id = ? OR identities.manager_id = ? OR identities.id IN (
		SELECT m.identity_id FROM workgroup_members m JOIN workgroups w ON w.id = m.workgroup_id WHERE w.owner_id = ?)`,
		r.IdentityID, r.IdentityID, r.IdentityID)
}

// reachWorkgroups narrows q (on workgroups) to the workgroups r owns.
func reachWorkgroups(q *gorm.DB, r *Reach) *gorm.DB {
	if r == nil {
		return q
	}
	if r.IdentityID == "" {
		return q.Where("1 = 0")
	}
	return q.Where("workgroups.owner_id = ?", r.IdentityID)
}

// RelationTx says why a requester may act for an identity: "self",
// "direct report", or "member of workgroup NAME, which you own"; "" when
// none of those holds. It reads in tx.
func (s *Service) RelationTx(ctx context.Context, tx *gorm.DB, requesterID, identityID string) (string, error) {
	if requesterID == "" {
		return "", nil
	}
	if requesterID == identityID {
		return "self", nil
	}
	p, err := get[Identity](ctx, tx, identityID)
	if err != nil {
		return "", err
	}
	if p.ManagerID != nil && *p.ManagerID == requesterID {
		return "direct report", nil
	}
	var names []string
	if err := tx.WithContext(ctx).Table("workgroups w").Select("w.name").
		Joins("JOIN workgroup_members m ON m.workgroup_id = w.id").
		Where("m.identity_id = ? AND w.owner_id = ?", identityID, requesterID).Order("w.name").Limit(1).
		Pluck("w.name", &names).Error; err != nil {
		return "", err
	}
	if len(names) > 0 {
		return "member of workgroup " + names[0] + ", which you own", nil
	}
	return "", nil
}
