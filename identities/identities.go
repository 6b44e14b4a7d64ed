// Package identities keeps what the portal knows of people and their access:
// identities, workgroups and their members, and, per connector, accounts,
// entitlements (groups and roles) and memberships.
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
	"gorm.io/gorm/clause"

	"github.com/provisor/provisor/connectors"
	"github.com/provisor/provisor/connectors/configured"
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
func (i *Identity) importedBy(connectorID string) bool {
	return i.SourceConnectorID != nil && *i.SourceConnectorID == connectorID
}

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

// Account is an identity's account on a connector, as last seen by Provisor.
type Account struct {
	ID          string  `gorm:"primaryKey" json:"id"`
	ConnectorID string  `json:"connector_id"`
	IdentityID  *string `json:"identity_id"`
	Username    string  `json:"username"`
	ExternalID  string  `json:"external_id"`
	Status      string  `json:"status"`
	// ManagerExternalID is the external id of the account's manager as the
	// system last stated it ("" for none), kept so that a manager imported
	// after its reports is found by a later import.
	ManagerExternalID string    `json:"manager_external_id,omitempty"`
	CreatedAt         time.Time `json:"created_at"`
	UpdatedAt         time.Time `json:"updated_at"`
}

// TableName is the table of accounts.
func (Account) TableName() string { return "accounts" }

type membership struct {
	AccountID     string `gorm:"primaryKey"`
	EntitlementID string `gorm:"primaryKey"`
	GrantedAt     time.Time
	ExpiresAt     *time.Time
}

func (membership) TableName() string { return "memberships" }

// Errors.
var (
	ErrNotFound = errors.New("not found")
)

// FieldErrors maps a field to what is wrong with it.
type FieldErrors map[string]string

func (f FieldErrors) Error() string {
	parts := make([]string, 0, len(f))
	for k, v := range f {
		parts = append(parts, k+": "+v)
	}
	return "invalid input: " + strings.Join(parts, "; ")
}

// Service manages identities, workgroups and entitlements.
type Service struct {
	db         *gorm.DB
	connectors *configured.Store
}

// New returns the service.
func New(db *gorm.DB, store *configured.Store) *Service {
	return &Service{db: db, connectors: store}
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
		Description: in.Description, Policy: defaultPolicy(rec, in.ExternalID), CreatedAt: now, UpdatedAt: now}
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

// AccountOf returns the identity's account on a connector, or ErrNotFound.
func (s *Service) AccountOf(ctx context.Context, tx *gorm.DB, connectorID, identityID string) (*Account, error) {
	if tx == nil {
		tx = s.db.WithContext(ctx)
	}
	var a Account
	err := tx.Where("connector_id = ? AND identity_id = ?", connectorID, identityID).Take(&a).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	return &a, nil
}

// AccountsOfTx returns the accounts that identities have on a connector,
// by identity id, read in tx.
func (s *Service) AccountsOfTx(ctx context.Context, tx *gorm.DB, connectorID string, identityIDs []string) (map[string]*Account, error) {
	out := make(map[string]*Account, len(identityIDs))
	for start := 0; start < len(identityIDs); start += 500 {
		var rows []Account
		if err := tx.WithContext(ctx).Where("connector_id = ? AND identity_id IN ?", connectorID,
			identityIDs[start:min(start+500, len(identityIDs))]).Find(&rows).Error; err != nil {
			return nil, err
		}
		for i := range rows {
			if rows[i].IdentityID != nil {
				out[*rows[i].IdentityID] = &rows[i]
			}
		}
	}
	return out, nil
}

// HeldTx returns which of the entitlements each account holds, as the
// portal last recorded it, by account id and entitlement id, read in tx.
func (s *Service) HeldTx(ctx context.Context, tx *gorm.DB, accountIDs, entitlementIDs []string) (map[[2]string]bool, error) {
	out := map[[2]string]bool{}
	if len(accountIDs) == 0 || len(entitlementIDs) == 0 {
		return out, nil
	}
	for start := 0; start < len(accountIDs); start += 500 {
		var rows []membership
		if err := tx.WithContext(ctx).Select("account_id, entitlement_id").Where("account_id IN ? AND entitlement_id IN ?",
			accountIDs[start:min(start+500, len(accountIDs))], entitlementIDs).Find(&rows).Error; err != nil {
			return nil, err
		}
		for _, m := range rows {
			out[[2]string{m.AccountID, m.EntitlementID}] = true
		}
	}
	return out, nil
}

