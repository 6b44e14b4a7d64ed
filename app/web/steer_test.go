package web_test

import (
	"net/url"
	"strings"
	"testing"

	"github.com/provisor/provisor/access"
	"github.com/provisor/provisor/app/apptest"
	"github.com/provisor/provisor/database/dbtest"
	"github.com/provisor/provisor/requests"
)

// adminBrowser signs an admin in to b's portal.
func adminBrowser(t *testing.T, b *apptest.Bundle) *browser {
	t.Helper()
	pw := access.GeneratePassword()
	if _, err := b.Access.CreateUser(b.Ctx, access.UserInput{Username: "admin", Email: "admin@example.test", Password: pw, Role: access.RoleAdmin}, "t"); err != nil {
		t.Fatal(err)
	}
	br := newBrowser(t, b)
	if r := br.login("admin", pw); r.status != 303 {
		t.Fatalf("sign in: %d", r.status)
	}
	return br
}

// htmx sends a form as htmx does, with the session's CSRF token.
func (br *browser) htmx(path string, form url.Values) response {
	br.t.Helper()
	if form == nil {
		form = url.Values{}
	}
	form.Set("_csrf", br.csrf)
	return br.do("POST", path, form, "HX-Request", "true", "HX-Target", "dialog-body")
}

// The Activation Jobs dialog offers no Cancel for a revocation, even once
// Force End made it pending, and its cancel route refuses one.
func TestPortalNeverCancelsRevocations(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect string) {
		t.Parallel()
		b := apptest.New(t, dialect, &apptest.Options{NoStart: true})
		adm := adminBrowser(t, b)
		dir, ents := b.Directory(t, "Dir", "VPN")
		alice := b.Identity(t, "alice")
		inst := b.Submit(t, requests.Request{Type: requests.CreateAccount, BeneficiaryType: "identity", BeneficiaryID: alice.ID,
			ConnectorID: dir.ID, Entitlements: []string{ents["VPN"].ID}, Duration: "8h"})
		rev := inst.Jobs[2]
		cancelButton := func(j requests.Job) string { return `hx-post="/jobs/` + inst.ID + `/jobs/` + j.ID + `/cancel"` }

		if r := adm.htmx("/jobs/"+inst.ID+"/force-end", nil); r.status != 200 || !strings.Contains(r.body, "revocations run now") {
			t.Fatalf("Force End: %d %s", r.status, r.body)
		}
		dialog := adm.do("GET", "/jobs/"+inst.ID, nil, "HX-Request", "true")
		if !strings.Contains(dialog.body, cancelButton(inst.Jobs[0])) || !strings.Contains(dialog.body, cancelButton(inst.Jobs[1])) {
			t.Errorf("the pending jobs have no Cancel")
		}
		if strings.Contains(dialog.body, cancelButton(rev)) {
			t.Errorf("the pending revocation has a Cancel button")
		}
		if r := adm.htmx("/jobs/"+inst.ID+"/jobs/"+rev.ID+"/cancel", nil); !strings.Contains(r.body, "cannot be canceled") {
			t.Errorf("cancel of the revocation: %d %s", r.status, r.body)
		}
		if r := adm.htmx("/jobs/"+inst.ID+"/cancel", nil); r.status != 200 || !strings.Contains(r.body, "Pending jobs canceled") {
			t.Errorf("cancel pending jobs: %d %s", r.status, r.body)
		}
		got, err := b.Requests.GetInstance(b.Ctx, inst.ID)
		if err != nil {
			t.Fatal(err)
		}
		var st []string
		for _, j := range got.Jobs {
			st = append(st, j.Status)
		}
		if strings.Join(st, ",") != "canceled,canceled,pending" {
			t.Errorf("jobs after the portal's cancels: %v", st)
		}
	})
}

// The rate-limit waits a job's system asked for show on the Activation
// Jobs dialog and on the run's page.
func TestRateLimitWaitsShown(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect string) {
		t.Parallel()
		b := apptest.New(t, dialect, &apptest.Options{NoStart: true})
		adm := adminBrowser(t, b)
		dir, ents := b.Directory(t, "Dir", "VPN")
		alice := b.Identity(t, "alice")
		inst := b.Submit(t, requests.Request{Type: requests.CreateAccount, BeneficiaryType: "identity", BeneficiaryID: alice.ID,
			ConnectorID: dir.ID, Entitlements: []string{ents["VPN"].ID}})
		dialog := adm.do("GET", "/jobs/"+inst.ID, nil, "HX-Request", "true")
		if strings.Contains(dialog.body, "for the system's rate limit") {
			t.Fatalf("waits shown before any")
		}
		if err := b.DB.Gorm.Model(&requests.Job{}).Where("id = ?", inst.Jobs[1].ID).Update("rate_limit_waits", 3).Error; err != nil {
			t.Fatal(err)
		}
		dialog = adm.do("GET", "/jobs/"+inst.ID, nil, "HX-Request", "true")
		if !strings.Contains(dialog.body, "waited 3× for the system's rate limit") {
			t.Errorf("the dialog shows no waits: %s", dialog.body)
		}
		run := adm.do("GET", "/requests/"+inst.ID, nil)
		if strings.Count(run.body, "waited 3× for the system's rate limit") != 2 { // the run's total and the job
			t.Errorf("the run page shows the waits %d times: %s", strings.Count(run.body, "waited 3×"), run.body)
		}
	})
}
