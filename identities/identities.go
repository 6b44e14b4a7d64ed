// Package identities keeps what the portal knows of people and their access:
// identities, workgroups and their members, and, per connector, accounts,
// entitlements (groups and roles) and memberships.
package identities

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"gorm.io/gorm"

	"github.com/provisor/provisor/connectors/configured"
	"github.com/provisor/provisor/database"
	"github.com/provisor/provisor/input"
)

// ErrNotFound is returned for an unknown identity, workgroup, account or
// entitlement: a value of the package's own, that is input.ErrNotFound.
var ErrNotFound = fmt.Errorf("%w", input.ErrNotFound)

// ErrConflict is wrapped by errors about an action that does not apply to
// an import's status (approving a rejected import).
var ErrConflict = fmt.Errorf("%w", input.ErrConflict)

// FieldErrors maps a field to what is wrong with it.
type FieldErrors = input.FieldErrors

// Service manages identities, workgroups and entitlements.
type Service struct {
	db         *gorm.DB
	connectors *configured.Store
}

// New returns the service.
func New(db *gorm.DB, store *configured.Store) *Service {
	return &Service{db: db, connectors: store}
}

// ListOpts filter and page a list. Zero values mean everything, first page.
type ListOpts struct {
	Query  string
	Limit  int
	Offset int
	// Reach, if set, keeps the identities (or workgroups) a requester may
	// ask for.
	Reach *Reach
}

func (o ListOpts) limit() int { return database.PageLimit(o.Limit, 100) }

func likePattern(q string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return "%" + strings.ToLower(r.Replace(input.Search(q))) + "%"
}

func get[T any](ctx context.Context, db *gorm.DB, id string) (*T, error) {
	if !input.ID(id) {
		return nil, ErrNotFound
	}
	var out T
	err := db.WithContext(ctx).Where("id = ?", id).Take(&out).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	return &out, nil
}
