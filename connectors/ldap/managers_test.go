package ldap_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	ldapv3 "github.com/go-ldap/ldap/v3"

	"github.com/provisor/provisor/app/apptest"
	"github.com/provisor/provisor/audit"
	"github.com/provisor/provisor/connectors"
	"github.com/provisor/provisor/connectors/configured"
	"github.com/provisor/provisor/connectors/ldap"
	"github.com/provisor/provisor/connectors/ldap/ldaptest"
	"github.com/provisor/provisor/database/dbtest"
	"github.com/provisor/provisor/identities"
	"github.com/provisor/provisor/imports"
)

func personLDIF(uid, manager string) string {
	out := fmt.Sprintf("dn: uid=%s,%s\nobjectClass: inetOrgPerson\nuid: %s\ncn: %s\nsn: %s\n", uid, ldaptest.PeopleDN, uid, uid, uid)
	if manager != "" {
		out += "manager: " + manager + "\n"
	}
	return out + "\n"
}

func personDN(uid string) string { return "uid=" + uid + "," + ldaptest.PeopleDN }

// The connector reads the manager attribute as a DN in the form of its
// account DNs, or not at all when set to none.
func TestLDAPImportReadsManagers(t *testing.T) {
	t.Parallel()
	s := ldaptest.StartSlapd(t, &ldaptest.SlapdOptions{LDIF: personLDIF("ann", "UID=Zed, OU=People,DC=example,DC=test") +
		personLDIF("zed", "") + personLDIF("cy", "")})
	ctx := context.Background()
	d := openSlapd(t, s, `"attributes":{"manager":"seeAlso"}`)
	if !d.ReadsManagers() {
		t.Fatal("ReadsManagers is false with attributes.manager set")
	}
	c := s.Conn(t)
	m := ldapv3.NewModifyRequest(personDN("cy"), nil)
	m.Add("seeAlso", []string{personDN("ann")})
	if err := c.Modify(m); err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	if _, err := d.Import(ctx, connectors.ImportFull, "", rec); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, a := range rec.accounts {
		got[a.Username] = a.Manager
	}
	// seeAlso is the manager attribute here: ann's manager attribute is not it.
	if got["cy"] != personDN("ann") || got["ann"] != "" || got["zed"] != "" {
		t.Errorf("managers read from seeAlso: %v", got)
	}
	for extra, want := range map[string]string{``: personDN("zed"), `"attributes":{"manager":"none"}`: ""} {
		d := openSlapd(t, s, extra)
		rec := &recorder{}
		if _, err := d.Import(ctx, connectors.ImportFull, "", rec); err != nil {
			t.Fatal(err)
		}
		for _, a := range rec.accounts {
			if a.Username == "ann" && a.Manager != want {
				t.Errorf("settings {%s}: ann's manager %q, want %q", extra, a.Manager, want)
			}
		}
		if d.ReadsManagers() != (want != "") {
			t.Errorf("settings {%s}: ReadsManagers %v", extra, d.ReadsManagers())
		}
	}
}

