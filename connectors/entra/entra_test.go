package entra_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/provisor/provisor/app/apptest"
	"github.com/provisor/provisor/connectors"
	"github.com/provisor/provisor/connectors/configured"
	"github.com/provisor/provisor/connectors/entra"
	"github.com/provisor/provisor/connectors/entra/graphtest"
	"github.com/provisor/provisor/database/dbtest"
	"github.com/provisor/provisor/identities"
	"github.com/provisor/provisor/imports"
)

func open(t *testing.T, g *graphtest.Server, log *slog.Logger, extra ...string) *entra.Directory {
	t.Helper()
	d, err := entra.OpenWith(connectors.Config{Name: "SLB Entra", Settings: g.Settings(extra...),
		Secrets: map[string]string{entra.SecretClientSecret: graphtest.ClientSecret}},
		&entra.Options{Log: log, Backoff: time.Millisecond, LagWait: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func want(t *testing.T, changed bool) func(connectors.Result, error) connectors.Result {
	t.Helper()
	return func(r connectors.Result, err error) connectors.Result {
		t.Helper()
		if err != nil || r.Changed != changed {
			t.Fatalf("got %+v, %v; want changed=%v", r, err, changed)
		}
		return r
	}
}

func TestOperationsAndRepeats(t *testing.T) {
	t.Parallel()
	g := graphtest.New(t, nil)
	var logs bytes.Buffer
	d := open(t, g, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})), `"usage_location":"DE"`)
	ctx := context.Background()
	if h := d.Check(ctx); !h.OK || !strings.Contains(h.Message, "Contoso Test") {
		t.Fatalf("check: %+v", h)
	}
	ann := connectors.Account{Username: "ann", DisplayName: "Ann Lee", GivenName: "Ann", Surname: "Lee"}
	r := want(t, true)(d.CreateAccount(ctx, ann))
	u := g.User("ann@contoso.test")
	if u == nil || r.ExternalID != u.ID || !u.AccountEnabled || !u.ForceChange || u.UsageLocation != "DE" || u.MailNickname != "ann" || len(u.Password) < 16 || r.RequestID == "" {
		t.Fatalf("created %+v, result %+v", u, r)
	}
	if got := want(t, false)(d.CreateAccount(ctx, ann)); got.ExternalID != u.ID {
		t.Fatalf("create again adopts: %+v", got)
	}
	ann.ExternalID = u.ID
	want(t, true)(d.DisableAccount(ctx, ann))
	want(t, false)(d.DisableAccount(ctx, ann))
	if g.User(u.ID).AccountEnabled {
		t.Fatal("still enabled")
	}
	want(t, true)(d.EnableAccount(ctx, ann))
	want(t, false)(d.EnableAccount(ctx, ann))

	grp := g.AddGroup("VPN")
	vpn := connectors.Entitlement{ExternalID: grp.ID, Name: "VPN"}
	want(t, true)(d.Grant(ctx, ann, vpn))
	if r := want(t, false)(d.Grant(ctx, ann, vpn)); !strings.Contains(r.Message, "already a member") {
		t.Fatalf("duplicate member: %+v", r)
	}
	want(t, true)(d.Revoke(ctx, ann, vpn))
	want(t, false)(d.Revoke(ctx, ann, vpn))
	if len(g.DeletedThroughMembers()) != 0 || g.User(u.ID) == nil {
		t.Fatal("a revoke without /$ref deleted the user")
	}

	role := connectors.Entitlement{ExternalID: entra.DirectoryRole("62e90394-69f5-4237-9190-012177145e10"), Name: "Global Administrator", Kind: "role"}
	if k := d.KindOf(connectors.OpGrant, role); k != "EntraID AssignRole" {
		t.Errorf("kind of a role grant: %s", k)
	}
	if k := d.KindOf(connectors.OpGrant, vpn); k != "EntraID AddToGroup" {
		t.Errorf("kind of a group grant: %s", k)
	}
	want(t, true)(d.Grant(ctx, ann, role))
	want(t, false)(d.Grant(ctx, ann, role))
	if ra := g.RoleAssignments(); len(ra) != 1 || ra[0].PrincipalID != u.ID || ra[0].DirectoryScopeID != "/" {
		t.Fatalf("role assignments %+v", ra)
	}
	want(t, true)(d.Revoke(ctx, ann, role))
	want(t, false)(d.Revoke(ctx, ann, role))

	sp := g.AddServicePrincipal()
	app := connectors.Entitlement{ExternalID: entra.AppRole(sp, "00000000-0000-0000-0000-0000000000aa"), Name: "App User", Kind: "role"}
	want(t, true)(d.Grant(ctx, ann, app))
	want(t, false)(d.Grant(ctx, ann, app))
	if as := g.AppRoleAssignments(sp); len(as) != 1 || as[0].ResourceID != sp {
		t.Fatalf("app role assignments %+v", as)
	}
	want(t, true)(d.Revoke(ctx, ann, app))
	want(t, false)(d.Revoke(ctx, ann, app))

	// An account known only by its username is found by its UPN.
	want(t, true)(d.DeleteAccount(ctx, connectors.Account{Username: "ann"}))
	want(t, false)(d.DeleteAccount(ctx, connectors.Account{Username: "ann"}))
	if _, err := d.Grant(ctx, connectors.Account{Username: "nobody"}, vpn); !connectors.IsPermanent(err) {
		t.Fatalf("grant to nobody: %v", err)
	}
	if strings.Contains(logs.String(), graphtest.ClientSecret) || strings.Contains(logs.String(), u.Password) ||
		strings.Contains(logs.String(), "graphtest-access-token") {
		t.Fatalf("the log holds a secret:\n%s", logs.String())
	}
}

