package web_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/provisor/provisor/access"
	"github.com/provisor/provisor/app/apptest"
	"github.com/provisor/provisor/connectors/configured"
	"github.com/provisor/provisor/connectors/ldap/ldaptest"
	"github.com/provisor/provisor/database/dbtest"
	"github.com/provisor/provisor/identities"
	"github.com/provisor/provisor/requests"
	"github.com/provisor/provisor/tasks"
)

// People whose directory names are those of internal actors (system makes
// the Data Import tasks, demo the demo data, scheduler starts schedule
// ticks) sign in as themselves and own nothing of those actors; a
// directory name with a colon, which could pass for an API client, cannot
// sign in.
func TestDirectoryUsersAreNotInternalActors(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect string) {
		t.Parallel()
		names := []string{"system", "demo", "scheduler", "api:Demo scripts"}
		var ldif strings.Builder
		for _, u := range names {
			fmt.Fprintf(&ldif, "dn: uid=%s,%s\nobjectClass: inetOrgPerson\nuid: %s\ncn: %s\nsn: %s\nmail: %s@example.test\nuserPassword: %s\n\n",
				u, ldaptest.PeopleDN, u, u, u, strings.ReplaceAll(u, " ", "."), password(u))
		}
		s := ldaptest.StartSlapd(t, &ldaptest.SlapdOptions{LDIF: ldif.String()})
		b := apptest.New(t, dialect, nil)
		creds, err := b.LoadDemo(b.Ctx)
		if err != nil || creds == nil {
			t.Fatalf("demo: %v", err)
		}
		if _, err := b.Connectors.Create(b.Ctx, configured.Input{Name: "Corp LDAP", Type: "ldap", Settings: json.RawMessage(s.Settings(`"login_enabled":true`)),
			Secrets: map[string]string{"bind_password": ldaptest.AdminPassword}}); err != nil {
			t.Fatal(err)
		}
		imports := taskNamed(t, b, "Data Import")
		demo := taskNamed(t, b, "Nightly lock of Ivan")
		if len(imports) != 2 || len(demo) != 1 {
			t.Fatalf("%d import tasks, %d demo tasks", len(imports), len(demo))
		}
		scheduled, err := b.Tasks.TriggerTick(b.Ctx, demo[0].ID, time.Now().Truncate(time.Minute))
		if err != nil || scheduled == nil {
			t.Fatalf("tick: %v", err)
		}
		runs, _, err := b.Requests.ListInstances(b.Ctx, requests.InstanceFilter{})
		var demoRun []requests.Instance
		for _, r := range runs {
			if r.Trigger == requests.TriggerSubmission {
				demoRun = append(demoRun, r)
			}
		}
		if err != nil || len(demoRun) != 1 {
			t.Fatalf("demo run: %d %v", len(demoRun), err)
		}

		adm := newBrowser(t, b)
		if r := adm.login(creds.AdminUser, creds.AdminPassword); r.status != http.StatusSeeOther {
			t.Fatalf("admin sign-in: %d", r.status)
		}
		if r := adm.get("/tasks/" + imports[0].ID); r.status != 200 {
			t.Fatalf("admin sees the import task: %d", r.status)
		}
		people := map[string]*browser{}
		for _, u := range names[:3] {
			people[u] = newBrowser(t, b)
			if r := people[u].login(u, password(u)); r.status != http.StatusSeeOther {
				t.Fatalf("%s sign-in: %d %s", u, r.status, r.body)
			}
		}

		// system: the Data Import tasks are not theirs to see, rename or delete.
		sys := people["system"]
		if body := sys.get("/tasks").body; strings.Contains(body, "Data Import") {
			t.Error("system's task grid lists the Data Import tasks")
		}
		for _, task := range imports {
			if r := sys.get("/tasks/" + task.ID); r.status != 404 {
				t.Errorf("system opens %s: %d", task.Name, r.status)
			}
			if r := sys.post("/tasks/"+task.ID, url.Values{"name": {"mine now"}, "description": {"x"}}); r.status != 404 {
				t.Errorf("system renames %s: %d", task.Name, r.status)
			}
			if r := sys.post("/tasks/"+task.ID+"/delete", nil); r.status != 404 {
				t.Errorf("system deletes %s: %d", task.Name, r.status)
			}
			if got, err := b.Tasks.Get(b.Ctx, task.ID); err != nil || got.Name != task.Name {
				t.Errorf("%s after system's tries: %+v %v", task.Name, got, err)
			}
		}
		// demo: the demo tasks and the demo's run are not theirs.
		if body := people["demo"].get("/tasks").body; strings.Contains(body, "Nightly lock of Ivan") || strings.Contains(body, "Onboard Alice") {
			t.Error("demo's task grid lists the demo tasks")
		}
		if r := people["demo"].get("/tasks/" + demo[0].ID); r.status != 404 {
			t.Errorf("demo opens a demo task: %d", r.status)
		}
		if r := people["demo"].get("/requests/" + demoRun[0].ID); r.status != 404 {
			t.Errorf("demo opens the demo's run: %d", r.status)
		}
		// scheduler: scheduled runs are not theirs.
		if body := people["scheduler"].get("/requests").body; strings.Contains(body, scheduled.ID) {
			t.Error("scheduler's Requests list the scheduled run")
		}
		if r := people["scheduler"].get("/requests/" + scheduled.ID); r.status != 404 {
			t.Errorf("scheduler opens the scheduled run: %d", r.status)
		}
		if body := adm.get("/requests").body; !strings.Contains(body, scheduled.ID) {
			t.Error("the admin's Requests miss the scheduled run")
		}

		// A name with a colon could pass for the demo's API client.
		colon := newBrowser(t, b)
		if r := colon.login(names[3], password(names[3])); r.status != http.StatusForbidden || !strings.Contains(r.body, "cannot be used") {
			t.Errorf("sign-in as %q: %d", names[3], r.status)
		}
	})
}

