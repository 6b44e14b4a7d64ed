package access

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"github.com/provisor/provisor/audit"
)

// DirectoryIdentity is a person a directory vouched for at sign-in.
type DirectoryIdentity struct {
	// Source names the directory (the connector) that checked the password.
	Source      string
	Username    string
	DisplayName string
	Email       string
	// IsAdmin is membership of the directory's admin group.
	IsAdmin bool
}

// DirectorySignInFunc checks a username and password against the
// directories that allow sign-in. It returns ErrInvalidCredentials when none
// accepts them, and ErrDirectoryUnavailable when none could be asked.
type DirectorySignInFunc func(ctx context.Context, username, password string) (*DirectoryIdentity, error)

// ErrDirectoryUnavailable is returned when the directories that could
// check a password did not answer.
var ErrDirectoryUnavailable = errors.New("the directory cannot be reached")

// ErrUnusableUsername is returned when a directory accepts a password for
// a name that cannot be a portal username (see usernamePattern).
var ErrUnusableUsername = errors.New("this directory username cannot be used in the portal")

// directoryHashPrefix marks the users a directory signs in: their password
// hash is no bcrypt hash, so a local password never matches.
const directoryHashPrefix = "!directory:"

// IsDirectoryUser reports whether a directory signs this user in.
func (u *User) IsDirectoryUser() bool { return strings.HasPrefix(u.PasswordHash, directoryHashPrefix) }

// directorySignIn asks the directories, and keeps the portal user of the
// person up to date: created at the first sign-in, role from the admin
// group at every sign-in. A local user of the same name is never taken over.
func (s *Service) directorySignIn(ctx context.Context, username, password string) (*User, error) {
	if s.opts.DirectoryFunc == nil {
		return nil, ErrInvalidCredentials
	}
	// existing returns the user of a name, and refuses local users. A
	// disabled user is refused once the directory accepted the password.
	existing := func(name string) (User, error) {
		var u User
		err := s.db.WithContext(ctx).Where("username = ?", name).Take(&u).Error
		switch {
		case err == nil && !u.IsDirectoryUser():
			return u, ErrInvalidCredentials
		case errors.Is(err, gorm.ErrRecordNotFound):
			return User{}, nil
		}
		return u, err
	}
	if _, err := existing(username); err != nil {
		return nil, err
	}
	d, err := s.opts.DirectoryFunc(ctx, username, password)
	if err != nil {
		return nil, err
	}
	// The directory's spelling of the name is the one kept. It must be a
	// name a local user could have: one with a colon could pass for an
	// internal actor (see audit.IsInternal) and own what that actor made.
	if !usernamePattern.MatchString(d.Username) {
		return nil, fmt.Errorf("%w: %q from %s", ErrUnusableUsername, d.Username, d.Source)
	}
	u, err := existing(d.Username)
	if err != nil {
		return nil, err
	}
	if u.Disabled {
		return nil, ErrAccountDisabled
	}
	role := RoleRequester
	if d.IsAdmin {
		role = RoleAdmin
	}
	now := time.Now().UTC()
	err = s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if u.ID == "" {
			u = User{ID: uuid.NewString(), Username: d.Username, Email: d.Email, DisplayName: d.DisplayName,
				PasswordHash: directoryHashPrefix + d.Source, Role: role, CreatedAt: now, UpdatedAt: now}
			if u.DisplayName == "" {
				u.DisplayName = u.Username
			}
			if err := tx.Create(&u).Error; err != nil {
				return err
			}
			return audit.RecordTx(tx, "directory:"+d.Source, "user.create", "user", u.ID, map[string]any{"username": u.Username, "role": role})
		}
		if u.Role != role {
			if err := audit.RecordTx(tx, "directory:"+d.Source, "user.role", "user", u.ID, map[string]any{"from": u.Role, "to": role}); err != nil {
				return err
			}
		}
		u.Role, u.Email, u.UpdatedAt = role, d.Email, now
		if d.DisplayName != "" {
			u.DisplayName = d.DisplayName
		}
		return tx.Model(&User{}).Where("id = ?", u.ID).Updates(map[string]any{
			"role": u.Role, "email": u.Email, "display_name": u.DisplayName, "updated_at": now}).Error
	})
	if err != nil {
		return nil, fmt.Errorf("access: directory user %s: %w", username, err)
	}
	return &u, nil
}