// The contract server deletes the user when a member is removed without
// /$ref, as Graph does: the connector never sends that.
func TestMembersWithoutRefDeleteTheUser(t *testing.T) {
	t.Parallel()
	g := graphtest.New(t, nil)
	u := g.AddUser("bob@contoso.test", "Bob", true)
	grp := g.AddGroup("G", u.ID)
	tok := tokenOf(t, g)
	req, _ := http.NewRequest(http.MethodDelete, g.GraphURL()+"/groups/"+grp.ID+"/members/"+u.ID, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 204 || g.User(u.ID) != nil {
		t.Fatalf("DELETE without $ref: %v %v; user %+v", resp, err, g.User(u.ID))
	}
	d := open(t, g, nil)
	v := g.AddUser("vic@contoso.test", "Vic", true)
	grp2 := g.AddGroup("H", v.ID)
	want(t, true)(d.Revoke(context.Background(), connectors.Account{ExternalID: v.ID}, connectors.Entitlement{ExternalID: grp2.ID}))
	if g.User(v.ID) == nil || len(g.DeletedThroughMembers()) != 1 {
		t.Fatal("the connector's revoke deleted the user")
	}
}

func tokenOf(t *testing.T, g *graphtest.Server) string {
	t.Helper()
	resp, err := http.PostForm(g.LoginURL()+"/"+graphtest.TenantID+"/oauth2/v2.0/token", map[string][]string{
		"grant_type": {"client_credentials"}, "client_id": {graphtest.ClientID}, "client_secret": {graphtest.ClientSecret},
		"scope": {"https://graph.microsoft.com/.default"}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&tok)
	return tok.AccessToken
}

func TestFaults(t *testing.T) {
	t.Parallel()
	g := graphtest.New(t, nil)
	d := open(t, g, nil)
	ctx := context.Background()
	u := g.AddUser("cy@contoso.test", "Cy", true)
	acct := connectors.Account{ExternalID: u.ID}
	grp := g.AddGroup("G")
	e := connectors.Entitlement{ExternalID: grp.ID, Name: "G"}

	// 429 with Retry-After, waited for and counted.
	g.Fail(graphtest.Fault{Method: "POST", Path: "/groups/", Status: 429, RetryAfter: 1})
	start := time.Now()
	r := want(t, true)(d.Grant(ctx, acct, e))
	if r.RateLimitWaits != 1 || time.Since(start) < 900*time.Millisecond {
		t.Fatalf("after a 429: %+v in %s", r, time.Since(start))
	}
	// A Retry-After longer than a worker waits goes to the queue.
	g.Fail(graphtest.Fault{Method: "DELETE", Path: "/groups/", Status: 429, RetryAfter: 60})
	_, err := d.Revoke(ctx, acct, e)
	if w, ok := connectors.RetryAfterOf(err); !ok || w != time.Minute {
		t.Fatalf("long Retry-After: %v", err)
	}
	d.Pacer().Reset()
	// 503, retried.
	g.Fail(graphtest.Fault{Method: "DELETE", Path: "/groups/", Status: 503, Times: 2})
	want(t, true)(d.Revoke(ctx, acct, e))
	// 503 for ever: transient.
	g.Fail(graphtest.Fault{Method: "PATCH", Status: 503, Times: 100})
	if _, err := d.DisableAccount(ctx, acct); err == nil || connectors.IsPermanent(err) {
		t.Fatalf("503 for ever: %v", err)
	}
	// 403 names what is missing, and is permanent.
	g.Fail(graphtest.Fault{Method: "GET", Path: "/organization", Status: 403, Code: "Authorization_RequestDenied"})
	if h := d.Check(ctx); h.OK || !strings.Contains(h.Message, "Organization.Read.All") {
		t.Fatalf("check with 403: %+v", h)
	}
	// A 404 just after a create is replication lag.
	g.LagAfterCreate(3)
	r = want(t, true)(d.CreateAccount(ctx, connectors.Account{Username: "dee", DisplayName: "Dee"}))
	want(t, true)(d.Grant(ctx, connectors.Account{ExternalID: r.ExternalID}, e))
	// Bad credentials: no token, said so.
	bad, err := entra.OpenWith(connectors.Config{Settings: g.Settings(), Secrets: map[string]string{entra.SecretClientSecret: "wrong-secret"}},
		&entra.Options{Backoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if h := bad.Check(ctx); h.OK || !strings.Contains(h.Message, "invalid_client") || strings.Contains(h.Message, "wrong-secret") {
		t.Fatalf("check with a wrong secret: %+v", h)
	}
}

func TestBatchesWithMixedAnswers(t *testing.T) {
	t.Parallel()
	g := graphtest.New(t, nil)
	d := open(t, g, nil)
	ctx := context.Background()
	grp := g.AddGroup("Big")
	var ms []connectors.Membership
	for i := range 45 {
		u := g.AddUser("u"+string(rune('a'+i/26))+string(rune('a'+i%26))+"@contoso.test", "U", true)
		ms = append(ms, connectors.Membership{Account: connectors.Account{ExternalID: u.ID}, Entitlement: connectors.Entitlement{ExternalID: grp.ID, Name: "Big"}})
	}
	// Already a member, throttled inside the batch, and a missing group.
	first := ms[0].Account.ExternalID
	want(t, true)(d.Grant(ctx, ms[0].Account, ms[0].Entitlement))
	ms[44].Entitlement = connectors.Entitlement{ExternalID: "00000000-0000-0000-0000-00000000dead", Name: "Gone"}
	g.Fail(graphtest.Fault{Method: "POST", Path: "/groups/", Status: 429, RetryAfter: 1, Times: 3})
	g.ResetStats()
	results, errs := d.GrantAll(ctx, ms)
	for i := range ms {
		switch {
		case i == 0:
			if errs[i] != nil || results[i].Changed {
				t.Errorf("existing member: %+v %v", results[i], errs[i])
			}
		case i == 44:
			if !connectors.IsPermanent(errs[i]) {
				t.Errorf("missing group: %v", errs[i])
			}
		default:
			if errs[i] != nil || !results[i].Changed {
				t.Errorf("membership %d: %+v %v", i, results[i], errs[i])
			}
		}
	}
	if got := len(g.Members(grp.ID)); got != 44 {
		t.Fatalf("%d members, want 44 (first %s)", got, first)
	}
	st := g.Stats()
	if st.Batches < 3 || st.Batches > 5 {
		t.Errorf("%d batches for 45 memberships with 3 throttled", st.Batches)
	}
	d.Pacer().Reset() // the throttle above was a fault, not the budget
	results, errs = d.RevokeAll(ctx, ms[:44])
	results2, errs2 := d.RevokeAll(ctx, ms[:44])
	for i := range 44 {
		if errs[i] != nil || !results[i].Changed || errs2[i] != nil || results2[i].Changed {
			t.Fatalf("revoke %d: %+v %v, again %+v %v", i, results[i], errs[i], results2[i], errs2[i])
		}
	}
}

func TestBadSettingsAreNamed(t *testing.T) {
	t.Parallel()
	ty := entra.Type()
	problems := ty.ValidateSettings([]byte(`{"tenant_id":"not a tenant","client_id":"x","graph_url":"http://graph.example.com/v1.0","usage_location":"de","page_size":5000}`), nil)
	for _, f := range []string{"settings.tenant_id", "settings.client_id", "settings.graph_url", "settings.usage_location", "settings.page_size", "secrets.client_secret"} {
		if problems[f] == "" {
			t.Errorf("no problem named %s: %v", f, problems)
		}
	}
	if p := ty.ValidateSettings([]byte(`{"tenant":"x"}`), nil); !strings.Contains(p["settings"], "tenant") {
		t.Errorf("unknown field: %v", p)
	}
	for _, s := range []string{"tenant_id", "client_id", "graph_url", "login_url"} {
		found := false
		for _, b := range ty.SecretBound.Settings {
			found = found || b == s
		}
		if !found {
			t.Errorf("the client secret is not bound to %s", s)
		}
	}
}

// Full and delta imports through the portal's importer, on both databases:
// a user deleted and a membership removed in the delta, an expired delta
// token, and the deletion threshold.
func TestImport(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect string) {
		t.Parallel()
		g := graphtest.New(t, &graphtest.Options{PageSize: 3})
		var users []*graphtest.User
		for _, n := range []string{"ann", "ben", "cat", "dan", "eve", "fay", "gus", "hal", "ivy", "jon", "kim"} {
			users = append(users, g.AddUser(n+"@contoso.test", strings.ToUpper(n[:1])+n[1:], true))
		}
		vpn := g.AddGroup("VPN", users[0].ID, users[1].ID, users[2].ID, users[3].ID)
		g.AddGroup("Wiki", users[4].ID)
		b := apptest.New(t, dialect, &apptest.Options{NoStart: true})
		rec, err := b.Connectors.Create(b.Ctx, configured.Input{Name: "SLB Entra", Type: entra.TypeName, Settings: g.Settings(`"page_size":3`),
			Secrets: map[string]string{entra.SecretClientSecret: graphtest.ClientSecret}})
		if err != nil {
			t.Fatal(err)
		}
		imp, err := b.Importer.Run(b.Ctx, rec.ID, connectors.ImportFull, "")
		if err != nil || imp.Counts.AccountsCreated != 11 || imp.Counts.EntitlementsCreated != 2 || imp.Counts.MembershipsAdded != 5 {
			t.Fatalf("full import: %v %+v", err, imp)
		}
		// Changes on the tenant: one user deleted, one membership removed,
		// one added, one renamed.
		g.DeleteUser(users[1].ID, true)
		g.RemoveMember(vpn.ID, users[2].ID)
		g.SetDisplayName(users[5].ID, "Fay Renamed")
		imp, err = b.Importer.Run(b.Ctx, rec.ID, connectors.ImportDelta, "")
		if err != nil || imp.Status != imports.ImportApplied || imp.Counts.AccountsDeleted != 1 || imp.Counts.MembershipsRemoved < 1 {
			t.Fatalf("delta import: %v %+v", err, imp)
		}
		ents, _, _ := b.Identities.ListEntitlements(b.Ctx, rec.ID, identities.ListOpts{Query: "VPN"})
		var members int64
		if err := b.DB.Gorm.Table("memberships").Where("entitlement_id = ?", ents[0].ID).Count(&members).Error; err != nil || members != 2 {
			t.Fatalf("VPN members after the delta: %d %v", members, err)
		}
		// Nothing changed: a delta changes nothing.
		if imp, err = b.Importer.Run(b.Ctx, rec.ID, connectors.ImportDelta, ""); err != nil || imp.Changed() {
			t.Fatalf("empty delta: %v %+v", err, imp)
		}
		// An expired token: a full import, said so; and it finds a user
		// deleted meanwhile, over the threshold (1 of 10 > 5%): approval.
		g.ExpireDeltaTokens()
		g.DeleteUser(users[6].ID, false)
		if _, err := b.Connectors.Update(b.Ctx, rec.ID, configured.Input{Name: "SLB Entra", Settings: g.Settings(`"page_size":3`, `"deletion_threshold_percent":5`)}); err != nil {
			t.Fatal(err)
		}
		imp, err = b.Importer.Run(b.Ctx, rec.ID, connectors.ImportDelta, "")
		if err != nil || !strings.Contains(imp.Message, "delta token expired") || imp.Status != imports.ImportAwaitingApproval || imp.Counts.AccountsDeleted != 1 {
			t.Fatalf("expired delta: %v %+v", err, imp)
		}
	})
}

// The client secret is never shown: not in the connector's API answer,
// not in a check's message.
func TestSecretNeverShown(t *testing.T) {
	t.Parallel()
	g := graphtest.New(t, nil)
	b := apptest.New(t, "sqlite", &apptest.Options{NoStart: true})
	rec, err := b.Connectors.Create(b.Ctx, configured.Input{Name: "SLB Entra", Type: entra.TypeName, Settings: g.Settings(),
		Secrets: map[string]string{entra.SecretClientSecret: graphtest.ClientSecret}})
	if err != nil {
		t.Fatal(err)
	}
	js, _ := json.Marshal(rec)
	if bytes.Contains(js, []byte(graphtest.ClientSecret)) || bytes.Contains(rec.Secrets, []byte(graphtest.ClientSecret)) {
		t.Fatal("the record holds the secret in clear")
	}
	h, err := b.Connectors.CheckInput(b.Ctx, rec.ID, configured.Input{})
	if err != nil || !h.OK || strings.Contains(h.Message, graphtest.ClientSecret) {
		t.Fatalf("check: %+v %v", h, err)
	}
	// Pointing it at another Graph needs the secret again.
	_, err = b.Connectors.Update(b.Ctx, rec.ID, configured.Input{Name: "SLB Entra", Settings: []byte(strings.Replace(string(g.Settings()), g.URL, "https://graph.evil.example", 2))})
	if fe, ok := err.(connectors.FieldErrors); !ok || fe["secrets.client_secret"] == "" {
		t.Fatalf("moving the Graph URL without the secret: %v", err)
	}
}

// The import makes directory roles and app roles entitlements of their own
// kinds beside groups, with their holders as members, so that admins need
// not type external ids; granting them afterwards goes to the role APIs.
// Missing read permissions leave them out and say so.
func TestImportRoles(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect string) {
		t.Parallel()
		g := graphtest.New(t, &graphtest.Options{PageSize: 2})
		ann, ben := g.AddUser("ann@contoso.test", "Ann", true), g.AddUser("ben@contoso.test", "Ben", true)
		g.AddGroup("VPN", ann.ID)
		helpdesk := g.AddRoleDefinition("Helpdesk Administrator")
		g.AddRoleDefinition("User Administrator")
		g.AssignRole(ann.ID, helpdesk)
		sp, roles := g.AddApplication("Payroll", "Approver", "Viewer", "app:Sync")
		g.AssignAppRole(ben.ID, sp, roles[0])
		b := apptest.New(t, dialect, &apptest.Options{NoStart: true})
		rec, err := b.Connectors.Create(b.Ctx, configured.Input{Name: "SLB Entra", Type: entra.TypeName, Settings: g.Settings(`"page_size":2`),
			Secrets: map[string]string{entra.SecretClientSecret: graphtest.ClientSecret}})
		if err != nil {
			t.Fatal(err)
		}
		imp, err := b.Importer.Run(b.Ctx, rec.ID, connectors.ImportFull, "")
		// VPN, 2 directory roles, 2 app roles users may hold (not Sync).
		if err != nil || imp.Counts.EntitlementsCreated != 5 || imp.Counts.MembershipsAdded != 3 {
			t.Fatalf("full import: %v %+v", err, imp)
		}
		ents, _, err := b.Identities.ListEntitlements(b.Ctx, rec.ID, identities.ListOpts{Limit: 50})
		if err != nil {
			t.Fatal(err)
		}
		kinds := map[string]string{}
		byName := map[string]identities.Entitlement{}
		for _, e := range ents {
			kinds[e.Name] = e.Kind + " " + e.ExternalID
			byName[e.Name] = e
		}
		for name, want := range map[string]string{
			"VPN":                    "group ",
			"Helpdesk Administrator": "directory_role " + entra.DirectoryRole(helpdesk),
			"Payroll: Approver":      "app_role " + entra.AppRole(sp, roles[0]),
			"Payroll: Viewer":        "app_role " + entra.AppRole(sp, roles[1]),
			"User Administrator":     "directory_role role:",
		} {
			if got := kinds[name]; !strings.HasPrefix(got, want) {
				t.Errorf("%s: %q, want %q…", name, got, want)
			}
		}
		if _, ok := kinds["Payroll: Sync"]; ok {
			t.Errorf("an app role for applications only was imported")
		}
		// Unchanged: a second full import and a delta change nothing, and
		// keep the roles.
		if imp, err = b.Importer.Run(b.Ctx, rec.ID, connectors.ImportFull, ""); err != nil || imp.Changed() {
			t.Fatalf("full import again: %v %+v", err, imp)
		}
		g.AssignRole(ben.ID, helpdesk)
		if imp, err = b.Importer.Run(b.Ctx, rec.ID, connectors.ImportDelta, ""); err != nil || imp.Counts.MembershipsAdded != 1 || imp.Counts.EntitlementsDeleted != 0 {
			t.Fatalf("delta with a new role holder: %v %+v", err, imp)
		}
		// An imported role grants through the role API.
		_, conn, err := b.Connectors.OpenByID(b.Ctx, rec.ID)
		if err != nil {
			t.Fatal(err)
		}
		viewer := byName["Payroll: Viewer"]
		if _, err := conn.(connectors.EntitlementManager).Grant(b.Ctx, connectors.Account{ExternalID: ann.ID},
			connectors.Entitlement{ExternalID: viewer.ExternalID, Name: viewer.Name, Kind: viewer.Kind}); err != nil {
			t.Fatal(err)
		}
		if as := g.AppRoleAssignments(sp); len(as) != 2 {
			t.Fatalf("app role assignments after a grant: %+v", as)
		}
		// Without the read permissions: groups still import, and the note
		// names what is missing.
		g.Fail(graphtest.Fault{Method: "GET", Path: "/roleManagement/directory/roleDefinitions", Status: 403, Code: "Authorization_RequestDenied"})
		g.Fail(graphtest.Fault{Method: "GET", Path: "/servicePrincipals", Status: 403, Code: "Authorization_RequestDenied"})
		imp, err = b.Importer.Run(b.Ctx, rec.ID, connectors.ImportDelta, "")
		if err != nil || !strings.Contains(imp.Message, "RoleManagement.Read.Directory") || !strings.Contains(imp.Message, "Application.Read.All") {
			t.Fatalf("import without role permissions: %v %+v", err, imp)
		}
	})
}
