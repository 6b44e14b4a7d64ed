// Package builtin is the built-in directory connector (type "internal"):
// accounts and groups kept in Provisor's own database (through a Store:
// package builtinstore is the one on the database). It supports every
// operation and needs no settings, which makes it the connector of the demo
// data and of the benchmarks.
package builtin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/provisor/provisor/connectors"
)

// TypeName is the connector type of the built-in directory.
const TypeName = "internal"

// Store keeps the accounts, groups and memberships of the built-in
// directories, each directory (dir, its connector id) apart. Package
// builtinstore keeps them in Provisor's database.
type Store interface {
	// CreateAccount inserts a unless it exists, and says whether it did.
	CreateAccount(ctx context.Context, dir string, a Account) (bool, error)
	// DeleteAccount deletes the account and its memberships, and says
	// whether there was one.
	DeleteAccount(ctx context.Context, dir, username string) (bool, error)
	// SetLocked locks or unlocks the account, and says whether it changed.
	SetLocked(ctx context.Context, dir, username string, locked bool) (bool, error)
	HasAccount(ctx context.Context, dir, username string) (bool, error)
	HasGroup(ctx context.Context, dir, name string) (bool, error)
	// AddMember and RemoveMember say whether the membership changed.
	AddMember(ctx context.Context, dir string, m Member) (bool, error)
	RemoveMember(ctx context.Context, dir string, m Member) (bool, error)
	// AddMembers and RemoveMembers change many memberships at once and
	// return those that changed.
	AddMembers(ctx context.Context, dir string, ms []Member) ([]Member, error)
	RemoveMembers(ctx context.Context, dir string, ms []Member) ([]Member, error)
	// GroupsNamed returns those of names that are groups.
	GroupsNamed(ctx context.Context, dir string, names []string) ([]string, error)
	CountAccounts(ctx context.Context, dir string) (int64, error)
	// CreateGroup adds g unless it exists.
	CreateGroup(ctx context.Context, dir string, g Group) error
	// Groups, Accounts and Members list a directory's content, groups by
	// name and accounts by username.
	Groups(ctx context.Context, dir string) ([]Group, error)
	Accounts(ctx context.Context, dir string) ([]Account, error)
	Members(ctx context.Context, dir string) ([]Member, error)
}

// Account is an account of a built-in directory.
type Account struct {
	Username, DisplayName, Email string
	Locked                       bool
}

// Group is a group of a built-in directory.
type Group struct {
	Name, Kind, Description string
}

// Member is a membership of a built-in directory.
type Member struct{ GroupName, Username string }

// Type returns the connector type whose directories store keeps.
func Type(store Store) connectors.Type {
	return connectors.Type{
		Name:  TypeName,
		Label: "Built-in directory",
		New: func(cfg connectors.Config) (connectors.Connector, error) {
			if cfg.ID == "" {
				return nil, errors.New("builtin: connector id is required")
			}
			return &Directory{store: store, connectorID: cfg.ID}, nil
		},
		ValidateSettings: func(settings json.RawMessage, secrets map[string]string) map[string]string {
			problems := map[string]string{}
			var m map[string]any
			if len(settings) > 0 {
				if err := json.Unmarshal(settings, &m); err != nil {
					problems["settings"] = "must be a JSON object"
				}
			}
			for k := range m {
				problems["settings."+k] = "the built-in directory has no setting called " + k
			}
			for k := range secrets {
				problems["secrets."+k] = "the built-in directory has no secrets"
			}
			return problems
		},
	}
}

// Directory is one built-in directory.
type Directory struct {
	store       Store
	connectorID string
}

var kinds = map[connectors.Operation]string{
	connectors.OpCreateAccount:  "Directory.CreateAccount",
	connectors.OpDeleteAccount:  "Directory.DeleteAccount",
	connectors.OpEnableAccount:  "Account.Enable",
	connectors.OpDisableAccount: "Account.Disable",
	connectors.OpGrant:          "Directory.AddToGroup",
	connectors.OpRevoke:         "Directory.RemoveFromGroup",
}

