package imports

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"github.com/provisor/provisor/audit"
	"github.com/provisor/provisor/connectors"
	"github.com/provisor/provisor/connectors/configured"
	"github.com/provisor/provisor/database"
	"github.com/provisor/provisor/identities"
	"github.com/provisor/provisor/input"
)

// Import statuses.
const (
	ImportAwaitingApproval = "awaiting_approval"
	ImportApproved         = "approved"
	ImportRejected         = "rejected"
	ImportApplied          = "applied"
	// ImportSuperseded is an import that awaited approval when a newer one
	// of the same connector ran: its plan no longer matches the portal.
	ImportSuperseded = "superseded"
)

// ImportStatuses lists the statuses in the order a filter offers them.
var ImportStatuses = []string{ImportAwaitingApproval, ImportApproved, ImportRejected, ImportApplied, ImportSuperseded}

// DefaultDeletionThreshold is the share (percent) of a connector's accounts
// an import may delete or lock without approval, unless the connector says
// otherwise (connectors.DeletionThresholder).
const DefaultDeletionThreshold = 10.0

// Import is one import run of a connector.
type Import struct {
	ID            string          `gorm:"primaryKey" json:"id"`
	ConnectorID   string          `json:"connector_id"`
	ConnectorName string          `json:"connector_name"`
	Mode          string          `json:"mode"`
	Status        string          `json:"status"`
	CountsJSON    string          `gorm:"column:counts" json:"-"`
	Counts        ImportCounts    `gorm:"-" json:"counts"`
	ChangesJSON   string          `gorm:"column:changes" json:"-"`
	Changes       []PlannedChange `gorm:"-" json:"changes,omitempty"`
	Cookie        string          `json:"-"`
	Threshold     float64         `json:"threshold_percent"`
	Message       string          `json:"message"`
	JobID         *string         `json:"job_id,omitempty"`
	CreatedAt     time.Time       `json:"created_at"`
	DecidedBy     string          `json:"decided_by,omitempty"`
	DecidedAt     *time.Time      `json:"decided_at,omitempty"`
	AppliedAt     *time.Time      `json:"applied_at,omitempty"`

	// steps are the import's steps with their timings, for the
	// provisioning log's entry of its job.
	steps []connectors.Step
}

// TableName is the table of imports.
func (Import) TableName() string { return "imports" }

// ImportCounts say what an import read and what it changes.
type ImportCounts struct {
	AccountsRead        int `json:"accounts_read"`
	GroupsRead          int `json:"groups_read"`
	AccountsKnown       int `json:"accounts_known"`
	AccountsCreated     int `json:"accounts_created"`
	AccountsUpdated     int `json:"accounts_updated"`
	AccountsLocked      int `json:"accounts_locked"`
	AccountsUnlocked    int `json:"accounts_unlocked"`
	AccountsDeleted     int `json:"accounts_deleted"`
	EntitlementsCreated int `json:"entitlements_created"`
	EntitlementsUpdated int `json:"entitlements_updated"`
	EntitlementsDeleted int `json:"entitlements_deleted"`
	MembershipsAdded    int `json:"memberships_added"`
	MembershipsRemoved  int `json:"memberships_removed"`
	IdentitiesCreated   int `json:"identities_created"`
	IdentitiesLinked    int `json:"identities_linked"`
	// ManagersSet and ManagersCleared count identities whose manager the
	// import sets or clears from the directory's manager attribute.
	ManagersSet     int `json:"managers_set"`
	ManagersCleared int `json:"managers_cleared"`
	// RiskPercent is the share of known accounts the import deletes or locks.
	RiskPercent float64 `json:"risk_percent"`
}

// Planned change operations.
const (
	ChangeCreateAccount     = "account.create"
	ChangeUpdateAccount     = "account.update"
	ChangeDeleteAccount     = "account.delete"
	ChangeCreateEntitlement = "entitlement.create"
	ChangeUpdateEntitlement = "entitlement.update"
	ChangeDeleteEntitlement = "entitlement.delete"
	ChangeAddMembership     = "membership.add"
	ChangeRemoveMembership  = "membership.remove"
	// ChangeSetManager states the manager of the identity of the account
	// ExternalID: the identity of the account whose external id is Manager,
	// or none when Manager is empty or names no account.
	ChangeSetManager = "identity.manager"
)

