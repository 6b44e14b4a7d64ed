// Package builtin is the built-in directory connector (type "internal"):
// accounts and groups kept in Provisor's own database. It supports every
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

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/provisor/provisor/connectors"
)

// TypeName is the connector type of the built-in directory.
const TypeName = "internal"

// WriteFunc runs the writes of fn: see database.DB.WriteRelaxed.
type WriteFunc func(ctx context.Context, fn func(g *gorm.DB) error) error

// Type returns the connector type backed by db. The writes of connector
// operations go through write, which may commit without waiting for the
// disk (see database.DB.WriteRelaxed): an operation belongs to a connector
// job, and the job's own record, written after it in the same log, makes
// both durable; a crash before that runs the job, and so the operation,
// again.
func Type(db *gorm.DB, write WriteFunc) connectors.Type {
	return connectors.Type{
		Name:  TypeName,
		Label: "Built-in directory",
		New: func(cfg connectors.Config) (connectors.Connector, error) {
			if cfg.ID == "" {
				return nil, errors.New("builtin: connector id is required")
			}
			return &Directory{db: db, write: write, connectorID: cfg.ID}, nil
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
	db          *gorm.DB
	write       WriteFunc // the writes of operations
	connectorID string
}

type dirAccount struct {
	ConnectorID string `gorm:"primaryKey"`
	Username    string `gorm:"primaryKey"`
	DisplayName string
	Email       string
	Locked      bool
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

func (dirAccount) TableName() string { return "directory_accounts" }

type dirGroup struct {
	ConnectorID string `gorm:"primaryKey"`
	Name        string `gorm:"primaryKey"`
	Kind        string
	Description string
	CreatedAt   time.Time
}

func (dirGroup) TableName() string { return "directory_groups" }

type dirMember struct {
	ConnectorID string `gorm:"primaryKey"`
	GroupName   string `gorm:"primaryKey"`
	Username    string `gorm:"primaryKey"`
	AddedAt     time.Time
}

func (dirMember) TableName() string { return "directory_members" }

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
	now := time.Now().UTC()
	t := connectors.NewTimer()
	var created int64
	if err := d.write(ctx, func(g *gorm.DB) error {
		res := g.Clauses(clause.OnConflict{DoNothing: true}).Create(&dirAccount{
			ConnectorID: d.connectorID, Username: a.Username, DisplayName: a.DisplayName, Email: a.Email,
			CreatedAt: now, UpdatedAt: now,
		})
		created = res.RowsAffected
		return res.Error
	}); err != nil {
		return connectors.Result{}, connectors.Transient(err)
	}
	t.Step("modify", "insert the account unless it exists", nil)
	if created == 0 {
		return connectors.Result{ExternalID: a.Username, Message: "account " + a.Username + " already exists", Steps: t.Steps}, nil
	}
	return connectors.Result{Changed: true, ExternalID: a.Username, Message: "account " + a.Username + " created", Steps: t.Steps,
		Changes: []connectors.PropertyChange{{Name: "username", New: a.Username}, {Name: "display_name", New: a.DisplayName},
			{Name: "email", New: a.Email}}}, nil
}

// DeleteAccount deletes the account and its memberships; a missing account is no error.
func (d *Directory) DeleteAccount(ctx context.Context, a connectors.Account) (connectors.Result, error) {
	var changed bool
	err := d.write(ctx, func(tx *gorm.DB) error {
		if err := tx.Where("connector_id = ? AND username = ?", d.connectorID, a.Username).Delete(&dirMember{}).Error; err != nil {
			return err
		}
		res := tx.Where("connector_id = ? AND username = ?", d.connectorID, a.Username).Delete(&dirAccount{})
		changed = res.RowsAffected > 0
		return res.Error
	})
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
	n, err := d.exec(ctx, func(g *gorm.DB) *gorm.DB {
		return g.Model(&dirAccount{}).Where("connector_id = ? AND username = ? AND locked = ?", d.connectorID, a.Username, !locked).
			Updates(map[string]any{"locked": locked, "updated_at": time.Now().UTC()})
	})
	if err != nil {
		return connectors.Result{}, connectors.Transient(err)
	}
	t.Step("modify", "set locked to "+strconv.FormatBool(locked), nil)
	if n > 0 {
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
	var n int64
	if err := d.db.WithContext(ctx).Model(&dirAccount{}).Where("connector_id = ? AND username = ?", d.connectorID, username).Count(&n).Error; err != nil {
		return connectors.Transient(err)
	}
	if n == 0 {
		return connectors.Permanent(fmt.Errorf("no such account: %s", username))
	}
	return nil
}

func (d *Directory) groupExists(ctx context.Context, name string) error {
	var n int64
	if err := d.db.WithContext(ctx).Model(&dirGroup{}).Where("connector_id = ? AND name = ?", d.connectorID, name).Count(&n).Error; err != nil {
		return connectors.Transient(err)
	}
	if n == 0 {
		return connectors.Permanent(fmt.Errorf("no such group: %s", name))
	}
	return nil
}

// Grant adds the account to the group; an existing membership is no error.
func (d *Directory) Grant(ctx context.Context, a connectors.Account, e connectors.Entitlement) (connectors.Result, error) {
	t := connectors.NewTimer()
	n, err := d.exec(ctx, func(g *gorm.DB) *gorm.DB {
		return g.Clauses(clause.OnConflict{DoNothing: true}).Create(&dirMember{
			ConnectorID: d.connectorID, GroupName: e.ExternalID, Username: a.Username, AddedAt: time.Now().UTC(),
		})
	})
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
	if n == 0 {
		return connectors.Result{Message: a.Username + " was already a member of " + e.ExternalID, Steps: t.Steps}, nil
	}
	return connectors.Result{Changed: true, Message: a.Username + " added to " + e.ExternalID, Steps: t.Steps,
		Changes: []connectors.PropertyChange{{Name: "member of " + e.ExternalID, Old: "false", New: "true"}}}, nil
}

// Revoke removes the account from the group; an absent membership is no error.
func (d *Directory) Revoke(ctx context.Context, a connectors.Account, e connectors.Entitlement) (connectors.Result, error) {
	t := connectors.NewTimer()
	n, err := d.exec(ctx, func(g *gorm.DB) *gorm.DB {
		return g.Where("connector_id = ? AND group_name = ? AND username = ?", d.connectorID, e.ExternalID, a.Username).Delete(&dirMember{})
	})
	if err != nil {
		return connectors.Result{}, connectors.Transient(err)
	}
	if n == 0 {
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

// exec runs one write statement through d.write and says how many rows it changed.
func (d *Directory) exec(ctx context.Context, stmt func(g *gorm.DB) *gorm.DB) (int64, error) {
	var n int64
	err := d.write(ctx, func(g *gorm.DB) error {
		res := stmt(g)
		n = res.RowsAffected
		return res.Error
	})
	return n, err
}

// GrantAll adds the memberships in one statement; a membership that exists
// is no error. When the statement fails (a missing account or group), each
// is granted alone, to say which.
func (d *Directory) GrantAll(ctx context.Context, ms []connectors.Membership) ([]connectors.Result, []error) {
	var q strings.Builder
	args := make([]any, 0, 4*len(ms))
	now := time.Now().UTC()
	q.WriteString("INSERT INTO directory_members (connector_id, group_name, username, added_at) VALUES ")
	for i, m := range ms {
		if i > 0 {
			q.WriteString(", ")
		}
		q.WriteString("(?, ?, ?, ?)")
		args = append(args, d.connectorID, m.Entitlement.ExternalID, m.Account.Username, now)
	}
	q.WriteString(" ON CONFLICT DO NOTHING RETURNING group_name, username")
	var added []pair
	if err := d.write(ctx, func(g *gorm.DB) error { return g.Raw(q.String(), args...).Scan(&added).Error }); err != nil {
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
	var q strings.Builder
	args := make([]any, 0, 1+2*len(ms))
	args = append(args, d.connectorID)
	var names []string
	q.WriteString("DELETE FROM directory_members WHERE connector_id = ? AND (group_name, username) IN (VALUES ")
	for i, m := range ms {
		if i > 0 {
			q.WriteString(", ")
		}
		q.WriteString("(?, ?)")
		args = append(args, m.Entitlement.ExternalID, m.Account.Username)
		names = append(names, m.Entitlement.ExternalID)
	}
	q.WriteString(") RETURNING group_name, username")
	var removed []pair
	if err := d.write(ctx, func(g *gorm.DB) error { return g.Raw(q.String(), args...).Scan(&removed).Error }); err != nil {
		return connectors.OneByOne(ctx, ms, d.Revoke)
	}
	gone := setOf(removed)
	var exist []string
	if len(removed) < len(ms) {
		if err := d.db.WithContext(ctx).Model(&dirGroup{}).Where("connector_id = ? AND name IN ?", d.connectorID, names).Pluck("name", &exist).Error; err != nil {
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

// pair is a membership as the directory stores it.
type pair struct{ GroupName, Username string }

func pairOf(m connectors.Membership) pair {
	return pair{m.Entitlement.ExternalID, m.Account.Username}
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
	var n int64
	if err := d.db.WithContext(ctx).Model(&dirAccount{}).Where("connector_id = ?", d.connectorID).Count(&n).Error; err != nil {
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
	return d.db.WithContext(ctx).Clauses(clause.OnConflict{DoNothing: true}).Create(&dirGroup{
		ConnectorID: d.connectorID, Name: e.ExternalID, Kind: kind, Description: description, CreatedAt: time.Now().UTC(),
	}).Error
}

// Import reads every account and group. The built-in directory has no change
// log, so a delta import reads everything too and returns the time as cookie.
func (d *Directory) Import(ctx context.Context, mode connectors.ImportMode, cookie string, sink connectors.ImportSink) (string, error) {
	var groups []dirGroup
	if err := d.db.WithContext(ctx).Where("connector_id = ?", d.connectorID).Order("name").Find(&groups).Error; err != nil {
		return cookie, connectors.Transient(err)
	}
	for _, g := range groups {
		if err := sink.Entitlement(ctx, connectors.Entitlement{ExternalID: g.Name, Name: g.Name, Kind: g.Kind}); err != nil {
			return cookie, err
		}
	}
	var accounts []dirAccount
	if err := d.db.WithContext(ctx).Where("connector_id = ?", d.connectorID).Order("username").Find(&accounts).Error; err != nil {
		return cookie, connectors.Transient(err)
	}
	var members []dirMember
	if err := d.db.WithContext(ctx).Where("connector_id = ?", d.connectorID).Find(&members).Error; err != nil {
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
