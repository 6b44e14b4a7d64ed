package web_test

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/provisor/provisor/access"
	"github.com/provisor/provisor/app/apptest"
	"github.com/provisor/provisor/database/dbtest"
	"github.com/provisor/provisor/identities"
	"github.com/provisor/provisor/requests"
)

// approvalWorld is a portal where rita asks for alice (her report) for
// entitlements that need approval: VPN of its owner Olga then an admin,
// Wiki of Olga alone.
type approvalWorld struct {
	*apptest.Bundle
	pw                    map[string]string
	dir, alice, vpn, wiki string
}

func setupApprovals(t *testing.T, dialect string) *approvalWorld {
	t.Helper()
	b := apptest.New(t, dialect, nil)
	w := &approvalWorld{Bundle: b, pw: map[string]string{}}
	for _, u := range []struct{ name, display, role string }{
		{"admin", "Ada Admin", access.RoleAdmin}, {"rita", "Rita Requester", access.RoleRequester},
		{"olga", "Olga Owner", access.RoleRequester}, {"mallory", "Mallory", access.RoleRequester},
		{"hank", "Hank Helpdesk", access.RoleHelpdesk},
	} {
		w.pw[u.name] = access.GeneratePassword()
		if _, err := b.Access.CreateUser(b.Ctx, access.UserInput{Username: u.name, DisplayName: u.display, Email: u.name + "@example.test",
			Password: w.pw[u.name], Role: u.role}, "t"); err != nil {
			t.Fatal(err)
		}
	}
	dir, ents := b.Directory(t, "Corp Directory", "VPN", "Wiki")
	rita := b.Identity(t, "rita")
	alice, err := b.Identities.CreateIdentity(b.Ctx, identities.IdentityInput{Username: "alice", DisplayName: "Alice", Email: "alice@example.test", ManagerID: rita.ID})
	if err != nil {
		t.Fatal(err)
	}
	// Olga's user is linked to her identity by its username.
	olga, err := b.Identities.CreateIdentity(b.Ctx, identities.IdentityInput{Username: "olga", DisplayName: "Olga Owner", Email: "olga@example.test"})
	if err != nil {
		t.Fatal(err)
	}
	b.Identity(t, "mallory")
	for name, rule := range map[string]string{"VPN": identities.ApprovalOwnerThenAdmin, "Wiki": identities.ApprovalOwner} {
		if _, err := b.Identities.SetPolicy(b.Ctx, ents[name].ID, identities.PolicyInput{OwnerIdentityID: &olga.ID, Approval: ptr(rule)}, "t"); err != nil {
			t.Fatal(err)
		}
	}
	w.dir, w.alice, w.vpn, w.wiki = dir.ID, alice.ID, ents["VPN"].ID, ents["Wiki"].ID
	return w
}

func (w *approvalWorld) signIn(t *testing.T, name string) *browser {
	t.Helper()
	br := newBrowser(t, w.Bundle)
	if r := br.login(name, w.pw[name]); r.status != http.StatusSeeOther {
		t.Fatalf("%s signs in: %d", name, r.status)
	}
	return br
}

// ask submits rita's request for alice of the entitlements, as the wizard
// does, and returns the run and its approval's id.
func (w *approvalWorld) ask(t *testing.T, ents ...string) (*requests.Instance, string) {
	t.Helper()
	inst, err := w.Requests.Submit(w.Ctx, requests.Request{Type: requests.CreateAccount, BeneficiaryType: "identity", BeneficiaryID: w.alice,
		ConnectorID: w.dir, Entitlements: ents, Justification: "joins the pilot"},
		requests.StartOpts{Trigger: requests.TriggerSubmission, Actor: "rita", By: &requests.Requester{Username: "rita"}})
	if err != nil {
		t.Fatal(err)
	}
	if inst.Status != requests.InstanceAwaitingApproval || inst.ApprovalID == nil {
		t.Fatalf("run %s: %s, approval %v", inst.ID, inst.Status, inst.ApprovalID)
	}
	return inst, *inst.ApprovalID
}