// Kind names the job kind of op.
func (d *Directory) Kind(op connectors.Operation) string { return kinds[op] }

// CreateAccount creates the account, or correlates to an existing one.
func (d *Directory) CreateAccount(ctx context.Context, a connectors.Account) (connectors.Result, error) {
	if strings.TrimSpace(a.Username) == "" {
		return connectors.Result{}, connectors.Permanent(errors.New("username is empty"))
	}
	t := connectors.NewTimer()
	created, err := d.store.CreateAccount(ctx, d.connectorID, Account{Username: a.Username, DisplayName: a.DisplayName, Email: a.Email})
	if err != nil {
		return connectors.Result{}, connectors.Transient(err)
	}
	t.Step("modify", "insert the account unless it exists", nil)
	if !created {
		return connectors.Result{ExternalID: a.Username, Message: "account " + a.Username + " already exists", Steps: t.Steps}, nil
	}
	return connectors.Result{Changed: true, ExternalID: a.Username, Message: "account " + a.Username + " created", Steps: t.Steps,
		Changes: []connectors.PropertyChange{{Name: "username", New: a.Username}, {Name: "display_name", New: a.DisplayName},
			{Name: "email", New: a.Email}}}, nil
}

// DeleteAccount deletes the account and its memberships; a missing account is no error.
func (d *Directory) DeleteAccount(ctx context.Context, a connectors.Account) (connectors.Result, error) {
	changed, err := d.store.DeleteAccount(ctx, d.connectorID, a.Username)
	if err != nil {
		return connectors.Result{}, connectors.Transient(err)
	}
	if !changed {
		return connectors.Result{Message: "account " + a.Username + " does not exist"}, nil
	}
	return connectors.Result{Changed: true, Message: "account " + a.Username + " deleted"}, nil
}

// EnableAccount unlocks the account.
func (d *Directory) EnableAccount(ctx context.Context, a connectors.Account) (connectors.Result, error) {
	return d.setLocked(ctx, a, false)
}

// DisableAccount locks the account.
func (d *Directory) DisableAccount(ctx context.Context, a connectors.Account) (connectors.Result, error) {
	return d.setLocked(ctx, a, true)
}

func (d *Directory) setLocked(ctx context.Context, a connectors.Account, locked bool) (connectors.Result, error) {
	word := map[bool]string{true: "locked", false: "unlocked"}[locked]
	t := connectors.NewTimer()
	changed, err := d.store.SetLocked(ctx, d.connectorID, a.Username, locked)
	if err != nil {
		return connectors.Result{}, connectors.Transient(err)
	}
	t.Step("modify", "set locked to "+strconv.FormatBool(locked), nil)
	if changed {
		return connectors.Result{Changed: true, Message: "account " + a.Username + " " + word, Steps: t.Steps,
			Changes: []connectors.PropertyChange{{Name: "locked", Old: strconv.FormatBool(!locked), New: strconv.FormatBool(locked)}}}, nil
	}
	err = d.accountExists(ctx, a.Username)
	t.Step("lookup", "find the account "+a.Username, err)
	if err != nil {
		return connectors.Result{Steps: t.Steps}, err
	}
	return connectors.Result{Message: "account " + a.Username + " was already " + word, Steps: t.Steps}, nil
}

func (d *Directory) accountExists(ctx context.Context, username string) error {
	ok, err := d.store.HasAccount(ctx, d.connectorID, username)
	if err != nil {
		return connectors.Transient(err)
	}
	if !ok {
		return connectors.Permanent(fmt.Errorf("no such account: %s", username))
	}
	return nil
}

func (d *Directory) groupExists(ctx context.Context, name string) error {
	ok, err := d.store.HasGroup(ctx, d.connectorID, name)
	if err != nil {
		return connectors.Transient(err)
	}
	if !ok {
		return connectors.Permanent(fmt.Errorf("no such group: %s", name))
	}
	return nil
}