// TestLDAPManagersThroughProvisor: imports from slapd set identities'
// managers, full and delta, whatever the order of the entries, keep a
// manager set by hand where the directory states none, and follow the
// directory's changes.
func TestLDAPManagersThroughProvisor(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect string) {
		t.Parallel()
		// ann comes before her manager zed; bob reports to ann; self names
		// himself; out names an entry that is no account.
		s := ldaptest.StartSlapd(t, &ldaptest.SlapdOptions{LDIF: personLDIF("ann", "UID=zed,OU=people,DC=example,DC=test") +
			personLDIF("bob", personDN("ann")) + personLDIF("zed", "") + personLDIF("self", personDN("self")) +
			personLDIF("out", ldaptest.AdminDN)})
		b := apptest.New(t, dialect, &apptest.Options{NoStart: true})
		rec, err := b.Connectors.Create(b.Ctx, configured.Input{Name: "Corp LDAP", Type: ldap.TypeLDAP,
			Settings: json.RawMessage(s.Settings(`"deletion_threshold_percent":100`)), Secrets: map[string]string{ldap.SecretBindPassword: ldaptest.AdminPassword}})
		if err != nil {
			t.Fatal(err)
		}
		run := func(mode connectors.ImportMode) *imports.Import {
			t.Helper()
			imp, err := b.Importer.Run(b.Ctx, rec.ID, mode, "")
			if err != nil {
				t.Fatalf("%s import: %v", mode, err)
			}
			return imp
		}
		id := func(username string) *identities.Identity {
			t.Helper()
			idn, err := b.Identities.IdentityByUsername(b.Ctx, username)
			if err != nil {
				t.Fatalf("identity %s: %v", username, err)
			}
			return idn
		}
		expect := func(step string, want map[string]string) {
			t.Helper()
			for user, w := range want {
				idn := id(user)
				got := ""
				if idn.ManagerID != nil {
					m, err := b.Identities.GetIdentity(b.Ctx, *idn.ManagerID)
					if err != nil {
						t.Fatal(err)
					}
					got = m.Username + " by hand"
					if idn.ManagerSourceConnectorID != nil && *idn.ManagerSourceConnectorID == rec.ID {
						got = m.Username + " from LDAP"
					}
				}
				if got != w {
					t.Errorf("%s: %s's manager is %q, want %q", step, user, got, w)
				}
			}
		}

		imp := run(connectors.ImportFull)
		if imp.Counts.ManagersSet != 2 {
			t.Errorf("full import: %+v %s", imp.Counts, imp.Message)
		}
		expect("full import", map[string]string{"ann": "zed from LDAP", "bob": "ann from LDAP", "zed": "", "self": "", "out": ""})
		if imp := run(connectors.ImportFull); imp.Changed() {
			t.Errorf("full import again changed: %s", imp.Message)
		}

		// By hand: zed's manager is bob (the directory names none for him).
		if _, err := b.Identities.SetManager(b.Ctx, id("zed").ID, id("bob").ID, "admin"); err != nil {
			t.Fatal(err)
		}
		// The directory: bob now reports to zed, ann to nobody, and a new
		// entry nia names kim, who is not there yet.
		c := s.Conn(t)
		m := ldapv3.NewModifyRequest(personDN("bob"), nil)
		m.Replace("manager", []string{personDN("zed")})
		if err := c.Modify(m); err != nil {
			t.Fatal(err)
		}
		m = ldapv3.NewModifyRequest(personDN("ann"), nil)
		m.Delete("manager", nil)
		if err := c.Modify(m); err != nil {
			t.Fatal(err)
		}
		add := func(uid, manager string) {
			t.Helper()
			a := ldapv3.NewAddRequest(personDN(uid), nil)
			a.Attribute("objectClass", []string{"inetOrgPerson"})
			a.Attribute("uid", []string{uid})
			a.Attribute("cn", []string{uid})
			a.Attribute("sn", []string{uid})
			if manager != "" {
				a.Attribute("manager", []string{manager})
			}
			if err := c.Add(a); err != nil {
				t.Fatalf("add %s: %v", uid, err)
			}
		}
		add("nia", personDN("kim"))
		imp = run(connectors.ImportDelta)
		if imp.Mode != "delta" || imp.Counts.ManagersSet != 1 || imp.Counts.ManagersCleared != 1 {
			t.Errorf("delta: %+v %s", imp.Counts, imp.Message)
		}
		expect("delta", map[string]string{"ann": "", "bob": "zed from LDAP", "zed": "bob by hand", "nia": ""})

		// kim arrives, then leaves.
		add("kim", "")
		run(connectors.ImportDelta)
		expect("kim arrives", map[string]string{"nia": "kim from LDAP"})
		if err := c.Del(ldapv3.NewDelRequest(personDN("kim"), nil)); err != nil {
			t.Fatal(err)
		}
		if imp := run(connectors.ImportDelta); imp.Counts.AccountsDeleted != 1 || imp.Counts.ManagersCleared != 1 {
			t.Errorf("kim leaves: %+v %s", imp.Counts, imp.Message)
		}
		expect("kim leaves", map[string]string{"nia": "", "zed": "bob by hand"})

		events, _, err := audit.List(b.Ctx, b.DB.Gorm, audit.Filter{Action: "identity.manager", Actor: audit.ActorSystem})
		if err != nil || len(events) != 6 {
			t.Errorf("audit: %d identity.manager events by the system (%v), want 6", len(events), err)
		}
	})
}

