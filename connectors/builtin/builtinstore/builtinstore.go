// Package builtinstore keeps the built-in directories (connector type
// "internal") in Provisor's own database: their accounts, groups and
// memberships, in the directory_* tables. It is the database side of
// package builtin, which stays free of it.
package builtinstore

import (
	"context"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/provisor/provisor/connectors/builtin"
)

// WriteFunc runs the writes of fn: see database.DB.WriteRelaxed.
type WriteFunc func(ctx context.Context, fn func(g *gorm.DB) error) error

// Store is the builtin.Store of db. The writes of connector operations go
// through write, which may commit without waiting for the disk (see
// database.DB.WriteRelaxed): an operation belongs to a connector job, and
// the job's own record, written after it in the same log, makes both
// durable; a crash before that runs the job, and so the operation, again.
type Store struct {
	db    *gorm.DB
	write WriteFunc
}

// New returns the store of the built-in directories in db.
func New(db *gorm.DB, write WriteFunc) *Store { return &Store{db: db, write: write} }

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

// exec runs one write statement through s.write and says how many rows it changed.
func (s *Store) exec(ctx context.Context, stmt func(g *gorm.DB) *gorm.DB) (int64, error) {
	var n int64
	err := s.write(ctx, func(g *gorm.DB) error {
		res := stmt(g)
		n = res.RowsAffected
		return res.Error
	})
	return n, err
}

// CreateAccount inserts the account unless it exists.
func (s *Store) CreateAccount(ctx context.Context, dir string, a builtin.Account) (bool, error) {
	now := time.Now().UTC()
	n, err := s.exec(ctx, func(g *gorm.DB) *gorm.DB {
		return g.Clauses(clause.OnConflict{DoNothing: true}).Create(&dirAccount{
			ConnectorID: dir, Username: a.Username, DisplayName: a.DisplayName, Email: a.Email,
			CreatedAt: now, UpdatedAt: now,
		})
	})
	return n > 0, err
}

// DeleteAccount deletes the account and its memberships.
func (s *Store) DeleteAccount(ctx context.Context, dir, username string) (bool, error) {
	var changed bool
	err := s.write(ctx, func(tx *gorm.DB) error {
		if err := tx.Where("connector_id = ? AND username = ?", dir, username).Delete(&dirMember{}).Error; err != nil {
			return err
		}
		res := tx.Where("connector_id = ? AND username = ?", dir, username).Delete(&dirAccount{})
		changed = res.RowsAffected > 0
		return res.Error
	})
	return changed, err
}

// SetLocked locks or unlocks the account unless it is so already.
func (s *Store) SetLocked(ctx context.Context, dir, username string, locked bool) (bool, error) {
	n, err := s.exec(ctx, func(g *gorm.DB) *gorm.DB {
		return g.Model(&dirAccount{}).Where("connector_id = ? AND username = ? AND locked = ?", dir, username, !locked).
			Updates(map[string]any{"locked": locked, "updated_at": time.Now().UTC()})
	})
	return n > 0, err
}

// HasAccount reports whether the account exists.
func (s *Store) HasAccount(ctx context.Context, dir, username string) (bool, error) {
	var n int64
	err := s.db.WithContext(ctx).Model(&dirAccount{}).Where("connector_id = ? AND username = ?", dir, username).Count(&n).Error
	return n > 0, err
}

// HasGroup reports whether the group exists.
func (s *Store) HasGroup(ctx context.Context, dir, name string) (bool, error) {
	var n int64
	err := s.db.WithContext(ctx).Model(&dirGroup{}).Where("connector_id = ? AND name = ?", dir, name).Count(&n).Error
	return n > 0, err
}

// AddMember adds the membership unless it exists.
func (s *Store) AddMember(ctx context.Context, dir string, m builtin.Member) (bool, error) {
	n, err := s.exec(ctx, func(g *gorm.DB) *gorm.DB {
		return g.Clauses(clause.OnConflict{DoNothing: true}).Create(&dirMember{
			ConnectorID: dir, GroupName: m.GroupName, Username: m.Username, AddedAt: time.Now().UTC(),
		})
	})
	return n > 0, err
}

// RemoveMember removes the membership if it exists.
func (s *Store) RemoveMember(ctx context.Context, dir string, m builtin.Member) (bool, error) {
	n, err := s.exec(ctx, func(g *gorm.DB) *gorm.DB {
		return g.Where("connector_id = ? AND group_name = ? AND username = ?", dir, m.GroupName, m.Username).Delete(&dirMember{})
	})
	return n > 0, err
}

