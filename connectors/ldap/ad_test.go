package ldap_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"

	ldapv3 "github.com/go-ldap/ldap/v3"

	"github.com/provisor/provisor/connectors"
	"github.com/provisor/provisor/connectors/ldap"
	"github.com/provisor/provisor/connectors/ldap/ldaptest"
)

// One Samba DC serves every AD test of the package (provisioning takes
// seconds); each test works in an OU of its own. The test that changes the
// domain's password policy holds policy for writing, the others for reading.
var adServer struct {
	once   sync.Once
	s      *ldaptest.Samba
	err    error
	policy sync.RWMutex
}

func samba(t *testing.T) *ldaptest.Samba {
	t.Helper()
	adServer.once.Do(func() { adServer.s, adServer.err = ldaptest.NewSamba() })
	if adServer.err != nil {
		t.Fatalf("Samba AD DC: %v", adServer.err)
	}
	return adServer.s
}

func closeSamba() {
	if adServer.s != nil {
		adServer.s.Close()
	}
}

func addOU(t *testing.T, c *ldapv3.Conn, name string) string {
	t.Helper()
	dn := "OU=" + name + "," + ldaptest.ADBaseDN
	req := ldapv3.NewAddRequest(dn, nil)
	req.Attribute("objectClass", []string{"top", "organizationalUnit"})
	req.Attribute("ou", []string{name})
	if err := c.Add(req); err != nil {
		t.Fatalf("add %s: %v", dn, err)
	}
	return dn
}

func addADGroup(t *testing.T, c *ldapv3.Conn, ou, cn string) string {
	t.Helper()
	dn := "CN=" + cn + "," + ou
	req := ldapv3.NewAddRequest(dn, nil)
	req.Attribute("objectClass", []string{"top", "group"})
	req.Attribute("cn", []string{cn})
	req.Attribute("sAMAccountName", []string{cn})
	req.Attribute("groupType", []string{"-2147483646"})
	if err := c.Add(req); err != nil {
		t.Fatalf("add group %s: %v", dn, err)
	}
	return dn
}

func adAttr(t *testing.T, c *ldapv3.Conn, dn, attr string) string {
	t.Helper()
	e := entry(t, c, dn, attr)
	if e == nil {
		return ""
	}
	return e.GetAttributeValue(attr)
}

func adBind(s *ldaptest.Samba, dn, pw string) error {
	c, err := ldapv3.DialURL(s.URL, ldapv3.DialWithTLSConfig(s.TLSConfig()))
	if err != nil {
		return err
	}
	defer c.Close()
	return c.Bind(dn, pw)
}

func adMembers(t *testing.T, c *ldapv3.Conn, dn string) []string {
	t.Helper()
	var out []string
	for _, m := range entry(t, c, dn, "member").GetAttributeValues("member") {
		out = append(out, strings.ToLower(m))
	}
	return out
}

// setDomainPolicy changes the domain's password and lockout policy.
func setDomainPolicy(t *testing.T, c *ldapv3.Conn, attrs map[string]string) {
	t.Helper()
	req := ldapv3.NewModifyRequest(ldaptest.ADBaseDN, nil)
	for k, v := range attrs {
		req.Replace(k, []string{v})
	}
	if err := c.Modify(req); err != nil {
		t.Fatalf("domain policy %v: %v", attrs, err)
	}
}

