package imports_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/provisor/provisor/app/apptest"
	"github.com/provisor/provisor/audit"
	"github.com/provisor/provisor/connectors"
	"github.com/provisor/provisor/connectors/configured"
	"github.com/provisor/provisor/database/dbtest"
	"github.com/provisor/provisor/identities"
	"github.com/provisor/provisor/imports"
)

// fakeDir is a scripted directory: users and groups keyed by DN, with
// member lists on the groups, as LDAP has them.
type fakeDir struct {
	mu        sync.Mutex
	users     map[string]fakeUser
	groups    map[string][]string
	threshold float64
	imports   int
	// managers makes it a connectors.ManagerReader; a delta then hands
	// out only the users in changed (all of them when changed is nil).
	managers bool
	changed  map[string]bool
}

type fakeUser struct {
	username, name, email, corr string
	locked                      bool
	manager                     string // a DN
}

func newFakeDir() *fakeDir {
	return &fakeDir{users: map[string]fakeUser{}, groups: map[string][]string{}, threshold: 10}
}

func (f *fakeDir) Kind(op connectors.Operation) string {
	if op == connectors.OpImport {
		return "Import"
	}
	return "Fake"
}
func (f *fakeDir) CreateAccount(context.Context, connectors.Account) (connectors.Result, error) {
	return connectors.Result{}, connectors.Permanent(errors.New("read only"))
}
func (f *fakeDir) DeleteAccount(context.Context, connectors.Account) (connectors.Result, error) {
	return connectors.Result{}, connectors.Permanent(errors.New("read only"))
}
func (f *fakeDir) EnableAccount(context.Context, connectors.Account) (connectors.Result, error) {
	return connectors.Result{}, connectors.Permanent(errors.New("read only"))
}
func (f *fakeDir) DisableAccount(context.Context, connectors.Account) (connectors.Result, error) {
	return connectors.Result{}, connectors.Permanent(errors.New("read only"))
}
func (f *fakeDir) Grant(context.Context, connectors.Account, connectors.Entitlement) (connectors.Result, error) {
	return connectors.Result{}, connectors.Permanent(errors.New("read only"))
}
func (f *fakeDir) Revoke(context.Context, connectors.Account, connectors.Entitlement) (connectors.Result, error) {
	return connectors.Result{}, connectors.Permanent(errors.New("read only"))
}
func (f *fakeDir) Check(context.Context) connectors.Health { return connectors.Health{OK: true} }
func (f *fakeDir) DeletionThreshold() float64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.threshold
}

// Import hands out everything; a delta also lists what is present, so the
// importer finds deletions by comparison, as with LDAP.
func (f *fakeDir) Import(ctx context.Context, mode connectors.ImportMode, cookie string, sink connectors.ImportSink) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.imports++
	ds := sink.(connectors.DirectorySink)
	changed := f.changed
	if mode != connectors.ImportDelta {
		changed = nil
	}
	var present []string
	for _, dn := range sortedKeys(f.groups) {
		if err := sink.Entitlement(ctx, connectors.Entitlement{ExternalID: dn, Name: strings.TrimPrefix(strings.Split(dn, ",")[0], "cn="), Kind: "group"}); err != nil {
			return "", err
		}
		if err := ds.Members(ctx, dn, f.groups[dn]); err != nil {
			return "", err
		}
		present = append(present, dn)
	}
	for _, dn := range sortedKeys(f.users) {
		u := f.users[dn]
		present = append(present, dn)
		if changed != nil && !changed[dn] {
			continue
		}
		if err := sink.Account(ctx, connectors.ImportedAccount{Account: connectors.Account{Username: u.username, ExternalID: dn,
			DisplayName: u.name, Email: u.email}, Locked: u.locked, Correlation: u.corr, Manager: u.manager}); err != nil {
			return "", err
		}
	}
	if mode == connectors.ImportDelta {
		if err := ds.Present(ctx, present); err != nil {
			return "", err
		}
	}
	return fmt.Sprintf("n:%d", f.imports), nil
}

func (f *fakeDir) ReadsManagers() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.managers
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func userDN(u string) string  { return "uid=" + u + ",ou=people,dc=example,dc=test" }
func groupDN(g string) string { return "cn=" + g + ",ou=groups,dc=example,dc=test" }

type importBundle struct {
	*apptest.Bundle
	dir *fakeDir
	rec *configured.Record
}

