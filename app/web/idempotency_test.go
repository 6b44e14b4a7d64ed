package web_test

import (
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/provisor/provisor/app/apptest"
	"github.com/provisor/provisor/database/dbtest"
	"github.com/provisor/provisor/requests"
	"github.com/provisor/provisor/tasks"
)

var (
	rowKey  = regexp.MustCompile(`hx-headers='\{"Idempotency-Key": "([^"]+)"\}' hx-disabled-elt="this"`)
	formKey = regexp.MustCompile(`name="idempotency_key" value="([^"]+)"`)
)

// Each Trigger and Submit button carries a key made when it was rendered:
// a second click before the answer (or a form sent twice) gives the run
// the first click started.
func TestPortalButtonsStartOneRunPerClick(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect string) {
		t.Parallel()
		b := apptest.New(t, dialect, &apptest.Options{NoStart: true})
		adm := adminBrowser(t, b)
		dir, ents := b.Directory(t, "Dir", "VPN")
		alice := b.Identity(t, "alice")
		name := "Lock Alice"
		task, err := b.Tasks.Create(b.Ctx, tasks.Input{Name: &name, Request: &requests.Request{Type: requests.LockAccount,
			BeneficiaryType: "identity", BeneficiaryID: alice.ID, ConnectorID: dir.ID, Justification: "x"}}, "admin")
		if err != nil {
			t.Fatal(err)
		}
		runs := func() int64 {
			_, n, err := b.Requests.ListInstances(b.Ctx, requests.InstanceFilter{TaskID: task.ID})
			if err != nil {
				t.Fatal(err)
			}
			return n
		}

		// The grid's Trigger, clicked twice before the answer.
		grid := adm.get("/tasks")
		m := rowKey.FindStringSubmatch(grid.body)
		if m == nil {
			t.Fatalf("the grid's Trigger has no key or is not disabled in flight")
		}
		click := func(key string) response {
			return adm.do("POST", "/tasks/"+task.ID+"/trigger", url.Values{}, "HX-Request", "true", "HX-Target", "task-"+task.ID,
				"X-CSRF-Token", adm.csrf, "Idempotency-Key", key)
		}
		first, second := click(m[1]), click(m[1])
		if first.status != 200 || second.status != 200 || !strings.Contains(second.body, `id="task-`+task.ID+`"`) {
			t.Errorf("two clicks: %d, %d %s", first.status, second.status, second.body)
		}
		if n := runs(); n != 1 {
			t.Errorf("%d runs after a double click, want 1", n)
		}
		// The row it answers with has a new key: the next click is a new run.
		next := rowKey.FindStringSubmatch(second.body)
		if next == nil || next[1] == m[1] {
			t.Fatalf("the row after a trigger has no new key")
		}
		click(next[1])
		if n := runs(); n != 2 {
			t.Errorf("%d runs after a second click on a new row, want 2", n)
		}

		// The task page's Trigger form, sent twice.
		page := adm.get("/tasks/" + task.ID)
		m = formKey.FindStringSubmatch(page.body)
		if m == nil || !strings.Contains(page.body, `hx-disabled-elt="find button"`) {
			t.Fatalf("the task page's Trigger has no key or is not disabled in flight")
		}
		for range 2 {
			if r := adm.post("/tasks/"+task.ID+"/trigger", url.Values{"idempotency_key": {m[1]}}); r.status != 303 {
				t.Errorf("task page trigger: %d %s", r.status, r.body)
			}
		}
		if n := runs(); n != 3 {
			t.Errorf("%d runs after the task page's form was sent twice, want 3", n)
		}

		// The wizard's Submit, sent twice: the second comes after the first
		// took the draft away, and goes to the same run.
		d, err := b.Requests.NewDraft(b.Ctx, userID(t, b, "admin"), requests.AddEntitlements)
		if err != nil {
			t.Fatal(err)
		}
		d.BeneficiaryType, d.BeneficiaryID, d.ConnectorID = "identity", alice.ID, dir.ID
		d.Entitlements, d.Justification, d.Priority = []string{ents["VPN"].ID}, "project", requests.Normal
		if err := b.Requests.SaveDraft(b.Ctx, d); err != nil {
			t.Fatal(err)
		}
		review := adm.get("/requests/drafts/" + d.ID + "/review")
		m = formKey.FindStringSubmatch(review.body)
		if m == nil {
			t.Fatalf("the review step has no key: %s", review.body)
		}
		var to []string
		for range 2 {
			r := adm.post("/requests/drafts/"+d.ID+"/review", url.Values{"action": {"submit"}, "idempotency_key": {m[1]}})
			if r.status != 303 {
				t.Fatalf("submit: %d %s", r.status, r.body)
			}
			to = append(to, r.header.Get("Location"))
		}
		if to[0] != to[1] || !strings.HasPrefix(to[0], "/requests/") {
			t.Errorf("two submits went to %v, want one run", to)
		}
		_, n, err := b.Requests.ListInstances(b.Ctx, requests.InstanceFilter{})
		if err != nil {
			t.Fatal(err)
		}
		if n != 4 {
			t.Errorf("%d runs in all, want 4 (three triggers, one submission)", n)
		}
	})
}

// userID returns the id of a portal user.
func userID(t *testing.T, b *apptest.Bundle, username string) string {
	t.Helper()
	var id string
	if err := b.DB.Gorm.Table("users").Where("username = ?", username).Pluck("id", &id).Error; err != nil || id == "" {
		t.Fatalf("user %s: %q %v", username, id, err)
	}
	return id
}
