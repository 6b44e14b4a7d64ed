package identities

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"github.com/provisor/provisor/connectors"
	"github.com/provisor/provisor/database"
	"github.com/provisor/provisor/input"
)

// Entitlement kinds: a group, a role of a system that has roles, and
// Entra ID's directory roles and app roles.
const (
	KindGroup         = "group"
	KindRole          = "role"
	KindDirectoryRole = "directory_role"
	KindAppRole       = "app_role"
)

// Kinds lists the entitlement kinds.
var Kinds = []string{KindGroup, KindRole, KindDirectoryRole, KindAppRole}

// ValidKind reports whether kind is an entitlement kind.
func ValidKind(kind string) bool {
	for _, k := range Kinds {
		if k == kind {
			return true
		}
	}
	return false
}

// KindLabel is how a page names a kind.
func KindLabel(kind string) string {
	switch kind {
	case KindDirectoryRole:
		return "Directory role"
	case KindAppRole:
		return "App role"
	case KindRole:
		return "Role"
	}
	return "Group"
}

// Entitlement is a group or role on a connector.
type Entitlement struct {
	ID          string `gorm:"primaryKey" json:"id"`
	ConnectorID string `json:"connector_id"`
	ExternalID  string `json:"external_id"`
	Name        string `json:"name"`
	Kind        string `json:"kind"`
	Description string `json:"description"`
	Deleted     bool   `json:"deleted"`
	Policy
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// TableName is the table of entitlements.
func (Entitlement) TableName() string { return "entitlements" }

// EntitlementInput creates an entitlement on a connector.
type EntitlementInput struct {
	Name        string `json:"name"`
	ExternalID  string `json:"external_id"`
	Kind        string `json:"kind"`
	Description string `json:"description"`
}

// CreateEntitlement adds a group or role to a connector's catalog, and to the
// system itself when the connector can create groups (the built-in directory).
func (s *Service) CreateEntitlement(ctx context.Context, connectorID string, in EntitlementInput) (*Entitlement, error) {
	rec, conn, err := s.connectors.OpenByID(ctx, connectorID)
	if err != nil {
		return nil, err
	}
	problems := FieldErrors{}
	in.Name = strings.TrimSpace(in.Name)
	in.ExternalID = strings.TrimSpace(in.ExternalID)
	if in.Name == "" {
		problems["name"] = "required, at most 200 characters"
	} else if p := input.Line(in.Name, 200); p != "" {
		problems["name"] = p
	}
	if in.ExternalID == "" {
		in.ExternalID = in.Name
	}
	if p := input.Line(in.ExternalID, 500); p != "" {
		problems["external_id"] = p
	}
	if p := input.Text(in.Description, 2000); p != "" {
		problems["description"] = p
	}
	if in.Kind == "" {
		in.Kind = "group"
	}
	if !ValidKind(in.Kind) {
		problems["kind"] = "must be group, role, directory_role or app_role"
	}
	if len(problems) > 0 {
		return nil, problems
	}
	if gc, ok := conn.(connectors.GroupCreator); ok {
		if err := gc.CreateGroup(ctx, connectors.Entitlement{ExternalID: in.ExternalID, Name: in.Name, Kind: in.Kind}, in.Description); err != nil {
			return nil, fmt.Errorf("identities: create %s on %s: %w", in.Name, rec.Name, err)
		}
	}
	now := time.Now().UTC()
	e := &Entitlement{ID: uuid.NewString(), ConnectorID: rec.ID, ExternalID: in.ExternalID, Name: in.Name, Kind: in.Kind,
		Description: in.Description, Policy: DefaultPolicy(rec, in.ExternalID), CreatedAt: now, UpdatedAt: now}
	if err := s.db.WithContext(ctx).Create(e).Error; err != nil {
		if database.IsUniqueViolation(err) {
			return nil, FieldErrors{"external_id": in.ExternalID + " already exists on " + rec.Name}
		}
		return nil, fmt.Errorf("identities: create entitlement %s: %w", in.Name, err)
	}
	return e, nil
}

// ListEntitlements returns a connector's entitlements by name: none for
// an id that is no connector's.
func (s *Service) ListEntitlements(ctx context.Context, connectorID string, opts ListOpts) ([]Entitlement, int64, error) {
	if !input.ID(connectorID) {
		return nil, 0, nil
	}
	q := s.db.WithContext(ctx).Model(&Entitlement{}).Where("connector_id = ? AND NOT deleted", connectorID)
	if opts.Query != "" {
		q = q.Where(`lower(name) LIKE ? ESCAPE '\'`, likePattern(opts.Query))
	}
	return database.FindPage[Entitlement](q, "name", opts.limit(), opts.Offset, nil)
}

// GetEntitlement returns one entitlement.
func (s *Service) GetEntitlement(ctx context.Context, id string) (*Entitlement, error) {
	return get[Entitlement](ctx, s.db, id)
}

// GetEntitlementTx is GetEntitlement read in tx.
func (s *Service) GetEntitlementTx(ctx context.Context, tx *gorm.DB, id string) (*Entitlement, error) {
	return get[Entitlement](ctx, tx, id)
}
