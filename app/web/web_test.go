package web_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/provisor/provisor/access"
	"github.com/provisor/provisor/app/apptest"
	"github.com/provisor/provisor/requests"
	"github.com/provisor/provisor/tasks"
)

// browser is a cookie jar and the CSRF token of its session.
type browser struct {
	t       *testing.T
	b       *apptest.Bundle
	cookies map[string]string
	csrf    string
}

func newBrowser(t *testing.T, b *apptest.Bundle) *browser {
	return &browser{t: t, b: b, cookies: map[string]string{}}
}

var csrfField = regexp.MustCompile(`name="_csrf" value="([^"]+)"`)

type response struct {
	status int
	header http.Header
	body   string
}

func (br *browser) do(method, path string, form url.Values, headers ...string) response {
	br.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req := httptest.NewRequest(method, path, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	for k, v := range br.cookies {
		req.AddCookie(&http.Cookie{Name: k, Value: v})
	}
	resp, err := br.b.HTTP.Test(req, 20000)
	if err != nil {
		br.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	for _, c := range resp.Cookies() {
		if c.MaxAge < 0 || c.Value == "" {
			delete(br.cookies, c.Name)
		} else {
			br.cookies[c.Name] = c.Value
		}
	}
	b, _ := io.ReadAll(resp.Body)
	r := response{status: resp.StatusCode, header: resp.Header, body: string(b)}
	if m := csrfField.FindStringSubmatch(r.body); m != nil && br.cookies["provisor_session"] != "" {
		br.csrf = m[1]
	}
	return r
}

func (br *browser) get(path string) response { br.t.Helper(); return br.do("GET", path, nil) }

// post sends a form with the session's CSRF token.
func (br *browser) post(path string, form url.Values) response {
	br.t.Helper()
	if form == nil {
		form = url.Values{}
	}
	form.Set("_csrf", br.csrf)
	return br.do("POST", path, form)
}

func (br *browser) login(username, password string) response {
	br.t.Helper()
	page := br.get("/login")
	m := csrfField.FindStringSubmatch(page.body)
	if m == nil {
		br.t.Fatalf("no CSRF field on the sign-in page")
	}
	r := br.do("POST", "/login", url.Values{"_csrf": {m[1]}, "username": {username}, "password": {password}, "next": {"/requests"}})
	if r.status == http.StatusSeeOther {
		home := br.get("/requests") // picks up the session's CSRF token
		if home.status != 200 {
			br.t.Fatalf("home after sign-in: %d", home.status)
		}
	}
	return r
}

type world struct {
	*apptest.Bundle
	adminPW, requesterPW string
	dir, alice, rita     string
	vpn                  string
	task                 *tasks.Task
	inst                 *requests.Instance
}

func setup(t *testing.T) *world {
	b := apptest.New(t, "sqlite", nil)
	w := &world{Bundle: b, adminPW: access.GeneratePassword(), requesterPW: access.GeneratePassword()}
	if _, err := b.Access.CreateUser(b.Ctx, access.UserInput{Username: "admin", Email: "admin@example.test", Password: w.adminPW, Role: access.RoleAdmin}, "t"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Access.CreateUser(b.Ctx, access.UserInput{Username: "rita", Email: "rita@example.test", Password: w.requesterPW, Role: access.RoleRequester}, "t"); err != nil {
		t.Fatal(err)
	}
	dir, ents := b.Directory(t, "Corp Directory", "VPN", "Wiki")
	alice := b.Identity(t, "alice")
	// Rita asks for access for alice, who reports to her.
	rita := b.Identity(t, "rita").ID
	if _, err := b.Identities.SetManager(b.Ctx, alice.ID, rita, "t"); err != nil {
		t.Fatal(err)
	}
	w.dir, w.alice, w.rita, w.vpn = dir.ID, alice.ID, rita, ents["VPN"].ID
	name := "Alice VPN"
	task, err := b.Tasks.Create(b.Ctx, tasks.Input{Name: &name, Request: &requests.Request{Type: requests.CreateAccount,
		BeneficiaryType: "identity", BeneficiaryID: alice.ID, ConnectorID: dir.ID, Entitlements: []string{w.vpn}, Justification: "x"}}, "rita")
	if err != nil {
		t.Fatal(err)
	}
	w.task = task
	w.inst, err = b.Tasks.Trigger(b.Ctx, task.ID, requests.TriggerManual, "rita")
	if err != nil {
		t.Fatal(err)
	}
	b.WaitSettled(t, w.inst.ID)
	return w
}

// Every route, for anonymous visitors, requesters and admins.
func TestRouteAccess(t *testing.T) {
	t.Parallel()
	w := setup(t)
	anon := newBrowser(t, w.Bundle)
	req := newBrowser(t, w.Bundle)
	if r := req.login("rita", w.requesterPW); r.status != http.StatusSeeOther {
		t.Fatalf("requester sign-in: %d %s", r.status, r.body)
	}
	adm := newBrowser(t, w.Bundle)
	adm.login("admin", w.adminPW)

	// A draft is its owner's only: the admin's draft is not the requester's.
	admUser, err := w.Access.UserByUsername(w.Ctx, "admin")
	if err != nil {
		t.Fatal(err)
	}
	draft, err := w.Requests.NewDraft(w.Ctx, admUser.ID, requests.LockAccount)
	if err != nil {
		t.Fatal(err)
	}
	rita, err := w.Access.UserByUsername(w.Ctx, "rita")
	if err != nil {
		t.Fatal(err)
	}
	ritaID := rita.ID
	id := w.inst.ID
	tid := w.task.ID
	job := w.inst.Jobs[0].ID
	const noID = "00000000-0000-0000-0000-000000000000"
	type want struct{ anon, requester, admin int }
	routes := []struct {
		method, path string
		want         want
	}{
		{"GET", "/", want{303, 302, 302}},
		{"GET", "/requests", want{303, 200, 200}},
		{"GET", "/requests/new", want{303, 200, 200}},
		{"GET", "/requests/" + id, want{303, 200, 200}},
		{"GET", "/requests/drafts/" + draft.ID + "/beneficiary", want{303, 404, 200}},
		{"GET", "/approvals", want{303, 200, 200}},
		{"GET", "/approvals?tab=all&status=denied", want{303, 200, 200}},
		// An unknown approval is not there for anyone (approvals_test.go
		// has who sees a real one).
		{"GET", "/approvals/" + noID, want{303, 404, 404}},
		{"POST", "/approvals/" + noID + "/approve", want{401, 404, 404}},
		{"POST", "/approvals/" + noID + "/deny", want{401, 404, 404}},
		{"POST", "/approvals/" + noID + "/withdraw", want{401, 404, 404}},
		{"GET", "/tasks", want{303, 200, 200}},
		{"GET", "/tasks/" + tid, want{303, 200, 200}},
		{"GET", "/tasks/" + tid + "/row", want{303, 200, 200}},
		{"GET", "/tasks/" + tid + "/history", want{303, 200, 200}},
		{"GET", "/tasks/schedule-preview?cron=0+1+*+*+*&timezone=UTC", want{303, 200, 200}},
		{"GET", "/lookup/identities?q=al", want{303, 200, 200}},
		{"GET", "/lookup/workgroups?q=x", want{303, 200, 200}},
		{"GET", "/lookup/entitlements?connector=" + w.dir, want{303, 200, 200}},
		{"POST", "/tasks/" + tid + "/trigger", want{401, 403, 303}},
		{"POST", "/tasks/" + tid + "/schedule", want{401, 403, 303}},
		{"POST", "/tasks/" + tid + "/enable", want{401, 403, 303}},
		{"GET", "/jobs", want{303, 403, 200}},
		{"GET", "/jobs/" + id, want{303, 403, 303}},
		{"POST", "/jobs/" + id + "/cancel", want{401, 403, 303}},
		{"POST", "/jobs/" + id + "/force-end", want{401, 403, 303}},
		{"POST", "/jobs/" + id + "/jobs/" + job + "/cancel", want{401, 403, 303}},
		{"POST", "/jobs/" + id + "/jobs/" + job + "/retry", want{401, 403, 303}},
		{"GET", "/connectors", want{303, 403, 200}},
		{"GET", "/connectors/new", want{303, 403, 200}},
		{"POST", "/connectors/new", want{401, 403, 422}},
		{"GET", "/connectors/" + w.dir, want{303, 403, 200}},
		{"POST", "/connectors/" + w.dir + "/check", want{401, 403, 200}},
		{"GET", "/identities", want{303, 403, 200}},
		{"POST", "/identities", want{401, 403, 422}},
		{"GET", "/identities/" + w.alice, want{303, 403, 200}},
		{"GET", "/workgroups", want{303, 403, 200}},
		{"POST", "/workgroups", want{401, 403, 422}},
		{"GET", "/audit", want{303, 403, 200}},
		{"GET", "/outbox", want{303, 403, 200}},
		{"GET", "/imports", want{303, 403, 200}},
		{"GET", "/users", want{303, 403, 200}},
		// rita is enabled already: refused with a flash, nothing changes.
		{"POST", "/users/" + ritaID + "/enable", want{401, 403, 303}},
		{"POST", "/api-clients/" + noID + "/revoke", want{401, 403, 404}},
		{"GET", "/static/app.css", want{200, 200, 200}},
		{"GET", "/no-such-page", want{303, 404, 404}},
	}
	for _, r := range routes {
		for _, who := range []struct {
			name string
			br   *browser
			want int
		}{{"anonymous", anon, r.want.anon}, {"requester", req, r.want.requester}, {"admin", adm, r.want.admin}} {
			s := apptest.Scenario{Name: r.method + " " + r.path + " as " + who.name, Method: r.method, URL: r.path, ExpectedStatus: who.want}
			if who.name == "anonymous" && who.want == 303 {
				s.AfterFunc = func(t testing.TB, res *apptest.Response) {
					if !strings.HasPrefix(res.Header.Get("Location"), "/login?next=") {
						t.Errorf("%s %s as anonymous redirects to %q", r.method, r.path, res.Header.Get("Location"))
					}
				}
			}
			who.br.run(s)
		}
	}
	// Admin pages carry the admin badge; a requester's navigation has no admin links.
	if body := adm.get("/jobs").body; !strings.Contains(body, "badge-admin") || !strings.Contains(body, `href="/audit"`) {
		t.Error("admin page without the admin badge or links")
	}
	if body := req.get("/requests").body; strings.Contains(body, `href="/jobs"`) || strings.Contains(body, `href="/audit"`) {
		t.Error("requester sees admin links")
	}
}

func TestSignInCSRFAndSlowDown(t *testing.T) {
	t.Parallel()
	w := setup(t)
	br := newBrowser(t, w.Bundle)
	if r := br.login("admin", "wrong password"); r.status != 401 || !strings.Contains(r.body, "Wrong username or password") {
		t.Errorf("wrong password: %d", r.status)
	}
	// A form without the token (or from another site) is refused.
	if r := br.do("POST", "/login", url.Values{"username": {"admin"}, "password": {w.adminPW}}); r.status != 403 {
		t.Errorf("sign-in without token: %d", r.status)
	}
	br.login("admin", w.adminPW)
	if br.cookies["provisor_session"] == "" {
		t.Fatal("no session cookie")
	}
	if r := br.do("POST", "/tasks/"+w.task.ID+"/trigger", url.Values{}); r.status != 403 {
		t.Errorf("POST without CSRF token: %d", r.status)
	}
	if r := br.do("POST", "/tasks/"+w.task.ID+"/trigger", url.Values{}, "X-CSRF-Token", "forged"); r.status != 403 {
		t.Errorf("POST with a forged token: %d", r.status)
	}
	if r := br.do("POST", "/tasks/"+w.task.ID+"/trigger", url.Values{}, "X-CSRF-Token", br.csrf, "HX-Request", "true", "HX-Target", "task-"+w.task.ID); r.status != 200 ||
		!strings.Contains(r.body, "badge-triggered") || !strings.Contains(r.body, `hx-trigger="every 1s"`) {
		t.Errorf("htmx trigger: %d %s", r.status, r.body)
	}
	// Sign out ends the session on the server.
	old := br.cookies["provisor_session"]
	if r := br.post("/logout", nil); r.status != 303 {
		t.Errorf("logout: %d", r.status)
	}
	br.cookies["provisor_session"] = old
	if r := br.get("/requests"); r.status != 303 {
		t.Errorf("old session after logout: %d", r.status)
	}

	// Repeated failures slow down that name, even with the right password.
	slow := newBrowser(t, w.Bundle)
	for i := 0; i < 5; i++ {
		slow.login("rita", "nope")
	}
	r := slow.login("rita", w.requesterPW)
	if r.status != 429 || !strings.Contains(r.body, "Too many failed sign-ins") || r.header.Get("Retry-After") == "" {
		t.Errorf("after 5 failures: %d %s", r.status, r.header.Get("Retry-After"))
	}
	// Cookies are HttpOnly and SameSite.
	req := httptest.NewRequest("GET", "/login", nil)
	resp, _ := w.HTTP.Test(req)
	if sc := resp.Header.Get("Set-Cookie"); !strings.Contains(sc, "HttpOnly") || !strings.Contains(strings.ToLower(sc), "samesite=lax") {
		t.Errorf("cookie %q", sc)
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
		t.Errorf("CSP %q", csp)
	}
	// The next address stays on this site.
	for _, next := range []string{"https://evil.example/", "//evil.example/x", "/\\evil"} {
		p := br.get("/login?next=" + url.QueryEscape(next))
		if strings.Contains(p.body, "evil") {
			t.Errorf("next %q kept: %s", next, p.body)
		}
	}
}

// A requester goes through the wizard, meets a validation error, goes
// back, and creates a task; then submits another request directly.
func TestWizard(t *testing.T) {
	t.Parallel()
	w := setup(t)
	br := newBrowser(t, w.Bundle)
	br.login("rita", w.requesterPW)

	r := br.post("/requests/new", url.Values{"type": {"add_entitlements"}})
	if r.status != 303 {
		t.Fatalf("start: %d", r.status)
	}
	step := r.header.Get("Location")
	if !strings.HasSuffix(step, "/beneficiary") {
		t.Fatalf("first step %s", step)
	}
	base := strings.TrimSuffix(step, "beneficiary")
	// Next without a beneficiary: the error is shown next to the field.
	if r := br.post(base+"beneficiary", url.Values{"action": {"next"}, "beneficiary_type": {"identity"}}); r.status != 422 || !strings.Contains(r.body, "field-error") {
		t.Errorf("empty beneficiary: %d", r.status)
	}
	// Search as you type returns only the results, and only what the
	// requester may ask for: themselves and alice, who reports to her.
	if r := br.do("GET", base+"beneficiary?q=rit", nil, "HX-Request", "true", "HX-Target", "results"); r.status != 200 || !strings.Contains(r.body, w.rita) || strings.Contains(r.body, "<html") {
		t.Errorf("search fragment: %d %s", r.status, r.body)
	}
	if r := br.do("GET", base+"beneficiary?q=ali", nil, "HX-Request", "true", "HX-Target", "results"); r.status != 200 || !strings.Contains(r.body, w.alice) {
		t.Errorf("a requester's search does not find her direct report: %d %s", r.status, r.body)
	}
	steps := []url.Values{
		{"beneficiary_type": {"identity"}, "beneficiary_id": {w.alice}},
		{"connector_id": {w.dir}},
		{"entitlements": {w.vpn}},
		{"justification": {"project work"}, "priority": {"high"}, "duration": {"forever"}},
	}
	names := []string{"beneficiary", "connector", "access", "details"}
	for i, f := range steps {
		f.Set("action", "next")
		r := br.post(base+names[i], f)
		if i == 3 {
			if r.status != 422 || !strings.Contains(r.body, "not a duration") || !strings.Contains(r.body, "project work") {
				t.Fatalf("bad duration: %d", r.status)
			}
			f.Set("duration", "30d")
			r = br.post(base+names[i], f)
		}
		if r.status != 303 {
			t.Fatalf("step %s: %d %s", names[i], r.status, r.body)
		}
	}
	// Back keeps what was entered; a reload too.
	if r := br.post(base+"review", url.Values{"action": {"back"}}); r.header.Get("Location") != base+"details" {
		t.Errorf("back goes to %s", r.header.Get("Location"))
	}
	if r := br.get(base + "details"); !strings.Contains(r.body, "project work") || !strings.Contains(r.body, `value="30d"`) {
		t.Error("details lost on reload")
	}
	review := br.get(base + "review")
	for _, want := range []string{"Review and Submit", "alice", "Corp Directory", "VPN", "project work", "High", "30d", "Create Task", "Submit"} {
		if !strings.Contains(review.body, want) {
			t.Errorf("review lacks %q", want)
		}
	}
	// A task name that is taken is reported on the review step.
	if r := br.post(base+"review", url.Values{"action": {"task"}, "task_name": {"Alice VPN"}}); r.status != 422 || !strings.Contains(r.body, "already exists") {
		t.Errorf("duplicate task name: %d", r.status)
	}
	r = br.post(base+"review", url.Values{"action": {"task"}, "task_name": {"Alice VPN for a month"}})
	if r.status != 303 || !strings.HasPrefix(r.header.Get("Location"), "/tasks/") {
		t.Fatalf("create task: %d %s", r.status, r.header.Get("Location"))
	}
	page := br.get(r.header.Get("Location"))
	for _, want := range []string{"Alice VPN for a month", "Task created", "Add entitlements", "Requested entitlements", "VPN", "Notification settings"} {
		if !strings.Contains(page.body, want) {
			t.Errorf("task page lacks %q", want)
		}
	}
	if r := br.get(base + "review"); r.status != 404 {
		t.Errorf("draft after create task: %d", r.status)
	}

	// Submit once: a run, visible in the requester's grid.
	r = br.post("/requests/new", url.Values{"type": {"lock_account"}})
	base = strings.TrimSuffix(r.header.Get("Location"), "beneficiary")
	for i, f := range []url.Values{{"beneficiary_type": {"identity"}, "beneficiary_id": {w.alice}}, {"connector_id": {w.dir}}, {}, {"justification": {"leaving"}, "priority": {"normal"}}} {
		f.Set("action", "next")
		if r := br.post(base+names[i], f); r.status != 303 {
			t.Fatalf("lock step %s: %d", names[i], r.status)
		}
	}
	r = br.post(base+"review", url.Values{"action": {"submit"}})
	if r.status != 303 || !strings.HasPrefix(r.header.Get("Location"), "/requests/") {
		t.Fatalf("submit: %d", r.status)
	}
	instID := strings.TrimPrefix(r.header.Get("Location"), "/requests/")
	w.WaitSettled(t, instID)
	run := br.get("/requests/" + instID)
	if !strings.Contains(run.body, "Account.Disable") || !strings.Contains(run.body, "badge-completed") {
		t.Errorf("run page: %s", run.body)
	}
	if grid := br.get("/requests"); !strings.Contains(grid.body, instID) {
		t.Error("own run missing from the requests grid")
	}
}

func TestTaskPageEditsAndConnectorJobs(t *testing.T) {
	t.Parallel()
	w := setup(t)
	adm := newBrowser(t, w.Bundle)
	adm.login("admin", w.adminPW)
	tid := w.task.ID

	if r := adm.post("/tasks/"+tid+"/schedule", url.Values{"cron": {"0 25 * * *"}, "timezone": {"UTC"}, "schedule_enabled": {"on"}}); r.status != 422 || !strings.Contains(r.body, "0 25 * * *") {
		t.Errorf("bad cron: %d", r.status)
	}
	if r := adm.post("/tasks/"+tid+"/schedule", url.Values{"cron": {"30 6 * * 1-5"}, "timezone": {"Europe/Paris"}, "schedule_enabled": {"on"}}); r.status != 303 {
		t.Errorf("schedule: %d %s", r.status, r.body)
	}
	page := adm.get("/tasks/" + tid)
	if !strings.Contains(page.body, "At 06:30, Monday to Friday (Europe/Paris)") || strings.Count(page.body, "<li><time") < 5 {
		t.Errorf("schedule reading or next runs missing")
	}
	if r := adm.get("/tasks/schedule-preview?cron=*/15+*+*+*+*&timezone=UTC"); !strings.Contains(r.body, "Every 15 minutes") {
		t.Errorf("preview: %s", r.body)
	}
	if r := adm.post("/tasks/"+tid, url.Values{"name": {""}, "description": {"d"}}); r.status != 422 {
		t.Errorf("empty name: %d", r.status)
	}
	if r := adm.post("/tasks/"+tid, url.Values{"name": {"<b>Renamed</b>"}, "description": {"new text"}}); r.status != 303 {
		t.Errorf("rename: %d", r.status)
	}
	grid := adm.get("/tasks?q=renamed")
	if !strings.Contains(grid.body, "&lt;b&gt;Renamed&lt;/b&gt;") || strings.Contains(grid.body, "<b>Renamed</b>") {
		t.Error("task name not escaped in the grid")
	}
	if !strings.Contains(grid.body, "Trigger") || !strings.Contains(grid.body, "At 06:30") {
		t.Error("grid lacks trigger button or schedule")
	}
	// Notification settings: an unknown recipient is refused, a good one saved.
	if r := adm.post("/tasks/"+tid+"/notify", url.Values{"enabled": {"yes"}, "when": {"failure"}, "recipients": {"00000000-0000-4000-8000-000000000000"}}); r.status != 422 {
		t.Errorf("unknown recipient: %d", r.status)
	}
	if r := adm.post("/tasks/"+tid+"/notify", url.Values{"enabled": {"yes"}, "when": {"failure"}, "recipients": {w.alice, "requester"}}); r.status != 303 {
		t.Errorf("recipients: %d %s", r.status, r.body)
	}
	if got, _ := w.Tasks.Get(w.Ctx, tid); !got.Notify.Enabled || got.Notify.When != "failure" || len(got.Notify.Recipients) != 2 {
		t.Errorf("notify stored: %+v", got.Notify)
	}

	// Connector Jobs: counters, filter in the URL, the dialog with its cards.
	jobs := adm.get("/jobs?status=completed&size=10")
	for _, want := range []string{"Showing 1–1 of 1 activation group ", "2 jobs", w.inst.ID, "Built-in directory", "Corp Directory", "Page 1 of 1", `aria-disabled="true"`} {
		if !strings.Contains(jobs.body, want) {
			t.Errorf("jobs page lacks %q", want)
		}
	}
	if r := adm.get("/jobs?status=failed"); !strings.Contains(r.body, "No jobs with status failed") {
		t.Error("failed filter not empty")
	}
	dlg := adm.do("GET", "/jobs/"+w.inst.ID, nil, "HX-Request", "true", "HX-Target", "dialog-body")
	for _, want := range []string{"Activation Jobs", w.inst.ID, "Directory.CreateAccount", "Directory.AddToGroup", "Connector instance", "Priority", "Close"} {
		if !strings.Contains(dlg.body, want) {
			t.Errorf("dialog lacks %q", want)
		}
	}
	// Cancel of a completed job explains why not, inside the dialog.
	r := adm.do("POST", "/jobs/"+w.inst.ID+"/jobs/"+w.inst.Jobs[0].ID+"/cancel", nil, "HX-Request", "true", "X-CSRF-Token", adm.csrf)
	if r.status != 200 || !strings.Contains(r.body, "already completed") {
		t.Errorf("cancel completed job: %d %s", r.status, r.body)
	}
	// Audit shows who did it.
	if a := adm.get("/audit?actor=admin"); !strings.Contains(a.body, "task.update") {
		t.Error("audit lacks the admin's task update")
	}
	if a := adm.get("/audit?since=yesterday"); a.status != 422 {
		t.Errorf("bad since: %d", a.status)
	}
}

func TestAdminPages(t *testing.T) {
	t.Parallel()
	w := setup(t)
	adm := newBrowser(t, w.Bundle)
	adm.login("admin", w.adminPW)
	if r := adm.post("/identities", url.Values{"username": {"bob smith"}, "email": {"nope"}}); r.status != 422 || !strings.Contains(r.body, "not a valid email") {
		t.Errorf("bad identity: %d", r.status)
	}
	r := adm.post("/identities", url.Values{"username": {"bob"}, "display_name": {"Bob <Builder>"}, "email": {"bob@example.test"}})
	if r.status != 303 {
		t.Fatalf("identity: %d", r.status)
	}
	bob := strings.TrimPrefix(r.header.Get("Location"), "/identities/")
	if p := adm.get("/identities/" + bob); !strings.Contains(p.body, "Bob &lt;Builder&gt;") {
		t.Error("identity page not escaped")
	}
	r = adm.post("/workgroups", url.Values{"name": {"Builders"}, "members": {bob, w.alice}})
	if r.status != 303 {
		t.Fatalf("workgroup: %d %s", r.status, r.body)
	}
	if p := adm.get(r.header.Get("Location")); !strings.Contains(p.body, "Members (2)") {
		t.Error("workgroup members")
	}
	// Connectors: the secret is never shown back.
	r = adm.post("/connectors/new", url.Values{"name": {"Second"}, "type": {"internal"}, "settings": {"{not json"}, "enabled": {"on"}})
	if r.status != 422 || !strings.Contains(r.body, "must be a JSON object") {
		t.Errorf("bad settings: %d", r.status)
	}
	r = adm.post("/connectors/new", url.Values{"name": {"Second"}, "type": {"internal"}, "settings": {"{}"}, "enabled": {"on"},
		"secret_name": {"token"}, "secret_value": {"s3cr3t-value"}})
	if r.status != 422 || !strings.Contains(r.body, "no secrets") || strings.Contains(r.body, "s3cr3t-value") {
		t.Errorf("secret on the built-in directory: %d", r.status)
	}
	r = adm.post("/connectors/new", url.Values{"name": {"Second"}, "type": {"internal"}, "settings": {"{}"}, "enabled": {"on"}})
	if r.status != 303 {
		t.Fatalf("connector: %d %s", r.status, r.body)
	}
	cp := r.header.Get("Location")
	if r := adm.post(cp+"/entitlements", url.Values{"ent_name": {"Printers"}, "ent_kind": {"group"}}); r.status != 303 {
		t.Errorf("entitlement: %d", r.status)
	}
	if p := adm.get(cp); !strings.Contains(p.body, "Printers") {
		t.Error("entitlement missing")
	}
	if r := adm.do("POST", cp+"/check", nil, "HX-Request", "true", "X-CSRF-Token", adm.csrf); !strings.Contains(r.body, "Connected") {
		t.Errorf("check: %s", r.body)
	}
}

// The outbox: a finished run's email, held while no SMTP server is
// configured, readable by admins, its HTML part sandboxed.
func TestOutbox(t *testing.T) {
	t.Parallel()
	w := setup(t)
	on := tasks.Notify{Enabled: true, When: "always", Recipients: []string{w.alice}}
	if _, err := w.Tasks.Update(w.Ctx, w.task.ID, tasks.Input{Notify: &on}, "admin"); err != nil {
		t.Fatal(err)
	}
	inst, err := w.Tasks.Trigger(w.Ctx, w.task.ID, requests.TriggerManual, "admin")
	if err != nil {
		t.Fatal(err)
	}
	w.WaitSettled(t, inst.ID)
	adm := newBrowser(t, w.Bundle)
	adm.login("admin", w.adminPW)
	list := adm.get("/outbox?status=held")
	if list.status != 200 || !strings.Contains(list.body, "alice@example.test") || !strings.Contains(list.body, "no SMTP configured") {
		t.Fatalf("outbox: %d %s", list.status, list.body)
	}
	m := regexp.MustCompile(`href="/outbox/([0-9a-f-]{36})"`).FindStringSubmatch(list.body)
	if m == nil {
		t.Fatal("no message link")
	}
	msg := adm.get("/outbox/" + m[1])
	for _, want := range []string{"Alice VPN", "Plain text", inst.ID, "Resend"} {
		if !strings.Contains(msg.body, want) {
			t.Errorf("message page lacks %q", want)
		}
	}
	html := adm.get("/outbox/" + m[1] + "/html")
	if !strings.HasPrefix(html.header.Get("Content-Security-Policy"), "sandbox") || !strings.Contains(html.body, "Alice VPN") {
		t.Errorf("html part: %q", html.header.Get("Content-Security-Policy"))
	}
	r := adm.post("/outbox/"+m[1]+"/resend", nil)
	if r.status != 303 {
		t.Fatalf("resend: %d", r.status)
	}
	if p := adm.get(r.header.Get("Location")); !strings.Contains(p.body, "no SMTP server is configured") {
		t.Error("resend without SMTP does not say why")
	}
	req := newBrowser(t, w.Bundle)
	req.login("rita", w.requesterPW)
	if r := req.get("/outbox/" + m[1]); r.status != 403 {
		t.Errorf("requester reads a message: %d", r.status)
	}
}

// An import over its deletion threshold waits on the Imports page, with
// what it would change, until an admin decides.
func TestImportApproval(t *testing.T) {
	t.Parallel()
	w := setup(t)
	changes := `[{"op":"account.delete","external_id":"uid=bob,ou=people,dc=example,dc=test","username":"bob","before":"enabled","status":"deleted"}]`
	err := w.DB.Gorm.Exec(`INSERT INTO imports (id, connector_id, connector_name, mode, status, counts, changes, cookie, threshold, message, created_at)
		VALUES (?, ?, 'Corp Directory', 'full', 'awaiting_approval', '{"accounts_known":2,"accounts_deleted":1,"risk_percent":50}', ?, '', 10, 'would delete 1 of 2 accounts (50%), over the threshold of 10%', ?)`,
		"5b0e7c55-0000-4000-8000-000000000001", w.dir, changes, time.Now().UTC()).Error
	if err != nil {
		t.Fatal(err)
	}
	adm := newBrowser(t, w.Bundle)
	adm.login("admin", w.adminPW)
	list := adm.get("/imports?status=awaiting_approval")
	if !strings.Contains(list.body, "Corp Directory") || !strings.Contains(list.body, "50.0%") {
		t.Fatalf("imports page: %s", list.body)
	}
	page := adm.get("/imports/5b0e7c55-0000-4000-8000-000000000001")
	for _, want := range []string{"account.delete", "bob", "Approve", "Reject", "1 deleted"} {
		if !strings.Contains(page.body, want) {
			t.Errorf("import page lacks %q", want)
		}
	}
	r := adm.post("/imports/5b0e7c55-0000-4000-8000-000000000001/decide", url.Values{"decision": {"reject"}})
	if r.status != 303 {
		t.Fatalf("reject: %d", r.status)
	}
	if p := adm.get(r.header.Get("Location")); !strings.Contains(p.body, "Import rejected") || !strings.Contains(p.body, "badge-rejected") {
		t.Errorf("after reject: %s", p.body)
	}
	if r := adm.post("/imports/5b0e7c55-0000-4000-8000-000000000001/decide", url.Values{"decision": {"approve"}}); r.status != 303 {
		t.Errorf("second decision: %d", r.status)
	} else if p := adm.get(r.header.Get("Location")); !strings.Contains(p.body, "not awaiting approval") {
		t.Error("a decided import does not say why it cannot be approved")
	}
}