// Grant adds the account to the group; an existing membership is no error.
func (d *Directory) Grant(ctx context.Context, a connectors.Account, e connectors.Entitlement) (connectors.Result, error) {
	t := connectors.NewTimer()
	added, err := d.store.AddMember(ctx, d.connectorID, Member{GroupName: e.ExternalID, Username: a.Username})
	if err != nil {
		// A foreign key names a missing account or group: say which.
		t.Step("modify", "add the membership", err)
		if err := d.accountExists(ctx, a.Username); err != nil {
			t.Step("lookup", "find the account "+a.Username, err)
			return connectors.Result{Steps: t.Steps}, err
		}
		if err := d.groupExists(ctx, e.ExternalID); err != nil {
			t.Step("lookup", "find the group "+e.ExternalID, err)
			return connectors.Result{Steps: t.Steps}, err
		}
		return connectors.Result{Steps: t.Steps}, connectors.Transient(err)
	}
	t.Step("modify", "add the membership unless it exists", nil)
	if !added {
		return connectors.Result{Message: a.Username + " was already a member of " + e.ExternalID, Steps: t.Steps}, nil
	}
	return connectors.Result{Changed: true, Message: a.Username + " added to " + e.ExternalID, Steps: t.Steps,
		Changes: []connectors.PropertyChange{{Name: "member of " + e.ExternalID, Old: "false", New: "true"}}}, nil
}

// Revoke removes the account from the group; an absent membership is no error.
func (d *Directory) Revoke(ctx context.Context, a connectors.Account, e connectors.Entitlement) (connectors.Result, error) {
	t := connectors.NewTimer()
	removed, err := d.store.RemoveMember(ctx, d.connectorID, Member{GroupName: e.ExternalID, Username: a.Username})
	if err != nil {
		return connectors.Result{}, connectors.Transient(err)
	}
	if !removed {
		t.Step("modify", "remove the membership", nil)
		err := d.groupExists(ctx, e.ExternalID)
		t.Step("lookup", "find the group "+e.ExternalID, err)
		if err != nil {
			return connectors.Result{Steps: t.Steps}, err
		}
		return connectors.Result{Message: a.Username + " was not a member of " + e.ExternalID, Steps: t.Steps}, nil
	}
	t.Step("modify", "remove the membership", nil)
	return connectors.Result{Changed: true, Message: a.Username + " removed from " + e.ExternalID, Steps: t.Steps,
		Changes: []connectors.PropertyChange{{Name: "member of " + e.ExternalID, Old: "true", New: "false"}}}, nil
}

// GrantAll adds the memberships in one statement; a membership that exists
// is no error. When the statement fails (a missing account or group), each
// is granted alone, to say which.
func (d *Directory) GrantAll(ctx context.Context, ms []connectors.Membership) ([]connectors.Result, []error) {
	added, err := d.store.AddMembers(ctx, d.connectorID, membersOf(ms))
	if err != nil {
		return connectors.OneByOne(ctx, ms, d.Grant)
	}
	isNew := setOf(added)
	results, errs := make([]connectors.Result, len(ms)), make([]error, len(ms))
	for i, m := range ms {
		if isNew[pairOf(m)] {
			results[i] = connectors.Result{Changed: true, Message: m.Account.Username + " added to " + m.Entitlement.ExternalID}
		} else {
			results[i] = connectors.Result{Message: m.Account.Username + " was already a member of " + m.Entitlement.ExternalID}
		}
	}
	return results, errs
}