func TestADOperations(t *testing.T) {
	t.Parallel()
	s := samba(t)
	adServer.policy.RLock()
	defer adServer.policy.RUnlock()
	admin := s.Conn(t)
	ou := addOU(t, admin, "OpsTest")
	staff := addADGroup(t, admin, ou, "ops-staff")
	d := open(t, ldap.TypeAD, s.Settings(ou, ou, ""), ldaptest.ADAdminPassword)
	ctx := context.Background()

	wantKinds := map[connectors.Operation]string{
		connectors.OpCreateAccount: "AD CreateUser", connectors.OpDeleteAccount: "AD DeleteUser",
		connectors.OpEnableAccount: "Account.Enable", connectors.OpDisableAccount: "Account.Disable",
		connectors.OpGrant: "AD AddToGroup", connectors.OpRevoke: "AD RemoveFromGroup",
	}
	for op, want := range wantKinds {
		if got := d.Kind(op); got != want {
			t.Errorf("Kind(%s) = %q, want %q", op, got, want)
		}
	}
	alice := connectors.Account{Username: "ad.alice", DisplayName: "Alice Adams", Email: "alice@example.test"}
	aliceDN := "CN=ad.alice," + ou
	g := connectors.Entitlement{ExternalID: staff, Name: "ops-staff"}
	runSteps(t, []step{
		{"grant before create", func() (connectors.Result, error) { return d.Grant(ctx, alice, g) }, false, "no such account: ad.alice"},
		{"create", func() (connectors.Result, error) { return d.CreateAccount(ctx, alice) }, true, ""},
		{"create again", func() (connectors.Result, error) { return d.CreateAccount(ctx, alice) }, false, ""},
	})
	e := entry(t, admin, aliceDN, "sAMAccountName", "userPrincipalName", "userAccountControl", "pwdLastSet", "displayName", "mail")
	if e == nil || e.GetAttributeValue("sAMAccountName") != "ad.alice" || e.GetAttributeValue("userPrincipalName") != "ad.alice@example.test" ||
		e.GetAttributeValue("userAccountControl") != "512" || e.GetAttributeValue("pwdLastSet") == "0" || e.GetAttributeValue("displayName") != "Alice Adams" {
		t.Fatalf("created user: %+v", e)
	}
	// The generated password was set (the account is enabled, pwdLastSet is
	// not 0); set a known one to test binds.
	if _, err := d.SetPassword(ctx, alice, "Known-Passw0rd!"); err != nil {
		t.Fatal(err)
	}
	if err := adBind(s, aliceDN, "Known-Passw0rd!"); err != nil {
		t.Fatalf("bind as alice: %v", err)
	}

	// Disable and enable flip ACCOUNTDISABLE only: DONT_EXPIRE_PASSWORD stays.
	m := ldapv3.NewModifyRequest(aliceDN, nil)
	m.Replace("userAccountControl", []string{strconv.Itoa(512 | 0x10000)})
	if err := admin.Modify(m); err != nil {
		t.Fatal(err)
	}
	runSteps(t, []step{
		{"disable", func() (connectors.Result, error) { return d.DisableAccount(ctx, alice) }, true, ""},
		{"disable again", func() (connectors.Result, error) { return d.DisableAccount(ctx, alice) }, false, ""},
	})
	if got := adAttr(t, admin, aliceDN, "userAccountControl"); got != strconv.Itoa(512|0x10000|2) {
		t.Errorf("disabled UAC = %s", got)
	}
	if err := adBind(s, aliceDN, "Known-Passw0rd!"); !ldapv3.IsErrorWithCode(err, ldapv3.LDAPResultInvalidCredentials) || !strings.Contains(err.Error(), "533") {
		t.Errorf("bind when disabled: %v", err)
	}
	runSteps(t, []step{
		{"enable", func() (connectors.Result, error) { return d.EnableAccount(ctx, alice) }, true, ""},
		{"enable again", func() (connectors.Result, error) { return d.EnableAccount(ctx, alice) }, false, ""},
	})
	if got := adAttr(t, admin, aliceDN, "userAccountControl"); got != strconv.Itoa(512|0x10000) {
		t.Errorf("enabled UAC = %s", got)
	}
	if err := adBind(s, aliceDN, "Known-Passw0rd!"); err != nil {
		t.Errorf("bind when enabled: %v", err)
	}

	// Group membership, idempotent both ways.
	runSteps(t, []step{
		{"grant", func() (connectors.Result, error) { return d.Grant(ctx, alice, g) }, true, ""},
		{"grant again", func() (connectors.Result, error) { return d.Grant(ctx, alice, g) }, false, ""},
	})
	if got := adMembers(t, admin, staff); len(got) != 1 || got[0] != strings.ToLower(aliceDN) {
		t.Errorf("members: %v", got)
	}
	if got := adAttr(t, admin, aliceDN, "memberOf"); !strings.EqualFold(got, staff) {
		t.Errorf("memberOf: %q", got)
	}
	runSteps(t, []step{
		{"revoke", func() (connectors.Result, error) { return d.Revoke(ctx, alice, g) }, true, ""},
		{"revoke again", func() (connectors.Result, error) { return d.Revoke(ctx, alice, g) }, false, ""},
		{"grant missing group", func() (connectors.Result, error) {
			return d.Grant(ctx, alice, connectors.Entitlement{ExternalID: "CN=nope," + ou, Name: "nope"})
		}, false, "no such group"},
		{"injected username", func() (connectors.Result, error) {
			return d.Grant(ctx, connectors.Account{Username: "*"}, g)
		}, false, "no such account: *"},
		{"injected filter", func() (connectors.Result, error) {
			return d.Grant(ctx, connectors.Account{Username: "x)(sAMAccountName=*"}, g)
		}, false, "no such account"},
	})
	if got := adMembers(t, admin, staff); len(got) != 0 {
		t.Errorf("members after the injection attempts: %v", got)
	}
	// Batches: one modify per group, one by one where AD refuses it
	// (68 for a member there already, 53 for one that is not).
	barb := connectors.Account{Username: "ad.barb"}
	if _, err := d.CreateAccount(ctx, barb); err != nil {
		t.Fatal(err)
	}
	both := []connectors.Membership{{Account: alice, Entitlement: g}, {Account: barb, Entitlement: g}}
	withGhost := append(both, connectors.Membership{Account: connectors.Account{Username: "ad.ghost"}, Entitlement: g})
	for _, c := range []struct {
		what string
		do   func() ([]connectors.Result, []error)
		want string
	}{
		{"grant both", func() ([]connectors.Result, []error) { return d.GrantAll(ctx, both) },
			"ad.alice added to ops-staff *\nad.barb added to ops-staff *"},
		{"grant again", func() ([]connectors.Result, []error) { return d.GrantAll(ctx, withGhost) },
			"ad.alice was already a member of ops-staff\nad.barb was already a member of ops-staff\n" +
				"permanent: add ad.ghost to ops-staff: no such account: ad.ghost"},
		{"revoke both", func() ([]connectors.Result, []error) { return d.RevokeAll(ctx, withGhost) },
			"ad.alice removed from ops-staff *\nad.barb removed from ops-staff *\nad.ghost was not a member of ops-staff"},
		{"revoke again", func() ([]connectors.Result, []error) { return d.RevokeAll(ctx, both) },
			"ad.alice was not a member of ops-staff\nad.barb was not a member of ops-staff"},
	} {
		if got := describe(c.do()); got != c.want {
			t.Errorf("%s:\n got:\n%s\nwant:\n%s", c.what, got, c.want)
		}
	}
	// AD drops a deleted account's links itself.
	if _, err := d.Grant(ctx, barb, g); err != nil {
		t.Fatal(err)
	}
	if _, err := d.DeleteAccount(ctx, barb); err != nil {
		t.Fatal(err)
	}
	if got := adMembers(t, admin, staff); len(got) != 0 {
		t.Errorf("members after deleting ad.barb: %v", got)
	}
	// A password the domain refuses: permanent, with AD's message.
	_, err := d.SetPassword(ctx, alice, "abc")
	if !connectors.IsPermanent(err) || !strings.Contains(err.Error(), "Constraint Violation") || !strings.Contains(err.Error(), "password") {
		t.Errorf("weak password: %v", err)
	}

	h := d.Check(ctx)
	if !h.OK || !strings.Contains(h.Message, "1 users under "+ou) || !strings.Contains(h.Message, "1 groups") || strings.Contains(h.Message, "WARNING") {
		t.Errorf("check: %+v", h)
	}
	runSteps(t, []step{
		{"delete", func() (connectors.Result, error) { return d.DeleteAccount(ctx, alice) }, true, ""},
		{"delete again", func() (connectors.Result, error) { return d.DeleteAccount(ctx, alice) }, false, ""},
	})
	if entry(t, admin, aliceDN) != nil {
		t.Error("alice is still there")
	}
	// Too long a sAMAccountName is refused before asking the server.
	if _, err := d.CreateAccount(ctx, connectors.Account{Username: "a-name-longer-than-twenty"}); !connectors.IsPermanent(err) {
		t.Errorf("long name: %v", err)
	}
}

