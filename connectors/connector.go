// Package connectors defines how Provisor talks to a managed system (a
// directory or an app): the Connector interface every type implements and
// the capability interfaces a type implements as its system allows, the
// error kinds that decide whether a job retries or waits, the HTTP client
// base of REST connectors (RESTClient), and the registry of types.
//
// The types are "internal" (the built-in directory, package builtin),
// "ldap" and "ad" (package ldap) and "entra" (package entra); a program
// that embeds Provisor may register more. Every operation is idempotent:
// granting a membership that exists, or deleting an account that is gone,
// succeeds without change, so a job retried after a crash does no harm.
package connectors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"time"
)

// Operation is one thing a connector job does.
type Operation string

// The operations.
const (
	OpCreateAccount  Operation = "account.create"
	OpDeleteAccount  Operation = "account.delete"
	OpEnableAccount  Operation = "account.enable"
	OpDisableAccount Operation = "account.disable"
	OpGrant          Operation = "entitlement.grant"
	OpRevoke         Operation = "entitlement.revoke"
	// OpImport reads the system into the portal (a data import task's job);
	// the requests worker runs it through an importer, not through Do.
	OpImport Operation = "directory.import"
)

// Valid reports whether op is a known operation.
func (op Operation) Valid() bool {
	switch op {
	case OpCreateAccount, OpDeleteAccount, OpEnableAccount, OpDisableAccount, OpGrant, OpRevoke, OpImport:
		return true
	}
	return false
}

// Account identifies an account on a connector and carries its
// attributes. Every operation gets the external id when the portal knows
// it, and the attributes the portal has of the account's identity.
type Account struct {
	// Username is the account's name on the system (uid, sAMAccountName,
	// userName, or a user principal name).
	Username string `json:"username"`
	// ExternalID is the system's own key once known (a DN, an object id).
	ExternalID  string `json:"external_id,omitempty"`
	DisplayName string `json:"display_name,omitempty"`
	GivenName   string `json:"given_name,omitempty"`
	Surname     string `json:"surname,omitempty"`
	Email       string `json:"email,omitempty"`
	// Attributes are further attributes by name, for the connectors that
	// map them.
	Attributes map[string]string `json:"attributes,omitempty"`
}

// AttributeIdentityID is the Account attribute a create gets holding the
// portal's id of the account's identity (SCIM's externalId).
const AttributeIdentityID = "identity_id"

// Entitlement identifies a group or role on a connector.
type Entitlement struct {
	ExternalID string `json:"external_id"`
	Name       string `json:"name"`
	Kind       string `json:"kind"`
}

// Result says what an operation changed.
type Result struct {
	// Changed is false when the system already was as asked.
	Changed bool
	// ExternalID is the account's key on the system after a create.
	ExternalID string
	// Message is a short human account of what happened.
	Message string
	// RequestID is the system's id of the request that did it (a REST
	// system's request id header), for its administrators' logs.
	RequestID string
	// RateLimitWaits counts the times the system asked to slow down and
	// was waited for before the operation got its answer.
	RateLimitWaits int
	// Steps are what the operation did on the system (lookup, modify,
	// verify), with their timings, where the connector tells them.
	Steps []Step
	// Changes are the properties the operation changed, old and new,
	// where the connector knows them.
	Changes []PropertyChange
	// Warning says the operation ended but needs an admin's attention
	// (an import that waits for approval).
	Warning bool
}

// Step is one step of an operation on a system, as the provisioning log
// shows it.
type Step struct {
	Name     string        `json:"name"` // lookup, claim, modify, verify
	Detail   string        `json:"detail,omitempty"`
	Duration time.Duration `json:"duration_ns"`
	Failed   bool          `json:"failed,omitempty"`
}

// PropertyChange is one property an operation changed on a system.
type PropertyChange struct {
	Name string `json:"name"`
	Old  string `json:"old"`
	New  string `json:"new"`
}

// Timer records the steps of an operation as it goes: each call to Step
// ends the step begun at the previous call (or at the Timer's start).
type Timer struct {
	last  time.Time
	Steps []Step
}

