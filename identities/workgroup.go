package identities

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/provisor/provisor/database"
	"github.com/provisor/provisor/input"
)

// Workgroup is a named set of identities.
type Workgroup struct {
	ID          string `gorm:"primaryKey" json:"id"`
	Name        string `json:"name"`
	Description string `json:"description"`
	// OwnerID is the identity that owns the workgroup: an owner may ask
	// for access for its members.
	OwnerID   *string   `json:"owner_id"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	// MemberCount is filled by List.
	MemberCount int `gorm:"->;-:migration" json:"member_count"`
}

// TableName is the table of workgroups.
func (Workgroup) TableName() string { return "workgroups" }

type member struct {
	WorkgroupID string `gorm:"primaryKey"`
	IdentityID  string `gorm:"primaryKey"`
	AddedAt     time.Time
}

func (member) TableName() string { return "workgroup_members" }

// WorkgroupInput creates a workgroup.
type WorkgroupInput struct {
	Name        string   `json:"name"`
	Description string   `json:"description"`
	Members     []string `json:"members"`
	// OwnerID, if set, is the identity that owns the workgroup.
	OwnerID string `json:"owner_id,omitempty"`
}

// CreateWorkgroup validates and stores a workgroup with its members (identity ids).
func (s *Service) CreateWorkgroup(ctx context.Context, in WorkgroupInput) (*Workgroup, error) {
	problems := FieldErrors{}
	in.Name = strings.TrimSpace(in.Name)
	if in.Name == "" {
		problems["name"] = "required, at most 100 characters"
	} else if p := input.Line(in.Name, 100); p != "" {
		problems["name"] = p
	}
	if p := input.Text(in.Description, 2000); p != "" {
		problems["description"] = p
	}
	seen := map[string]bool{}
	for i, m := range in.Members {
		field := fmt.Sprintf("members[%d]", i)
		if seen[m] {
			problems[field] = "listed twice"
			continue
		}
		seen[m] = true
		if _, err := s.GetIdentity(ctx, m); err != nil {
			problems[field] = "no identity with id " + m
		}
	}
	if in.OwnerID != "" {
		if _, err := s.GetIdentity(ctx, in.OwnerID); err != nil {
			problems["owner_id"] = "no identity with id " + in.OwnerID
		}
	}
	if len(problems) > 0 {
		return nil, problems
	}
	now := time.Now().UTC()
	wg := &Workgroup{ID: uuid.NewString(), Name: in.Name, Description: in.Description, CreatedAt: now, UpdatedAt: now}
	if in.OwnerID != "" {
		wg.OwnerID = &in.OwnerID
	}
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Create(wg).Error; err != nil {
			return err
		}
		for _, m := range in.Members {
			if err := tx.Create(&member{WorkgroupID: wg.ID, IdentityID: m, AddedAt: now}).Error; err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		if database.IsUniqueViolation(err) {
			return nil, FieldErrors{"name": "a workgroup called " + in.Name + " already exists"}
		}
		return nil, fmt.Errorf("identities: create workgroup %s: %w", in.Name, err)
	}
	wg.MemberCount = len(in.Members)
	return wg, nil
}

// ListWorkgroups returns workgroups by name with their member counts.
func (s *Service) ListWorkgroups(ctx context.Context, opts ListOpts) ([]Workgroup, int64, error) {
	q := reachWorkgroups(s.db.WithContext(ctx).Model(&Workgroup{}), opts.Reach)
	if opts.Query != "" {
		q = q.Where(`lower(name) LIKE ? ESCAPE '\'`, likePattern(opts.Query))
	}
	return database.FindPage[Workgroup](q, "name", opts.limit(), opts.Offset, func(q *gorm.DB) *gorm.DB {
		return q.Select("workgroups.*, (SELECT count(*) FROM workgroup_members m WHERE m.workgroup_id = workgroups.id) AS member_count")
	})
}

// GetWorkgroup returns one workgroup.
func (s *Service) GetWorkgroup(ctx context.Context, id string) (*Workgroup, error) {
	return get[Workgroup](ctx, s.db, id)
}

// GetWorkgroupTx is GetWorkgroup read in tx.
func (s *Service) GetWorkgroupTx(ctx context.Context, tx *gorm.DB, id string) (*Workgroup, error) {
	return get[Workgroup](ctx, tx, id)
}

// Members returns a workgroup's members by username, read in tx (or the
// service's database when tx is nil).
func (s *Service) Members(ctx context.Context, tx *gorm.DB, workgroupID string) ([]Identity, error) {
	if tx == nil {
		tx = s.db.WithContext(ctx)
	}
	var out []Identity
	err := tx.Model(&Identity{}).
		Joins("JOIN workgroup_members m ON m.identity_id = identities.id").
		Where("m.workgroup_id = ? AND identities.status <> 'deleted'", workgroupID).
		Order("identities.username").Find(&out).Error
	return out, err
}

// AddMembers adds identities to a workgroup; those already in it are kept.
func (s *Service) AddMembers(ctx context.Context, workgroupID string, identityIDs []string) error {
	if _, err := s.GetWorkgroup(ctx, workgroupID); err != nil {
		return err
	}
	problems := FieldErrors{}
	for i, m := range identityIDs {
		if _, err := s.GetIdentity(ctx, m); err != nil {
			problems[fmt.Sprintf("members[%d]", i)] = "no identity with id " + m
		}
	}
	if len(problems) > 0 {
		return problems
	}
	now := time.Now().UTC()
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		for _, m := range identityIDs {
			if err := tx.Clauses(clause.OnConflict{DoNothing: true}).Create(&member{WorkgroupID: workgroupID, IdentityID: m, AddedAt: now}).Error; err != nil {
				return err
			}
		}
		return nil
	})
}