// TestADPolicies changes the domain's policies: no other AD test runs meanwhile.
func TestADPolicies(t *testing.T) {
	t.Parallel()
	s := samba(t)
	adServer.policy.Lock()
	defer adServer.policy.Unlock()
	admin := s.Conn(t)
	ou := addOU(t, admin, "PolicyTest")
	d := open(t, ldap.TypeAD, s.Settings(ou, ou, ""), ldaptest.ADAdminPassword)
	ctx := context.Background()

	// Locked out after failed binds; unlock clears lockoutTime.
	setDomainPolicy(t, admin, map[string]string{"lockoutThreshold": "3", "lockoutDuration": "-18000000000", "lockOutObservationWindow": "-18000000000"})
	defer setDomainPolicy(t, admin, map[string]string{"lockoutThreshold": "0"})
	bob := connectors.Account{Username: "ad.bob", DisplayName: "Bob"}
	bobDN := "CN=ad.bob," + ou
	if _, err := d.CreateAccount(ctx, bob); err != nil {
		t.Fatal(err)
	}
	if _, err := d.SetPassword(ctx, bob, "Bob-Passw0rd!"); err != nil {
		t.Fatal(err)
	}
	for range 4 {
		_ = adBind(s, bobDN, "wrong-password")
	}
	if lt := adAttr(t, admin, bobDN, "lockoutTime"); lt == "" || lt == "0" {
		t.Fatalf("not locked out after failed binds: lockoutTime %q", lt)
	}
	if err := adBind(s, bobDN, "Bob-Passw0rd!"); err == nil || !strings.Contains(err.Error(), "775") {
		t.Errorf("bind when locked out: %v", err)
	}
	res, err := d.Unlock(ctx, bob)
	if err != nil || !res.Changed || !strings.Contains(res.Message, "unlocked") {
		t.Fatalf("unlock: %+v %v", res, err)
	}
	if lt := adAttr(t, admin, bobDN, "lockoutTime"); lt != "0" {
		t.Errorf("lockoutTime after unlock: %q", lt)
	}
	if err := adBind(s, bobDN, "Bob-Passw0rd!"); err != nil {
		t.Errorf("bind after unlock: %v", err)
	}
	if res, err := d.Unlock(ctx, bob); err != nil || res.Changed {
		t.Errorf("unlock again: %+v %v", res, err)
	}
	// Enable also ends a lockout.
	for range 4 {
		_ = adBind(s, bobDN, "wrong-password")
	}
	if res, err := d.EnableAccount(ctx, bob); err != nil || !strings.Contains(res.Message, "unlocked") {
		t.Errorf("enable a locked-out account: %+v %v", res, err)
	}

	// A domain that wants longer passwords than the connector generates:
	// the create is refused as a whole, permanently, with AD's message.
	setDomainPolicy(t, admin, map[string]string{"minPwdLength": "30"})
	defer setDomainPolicy(t, admin, map[string]string{"minPwdLength": "7"})
	_, err = d.CreateAccount(ctx, connectors.Account{Username: "ad.carol"})
	if !connectors.IsPermanent(err) || !strings.Contains(err.Error(), "Constraint Violation") || !strings.Contains(strings.ToLower(err.Error()), "password") {
		t.Errorf("refused password: %v", err)
	}
	t.Logf("AD's refusal: %v", err)
	if entry(t, admin, "CN=ad.carol,"+ou) != nil {
		t.Error("a refused create left an account behind")
	}
}