// Accounts lists an identity's accounts.
func (s *Service) Accounts(ctx context.Context, identityID string) ([]Account, error) {
	var out []Account
	err := s.db.WithContext(ctx).Where("identity_id = ?", identityID).Order("connector_id").Find(&out).Error
	return out, err
}

// Change is what a completed connector job changed, recorded into the
// portal's view of accounts and memberships.
type Change struct {
	Operation     connectors.Operation
	ConnectorID   string
	IdentityID    string
	Username      string
	ExternalID    string
	EntitlementID string
	ExpiresAt     *time.Time
}

// ApplyTx records completed operations in tx, in order. Consecutive grants
// are recorded together, whichever accounts they are for: one read of the
// accounts with the memberships they name, and one write of those that are
// new or change their expiry. Consecutive revokes are one read of the
// accounts and one delete.
func (s *Service) ApplyTx(ctx context.Context, tx *gorm.DB, changes ...Change) error {
	accounts := map[[2]string]*Account{} // by connector and username
	for i := 0; i < len(changes); {
		op, n := changes[i].Operation, i+1
		if op == connectors.OpGrant || op == connectors.OpRevoke {
			for n < len(changes) && changes[n].Operation == op {
				n++
			}
		}
		var err error
		switch op {
		case connectors.OpGrant:
			err = grantsTx(tx, changes[i:n], accounts)
		case connectors.OpRevoke:
			err = revokesTx(tx, changes[i:n], accounts)
		default:
			err = applyTx(tx, changes[i], accounts)
		}
		if err != nil {
			return err
		}
		i = n
	}
	return nil
}

