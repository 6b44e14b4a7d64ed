package ldap_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	ldapv3 "github.com/go-ldap/ldap/v3"

	"github.com/provisor/provisor/connectors"
	"github.com/provisor/provisor/connectors/ldap"
	"github.com/provisor/provisor/connectors/ldap/ldaptest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	closeSamba()
	ldaptest.RemoveTemplate()
	os.Exit(code)
}

// open builds a connector of type typ from settings JSON and the bind password.
func open(t testing.TB, typ, settings, password string) *ldap.Directory {
	t.Helper()
	secrets := map[string]string{}
	if password != "" {
		secrets[ldap.SecretBindPassword] = password
	}
	d, err := ldap.Open(typ, connectors.Config{ID: "test", Name: "Test " + typ, Settings: json.RawMessage(settings), Secrets: secrets})
	if err != nil {
		t.Fatalf("open %s: %v", typ, err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func openSlapd(t testing.TB, s *ldaptest.Slapd, extra string) *ldap.Directory {
	return open(t, ldap.TypeLDAP, s.Settings(extra), ldaptest.AdminPassword)
}

// addGroup adds a groupOfNames with a placeholder member (the class needs one).
func addGroup(t testing.TB, c *ldapv3.Conn, cn string) string {
	t.Helper()
	dn := "cn=" + ldapv3.EscapeDN(cn) + "," + ldaptest.GroupsDN
	req := ldapv3.NewAddRequest(dn, nil)
	req.Attribute("objectClass", []string{"groupOfNames"})
	req.Attribute("cn", []string{cn})
	req.Attribute("member", []string{ldaptest.AdminDN})
	if err := c.Add(req); err != nil {
		t.Fatalf("add group %s: %v", cn, err)
	}
	return dn
}

func entry(t testing.TB, c *ldapv3.Conn, dn string, attrs ...string) *ldapv3.Entry {
	t.Helper()
	res, err := c.Search(ldapv3.NewSearchRequest(dn, ldapv3.ScopeBaseObject, ldapv3.NeverDerefAliases, 0, 0, false, "(objectClass=*)", attrs, nil))
	if ldapv3.IsErrorWithCode(err, ldapv3.LDAPResultNoSuchObject) {
		return nil
	}
	if err != nil {
		t.Fatalf("read %s: %v", dn, err)
	}
	return res.Entries[0]
}

func members(t testing.TB, c *ldapv3.Conn, groupDN string) []string {
	t.Helper()
	e := entry(t, c, groupDN, "member")
	var out []string
	for _, m := range e.GetAttributeValues("member") {
		if m != ldaptest.AdminDN {
			out = append(out, strings.ToLower(m))
		}
	}
	sort.Strings(out)
	return out
}

type step struct {
	name    string
	do      func() (connectors.Result, error)
	changed bool
	perm    string // a permanent error containing this
}

func runSteps(t *testing.T, steps []step) {
	t.Helper()
	for _, s := range steps {
		res, err := s.do()
		switch {
		case s.perm != "":
			if err == nil || !connectors.IsPermanent(err) || !strings.Contains(err.Error(), s.perm) {
				t.Errorf("%s: err %v, want permanent %q", s.name, err, s.perm)
			}
		case err != nil:
			t.Errorf("%s: %v", s.name, err)
		case res.Changed != s.changed || res.Message == "":
			t.Errorf("%s: %+v, want changed=%v", s.name, res, s.changed)
		}
	}
}

func TestLDAPOperations(t *testing.T) {
	t.Parallel()
	s := ldaptest.StartSlapd(t, nil)
	admin := s.Conn(t)
	staff := addGroup(t, admin, "staff")
	d := openSlapd(t, s, `"initial_password":"generate"`)
	ctx := context.Background()

	wantKinds := map[connectors.Operation]string{
		connectors.OpCreateAccount: "LDAP CreateUser", connectors.OpDeleteAccount: "LDAP DeleteUser",
		connectors.OpEnableAccount: "Account.Enable", connectors.OpDisableAccount: "Account.Disable",
		connectors.OpGrant: "LDAP AddToGroup", connectors.OpRevoke: "LDAP RemoveFromGroup", connectors.OpImport: "Import",
	}
	for op, want := range wantKinds {
		if got := d.Kind(op); got != want {
			t.Errorf("Kind(%s) = %q, want %q", op, got, want)
		}
	}

	alice := connectors.Account{Username: "alice", DisplayName: "Alice Liddell", Email: "alice@example.test"}
	g := connectors.Entitlement{ExternalID: staff, Name: "staff"}
	aliceDN := "uid=alice," + ldaptest.PeopleDN
	runSteps(t, []step{
		{"grant before create", func() (connectors.Result, error) { return d.Grant(ctx, alice, g) }, false, "no such account: alice"},
		{"lock before create", func() (connectors.Result, error) { return d.DisableAccount(ctx, alice) }, false, "no such account: alice"},
		{"revoke before create", func() (connectors.Result, error) { return d.Revoke(ctx, alice, g) }, false, ""},
		{"create", func() (connectors.Result, error) { return d.CreateAccount(ctx, alice) }, true, ""},
		{"create again", func() (connectors.Result, error) { return d.CreateAccount(ctx, alice) }, false, ""},
		{"grant", func() (connectors.Result, error) { return d.Grant(ctx, alice, g) }, true, ""},
		{"grant again", func() (connectors.Result, error) { return d.Grant(ctx, alice, g) }, false, ""},
		{"grant missing group", func() (connectors.Result, error) {
			return d.Grant(ctx, alice, connectors.Entitlement{ExternalID: "cn=nope," + ldaptest.GroupsDN, Name: "nope"})
		}, false, "No Such Object"},
		{"grant invalid DN", func() (connectors.Result, error) {
			return d.Grant(ctx, alice, connectors.Entitlement{ExternalID: "not a dn", Name: "bad"})
		}, false, "not a valid DN"},
		{"lock", func() (connectors.Result, error) { return d.DisableAccount(ctx, alice) }, true, ""},
		{"lock again", func() (connectors.Result, error) { return d.DisableAccount(ctx, alice) }, false, ""},
		{"unlock", func() (connectors.Result, error) { return d.EnableAccount(ctx, alice) }, true, ""},
		{"unlock again", func() (connectors.Result, error) { return d.EnableAccount(ctx, alice) }, false, ""},
		{"revoke", func() (connectors.Result, error) { return d.Revoke(ctx, alice, g) }, true, ""},
		{"revoke again", func() (connectors.Result, error) { return d.Revoke(ctx, alice, g) }, false, ""},
	})
	e := entry(t, admin, aliceDN, "uid", "cn", "sn", "mail", "displayName", "objectClass", "userPassword")
	if e == nil || e.GetAttributeValue("mail") != "alice@example.test" || e.GetAttributeValue("cn") != "Alice Liddell" ||
		!strings.HasPrefix(e.GetAttributeValue("userPassword"), "{SSHA}") {
		t.Errorf("created entry: %+v", e)
	}

	// Lock and unlock through the password policy: a locked account cannot bind.
	setPassword(t, admin, aliceDN, "Alice-pw-1")
	if _, err := d.DisableAccount(ctx, alice); err != nil {
		t.Fatal(err)
	}
	if e := entry(t, admin, aliceDN, "pwdAccountLockedTime"); e.GetAttributeValue("pwdAccountLockedTime") != "000001010000Z" {
		t.Errorf("pwdAccountLockedTime = %q", e.GetAttributeValue("pwdAccountLockedTime"))
	}
	if err := bindAs(s.URL, aliceDN, "Alice-pw-1"); !ldapv3.IsErrorWithCode(err, ldapv3.LDAPResultInvalidCredentials) {
		t.Errorf("bind of a locked account: %v", err)
	}
	if _, err := d.EnableAccount(ctx, alice); err != nil {
		t.Fatal(err)
	}
	if err := bindAs(s.URL, aliceDN, "Alice-pw-1"); err != nil {
		t.Errorf("bind after unlock: %v", err)
	}

	runSteps(t, []step{
		{"delete", func() (connectors.Result, error) { return d.DeleteAccount(ctx, alice) }, true, ""},
		{"delete again", func() (connectors.Result, error) { return d.DeleteAccount(ctx, alice) }, false, ""},
	})
	if entry(t, admin, aliceDN) != nil {
		t.Error("alice still exists")
	}

	// An entry at the account's DN that is not the account is refused, not taken over.
	squatter := ldapv3.NewAddRequest("uid=bob,"+ldaptest.PeopleDN, nil)
	squatter.Attribute("objectClass", []string{"account"})
	squatter.Attribute("uid", []string{"bob"})
	if err := admin.Add(squatter); err != nil {
		t.Fatal(err)
	}
	_, err := d.CreateAccount(ctx, connectors.Account{Username: "bob"})
	if !connectors.IsPermanent(err) || !strings.Contains(err.Error(), "is not the account bob") {
		t.Errorf("create over another entry: %v", err)
	}

	h := d.Check(ctx)
	if !h.OK || !strings.Contains(h.Message, "0 users under ou=people") || !strings.Contains(h.Message, "1 groups") ||
		!strings.Contains(h.Message, "not encrypted") || h.Latency <= 0 {
		t.Errorf("check: %+v", h)
	}
}

func setPassword(t testing.TB, c *ldapv3.Conn, dn, pw string) {
	t.Helper()
	if _, err := c.PasswordModify(ldapv3.NewPasswordModifyRequest(dn, "", pw)); err != nil {
		t.Fatalf("set password of %s: %v", dn, err)
	}
}

func bindAs(url, dn, pw string) error {
	c, err := ldapv3.DialURL(url)
	if err != nil {
		return err
	}
	defer c.Close()
	return c.Bind(dn, pw)
}

// TestLDAPInjection tries values that would change a filter or a DN if they
// were not escaped: each one names exactly one account, its own.
// listedIn returns the groups under the groups folder that list dn as
// member or uniqueMember.
func listedIn(t testing.TB, c *ldapv3.Conn, dn string) []string {
	t.Helper()
	esc := ldapv3.EscapeFilter(dn)
	res, err := c.Search(ldapv3.NewSearchRequest(ldaptest.GroupsDN, ldapv3.ScopeWholeSubtree, ldapv3.NeverDerefAliases, 0, 0, false,
		"(|(member="+esc+")(uniqueMember="+esc+"))", []string{"1.1"}, nil))
	if err != nil {
		t.Fatalf("groups of %s: %v", dn, err)
	}
	var out []string
	for _, e := range res.Entries {
		out = append(out, e.DN)
	}
	return out
}

// TestLDAPDeleteLeavesGroups: a deleted account is listed by no group,
// whether or not the directory keeps referential integrity itself (the
// memberof overlay with memberof-refint), and the last member of a
// groupOfNames is not deleted but said so.
func TestLDAPDeleteLeavesGroups(t *testing.T) {
	t.Parallel()
	for _, memberOf := range []bool{true, false} {
		t.Run(map[bool]string{true: "memberof", false: "no-overlay"}[memberOf], func(t *testing.T) {
			t.Parallel()
			s := ldaptest.StartSlapd(t, &ldaptest.SlapdOptions{NoMemberOf: !memberOf})
			admin := s.Conn(t)
			d := openSlapd(t, s, "")
			ctx := context.Background()
			create := func(name string) string {
				t.Helper()
				r, err := d.CreateAccount(ctx, connectors.Account{Username: name})
				if err != nil {
					t.Fatal(err)
				}
				return r.ExternalID
			}
			grant := func(name, group string) {
				t.Helper()
				if _, err := d.Grant(ctx, connectors.Account{Username: name}, connectors.Entitlement{ExternalID: group}); err != nil {
					t.Fatal(err)
				}
			}
			addTo := func(group, attr, dn string) {
				t.Helper()
				m := ldapv3.NewModifyRequest(group, nil)
				m.Add(attr, []string{dn})
				if err := admin.Modify(m); err != nil {
					t.Fatalf("add %s to %s: %v", dn, group, err)
				}
			}
			staff, vpn := addGroup(t, admin, "staff"), addGroup(t, admin, "vpn")
			auditors := "cn=auditors," + ldaptest.GroupsDN
			req := ldapv3.NewAddRequest(auditors, nil)
			req.Attribute("objectClass", []string{"groupOfUniqueNames"})
			req.Attribute("cn", []string{"auditors"})
			req.Attribute("uniqueMember", []string{ldaptest.AdminDN})
			if err := admin.Add(req); err != nil {
				t.Fatal(err)
			}

			zed, ann := create("zed"), create("ann")
			grant("zed", staff)
			grant("zed", vpn)
			grant("ann", staff)
			addTo(auditors, "uniqueMember", zed)
			res, err := d.DeleteAccount(ctx, connectors.Account{Username: "zed"})
			if err != nil || !res.Changed || !strings.Contains(res.Message, "removed from 3 group(s)") {
				t.Errorf("delete zed: %+v %v", res, err)
			}
			if got := listedIn(t, admin, zed); len(got) != 0 {
				t.Errorf("zed is still listed in %v", got)
			}
			if entry(t, admin, zed) != nil {
				t.Error("zed is still there")
			}
			if got := listedIn(t, admin, ann); len(got) != 1 || !strings.EqualFold(got[0], staff) {
				t.Errorf("ann is listed in %v, want staff", got)
			}
			if res, err := d.DeleteAccount(ctx, connectors.Account{Username: "zed", ExternalID: zed}); err != nil || res.Changed {
				t.Errorf("delete zed again: %+v %v", res, err)
			}

			// The last member of a groupOfNames: the account stays, and the
			// error says why; once the group has another member, a retry
			// deletes it.
			bob := create("bob")
			grant("bob", staff)
			solo := "cn=solo," + ldaptest.GroupsDN
			req = ldapv3.NewAddRequest(solo, nil)
			req.Attribute("objectClass", []string{"groupOfNames"})
			req.Attribute("cn", []string{"solo"})
			req.Attribute("member", []string{bob})
			if err := admin.Add(req); err != nil {
				t.Fatal(err)
			}
			_, err = d.DeleteAccount(ctx, connectors.Account{Username: "bob"})
			if !connectors.IsPermanent(err) || !strings.Contains(err.Error(), "bob is the last member of "+solo) ||
				!strings.Contains(err.Error(), "not deleted") {
				t.Errorf("delete the last member: %v", err)
			}
			if entry(t, admin, bob) == nil {
				t.Error("bob was deleted while solo still lists him")
			}
			if got := listedIn(t, admin, bob); len(got) != 1 || !strings.EqualFold(got[0], solo) {
				t.Errorf("bob is listed in %v, want solo only", got)
			}
			addTo(solo, "member", ldaptest.AdminDN)
			if res, err := d.DeleteAccount(ctx, connectors.Account{Username: "bob"}); err != nil || !res.Changed {
				t.Errorf("retry: %+v %v", res, err)
			}
			if got := listedIn(t, admin, bob); len(got) != 0 || entry(t, admin, bob) != nil {
				t.Errorf("bob after the retry: listed in %v", got)
			}

			// An entry deleted behind the connector's back stays listed
			// without the overlay; deleting the account by its DN clears it.
			cy := create("cy")
			grant("cy", vpn)
			if err := admin.Del(ldapv3.NewDelRequest(cy, nil)); err != nil {
				t.Fatal(err)
			}
			if res, err := d.DeleteAccount(ctx, connectors.Account{Username: "cy", ExternalID: cy}); err != nil || res.Changed == memberOf {
				t.Errorf("delete cy, gone already: %+v %v", res, err)
			}
			if got := listedIn(t, admin, cy); len(got) != 0 {
				t.Errorf("cy is still listed in %v", got)
			}
		})
	}
}

func TestLDAPInjection(t *testing.T) {
	t.Parallel()
	s := ldaptest.StartSlapd(t, nil)
	admin := s.Conn(t)
	staff := addGroup(t, admin, "staff")
	d := openSlapd(t, s, "")
	ctx := context.Background()
	g := connectors.Entitlement{ExternalID: staff, Name: "staff"}

	if _, err := d.CreateAccount(ctx, connectors.Account{Username: "victim"}); err != nil {
		t.Fatal(err)
	}
	nasty := []string{"*)(uid=*", "admin)(|(objectClass=*", "a,ou=evil", "x+cn=y", "#hash", " lead", "trail ", `back\slash`, "*", "semi;colon", "quo\"te", "<angle>", "nul\x00byte"}
	// Before any of them exists, none may reach the victim or anyone else.
	for _, u := range nasty {
		a := connectors.Account{Username: u}
		if _, err := d.Grant(ctx, a, g); !connectors.IsPermanent(err) || !strings.Contains(err.Error(), "no such account") {
			t.Errorf("grant %q before create: %v", u, err)
		}
		if _, err := d.DisableAccount(ctx, a); !connectors.IsPermanent(err) {
			t.Errorf("lock %q before create: %v", u, err)
		}
		if res, err := d.DeleteAccount(ctx, a); err != nil || res.Changed {
			t.Errorf("delete %q before create: %+v %v", u, res, err)
		}
	}
	if got := members(t, admin, staff); len(got) != 0 {
		t.Fatalf("staff members after injection attempts: %v", got)
	}
	if entry(t, admin, "uid=victim,"+ldaptest.PeopleDN) == nil {
		t.Fatal("the victim was deleted")
	}
	// Created, each is one entry directly under ou=people whose uid is the
	// literal value, and operations reach that entry only.
	for _, u := range nasty {
		a := connectors.Account{Username: u}
		res, err := d.CreateAccount(ctx, a)
		if err != nil {
			t.Errorf("create %q: %v", u, err)
			continue
		}
		dn, err := ldapv3.ParseDN(res.ExternalID)
		if err != nil || len(dn.RDNs) != 4 || len(dn.RDNs[0].Attributes) != 1 || dn.RDNs[0].Attributes[0].Value != strings.ToLower(u) {
			t.Errorf("create %q: DN %q has another shape", u, res.ExternalID)
			continue
		}
		e := entry(t, admin, res.ExternalID, "uid")
		if e == nil || !slices.Contains(e.GetAttributeValues("uid"), u) {
			t.Errorf("entry of %q: %+v", u, e)
		}
		if r, err := d.Grant(ctx, a, g); err != nil || !r.Changed {
			t.Errorf("grant %q: %+v %v", u, r, err)
		}
	}
	if got := members(t, admin, staff); len(got) != len(nasty) {
		t.Errorf("staff has %d members, want %d: %v", len(got), len(nasty), got)
	}
	for _, u := range nasty {
		if r, err := d.DeleteAccount(ctx, connectors.Account{Username: u}); err != nil || !r.Changed {
			t.Errorf("delete %q: %+v %v", u, r, err)
		}
	}
	if entry(t, admin, "uid=victim,"+ldaptest.PeopleDN) == nil {
		t.Fatal("the victim was deleted")
	}
	if got := members(t, admin, staff); len(got) != 0 {
		t.Errorf("staff members left: %v", got)
	}
	// Sign-in with an injected username finds nobody.
	sd := openSlapd(t, s, `"login_enabled":true`)
	setPassword(t, admin, "uid=victim,"+ldaptest.PeopleDN, "Victim-pw-1")
	for _, u := range []string{"*", "vict*", "*)(uid=victim", "victim)(|(uid=*"} {
		if _, err := sd.Authenticate(ctx, u, "Victim-pw-1"); !errors.Is(err, ldap.ErrInvalidCredentials) {
			t.Errorf("sign-in as %q: %v", u, err)
		}
	}
}

// TestLDAPErrors checks what is transient and what is permanent, with the
// directory's own message.
func TestLDAPErrors(t *testing.T) {
	t.Parallel()
	s := ldaptest.StartSlapd(t, nil)
	admin := s.Conn(t)
	staff := addGroup(t, admin, "staff")
	ctx := context.Background()

	// Object class violation (65): inetOrgPerson without its required sn.
	d := openSlapd(t, s, `"user_attributes":{"cn":"{display_name}"}`)
	_, err := d.CreateAccount(ctx, connectors.Account{Username: "nosn"})
	if !connectors.IsPermanent(err) || !strings.Contains(err.Error(), "Object Class Violation") || !strings.Contains(err.Error(), "sn") {
		t.Errorf("schema violation: %v", err)
	}
	// Undefined attribute (17).
	d = openSlapd(t, s, `"user_attributes":{"cn":"x","sn":"y","shoeSize":"42"}`)
	if _, err := d.CreateAccount(ctx, connectors.Account{Username: "shoe"}); !connectors.IsPermanent(err) {
		t.Errorf("undefined attribute: %v", err)
	}
	// Insufficient access (50): a service account without write rights.
	d = openSlapd(t, s, "")
	if _, err := d.CreateAccount(ctx, connectors.Account{Username: "reader"}); err != nil {
		t.Fatal(err)
	}
	setPassword(t, admin, "uid=reader,"+ldaptest.PeopleDN, "Reader-pw-1")
	ro := open(t, ldap.TypeLDAP, fmt.Sprintf(`{"urls":[%q],"bind_dn":"uid=reader,%s","user_base_dn":%q,"group_base_dn":%q}`,
		s.URL, ldaptest.PeopleDN, ldaptest.PeopleDN, ldaptest.GroupsDN), "Reader-pw-1")
	_, err = ro.Grant(ctx, connectors.Account{Username: "reader"}, connectors.Entitlement{ExternalID: staff, Name: "staff"})
	if !connectors.IsPermanent(err) || !strings.Contains(err.Error(), "Insufficient Access") {
		t.Errorf("insufficient access: %v", err)
	}
	// Wrong bind password (49): permanent, retrying cannot help.
	bad := open(t, ldap.TypeLDAP, s.Settings(""), "wrong")
	if _, err := bad.CreateAccount(ctx, connectors.Account{Username: "x"}); !connectors.IsPermanent(err) || !strings.Contains(err.Error(), "Invalid Credentials") {
		t.Errorf("wrong bind password: %v", err)
	}
	if h := bad.Check(ctx); h.OK || !strings.Contains(h.Message, "Invalid Credentials") {
		t.Errorf("check with a wrong password: %+v", h)
	}
	// Server down: transient.
	down := open(t, ldap.TypeLDAP, fmt.Sprintf(`{"urls":["ldap://127.0.0.1:1"],"bind_dn":%q,"user_base_dn":%q,"group_base_dn":%q}`,
		ldaptest.AdminDN, ldaptest.PeopleDN, ldaptest.GroupsDN), ldaptest.AdminPassword)
	_, err = down.CreateAccount(ctx, connectors.Account{Username: "x"})
	if err == nil || connectors.IsPermanent(err) || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("server down: %v", err)
	}
	// The last member of a groupOfNames cannot go: permanent, and says why.
	solo := addGroup(t, admin, "solo")
	m := ldapv3.NewModifyRequest(solo, nil)
	m.Replace("member", []string{"uid=reader," + ldaptest.PeopleDN})
	if err := admin.Modify(m); err != nil {
		t.Fatal(err)
	}
	_, err = d.Revoke(ctx, connectors.Account{Username: "reader"}, connectors.Entitlement{ExternalID: solo, Name: "solo"})
	if !connectors.IsPermanent(err) || !strings.Contains(err.Error(), "last member") {
		t.Errorf("last member: %v", err)
	}
	// A timeout is transient: a request timeout shorter than the server takes.
	slow := openSlapd(t, s, `"request_timeout":"100ms"`)
	ctxShort, cancel := context.WithTimeout(ctx, time.Nanosecond)
	defer cancel()
	<-ctxShort.Done()
	if _, err := slow.CreateAccount(ctxShort, connectors.Account{Username: "late"}); err == nil || connectors.IsPermanent(err) {
		t.Errorf("canceled: %v", err)
	}
}

// TestLDAPFailoverAndRestart: the first URL is a dead port; operations go
// to the second. Then the server restarts under pooled connections: the
// operation during the outage fails as transient, the next one reconnects.
func TestLDAPFailoverAndRestart(t *testing.T) {
	t.Parallel()
	s := ldaptest.StartSlapd(t, nil)
	admin := s.Conn(t)
	staff := addGroup(t, admin, "staff")
	ctx := context.Background()
	d := open(t, ldap.TypeLDAP, fmt.Sprintf(`{"urls":["ldap://127.0.0.1:1",%q],"bind_dn":%q,"user_base_dn":%q,"group_base_dn":%q,"pool_size":3}`,
		s.URL, ldaptest.AdminDN, ldaptest.PeopleDN, ldaptest.GroupsDN), ldaptest.AdminPassword)
	g := connectors.Entitlement{ExternalID: staff, Name: "staff"}
	var wg sync.WaitGroup
	for i := range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a := connectors.Account{Username: fmt.Sprintf("user%02d", i)}
			if _, err := d.CreateAccount(ctx, a); err != nil {
				t.Errorf("create %s: %v", a.Username, err)
			}
			if _, err := d.Grant(ctx, a, g); err != nil {
				t.Errorf("grant %s: %v", a.Username, err)
			}
		}()
	}
	wg.Wait()
	if got := members(t, admin, staff); len(got) != 12 {
		t.Errorf("members: %v", got)
	}
	h := d.Check(ctx)
	if !h.OK || !strings.Contains(h.Message, "first URL did not answer") || !strings.Contains(h.Message, "12 users") {
		t.Errorf("check: %+v", h)
	}

	s.Stop()
	_, err := d.Revoke(ctx, connectors.Account{Username: "user00"}, g)
	if err == nil || connectors.IsPermanent(err) {
		t.Fatalf("revoke while the server is down: %v", err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	for i := range 3 { // more than one pooled connection was cut
		if res, err := d.Revoke(ctx, connectors.Account{Username: fmt.Sprintf("user%02d", i)}, g); err != nil || !res.Changed {
			t.Fatalf("revoke after restart: %+v %v", res, err)
		}
	}
}

func TestLDAPTLS(t *testing.T) {
	t.Parallel()
	s := ldaptest.StartSlapd(t, nil)
	ctx := context.Background()
	base := fmt.Sprintf(`"bind_dn":%q,"user_base_dn":%q,"group_base_dn":%q`, ldaptest.AdminDN, ldaptest.PeopleDN, ldaptest.GroupsDN)
	other, err := ldaptest.NewCA("Another CA")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, settings string
		ok             bool
		want           string
	}{
		{"ldaps with CA", fmt.Sprintf(`{"urls":[%q],"ca_cert":%q,%s}`, s.TLSURL, s.CA.CertPEM, base), true, "users under"},
		{"starttls with CA", fmt.Sprintf(`{"urls":[%q],"start_tls":true,"ca_cert":%q,%s}`, s.URL, s.CA.CertPEM, base), true, "users under"},
		{"ldaps with the wrong CA", fmt.Sprintf(`{"urls":[%q],"ca_cert":%q,%s}`, s.TLSURL, other.CertPEM, base), false, "not signed by the configured CA certificate"},
		{"starttls with the wrong CA", fmt.Sprintf(`{"urls":[%q],"start_tls":true,"ca_cert":%q,%s}`, s.URL, other.CertPEM, base), false, "not signed by the configured CA certificate"},
		{"ldaps without CA", fmt.Sprintf(`{"urls":[%q],%s}`, s.TLSURL, base), false, "not signed"},
		{"ldaps with another name", fmt.Sprintf(`{"urls":[%q],"ca_cert":%q,"tls_server_name":"dc9.example.test",%s}`, s.TLSURL, s.CA.CertPEM, base), false, "does not name the host"},
		{"ldaps skipping verification", fmt.Sprintf(`{"urls":[%q],"insecure_skip_verify":true,%s}`, s.TLSURL, base), true, "WARNING: TLS certificate verification is off"},
	}
	for _, c := range cases {
		d := open(t, ldap.TypeLDAP, c.settings, ldaptest.AdminPassword)
		h := d.Check(ctx)
		if h.OK != c.ok || !strings.Contains(h.Message, c.want) {
			t.Errorf("%s: check %+v, want ok=%v and %q", c.name, h, c.ok, c.want)
		}
		_, err := d.CreateAccount(ctx, connectors.Account{Username: "tls" + strings.ReplaceAll(c.name, " ", "")})
		if c.ok && err != nil {
			t.Errorf("%s: create: %v", c.name, err)
		}
		if !c.ok && (!connectors.IsPermanent(err) || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%s: create: %v, want a permanent error with %q", c.name, err, c.want)
		}
		if c.ok && strings.Contains(h.Message, "not encrypted") {
			t.Errorf("%s: warns about plain text: %s", c.name, h.Message)
		}
	}
}

func TestLDAPAuthenticate(t *testing.T) {
	t.Parallel()
	s := ldaptest.StartSlapd(t, nil)
	admin := s.Conn(t)
	admins := addGroup(t, admin, "portal-admins")
	ctx := context.Background()
	d := openSlapd(t, s, fmt.Sprintf(`"login_enabled":true,"admin_group_dn":%q`, admins))
	for _, u := range []string{"ann", "ben"} {
		if _, err := d.CreateAccount(ctx, connectors.Account{Username: u, DisplayName: strings.ToUpper(u), Email: u + "@example.test"}); err != nil {
			t.Fatal(err)
		}
		setPassword(t, admin, "uid="+u+","+ldaptest.PeopleDN, u+"-Pw-123")
	}
	if _, err := d.Grant(ctx, connectors.Account{Username: "ann"}, connectors.Entitlement{ExternalID: admins}); err != nil {
		t.Fatal(err)
	}
	u, err := d.Authenticate(ctx, "ann", "ann-Pw-123")
	if err != nil || !u.IsAdmin || u.DisplayName != "ANN" || u.Email != "ann@example.test" || !strings.HasPrefix(u.DN, "uid=ann,") {
		t.Errorf("ann: %+v %v", u, err)
	}
	if u, err := d.Authenticate(ctx, "ben", "ben-Pw-123"); err != nil || u.IsAdmin {
		t.Errorf("ben: %+v %v", u, err)
	}
	for _, c := range []struct{ user, pw string }{{"ben", "wrong"}, {"ben", ""}, {"nobody", "x"}, {"", "x"}} {
		if _, err := d.Authenticate(ctx, c.user, c.pw); !errors.Is(err, ldap.ErrInvalidCredentials) {
			t.Errorf("%q/%q: %v", c.user, c.pw, err)
		}
	}
	if _, err := d.DisableAccount(ctx, connectors.Account{Username: "ben"}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Authenticate(ctx, "ben", "ben-Pw-123"); !errors.Is(err, ldap.ErrInvalidCredentials) {
		t.Errorf("locked ben: %v", err)
	}
	off := openSlapd(t, s, "")
	if _, err := off.Authenticate(ctx, "ann", "ann-Pw-123"); !errors.Is(err, ldap.ErrLoginDisabled) {
		t.Errorf("login disabled: %v", err)
	}
	s.Stop()
	if _, err := d.Authenticate(ctx, "ann", "ann-Pw-123"); err == nil || errors.Is(err, ldap.ErrInvalidCredentials) || connectors.IsPermanent(err) {
		t.Errorf("server down: %v", err)
	}
}

// TestLDAPSizeLimit: a service account under slapd's default size limit
// (500) gets a permanent error that says what to change, never a partial
// import taken for the whole directory.
func TestLDAPSizeLimit(t *testing.T) {
	t.Parallel()
	s := ldaptest.StartSlapd(t, &ldaptest.SlapdOptions{LDIF: benchLDIF(510, 0, 0)})
	admin := s.Conn(t)
	setPassword(t, admin, "uid=u00000,"+ldaptest.PeopleDN, "Reader-pw-1")
	ctx := context.Background()
	reader := open(t, ldap.TypeLDAP, fmt.Sprintf(`{"urls":[%q],"bind_dn":"uid=u00000,%s","user_base_dn":%q,"group_base_dn":%q,"page_size":100}`,
		s.URL, ldaptest.PeopleDN, ldaptest.PeopleDN, ldaptest.GroupsDN), "Reader-pw-1")
	_, err := reader.Import(ctx, connectors.ImportFull, "", &recorder{})
	if !connectors.IsPermanent(err) || !strings.Contains(err.Error(), "size.prtotal=unlimited") || !strings.Contains(err.Error(), "after 500 entries") {
		t.Errorf("import under the size limit: %v", err)
	}
	rec := &recorder{}
	if _, err := openSlapd(t, s, `"page_size":100`).Import(ctx, connectors.ImportFull, "", rec); err != nil || len(rec.accounts) != 510 {
		t.Errorf("import as the manager: %d accounts, %v", len(rec.accounts), err)
	}
}