func forEachDialect(t *testing.T, fn func(t *testing.T, dialect string)) {
	for _, dialect := range dbtest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			fn(t, dialect)
		})
	}
}

func contains(t *testing.T, what string, r response, want ...string) {
	t.Helper()
	for _, s := range want {
		if !strings.Contains(r.body, s) {
			t.Errorf("%s: %d, lacks %q", what, r.status, s)
		}
	}
}

var navCount = regexp.MustCompile(`href="/approvals"[^>]*>My approvals(?: <span class="badge badge-count"[^>]*>(\d+))?`)

func waitingBadge(t *testing.T, r response) string {
	t.Helper()
	m := navCount.FindStringSubmatch(r.body)
	if m == nil {
		t.Fatalf("no My approvals link in the navigation")
	}
	return m[1]
}

// The whole path of a request that needs its owner then an admin: the
// review says so, Submit leaves it awaiting, the owner and an admin approve
// it with comments, and the run goes on; who may see and decide it, and
// the answers to those who may not.
func TestApprovalOwnerThenAdmin(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, dialect string) {
		w := setupApprovals(t, dialect)
		rita := w.signIn(t, "rita")

		// The wizard: the badge on the offer, the plan on the review.
		base := startWizard(t, rita, "create_account")
		for _, step := range []struct {
			name string
			f    url.Values
		}{
			{"beneficiary", url.Values{"beneficiary_type": {"identity"}, "beneficiary_id": {w.alice}}},
			{"connector", url.Values{"connector_id": {w.dir}}},
		} {
			step.f.Set("action", "next")
			if r := rita.post(base+step.name, step.f); r.status != 303 {
				t.Fatalf("%s: %d %s", step.name, r.status, r.body)
			}
		}
		contains(t, "access step", fragment(rita, base+"access?q="), `badge-approval">needs the approval of its owner, then an admin`)
		for _, step := range []struct {
			name string
			f    url.Values
		}{
			{"access", url.Values{"entitlements": {w.vpn}}},
			{"details", url.Values{"justification": {"joins the VPN pilot"}, "priority": {"normal"}}},
		} {
			step.f.Set("action", "next")
			if r := rita.post(base+step.name, step.f); r.status != 303 {
				t.Fatalf("%s: %d %s", step.name, r.status, r.body)
			}
		}
		review := rita.get(base + "review")
		contains(t, "review", review, "This request needs approval", "step 1: Olga Owner", "owner of VPN", "step 2: an admin")
		r := rita.post(base+"review", url.Values{"action": {"submit"}})
		if r.status != 303 || !strings.HasPrefix(r.header.Get("Location"), "/requests/") {
			t.Fatalf("submit: %d %s", r.status, r.header.Get("Location"))
		}
		runURL := r.header.Get("Location")
		run := rita.get(runURL)
		contains(t, "run page", run, "it awaits approval", `badge-awaiting_approval">Awaiting approval`, "Waits for Olga Owner (owner of VPN)", "No jobs yet")
		if strings.Contains(run.body, "its jobs are queued.") {
			t.Errorf("the flash says the jobs are queued")
		}
		inst, err := w.Requests.GetInstance(w.Ctx, strings.TrimPrefix(runURL, "/requests/"))
		if err != nil || inst.ApprovalID == nil {
			t.Fatalf("run: %v %v", inst, err)
		}
		id := *inst.ApprovalID
		page := "/approvals/" + id
		contains(t, "run page", run, `href="`+page+`"`)
		contains(t, "requests list", rita.get("/requests?status=awaiting_approval"), `badge-awaiting_approval">Awaiting approval`, inst.ID)

		// The requester sees it in My requests, and may not decide it.
		if n := waitingBadge(t, rita.get("/approvals")); n != "" {
			t.Errorf("rita's badge: %q", n)
		}
		contains(t, "rita's list", rita.get("/approvals?tab=mine"), page, "waits for Olga Owner (owner of VPN)")
		mine := rita.get(page)
		contains(t, "rita's page", mine, "you asked for this", `action="/approvals/`+id+`/withdraw"`, "joins the VPN pilot", "Corp Directory", "VPN", `href="`+runURL+`"`)
		if strings.Contains(mine.body, `/approvals/`+id+`/approve"`) {
			t.Errorf("rita is offered Approve")
		}
		if r := rita.post(page+"/approve", url.Values{"comment": {"mine"}}); r.status != 403 || !strings.Contains(r.body, "you asked for this") {
			t.Errorf("rita approves: %d %s", r.status, r.body)
		}

		// Others see nothing there; helpdesk and admins see it.
		mallory := w.signIn(t, "mallory")
		for _, p := range []string{page, page + "/approve", page + "/deny", page + "/withdraw"} {
			var r response
			if p == page {
				r = mallory.get(p)
			} else {
				r = mallory.post(p, nil)
			}
			if r.status != 404 {
				t.Errorf("mallory %s: %d", p, r.status)
			}
		}
		for _, p := range []string{"/approvals/00000000-0000-0000-0000-000000000000", "/approvals/nope"} {
			if r := mallory.get(p); r.status != 404 {
				t.Errorf("unknown approval %s: %d", p, r.status)
			}
		}
		contains(t, "mallory's list", mallory.get("/approvals"), "None of your requests needed an approval")
		if r := mallory.get("/approvals?tab=all"); strings.Contains(r.body, page) {
			t.Errorf("a requester sees every approval")
		}
		hank := w.signIn(t, "hank")
		contains(t, "helpdesk", hank.get(page), "You cannot decide this request", "waits for Olga Owner (owner of VPN)")
		adm := w.signIn(t, "admin")
		contains(t, "admin before the owner", adm.get(page), "You cannot decide this request", "this approval waits for Olga Owner (owner of VPN)")
		if r := adm.post(page+"/approve", nil); r.status != 403 || !strings.Contains(r.body, "waits for Olga Owner") {
			t.Errorf("admin approves before the owner: %d %s", r.status, r.body)
		}
		if r := adm.post(page+"/withdraw", nil); r.status != 403 || !strings.Contains(r.body, "only rita") {
			t.Errorf("admin withdraws: %d %s", r.status, r.body)
		}

		// The owner: her badge, her list, her decision.
		olga := w.signIn(t, "olga")
		list := olga.get("/approvals")
		if n := waitingBadge(t, list); n != "1" {
			t.Errorf("olga's badge: %q", n)
		}
		contains(t, "olga's list", list, `aria-current="page">Waiting for me`, page, "Alice", "VPN", "rita")
		contains(t, "olga's page", olga.get(page), `action="/approvals/`+id+`/approve"`, `formaction="/approvals/`+id+`/deny"`, `name="comment"`)
		if r := olga.do("POST", page+"/approve", url.Values{"comment": {"x"}}); r.status != 403 {
			t.Errorf("approve without the CSRF token: %d", r.status)
		}
		long := strings.Repeat("é", requests.MaxComment+1)
		r = olga.post(page+"/approve", url.Values{"comment": {long}})
		if r.status != 422 || !regexp.MustCompile(`(?s)id="comment".*id="comment-error"><p class="field-error" role="alert">at most 2000 characters`).MatchString(r.body) {
			t.Errorf("a too long comment: %d %s", r.status, r.body)
		}
		r = olga.post(page+"/approve", url.Values{"comment": {"ok for the <pilot>"}})
		if r.status != 303 || r.header.Get("Location") != page {
			t.Fatalf("olga approves: %d %s", r.status, r.body)
		}
		after := olga.get(page)
		contains(t, "after olga", after, "Approved. The request now waits for an admin.", "ok for the &lt;pilot&gt;", "Olga Owner", "you approved step 1")
		if strings.Contains(after.body, "<pilot>") {
			t.Errorf("the comment is not escaped")
		}
		if r := olga.post(page+"/approve", nil); r.status != 403 || !strings.Contains(r.body, "you approved step 1") {
			t.Errorf("olga approves twice: %d", r.status)
		}
		if n := waitingBadge(t, olga.get("/approvals")); n != "" {
			t.Errorf("olga's badge after her decision: %q", n)
		}

		// The admin decides the second step; the run goes on.
		list = adm.get("/approvals")
		if n := waitingBadge(t, list); n != "1" {
			t.Errorf("admin's badge: %q", n)
		}
		contains(t, "admin's list", list, page, "waits for an admin")
		r = adm.post(page+"/approve", url.Values{"comment": {"fine"}})
		if r.status != 303 {
			t.Fatalf("admin approves: %d %s", r.status, r.body)
		}
		contains(t, "after the admin", adm.get(page), "Approved: the request&#39;s jobs are queued.", "Approved by Olga Owner (owner of VPN), Ada Admin (admin)")
		done := w.WaitSettled(t, inst.ID)
		if done.Status != requests.InstanceCompleted {
			t.Fatalf("run after approval: %s%s", done.Status, apptest.Describe(done))
		}
		contains(t, "run after approval", rita.get(runURL), "Approved by Olga Owner (owner of VPN), Ada Admin (admin)", `badge-completed`)
		contains(t, "jobs dialog", adm.do("GET", "/jobs/"+inst.ID, nil, "HX-Request", "true"), "Approved by Olga Owner (owner of VPN), Ada Admin (admin)", `href="`+page+`"`)
		if r := adm.post(page+"/approve", nil); r.status != 409 || !strings.Contains(r.body, "this approval is approved") {
			t.Errorf("approve a decided approval: %d %s", r.status, r.body)
		}
		if r := rita.post(page+"/withdraw", nil); r.status != 409 {
			t.Errorf("withdraw a decided approval: %d", r.status)
		}
		// Olga decided a step: she still sees it.
		if r := olga.get(page); r.status != 200 {
			t.Errorf("olga after the end: %d", r.status)
		}
	})
}

