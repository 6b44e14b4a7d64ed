package ldap_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http/httptest"
	"net/url"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	ldapv3 "github.com/go-ldap/ldap/v3"

	"github.com/provisor/provisor/access"
	"github.com/provisor/provisor/app/apptest"
	"github.com/provisor/provisor/connectors"
	"github.com/provisor/provisor/connectors/configured"
	"github.com/provisor/provisor/connectors/ldap/ldaptest"
	"github.com/provisor/provisor/database/dbtest"
	"github.com/provisor/provisor/identities"
	"github.com/provisor/provisor/imports"
	"github.com/provisor/provisor/internal/testwait"
	"github.com/provisor/provisor/requests"
	"github.com/provisor/provisor/tasks"
)

// peopleLDIF makes users uid=NAME under ou=people and groups with members.
func peopleLDIF(users []string, groups map[string][]string) string {
	var b strings.Builder
	for _, u := range users {
		fmt.Fprintf(&b, "dn: uid=%s,%s\nobjectClass: inetOrgPerson\nuid: %s\ncn: %s\nsn: %s\nmail: %s@example.test\n\n", u, ldaptest.PeopleDN, u, strings.ToUpper(u[:1])+u[1:], u, u)
	}
	names := make([]string, 0, len(groups))
	for g := range groups {
		names = append(names, g)
	}
	sort.Strings(names)
	for _, g := range names {
		fmt.Fprintf(&b, "dn: cn=%s,%s\nobjectClass: groupOfNames\ncn: %s\nmember: %s\n", g, ldaptest.GroupsDN, g, ldaptest.AdminDN)
		for _, m := range groups[g] {
			fmt.Fprintf(&b, "member: uid=%s,%s\n", m, ldaptest.PeopleDN)
		}
		b.WriteString("\n")
	}
	return b.String()
}

type api struct {
	*apptest.Bundle
	t     *testing.T
	token string
}

func newAPI(t *testing.T, b *apptest.Bundle) *api {
	c, secret, err := b.Access.CreateClient(b.Ctx, "ldap test", access.AllScopes, "test")
	if err != nil {
		t.Fatal(err)
	}
	a := &api{Bundle: b, t: t}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {c.ClientID}, "client_secret": {secret}}
	a.call("POST", "/api/v1/token", "application/x-www-form-urlencoded", form.Encode(), 200, &tok)
	a.token = tok.AccessToken
	return a
}

func (a *api) call(method, path, ct, body string, want int, out any) string {
	a.t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, path, r)
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	if a.token != "" {
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	resp, err := a.HTTP.Test(req, 60000)
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		a.t.Fatalf("%s %s = %d, want %d: %s", method, path, resp.StatusCode, want, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			a.t.Fatalf("%s %s: %v: %s", method, path, err, b)
		}
	}
	return string(b)
}

func (a *api) json(method, path, body string, want int, out any) string {
	a.t.Helper()
	ct := ""
	if body != "" {
		ct = "application/json"
	}
	return a.call(method, path, ct, body, want, out)
}

func (a *api) trigger(name string) *requests.Instance {
	a.t.Helper()
	task, err := a.Tasks.ByName(a.Ctx, name)
	if err != nil {
		a.t.Fatalf("task %q: %v", name, err)
	}
	inst, err := a.Tasks.Trigger(a.Ctx, task.ID, requests.TriggerManual, "tester")
	if err != nil {
		a.t.Fatalf("trigger %s: %v", name, err)
	}
	return a.WaitSettled(a.t, inst.ID)
}

func onlyJob(t *testing.T, inst *requests.Instance) requests.Job {
	t.Helper()
	if len(inst.Jobs) != 1 || inst.Status != requests.InstanceCompleted {
		t.Fatalf("run %s: %s", inst.Status, apptest.Describe(inst))
	}
	return inst.Jobs[0]
}

