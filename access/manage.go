package access

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/provisor/provisor/audit"
	"github.com/provisor/provisor/input"
)

// Errors of the admin actions on users and clients.
var (
	// ErrNotFound is returned for an unknown user or client.
	ErrNotFound = fmt.Errorf("%w", input.ErrNotFound)
	// ErrConflict is wrapped by errors that say why an action does not
	// apply: the user is disabled already, the client revoked already, the
	// user is the last enabled admin.
	ErrConflict = fmt.Errorf("%w", input.ErrConflict)
	// ErrAccountDisabled is returned by sign-in for a disabled user whose
	// password was right.
	ErrAccountDisabled = errors.New("the account is disabled")
)

func conflict(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrConflict, fmt.Sprintf(format, a...))
}

// touchClient keeps when a client last used a token, at most once a minute
// so that a busy script writes rarely. It is best effort.
func (s *Service) touchClient(ctx context.Context, id string, last *time.Time, now time.Time) {
	if last != nil && now.Sub(*last) < time.Minute {
		return
	}
	s.db.WithContext(ctx).Model(&Client{}).Where("id = ?", id).Update("last_used_at", now)
}

// ListUsers returns every portal user, by username.
func (s *Service) ListUsers(ctx context.Context) ([]User, error) {
	var out []User
	if err := s.db.WithContext(ctx).Order("username").Find(&out).Error; err != nil {
		return nil, fmt.Errorf("access: list users: %w", err)
	}
	return out, nil
}

// ListClients returns every API client, revoked ones too, by name.
func (s *Service) ListClients(ctx context.Context) ([]Client, error) {
	var out []Client
	if err := s.db.WithContext(ctx).Order("name, created_at").Find(&out).Error; err != nil {
		return nil, fmt.Errorf("access: list clients: %w", err)
	}
	return out, nil
}

// FindUser returns a user by id or by username.
func (s *Service) FindUser(ctx context.Context, ref string) (*User, error) {
	var u User
	q := s.db.WithContext(ctx)
	if input.ID(ref) {
		q = q.Where("id = ? OR username = ?", ref, ref)
	} else {
		q = q.Where("username = ?", ref)
	}
	err := q.Take(&u).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, fmt.Errorf("user %s: %w", ref, ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	return &u, nil
}

// FindClient returns a client by its id or its client id (pc_…).
func (s *Service) FindClient(ctx context.Context, ref string) (*Client, error) {
	return s.findClientTx(s.db.WithContext(ctx), ref, false)
}

func (s *Service) findClientTx(tx *gorm.DB, ref string, lock bool) (*Client, error) {
	var c Client
	if lock {
		tx = tx.Clauses(clause.Locking{Strength: clause.LockingStrengthUpdate})
	}
	if input.ID(ref) {
		tx = tx.Where("id = ?", ref)
	} else {
		tx = tx.Where("client_id = ?", ref)
	}
	err := tx.Take(&c).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, fmt.Errorf("API client %s: %w", ref, ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	return &c, nil
}

// lockUserTx reads a user by id and holds its row until tx ends.
func lockUserTx(tx *gorm.DB, id string) (*User, error) {
	if !input.ID(id) {
		return nil, fmt.Errorf("user %s: %w", id, ErrNotFound)
	}
	var u User
	err := tx.Clauses(clause.Locking{Strength: clause.LockingStrengthUpdate}).Where("id = ?", id).Take(&u).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, fmt.Errorf("user %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	return &u, nil
}

// lockAdminsTx holds the enabled admins' rows until tx ends, in one order,
// and returns their ids. An action that may take away an admin takes them
// before the user's own row: two admins disabling each other at once then
// run one after the other, and the second sees the first's change.
func lockAdminsTx(tx *gorm.DB) ([]string, error) {
	var ids []string
	err := tx.Model(&User{}).Clauses(clause.Locking{Strength: clause.LockingStrengthUpdate}).
		Where("role = ? AND NOT disabled", RoleAdmin).Order("id").Pluck("id", &ids).Error
	return ids, err
}

// keepAnAdmin refuses to take u out of the enabled admins (ids, from
// lockAdminsTx) when it is the last of them, so that someone can still
// manage the portal.
func keepAnAdmin(admins []string, u *User, action string) error {
	if u.Role != RoleAdmin || u.Disabled {
		return nil
	}
	for _, id := range admins {
		if id != u.ID {
			return nil
		}
	}
	return conflict("cannot %s %s: it is the last enabled admin; make another user an admin first", action, u.Username)
}

// endSessionsTx signs the user out everywhere.
func endSessionsTx(tx *gorm.DB, userID string) (int64, error) {
	r := tx.Where("user_id = ?", userID).Delete(&Session{})
	return r.RowsAffected, r.Error
}

// SetDisabled disables or enables a user. Disabling ends the user's
// sessions at once, and sign-in then says the account is disabled; the
// last enabled admin cannot be disabled. Disabling a disabled user (or
// enabling an enabled one) is a conflict.
func (s *Service) SetDisabled(ctx context.Context, id string, disabled bool, actor string) (*User, error) {
	var u *User
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var admins []string
		var err error
		if disabled {
			if admins, err = lockAdminsTx(tx); err != nil {
				return err
			}
		}
		if u, err = lockUserTx(tx, id); err != nil {
			return err
		}
		if u.Disabled == disabled {
			if disabled {
				return conflict("%s is disabled already", u.Username)
			}
			return conflict("%s is enabled already", u.Username)
		}
		details := map[string]any{"username": u.Username}
		action := "user.enable"
		if disabled {
			action = "user.disable"
			if err := keepAnAdmin(admins, u, "disable"); err != nil {
				return err
			}
			n, err := endSessionsTx(tx, u.ID)
			if err != nil {
				return err
			}
			details["sessions_ended"] = n
		}
		u.Disabled, u.UpdatedAt = disabled, time.Now().UTC()
		if err := tx.Model(&User{}).Where("id = ?", u.ID).
			Updates(map[string]any{"disabled": disabled, "updated_at": u.UpdatedAt}).Error; err != nil {
			return err
		}
		return audit.RecordTx(tx, actor, action, "user", u.ID, details)
	})
	if err != nil {
		return nil, wrapAccess(err, "set disabled", id)
	}
	return u, nil
}

// SetRole gives a user one of Roles; the last enabled admin cannot lose
// the admin role. A directory user's role follows the directory's admin
// group at their next sign-in.
func (s *Service) SetRole(ctx context.Context, id, role, actor string) (*User, error) {
	if !slices.Contains(Roles, role) {
		return nil, errors.New("role: one of " + strings.Join(Roles, ", "))
	}
	demote := role != RoleAdmin
	var u *User
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var admins []string
		var err error
		if demote {
			if admins, err = lockAdminsTx(tx); err != nil {
				return err
			}
		}
		if u, err = lockUserTx(tx, id); err != nil {
			return err
		}
		if u.Role == role {
			return conflict("%s is %s already", u.Username, role)
		}
		if demote {
			if err := keepAnAdmin(admins, u, "demote"); err != nil {
				return err
			}
		}
		from := u.Role
		u.Role, u.UpdatedAt = role, time.Now().UTC()
		if err := tx.Model(&User{}).Where("id = ?", u.ID).
			Updates(map[string]any{"role": role, "updated_at": u.UpdatedAt}).Error; err != nil {
			return err
		}
		return audit.RecordTx(tx, actor, "user.role", "user", u.ID, map[string]any{"username": u.Username, "from": from, "to": role})
	})
	if err != nil {
		return nil, wrapAccess(err, "set role", id)
	}
	return u, nil
}