func setupImport(t *testing.T, dialect string) *importBundle {
	dir := newFakeDir()
	b := apptest.New(t, dialect, &apptest.Options{NoStart: true, ConnectorTypes: []connectors.Type{{
		Name: "fakedir", Label: "Fake directory",
		New: func(connectors.Config) (connectors.Connector, error) { return dir, nil },
	}}})
	rec, err := b.Connectors.Create(b.Ctx, configured.Input{Name: "Corp", Type: "fakedir"})
	if err != nil {
		t.Fatal(err)
	}
	return &importBundle{Bundle: b, dir: dir, rec: rec}
}

func (b *importBundle) run(t *testing.T, mode connectors.ImportMode) *imports.Import {
	t.Helper()
	imp, err := b.Importer.Run(b.Ctx, b.rec.ID, mode, "")
	if err != nil {
		t.Fatalf("import: %v", err)
	}
	return imp
}

func (b *importBundle) accounts(t *testing.T) map[string]identities.Account {
	t.Helper()
	var list []identities.Account
	if err := b.DB.Gorm.Where("connector_id = ?", b.rec.ID).Find(&list).Error; err != nil {
		t.Fatal(err)
	}
	out := map[string]identities.Account{}
	for _, a := range list {
		out[a.Username] = a
	}
	return out
}

// memberships returns "group: user user" lines.
func (b *importBundle) memberships(t *testing.T) []string {
	t.Helper()
	var rows []struct{ Name, Username string }
	if err := b.DB.Gorm.Raw(`SELECT e.name, a.username FROM memberships m JOIN entitlements e ON e.id = m.entitlement_id
		JOIN accounts a ON a.id = m.account_id WHERE a.connector_id = ? ORDER BY e.name, a.username`, b.rec.ID).Scan(&rows).Error; err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range rows {
		out = append(out, r.Name+":"+r.Username)
	}
	return out
}