func TestADImportAndSignIn(t *testing.T) {
	t.Parallel()
	s := samba(t)
	adServer.policy.RLock()
	defer adServer.policy.RUnlock()
	admin := s.Conn(t)
	ou := addOU(t, admin, "ImportTest")
	staff := addADGroup(t, admin, ou, "imp-staff")
	admins := addADGroup(t, admin, ou, "imp-admins")
	nested := addADGroup(t, admin, ou, "imp-nested")
	d := open(t, ldap.TypeAD, s.Settings(ou, ou, fmt.Sprintf(`"login_enabled":true,"admin_group_dn":%q`, admins)), ldaptest.ADAdminPassword)
	ctx := context.Background()
	for _, u := range []string{"imp.ann", "imp.ben", "imp.cy"} {
		if _, err := d.CreateAccount(ctx, connectors.Account{Username: u, DisplayName: "User " + u, Email: u + "@example.test"}); err != nil {
			t.Fatal(err)
		}
		if _, err := d.SetPassword(ctx, connectors.Account{Username: u}, "Imp-Passw0rd-"+u); err != nil {
			t.Fatal(err)
		}
	}
	d.Grant(ctx, connectors.Account{Username: "imp.ann"}, connectors.Entitlement{ExternalID: staff})
	d.Grant(ctx, connectors.Account{Username: "imp.ben"}, connectors.Entitlement{ExternalID: staff})
	d.DisableAccount(ctx, connectors.Account{Username: "imp.cy"})

	rec := &recorder{}
	cookie, err := d.Import(ctx, connectors.ImportFull, "", rec)
	if err != nil || !strings.HasPrefix(cookie, "usn:") {
		t.Fatalf("full import: %q %v", cookie, err)
	}
	if len(rec.accounts) != 3 || len(rec.groups) != 3 || len(rec.members[normalize(staff)]) != 2 {
		t.Fatalf("full import read %d accounts, %d groups, staff %v", len(rec.accounts), len(rec.groups), rec.members[normalize(staff)])
	}
	for _, a := range rec.accounts {
		if a.Locked != (a.Username == "imp.cy") || a.Email != a.Username+"@example.test" || a.Correlation != a.Username {
			t.Errorf("account %+v", a)
		}
		if a.Username == "imp.ann" && (len(a.Entitlements) != 1 || a.Entitlements[0] != normalize(staff)) {
			t.Errorf("ann's groups: %v", a.Entitlements)
		}
	}
	// The delta reads the group whose members changed, and lists what is
	// present; a deleted user is missing from that list.
	d.Revoke(ctx, connectors.Account{Username: "imp.ben"}, connectors.Entitlement{ExternalID: staff})
	d.DeleteAccount(ctx, connectors.Account{Username: "imp.cy"})
	rec = &recorder{}
	next, err := d.Import(ctx, connectors.ImportDelta, cookie, rec)
	if err != nil || next == cookie {
		t.Fatalf("delta: %q %v", next, err)
	}
	if len(rec.groups) != 1 || len(rec.members[normalize(staff)]) != 1 || len(rec.accounts) != 0 || len(rec.present) != 5 {
		t.Errorf("delta read groups %v, accounts %v, present %v", rec.groups, rec.accounts, rec.present)
	}
	// A cookie of another domain controller reads everything.
	rec = &recorder{}
	if _, err := d.Import(ctx, connectors.ImportDelta, "usn:1:CN=NTDS Settings,CN=other", rec); err != nil || len(rec.accounts) != 2 {
		t.Errorf("delta from another DC: %d accounts, %v", len(rec.accounts), err)
	}

	// Sign-in, with the admin group reached through a nested group.
	m := ldapv3.NewModifyRequest(admins, nil)
	m.Add("member", []string{nested})
	admin.Modify(m)
	d.Grant(ctx, connectors.Account{Username: "imp.ann"}, connectors.Entitlement{ExternalID: nested})
	u, err := d.Authenticate(ctx, "imp.ann", "Imp-Passw0rd-imp.ann")
	if err != nil || !u.IsAdmin || u.DisplayName != "User imp.ann" {
		t.Errorf("ann signs in: %+v %v", u, err)
	}
	if u, err := d.Authenticate(ctx, "imp.ben", "Imp-Passw0rd-imp.ben"); err != nil || u.IsAdmin {
		t.Errorf("ben signs in: %+v %v", u, err)
	}
	if _, err := d.Authenticate(ctx, "imp.ben", "wrong"); !errors.Is(err, ldap.ErrInvalidCredentials) {
		t.Errorf("wrong password: %v", err)
	}
}

