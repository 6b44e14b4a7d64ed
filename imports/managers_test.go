package imports_test

import (
	"strings"
	"testing"

	"github.com/provisor/provisor/audit"
	"github.com/provisor/provisor/connectors"
	"github.com/provisor/provisor/connectors/configured"
	"github.com/provisor/provisor/database/dbtest"
	"github.com/provisor/provisor/identities"
	"github.com/provisor/provisor/imports"
)

// managerOf returns the username of the manager of the identity of the
// account called username, and where the manager came from: "directory"
// (this connector's import), "hand", or "" with no manager.
func (b *importBundle) managerOf(t *testing.T, username string) (string, string) {
	t.Helper()
	acc, ok := b.accounts(t)[username]
	if !ok || acc.IdentityID == nil {
		t.Fatalf("no linked account %s", username)
	}
	return b.identityManager(t, *acc.IdentityID)
}

func (b *importBundle) identityManager(t *testing.T, id string) (string, string) {
	t.Helper()
	idn, err := b.Identities.GetIdentity(b.Ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if idn.ManagerID == nil {
		if idn.ManagerSourceConnectorID != nil {
			t.Errorf("%s has no manager but a manager source %s", idn.Username, *idn.ManagerSourceConnectorID)
		}
		return "", ""
	}
	m, err := b.Identities.GetIdentity(b.Ctx, *idn.ManagerID)
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case idn.ManagerSourceConnectorID == nil:
		return m.Username, "hand"
	case *idn.ManagerSourceConnectorID == b.rec.ID:
		return m.Username, "directory"
	}
	return m.Username, "other"
}

// The directory's manager attribute becomes identities' managers: in any
// order, in full and delta imports, for managers that come later, never
// pointing at oneself, and without clearing a manager set by hand unless
// the directory states another.
func TestImportManagers(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect string) {
		t.Parallel()
		b := setupImport(t, dialect)
		d := b.dir
		d.managers, d.threshold = true, 100
		hank := b.Identity(t, "hank") // a local identity, manager by hand
		carl := b.Identity(t, "carl") // a local identity the directory's carl links to
		// alice is listed before zed, her manager; bob reports to alice.
		d.users[userDN("alice")] = fakeUser{username: "alice", manager: userDN("zed")}
		d.users[userDN("bob")] = fakeUser{username: "bob", manager: strings.ToUpper(userDN("alice"))}
		d.users[userDN("zed")] = fakeUser{username: "zed"}
		d.users[userDN("carl")] = fakeUser{username: "carl", manager: userDN("zed")}
		d.users[userDN("selfie")] = fakeUser{username: "selfie", manager: userDN("selfie")}
		d.users[userDN("dan")] = fakeUser{username: "dan", manager: userDN("nora")} // nora is not there yet

		imp := b.run(t, connectors.ImportFull)
		if imp.Counts.ManagersSet != 3 || imp.Counts.ManagersCleared != 0 || !strings.Contains(imp.Message, "managers: 3 set, 0 cleared") {
			t.Fatalf("first import: %+v %s", imp.Counts, imp.Message)
		}
		for _, c := range []struct{ user, manager, source string }{
			{"alice", "zed", "directory"}, {"bob", "alice", "directory"}, {"carl", "zed", "directory"},
			{"zed", "", ""}, {"selfie", "", ""}, {"dan", "", ""},
		} {
			if m, src := b.managerOf(t, c.user); m != c.manager || src != c.source {
				t.Errorf("%s's manager: %q (%s), want %q (%s)", c.user, m, src, c.manager, c.source)
			}
		}
		if acc := b.accounts(t); acc["dan"].ManagerExternalID != userDN("nora") || acc["zed"].ManagerExternalID != "" {
			t.Errorf("stated managers: dan %q, zed %q", acc["dan"].ManagerExternalID, acc["zed"].ManagerExternalID)
		}
		// Each change is in the audit trail.
		events, _, _ := audit.List(b.Ctx, b.DB.Gorm, audit.Filter{Action: "identity.manager"})
		if len(events) != 3 {
			t.Fatalf("audit: %d identity.manager events", len(events))
		}
		for _, e := range events {
			if e.Actor != audit.ActorSystem || e.DetailsJSON["source"] != "directory" || e.DetailsJSON["connector"] != "Corp" ||
				e.DetailsJSON["import"] != imp.ID || e.DetailsJSON["manager_id"] == "" {
				t.Errorf("audit event: %+v %v", e, e.DetailsJSON)
			}
		}

		// Nothing changed: nothing to do.
		if imp := b.run(t, connectors.ImportFull); imp.Changed() {
			t.Errorf("second import changed: %s", imp.Message)
		}

		// Managers set by hand: zed's stays (the directory states none);
		// bob's goes back to the directory's alice; selfie's stays (a
		// manager pointing at oneself is ignored).
		for _, u := range []string{"zed", "bob", "selfie"} {
			if _, err := b.Identities.SetManager(b.Ctx, *b.accounts(t)[u].IdentityID, hank.ID, "admin"); err != nil {
				t.Fatal(err)
			}
		}
		if m, src := b.managerOf(t, "bob"); m != "hank" || src != "hand" {
			t.Fatalf("bob by hand: %s %s", m, src)
		}
		imp = b.run(t, connectors.ImportFull)
		if imp.Counts.ManagersSet != 1 || imp.Counts.ManagersCleared != 0 {
			t.Errorf("after hand changes: %+v", imp.Counts)
		}
		for _, c := range []struct{ user, manager, source string }{{"zed", "hank", "hand"}, {"bob", "alice", "directory"}, {"selfie", "hank", "hand"}} {
			if m, src := b.managerOf(t, c.user); m != c.manager || src != c.source {
				t.Errorf("%s's manager: %q (%s), want %q (%s)", c.user, m, src, c.manager, c.source)
			}
		}

		// The directory clears alice's manager and changes carl's: a delta
		// reading only them clears the one and moves the other.
		d.users[userDN("alice")] = fakeUser{username: "alice"}
		d.users[userDN("carl")] = fakeUser{username: "carl", manager: userDN("bob")}
		d.changed = map[string]bool{userDN("alice"): true, userDN("carl"): true}
		imp = b.run(t, connectors.ImportDelta)
		if imp.Mode != "delta" || imp.Counts.AccountsRead != 2 || imp.Counts.ManagersSet != 1 || imp.Counts.ManagersCleared != 1 {
			t.Errorf("delta: %+v %s", imp.Counts, imp.Message)
		}
		if m, _ := b.managerOf(t, "alice"); m != "" {
			t.Errorf("alice's manager after the directory cleared it: %q", m)
		}
		if m, src := b.identityManager(t, carl.ID); m != "bob" || src != "directory" {
			t.Errorf("carl's manager: %q %s", m, src)
		}
		if m, _ := b.managerOf(t, "bob"); m != "alice" {
			t.Errorf("bob's manager, not read by the delta: %q", m)
		}

		// nora arrives; a delta that reads only her resolves dan's manager
		// stated before.
		d.users[userDN("nora")] = fakeUser{username: "nora"}
		d.changed = map[string]bool{userDN("nora"): true}
		if imp := b.run(t, connectors.ImportDelta); imp.Counts.ManagersSet != 1 {
			t.Errorf("nora arrives: %+v %s", imp.Counts, imp.Message)
		}
		if m, src := b.managerOf(t, "dan"); m != "nora" || src != "directory" {
			t.Errorf("dan's manager: %q %s", m, src)
		}
		// nora's account goes: dan's manager from the directory goes with it.
		delete(d.users, userDN("nora"))
		d.changed = map[string]bool{}
		if imp := b.run(t, connectors.ImportDelta); imp.Counts.AccountsDeleted != 1 || imp.Counts.ManagersCleared != 1 {
			t.Errorf("nora leaves: %+v %s", imp.Counts, imp.Message)
		}
		if m, _ := b.managerOf(t, "dan"); m != "" {
			t.Errorf("dan's manager after nora left: %q", m)
		}

		// A plan that waits for approval lists its manager changes and
		// applies them when approved.
		d.threshold = 10
		d.changed = nil
		d.users[userDN("alice")] = fakeUser{username: "alice", manager: userDN("zed")}
		for _, u := range []string{"selfie", "dan"} {
			delete(d.users, userDN(u))
		}
		plan := b.run(t, connectors.ImportFull)
		if plan.Status != imports.ImportAwaitingApproval || plan.Counts.ManagersSet != 1 {
			t.Fatalf("plan: %s %+v", plan.Status, plan.Counts)
		}
		got, err := b.Importer.GetImport(b.Ctx, plan.ID)
		if err != nil {
			t.Fatal(err)
		}
		var ops []string
		for _, c := range got.Changes {
			if c.Op == imports.ChangeSetManager {
				ops = append(ops, c.Username+"->"+*c.Manager)
			}
		}
		if strings.Join(ops, " ") != "alice->"+userDN("zed") {
			t.Errorf("planned manager changes: %v", ops)
		}
		if m, _ := b.managerOf(t, "alice"); m != "" {
			t.Errorf("changed before approval: alice's manager %q", m)
		}
		if applied, err := b.Importer.Approve(b.Ctx, plan.ID, "admin"); err != nil || applied.Counts.ManagersSet != 1 {
			t.Fatalf("approve: %+v %v", applied, err)
		}
		if m, src := b.managerOf(t, "alice"); m != "zed" || src != "directory" {
			t.Errorf("alice's manager after approval: %q %s", m, src)
		}
	})
}