func TestImportCreatesCorrelatesAndFollowsChanges(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect string) {
		t.Parallel()
		b := setupImport(t, dialect)
		carol := b.Identity(t, "carol") // a local identity, matched by username
		dave, err := b.Identities.CreateIdentity(b.Ctx, identities.IdentityInput{Username: "dave", Email: "dave@corp.test"})
		if err != nil {
			t.Fatal(err)
		}
		b.Identity(t, "alice") // another alice: the directory's gets a new identity by its correlation value
		d := b.dir
		d.users[userDN("alice")] = fakeUser{username: "alice", name: "Alice A", email: "alice@corp.test", corr: "E100"}
		d.users[userDN("bob")] = fakeUser{username: "bob", name: "Bob B", locked: true, corr: "E101"}
		d.users[userDN("carol")] = fakeUser{username: "carol", name: "Carol C", corr: "carol"}
		d.users[userDN("dsmith")] = fakeUser{username: "dsmith", name: "Dave Smith", corr: "dave@corp.test"}
		d.groups[groupDN("staff")] = []string{userDN("alice"), userDN("bob"), "cn=not-an-account,dc=example,dc=test"}
		d.groups[groupDN("admins")] = []string{userDN("carol")}

		imp := b.run(t, connectors.ImportDelta) // no cookie yet: runs as full
		c := imp.Counts
		if imp.Mode != "full" || imp.Status != imports.ImportApplied || c.AccountsRead != 4 || c.GroupsRead != 2 ||
			c.AccountsCreated != 4 || c.EntitlementsCreated != 2 || c.MembershipsAdded != 3 || c.IdentitiesCreated != 2 || c.IdentitiesLinked != 2 {
			t.Fatalf("first import: %+v: %s", c, imp.Message)
		}
		acc := b.accounts(t)
		if acc["bob"].Status != "locked" || acc["alice"].Status != "enabled" || acc["alice"].ExternalID != userDN("alice") {
			t.Errorf("accounts: %+v", acc)
		}
		if *acc["carol"].IdentityID != carol.ID || *acc["dsmith"].IdentityID != dave.ID {
			t.Errorf("correlation: carol -> %v, dsmith -> %v", *acc["carol"].IdentityID, *acc["dsmith"].IdentityID)
		}
		alice, err := b.Identities.GetIdentity(b.Ctx, *acc["alice"].IdentityID)
		if err != nil || alice.Username != "alice-2" || alice.Source != "Corp" || alice.ExternalID != "E100" || alice.DisplayName != "Alice A" {
			t.Errorf("alice's identity: %+v %v", alice, err)
		}
		if got := strings.Join(b.memberships(t), " "); got != "admins:carol staff:alice staff:bob" {
			t.Errorf("memberships: %s", got)
		}
		var rec configured.Record
		b.DB.Gorm.Where("id = ?", b.rec.ID).Take(&rec)
		if rec.ImportCookie != "n:1" || rec.UpdatedAt.Sub(b.rec.UpdatedAt).Abs() > time.Microsecond {
			t.Errorf("cookie %q, updated %v (was %v)", rec.ImportCookie, rec.UpdatedAt, b.rec.UpdatedAt)
		}

		// Nothing changed: nothing to do.
		if imp := b.run(t, connectors.ImportFull); imp.Changed() {
			t.Errorf("second import changed: %s", imp.Message)
		}

		// Changes in the directory: a new user, bob unlocked and renamed,
		// alice leaves staff, a group appears, one account of 5 goes.
		d.users[userDN("erin")] = fakeUser{username: "erin", name: "Erin", corr: "E104"}
		d.users[userDN("bob")] = fakeUser{username: "bob", name: "Robert B", corr: "E101"}
		d.groups[groupDN("staff")] = []string{userDN("bob"), userDN("erin")}
		d.groups[groupDN("vpn")] = []string{userDN("carol")}
		imp = b.run(t, connectors.ImportDelta)
		c = imp.Counts
		if imp.Mode != "delta" || c.AccountsCreated != 1 || c.AccountsUnlocked != 1 || c.EntitlementsCreated != 1 ||
			c.MembershipsAdded != 2 || c.MembershipsRemoved != 1 || c.AccountsDeleted != 0 {
			t.Errorf("delta: %+v: %s", c, imp.Message)
		}
		bob, _ := b.Identities.GetIdentity(b.Ctx, *b.accounts(t)["bob"].IdentityID)
		if bob.DisplayName != "Robert B" {
			t.Errorf("bob's name: %q", bob.DisplayName)
		}
		if got := strings.Join(b.memberships(t), " "); got != "admins:carol staff:bob staff:erin vpn:carol" {
			t.Errorf("memberships: %s", got)
		}
		// A delta finds deletions by what is no longer present: 1 of 5 is
		// 20%, over the threshold, so raise it for this step.
		d.threshold = 25
		delete(d.users, userDN("dsmith"))
		delete(d.groups, groupDN("vpn"))
		imp = b.run(t, connectors.ImportDelta)
		if imp.Status != imports.ImportApplied || imp.Counts.AccountsDeleted != 1 || imp.Counts.EntitlementsDeleted != 1 {
			t.Fatalf("delta deletion: %+v %s", imp.Counts, imp.Message)
		}
		if acc := b.accounts(t); acc["dsmith"].Status != "deleted" {
			t.Errorf("dsmith: %+v", acc["dsmith"])
		}
		ents, _, _ := b.Identities.ListEntitlements(b.Ctx, b.rec.ID, identities.ListOpts{})
		if len(ents) != 2 {
			t.Errorf("entitlements left: %+v", ents)
		}
		// It comes back.
		d.users[userDN("dsmith")] = fakeUser{username: "dsmith", name: "Dave Smith", corr: "dave@corp.test"}
		if imp := b.run(t, connectors.ImportFull); imp.Counts.AccountsUpdated != 1 {
			t.Errorf("restore: %+v", imp.Counts)
		}
		if acc := b.accounts(t); acc["dsmith"].Status != "enabled" || *acc["dsmith"].IdentityID != dave.ID {
			t.Errorf("dsmith back: %+v", acc["dsmith"])
		}
	})
}