// PlannedChange is one change an import makes to the portal's view of a
// connector. Every change is stated as the result wanted ("this account,
// locked"), so applying it later, or twice, is safe.
type PlannedChange struct {
	Op          string `json:"op"`
	ExternalID  string `json:"external_id"`
	Username    string `json:"username,omitempty"`
	DisplayName string `json:"display_name,omitempty"`
	Email       string `json:"email,omitempty"`
	Correlation string `json:"correlation,omitempty"`
	// Status is an account's status after the change, Before the one it had.
	Status string `json:"status,omitempty"`
	Before string `json:"before,omitempty"`
	Name   string `json:"name,omitempty"`
	Kind   string `json:"kind,omitempty"`
	// Group is the entitlement's external id in membership changes.
	Group string `json:"group,omitempty"`
	// Manager is the external id of the manager the system states ("" for
	// none): on account changes of connectors that read managers (nil on
	// others), and on ChangeSetManager.
	Manager *string `json:"manager,omitempty"`
}

// Importer runs directory imports into the portal's tables: identities
// (source_connector_id = the connector, source = its name, external_id = the
// correlation value),
// accounts (external_id = the system's key, such as a DN), entitlements and
// memberships. Objects gone from the system are marked deleted. An import
// that would delete or lock more than the connector's threshold of accounts
// stops before changing anything and waits for an admin (Approve, Reject).
//
// Managers: a connector that reads managers (connectors.ManagerReader, such
// as LDAP and AD with their manager attribute) states each account's
// manager as the manager's external id (a DN). Once every account of the
// run is in, the identity of the account at that DN becomes the manager of
// the account's identity, whatever order the directory listed them in; the
// DN is kept on the account, so a manager that comes in a later import (a
// delta that reads only the manager) is found then. A manager that names
// the identity itself, or no account of the connector, counts as none.
// Where the directory states a manager, it wins over one set by hand (the
// portal, the API); where it states none, the import clears only a
// manager it set itself (Identity.ManagerSourceConnectorID), so one set by
// hand stays. A manager set by another connector's import is that
// connector's to change. Each change is written to the audit trail as
// identity.manager by system:provisor, with the connector and the import.
//
// Imports of one connector run one at a time in a process. Two processes
// importing the same connector at once both compute and apply a plan; the
// plans state the result wanted, so the second one finds little to do.
type Importer struct {
	db         *gorm.DB
	connectors *configured.Store

	mu    sync.Mutex
	locks map[string]*sync.Mutex

	progress ProgressFunc
}

// ProgressFunc is told, while an import of a connector reads, how many
// objects (accounts and groups) it read so far: 0 when it starts, then
// about once a second. It must be quick; its failure stops nothing.
type ProgressFunc func(ctx context.Context, connectorID string, read int)

// ImporterOptions configure an Importer. A nil *ImporterOptions means
// defaults.
type ImporterOptions struct {
	// ProgressFunc, if set, is told of the imports' progress.
	ProgressFunc ProgressFunc
}

// NewImporter returns the importer of the connectors of store into the
// portal's tables in db.
func NewImporter(db *gorm.DB, store *configured.Store, opts *ImporterOptions) *Importer {
	im := &Importer{db: db, connectors: store, locks: map[string]*sync.Mutex{}}
	if opts != nil {
		im.progress = opts.ProgressFunc
	}
	return im
}

func (im *Importer) lock(connectorID string) func() {
	im.mu.Lock()
	l := im.locks[connectorID]
	if l == nil {
		l = &sync.Mutex{}
		im.locks[connectorID] = l
	}
	im.mu.Unlock()
	l.Lock()
	return l.Unlock
}