// A denial and a withdrawal end the run, and the requester sees why.
func TestApprovalDenyAndWithdraw(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, dialect string) {
		w := setupApprovals(t, dialect)
		denied, deniedID := w.ask(t, w.wiki)
		withdrawn, withdrawnID := w.ask(t, w.vpn)
		rita, olga, adm := w.signIn(t, "rita"), w.signIn(t, "olga"), w.signIn(t, "admin")

		// The jobs dialog of a run that waits: its approval, and Cancel.
		dlg := adm.do("GET", "/jobs/"+denied.ID, nil, "HX-Request", "true")
		contains(t, "dialog of a waiting run", dlg, `badge-awaiting_approval">Awaiting approval`, "Waits for Olga Owner (owner of Wiki)", "No jobs yet", "Cancel the run")
		contains(t, "jobs grid", adm.get("/jobs"), `badge-awaiting_approval">Awaiting approval`)

		r := olga.post("/approvals/"+deniedID+"/deny", url.Values{"comment": {"not for contractors"}})
		if r.status != 303 {
			t.Fatalf("olga denies: %d %s", r.status, r.body)
		}
		contains(t, "after the denial", olga.get("/approvals/"+deniedID), "Denied: the request will not be provisioned")
		inst := w.WaitSettled(t, denied.ID)
		if inst.Status != requests.InstanceDenied || len(inst.Jobs) != 0 {
			t.Errorf("denied run: %s, %d jobs", inst.Status, len(inst.Jobs))
		}
		contains(t, "rita's run", rita.get("/requests/"+denied.ID), `badge-denied">Denied`, "Denied by olga", "not for contractors", "nothing was provisioned")
		contains(t, "rita's approval", rita.get("/approvals/"+deniedID), `badge-denied">Denied`, "not for contractors", "Denied by <strong>Olga Owner</strong>")
		contains(t, "rita's requests", rita.get("/requests?status=denied"), `badge-denied">Denied`, denied.ID)
		contains(t, "rita's denied list", rita.get("/approvals?tab=mine&status=denied"), "/approvals/"+deniedID)
		if r := rita.get("/approvals?tab=mine&status=denied"); strings.Contains(r.body, "/approvals/"+withdrawnID) {
			t.Errorf("the status filter keeps a pending approval")
		}

		// Withdrawn by rita: nobody needs to decide it any more.
		if n := waitingBadge(t, olga.get("/approvals")); n != "1" {
			t.Errorf("olga's badge: %q", n)
		}
		if r := olga.post("/approvals/"+withdrawnID+"/withdraw", nil); r.status != 403 || !strings.Contains(r.body, "only rita") {
			t.Errorf("olga withdraws: %d", r.status)
		}
		r = rita.post("/approvals/"+withdrawnID+"/withdraw", url.Values{"comment": {"asked by mistake"}})
		if r.status != 303 {
			t.Fatalf("rita withdraws: %d %s", r.status, r.body)
		}
		contains(t, "after the withdrawal", rita.get("/approvals/"+withdrawnID), "Request withdrawn", `badge-withdrawn">Withdrawn`, "asked by mistake")
		if inst := w.WaitSettled(t, withdrawn.ID); inst.Status != requests.InstanceWithdrawn {
			t.Errorf("withdrawn run: %s", inst.Status)
		}
		contains(t, "withdrawn run", rita.get("/requests/"+withdrawn.ID), `badge-withdrawn">Withdrawn`, "asked by mistake")
		if n := waitingBadge(t, olga.get("/approvals")); n != "" {
			t.Errorf("olga's badge after the withdrawal: %q", n)
		}
		// Olga never decided it, and may not now: it is not hers to see.
		if r := olga.get("/approvals/" + withdrawnID); r.status != 404 {
			t.Errorf("olga opens the withdrawn approval: %d", r.status)
		}
		contains(t, "admin, all", adm.get("/approvals?tab=all"), "/approvals/"+deniedID, "/approvals/"+withdrawnID)

		// An admin cancels a waiting run on Connector Jobs: its request is
		// withdrawn.
		canceled, canceledID := w.ask(t, w.vpn)
		r = adm.do("POST", "/jobs/"+canceled.ID+"/cancel", url.Values{"_csrf": {adm.csrf}}, "HX-Request", "true")
		contains(t, "cancel a waiting run", r, "Run canceled: its request is withdrawn", `badge-withdrawn">Withdrawn`)
		if inst := w.WaitSettled(t, canceled.ID); inst.Status != requests.InstanceWithdrawn {
			t.Errorf("canceled run: %s", inst.Status)
		}
		contains(t, "rita's canceled approval", rita.get("/approvals/"+canceledID), "Withdrawn by admin", "canceled on the Connector Jobs page")
	})
}

