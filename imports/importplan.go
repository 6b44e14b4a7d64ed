package imports

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/provisor/provisor/audit"
	"github.com/provisor/provisor/connectors"
	"github.com/provisor/provisor/connectors/configured"
	"github.com/provisor/provisor/identities"
)

// collector is the ImportSink of a run: it keeps what the connector reads,
// keyed by lower-case external id (DNs and usernames compare without case).
type collector struct {
	accounts   map[string]connectors.ImportedAccount
	accOrder   []string
	ents       map[string]connectors.Entitlement
	entOrder   []string
	members    map[string][]string
	memberDiff map[string]memberDiff
	sawMembers bool
	notes      []string
	present    map[string]bool
	deleted    []string

	// progress, when set, is told how many objects were read, at most
	// once per progressEvery.
	progress     func(ctx context.Context, read int)
	read         int
	lastProgress time.Time
}

// progressEvery is how often an import says how far it got.
const progressEvery = time.Second

func newCollector() *collector {
	return &collector{accounts: map[string]connectors.ImportedAccount{}, ents: map[string]connectors.Entitlement{}, members: map[string][]string{}}
}

// counted notes one more object read.
func (c *collector) counted(ctx context.Context) {
	c.read++
	if c.progress != nil && time.Since(c.lastProgress) >= progressEvery {
		c.lastProgress = time.Now()
		c.progress(ctx, c.read)
	}
}