// Run imports a connector. A delta import without a cookie (the first one)
// runs as a full import. jobID names the connector job that asked for it
// (empty when none). Errors from the connector keep their classification.
func (im *Importer) Run(ctx context.Context, connectorID string, mode connectors.ImportMode, jobID string) (*Import, error) {
	defer im.lock(connectorID)()
	rec, conn, err := im.connectors.OpenByID(ctx, connectorID)
	if err != nil {
		return nil, err
	}
	if mode != connectors.ImportFull && mode != connectors.ImportDelta {
		return nil, connectors.Permanent(fmt.Errorf("import mode %q is not full or delta", mode))
	}
	cookie := ""
	if mode == connectors.ImportDelta {
		if cookie = rec.ImportCookie; cookie == "" {
			mode = connectors.ImportFull
		}
	}
	col := newCollector()
	if fn := im.progress; fn != nil {
		col.progress = func(ctx context.Context, read int) { fn(ctx, rec.ID, read) }
		fn(ctx, rec.ID, 0)
		col.lastProgress = time.Now()
	}
	readsManagers := false
	if mr, ok := conn.(connectors.ManagerReader); ok {
		readsManagers = mr.ReadsManagers()
	}
	importer, ok := conn.(connectors.Importer)
	if !ok {
		return nil, connectors.Permanent(fmt.Errorf("connector %s cannot be imported", rec.Name))
	}
	timer := connectors.NewTimer()
	next, err := importer.Import(ctx, mode, cookie, col)
	timer.Step("read", fmt.Sprintf("%s import of %s", mode, rec.Name), err)
	if err != nil {
		return nil, err
	}
	threshold := DefaultDeletionThreshold
	if t, ok := conn.(connectors.DeletionThresholder); ok {
		threshold = t.DeletionThreshold()
	}
	imp := &Import{ID: uuid.NewString(), ConnectorID: rec.ID, ConnectorName: rec.Name, Mode: string(mode),
		Cookie: next, Threshold: threshold, CreatedAt: time.Now().UTC(), ChangesJSON: "[]"}
	if jobID != "" {
		imp.JobID = &jobID
	}
	err = im.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		st, err := loadState(tx, rec.ID)
		if err != nil {
			return err
		}
		changes, counts := plan(col, st, mode, rec.ID, readsManagers)
		imp.Counts = counts
		// Any run makes older plans of the connector stale.
		if err := tx.Model(&Import{}).Where("connector_id = ? AND status = ?", rec.ID, ImportAwaitingApproval).
			Update("status", ImportSuperseded).Error; err != nil {
			return err
		}
		if counts.AccountsKnown > 0 && counts.RiskPercent > threshold {
			b, err := json.Marshal(changes)
			if err != nil {
				return err
			}
			imp.Status, imp.ChangesJSON, imp.Changes = ImportAwaitingApproval, string(b), changes
			imp.Message = col.noted(imp.summary())
			return im.save(tx, imp)
		}
		applied, err := im.apply(ctx, tx, rec, imp.ID, changes, st)
		if err != nil {
			return err
		}
		imp.Counts.IdentitiesCreated, imp.Counts.IdentitiesLinked = applied.IdentitiesCreated, applied.IdentitiesLinked
		imp.Counts.ManagersSet, imp.Counts.ManagersCleared = applied.ManagersSet, applied.ManagersCleared
		now := time.Now().UTC()
		imp.Status, imp.AppliedAt = ImportApplied, &now
		imp.Message = col.noted(imp.summary())
		if err := im.connectors.SaveImportCookieTx(tx, rec.ID, next); err != nil {
			return err
		}
		return im.save(tx, imp)
	})
	timer.Step("apply", "plan and apply the changes to the portal", err)
	imp.steps = timer.Steps
	if err != nil {
		return nil, fmt.Errorf("identities: import %s: %w", rec.Name, err)
	}
	return imp, nil
}

func (im *Importer) save(tx *gorm.DB, imp *Import) error {
	b, err := json.Marshal(imp.Counts)
	if err != nil {
		return err
	}
	imp.CountsJSON = string(b)
	return tx.Create(imp).Error
}