// A connector set to read no managers leaves them alone, and a manager
// another connector's import set is that connector's.
func TestImportManagersOff(t *testing.T) {
	t.Parallel()
	b := setupImport(t, "sqlite")
	d := b.dir
	d.threshold = 100
	d.users[userDN("alice")] = fakeUser{username: "alice", manager: userDN("zed")}
	d.users[userDN("zed")] = fakeUser{username: "zed"}
	if imp := b.run(t, connectors.ImportFull); imp.Counts.ManagersSet != 0 {
		t.Fatalf("managers off: %+v", imp.Counts)
	}
	if m, _ := b.managerOf(t, "alice"); m != "" {
		t.Errorf("alice's manager with managers off: %q", m)
	}
	if acc := b.accounts(t); acc["alice"].ManagerExternalID != "" {
		t.Errorf("stated manager kept with managers off: %q", acc["alice"].ManagerExternalID)
	}
	// Another connector set alice's manager: this one does not take it over.
	other, err := b.Connectors.Create(b.Ctx, configured.Input{Name: "Other", Type: "fakedir"})
	if err != nil {
		t.Fatal(err)
	}
	alice := *b.accounts(t)["alice"].IdentityID
	hank := b.Identity(t, "hank")
	if err := b.DB.Gorm.Model(&identities.Identity{}).Where("id = ?", alice).
		Updates(map[string]any{"manager_id": hank.ID, "manager_source_connector_id": other.ID}).Error; err != nil {
		t.Fatal(err)
	}
	d.managers = true
	if imp := b.run(t, connectors.ImportFull); imp.Counts.ManagersSet != 0 {
		t.Errorf("over another connector's manager: %+v", imp.Counts)
	}
	if m, src := b.identityManager(t, alice); m != "hank" || src != "other" {
		t.Errorf("alice's manager: %q %s", m, src)
	}
}