// NewTimer starts timing an operation's steps.
func NewTimer() *Timer { return &Timer{last: time.Now()} }

// Step ends a step named name.
func (t *Timer) Step(name, detail string, err error) {
	now := time.Now()
	t.Steps = append(t.Steps, Step{Name: name, Detail: detail, Duration: now.Sub(t.last), Failed: err != nil})
	t.last = now
}

// Health is the outcome of a connection check.
type Health struct {
	OK      bool
	Message string
	Latency time.Duration
}

// ImportMode is a full or an incremental (delta) import.
type ImportMode string

// Import modes.
const (
	ImportFull  ImportMode = "full"
	ImportDelta ImportMode = "delta"
)

// ImportedAccount is an account read from the system.
type ImportedAccount struct {
	Account
	Locked       bool
	Entitlements []string // external ids
	// Correlation is the value that links the account to an identity (the
	// connector's correlation attribute); empty means the username.
	Correlation string
	// Manager is the external id (a DN) of the account's manager on the
	// same system, as the system states it; empty when it states none.
	// Read only from connectors that are ManagerReaders.
	Manager string
}

// ManagerReader is a connector whose imports state each account's manager
// (ImportedAccount.Manager). The importer then sets identities' managers
// from them; with other connectors it leaves managers alone.
type ManagerReader interface {
	// ReadsManagers is false when the connector is set not to read them.
	ReadsManagers() bool
}

// ImportSink receives what an import reads.
type ImportSink interface {
	Account(ctx context.Context, a ImportedAccount) error
	Entitlement(ctx context.Context, e Entitlement) error
	// Deleted reports an object gone from the system (delta imports).
	Deleted(ctx context.Context, externalID string) error
}

// MemberChangeSink is a DirectorySink that also takes changes of
// memberships, for systems that report those rather than whole member
// lists in a delta (Graph's members@delta).
type MemberChangeSink interface {
	DirectorySink
	// MemberChanges gives the members a group gained and lost since the
	// last delta import (account external ids).
	MemberChanges(ctx context.Context, entitlementExternalID string, added, removed []string) error
}

// Noter is an ImportSink that keeps what a connector says about an import
// as a whole, such as a delta that had to become a full import.
type Noter interface {
	Note(msg string)
}

// DirectorySink is an ImportSink that also takes what directories report
// their own way. Connectors use it when the sink offers it.
type DirectorySink interface {
	ImportSink
	// Members gives a group's complete member list (account external ids):
	// in LDAP and Active Directory memberships live on the group.
	Members(ctx context.Context, entitlementExternalID string, memberExternalIDs []string) error
	// Present lists every object still on the system (external ids) in a
	// delta import, when the system cannot report deletions itself: what the
	// portal knows and is not listed was deleted. Called once per import.
	Present(ctx context.Context, externalIDs []string) error
}

// Connector is one configured connection to a managed system. It only
// names its jobs; what it can do is the capability interfaces it implements
// (AccountManager, EntitlementManager, Batcher, Importer, Authenticator,
// HealthChecker and the small ones beside them), each as its system
// supports. The portal and the wizard offer only what a connector can do
// (Supports).
type Connector interface {
	// Kind names the job kind of an operation as an admin reads it, such as
	// "AD AddToGroup" or "Account.Disable". For OpImport it returns the stem
	// ("Import") that the mode completes ("Import.Full"); a connector that
	// returns "" for OpImport takes no data import requests.
	Kind(op Operation) string
}

// EntitlementKinder is a connector whose grants and revokes are named by
// the kind of entitlement, such as "EntraID AssignRole" for a role and
// "EntraID AddToGroup" for a group.
type EntitlementKinder interface {
	KindOf(op Operation, e Entitlement) string
}

// EntitlementKindLister is a connector whose entitlements are of other
// kinds than group and role (Entra ID: group, directory_role, app_role).
type EntitlementKindLister interface {
	EntitlementKinds() []string
}

