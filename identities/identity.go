package identities

import (
	"context"
	"errors"
	"fmt"
	"net/mail"
	"regexp"
	"strings"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"github.com/provisor/provisor/database"
	"github.com/provisor/provisor/input"
)

// Identity is a person known to the portal.
type Identity struct {
	ID          string `gorm:"primaryKey" json:"id"`
	Username    string `json:"username"`
	DisplayName string `json:"display_name"`
	Email       string `json:"email"`
	// Source is where the identity comes from, as shown: "local", or the
	// name of the connector whose import made it (SourceConnectorID).
	Source string `json:"source"`
	// SourceConnectorID is the connector whose import made the identity;
	// nil for local identities. Imports find their identities by it, so a
	// renamed connector keeps them.
	SourceConnectorID *string `json:"source_connector_id,omitempty"`
	ExternalID        string  `json:"external_id,omitempty"`
	// ManagerID is the identity's manager: a manager may ask for access
	// for their direct reports.
	ManagerID *string `json:"manager_id"`
	// ManagerSourceConnectorID is the connector whose import set ManagerID
	// from its directory's manager attribute; nil when the manager was set
	// by hand (portal, API) or is none. See Importer for the rule.
	ManagerSourceConnectorID *string   `json:"manager_source_connector_id,omitempty"`
	Status                   string    `json:"status"`
	CreatedAt                time.Time `json:"created_at"`
	UpdatedAt                time.Time `json:"updated_at"`
}

// TableName is the table of identities.
func (Identity) TableName() string { return "identities" }

// importedBy reports whether the import of connector connectorID made the identity.
func (i *Identity) ImportedBy(connectorID string) bool {
	return i.SourceConnectorID != nil && *i.SourceConnectorID == connectorID
}

var usernamePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$`)

// IdentityInput creates an identity.
type IdentityInput struct {
	Username    string `json:"username"`
	DisplayName string `json:"display_name"`
	Email       string `json:"email"`
	// ManagerID, if set, is the identity's manager.
	ManagerID string `json:"manager_id,omitempty"`
}

// CreateIdentity validates and stores a local identity.
func (s *Service) CreateIdentity(ctx context.Context, in IdentityInput) (*Identity, error) {
	problems := FieldErrors{}
	in.Username = strings.TrimSpace(in.Username)
	in.DisplayName = strings.TrimSpace(in.DisplayName)
	in.Email = strings.TrimSpace(in.Email)
	if !usernamePattern.MatchString(in.Username) {
		problems["username"] = "required: 1 to 64 letters, digits or . _ @ -, starting with a letter or digit"
	}
	if p := input.Line(in.DisplayName, 200); p != "" {
		problems["display_name"] = p
	}
	if in.Email != "" {
		if a, err := mail.ParseAddress(in.Email); err != nil || a.Address != in.Email || input.Line(in.Email, 254) != "" {
			problems["email"] = "not a valid email address"
		}
	}
	if in.ManagerID != "" {
		if _, err := s.GetIdentity(ctx, in.ManagerID); err != nil {
			problems["manager_id"] = "no identity with id " + in.ManagerID
		}
	}
	if len(problems) > 0 {
		return nil, problems
	}
	if in.DisplayName == "" {
		in.DisplayName = in.Username
	}
	now := time.Now().UTC()
	id := &Identity{ID: uuid.NewString(), Username: in.Username, DisplayName: in.DisplayName, Email: in.Email,
		Source: "local", Status: "active", CreatedAt: now, UpdatedAt: now}
	if in.ManagerID != "" {
		id.ManagerID = &in.ManagerID
	}
	if err := s.db.WithContext(ctx).Create(id).Error; err != nil {
		if database.IsUniqueViolation(err) {
			return nil, FieldErrors{"username": "an identity called " + in.Username + " already exists"}
		}
		return nil, fmt.Errorf("identities: create %s: %w", in.Username, err)
	}
	return id, nil
}

// ListIdentities returns identities by username, and the total matching;
// with opts.For, only those the requester may ask for.
func (s *Service) ListIdentities(ctx context.Context, opts ListOpts) ([]Identity, int64, error) {
	q := reachIdentities(s.db.WithContext(ctx).Model(&Identity{}).Where("status <> 'deleted'"), opts.Reach)
	if opts.Query != "" {
		p := likePattern(opts.Query)
		q = q.Where(`lower(username) LIKE ? ESCAPE '\' OR lower(display_name) LIKE ? ESCAPE '\' OR lower(email) LIKE ? ESCAPE '\'`, p, p, p)
	}
	return database.FindPage[Identity](q, "username", opts.limit(), opts.Offset, nil)
}

// GetIdentity returns one identity.
func (s *Service) GetIdentity(ctx context.Context, id string) (*Identity, error) {
	return get[Identity](ctx, s.db, id)
}

// GetIdentityTx is GetIdentity read in tx.
func (s *Service) GetIdentityTx(ctx context.Context, tx *gorm.DB, id string) (*Identity, error) {
	return get[Identity](ctx, tx, id)
}

// IdentityByUsername returns the identity with that username.
func (s *Service) IdentityByUsername(ctx context.Context, username string) (*Identity, error) {
	var out Identity
	err := s.db.WithContext(ctx).Where("username = ?", username).Take(&out).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, ErrNotFound
	}
	return &out, err
}

// IdentityByUsernameTx returns the active identity with that username,
// read in tx.
func (s *Service) IdentityByUsernameTx(ctx context.Context, tx *gorm.DB, username string) (*Identity, error) {
	var out Identity
	err := tx.WithContext(ctx).Where("username = ? AND status = 'active'", username).Take(&out).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	return &out, nil
}
