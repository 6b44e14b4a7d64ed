package web_test

import (
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/provisor/provisor/access"
	"github.com/provisor/provisor/app/apptest"
	"github.com/provisor/provisor/connectors"
	"github.com/provisor/provisor/connectors/configured"
	"github.com/provisor/provisor/identities"
	"github.com/provisor/provisor/requests"
	"github.com/provisor/provisor/tasks"
)

// The portal walked in Chromium as an admin: every grid pages to its last
// page keeping its filter and size, Refresh keeps the view, each picker
// keeps several picks, the jobs board and its dialog follow a Force End by
// themselves, and a double click on Trigger makes one run. Screenshots at
// 1280 px and 390 px.
func TestPortalWalkInChromium(t *testing.T) {
	b := apptest.New(t, "sqlite", &apptest.Options{ConnectorTypes: []connectors.Type{{
		Name: "importsrc", Label: "Import source", New: func(connectors.Config) (connectors.Connector, error) { return importSource{}, nil },
	}}})
	pw := access.GeneratePassword()
	if _, err := b.Access.CreateUser(b.Ctx, access.UserInput{Username: "admin", Email: "admin@example.test", Password: pw, Role: access.RoleAdmin}, "t"); err != nil {
		t.Fatal(err)
	}
	dir, ents := b.Directory(t, "Corp Directory", "VPN", "Wiki", "Mail")
	src, err := b.Connectors.Create(b.Ctx, configured.Input{Name: "HR source", Type: "importsrc"})
	if err != nil {
		t.Fatal(err)
	}
	// 27 identities, 27 tasks (one notifying, run 27 times: 27 runs,
	// their jobs and 27 messages), 27 import runs: two pages everywhere.
	var people []*identities.Identity
	for i := range 27 {
		people = append(people, b.Identity(t, fmt.Sprintf("user%02d", i)))
	}
	alice := people[0]
	var lastTask *tasks.Task
	for i := range 27 {
		name := fmt.Sprintf("Lock %02d", i)
		req := &requests.Request{Type: requests.LockAccount, BeneficiaryType: "identity", BeneficiaryID: people[i].ID, ConnectorID: dir.ID, Justification: "x"}
		in := tasks.Input{Name: &name, Request: req}
		if i == 0 {
			name = "Onboard user00"
			req.Type, req.Entitlements = requests.CreateAccount, []string{ents["VPN"].ID}
			in.Notify = &tasks.Notify{Enabled: true, When: "always", Recipients: []string{"requester"}}
		}
		task, err := b.Tasks.Create(b.Ctx, in, "admin")
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			lastTask = task
		}
	}
	onboard := lastTask
	for range 27 {
		inst, err := b.Tasks.Trigger(b.Ctx, onboard.ID, requests.TriggerManual, "admin")
		if err != nil {
			t.Fatal(err)
		}
		b.WaitSettled(t, inst.ID)
	}
	for range 27 {
		inst, err := b.Requests.Submit(b.Ctx, requests.Request{Type: requests.DataImport, ConnectorID: src.ID, ImportMode: "full"},
			requests.StartOpts{Trigger: requests.TriggerAPI, Actor: "admin"})
		if err != nil {
			t.Fatal(err)
		}
		b.WaitSettled(t, inst.ID)
	}
	// A time-bound grant, its revocation scheduled.
	timed := b.WaitSettled(t, b.Submit(t, requests.Request{Type: requests.CreateAccount, BeneficiaryType: "identity", BeneficiaryID: people[1].ID,
		ConnectorID: dir.ID, Entitlements: []string{ents["Wiki"].ID}, Duration: "8h", Justification: "x"}).ID)
	if timed.Status != requests.InstanceActive {
		t.Fatalf("timed: %s", apptest.Describe(timed))
	}
	wg := b.Workgroup(t, "Pilots")

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = b.HTTP.Listener(ln) }()
	base := "http://" + ln.Addr().String()
	ctx, cancel := newChrome(t)
	defer cancel()
	wide := chromedp.EmulateViewport(1280, 900, chromedp.EmulateScale(1))
	phone := chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(1))
	both := func(name string) chromedp.Tasks {
		return chromedp.Tasks{wide, shot(t, name+"-1280px"), phone, shot(t, name+"-390px"), wide}
	}
	if err := chromedp.Run(ctx, wide, signIn(base, "admin", pw)); err != nil {
		t.Fatal(err)
	}

	// Paging: each grid's Last goes to its last page with the query kept.
	grids := []struct{ name, path, keep string }{
		{"jobs", "/jobs?status=completed&size=10", "status=completed"},
		{"requests", "/requests?status=completed", "status=completed"},
		{"tasks", "/tasks?status=idle", "status=idle"},
		{"history", "/tasks/" + onboard.ID + "/history", ""},
		{"audit", "/audit?actor=admin", "actor=admin"},
		{"outbox", "/outbox", ""},
		{"imports", "/imports?status=completed", "status=completed"},
		{"identities", "/identities?q=user", "q=user"},
	}
	for _, g := range grids {
		var first, last, loc string
		var rows int
		err := chromedp.Run(ctx,
			chromedp.Navigate(base+g.path),
			chromedp.WaitVisible(`nav.pager .pages`, chromedp.ByQuery),
			chromedp.Text(`nav.pager .pages`, &first, chromedp.ByQuery),
			chromedp.Click(`nav.pager a[aria-label="Last page"]`, chromedp.ByQuery),
			chromedp.WaitVisible(`nav.pager span[aria-disabled="true"]:last-child`, chromedp.ByQuery),
			chromedp.Text(`nav.pager .pages`, &last, chromedp.ByQuery),
			chromedp.Location(&loc),
			chromedp.Evaluate(`document.querySelectorAll("main table.grid tbody tr:not(:has(td.empty))").length`, &rows),
		)
		if err != nil {
			t.Fatalf("%s: %v", g.name, err)
		}
		var n, m int
		if _, err := fmt.Sscanf(first, "Page 1 of %d", &m); err != nil || m < 2 {
			t.Errorf("%s: first page says %q", g.name, first)
			continue
		}
		if _, err := fmt.Sscanf(last, "Page %d of %d", &n, &m); err != nil || n != m || n < 2 {
			t.Errorf("%s: Last landed on %q (%s)", g.name, last, loc)
		}
		if !strings.Contains(loc, fmt.Sprintf("page=%d", m)) || !strings.Contains(loc, g.keep) {
			t.Errorf("%s: Last lost the query: %s", g.name, loc)
		}
		if rows < 1 {
			t.Errorf("%s: the last page has no rows", g.name)
		}
	}

	// Refresh keeps filter, size and page on Connector Jobs.
	var pages, loc string
	err = chromedp.Run(ctx,
		chromedp.Navigate(base+"/jobs?status=completed&size=10&page=2"),
		chromedp.WaitVisible(`#refresh`, chromedp.ByQuery),
		chromedp.Evaluate(`document.getElementById("jobs-board").dataset.mark = "old"`, nil),
		chromedp.Click(`#refresh`, chromedp.ByQuery),
		chromedp.WaitVisible(`#jobs-board:not([data-mark])`, chromedp.ByQuery),
		chromedp.Text(`nav.pager .pages`, &pages, chromedp.ByQuery),
		chromedp.Location(&loc),
	)
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	if !strings.HasPrefix(pages, "Page 2 of") || !strings.Contains(loc, "status=completed") || !strings.Contains(loc, "size=10") || !strings.Contains(loc, "page=2") {
		t.Errorf("Refresh changed the view: %q %s", pages, loc)
	}
	if err := chromedp.Run(ctx, both("30-jobs-page-2")); err != nil {
		t.Fatal(err)
	}

	// The live board: Force End in the open dialog; the dialog and the
	// row behind it follow by themselves.
	row := `#group-` + timed.ID
	err = chromedp.Run(ctx,
		chromedp.Navigate(base+"/jobs?open="+timed.ID),
		chromedp.WaitVisible(`#job-dialog .job-card`, chromedp.ByQuery),
		chromedp.WaitVisible(row+` .badge-active`, chromedp.ByQuery),
		shot(t, "31-jobs-dialog-active"),
		chromedp.Evaluate(`window.confirm = function () { return true; }`, nil),
		chromedp.Click(`#job-dialog button.danger`, chromedp.ByQuery),
		chromedp.WaitVisible(`#job-dialog .dialog-actions .badge-completed`, chromedp.ByQuery),
		chromedp.WaitVisible(row+` .badge-completed`, chromedp.ByQuery),
		shot(t, "32-jobs-dialog-after-force-end"),
	)
	if err != nil {
		t.Fatalf("live board: %v", err)
	}
	var still bool
	if err := chromedp.Run(ctx, chromedp.Evaluate(`!!document.querySelector("#job-dialog .job-card .badge-scheduled")`, &still)); err != nil || still {
		t.Errorf("the dialog still shows a scheduled job after Force End")
	}

	// A double click on Trigger makes one run.
	runs := func() int64 {
		_, n, err := b.Requests.ListInstances(b.Ctx, requests.InstanceFilter{TaskID: onboard.ID})
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	before := runs()
	trow := `#task-` + onboard.ID
	err = chromedp.Run(ctx,
		chromedp.Navigate(base+"/tasks?q=Onboard"),
		chromedp.WaitVisible(trow+` button:not([disabled])`, chromedp.ByQuery),
		chromedp.DoubleClick(trow+` button`, chromedp.ByQuery),
		chromedp.WaitVisible(trow+` .status .badge-idle`, chromedp.ByQuery),
	)
	if err != nil {
		t.Fatalf("double click: %v", err)
	}
	// Every request the clicks sent has its answer (htmx marks an element
	// with htmx-request while its request is out), so every run they made
	// is in the database.
	if err := chromedp.Run(ctx, chromedp.Poll(`document.querySelector('.htmx-request') === null`, nil)); err != nil {
		t.Fatalf("waiting for the clicks' requests: %v", err)
	}
	if n := runs(); n != before+1 {
		t.Errorf("a double click on Trigger made %d runs", n-before)
	}
	// The row opens the task.
	err = chromedp.Run(ctx,
		chromedp.Click(trow+` td[data-label="Type"]`, chromedp.ByQuery),
		chromedp.WaitVisible(`//h2[text()="Notification settings"]`),
		chromedp.Location(&loc),
	)
	if err != nil || !strings.HasSuffix(loc, "/tasks/"+onboard.ID) {
		t.Errorf("the row did not open the task: %s %v", loc, err)
	}

	// Pickers keep several picks. Recipients on the task page:
	pickTwo := func(search, first, second, firstValue, secondValue, name string) chromedp.Tasks {
		return chromedp.Tasks{
			chromedp.SendKeys(search, first, chromedp.ByQuery),
			chromedp.WaitVisible(`.picker input[name=`+name+`][value="`+firstValue+`"]`, chromedp.ByQuery),
			chromedp.Click(`.picker input[name=`+name+`][value="`+firstValue+`"]`, chromedp.ByQuery),
			chromedp.WaitVisible(`.chips input[value="`+firstValue+`"]`, chromedp.ByQuery),
			chromedp.Evaluate(`document.querySelector("`+search+`").value = ""`, nil),
			chromedp.SendKeys(search, second, chromedp.ByQuery),
			chromedp.WaitVisible(`.picker input[name=`+name+`][value="`+secondValue+`"]`, chromedp.ByQuery),
			chromedp.Click(`.picker input[name=`+name+`][value="`+secondValue+`"]`, chromedp.ByQuery),
			chromedp.WaitVisible(`.chips input[value="`+secondValue+`"]`, chromedp.ByQuery),
		}
	}
	err = chromedp.Run(ctx,
		pickTwo(`#recipient-q`, "user05", "user06", people[5].ID, people[6].ID, "recipients"),
		both("33-recipient-chips"),
		chromedp.Click(`form[action$="/notify"] button[type=submit]`, chromedp.ByQuery),
		chromedp.WaitVisible(`//p[contains(@class,"flash") and contains(., "Notification settings saved")]`),
	)
	if err != nil {
		t.Fatalf("recipients: %v", err)
	}
	if got, _ := b.Tasks.Get(b.Ctx, onboard.ID); !containsAll(got.Notify.Recipients, "requester", people[5].ID, people[6].ID) {
		t.Errorf("recipients saved: %v", got.Notify.Recipients)
	}
	// Workgroup members:
	err = chromedp.Run(ctx,
		chromedp.Navigate(base+"/workgroups/"+wg.ID),
		chromedp.WaitVisible(`#member-q`, chromedp.ByQuery),
		pickTwo(`#member-q`, "user07", "user08", people[7].ID, people[8].ID, "members"),
		chromedp.Click(`form[action$="/members"] button[type=submit]`, chromedp.ByQuery),
		chromedp.WaitVisible(`//h2[contains(., "Members (2)")]`),
	)
	if err != nil {
		t.Fatalf("members: %v", err)
	}
	// Entitlements in the wizard: VPN, then Wiki, both reach Review.
	var review string
	err = chromedp.Run(ctx,
		chromedp.Navigate(base+"/requests/new"),
		chromedp.Click(`button[value="add_entitlements"]`, chromedp.ByQuery),
		chromedp.WaitVisible(`#q`, chromedp.ByQuery),
		chromedp.SendKeys(`#q`, "user00", chromedp.ByQuery),
		chromedp.WaitVisible(`input[name=beneficiary_id][value="`+alice.ID+`"]`, chromedp.ByQuery),
		chromedp.Click(`input[name=beneficiary_id][value="`+alice.ID+`"]`, chromedp.ByQuery),
		chromedp.Click(`button[value=next].primary`, chromedp.ByQuery),
		chromedp.WaitVisible(`input[name=connector_id]`, chromedp.ByQuery),
		chromedp.Click(`input[name=connector_id][value="`+dir.ID+`"]`, chromedp.ByQuery),
		chromedp.Click(`button[value=next].primary`, chromedp.ByQuery),
		chromedp.WaitVisible(`#q`, chromedp.ByQuery),
		pickTwo(`#q`, "VPN", "Wiki", ents["VPN"].ID, ents["Wiki"].ID, "entitlements"),
		both("34-entitlement-chips"),
		chromedp.Click(`button[value=next].primary`, chromedp.ByQuery),
		chromedp.WaitVisible(`#justification`, chromedp.ByQuery),
		chromedp.SendKeys(`#justification`, "Pilot", chromedp.ByQuery),
		chromedp.Click(`button[value=next].primary`, chromedp.ByQuery),
		chromedp.WaitVisible(`button[value=task]`, chromedp.ByQuery),
		chromedp.Text(`dl.facts`, &review, chromedp.ByQuery),
		both("35-wizard-review"),
	)
	if err != nil {
		t.Fatalf("wizard: %v", err)
	}
	if !strings.Contains(review, "VPN, Wiki") && !strings.Contains(review, "Wiki, VPN") {
		t.Errorf("review lacks a pick: %s", review)
	}

	// The rest, looked at in both widths.
	err = chromedp.Run(ctx,
		chromedp.Navigate(base+"/tasks"), chromedp.WaitVisible(`#task-grid`, chromedp.ByQuery), both("36-tasks"),
		chromedp.Navigate(base+"/requests"), chromedp.WaitVisible(`table.grid`, chromedp.ByQuery), both("37-requests"),
		chromedp.Navigate(base+"/imports"), chromedp.WaitVisible(`table.grid`, chromedp.ByQuery), both("38-imports"),
		chromedp.Navigate(base+"/connectors/new?type=ldap"), chromedp.WaitVisible(`#setting-urls`, chromedp.ByQuery), both("39-connector-form"),
		chromedp.Navigate(base+"/requests/new"), chromedp.WaitVisible(`.types`, chromedp.ByQuery), both("40-new-request-drafts"),
		phone, chromedp.Navigate(base+"/jobs"), chromedp.WaitVisible(`.menu-toggle`, chromedp.ByQuery),
		chromedp.Click(`.menu-toggle`, chromedp.ByQuery), chromedp.WaitVisible(`#main-nav`, chromedp.ByQuery), shot(t, "41-menu-open-390px"), wide,
	)
	if err != nil {
		t.Fatalf("screenshots: %v", err)
	}
}

func containsAll(list []string, want ...string) bool {
	for _, w := range want {
		found := false
		for _, v := range list {
			found = found || v == w
		}
		if !found {
			return false
		}
	}
	return true
}