// AccountManager is a connector that manages the lifecycle of accounts.
// Operations address the account by Account.ExternalID when the portal
// knows it, else by Account.Username.
type AccountManager interface {
	CreateAccount(ctx context.Context, a Account) (Result, error)
	DeleteAccount(ctx context.Context, a Account) (Result, error)
	EnableAccount(ctx context.Context, a Account) (Result, error)
	DisableAccount(ctx context.Context, a Account) (Result, error)
}

// EntitlementManager is a connector that grants and revokes entitlements.
type EntitlementManager interface {
	Grant(ctx context.Context, a Account, e Entitlement) (Result, error)
	Revoke(ctx context.Context, a Account, e Entitlement) (Result, error)
}

// Importer is a connector whose accounts and entitlements can be read into
// the portal.
type Importer interface {
	// Import reads accounts and entitlements into sink. A delta import
	// starts from cookie (empty means from the beginning) and returns the
	// cookie to start the next one from.
	Import(ctx context.Context, mode ImportMode, cookie string, sink ImportSink) (string, error)
}

// HealthChecker is a connector whose connection can be tested.
type HealthChecker interface {
	// Check tests the connection.
	Check(ctx context.Context) Health
}

// DeletionThresholder is an Importer that sets its own deletion threshold:
// the share of accounts (percent) an import may delete or lock without an
// admin's approval.
type DeletionThresholder interface {
	DeletionThreshold() float64
}

// GroupCreator is implemented by connectors that can create an entitlement
// on their system, such as the built-in directory.
type GroupCreator interface {
	CreateGroup(ctx context.Context, e Entitlement, description string) error
}

// SignInUser is a person a connector accepted the password of.
type SignInUser struct {
	DN          string
	Username    string
	DisplayName string
	Email       string
	IsAdmin     bool
}

// Sign-in answers that are not failures of the system.
var (
	// ErrLoginDisabled says the connector is not set to sign people in.
	ErrLoginDisabled = errors.New("sign-in with this directory is not enabled")
	// ErrInvalidCredentials says the username or the password is wrong.
	ErrInvalidCredentials = errors.New("invalid username or password")
)

// Authenticator is a connector people can sign in to the portal with.
type Authenticator interface {
	// Authenticate checks a username and password. It returns
	// ErrLoginDisabled or ErrInvalidCredentials (possibly wrapped) when the
	// connector does not accept them, and other errors when the system
	// cannot be asked.
	Authenticate(ctx context.Context, username, password string) (*SignInUser, error)
}

// Supports reports whether c can run op.
func Supports(c Connector, op Operation) bool {
	switch op {
	case OpCreateAccount, OpDeleteAccount, OpEnableAccount, OpDisableAccount:
		_, ok := c.(AccountManager)
		return ok
	case OpGrant, OpRevoke:
		_, ok := c.(EntitlementManager)
		return ok
	case OpImport:
		_, ok := c.(Importer)
		return ok && c.Kind(OpImport) != ""
	}
	return false
}

// Capabilities lists the operations c can run, in a fixed order.
func Capabilities(c Connector) []Operation {
	var out []Operation
	for _, op := range []Operation{OpCreateAccount, OpDeleteAccount, OpEnableAccount, OpDisableAccount, OpGrant, OpRevoke, OpImport} {
		if Supports(c, op) {
			out = append(out, op)
		}
	}
	return out
}

// Feature is one thing a connector can do, as the connector pages list it.
type Feature struct {
	Name   string // accounts, entitlements, batches, import, sign-in, health, create-groups
	Label  string
	Detail string
}