// summary is what an import did, in a line.
func (imp *Import) summary() string {
	c := imp.Counts
	read := fmt.Sprintf("%s import read %d accounts and %d groups", imp.Mode, c.AccountsRead, c.GroupsRead)
	if imp.Status == ImportAwaitingApproval || imp.Status == ImportSuperseded || imp.Status == ImportRejected {
		return fmt.Sprintf("%s; it would delete %d and lock %d of %d accounts (%.1f%%, more than the threshold of %g%%): "+
			"nothing was changed; import %s awaits approval", read, c.AccountsDeleted, c.AccountsLocked, c.AccountsKnown,
			c.RiskPercent, imp.Threshold, imp.ID)
	}
	msg := fmt.Sprintf("%s; accounts: %d created (%d new identities, %d linked), %d updated, %d locked, %d unlocked, %d deleted; "+
		"groups: %d created, %d updated, %d deleted; memberships: %d added, %d removed",
		read, c.AccountsCreated, c.IdentitiesCreated, c.IdentitiesLinked, c.AccountsUpdated, c.AccountsLocked, c.AccountsUnlocked,
		c.AccountsDeleted, c.EntitlementsCreated, c.EntitlementsUpdated, c.EntitlementsDeleted, c.MembershipsAdded, c.MembershipsRemoved)
	if c.ManagersSet+c.ManagersCleared > 0 {
		msg += fmt.Sprintf("; managers: %d set, %d cleared", c.ManagersSet, c.ManagersCleared)
	}
	return msg
}

// Changed reports whether the import changed (or would change) anything.
func (imp *Import) Changed() bool {
	c := imp.Counts
	return c.AccountsCreated+c.AccountsUpdated+c.AccountsDeleted+c.EntitlementsCreated+c.EntitlementsUpdated+
		c.EntitlementsDeleted+c.MembershipsAdded+c.MembershipsRemoved+c.IdentitiesCreated+c.IdentitiesLinked+
		c.ManagersSet+c.ManagersCleared > 0
}

// ImportFilter narrows ListImports. Zero values match everything.
type ImportFilter struct {
	ConnectorID string
	Status      string
	// JobIDs keeps the imports of these connector jobs.
	JobIDs []string
	Limit  int
	Offset int
}

// ListImports returns imports newest first, without their planned changes,
// and how many match.
func (im *Importer) ListImports(ctx context.Context, f ImportFilter) ([]Import, int64, error) {
	q := im.db.WithContext(ctx).Model(&Import{})
	if f.ConnectorID != "" {
		q = q.Where("connector_id = ?", f.ConnectorID)
	}
	if f.Status != "" {
		q = q.Where("status = ?", f.Status)
	}
	switch {
	case f.JobIDs == nil:
	case len(f.JobIDs) == 0:
		q = q.Where("1 = 0")
	default:
		q = q.Where("job_id IN ?", f.JobIDs)
	}
	out, total, err := database.FindPage[Import](q, "created_at DESC, id", database.PageLimit(f.Limit, 50), f.Offset,
		func(q *gorm.DB) *gorm.DB { return q.Omit("changes") })
	if err != nil {
		return nil, 0, err
	}
	for i := range out {
		if err := out[i].decode(false); err != nil {
			return nil, 0, err
		}
	}
	return out, total, nil
}

// GetImport returns one import with its planned changes.
func (im *Importer) GetImport(ctx context.Context, id string) (*Import, error) {
	imp, err := getImport(ctx, im.db, id)
	if err != nil {
		return nil, err
	}
	return imp, imp.decode(true)
}

func (imp *Import) decode(changes bool) error {
	if imp.CountsJSON != "" {
		if err := json.Unmarshal([]byte(imp.CountsJSON), &imp.Counts); err != nil {
			return fmt.Errorf("identities: import %s: counts: %w", imp.ID, err)
		}
	}
	if changes && imp.ChangesJSON != "" {
		if err := json.Unmarshal([]byte(imp.ChangesJSON), &imp.Changes); err != nil {
			return fmt.Errorf("identities: import %s: changes: %w", imp.ID, err)
		}
	}
	if imp.Changes == nil {
		imp.Changes = []PlannedChange{}
	}
	return nil
}