func password(u string) string { return strings.ReplaceAll(u, " ", "-") + "-Pw-123" }

func taskNamed(t *testing.T, b *apptest.Bundle, q string) []tasks.Task {
	t.Helper()
	list, _, err := b.Tasks.List(b.Ctx, tasks.ListOpts{Query: q})
	if err != nil {
		t.Fatal(err)
	}
	return list
}

// A requester's identity lookups (the recipient picker and the wizard's
// search) find only their own identity, never the directory's names and
// emails; an admin's find everyone.
func TestRequesterLookupsFindOnlyThemselves(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect string) {
		t.Parallel()
		b := apptest.New(t, dialect, &apptest.Options{NoStart: true})
		pw := access.GeneratePassword()
		for u, role := range map[string]string{"rita": access.RoleRequester, "admin": access.RoleAdmin} {
			if _, err := b.Access.CreateUser(b.Ctx, access.UserInput{Username: u, Password: pw, Role: role}, "t"); err != nil {
				t.Fatal(err)
			}
		}
		rita, bob, ritz := b.Identity(t, "rita"), b.Identity(t, "bob"), b.Identity(t, "ritz")
		req, adm := newBrowser(t, b), newBrowser(t, b)
		req.login("rita", pw)
		adm.login("admin", pw)
		draft := req.post("/requests/new", url.Values{"type": {"create_account"}})
		wizard := draft.header.Get("Location")
		if !strings.HasSuffix(wizard, "/beneficiary") {
			t.Fatalf("wizard: %d %s", draft.status, wizard)
		}
		for _, c := range []struct {
			who        string
			br         *browser
			path       string
			want, hide []*identities.Identity
		}{
			{"requester", req, "/lookup/identities?q=", []*identities.Identity{rita}, []*identities.Identity{bob, ritz}},
			{"requester", req, "/lookup/identities?q=rit", []*identities.Identity{rita}, []*identities.Identity{bob, ritz}},
			{"requester", req, "/lookup/identities?q=example.test", []*identities.Identity{rita}, []*identities.Identity{bob, ritz}},
			{"requester", req, wizard + "?q=", []*identities.Identity{rita}, []*identities.Identity{bob, ritz}},
			{"admin", adm, "/lookup/identities?q=", []*identities.Identity{rita, bob, ritz}, nil},
			{"admin", adm, "/lookup/identities?q=rit", []*identities.Identity{rita, ritz}, []*identities.Identity{bob}},
		} {
			r := c.br.do("GET", c.path, nil, "HX-Request", "true", "HX-Target", "results")
			if r.status != 200 {
				t.Fatalf("%s %s: %d", c.who, c.path, r.status)
			}
			for _, id := range c.want {
				if !strings.Contains(r.body, id.ID) {
					t.Errorf("%s %s misses %s", c.who, c.path, id.Username)
				}
			}
			for _, id := range c.hide {
				if strings.Contains(r.body, id.ID) || strings.Contains(r.body, id.Email) {
					t.Errorf("%s %s shows %s", c.who, c.path, id.Username)
				}
			}
		}
	})
}