// TestLDAPThroughProvisor runs the connector the way the portal does: made
// through the API, with its Data Import tasks, jobs on the queue, imports,
// the deletion threshold and its approval, and a server restart in the
// middle of a run.
func TestLDAPThroughProvisor(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect string) {
		t.Parallel()
		users := []string{"alice", "bob", "carol", "dan", "eve", "fay", "gus", "hal", "ivy", "jon"}
		s := ldaptest.StartSlapd(t, &ldaptest.SlapdOptions{LDIF: peopleLDIF(users, map[string][]string{
			"staff": {"alice", "bob"}, "vpn": {"carol"}})})
		b := apptest.New(t, dialect, nil)
		a := newAPI(t, b)
		admin := s.Conn(t)

		// Invalid settings are refused field by field.
		body := a.json("POST", "/api/v1/connectors", `{"name":"Bad","type":"ldap","settings":{"urls":["http://x"],"user_base_dn":"not a dn","colour":"red"}}`, 422, nil)
		for _, f := range []string{"settings.urls[0]", "settings.user_base_dn", "settings.group_base_dn", "settings.colour"} {
			if !strings.Contains(body, `"field":"`+f+`"`) {
				t.Errorf("422 does not name %s: %s", f, body)
			}
		}
		// A connector with the first URL dead: failover to the second.
		settings := fmt.Sprintf(`{"urls":["ldap://127.0.0.1:1",%q],"bind_dn":%q,"user_base_dn":%q,"group_base_dn":%q,"deletion_threshold_percent":15}`,
			s.URL, ldaptest.AdminDN, ldaptest.PeopleDN, ldaptest.GroupsDN)
		var conn struct {
			ID       string         `json:"id"`
			Settings map[string]any `json:"settings"`
			Secrets  []string       `json:"secrets"`
		}
		a.json("POST", "/api/v1/connectors", fmt.Sprintf(`{"name":"Corp LDAP","type":"ldap","settings":%s,"secrets":{"bind_password":%q}}`,
			settings, ldaptest.AdminPassword), 201, &conn)
		got := a.json("GET", "/api/v1/connectors/"+conn.ID, "", 200, &conn)
		if strings.Contains(got, ldaptest.AdminPassword) || len(conn.Secrets) != 1 || conn.Secrets[0] != "bind_password" || conn.Settings["bind_dn"] != ldaptest.AdminDN {
			t.Errorf("connector as shown: %s", got)
		}
		var check struct {
			OK      bool   `json:"ok"`
			Message string `json:"message"`
		}
		a.json("POST", "/api/v1/connectors/"+conn.ID+"/check", "", 200, &check)
		if !check.OK || !strings.Contains(check.Message, "10 users") || !strings.Contains(check.Message, "2 groups") {
			t.Errorf("check: %+v", check)
		}

		// Saving the connector gave it its two Data Import tasks.
		var list struct {
			Items []tasks.Task `json:"items"`
		}
		a.json("GET", "/api/v1/tasks?q=Data+Import", "", 200, &list)
		crons := map[string]string{}
		for _, task := range list.Items {
			crons[task.Name] = task.Cron + " " + string(task.Request.ImportMode) + " " + task.BeneficiaryType + " " + task.BeneficiaryName
		}
		if crons["Data Import (delta) — Corp LDAP"] != "*/15 * * * * delta connector Corp LDAP" ||
			crons["Data Import (full) — Corp LDAP"] != "0 2 * * * full connector Corp LDAP" || len(crons) != 2 {
			t.Fatalf("data import tasks: %v", crons)
		}
		a.json("PATCH", "/api/v1/connectors/"+conn.ID, `{"description":"the corporate directory"}`, 200, nil)
		if a.json("GET", "/api/v1/tasks?q=Data+Import", "", 200, &list); len(list.Items) != 2 {
			t.Errorf("saving again made more tasks: %d", len(list.Items))
		}

		// Full import through its task.
		job := onlyJob(t, a.trigger("Data Import (full) — Corp LDAP"))
		if job.Kind != "Import.Full" || !strings.Contains(job.Message, "read 10 accounts and 2 groups") {
			t.Errorf("full import job: %s %q", job.Kind, job.Message)
		}
		ids, total, _ := b.Identities.ListIdentities(b.Ctx, identities.ListOpts{})
		if total != 10 || ids[0].Source != "Corp LDAP" {
			t.Errorf("identities: %d %+v", total, ids)
		}
		ents := map[string]*identities.Entitlement{}
		el, _, _ := b.Identities.ListEntitlements(b.Ctx, conn.ID, identities.ListOpts{})
		for i := range el {
			ents[el[i].Name] = &el[i]
		}
		if ents["staff"] == nil || ents["staff"].ExternalID != "cn=staff,"+ldaptest.GroupsDN {
			t.Fatalf("entitlements: %+v", el)
		}

		// Requests on the queue: grant, create with a grant, lock.
		alice, _ := b.Identities.IdentityByUsername(b.Ctx, "alice")
		inst := b.WaitSettled(t, b.Submit(t, requests.Request{Type: requests.AddEntitlements, BeneficiaryType: requests.BeneficiaryIdentity,
			BeneficiaryID: alice.ID, ConnectorID: conn.ID, Entitlements: []string{ents["vpn"].ID}}).ID)
		if j := onlyJob(t, inst); j.Kind != "LDAP AddToGroup" || !strings.Contains(j.Message, "alice added to vpn") {
			t.Errorf("grant job: %s %q", j.Kind, j.Message)
		}
		dora := b.Identity(t, "dora")
		inst = b.WaitSettled(t, b.Submit(t, requests.Request{Type: requests.CreateAccount, BeneficiaryType: requests.BeneficiaryIdentity,
			BeneficiaryID: dora.ID, ConnectorID: conn.ID, Entitlements: []string{ents["staff"].ID}}).ID)
		if inst.Status != requests.InstanceCompleted || inst.Jobs[0].Kind != "LDAP CreateUser" {
			t.Fatalf("create: %s", apptest.Describe(inst))
		}
		bob, _ := b.Identities.IdentityByUsername(b.Ctx, "bob")
		b.WaitSettled(t, b.Submit(t, requests.Request{Type: requests.LockAccount, BeneficiaryType: requests.BeneficiaryIdentity,
			BeneficiaryID: bob.ID, ConnectorID: conn.ID}).ID)
		if got := members(t, admin, "cn=staff,"+ldaptest.GroupsDN); strings.Join(got, " ") != "uid=alice,ou=people,dc=example,dc=test uid=bob,ou=people,dc=example,dc=test uid=dora,ou=people,dc=example,dc=test" {
			t.Errorf("staff: %v", got)
		}
		if e := entry(t, admin, "uid=bob,"+ldaptest.PeopleDN, "pwdAccountLockedTime"); e.GetAttributeValue("pwdAccountLockedTime") == "" {
			t.Error("bob is not locked")
		}
		dacc, err := b.Identities.AccountOf(b.Ctx, nil, conn.ID, dora.ID)
		if err != nil || dacc.ExternalID != "uid=dora,"+ldaptest.PeopleDN {
			t.Errorf("dora's account: %+v %v", dacc, err)
		}

		// Changes made in the directory come in with the delta import.
		// modifyTimestamp has whole seconds: the changes are made in a
		// second after the one the last import read up to.
		last := time.Now().Truncate(time.Second)
		testwait.Until(t, 5*time.Second, func() error {
			if !time.Now().Truncate(time.Second).After(last) {
				return errors.New("still in the second of the last import")
			}
			return nil
		})
		add := ldapv3.NewAddRequest("uid=kim,"+ldaptest.PeopleDN, nil)
		add.Attribute("objectClass", []string{"inetOrgPerson"})
		add.Attribute("uid", []string{"kim"})
		add.Attribute("cn", []string{"Kim"})
		add.Attribute("sn", []string{"K"})
		if err := admin.Add(add); err != nil {
			t.Fatal(err)
		}
		mod := ldapv3.NewModifyRequest("cn=vpn,"+ldaptest.GroupsDN, nil)
		mod.Add("member", []string{"uid=kim," + ldaptest.PeopleDN})
		if err := admin.Modify(mod); err != nil {
			t.Fatal(err)
		}
		job = onlyJob(t, a.trigger("Data Import (delta) — Corp LDAP"))
		if job.Kind != "Import.Delta" || !strings.Contains(job.Message, "accounts: 1 created") || !strings.Contains(job.Message, "memberships: 1 added") {
			t.Errorf("delta import: %q", job.Message)
		}
		if acc, err := b.Identities.AccountOf(b.Ctx, nil, conn.ID, bob.ID); err != nil || acc.Status != "locked" {
			t.Errorf("bob's account: %+v %v", acc, err)
		}

		// Two of 12 accounts deleted in the directory (17% > 15%): the
		// import waits for approval, then applies what it showed.
		for _, u := range []string{"ivy", "jon"} {
			if err := admin.Del(ldapv3.NewDelRequest("uid="+u+","+ldaptest.PeopleDN, nil)); err != nil {
				t.Fatal(err)
			}
		}
		job = onlyJob(t, a.trigger("Data Import (full) — Corp LDAP"))
		if !strings.Contains(job.Message, "would delete 2 and lock 0 of 12 accounts") || !strings.Contains(job.Message, "awaits approval") {
			t.Errorf("threshold job: %q", job.Message)
		}
		var pending struct {
			Items []imports.Import `json:"items"`
			Total int              `json:"total"`
		}
		a.json("GET", "/api/v1/imports?status=awaiting_approval&connector_id="+conn.ID, "", 200, &pending)
		if pending.Total != 1 {
			t.Fatalf("pending imports: %+v", pending)
		}
		var one imports.Import
		a.json("GET", "/api/v1/imports/"+pending.Items[0].ID, "", 200, &one)
		var deletes []string
		for _, c := range one.Changes {
			if c.Op == imports.ChangeDeleteAccount {
				deletes = append(deletes, c.Username)
			}
		}
		if strings.Join(deletes, ",") != "ivy,jon" {
			t.Errorf("planned deletions: %v", deletes)
		}
		if acc, _ := b.Identities.IdentityByUsername(b.Ctx, "ivy"); acc == nil {
			t.Fatal("ivy")
		}
		a.json("POST", "/api/v1/imports/"+one.ID+"/approve", "", 200, &one)
		if one.Status != imports.ImportApplied || !strings.HasPrefix(one.DecidedBy, "api:") {
			t.Errorf("approved: %+v", one)
		}
		a.json("POST", "/api/v1/imports/"+one.ID+"/reject", "", 409, nil)
		ivy, _ := b.Identities.IdentityByUsername(b.Ctx, "ivy")
		if acc, _ := b.Identities.AccountOf(b.Ctx, nil, conn.ID, ivy.ID); acc.Status != "deleted" {
			t.Errorf("ivy's account: %+v", acc)
		}

		// slapd stops in the middle of a run and comes back: the queue
		// retries, and every job completes.
		var everyone []*identities.Identity
		for _, u := range []string{"alice", "bob", "carol", "dan", "eve", "fay", "gus", "hal", "kim", "dora"} {
			id, _ := b.Identities.IdentityByUsername(b.Ctx, u)
			everyone = append(everyone, id)
		}
		wg := b.Workgroup(t, "Everyone", everyone...)
		run := b.Submit(t, requests.Request{Type: requests.AddEntitlements, BeneficiaryType: requests.BeneficiaryWorkgroup,
			BeneficiaryID: wg.ID, ConnectorID: conn.ID, Entitlements: []string{ents["vpn"].ID, ents["staff"].ID}})
		// slapd stops once the first job is done, and comes back once a job
		// failed against it and waits for its retry (or the run ended).
		b.Wait(t, run.ID, 60*time.Second, func(i *requests.Instance) bool { return i.JobsDone > 0 || !requests.Busy(i.Status) })
		s.Stop()
		b.Wait(t, run.ID, 60*time.Second, func(i *requests.Instance) bool {
			for _, j := range i.Jobs {
				if j.Status == requests.JobPending && j.Attempts > 0 {
					return true
				}
			}
			return !requests.Busy(i.Status)
		})
		if err := s.Start(); err != nil {
			t.Fatal(err)
		}
		inst = b.Wait(t, run.ID, 60*time.Second, func(i *requests.Instance) bool { return !requests.Busy(i.Status) })
		retried := 0
		for _, j := range inst.Jobs {
			if j.Status != requests.JobCompleted {
				t.Errorf("job #%d %s %s: %s %s", j.Seq, j.Kind, j.Username, j.Status, j.Message)
			}
			if j.Attempts > 1 {
				retried++
			}
		}
		t.Logf("%d of %d jobs were retried after the restart", retried, len(inst.Jobs))
		admin = s.Conn(t)
		if got := members(t, admin, "cn=vpn,"+ldaptest.GroupsDN); len(got) != 10 {
			t.Errorf("vpn after the restart: %v", got)
		}
	})
}