// On Active Directory the manager attribute (whose back link is
// directReports) names the manager's DN: imports make it the manager, full
// and delta, on both databases.
func TestADManagers(t *testing.T) {
	t.Parallel()
	s := samba(t)
	adServer.policy.RLock()
	defer adServer.policy.RUnlock()
	admin := s.Conn(t)
	ou := addOU(t, admin, "ManagerTest")
	settings := s.Settings(ou, ou, `"deletion_threshold_percent":100`)
	d := open(t, ldap.TypeAD, settings, ldaptest.ADAdminPassword)
	ctx := context.Background()
	dn := map[string]string{}
	for _, u := range []string{"mgr.ann", "mgr.ben", "mgr.cy"} {
		r, err := d.CreateAccount(ctx, connectors.Account{Username: u, DisplayName: "User " + u})
		if err != nil {
			t.Fatal(err)
		}
		dn[u] = r.ExternalID
	}
	setManager := func(user, manager string) {
		t.Helper()
		m := ldapv3.NewModifyRequest(dn[user], nil)
		if manager == "" {
			m.Delete("manager", nil)
		} else {
			m.Replace("manager", []string{dn[manager]})
		}
		if err := admin.Modify(m); err != nil {
			t.Fatalf("manager of %s: %v", user, err)
		}
	}
	setManager("mgr.ben", "mgr.ann")
	setManager("mgr.cy", "mgr.ben")
	rec := &recorder{}
	if _, err := d.Import(ctx, connectors.ImportFull, "", rec); err != nil {
		t.Fatal(err)
	}
	for _, a := range rec.accounts {
		want := map[string]string{"mgr.ben": normalize(dn["mgr.ann"]), "mgr.cy": normalize(dn["mgr.ben"])}[a.Username]
		if a.Manager != want {
			t.Errorf("%s's manager: %q, want %q", a.Username, a.Manager, want)
		}
	}

	dbtest.Each(t, func(t *testing.T, dialect string) {
		b := apptest.New(t, dialect, &apptest.Options{NoStart: true})
		conn, err := b.Connectors.Create(b.Ctx, configured.Input{Name: "Corp AD", Type: ldap.TypeAD,
			Settings: json.RawMessage(settings), Secrets: map[string]string{ldap.SecretBindPassword: ldaptest.ADAdminPassword}})
		if err != nil {
			t.Fatal(err)
		}
		managerOf := func(user string) string {
			t.Helper()
			idn, err := b.Identities.IdentityByUsername(b.Ctx, user)
			if err != nil {
				t.Fatal(err)
			}
			if idn.ManagerID == nil {
				return ""
			}
			m, err := b.Identities.GetIdentity(b.Ctx, *idn.ManagerID)
			if err != nil {
				t.Fatal(err)
			}
			return m.Username
		}
		imp, err := b.Importer.Run(b.Ctx, conn.ID, connectors.ImportFull, "")
		if err != nil || imp.Counts.ManagersSet != 2 {
			t.Fatalf("full import: %+v %v", imp, err)
		}
		if managerOf("mgr.ben") != "mgr.ann" || managerOf("mgr.cy") != "mgr.ben" || managerOf("mgr.ann") != "" {
			t.Errorf("managers: ben %q, cy %q, ann %q", managerOf("mgr.ben"), managerOf("mgr.cy"), managerOf("mgr.ann"))
		}
	})

	// A delta follows the changes (uSNChanged moves with the attribute).
	b := apptest.New(t, "sqlite", &apptest.Options{NoStart: true})
	conn, err := b.Connectors.Create(b.Ctx, configured.Input{Name: "Corp AD", Type: ldap.TypeAD,
		Settings: json.RawMessage(settings), Secrets: map[string]string{ldap.SecretBindPassword: ldaptest.ADAdminPassword}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Importer.Run(b.Ctx, conn.ID, connectors.ImportFull, ""); err != nil {
		t.Fatal(err)
	}
	setManager("mgr.cy", "")
	setManager("mgr.ann", "mgr.cy")
	imp, err := b.Importer.Run(b.Ctx, conn.ID, connectors.ImportDelta, "")
	if err != nil || imp.Mode != "delta" || imp.Counts.AccountsRead != 2 || imp.Counts.ManagersSet != 1 || imp.Counts.ManagersCleared != 1 {
		t.Fatalf("delta: %+v %v", imp, err)
	}
}