// TestImportAfterConnectorRename: the identities a connector's import made
// stay its own when the connector is renamed: later imports update them and
// link a returning account to its person, instead of making new ones.
func TestImportAfterConnectorRename(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect string) {
		t.Parallel()
		b := setupImport(t, dialect)
		d := b.dir
		d.threshold = 100
		d.users[userDN("alice")] = fakeUser{username: "alice", name: "Alice A", email: "alice@corp.test", corr: "E100"}
		d.users[userDN("bob")] = fakeUser{username: "bob", name: "Bob B", corr: "E101"}
		if imp := b.run(t, connectors.ImportFull); imp.Counts.IdentitiesCreated != 2 {
			t.Fatalf("first import: %s", imp.Message)
		}
		first := b.accounts(t)
		// Bob leaves; his identity stays.
		delete(d.users, userDN("bob"))
		if imp := b.run(t, connectors.ImportFull); imp.Counts.AccountsDeleted != 1 {
			t.Fatalf("bob leaves: %s", imp.Message)
		}

		if _, err := b.Connectors.Update(b.Ctx, b.rec.ID, configured.Input{Name: "Corp Directory"}); err != nil {
			t.Fatal(err)
		}
		// Alice's name and address change; Bob comes back under another entry.
		d.users[userDN("alice")] = fakeUser{username: "alice", name: "Alice Anders", email: "anders@corp.test", corr: "E100"}
		d.users[userDN("robert")] = fakeUser{username: "robert", name: "Robert B", corr: "E101"}
		imp := b.run(t, connectors.ImportFull)
		if imp.Counts.IdentitiesCreated != 0 || imp.Counts.IdentitiesLinked != 1 || imp.Counts.AccountsCreated != 1 {
			t.Errorf("import after the rename: %+v: %s", imp.Counts, imp.Message)
		}
		acc := b.accounts(t)
		if acc["robert"].IdentityID == nil || *acc["robert"].IdentityID != *first["bob"].IdentityID {
			t.Errorf("robert's account is linked to %v, want bob's identity %s", acc["robert"].IdentityID, *first["bob"].IdentityID)
		}
		alice, err := b.Identities.GetIdentity(b.Ctx, *acc["alice"].IdentityID)
		if err != nil || alice.DisplayName != "Alice Anders" || alice.Email != "anders@corp.test" || alice.Source != "Corp Directory" ||
			alice.SourceConnectorID == nil || *alice.SourceConnectorID != b.rec.ID {
			t.Errorf("alice's identity after the rename: %+v %v", alice, err)
		}
		var n int64
		if err := b.DB.Gorm.Model(&identities.Identity{}).Where("source <> 'local'").Count(&n).Error; err != nil || n != 2 {
			t.Errorf("%d imported identities (%v), want 2", n, err)
		}
	})
}

func TestImportThresholdWaitsForApproval(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect string) {
		t.Parallel()
		b := setupImport(t, dialect)
		d := b.dir
		for i := range 20 {
			u := fmt.Sprintf("u%02d", i)
			d.users[userDN(u)] = fakeUser{username: u}
		}
		d.groups[groupDN("all")] = []string{userDN("u00"), userDN("u01")}
		if imp := b.run(t, connectors.ImportFull); imp.Counts.AccountsCreated != 20 {
			t.Fatalf("first import: %s", imp.Message)
		}
		// 2 deleted + 1 locked of 20 = 15% > 10%.
		delete(d.users, userDN("u00"))
		delete(d.users, userDN("u01"))
		d.users[userDN("u02")] = fakeUser{username: "u02", locked: true}
		d.users[userDN("new")] = fakeUser{username: "new"}
		first := b.run(t, connectors.ImportFull)
		if first.Status != imports.ImportAwaitingApproval || first.Counts.RiskPercent != 15 || first.Changed() == false ||
			!strings.Contains(first.Message, "would delete 2 and lock 1 of 20 accounts (15.0%") {
			t.Fatalf("over the threshold: %s %+v", first.Status, first.Counts)
		}
		if acc := b.accounts(t); len(acc) != 20 || acc["u00"].Status != "enabled" || acc["u02"].Status != "enabled" {
			t.Errorf("changed before approval: %+v", acc)
		}
		// Running again supersedes the waiting plan with a fresh one.
		second := b.run(t, connectors.ImportFull)
		if old, _ := b.Importer.GetImport(b.Ctx, first.ID); old.Status != imports.ImportSuperseded {
			t.Errorf("first plan: %s", old.Status)
		}
		if _, err := b.Importer.Approve(b.Ctx, first.ID, "admin"); !errors.Is(err, identities.ErrConflict) {
			t.Errorf("approve a superseded plan: %v", err)
		}
		got, err := b.Importer.GetImport(b.Ctx, second.ID)
		var ops []string
		for _, c := range got.Changes {
			ops = append(ops, c.Op+" "+c.Username+c.Status)
		}
		// Members of the deleted accounts leave with them.
		if err != nil || strings.Join(ops, ", ") != "account.create newenabled, account.update u02locked, account.delete u00deleted, account.delete u01deleted" {
			t.Errorf("planned changes: %v %v", ops, err)
		}
		list, total, err := b.Importer.ListImports(b.Ctx, imports.ImportFilter{ConnectorID: b.rec.ID, Status: imports.ImportAwaitingApproval})
		if err != nil || total != 1 || list[0].ID != second.ID || len(list[0].Changes) != 0 {
			t.Errorf("list: %d %+v %v", total, list, err)
		}
		applied, err := b.Importer.Approve(b.Ctx, second.ID, "admin")
		if err != nil || applied.Status != imports.ImportApplied || applied.DecidedBy != "admin" || applied.AppliedAt == nil {
			t.Fatalf("approve: %+v %v", applied, err)
		}
		acc := b.accounts(t)
		if acc["u00"].Status != "deleted" || acc["u01"].Status != "deleted" || acc["u02"].Status != "locked" || acc["new"].Status != "enabled" {
			t.Errorf("after approval: %+v", acc)
		}
		if m := b.memberships(t); len(m) != 0 {
			t.Errorf("memberships of deleted accounts: %v", m)
		}
		if _, err := b.Importer.Approve(b.Ctx, second.ID, "admin"); !errors.Is(err, identities.ErrConflict) {
			t.Errorf("approve twice: %v", err)
		}
		var rec configured.Record
		b.DB.Gorm.Where("id = ?", b.rec.ID).Take(&rec)
		if rec.ImportCookie != "n:3" {
			t.Errorf("cookie after approval: %q", rec.ImportCookie)
		}

		// Rejected: nothing changes, and the next run asks again.
		for i := 3; i < 8; i++ {
			delete(d.users, userDN(fmt.Sprintf("u%02d", i)))
		}
		plan := b.run(t, connectors.ImportDelta)
		rejected, err := b.Importer.Reject(b.Ctx, plan.ID, "admin")
		if err != nil || rejected.Status != imports.ImportRejected {
			t.Fatalf("reject: %+v %v", rejected, err)
		}
		if acc := b.accounts(t); acc["u03"].Status != "enabled" {
			t.Errorf("changed after rejection: %+v", acc["u03"])
		}
		if again := b.run(t, connectors.ImportDelta); again.Status != imports.ImportAwaitingApproval {
			t.Errorf("after rejection: %s", again.Status)
		}
		events, _, _ := audit.List(b.Ctx, b.DB.Gorm, audit.Filter{})
		var actions []string
		for _, e := range events {
			if strings.HasPrefix(e.Action, "import.") {
				actions = append(actions, e.Action+" "+e.Actor)
				if e.DetailsJSON["connector"] != "Corp" {
					t.Errorf("audit details: %+v", e.DetailsJSON)
				}
			}
		}
		if strings.Join(actions, ",") != "import.reject admin,import.approve admin" {
			t.Errorf("audit: %v", actions)
		}
		// A threshold of 100 never stops.
		d.threshold = 100
		if imp := b.run(t, connectors.ImportDelta); imp.Status != imports.ImportApplied || imp.Counts.AccountsDeleted != 5 {
			t.Errorf("threshold 100: %s %+v", imp.Status, imp.Counts)
		}
		b2, _ := json.Marshal(applied)
		if !strings.Contains(string(b2), `"status":"applied"`) {
			t.Errorf("json: %s", b2)
		}
	})
}