// A task whose request needs approval cannot be triggered until it is
// approved; the task page and the grid say so.
func TestTaskAwaitsApproval(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, dialect string) {
		w := setupApprovals(t, dialect)
		rita := w.signIn(t, "rita")
		base := startWizard(t, rita, "create_account")
		for _, step := range []struct {
			name string
			f    url.Values
		}{
			{"beneficiary", url.Values{"beneficiary_type": {"identity"}, "beneficiary_id": {w.alice}}},
			{"connector", url.Values{"connector_id": {w.dir}}},
			{"access", url.Values{"entitlements": {w.wiki}}},
			{"details", url.Values{"justification": {"wiki for alice"}, "priority": {"normal"}}},
		} {
			step.f.Set("action", "next")
			if r := rita.post(base+step.name, step.f); r.status != 303 {
				t.Fatalf("%s: %d %s", step.name, r.status, r.body)
			}
		}
		r := rita.post(base+"review", url.Values{"action": {"task"}, "task_name": {"Alice wiki"}})
		if r.status != 303 || !strings.HasPrefix(r.header.Get("Location"), "/tasks/") {
			t.Fatalf("create task: %d %s", r.status, r.body)
		}
		taskURL := r.header.Get("Location")
		page := rita.get(taskURL)
		contains(t, "task page", page, "Its request awaits approval before it can run", "waits for Olga Owner (owner of Wiki)", "open the approval")
		task, err := w.Tasks.Get(w.Ctx, strings.TrimPrefix(taskURL, "/tasks/"))
		if err != nil || task.ApprovalID == nil {
			t.Fatalf("task: %+v %v", task, err)
		}

		adm := w.signIn(t, "admin")
		contains(t, "admin task page", adm.get(taskURL), `disabled title="awaits approval">▶ Trigger`)
		contains(t, "tasks grid", adm.get("/tasks"), `disabled title="awaits approval" aria-label="Trigger Alice wiki"`)
		contains(t, "task row", adm.get(taskURL+"/row"), `disabled title="awaits approval"`)
		if r := adm.post(taskURL+"/trigger", nil); r.status != 409 || !strings.Contains(r.body, "awaits approval") {
			t.Errorf("trigger before approval: %d %s", r.status, r.body)
		}

		olga := w.signIn(t, "olga")
		if r := olga.post("/approvals/"+*task.ApprovalID+"/approve", url.Values{"comment": {"ok"}}); r.status != 303 {
			t.Fatalf("olga approves: %d %s", r.status, r.body)
		}
		contains(t, "task approved", olga.get("/approvals/"+*task.ApprovalID), "Approved: the task&#39;s runs may start.")
		page = adm.get(taskURL)
		contains(t, "task page after approval", page, "by Olga Owner (owner of Wiki)")
		if strings.Contains(page.body, `title="awaits approval"`) || strings.Contains(adm.get("/tasks").body, `title="awaits approval"`) {
			t.Errorf("Trigger is still off after the approval")
		}
		r = adm.post(taskURL+"/trigger", nil)
		if r.status != 303 {
			t.Fatalf("trigger after approval: %d %s", r.status, r.body)
		}
		runs, _, err := w.Requests.ListInstances(w.Ctx, requests.InstanceFilter{TaskID: task.ID})
		if err != nil || len(runs) != 1 {
			t.Fatalf("runs: %v %v", runs, err)
		}
		if inst := w.WaitSettled(t, runs[0].ID); inst.Status != requests.InstanceCompleted {
			t.Errorf("task run: %s", inst.Status)
		}
		contains(t, "task run page", adm.get("/requests/"+runs[0].ID), "Approved by Olga Owner (owner of Wiki)")
	})
}