func TestADTLS(t *testing.T) {
	t.Parallel()
	s := samba(t)
	ctx := context.Background()
	other, _ := ldaptest.NewCA("Another CA")
	base := fmt.Sprintf(`"bind_dn":%q,"user_base_dn":%q,"group_base_dn":%q`, ldaptest.ADAdminDN, ldaptest.ADUsersDN, ldaptest.ADUsersDN)
	wrong := open(t, ldap.TypeAD, fmt.Sprintf(`{"urls":[%q],"ca_cert":%q,%s}`, s.URL, other.CertPEM, base), ldaptest.ADAdminPassword)
	if h := wrong.Check(ctx); h.OK || !strings.Contains(h.Message, "not signed by the configured CA") {
		t.Errorf("wrong CA: %+v", h)
	}
	starttls := open(t, ldap.TypeAD, fmt.Sprintf(`{"urls":["ldap://%s:389"],"start_tls":true,"ca_cert":%q,%s}`, s.Addr, s.CA.CertPEM, base), ldaptest.ADAdminPassword)
	if h := starttls.Check(ctx); !h.OK {
		t.Errorf("StartTLS: %+v", h)
	}
	skip := open(t, ldap.TypeAD, fmt.Sprintf(`{"urls":[%q],"insecure_skip_verify":true,%s}`, s.URL, base), ldaptest.ADAdminPassword)
	if h := skip.Check(ctx); !h.OK || !strings.Contains(h.Message, "WARNING: TLS certificate verification is off") {
		t.Errorf("skip verify: %+v", h)
	}
	problems := ldap.ADType().ValidateSettings([]byte(fmt.Sprintf(`{"urls":["ldap://%s:389"],%s}`, s.Addr, base)), map[string]string{"bind_password": "x"})
	if !strings.Contains(problems["settings.urls[0]"], "only over TLS") {
		t.Errorf("plain LDAP for AD: %v", problems)
	}
}

// recorder is a connectors.DirectorySink that keeps what it is given.
type recorder struct {
	mu       sync.Mutex
	accounts []connectors.ImportedAccount
	groups   []connectors.Entitlement
	members  map[string][]string
	present  []string
	deleted  []string
}

func (r *recorder) Account(_ context.Context, a connectors.ImportedAccount) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.accounts = append(r.accounts, a)
	return nil
}
func (r *recorder) Entitlement(_ context.Context, e connectors.Entitlement) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.groups = append(r.groups, e)
	return nil
}
func (r *recorder) Deleted(_ context.Context, id string) error {
	r.deleted = append(r.deleted, id)
	return nil
}
func (r *recorder) Members(_ context.Context, g string, m []string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.members == nil {
		r.members = map[string][]string{}
	}
	r.members[g] = m
	return nil
}
func (r *recorder) Present(_ context.Context, ids []string) error {
	r.present = append(r.present, ids...)
	return nil
}

// normalize is the form in which the connector hands out DNs.
func normalize(dn string) string {
	return strings.ToLower(dn)
}