// ResetPassword gives a local user a new generated password, returned once
// and stored only as its hash, and ends the user's sessions: whoever knew
// the old password is signed out. A directory user's password is the
// directory's and cannot be reset here.
func (s *Service) ResetPassword(ctx context.Context, id, actor string) (*User, string, error) {
	password := GeneratePassword()
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	if err != nil {
		return nil, "", err
	}
	var u *User
	err = s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var err error
		if u, err = lockUserTx(tx, id); err != nil {
			return err
		}
		if u.IsDirectoryUser() {
			return conflict("%s signs in with the directory %s: change the password there", u.Username,
				strings.TrimPrefix(u.PasswordHash, directoryHashPrefix))
		}
		n, err := endSessionsTx(tx, u.ID)
		if err != nil {
			return err
		}
		u.PasswordHash, u.UpdatedAt = string(h), time.Now().UTC()
		if err := tx.Model(&User{}).Where("id = ?", u.ID).
			Updates(map[string]any{"password_hash": u.PasswordHash, "updated_at": u.UpdatedAt}).Error; err != nil {
			return err
		}
		return audit.RecordTx(tx, actor, "user.reset_password", "user", u.ID, map[string]any{"username": u.Username, "sessions_ended": n})
	})
	if err != nil {
		return nil, "", wrapAccess(err, "reset password", id)
	}
	return u, password, nil
}

// RevokeClient disables an API client for good: it gets no new token, and
// the tokens it holds are deleted in the same transaction, so they stop
// working at once. ref is the client's id or its client id (pc_…).
func (s *Service) RevokeClient(ctx context.Context, ref, actor string) (*Client, error) {
	var c *Client
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var err error
		if c, err = s.findClientTx(tx, ref, true); err != nil {
			return err
		}
		if c.RevokedAt != nil {
			return conflict("the API client %q (%s) is revoked already", c.Name, c.ClientID)
		}
		now := time.Now().UTC()
		c.RevokedAt = &now
		if err := tx.Model(&Client{}).Where("id = ?", c.ID).Update("revoked_at", now).Error; err != nil {
			return err
		}
		r := tx.Where("client_id = ?", c.ID).Delete(&token{})
		if r.Error != nil {
			return r.Error
		}
		return audit.RecordTx(tx, actor, "api_client.revoke", "api_client", c.ID,
			map[string]any{"name": c.Name, "client_id": c.ClientID, "tokens_revoked": r.RowsAffected})
	})
	if err != nil {
		return nil, wrapAccess(err, "revoke client", ref)
	}
	return c, nil
}

// wrapAccess adds context to unexpected errors and leaves the ones a
// caller acts on as they are.
func wrapAccess(err error, what, ref string) error {
	if errors.Is(err, ErrNotFound) || errors.Is(err, ErrConflict) {
		return err
	}
	return fmt.Errorf("access: %s %s: %w", what, ref, err)
}