// TestStoreOpensOneConnector: workers that start together and open the
// same connector share one (and one pool); settings changed later replace it.
func TestStoreOpensOneConnector(t *testing.T) {
	t.Parallel()
	s := ldaptest.StartSlapd(t, nil)
	b := apptest.New(t, "sqlite", &apptest.Options{NoStart: true})
	rec, err := b.Connectors.Create(b.Ctx, configured.Input{Name: "Corp", Type: "ldap", Settings: []byte(s.Settings("")),
		Secrets: map[string]string{"bind_password": ldaptest.AdminPassword}})
	if err != nil {
		t.Fatal(err)
	}
	got := make([]connectors.Connector, 20)
	var wg sync.WaitGroup
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, _ := b.Connectors.Get(b.Ctx, rec.ID)
			got[i], _ = b.Connectors.Open(b.Ctx, r)
		}()
	}
	wg.Wait()
	for i := range got {
		if got[i] != got[0] {
			t.Fatalf("open %d gave another connector", i)
		}
	}
	if h := connectors.CheckHealth(b.Ctx, got[0]); !h.OK {
		t.Errorf("shared connector: %+v", h)
	}
	if _, err := got[0].(connectors.AccountManager).CreateAccount(b.Ctx, connectors.Account{Username: "x"}); err != nil {
		t.Errorf("shared connector was closed: %v", err)
	}
	rec, err = b.Connectors.Update(b.Ctx, rec.ID, configured.Input{Name: "Corp", Settings: []byte(s.Settings(`"pool_size":2`))})
	if err != nil {
		t.Fatal(err)
	}
	_, fresh, err := b.Connectors.OpenByID(b.Ctx, rec.ID)
	if err != nil || fresh == got[0] {
		t.Fatalf("after a change: %v", err)
	}
	// Whoever still holds the replaced one can finish its work.
	if _, err := got[0].(connectors.AccountManager).CreateAccount(b.Ctx, connectors.Account{Username: "y"}); err != nil {
		t.Errorf("the replaced connector: %v", err)
	}
}