func key(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

func (c *collector) Account(ctx context.Context, a connectors.ImportedAccount) error {
	if strings.TrimSpace(a.Username) == "" {
		return nil
	}
	c.counted(ctx)
	if a.ExternalID == "" {
		a.ExternalID = a.Username
	}
	k := key(a.ExternalID)
	if _, ok := c.accounts[k]; !ok {
		c.accOrder = append(c.accOrder, k)
	}
	c.accounts[k] = a
	return nil
}

func (c *collector) Entitlement(ctx context.Context, e connectors.Entitlement) error {
	if e.ExternalID == "" {
		return nil
	}
	c.counted(ctx)
	k := key(e.ExternalID)
	if _, ok := c.ents[k]; !ok {
		c.entOrder = append(c.entOrder, k)
	}
	c.ents[k] = e
	return nil
}

func (c *collector) Deleted(_ context.Context, externalID string) error {
	c.deleted = append(c.deleted, key(externalID))
	return nil
}

func (c *collector) Members(_ context.Context, group string, members []string) error {
	c.sawMembers = true
	out := make([]string, len(members))
	for i, m := range members {
		out[i] = key(m)
	}
	c.members[key(group)] = out
	return nil
}

// Note keeps what the connector says about the import as a whole.
func (c *collector) Note(msg string) { c.notes = append(c.notes, msg) }

// noted is summary with the connector's notes before it.
func (c *collector) noted(summary string) string {
	if len(c.notes) == 0 {
		return summary
	}
	return strings.Join(c.notes, "; ") + ". " + summary
}

// memberDiff is what a group gained and lost in a delta.
type memberDiff struct{ added, removed []string }

func (c *collector) MemberChanges(_ context.Context, group string, added, removed []string) error {
	c.sawMembers = true
	if c.memberDiff == nil {
		c.memberDiff = map[string]memberDiff{}
	}
	d := c.memberDiff[key(group)]
	for _, m := range added {
		d.added = append(d.added, key(m))
	}
	for _, m := range removed {
		d.removed = append(d.removed, key(m))
	}
	c.memberDiff[key(group)] = d
	return nil
}

func (c *collector) Present(_ context.Context, ids []string) error {
	if c.present == nil {
		c.present = map[string]bool{}
	}
	for _, id := range ids {
		c.present[key(id)] = true
	}
	return nil
}

// state is the portal's view of one connector.
type state struct {
	accounts  []identities.Account
	accByExt  map[string]*identities.Account
	accByUser map[string]*identities.Account
	ents      []identities.Entitlement
	entByExt  map[string]*identities.Entitlement
	// members maps an entitlement id to its account ids.
	members map[string]map[string]bool
	// groups maps an account id to its entitlement ids.
	groups map[string]map[string]bool
	ids    map[string]*identities.Identity
}

func loadState(tx *gorm.DB, connectorID string) (*state, error) {
	st := &state{accByExt: map[string]*identities.Account{}, accByUser: map[string]*identities.Account{}, entByExt: map[string]*identities.Entitlement{},
		members: map[string]map[string]bool{}, groups: map[string]map[string]bool{}, ids: map[string]*identities.Identity{}}
	if err := tx.Where("connector_id = ?", connectorID).Order("username").Find(&st.accounts).Error; err != nil {
		return nil, err
	}
	for i := range st.accounts {
		a := &st.accounts[i]
		if a.ExternalID != "" {
			st.accByExt[key(a.ExternalID)] = a
		}
		st.accByUser[key(a.Username)] = a
	}
	if err := tx.Where("connector_id = ?", connectorID).Order("external_id").Find(&st.ents).Error; err != nil {
		return nil, err
	}
	for i := range st.ents {
		st.entByExt[key(st.ents[i].ExternalID)] = &st.ents[i]
	}
	var ms []identities.Membership
	if err := tx.Model(&identities.Membership{}).Joins("JOIN accounts a ON a.id = memberships.account_id").
		Where("a.connector_id = ?", connectorID).Select("memberships.account_id, memberships.entitlement_id").Find(&ms).Error; err != nil {
		return nil, err
	}
	for _, m := range ms {
		if st.members[m.EntitlementID] == nil {
			st.members[m.EntitlementID] = map[string]bool{}
		}
		st.members[m.EntitlementID][m.AccountID] = true
		if st.groups[m.AccountID] == nil {
			st.groups[m.AccountID] = map[string]bool{}
		}
		st.groups[m.AccountID][m.EntitlementID] = true
	}
	var linked []identities.Identity
	if err := tx.Model(&identities.Identity{}).Where("id IN (SELECT identity_id FROM accounts WHERE connector_id = ? AND identity_id IS NOT NULL)", connectorID).
		Find(&linked).Error; err != nil {
		return nil, err
	}
	for i := range linked {
		st.ids[linked[i].ID] = &linked[i]
	}
	return st, nil
}

func accountStatus(a connectors.ImportedAccount) string {
	if a.Locked {
		return "locked"
	}
	return "enabled"
}

// plan compares what a run read with the portal's view and lists the
// changes, in the order they apply: entitlements, accounts, memberships.
// With readsManagers, account changes carry the manager each account
// states and the managers of identities follow (see Importer).
func plan(col *collector, st *state, mode connectors.ImportMode, connectorID string, readsManagers bool) ([]PlannedChange, ImportCounts) {
	p := newPlanner(col, st, mode, connectorID)
	p.entitlements()
	p.matchAccounts()
	p.accounts(readsManagers)
	p.knownAccounts()
	// Memberships. Directories give each group's complete member list
	// (Members); other systems give each account's groups.
	if col.sawMembers || col.present != nil {
		p.membershipsByGroup()
	} else {
		p.membershipsByAccount()
	}
	if readsManagers {
		p.out = append(p.out, planManagers(col, st, p.known, connectorID, &p.c)...)
	}
	if p.c.AccountsKnown > 0 {
		p.c.RiskPercent = math.Round(float64(p.c.AccountsDeleted+p.c.AccountsLocked)*1000/float64(p.c.AccountsKnown)) / 10
	}
	return p.out, p.c
}

// planner holds what plan has found so far: the changes listed and
// counted, and how the accounts read match those the portal knows.
type planner struct {
	col         *collector
	st          *state
	mode        connectors.ImportMode
	connectorID string
	deleted     map[string]bool

	out []PlannedChange
	c   ImportCounts

	// match maps an account read (by key) to the portal's account it is;
	// claimed holds the portal ids matched.
	match   map[string]*identities.Account
	claimed map[string]bool
	// known maps an account key (as the system names it) to the account's
	// current portal id, or "" for an account this import creates;
	// keyOfID is its reverse for the accounts that exist.
	known   map[string]string
	keyOfID map[string]string
}

func newPlanner(col *collector, st *state, mode connectors.ImportMode, connectorID string) *planner {
	p := &planner{col: col, st: st, mode: mode, connectorID: connectorID, deleted: map[string]bool{}}
	p.c.AccountsRead, p.c.GroupsRead = len(col.accounts), len(col.ents)
	for _, a := range st.accounts {
		if a.Status != "deleted" {
			p.c.AccountsKnown++
		}
	}
	for _, id := range col.deleted {
		p.deleted[id] = true
	}
	return p
}

// gone reports whether an object the portal knows left the system.
func (p *planner) gone(ext string, seen bool) bool {
	k := key(ext)
	switch {
	case p.deleted[k]:
		return true
	case seen:
		return false
	case p.mode == connectors.ImportFull:
		return true
	case p.col.present != nil:
		return !p.col.present[k]
	}
	return false
}

// entitlements lists the entitlements to create, update and delete.
func (p *planner) entitlements() {
	col, st := p.col, p.st
	for _, k := range col.entOrder {
		e := col.ents[k]
		kind := e.Kind
		if !identities.ValidKind(kind) {
			kind = identities.KindGroup
		}
		name := e.Name
		if name == "" {
			name = e.ExternalID
		}
		old := st.entByExt[k]
		switch {
		case old == nil:
			p.out = append(p.out, PlannedChange{Op: ChangeCreateEntitlement, ExternalID: e.ExternalID, Name: name, Kind: kind})
			p.c.EntitlementsCreated++
		case old.Deleted || old.Name != name || old.Kind != kind || old.ExternalID != e.ExternalID:
			p.out = append(p.out, PlannedChange{Op: ChangeUpdateEntitlement, ExternalID: e.ExternalID, Name: name, Kind: kind})
			p.c.EntitlementsUpdated++
		}
	}
	for _, e := range st.ents {
		_, seen := col.ents[key(e.ExternalID)]
		if !e.Deleted && p.gone(e.ExternalID, seen) {
			p.out = append(p.out, PlannedChange{Op: ChangeDeleteEntitlement, ExternalID: e.ExternalID, Name: e.Name})
			p.c.EntitlementsDeleted++
		}
	}
}

// matchAccounts matches the accounts read to the portal's by external id
// first, then by username (accounts made by a job before the system's key
// was known, or moved since).
func (p *planner) matchAccounts() {
	col, st := p.col, p.st
	p.match, p.claimed = map[string]*identities.Account{}, map[string]bool{}
	for _, k := range col.accOrder {
		if old := st.accByExt[k]; old != nil && !p.claimed[old.ID] {
			p.match[k], p.claimed[old.ID] = old, true
		}
	}
	for _, k := range col.accOrder {
		if p.match[k] != nil {
			continue
		}
		if old := st.accByUser[key(col.accounts[k].Username)]; old != nil && !p.claimed[old.ID] {
			p.match[k], p.claimed[old.ID] = old, true
		}
	}
}

// accounts lists the accounts to create, update (lock, unlock) and delete.
func (p *planner) accounts(readsManagers bool) {
	col, st := p.col, p.st
	for _, k := range col.accOrder {
		a := col.accounts[k]
		status := accountStatus(a)
		ch := PlannedChange{ExternalID: a.ExternalID, Username: a.Username, DisplayName: a.DisplayName, Email: a.Email,
			Correlation: a.Correlation, Status: status}
		if readsManagers {
			m := key(a.Manager)
			ch.Manager = &m
		}
		old := p.match[k]
		if old == nil {
			ch.Op = ChangeCreateAccount
			p.out = append(p.out, ch)
			p.c.AccountsCreated++
			continue
		}
		ch.Before = old.Status
		changed := old.Status != status || old.ExternalID != a.ExternalID || old.Username != a.Username ||
			(ch.Manager != nil && old.ManagerExternalID != *ch.Manager)
		if old.IdentityID != nil {
			// Identities this connector made follow its names and emails.
			if id := st.ids[*old.IdentityID]; id != nil && id.ImportedBy(p.connectorID) && (id.DisplayName != nonEmpty(a.DisplayName, a.Username) || id.Email != a.Email) {
				changed = true
			}
		}
		if !changed {
			continue
		}
		ch.Op = ChangeUpdateAccount
		p.out = append(p.out, ch)
		switch {
		case old.Status == "enabled" && status == "locked":
			p.c.AccountsLocked++
		case old.Status == "locked" && status == "enabled":
			p.c.AccountsUnlocked++
		default:
			p.c.AccountsUpdated++
		}
	}
	for i := range st.accounts {
		a := &st.accounts[i]
		if a.Status == "deleted" || p.claimed[a.ID] {
			continue
		}
		ext := a.ExternalID
		if ext == "" {
			ext = a.Username
		}
		if p.gone(ext, false) {
			p.out = append(p.out, PlannedChange{Op: ChangeDeleteAccount, ExternalID: ext, Username: a.Username, Before: a.Status, Status: "deleted"})
			p.c.AccountsDeleted++
		}
	}
}

// accountKey is an account's key as the system names it.
func accountKey(acc *identities.Account) string {
	if acc.ExternalID != "" {
		return key(acc.ExternalID)
	}
	return key(acc.Username)
}

// knownAccounts works out the accounts of the connector once the account
// changes listed are applied (known and keyOfID).
func (p *planner) knownAccounts() {
	col, st := p.col, p.st
	p.known = map[string]string{}
	for i := range st.accounts {
		if st.accounts[i].Status != "deleted" {
			p.known[accountKey(&st.accounts[i])] = st.accounts[i].ID
		}
	}
	for _, k := range col.accOrder {
		if old := p.match[k]; old != nil {
			delete(p.known, accountKey(old))
			p.known[k] = old.ID
		} else {
			p.known[k] = ""
		}
	}
	for _, ch := range p.out {
		if ch.Op == ChangeDeleteAccount {
			delete(p.known, key(ch.ExternalID))
		}
	}
	p.keyOfID = make(map[string]string, len(p.known))
	for k, id := range p.known {
		if id != "" {
			p.keyOfID[id] = k
		}
	}
}

// entID is the portal id of the entitlement with external id ext, or "".
func (p *planner) entID(ext string) string {
	if e := p.st.entByExt[key(ext)]; e != nil {
		return e.ID
	}
	return ""
}

func (p *planner) addOrRemove(accountExt, groupExt string, add bool) {
	op := ChangeRemoveMembership
	if add {
		op = ChangeAddMembership
		p.c.MembershipsAdded++
	} else {
		p.c.MembershipsRemoved++
	}
	p.out = append(p.out, PlannedChange{Op: op, ExternalID: accountExt, Group: groupExt})
}

// membershipsByGroup lists the membership changes from each group's
// member list, complete or as a delta.
func (p *planner) membershipsByGroup() {
	col, st := p.col, p.st
	for _, gk := range col.entOrder {
		list, ok := col.members[gk]
		diff, changed := col.memberDiff[gk]
		if !ok && !changed {
			continue
		}
		g := col.ents[gk]
		have := map[string]bool{}
		if id := p.entID(g.ExternalID); id != "" {
			for accID := range st.members[id] {
				if ak, ok := p.keyOfID[accID]; ok {
					have[ak] = true
				}
			}
		}
		if !ok {
			// A delta of the members: what the group had, changed.
			list = nil
			gone := map[string]bool{}
			for _, m := range diff.removed {
				gone[m] = true
			}
			for m := range have {
				if !gone[m] {
					list = append(list, m)
				}
			}
			for _, m := range diff.added {
				if !gone[m] {
					list = append(list, m)
				}
			}
		}
		want := map[string]bool{}
		for _, m := range list {
			if _, ok := p.known[m]; ok {
				want[m] = true
			}
		}
		for _, m := range sortedSet(want) {
			if !have[m] {
				p.addOrRemove(m, g.ExternalID, true)
			}
		}
		for _, m := range sortedSet(have) {
			if !want[m] {
				p.addOrRemove(m, g.ExternalID, false)
			}
		}
	}
}

// membershipsByAccount lists the membership changes from each account's
// groups.
func (p *planner) membershipsByAccount() {
	col, st := p.col, p.st
	entKeyByID := map[string]string{}
	for i := range st.ents {
		entKeyByID[st.ents[i].ID] = key(st.ents[i].ExternalID)
	}
	for _, k := range col.accOrder {
		a := col.accounts[k]
		want := map[string]bool{}
		for _, g := range a.Entitlements {
			if _, ok := col.ents[key(g)]; ok || st.entByExt[key(g)] != nil {
				want[key(g)] = true
			}
		}
		have := map[string]bool{}
		if old := p.match[k]; old != nil {
			for eid := range st.groups[old.ID] {
				have[entKeyByID[eid]] = true
			}
		}
		for _, g := range sortedSet(want) {
			if !have[g] {
				p.addOrRemove(k, g, true)
			}
		}
		for _, g := range sortedSet(have) {
			if !want[g] {
				p.addOrRemove(k, g, false)
			}
		}
	}
}

// planManagers lists the ChangeSetManager changes of a run: for every
// account of the connector after it (known: account key to portal id, ""
// for those it creates), the manager it states now if the run read it, or
// as stated before. Managers are resolved among all of these accounts, so
// the order the directory lists them in does not matter. A change is
// listed when it would change an identity's manager, or when that cannot
// be told before applying (a new account, an account linked now): apply
// decides again on what is there then.
func planManagers(col *collector, st *state, known map[string]string, connectorID string, c *ImportCounts) []PlannedChange {
	var out []PlannedChange
	accByID := make(map[string]*identities.Account, len(st.accounts))
	for i := range st.accounts {
		accByID[st.accounts[i].ID] = &st.accounts[i]
	}
	keys := make([]string, 0, len(known))
	for k := range known {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	// identityOf returns an account's identity and whether it is known
	// before applying: an account created now, or unlinked and read now
	// (it may be linked), is not.
	identityOf := func(k string) (*identities.Identity, bool) {
		acc := accByID[known[k]]
		if acc == nil {
			return nil, false
		}
		if acc.IdentityID == nil {
			_, read := col.accounts[k]
			return nil, !read
		}
		return st.ids[*acc.IdentityID], true
	}
	for _, k := range keys {
		var stated, ext, username string
		if a, ok := col.accounts[k]; ok {
			stated, ext, username = key(a.Manager), a.ExternalID, a.Username
		} else if acc := accByID[known[k]]; acc != nil {
			stated, ext, username = key(acc.ManagerExternalID), nonEmpty(acc.ExternalID, acc.Username), acc.Username
		}
		subject, sure := identityOf(k)
		if sure && (subject == nil || subject.Status == "deleted") {
			continue // an account with no identity: nobody's manager to set
		}
		want, wantSure := "", true
		if stated != "" {
			if _, ok := known[stated]; ok {
				m, ok := identityOf(stated)
				switch {
				case !ok:
					wantSure = false
				case m != nil && m.Status != "deleted":
					want = m.ID
				}
			}
		}
		if !sure && stated == "" {
			continue // a new identity has no manager to clear
		}
		ch := PlannedChange{Op: ChangeSetManager, ExternalID: ext, Username: username, Manager: &stated}
		if !sure || !wantSure {
			out = append(out, ch)
			c.ManagersSet++
			continue
		}
		write, to := managerUpdate(subject, want, connectorID)
		if !write {
			continue
		}
		out = append(out, ch)
		if to != nil {
			c.ManagersSet++
		} else {
			c.ManagersCleared++
		}
	}
	return out
}

// managerUpdate decides what an import of connector connectorID does to
// the manager of identity id when its directory names the identity want
// as the manager ("" when it states none, names no account it has, or
// names id itself). It returns whether to write, and the manager to write
// (nil: none). The directory wins where it states a manager, over one set
// by hand; where it states none, it clears only a manager it set itself.
// A manager another connector's import set is left to that connector.
func managerUpdate(id *identities.Identity, want, connectorID string) (bool, *string) {
	if want == id.ID {
		want = "" // a manager pointing at the identity itself is ignored
	}
	src := id.ManagerSourceConnectorID
	ours := src != nil && *src == connectorID
	if src != nil && !ours && id.ManagerID != nil {
		return false, nil
	}
	if want != "" {
		if ours && id.ManagerID != nil && *id.ManagerID == want {
			return false, nil
		}
		return true, &want
	}
	return ours && id.ManagerID != nil, nil
}

func sortedSet(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func nonEmpty(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// apply makes the planned changes in tx, on st: the portal's view read in
// tx, or nil to read it now (a plan approved later applies to what is
// there then).
func (im *Importer) apply(ctx context.Context, tx *gorm.DB, rec *configured.Record, importID string, changes []PlannedChange, st *state) (ImportCounts, error) {
	var counts ImportCounts
	if st == nil {
		var err error
		if st, err = loadState(tx, rec.ID); err != nil {
			return counts, err
		}
	}
	ap := &applier{im: im, tx: tx, rec: rec, st: st, now: time.Now().UTC()}
	if err := ap.entitlements(changes); err != nil {
		return counts, err
	}
	if err := ap.accounts(changes); err != nil {
		return counts, err
	}
	if err := im.applyManagers(tx, rec, importID, changes, ap.accByKey, ap.link, ap.now, &counts); err != nil {
		return counts, err
	}
	if err := ap.memberships(changes); err != nil {
		return counts, err
	}
	counts.IdentitiesCreated, counts.IdentitiesLinked = ap.identitiesCreated, ap.link.linkedExisting
	return counts, nil
}

// applier makes the planned changes of one import, phase by phase, on the
// portal's view st, which it keeps up to date as it goes.
type applier struct {
	im  *Importer
	tx  *gorm.DB
	rec *configured.Record
	st  *state
	now time.Time

	link *linker
	// accByKey holds the connector's accounts by key, as applied.
	accByKey map[string]*identities.Account
	// pending holds the usernames of the accounts to create.
	pending           map[string]bool
	newAccounts       []identities.Account
	newIdentities     []identities.Identity
	identitiesCreated int
}

// entitlements creates, updates and deletes the entitlements.
func (ap *applier) entitlements(changes []PlannedChange) error {
	tx, rec, st, now := ap.tx, ap.rec, ap.st, ap.now
	var newEnts []identities.Entitlement
	for _, ch := range changes {
		k := key(ch.ExternalID)
		switch ch.Op {
		case ChangeCreateEntitlement, ChangeUpdateEntitlement:
			if old := st.entByExt[k]; old != nil {
				if err := tx.Model(&identities.Entitlement{}).Where("id = ?", old.ID).Updates(map[string]any{
					"external_id": ch.ExternalID, "name": ch.Name, "kind": ch.Kind, "deleted": false, "updated_at": now}).Error; err != nil {
					return err
				}
				continue
			}
			e := identities.Entitlement{ID: uuid.NewString(), ConnectorID: rec.ID, ExternalID: ch.ExternalID, Name: ch.Name, Kind: ch.Kind,
				Policy: identities.DefaultPolicy(rec, ch.ExternalID), CreatedAt: now, UpdatedAt: now}
			newEnts = append(newEnts, e)
			st.entByExt[k] = &newEnts[len(newEnts)-1]
		case ChangeDeleteEntitlement:
			old := st.entByExt[k]
			if old == nil {
				continue
			}
			if err := tx.Model(&identities.Entitlement{}).Where("id = ?", old.ID).Updates(map[string]any{"deleted": true, "updated_at": now}).Error; err != nil {
				return err
			}
			if err := tx.Where("entitlement_id = ?", old.ID).Delete(&identities.Membership{}).Error; err != nil {
				return err
			}
		}
	}
	if err := tx.CreateInBatches(newEnts, 500).Error; err != nil {
		return err
	}
	if err := identities.RaiseAdminGroupTx(tx, rec, now); err != nil {
		return err
	}
	// Re-point the map at stored rows (the slice may have grown after the
	// pointers were taken).
	for i := range newEnts {
		st.entByExt[key(newEnts[i].ExternalID)] = &newEnts[i]
	}
	return nil
}

// accounts creates, updates and deletes the accounts and links each to
// its identity, creating the identities needed. The identities the
// connector made show its name, which may have changed since.
func (ap *applier) accounts(changes []PlannedChange) error {
	tx, rec, st, now := ap.tx, ap.rec, ap.st, ap.now
	if err := tx.Model(&identities.Identity{}).Where("source_connector_id = ? AND source <> ?", rec.ID, rec.Name).
		Updates(map[string]any{"source": rec.Name, "updated_at": now}).Error; err != nil {
		return err
	}
	var err error
	if ap.link, err = newLinker(tx, rec, st); err != nil {
		return err
	}
	ap.pending = map[string]bool{}
	ap.accByKey = map[string]*identities.Account{}
	for i := range st.accounts {
		a := &st.accounts[i]
		if a.ExternalID != "" {
			ap.accByKey[key(a.ExternalID)] = a
		}
	}
	for _, ch := range changes {
		switch ch.Op {
		case ChangeCreateAccount, ChangeUpdateAccount:
			if err := ap.account(ch); err != nil {
				return err
			}
		case ChangeDeleteAccount:
			if err := ap.deleteAccount(ch); err != nil {
				return err
			}
		}
	}
	if err := tx.CreateInBatches(ap.newIdentities, 500).Error; err != nil {
		return err
	}
	if err := tx.CreateInBatches(ap.newAccounts, 500).Error; err != nil {
		return err
	}
	ap.identitiesCreated = len(ap.newIdentities)
	for i := range ap.newAccounts {
		ap.accByKey[key(ap.newAccounts[i].ExternalID)] = &ap.newAccounts[i]
	}
	return nil
}

// account makes a create or update of an account: an account the portal
// does not know is created (in a batch, after the loop), one it knows is
// updated and, when it has no identity yet, linked to one.
func (ap *applier) account(ch PlannedChange) error {
	tx, rec, st, now, link := ap.tx, ap.rec, ap.st, ap.now, ap.link
	k := key(ch.ExternalID)
	old := st.accByExt[k]
	if old == nil {
		old = st.accByUser[key(ch.Username)]
	}
	if old == nil {
		if ap.pending[key(ch.Username)] {
			return nil // two entries with one username: the first one wins
		}
		ap.pending[key(ch.Username)] = true
		a := identities.Account{ID: uuid.NewString(), ConnectorID: rec.ID, Username: ch.Username, ExternalID: ch.ExternalID,
			Status: ch.Status, CreatedAt: now, UpdatedAt: now}
		if ch.Manager != nil {
			a.ManagerExternalID = *ch.Manager
		}
		idn, created := link.identityFor(ch)
		if idn != "" {
			a.IdentityID = &idn
		}
		if created != nil {
			ap.newIdentities = append(ap.newIdentities, *created)
		}
		ap.newAccounts = append(ap.newAccounts, a)
		return nil
	}
	updates := map[string]any{"status": ch.Status, "external_id": ch.ExternalID, "updated_at": now}
	if ch.Manager != nil {
		updates["manager_external_id"] = *ch.Manager
		old.ManagerExternalID = *ch.Manager
	}
	if old.Username != ch.Username {
		if err := ap.im.freeUsername(tx, rec.ID, old.ID, ch.Username, now); err != nil {
			return err
		}
		updates["username"] = ch.Username
	}
	if old.IdentityID == nil {
		idn, created := link.identityFor(ch)
		if created != nil {
			ap.newIdentities = append(ap.newIdentities, *created)
		}
		if idn != "" {
			updates["identity_id"] = idn
			old.IdentityID = &idn
		}
	} else if err := link.refresh(*old.IdentityID, ch, now); err != nil {
		return err
	}
	if err := tx.Model(&identities.Account{}).Where("id = ?", old.ID).Updates(updates).Error; err != nil {
		return err
	}
	old.ExternalID = ch.ExternalID
	ap.accByKey[k] = old
	return nil
}

// deleteAccount marks an account deleted and removes its memberships.
func (ap *applier) deleteAccount(ch PlannedChange) error {
	tx, st, now := ap.tx, ap.st, ap.now
	old := st.accByExt[key(ch.ExternalID)]
	if old == nil {
		old = st.accByUser[key(ch.Username)]
	}
	if old == nil || old.Status == "deleted" {
		return nil
	}
	if err := tx.Where("account_id = ?", old.ID).Delete(&identities.Membership{}).Error; err != nil {
		return err
	}
	if err := tx.Model(&identities.Account{}).Where("id = ?", old.ID).Updates(map[string]any{"status": "deleted", "updated_at": now}).Error; err != nil {
		return err
	}
	old.Status = "deleted"
	return nil
}

// memberships adds and removes the memberships, once every account and
// entitlement is in.
func (ap *applier) memberships(changes []PlannedChange) error {
	tx, st, now := ap.tx, ap.st, ap.now
	var newMembers []identities.Membership
	for _, ch := range changes {
		if ch.Op != ChangeAddMembership && ch.Op != ChangeRemoveMembership {
			continue
		}
		a, e := ap.accByKey[key(ch.ExternalID)], st.entByExt[key(ch.Group)]
		if a == nil || e == nil {
			continue
		}
		if ch.Op == ChangeAddMembership {
			newMembers = append(newMembers, identities.Membership{AccountID: a.ID, EntitlementID: e.ID, GrantedAt: now})
			continue
		}
		if err := tx.Where("account_id = ? AND entitlement_id = ?", a.ID, e.ID).Delete(&identities.Membership{}).Error; err != nil {
			return err
		}
	}
	if len(newMembers) > 0 {
		if err := tx.Clauses(clause.OnConflict{DoNothing: true}).CreateInBatches(newMembers, 1000).Error; err != nil {
			return err
		}
	}
	return nil
}

// applyManagers makes the ChangeSetManager changes, once every account of
// the import is in (accByKey: the connector's accounts by key, as applied),
// deciding each again on the identities as they are now (managerUpdate),
// and records each change in the audit trail.
func (im *Importer) applyManagers(tx *gorm.DB, rec *configured.Record, importID string, changes []PlannedChange,
	accByKey map[string]*identities.Account, link *linker, now time.Time, counts *ImportCounts) error {
	identityOf := func(ext string) *identities.Identity {
		a := accByKey[key(ext)]
		if a == nil || a.Status == "deleted" || a.IdentityID == nil {
			return nil
		}
		return link.all[*a.IdentityID] // nil for a deleted identity
	}
	byManager := map[string][]string{} // new manager id ("" for none) to identities
	var events []audit.Event
	for _, ch := range changes {
		if ch.Op != ChangeSetManager || ch.Manager == nil {
			continue
		}
		subject := identityOf(ch.ExternalID)
		if subject == nil {
			continue
		}
		want := ""
		if *ch.Manager != "" {
			if m := identityOf(*ch.Manager); m != nil {
				want = m.ID
			}
		}
		write, to := managerUpdate(subject, want, rec.ID)
		if !write {
			continue
		}
		from := ""
		if subject.ManagerID != nil {
			from = *subject.ManagerID
		}
		subject.ManagerID, subject.ManagerSourceConnectorID = to, nil
		if to != nil {
			subject.ManagerSourceConnectorID = &rec.ID
			want = *to
			counts.ManagersSet++
		} else {
			want = ""
			counts.ManagersCleared++
		}
		byManager[want] = append(byManager[want], subject.ID)
		details, err := json.Marshal(map[string]any{"manager_id": want, "from": from, "source": "directory",
			"connector": rec.Name, "connector_id": rec.ID, "import": importID, "manager_dn": *ch.Manager})
		if err != nil {
			return err
		}
		events = append(events, audit.Event{At: now, Actor: audit.ActorSystem, Action: "identity.manager", TargetType: "identity",
			TargetID: subject.ID, Details: string(details)})
	}
	for _, m := range sortedKeys(byManager) {
		ids := byManager[m]
		var manager, source any
		if m != "" {
			manager, source = m, rec.ID
		}
		for start := 0; start < len(ids); start += 500 {
			if err := tx.Model(&identities.Identity{}).Where("id IN ?", ids[start:min(start+500, len(ids))]).Updates(map[string]any{
				"manager_id": manager, "manager_source_connector_id": source, "updated_at": now}).Error; err != nil {
				return err
			}
		}
	}
	if len(events) > 0 {
		if err := tx.CreateInBatches(events, 500).Error; err != nil {
			return fmt.Errorf("audit: record identity.manager: %w", err)
		}
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// freeUsername renames a deleted account that holds the username an
// imported account takes (an account deleted and made again under another
// key), so the connector's usernames stay unique.
func (im *Importer) freeUsername(tx *gorm.DB, connectorID, keepID, username string, now time.Time) error {
	return tx.Model(&identities.Account{}).
		Where("connector_id = ? AND username = ? AND id <> ? AND status = 'deleted'", connectorID, username, keepID).
		Updates(map[string]any{"username": gorm.Expr("username || ? || id", "~"), "updated_at": now}).Error
}

// linker finds or makes the identity of an imported account: by the
// correlation value among the identities this connector made, then among
// usernames, then among emails; a new identity otherwise.
type linker struct {
	tx  *gorm.DB
	rec *configured.Record
	st  *state

	bySourceExt map[string]string
	byUsername  map[string]string
	byEmail     map[string]string
	taken       map[string]bool
	// linked holds identities that already have an account on the connector.
	linked map[string]bool
	all    map[string]*identities.Identity
	// linkedExisting counts accounts linked to identities that existed.
	linkedExisting int
}

func newLinker(tx *gorm.DB, rec *configured.Record, st *state) (*linker, error) {
	l := &linker{tx: tx, rec: rec, st: st, bySourceExt: map[string]string{}, byUsername: map[string]string{},
		byEmail: map[string]string{}, taken: map[string]bool{}, linked: map[string]bool{}, all: map[string]*identities.Identity{}}
	var ids []identities.Identity
	if err := tx.Model(&identities.Identity{}).Where("status <> 'deleted'").Find(&ids).Error; err != nil {
		return nil, err
	}
	for i := range ids {
		id := &ids[i]
		l.all[id.ID] = id
		if id.ImportedBy(rec.ID) && id.ExternalID != "" {
			l.bySourceExt[key(id.ExternalID)] = id.ID
		}
		l.byUsername[key(id.Username)] = id.ID
		if id.Email != "" {
			if _, dup := l.byEmail[key(id.Email)]; dup {
				l.byEmail[key(id.Email)] = "" // ambiguous: match nobody
			} else {
				l.byEmail[key(id.Email)] = id.ID
			}
		}
	}
	var usernames []string
	if err := tx.Model(&identities.Identity{}).Pluck("username", &usernames).Error; err != nil {
		return nil, err
	}
	for _, u := range usernames {
		l.taken[key(u)] = true
	}
	for _, a := range st.accounts {
		if a.IdentityID != nil && a.Status != "deleted" {
			l.linked[*a.IdentityID] = true
		}
	}
	return l, nil
}

// identityFor returns the identity id for an account that has none, and
// the identity to create when it is new.
func (l *linker) identityFor(ch PlannedChange) (string, *identities.Identity) {
	corr := ch.Correlation
	if corr == "" {
		corr = ch.Username
	}
	k := key(corr)
	candidates := []string{l.bySourceExt[k], l.byUsername[k]}
	if strings.Contains(corr, "@") {
		candidates = append(candidates, l.byEmail[k])
	}
	for _, id := range candidates {
		if id != "" && !l.linked[id] {
			l.linked[id] = true
			l.linkedExisting++
			return id, nil
		}
		if id != "" {
			// That person has an account here already: a second account is
			// left unlinked rather than given to the wrong person.
			return "", nil
		}
	}
	username := ch.Username
	for n := 2; l.taken[key(username)]; n++ {
		username = fmt.Sprintf("%s-%d", ch.Username, n)
	}
	now := time.Now().UTC()
	id := &identities.Identity{ID: uuid.NewString(), Username: username, DisplayName: nonEmpty(ch.DisplayName, ch.Username), Email: ch.Email,
		Source: l.rec.Name, SourceConnectorID: &l.rec.ID, ExternalID: corr, Status: "active", CreatedAt: now, UpdatedAt: now}
	l.taken[key(username)] = true
	l.bySourceExt[k] = id.ID
	l.linked[id.ID] = true
	l.all[id.ID] = id
	return id.ID, id
}

// refresh copies the display name and email of an account to its identity
// when the identity came from a directory (local ones are left alone).
func (l *linker) refresh(identityID string, ch PlannedChange, now time.Time) error {
	id := l.all[identityID]
	if id == nil || !id.ImportedBy(l.rec.ID) {
		return nil
	}
	name := nonEmpty(ch.DisplayName, ch.Username)
	if id.DisplayName == name && id.Email == ch.Email {
		return nil
	}
	id.DisplayName, id.Email = name, ch.Email
	return l.tx.Model(&identities.Identity{}).Where("id = ?", identityID).Updates(map[string]any{"display_name": name, "email": ch.Email, "updated_at": now}).Error
}