// Approve applies an import that awaits approval, as planned, and records
// who decided.
func (im *Importer) Approve(ctx context.Context, id, actor string) (*Import, error) {
	return im.decide(ctx, id, actor, true)
}

// Reject drops an import that awaits approval; nothing changes, and the
// next import of the connector computes its plan again.
func (im *Importer) Reject(ctx context.Context, id, actor string) (*Import, error) {
	return im.decide(ctx, id, actor, false)
}

func (im *Importer) decide(ctx context.Context, id, actor string, approve bool) (*Import, error) {
	imp, err := im.GetImport(ctx, id)
	if err != nil {
		return nil, err
	}
	defer im.lock(imp.ConnectorID)()
	err = im.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		now := time.Now().UTC()
		status := map[bool]string{true: ImportApproved, false: ImportRejected}[approve]
		res := tx.Model(&Import{}).Where("id = ? AND status = ?", id, ImportAwaitingApproval).
			Updates(map[string]any{"status": status, "decided_by": actor, "decided_at": now})
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			var cur Import
			if err := tx.Select("status").Where("id = ?", id).Take(&cur).Error; err != nil {
				return err
			}
			return fmt.Errorf("%w: import %s is %s, not awaiting approval", identities.ErrConflict, id, cur.Status)
		}
		action := "import.reject"
		if approve {
			action = "import.approve"
			var rec configured.Record
			if err := tx.Where("id = ?", imp.ConnectorID).Take(&rec).Error; err != nil {
				return err
			}
			applied, err := im.apply(ctx, tx, &rec, imp.ID, imp.Changes, nil)
			if err != nil {
				return err
			}
			imp.Counts.IdentitiesCreated, imp.Counts.IdentitiesLinked = applied.IdentitiesCreated, applied.IdentitiesLinked
			imp.Counts.ManagersSet, imp.Counts.ManagersCleared = applied.ManagersSet, applied.ManagersCleared
			counts, err := json.Marshal(imp.Counts)
			if err != nil {
				return err
			}
			if err := im.connectors.SaveImportCookieTx(tx, rec.ID, imp.Cookie); err != nil {
				return err
			}
			if err := tx.Model(&Import{}).Where("id = ?", id).Updates(map[string]any{"status": ImportApplied, "applied_at": now, "counts": string(counts)}).Error; err != nil {
				return err
			}
		}
		return audit.RecordTx(tx, actor, action, "import", id, map[string]any{
			"connector": imp.ConnectorName, "mode": imp.Mode, "accounts_deleted": imp.Counts.AccountsDeleted,
			"accounts_locked": imp.Counts.AccountsLocked, "risk_percent": imp.Counts.RiskPercent,
		})
	})
	if err != nil {
		return nil, err
	}
	return im.GetImport(ctx, id)
}

// RunJob runs the import of a connector job and says what it did (or that
// it awaits approval). It is the requests package's ImportFunc.
func (im *Importer) RunJob(ctx context.Context, connectorID string, mode connectors.ImportMode, jobID string) (connectors.Result, error) {
	imp, err := im.Run(ctx, connectorID, mode, jobID)
	if err != nil {
		return connectors.Result{}, err
	}
	return connectors.Result{Changed: imp.Status == ImportApplied && imp.Changed(), Message: imp.Message,
		Steps: imp.steps, Warning: imp.Status == ImportAwaitingApproval}, nil
}

func getImport(ctx context.Context, db *gorm.DB, id string) (*Import, error) {
	if !input.ID(id) {
		return nil, identities.ErrNotFound
	}
	var out Import
	err := db.WithContext(ctx).Where("id = ?", id).Take(&out).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, identities.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	return &out, nil
}