// People sign in to the portal with their directory password; members of
// the admin group become admins, and the role follows the group.
func TestDirectorySignIn(t *testing.T) {
	t.Parallel()
	s := ldaptest.StartSlapd(t, &ldaptest.SlapdOptions{LDIF: peopleLDIF([]string{"ann", "ben"}, map[string][]string{"portal-admins": {"ann"}})})
	admin := s.Conn(t)
	for _, u := range []string{"ann", "ben"} {
		setPassword(t, admin, "uid="+u+","+ldaptest.PeopleDN, u+"-Pw-123")
	}
	b := apptest.New(t, "sqlite", &apptest.Options{NoStart: true})
	settings := fmt.Sprintf(`{"urls":[%q],"bind_dn":%q,"user_base_dn":%q,"group_base_dn":%q,"login_enabled":true,"admin_group_dn":%q}`,
		s.URL, ldaptest.AdminDN, ldaptest.PeopleDN, ldaptest.GroupsDN, "cn=portal-admins,"+ldaptest.GroupsDN)
	if _, err := b.Connectors.Create(b.Ctx, configured.Input{Name: "Corp LDAP", Type: "ldap", Settings: json.RawMessage(settings),
		Secrets: map[string]string{"bind_password": ldaptest.AdminPassword}}); err != nil {
		t.Fatal(err)
	}
	local := access.GeneratePassword()
	if _, err := b.Access.CreateUser(b.Ctx, access.UserInput{Username: "ben", Password: local, Role: access.RoleRequester}, "t"); err == nil {
		// A local user of the same name keeps its own password: the directory
		// does not take it over.
		if _, _, err := b.Access.SignIn(b.Ctx, "ben", "ben-Pw-123", "10.0.0.1"); !errors.Is(err, access.ErrInvalidCredentials) {
			t.Errorf("directory password for a local user: %v", err)
		}
		if _, _, err := b.Access.SignIn(b.Ctx, "ben", local, "10.0.0.1"); err != nil {
			t.Errorf("local password: %v", err)
		}
	}
	sess, _, err := b.Access.SignIn(b.Ctx, "ann", "ann-Pw-123", "10.0.0.2")
	if err != nil {
		t.Fatalf("ann: %v", err)
	}
	if u := sess.User; u.Role != access.RoleAdmin || !u.IsDirectoryUser() || u.Email != "ann@example.test" {
		t.Errorf("ann: %+v", u)
	}
	if _, _, err := b.Access.SignIn(b.Ctx, "ann", "wrong", "10.0.0.3"); !errors.Is(err, access.ErrInvalidCredentials) {
		t.Errorf("wrong password: %v", err)
	}
	// Out of the admin group: a requester at the next sign-in.
	if err := admin.Modify(&ldapv3.ModifyRequest{DN: "cn=portal-admins," + ldaptest.GroupsDN, Changes: []ldapv3.Change{
		{Operation: ldapv3.DeleteAttribute, Modification: ldapv3.PartialAttribute{Type: "member", Vals: []string{"uid=ann," + ldaptest.PeopleDN}}}}}); err != nil {
		t.Fatal(err)
	}
	sess, _, err = b.Access.SignIn(b.Ctx, "ann", "ann-Pw-123", "10.0.0.4")
	if err != nil || sess.User.Role != access.RoleRequester {
		t.Errorf("ann after leaving the group: %+v %v", sess, err)
	}
	s.Stop()
	if _, _, err := b.Access.SignIn(b.Ctx, "ann", "ann-Pw-123", "10.0.0.5"); !errors.Is(err, access.ErrDirectoryUnavailable) {
		t.Errorf("directory down: %v", err)
	}
}