// Features lists what c can do, from the capability interfaces it
// implements (and Capabilities), in a fixed order.
func Features(c Connector) []Feature {
	var out []Feature
	has := map[Operation]bool{}
	for _, op := range Capabilities(c) {
		has[op] = true
	}
	if has[OpCreateAccount] {
		out = append(out, Feature{"accounts", "Accounts", "create, delete, enable and disable accounts"})
	}
	if has[OpGrant] {
		out = append(out, Feature{"entitlements", "Entitlements", "grant and revoke entitlements"})
	}
	if _, ok := c.(Batcher); ok {
		out = append(out, Feature{"batches", "Batches", "many memberships in one request"})
	}
	if _, ok := c.(GroupCreator); ok {
		out = append(out, Feature{"create-groups", "New entitlements", "creates an entitlement added in the portal on the system"})
	}
	if has[OpImport] {
		out = append(out, Feature{"import", "Import", "full and delta imports of accounts, entitlements and memberships"})
	}
	if _, ok := c.(Authenticator); ok {
		out = append(out, Feature{"sign-in", "Sign-in", "people may sign in to the portal with it, when set to"})
	}
	if _, ok := c.(HealthChecker); ok {
		out = append(out, Feature{"health", "Health", "Test connection checks the system"})
	}
	return out
}

// CheckHealth tests c's connection; a connector without one to test is
// healthy.
func CheckHealth(ctx context.Context, c Connector) Health {
	if h, ok := c.(HealthChecker); ok {
		return h.Check(ctx)
	}
	return Health{OK: true, Message: "this connector has no connection to test"}
}

// Membership is an account and an entitlement it is to get or lose.
type Membership struct {
	Account     Account
	Entitlement Entitlement
}

// Batcher is implemented by connectors that grant or revoke several
// memberships in one request: several entitlements of one account, or one
// entitlement of several accounts. Each membership gets the result or the
// error it would have got alone: results[i] and errs[i] are those of ms[i].
type Batcher interface {
	GrantAll(ctx context.Context, ms []Membership) (results []Result, errs []error)
	RevokeAll(ctx context.Context, ms []Membership) (results []Result, errs []error)
}

// DoAll runs op (a grant or a revoke) for each of ms on c: in one request
// when c is a Batcher, else one by one.
func DoAll(ctx context.Context, c Connector, op Operation, ms []Membership) ([]Result, []error) {
	if b, ok := c.(Batcher); ok {
		switch op {
		case OpGrant:
			return b.GrantAll(ctx, ms)
		case OpRevoke:
			return b.RevokeAll(ctx, ms)
		}
	}
	return OneByOne(ctx, ms, func(ctx context.Context, a Account, e Entitlement) (Result, error) { return Do(ctx, c, op, a, e) })
}

// ReportFunc is told the result of ms[i] of a batch as soon as it is
// known, once for each membership; it may be called from several
// goroutines at once.
type ReportFunc func(i int, r Result, err error)

// Reporter is a Batcher whose batches take many requests (one for each
// membership, several at a time): it tells of each membership's result as
// soon as it has it, so that the results are recorded while the rest of
// the batch runs. GrantEach and RevokeEach return once every membership is
// reported.
type Reporter interface {
	GrantEach(ctx context.Context, ms []Membership, report ReportFunc)
	RevokeEach(ctx context.Context, ms []Membership, report ReportFunc)
}

// DoEach is DoAll that reports each result through report: as it comes when
// c is a Reporter, else all of them at the end.
func DoEach(ctx context.Context, c Connector, op Operation, ms []Membership, report ReportFunc) {
	if rp, ok := c.(Reporter); ok {
		switch op {
		case OpGrant:
			rp.GrantEach(ctx, ms, report)
			return
		case OpRevoke:
			rp.RevokeEach(ctx, ms, report)
			return
		}
	}
	results, errs := DoAll(ctx, c, op, ms)
	for i := range ms {
		report(i, results[i], errs[i])
	}
}

// OneByOne runs op for each membership on its own.
func OneByOne(ctx context.Context, ms []Membership, op func(context.Context, Account, Entitlement) (Result, error)) ([]Result, []error) {
	results, errs := make([]Result, len(ms)), make([]error, len(ms))
	for i, m := range ms {
		results[i], errs[i] = op(ctx, m.Account, m.Entitlement)
	}
	return results, errs
}