// My approvals pages like the other grids, and its pager keeps the tab and
// the filter.
func TestApprovalsPager(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, dialect string) {
		w := setupApprovals(t, dialect)
		var first string
		for i := 0; i < 26; i++ {
			_, id := w.ask(t, w.wiki)
			if i == 0 {
				first = id
			}
		}
		adm := w.signIn(t, "admin")
		p1 := adm.get("/approvals?tab=all&status=pending")
		contains(t, "page 1", p1, "26 approvals", "Page 1 of 2", `href="/approvals?page=2&amp;status=pending&amp;tab=all"`)
		if strings.Contains(p1.body, first) {
			t.Errorf("the oldest approval is on page 1")
		}
		p2 := adm.get("/approvals?page=2&status=pending&tab=all")
		contains(t, "page 2", p2, "Page 2 of 2", "/approvals/"+first, `href="/approvals?page=1&amp;status=pending&amp;tab=all"`)
		olga := w.signIn(t, "olga")
		if n := waitingBadge(t, olga.get("/requests")); n != "26" {
			t.Errorf("olga's badge: %q", n)
		}
		contains(t, "olga, page 2", olga.get("/approvals?tab=waiting&page=2"), "/approvals/"+first, fmt.Sprintf("%d waiting for your decision", 26))
	})
}
