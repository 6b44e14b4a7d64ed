package access

import (
	"context"
	"strings"

	"gorm.io/gorm"
)

// Linked is a portal user with the identity they are linked to: by the
// user's identity, or, for a user linked to none, the active identity of
// the same username. Email is the user's, or else the identity's.
type Linked struct {
	User
	LinkedIdentityID string
	IdentityEmail    string
}

// Address is where to write to the user, or "".
func (l *Linked) Address() string {
	if l.Email != "" {
		return l.Email
	}
	return l.IdentityEmail
}

// Name is the user's display name, or else the username.
func (l *Linked) Name() string {
	if strings.TrimSpace(l.DisplayName) != "" {
		return l.DisplayName
	}
	return l.Username
}

// linked selects enabled users with their linked identity.
func linked(tx *gorm.DB) *gorm.DB {
	return tx.Table("users").Select(`users.*, i.id AS linked_identity_id, i.email AS identity_email`).
		Joins(`LEFT JOIN identities i ON (users.identity_id IS NOT NULL AND i.id = users.identity_id)
			OR (users.identity_id IS NULL AND i.username = users.username AND i.status = 'active')`).
		Where("NOT users.disabled").Order("users.username")
}

// LinkedUsersTx returns the enabled users linked to any of identityIDs, read in tx.
func (s *Service) LinkedUsersTx(ctx context.Context, tx *gorm.DB, identityIDs []string) ([]Linked, error) {
	if len(identityIDs) == 0 {
		return nil, nil
	}
	var out []Linked
	err := linked(tx.WithContext(ctx)).Where("i.id IN ?", identityIDs).Find(&out).Error
	return out, err
}

// AdminsTx returns the enabled admins, read in tx.
func (s *Service) AdminsTx(ctx context.Context, tx *gorm.DB) ([]Linked, error) {
	var out []Linked
	err := linked(tx.WithContext(ctx)).Where("users.role = ?", RoleAdmin).Find(&out).Error
	return out, err
}

// LinkedUserTx returns the enabled user called username, or nil, read in tx.
func (s *Service) LinkedUserTx(ctx context.Context, tx *gorm.DB, username string) (*Linked, error) {
	var out []Linked
	if err := linked(tx.WithContext(ctx)).Where("users.username = ?", username).Limit(1).Find(&out).Error; err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, nil
	}
	return &out[0], nil
}