// RevokeAll removes the memberships in one statement; an absent membership
// is no error, a group that does not exist is.
func (d *Directory) RevokeAll(ctx context.Context, ms []connectors.Membership) ([]connectors.Result, []error) {
	removed, err := d.store.RemoveMembers(ctx, d.connectorID, membersOf(ms))
	if err != nil {
		return connectors.OneByOne(ctx, ms, d.Revoke)
	}
	gone := setOf(removed)
	var exist []string
	if len(removed) < len(ms) {
		names := make([]string, len(ms))
		for i, m := range ms {
			names[i] = m.Entitlement.ExternalID
		}
		if exist, err = d.store.GroupsNamed(ctx, d.connectorID, names); err != nil {
			return connectors.OneByOne(ctx, ms, d.Revoke)
		}
	}
	known := setOf(exist)
	results, errs := make([]connectors.Result, len(ms)), make([]error, len(ms))
	for i, m := range ms {
		switch {
		case gone[pairOf(m)]:
			results[i] = connectors.Result{Changed: true, Message: m.Account.Username + " removed from " + m.Entitlement.ExternalID}
		case known[m.Entitlement.ExternalID]:
			results[i] = connectors.Result{Message: m.Account.Username + " was not a member of " + m.Entitlement.ExternalID}
		default:
			errs[i] = connectors.Permanent(fmt.Errorf("no such group: %s", m.Entitlement.ExternalID))
		}
	}
	return results, errs
}

func pairOf(m connectors.Membership) Member {
	return Member{m.Entitlement.ExternalID, m.Account.Username}
}

func membersOf(ms []connectors.Membership) []Member {
	out := make([]Member, len(ms))
	for i, m := range ms {
		out[i] = pairOf(m)
	}
	return out
}

func setOf[T comparable](items []T) map[T]bool {
	out := make(map[T]bool, len(items))
	for _, n := range items {
		out[n] = true
	}
	return out
}

// Check always succeeds when the database answers.
func (d *Directory) Check(ctx context.Context) connectors.Health {
	start := time.Now()
	n, err := d.store.CountAccounts(ctx, d.connectorID)
	if err != nil {
		return connectors.Health{Message: err.Error(), Latency: time.Since(start)}
	}
	return connectors.Health{OK: true, Message: fmt.Sprintf("%d accounts", n), Latency: time.Since(start)}
}

// CreateGroup adds a group (an entitlement) to the directory; an existing one is kept.
func (d *Directory) CreateGroup(ctx context.Context, e connectors.Entitlement, description string) error {
	kind := e.Kind
	if kind == "" {
		kind = "group"
	}
	return d.store.CreateGroup(ctx, d.connectorID, Group{Name: e.ExternalID, Kind: kind, Description: description})
}

// Import reads every account and group. The built-in directory has no change
// log, so a delta import reads everything too and returns the time as cookie.
func (d *Directory) Import(ctx context.Context, mode connectors.ImportMode, cookie string, sink connectors.ImportSink) (string, error) {
	groups, err := d.store.Groups(ctx, d.connectorID)
	if err != nil {
		return cookie, connectors.Transient(err)
	}
	for _, g := range groups {
		if err := sink.Entitlement(ctx, connectors.Entitlement{ExternalID: g.Name, Name: g.Name, Kind: g.Kind}); err != nil {
			return cookie, err
		}
	}
	accounts, err := d.store.Accounts(ctx, d.connectorID)
	if err != nil {
		return cookie, connectors.Transient(err)
	}
	members, err := d.store.Members(ctx, d.connectorID)
	if err != nil {
		return cookie, connectors.Transient(err)
	}
	byUser := map[string][]string{}
	for _, m := range members {
		byUser[m.Username] = append(byUser[m.Username], m.GroupName)
	}
	for _, a := range accounts {
		if err := sink.Account(ctx, connectors.ImportedAccount{
			Account:      connectors.Account{Username: a.Username, ExternalID: a.Username, DisplayName: a.DisplayName, Email: a.Email},
			Locked:       a.Locked,
			Entitlements: byUser[a.Username],
		}); err != nil {
			return cookie, err
		}
	}
	return time.Now().UTC().Format(time.RFC3339Nano), nil
}