// accountsTx reads, in one statement, the accounts changes name that
// accounts does not hold yet, with the memberships they hold among ents
// (none when ents is empty), and keeps them in accounts. It returns the
// expiry of each membership found.
func accountsTx(tx *gorm.DB, changes []Change, accounts map[[2]string]*Account, ents []string) (map[[2]string]*time.Time, error) {
	have := map[[2]string]*time.Time{}
	conns, users := map[string]bool{}, map[string]bool{}
	for _, c := range changes {
		if _, ok := accounts[[2]string{c.ConnectorID, c.Username}]; !ok || len(ents) > 0 {
			conns[c.ConnectorID], users[c.Username] = true, true
		}
	}
	if len(users) == 0 {
		return have, nil
	}
	var rows []struct {
		Account
		HeldEntitlement *string
		HeldExpires     *time.Time
	}
	q := tx.Table("accounts")
	if len(ents) > 0 {
		q = q.Select("accounts.*, m.entitlement_id AS held_entitlement, m.expires_at AS held_expires").
			Joins("LEFT JOIN memberships m ON m.account_id = accounts.id AND m.entitlement_id IN ?", ents)
	} else {
		q = q.Select("accounts.*")
	}
	if err := q.Where("accounts.connector_id IN ? AND accounts.username IN ?", keys(conns), keys(users)).Scan(&rows).Error; err != nil {
		return nil, err
	}
	for i := range rows {
		r := &rows[i]
		key := [2]string{r.ConnectorID, r.Username}
		if _, ok := accounts[key]; !ok {
			a := r.Account
			accounts[key] = &a
		}
		if r.HeldEntitlement != nil {
			have[[2]string{r.ID, *r.HeldEntitlement}] = r.HeldExpires
		}
	}
	return have, nil
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// grantsTx records grants. A membership held already with the same expiry
// is left as it is, unlocked: runs that grant the same access again do not
// wait for each other on its row. An account not recorded yet is made.
func grantsTx(tx *gorm.DB, changes []Change, accounts map[[2]string]*Account) error {
	ents := map[string]bool{}
	for _, c := range changes {
		ents[c.EntitlementID] = true
	}
	have, err := accountsTx(tx, changes, accounts, keys(ents))
	if err != nil {
		return err
	}
	grants := make([]membership, len(changes))
	for i, c := range changes {
		a, err := accountTx(tx, c, accounts, true)
		if err != nil {
			return err
		}
		grants[i] = membership{AccountID: a.ID, EntitlementID: c.EntitlementID, GrantedAt: time.Now().UTC(), ExpiresAt: c.ExpiresAt}
	}
	return writeGrantsTx(tx, grants, have)
}

// revokesTx records revokes in one delete; a revoke of an account not
// recorded changes nothing.
func revokesTx(tx *gorm.DB, changes []Change, accounts map[[2]string]*Account) error {
	if _, err := accountsTx(tx, changes, accounts, nil); err != nil {
		return err
	}
	var where strings.Builder
	var args []any
	for _, c := range changes {
		a, ok := accounts[[2]string{c.ConnectorID, c.Username}]
		if !ok {
			continue
		}
		if where.Len() > 0 {
			where.WriteString(" OR ")
		}
		where.WriteString("(account_id = ? AND entitlement_id = ?)")
		args = append(args, a.ID, c.EntitlementID)
	}
	if len(args) == 0 {
		return nil
	}
	return tx.Where(where.String(), args...).Delete(&membership{}).Error
}

// writeGrantsTx writes the grants that are new or change their
// membership's expiry; have holds the expiry of each membership held.
func writeGrantsTx(tx *gorm.DB, grants []membership, have map[[2]string]*time.Time) error {
	var write []membership
	seen := map[[2]string]int{}
	for _, g := range grants {
		k := [2]string{g.AccountID, g.EntitlementID}
		if exp, ok := have[k]; ok && sameTime(exp, g.ExpiresAt) {
			continue
		}
		if i, ok := seen[k]; ok {
			write[i] = g // the later grant of the same membership wins
			continue
		}
		seen[k] = len(write)
		write = append(write, g)
	}
	if len(write) == 0 {
		return nil
	}
	return tx.Clauses(clause.OnConflict{
		Columns:   []clause.Column{{Name: "account_id"}, {Name: "entitlement_id"}},
		DoUpdates: clause.AssignmentColumns([]string{"expires_at"}),
	}).Create(&write).Error
}

// accountTx returns the account a change is about, from accounts or the
// database, made when create is set and it does not exist.
func accountTx(tx *gorm.DB, c Change, accounts map[[2]string]*Account, create bool) (*Account, error) {
	key := [2]string{c.ConnectorID, c.Username}
	if a, ok := accounts[key]; ok {
		return a, nil
	}
	var a Account
	err := tx.Where("connector_id = ? AND username = ?", c.ConnectorID, c.Username).Take(&a).Error
	if err == nil {
		accounts[key] = &a
		return &a, nil
	}
	if !errors.Is(err, gorm.ErrRecordNotFound) || !create {
		return nil, err
	}
	now := time.Now().UTC()
	a = Account{ID: uuid.NewString(), ConnectorID: c.ConnectorID, Username: c.Username, ExternalID: c.ExternalID,
		Status: "enabled", CreatedAt: now, UpdatedAt: now}
	if c.IdentityID != "" {
		a.IdentityID = &c.IdentityID
	}
	if err := tx.Create(&a).Error; err != nil {
		return nil, err
	}
	accounts[key] = &a
	return &a, nil
}

func sameTime(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(*b)
}

// applyTx records one operation other than a grant or a revoke (ApplyTx
// records those together); accounts keeps the accounts read or made so far.
func applyTx(tx *gorm.DB, c Change, accounts map[[2]string]*Account) error {
	now := time.Now().UTC()
	acct := func(create bool) (*Account, error) { return accountTx(tx, c, accounts, create) }
	setStatus := func(status string) error {
		return tx.Model(&Account{}).Where("connector_id = ? AND username = ?", c.ConnectorID, c.Username).
			Updates(map[string]any{"status": status, "updated_at": now}).Error
	}
	switch c.Operation {
	case connectors.OpCreateAccount:
		a, err := acct(true)
		if err != nil {
			return err
		}
		return tx.Model(a).Updates(map[string]any{"status": "enabled", "external_id": c.ExternalID, "updated_at": now}).Error
	case connectors.OpDeleteAccount:
		a, err := acct(false)
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := tx.Where("account_id = ?", a.ID).Delete(&membership{}).Error; err != nil {
			return err
		}
		return setStatus("deleted")
	case connectors.OpEnableAccount:
		return setStatus("enabled")
	case connectors.OpDisableAccount:
		return setStatus("locked")
	}
	return fmt.Errorf("identities: unknown operation %q", c.Operation)
}

// EntitlementsOf lists the entitlements an identity holds on a connector.
func (s *Service) EntitlementsOf(ctx context.Context, connectorID, identityID string) ([]Entitlement, error) {
	var out []Entitlement
	err := s.db.WithContext(ctx).Model(&Entitlement{}).
		Joins("JOIN memberships ms ON ms.entitlement_id = entitlements.id").
		Joins("JOIN accounts a ON a.id = ms.account_id").
		Where("a.connector_id = ? AND a.identity_id = ?", connectorID, identityID).
		Order("entitlements.name").Find(&out).Error
	return out, err
}
