// Package requests turns what a requester asks for into work: a Request is
// validated, started as a request instance and expanded into connector jobs,
// which run on the durable queue; the instance's status rolls up from its
// jobs. Admins steer runs here too: cancel, retry and Force End.
package requests

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/provisor/provisor/connectors"
	"github.com/provisor/provisor/identities"
	"github.com/provisor/provisor/input"
)

// Type is what a request asks for.
type Type string

// The request types.
const (
	CreateAccount      Type = "create_account"
	DeleteAccount      Type = "delete_account"
	AddEntitlements    Type = "add_entitlements"
	RemoveEntitlements Type = "remove_entitlements"
	LockAccount        Type = "lock_account"
	UnlockAccount      Type = "unlock_account"
	// DataImport reads a directory into the portal (a connector job with
	// operation directory.import); its beneficiary is the connector.
	DataImport Type = "data_import"
)

// Types lists the request types in the order a wizard offers them.
// DataImport is not among them: the Data Import tasks of directory
// connectors make those requests.
var Types = []Type{CreateAccount, AddEntitlements, RemoveEntitlements, LockAccount, UnlockAccount, DeleteAccount}

// Label is the type as people read it.
func (t Type) Label() string {
	switch t {
	case CreateAccount:
		return "Create account"
	case DeleteAccount:
		return "Delete account"
	case AddEntitlements:
		return "Add entitlements"
	case RemoveEntitlements:
		return "Remove entitlements"
	case LockAccount:
		return "Lock account"
	case UnlockAccount:
		return "Unlock account"
	case DataImport:
		return "Data import"
	}
	return string(t)
}

func (t Type) valid() bool {
	if t == DataImport {
		return true
	}
	for _, k := range Types {
		if k == t {
			return true
		}
	}
	return false
}

// Priority orders work on the queue.
type Priority string

// Priorities, lowest first.
const (
	Low      Priority = "low"
	Normal   Priority = "normal"
	High     Priority = "high"
	Critical Priority = "critical"
)

// queuePriority maps a priority to the queue's (1 runs first).
func (p Priority) queuePriority() int {
	switch p {
	case Critical:
		return 1
	case High:
		return 2
	case Low:
		return 4
	}
	return 3
}

// Beneficiary types.
const (
	BeneficiaryIdentity  = "identity"
	BeneficiaryWorkgroup = "workgroup"
	// BeneficiaryConnector is the beneficiary of a data import: the
	// connector it reads.
	BeneficiaryConnector = "connector"
)

// Request is what a wizard, an API call or a task produces.
type Request struct {
	Type            Type     `json:"type"`
	BeneficiaryType string   `json:"beneficiary_type"`
	BeneficiaryID   string   `json:"beneficiary_id"`
	ConnectorID     string   `json:"connector_id"`
	Entitlements    []string `json:"entitlements,omitempty"`
	Justification   string   `json:"justification"`
	Priority        Priority `json:"priority"`
	// Duration makes access time-bound ("8h", "30d"): revocation jobs are
	// scheduled at the expiry. Only for create_account and add_entitlements.
	Duration string `json:"duration,omitempty"`
	// ImportMode is full or delta; only for data_import.
	ImportMode string `json:"import_mode,omitempty"`
}

// FieldError names a field and what is wrong with it.
type FieldError = input.FieldError

// ValidationError lists every problem of a request (a field may have
// several). It is an input.Invalid.
type ValidationError struct {
	Fields []FieldError
}

// FieldList returns the problems in the order they were found (the checks
// of a request sort them by field).
func (e *ValidationError) FieldList() []FieldError { return e.Fields }

func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		parts[i] = f.Field + ": " + f.Message
	}
	return "invalid request: " + strings.Join(parts, "; ")
}

// FieldMap returns the problems of a validation error by field, and nil
// for any other error.
func FieldMap(err error) map[string]string {
	var ve *ValidationError
	if !errors.As(err, &ve) {
		return nil
	}
	out := make(map[string]string, len(ve.Fields))
	for _, f := range ve.Fields {
		out[f.Field] = f.Message
	}
	return out
}

func (e *ValidationError) add(field, format string, a ...any) {
	e.Fields = append(e.Fields, FieldError{Field: field, Message: fmt.Sprintf(format, a...)})
}

func (e *ValidationError) orNil() error {
	if len(e.Fields) == 0 {
		return nil
	}
	sort.SliceStable(e.Fields, func(i, j int) bool { return e.Fields[i].Field < e.Fields[j].Field })
	return e
}

// MaxDuration bounds time-bound access.
const MaxDuration = 366 * 24 * time.Hour

// ParseDuration reads "90m", "8h", "30d" or "2w".
func ParseDuration(s string) (time.Duration, error) { return identities.ParseDuration(s) }

