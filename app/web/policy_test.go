package web_test

import (
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	ldapv3 "github.com/go-ldap/ldap/v3"

	"github.com/provisor/provisor/access"
	"github.com/provisor/provisor/app/apptest"
	"github.com/provisor/provisor/connectors"
	"github.com/provisor/provisor/connectors/configured"
	"github.com/provisor/provisor/connectors/ldap/ldaptest"
	"github.com/provisor/provisor/identities"
)

func ptr[T any](v T) *T { return &v }

// startWizard begins a draft of type typ and returns its base URL.
func startWizard(t *testing.T, br *browser, typ string) string {
	t.Helper()
	r := br.post("/requests/new", url.Values{"type": {typ}})
	if r.status != 303 {
		t.Fatalf("start %s: %d", typ, r.status)
	}
	return strings.TrimSuffix(r.header.Get("Location"), "beneficiary")
}

func fragment(br *browser, path string) response {
	return br.do("GET", path, nil, "HX-Request", "true", "HX-Target", "results")
}

// The wizard lists only whom and what the requester may ask for, and says
// why an entitlement is not offered.
func TestWizardOffersWhatThePolicyAllows(t *testing.T) {
	t.Parallel()
	w := setup(t)
	b := w.Bundle
	carol := b.Identity(t, "carol")
	_, ents := b.Directory(t, "Apps", "Wiki", "Root", "Payroll")
	b.Workgroup(t, "Others", carol)
	if _, err := b.Identities.SetPolicy(b.Ctx, ents["Wiki"].ID, identities.PolicyInput{Requestable: ptr(false)}, "t"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Identities.SetPolicy(b.Ctx, ents["Root"].ID, identities.PolicyInput{Sensitivity: ptr("privileged"), Approval: ptr("admin")}, "t"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Identities.SetPolicy(b.Ctx, ents["Payroll"].ID, identities.PolicyInput{MaxDuration: ptr("30d")}, "t"); err != nil {
		t.Fatal(err)
	}
	apps := ents["Wiki"].ConnectorID

	br := newBrowser(t, b)
	br.login("rita", w.requesterPW)
	base := startWizard(t, br, "add_entitlements")
	r := fragment(br, base+"beneficiary?q=")
	if r.status != 200 || !strings.Contains(r.body, w.alice) || strings.Contains(r.body, carol.ID) {
		t.Errorf("beneficiaries: alice (a report) listed, carol not: %d %s", r.status, r.body)
	}
	if !strings.Contains(r.body, "rita") {
		t.Errorf("beneficiaries: rita herself is missing: %s", r.body)
	}
	if r := br.post(base+"beneficiary", url.Values{"action": {"switch"}, "beneficiary_type": {"workgroup"}}); r.status != 303 {
		t.Fatalf("switch: %d", r.status)
	}
	if r := fragment(br, base+"beneficiary?q="); strings.Contains(r.body, "Others") {
		t.Errorf("a workgroup rita does not own is offered: %s", r.body)
	}
	// A beneficiary sent by hand that is not offered is refused at its step.
	if r := br.post(base+"beneficiary", url.Values{"action": {"next"}, "beneficiary_type": {"identity"}, "beneficiary_id": {carol.ID}}); r.status != 422 ||
		!strings.Contains(r.body, "not someone you may ask for") {
		t.Errorf("carol chosen by hand: %d", r.status)
	}
	for _, step := range []struct {
		name string
		f    url.Values
	}{
		{"beneficiary", url.Values{"beneficiary_type": {"identity"}, "beneficiary_id": {w.alice}}},
		{"connector", url.Values{"connector_id": {apps}}},
	} {
		step.f.Set("action", "next")
		if r := br.post(base+step.name, step.f); r.status != 303 {
			t.Fatalf("%s: %d %s", step.name, r.status, r.body)
		}
	}
	r = fragment(br, base+"access?q=")
	if r.status != 200 || strings.Contains(r.body, "<html") {
		t.Fatalf("access fragment: %d", r.status)
	}
	if strings.Contains(r.body, `value="`+ents["Wiki"].ID+`"`) || !strings.Contains(r.body, "not requestable") {
		t.Errorf("Wiki is offered, or not said why: %s", r.body)
	}
	// A privileged entitlement that an admin approves is offered, and says
	// so: the request waits for the approval instead of being refused.
	if !strings.Contains(r.body, `value="`+ents["Root"].ID+`"`) || !strings.Contains(r.body, `badge-approval">needs the approval of an admin`) {
		t.Errorf("Root is not offered with its approval: %s", r.body)
	}
	if !strings.Contains(r.body, `value="`+ents["Payroll"].ID+`"`) || !strings.Contains(r.body, "at most 30d") {
		t.Errorf("Payroll is not offered as time-bound: %s", r.body)
	}
	// Wiki chosen by hand anyway: refused at the step, with the rule's words.
	if r := br.post(base+"access", url.Values{"action": {"next"}, "entitlements": {ents["Wiki"].ID}}); r.status != 422 ||
		!strings.Contains(r.body, "entitlement Wiki is not requestable") {
		t.Errorf("Wiki chosen by hand: %d %s", r.status, r.body)
	}
	if r := br.post(base+"access", url.Values{"action": {"next"}, "entitlements": {ents["Root"].ID}}); r.status != 303 {
		t.Errorf("Root chosen: %d %s", r.status, r.body)
	}

	// An admin is offered everything.
	adm := newBrowser(t, b)
	adm.login("admin", w.adminPW)
	base = startWizard(t, adm, "add_entitlements")
	if r := fragment(adm, base+"beneficiary?q="); !strings.Contains(r.body, carol.ID) {
		t.Errorf("admin: carol not listed")
	}
	for _, step := range []struct {
		name string
		f    url.Values
	}{
		{"beneficiary", url.Values{"beneficiary_type": {"identity"}, "beneficiary_id": {carol.ID}}},
		{"connector", url.Values{"connector_id": {apps}}},
	} {
		step.f.Set("action", "next")
		if r := adm.post(base+step.name, step.f); r.status != 303 {
			t.Fatalf("admin %s: %d", step.name, r.status)
		}
	}
	if r := fragment(adm, base+"access?q="); !strings.Contains(r.body, `value="`+ents["Wiki"].ID+`"`) || strings.Contains(r.body, "not requestable") {
		t.Errorf("admin: Wiki not offered: %s", r.body)
	}
}

// The escalation: a requester who signs in with her directory password asks
// for the directory's admin group on her own identity. It is refused in the
// portal and in the API, nothing is queued, and she is no admin at her next
// sign-in.
func TestDirectoryRequesterCannotGrantHerselfAdmin(t *testing.T) {
	t.Parallel()
	const adminsDN = "cn=admins," + ldaptest.GroupsDN
	ldif := fmt.Sprintf(`dn: uid=eve,%[1]s
objectClass: inetOrgPerson
uid: eve
cn: Eve
sn: Eve
mail: eve@example.test
userPassword: eve-Pw-123

dn: uid=boss,%[1]s
objectClass: inetOrgPerson
uid: boss
cn: Boss
sn: Boss
mail: boss@example.test
userPassword: boss-Pw-123

dn: %[2]s
objectClass: groupOfNames
cn: admins
member: uid=boss,%[1]s

dn: cn=staff,%[3]s
objectClass: groupOfNames
cn: staff
member: uid=boss,%[1]s
`, ldaptest.PeopleDN, adminsDN, ldaptest.GroupsDN)
	s := ldaptest.StartSlapd(t, &ldaptest.SlapdOptions{LDIF: ldif})
	b := apptest.New(t, "sqlite", nil)
	rec, err := b.Connectors.Create(b.Ctx, configured.Input{Name: "Corp LDAP", Type: "ldap",
		Settings: json.RawMessage(s.Settings(`"login_enabled":true,"admin_group_dn":"cn=admins, ou=groups, dc=example, dc=test"`)),
		Secrets:  map[string]string{"bind_password": ldaptest.AdminPassword}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Importer.Run(b.Ctx, rec.ID, connectors.ImportFull, ""); err != nil {
		t.Fatalf("import: %v", err)
	}
	list, _, err := b.Identities.ListEntitlements(b.Ctx, rec.ID, identities.ListOpts{Query: "admins"})
	if err != nil || len(list) != 1 {
		t.Fatalf("imported admins group: %v %v", list, err)
	}
	admins := list[0]
	if !admins.Privileged() || admins.Approval != identities.ApprovalAdmin || admins.Requestable {
		t.Fatalf("the admin group's policy: %+v", admins.Policy)
	}
	eve, err := b.Identities.IdentityByUsername(b.Ctx, "eve")
	if err != nil {
		t.Fatal(err)
	}

	br := newBrowser(t, b)
	if r := br.login("eve", "eve-Pw-123"); r.status != 303 {
		t.Fatalf("eve signs in: %d %s", r.status, r.body)
	}
	base := startWizard(t, br, "add_entitlements")
	for _, step := range []struct {
		name string
		f    url.Values
	}{
		{"beneficiary", url.Values{"beneficiary_type": {"identity"}, "beneficiary_id": {eve.ID}}},
		{"connector", url.Values{"connector_id": {rec.ID}}},
	} {
		step.f.Set("action", "next")
		if r := br.post(base+step.name, step.f); r.status != 303 {
			t.Fatalf("%s: %d %s", step.name, r.status, r.body)
		}
	}
	if r := fragment(br, base+"access?q="); strings.Contains(r.body, `value="`+admins.ID+`"`) || !strings.Contains(r.body, "privileged: not requestable") {
		t.Errorf("the admins group is offered: %s", r.body)
	}
	const refusal = "entitlement admins is privileged and not requestable: only an admin can grant it"
	if r := br.post(base+"access", url.Values{"action": {"next"}, "entitlements": {admins.ID}}); r.status != 422 || !strings.Contains(r.body, refusal) {
		t.Errorf("admins chosen by hand: %d %s", r.status, r.body)
	}
	// Had the draft held the group anyway, Submit and Create Task refuse it.
	u, err := b.Access.UserByUsername(b.Ctx, "eve")
	if err != nil {
		t.Fatal(err)
	}
	draftID := strings.TrimSuffix(strings.TrimPrefix(base, "/requests/drafts/"), "/")
	d, err := b.Requests.GetDraft(b.Ctx, u.ID, draftID)
	if err != nil {
		t.Fatal(err)
	}
	d.Entitlements, d.Justification = []string{admins.ID}, "I need it"
	if err := b.Requests.SaveDraft(b.Ctx, d); err != nil {
		t.Fatal(err)
	}
	if r := br.get(base + "review"); !strings.Contains(r.body, "This request is not allowed") || !strings.Contains(r.body, refusal) {
		t.Errorf("review does not say it is refused: %s", r.body)
	}
	for _, action := range []string{"submit", "task"} {
		if r := br.post(base+"review", url.Values{"action": {action}}); r.status != 403 || !strings.Contains(r.body, refusal) {
			t.Errorf("%s: %d %s", action, r.status, r.body)
		}
	}

	// Through the API, with a client acting for her.
	c, secret, err := b.Access.CreateClientFor(b.Ctx, "eve's script", []string{access.ScopeRequests}, "eve", "t")
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := b.Access.IssueToken(b.Ctx, c.ClientID, secret, nil)
	if err != nil {
		t.Fatal(err)
	}
	body := fmt.Sprintf(`{"type":"add_entitlements","beneficiary_type":"identity","beneficiary_id":%q,"connector_id":%q,"entitlements":[%q],"justification":"x"}`,
		eve.ID, rec.ID, admins.ID)
	req := httptest.NewRequest("POST", "/api/v1/requests", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := b.HTTP.Test(req, 10000)
	if err != nil {
		t.Fatal(err)
	}
	var p struct {
		Status int    `json:"status"`
		Detail string `json:"detail"`
		Rule   string `json:"rule"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&p)
	resp.Body.Close()
	if resp.StatusCode != 403 || resp.Header.Get("Content-Type") != "application/problem+json" || p.Rule != "not_requestable" || p.Detail != refusal {
		t.Errorf("API: %d %s %+v", resp.StatusCode, resp.Header.Get("Content-Type"), p)
	}

	// Nothing was queued, nothing changed in the directory, and she signs in
	// as a requester again.
	var runs, tasks int64
	b.DB.Gorm.Table("request_instances").Count(&runs)
	b.DB.Gorm.Table("tasks").Where("created_by = ?", "eve").Count(&tasks)
	if runs != 0 || tasks != 0 {
		t.Errorf("%d runs and %d tasks after the refusals", runs, tasks)
	}
	conn := s.Conn(t)
	res, err := conn.Search(ldapv3.NewSearchRequest(adminsDN, ldapv3.ScopeBaseObject, ldapv3.NeverDerefAliases, 0, 0, false,
		"(objectClass=*)", []string{"member"}, nil))
	if err != nil || len(res.Entries) != 1 || len(res.Entries[0].GetAttributeValues("member")) != 1 {
		t.Errorf("cn=admins changed: %v %v", res, err)
	}
	again := newBrowser(t, b)
	if r := again.login("eve", "eve-Pw-123"); r.status != 303 {
		t.Fatalf("eve signs in again: %d", r.status)
	}
	if u, err := b.Access.UserByUsername(b.Ctx, "eve"); err != nil || u.Role != access.RoleRequester {
		t.Errorf("eve at her next sign-in: %+v %v", u, err)
	}
	if r := again.get("/connectors"); r.status != 403 {
		t.Errorf("eve opens an admin page: %d", r.status)
	}
}