// Do runs op on c. An operation c cannot run fails permanently.
func Do(ctx context.Context, c Connector, op Operation, a Account, e Entitlement) (Result, error) {
	if op == OpImport {
		return Result{}, Permanent(fmt.Errorf("operation %q runs through an importer", op))
	}
	if !op.Valid() {
		return Result{}, Permanent(fmt.Errorf("unknown operation %q", op))
	}
	if !Supports(c, op) {
		return Result{}, Permanent(fmt.Errorf("this connector cannot run %s", op))
	}
	switch op {
	case OpCreateAccount:
		return c.(AccountManager).CreateAccount(ctx, a)
	case OpDeleteAccount:
		return c.(AccountManager).DeleteAccount(ctx, a)
	case OpEnableAccount:
		return c.(AccountManager).EnableAccount(ctx, a)
	case OpDisableAccount:
		return c.(AccountManager).DisableAccount(ctx, a)
	case OpGrant:
		return c.(EntitlementManager).Grant(ctx, a, e)
	default:
		return c.(EntitlementManager).Revoke(ctx, a, e)
	}
}

// Config is what a factory needs to build a connector.
type Config struct {
	ID       string
	Name     string
	Settings json.RawMessage
	Secrets  map[string]string
}

// Type describes a connector type.
type Type struct {
	Name string
	// Label is what people read, such as "Built-in directory".
	Label string
	// New builds a connector from its configuration.
	New func(cfg Config) (Connector, error)
	// ValidateSettings checks settings and secrets before they are saved and
	// returns one message per field in error.
	ValidateSettings func(settings json.RawMessage, secrets map[string]string) map[string]string
	// SecretBound, when set, names the settings the stored secrets are
	// bound to (see SecretBinding).
	SecretBound *SecretBinding
	// Fields describe the settings for the portal's form (see FieldsOf);
	// a type without them is configured with its settings' JSON alone.
	Fields []Field
}

// SecretBinding names the settings that decide where a connector's secrets
// are sent and how the server receiving them is recognised: its address,
// its TLS settings, the account the secrets belong to. A stored secret was
// entered for those values; whoever may change settings must not be able
// to point the connector at a server of their own and have the stored
// secret sent there. So a change of one of these settings is accepted only
// with every stored secret entered again.
type SecretBinding struct {
	// Settings are the settings' JSON names, such as "urls".
	Settings []string
	// Labels name the secrets as people read them, such as "the bind
	// password" for "bind_password"; a secret without a label is named by
	// its key.
	Labels map[string]string
	// Reason says in a few words what a change of Settings means, such as
	// "the connector's server or bind DN changed".
	Reason string
}

// Changed returns the names of the bound settings whose values differ
// between the settings old and new (JSON objects), in the order of
// b.Settings. A setting left out and one set to its zero value (false, "",
// 0, [], {}, null) are the same. Settings that are not a JSON object are
// left to the type's validation, and nothing is reported for them.
func (b *SecretBinding) Changed(old, new json.RawMessage) []string {
	var before, after map[string]any
	_ = json.Unmarshal(old, &before) // stored settings were valid when saved
	if len(new) > 0 {
		if err := json.Unmarshal(new, &after); err != nil {
			return nil
		}
	}
	var out []string
	for _, name := range b.Settings {
		x, y := before[name], after[name]
		if isZero(x) && isZero(y) {
			continue
		}
		if !reflect.DeepEqual(x, y) {
			out = append(out, name)
		}
	}
	return out
}

func isZero(v any) bool {
	switch v := v.(type) {
	case nil:
		return true
	case bool:
		return !v
	case string:
		return v == ""
	case float64:
		return v == 0
	case []any:
		return len(v) == 0
	case map[string]any:
		return len(v) == 0
	}
	return false
}

// Registry holds the connector types a process knows.
type Registry struct {
	types map[string]Type
}

// NewRegistry returns a registry of the given types.
func NewRegistry(types ...Type) *Registry {
	r := &Registry{types: map[string]Type{}}
	for _, t := range types {
		r.types[t.Name] = t
	}
	return r
}

// Lookup returns the type called name.
func (r *Registry) Lookup(name string) (Type, bool) {
	t, ok := r.types[name]
	return t, ok
}

// Names lists the registered type names in order.
func (r *Registry) Names() []string {
	out := make([]string, 0, len(r.types))
	for n := range r.types {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}