// checkShape validates what can be checked without the database and
// normalizes the request (trims, defaults the priority).
func (r *Request) checkShape() *ValidationError {
	v := &ValidationError{}
	r.Justification = strings.TrimSpace(r.Justification)
	r.BeneficiaryType = strings.TrimSpace(r.BeneficiaryType)
	r.Duration = strings.TrimSpace(r.Duration)
	if r.Priority == "" {
		r.Priority = Normal
	}
	if !r.Type.valid() {
		names := make([]string, len(Types), len(Types)+1)
		for i, t := range Types {
			names[i] = string(t)
		}
		names = append(names, string(DataImport))
		v.add("type", "must be one of %s", strings.Join(names, ", "))
	}
	if r.Type == DataImport {
		r.checkImport(v)
	} else {
		switch r.BeneficiaryType {
		case BeneficiaryIdentity, BeneficiaryWorkgroup:
		default:
			v.add("beneficiary_type", "must be identity or workgroup")
		}
		if r.BeneficiaryID == "" {
			v.add("beneficiary_id", "required")
		}
		if r.ImportMode != "" {
			v.add("import_mode", "only data_import requests take an import mode")
		}
	}
	if r.ConnectorID == "" {
		v.add("connector_id", "required")
	}
	switch r.Priority {
	case Low, Normal, High, Critical:
	default:
		v.add("priority", "must be low, normal, high or critical")
	}
	if r.Justification == "" && r.Type != DataImport {
		v.add("justification", "required: say why this access is needed")
	} else if p := input.Text(r.Justification, 2000); p != "" {
		v.add("justification", "%s", p)
	}
	needsEnt := r.Type == AddEntitlements || r.Type == RemoveEntitlements
	if needsEnt && len(r.Entitlements) == 0 {
		v.add("entitlements", "choose at least one entitlement")
	}
	if len(r.Entitlements) > 0 && !needsEnt && r.Type != CreateAccount && r.Type.valid() {
		v.add("entitlements", "a %s request takes no entitlements", r.Type)
	}
	if len(r.Entitlements) > 200 {
		v.add("entitlements", "at most 200 per request")
	}
	seen := map[string]bool{}
	for i, e := range r.Entitlements {
		if seen[e] {
			v.add(fmt.Sprintf("entitlements[%d]", i), "listed twice")
		}
		seen[e] = true
	}
	if r.Duration != "" {
		if r.Type != CreateAccount && r.Type != AddEntitlements {
			v.add("duration", "only create_account and add_entitlements requests can be time-bound")
		} else if d, err := ParseDuration(r.Duration); err != nil && !errors.Is(err, identities.ErrDurationRange) {
			v.add("duration", "%v", err)
		} else if err != nil || d < time.Minute || d > MaxDuration {
			v.add("duration", "must be from 1 minute to 366 days")
		}
	}
	return v
}

// jobSpec is one connector job an expansion produces, before it is stored.
type jobSpec struct {
	op          connectors.Operation
	identityID  string
	username    string
	entitlement *entitlementRef
	dependsOn   int // index into the spec list, or -1
	revocation  bool
	runAt       *time.Time
	// set numbers the job sets: one beneficiary's jobs of a run, and
	// apart from them its revocations, each set run in order from one
	// queue entry.
	set int
}

type entitlementRef struct {
	ID, ExternalID, Name, Kind string
}

// beneficiary is one identity a request applies to.
type beneficiary struct {
	IdentityID string
	Username   string
	// HasAccount: the portal knows an account of the beneficiary on the
	// connector (not deleted) from before the run.
	HasAccount bool
}

// setSize bounds the jobs of a set made of one entitlement's grants (or
// revokes) to the members of a workgroup: several sets of one run run side
// by side, and each goes to a connector that takes batches in one request.
const setSize = 250

// expand turns a validated request into ordered job specs: per identity, the
// account is created before the grants that need it; time-bound access adds
// revocations at the expiry. An identity's jobs form one set and its
// revocations another; but when a workgroup gets or loses entitlements of
// accounts it has, and it has more members than there are entitlements,
// the sets are per entitlement, of up to setSize members each, since a
// directory changes one group for many members in one request.
func expand(r *Request, people []beneficiary, ents []entitlementRef, expiresAt *time.Time) []jobSpec {
	var out []jobSpec
	byEntitlement := (r.Type == AddEntitlements || r.Type == RemoveEntitlements) && len(people) > max(len(ents), 1)
	chunks := (len(people) + setSize - 1) / setSize
	entIndex := make(map[string]int, len(ents))
	for k := range ents {
		entIndex[ents[k].ID] = k
	}
	setOf := func(i int, e *entitlementRef) int {
		if !byEntitlement || e == nil {
			return 2 * i
		}
		return 2 * (len(people) + entIndex[e.ID]*chunks + i/setSize)
	}
	for i, p := range people {
		add := func(op connectors.Operation, e *entitlementRef, dependsOn int) int {
			out = append(out, jobSpec{op: op, identityID: p.IdentityID, username: p.Username, entitlement: e, dependsOn: dependsOn, set: setOf(i, e)})
			return len(out) - 1
		}
		revoke := func(op connectors.Operation, e *entitlementRef) {
			out = append(out, jobSpec{op: op, identityID: p.IdentityID, username: p.Username, entitlement: e, dependsOn: -1,
				revocation: true, runAt: expiresAt, set: setOf(i, e) + 1})
		}
		switch r.Type {
		case CreateAccount:
			create := add(connectors.OpCreateAccount, nil, -1)
			for i := range ents {
				add(connectors.OpGrant, &ents[i], create)
			}
			switch {
			case expiresAt == nil:
			case p.HasAccount:
				// The account was there before: the end of the access
				// takes back what the run granted, not the account.
				for i := range ents {
					revoke(connectors.OpRevoke, &ents[i])
				}
			default:
				revoke(connectors.OpDeleteAccount, nil)
			}
		case DeleteAccount:
			add(connectors.OpDeleteAccount, nil, -1)
		case AddEntitlements:
			for i := range ents {
				add(connectors.OpGrant, &ents[i], -1)
			}
			if expiresAt != nil {
				for i := range ents {
					revoke(connectors.OpRevoke, &ents[i])
				}
			}
		case RemoveEntitlements:
			for i := range ents {
				add(connectors.OpRevoke, &ents[i], -1)
			}
		case LockAccount:
			add(connectors.OpDisableAccount, nil, -1)
		case UnlockAccount:
			add(connectors.OpEnableAccount, nil, -1)
		case DataImport:
			add(connectors.OpImport, nil, -1)
		}
	}
	return out
}