// AddMembers adds the memberships in one statement and returns those that
// were new.
func (s *Store) AddMembers(ctx context.Context, dir string, ms []builtin.Member) ([]builtin.Member, error) {
	var q strings.Builder
	args := make([]any, 0, 4*len(ms))
	now := time.Now().UTC()
	q.WriteString("INSERT INTO directory_members (connector_id, group_name, username, added_at) VALUES ")
	for i, m := range ms {
		if i > 0 {
			q.WriteString(", ")
		}
		q.WriteString("(?, ?, ?, ?)")
		args = append(args, dir, m.GroupName, m.Username, now)
	}
	q.WriteString(" ON CONFLICT DO NOTHING RETURNING group_name, username")
	var added []builtin.Member
	err := s.write(ctx, func(g *gorm.DB) error { return g.Raw(q.String(), args...).Scan(&added).Error })
	return added, err
}

// RemoveMembers removes the memberships in one statement and returns those
// that were there.
func (s *Store) RemoveMembers(ctx context.Context, dir string, ms []builtin.Member) ([]builtin.Member, error) {
	var q strings.Builder
	args := make([]any, 0, 1+2*len(ms))
	args = append(args, dir)
	q.WriteString("DELETE FROM directory_members WHERE connector_id = ? AND (group_name, username) IN (VALUES ")
	for i, m := range ms {
		if i > 0 {
			q.WriteString(", ")
		}
		q.WriteString("(?, ?)")
		args = append(args, m.GroupName, m.Username)
	}
	q.WriteString(") RETURNING group_name, username")
	var removed []builtin.Member
	err := s.write(ctx, func(g *gorm.DB) error { return g.Raw(q.String(), args...).Scan(&removed).Error })
	return removed, err
}

// GroupsNamed returns those of names that are groups.
func (s *Store) GroupsNamed(ctx context.Context, dir string, names []string) ([]string, error) {
	var exist []string
	err := s.db.WithContext(ctx).Model(&dirGroup{}).Where("connector_id = ? AND name IN ?", dir, names).Pluck("name", &exist).Error
	return exist, err
}

// CountAccounts counts the accounts.
func (s *Store) CountAccounts(ctx context.Context, dir string) (int64, error) {
	var n int64
	err := s.db.WithContext(ctx).Model(&dirAccount{}).Where("connector_id = ?", dir).Count(&n).Error
	return n, err
}

// CreateGroup adds a group unless it exists.
func (s *Store) CreateGroup(ctx context.Context, dir string, g builtin.Group) error {
	return s.db.WithContext(ctx).Clauses(clause.OnConflict{DoNothing: true}).Create(&dirGroup{
		ConnectorID: dir, Name: g.Name, Kind: g.Kind, Description: g.Description, CreatedAt: time.Now().UTC(),
	}).Error
}

// Groups lists the groups by name.
func (s *Store) Groups(ctx context.Context, dir string) ([]builtin.Group, error) {
	var rows []dirGroup
	if err := s.db.WithContext(ctx).Where("connector_id = ?", dir).Order("name").Find(&rows).Error; err != nil {
		return nil, err
	}
	out := make([]builtin.Group, len(rows))
	for i, r := range rows {
		out[i] = builtin.Group{Name: r.Name, Kind: r.Kind, Description: r.Description}
	}
	return out, nil
}

// Accounts lists the accounts by username.
func (s *Store) Accounts(ctx context.Context, dir string) ([]builtin.Account, error) {
	var rows []dirAccount
	if err := s.db.WithContext(ctx).Where("connector_id = ?", dir).Order("username").Find(&rows).Error; err != nil {
		return nil, err
	}
	out := make([]builtin.Account, len(rows))
	for i, r := range rows {
		out[i] = builtin.Account{Username: r.Username, DisplayName: r.DisplayName, Email: r.Email, Locked: r.Locked}
	}
	return out, nil
}

// Members lists every membership.
func (s *Store) Members(ctx context.Context, dir string) ([]builtin.Member, error) {
	var rows []dirMember
	if err := s.db.WithContext(ctx).Where("connector_id = ?", dir).Find(&rows).Error; err != nil {
		return nil, err
	}
	out := make([]builtin.Member, len(rows))
	for i, r := range rows {
		out[i] = builtin.Member{GroupName: r.GroupName, Username: r.Username}
	}
	return out, nil
}

var _ builtin.Store = (*Store)(nil)