// The built-in directory gives each account's groups (no member lists):
// memberships follow the accounts.
func TestImportFromBuiltinDirectory(t *testing.T) {
	t.Parallel()
	b := apptest.New(t, "sqlite", &apptest.Options{NoStart: true})
	rec, ents := b.Directory(t, "Dir", "VPN", "Wiki")
	_, opened, err := b.Connectors.OpenByID(b.Ctx, rec.ID)
	if err != nil {
		t.Fatal(err)
	}
	conn := opened.(interface {
		connectors.AccountManager
		connectors.EntitlementManager
	})
	for _, u := range []string{"ann", "ben"} {
		if _, err := conn.CreateAccount(b.Ctx, connectors.Account{Username: u, DisplayName: strings.ToUpper(u)}); err != nil {
			t.Fatal(err)
		}
	}
	vpn := connectors.Entitlement{ExternalID: ents["VPN"].ExternalID}
	conn.Grant(b.Ctx, connectors.Account{Username: "ann"}, vpn)
	conn.Grant(b.Ctx, connectors.Account{Username: "ben"}, vpn)
	imp, err := b.Importer.Run(b.Ctx, rec.ID, connectors.ImportFull, "")
	if err != nil || imp.Counts.AccountsCreated != 2 || imp.Counts.MembershipsAdded != 2 || imp.Counts.EntitlementsCreated != 0 {
		t.Fatalf("import: %+v %v", imp, err)
	}
	conn.Revoke(b.Ctx, connectors.Account{Username: "ben"}, vpn)
	conn.Grant(b.Ctx, connectors.Account{Username: "ben"}, connectors.Entitlement{ExternalID: ents["Wiki"].ExternalID})
	imp, err = b.Importer.Run(b.Ctx, rec.ID, connectors.ImportFull, "")
	if err != nil || imp.Counts.MembershipsAdded != 1 || imp.Counts.MembershipsRemoved != 1 {
		t.Fatalf("second import: %+v %v", imp, err)
	}
}
