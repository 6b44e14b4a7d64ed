package web_test

import (
	"context"
	"encoding/json"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/provisor/provisor/app/apptest"
	"github.com/provisor/provisor/connectors"
	"github.com/provisor/provisor/connectors/configured"
	"github.com/provisor/provisor/database/dbtest"
	"github.com/provisor/provisor/requests"
)

// Connector settings are a form per type, with labels, help and errors
// next to their field; the JSON stays under Advanced and wins when it was
// changed.
func TestConnectorSettingsForm(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect string) {
		t.Parallel()
		b := apptest.New(t, dialect, &apptest.Options{NoStart: true})
		adm := adminBrowser(t, b)
		page := adm.get("/connectors/new?type=ldap")
		for _, want := range []string{`name="setting.urls"`, "Server URLs", "User base DN", `name="setting.attributes.email"`,
			"Email attribute", `name="setting.start_tls"`, "Advanced: the settings as JSON", `id="setting-urls-help"`} {
			if !strings.Contains(page.body, want) {
				t.Errorf("the LDAP form lacks %q", want)
			}
		}
		form := url.Values{"type": {"ldap"}, "name": {"Corp LDAP"}, "enabled": {"on"}, "has_fields": {"1"}, "settings_shown": {"{}"}, "settings": {"{}"},
			"setting.urls": {"ldap://127.0.0.1:1\r\nldap://127.0.0.1:2"}, "setting.user_base_dn": {"not a dn"},
			"setting.group_base_dn": {"ou=groups,dc=example,dc=test"}, "setting.start_tls": {"on"}}
		bad := adm.post("/connectors/new", form)
		if bad.status != 422 {
			t.Fatalf("bad settings: %d", bad.status)
		}
		nextTo := regexp.MustCompile(`(?s)id="setting-user_base_dn".{0,400}?class="field-error" role="alert">not a valid DN`)
		if !nextTo.MatchString(bad.body) {
			t.Errorf("the DN's error is not next to its field:\n%s", bad.body)
		}
		form.Set("setting.page_size", "many")
		nan := adm.post("/connectors/new", form)
		if !regexp.MustCompile(`(?s)name="setting.page_size" value="many".{0,300}?must be a number`).MatchString(nan.body) {
			t.Errorf("the number's error is not next to its field")
		}
		form.Set("setting.user_base_dn", "ou=people,dc=example,dc=test")
		form.Set("setting.page_size", "200")
		ok := adm.post("/connectors/new", form)
		if ok.status != 303 {
			t.Fatalf("good settings: %d %s", ok.status, ok.body)
		}
		id := strings.TrimPrefix(ok.header.Get("Location"), "/connectors/")
		rec, err := b.Connectors.Get(b.Ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		var got map[string]any
		if err := json.Unmarshal([]byte(rec.Settings), &got); err != nil {
			t.Fatal(err)
		}
		if urls, _ := got["urls"].([]any); len(urls) != 2 || got["user_base_dn"] != "ou=people,dc=example,dc=test" || got["page_size"] != float64(200) || got["start_tls"] != true {
			t.Errorf("stored settings %s", rec.Settings)
		}
		// The page shows the stored values in the fields; a changed JSON
		// box is saved as written.
		shown := adm.get("/connectors/" + id)
		if !strings.Contains(shown.body, `value="ou=people,dc=example,dc=test"`) || !strings.Contains(shown.body, "ldap://127.0.0.1:1\nldap://127.0.0.1:2</textarea>") {
			t.Errorf("the form does not show the stored settings")
		}
		m := regexp.MustCompile(`name="settings_shown" value="([^"]*)"`).FindStringSubmatch(shown.body)
		if m == nil {
			t.Fatal("no settings_shown")
		}
		edited := strings.Replace(rec.Settings, `"page_size": 200`, `"page_size": 300`, 1)
		edited = strings.Replace(edited, `"page_size":200`, `"page_size":300`, 1)
		save := url.Values{"name": {"Corp LDAP"}, "enabled": {"on"}, "has_fields": {"1"}, "settings_shown": {htmlUnescape(m[1])}, "settings": {edited},
			"setting.urls": {"ldap://127.0.0.1:9"}, "setting.user_base_dn": {"ou=people,dc=example,dc=test"}, "setting.group_base_dn": {"ou=groups,dc=example,dc=test"}}
		if r := adm.post("/connectors/"+id, save); r.status != 303 {
			t.Fatalf("save with edited JSON: %d %s", r.status, r.body)
		}
		rec, _ = b.Connectors.Get(b.Ctx, id)
		if !strings.Contains(rec.Settings, "300") || strings.Contains(rec.Settings, "127.0.0.1:9") {
			t.Errorf("the edited JSON did not win: %s", rec.Settings)
		}
	})
}

func htmlUnescape(s string) string {
	return strings.NewReplacer("&#34;", `"`, "&quot;", `"`, "&amp;", "&", "&lt;", "<", "&gt;", ">", "&#39;", "'", "&#10;", "\n").Replace(s)
}

// The wizard: Next without a beneficiary says what to do; Change next to
// Type keeps the draft and the rest; drafts are listed to resume; Review
// warns of a grant for someone without an account and offers to create it.
func TestWizardTypeChangeDraftsAndAccounts(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect string) {
		t.Parallel()
		b := apptest.New(t, dialect, &apptest.Options{NoStart: true})
		adm := adminBrowser(t, b)
		dir, ents := b.Directory(t, "Corp Directory", "VPN")
		bob := b.Identity(t, "bob")
		r := adm.post("/requests/new", url.Values{"type": {"add_entitlements"}})
		if r.status != 303 {
			t.Fatalf("new draft: %d", r.status)
		}
		base := strings.TrimSuffix(r.header.Get("Location"), "/beneficiary")
		none := adm.post(base+"/beneficiary", url.Values{"action": {"next"}})
		if none.status != 422 || !strings.Contains(none.body, "Choose a person or a workgroup") || strings.Contains(none.body, "no identity with id") {
			t.Errorf("Next without a beneficiary: %d", none.status)
		}
		adm.post(base+"/beneficiary", url.Values{"beneficiary_type": {"identity"}, "beneficiary_id": {bob.ID}, "action": {"next"}})
		adm.post(base+"/connector", url.Values{"connector_id": {dir.ID}, "action": {"next"}})
		adm.post(base+"/access", url.Values{"entitlements": {ents["VPN"].ID}, "action": {"next"}})
		adm.post(base+"/details", url.Values{"justification": {"Pilot"}, "priority": {"normal"}, "duration": {"8h"}, "action": {"next"}})
		review := adm.get(base + "/review")
		if !strings.Contains(review.body, `id="no-account"`) || !strings.Contains(review.body, "has no account on Corp Directory") ||
			!strings.Contains(review.body, "Create the account too") {
			t.Errorf("review does not warn of the missing account:\n%s", review.body)
		}
		if !strings.Contains(review.body, `href="`+base+`/type"`) {
			t.Errorf("Change next to Type does not go to the draft's type step")
		}
		// Create the account too: the same draft, now Create account, with
		// everything kept.
		if r := adm.post(base+"/type", url.Values{"type": {"create_account"}}); r.status != 303 || r.header.Get("Location") != base+"/review" {
			t.Fatalf("change type: %d %s", r.status, r.header.Get("Location"))
		}
		id := strings.TrimPrefix(base, "/requests/drafts/")
		admUser, _ := b.Access.UserByUsername(b.Ctx, "admin")
		d, err := b.Requests.GetDraft(b.Ctx, admUser.ID, id)
		if err != nil {
			t.Fatal(err)
		}
		if d.Type != requests.CreateAccount || d.BeneficiaryID != bob.ID || d.ConnectorID != dir.ID || len(d.Entitlements) != 1 || d.Justification != "Pilot" || d.Duration != "8h" {
			t.Errorf("draft after the type change: %+v", d)
		}
		if again := adm.get(base + "/review"); strings.Contains(again.body, `id="no-account"`) {
			t.Error("a Create account request still warns of the missing account")
		}
		// Lock account takes no entitlements and no duration: those go.
		adm.post(base+"/type", url.Values{"type": {"lock_account"}})
		d, _ = b.Requests.GetDraft(b.Ctx, admUser.ID, id)
		if d.Type != requests.LockAccount || len(d.Entitlements) != 0 || d.Duration != "" || d.BeneficiaryID != bob.ID {
			t.Errorf("draft after lock: %+v", d)
		}
		// The draft is offered under New Request.
		start := adm.get("/requests/new")
		if !strings.Contains(start.body, `id="draft-`+id+`"`) || !strings.Contains(start.body, "Unfinished requests") || !strings.Contains(start.body, "Resume") {
			t.Errorf("New Request does not list the draft")
		}
		// Errors on review are said once, by label.
		adm.post(base+"/type", url.Values{"type": {"add_entitlements"}})
		rv := adm.post(base+"/review", url.Values{"action": {"task"}, "task_name": {strings.Repeat("x", 300)}})
		if strings.Contains(rv.body, "task_name:") || strings.Contains(rv.body, "entitlements[") {
			t.Errorf("review shows field names:\n%s", rv.body)
		}
	})
}

// Imports lists every import run with its status and a link, and runs
// one now per connector; Connector Jobs sorts by a column and its list
// asks again by itself while jobs are under way; progress bars show each
// part in its colour.
func TestImportsJobsBoardAndProgress(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect string) {
		t.Parallel()
		b := apptest.New(t, dialect, &apptest.Options{ConnectorTypes: []connectors.Type{{
			Name: "importsrc", Label: "Import source", New: func(connectors.Config) (connectors.Connector, error) { return importSource{}, nil },
		}}})
		adm := adminBrowser(t, b)
		dir, ents := b.Directory(t, "Corp Directory", "VPN")
		src, err := b.Connectors.Create(b.Ctx, configured.Input{Name: "HR source", Type: "importsrc"})
		if err != nil {
			t.Fatal(err)
		}
		imports := adm.get("/imports")
		if !strings.Contains(imports.body, `id="source-`+src.ID+`"`) || !strings.Contains(imports.body, "Delta import") || strings.Contains(imports.body, `id="source-`+dir.ID+`"`) {
			t.Fatalf("Run import now is not offered for the import source alone:\n%s", imports.body)
		}
		key := regexp.MustCompile(`id="source-` + src.ID + `"(?s).*?name="idempotency_key" value="([^"]+)"`).FindStringSubmatch(imports.body)
		form := url.Values{"connector_id": {src.ID}, "mode": {"delta"}, "idempotency_key": {key[1]}}
		first, second := adm.post("/imports/run", form), adm.post("/imports/run", form)
		if first.status != 303 || second.status != 303 {
			t.Fatalf("run now: %d %d %s", first.status, second.status, first.body)
		}
		runs, n, err := b.Requests.ListInstances(b.Ctx, requests.InstanceFilter{Type: requests.DataImport})
		if err != nil || n != 1 {
			t.Fatalf("%d import runs after a double click (%v)", n, err)
		}
		b.WaitSettled(t, runs[0].ID)
		listed := adm.get("/imports")
		if !strings.Contains(listed.body, `id="run-`+runs[0].ID+`"`) || !strings.Contains(listed.body, `href="/requests/`+runs[0].ID+`"`) || strings.Contains(listed.body, "No import runs") {
			t.Errorf("the import run is not listed:\n%s", listed.body)
		}

		// A failed run: the bar has a failed part.
		alice := b.Identity(t, "alice")
		failed := b.WaitSettled(t, b.Submit(t, requests.Request{Type: requests.AddEntitlements, BeneficiaryType: "identity", BeneficiaryID: alice.ID,
			ConnectorID: dir.ID, Entitlements: []string{ents["VPN"].ID}, Justification: "x"}).ID)
		if failed.Status != requests.InstanceFailed {
			t.Fatalf("run: %s", apptest.Describe(failed))
		}
		reqs := adm.get("/requests")
		if !strings.Contains(reqs.body, `class="bar-failed"`) || !strings.Contains(reqs.body, "1 failed") {
			t.Errorf("the progress bar of a failed run has no failed part")
		}
		// A time-bound run keeps the board live; sorting by User.
		timed := b.WaitSettled(t, b.Submit(t, requests.Request{Type: requests.CreateAccount, BeneficiaryType: "identity", BeneficiaryID: alice.ID,
			ConnectorID: dir.ID, Entitlements: []string{ents["VPN"].ID}, Duration: "8h", Justification: "x"}).ID)
		if timed.Status != requests.InstanceActive {
			t.Fatalf("timed: %s", apptest.Describe(timed))
		}
		board := adm.do("GET", "/jobs?sort=user&size=10", nil, "HX-Request", "true", "HX-Target", "jobs-board")
		if strings.Contains(board.body, "<html") || !strings.Contains(board.body, `id="jobs-board"`) || !strings.Contains(board.body, `hx-trigger="every 10s, jobs-changed from:body"`) ||
			!strings.Contains(board.body, `hx-get="/jobs?size=10&amp;sort=user"`) {
			t.Errorf("board fragment:\n%s", board.body)
		}
		if !strings.Contains(board.body, `aria-sort="ascending"><a class="sort" href="/jobs?size=10&amp;sort=-user"`) {
			t.Errorf("the User head does not sort the other way next")
		}
		dlg := adm.do("GET", "/jobs/"+timed.ID, nil, "HX-Request", "true", "HX-Target", "dialog-body")
		if !strings.Contains(dlg.body, `hx-trigger="every 10s"`) {
			t.Errorf("the dialog of a run with a scheduled revocation does not refresh itself")
		}
		forced := adm.htmx("/jobs/"+timed.ID+"/force-end", nil)
		if forced.header.Get("HX-Trigger") != "jobs-changed" {
			t.Errorf("Force End does not tell the board: %q", forced.header.Get("HX-Trigger"))
		}
		b.Wait(t, timed.ID, 20*time.Second, func(i *requests.Instance) bool { return requests.Final(i.Status) })
		if done := adm.do("GET", "/jobs/"+timed.ID, nil, "HX-Request", "true", "HX-Target", "dialog-body"); strings.Contains(done.body, "hx-trigger") {
			t.Errorf("a finished run's dialog still polls")
		}
	})
}

// importSource is a connector that only imports: one account, one group.
type importSource struct{ connectors.Connector }

func (importSource) Kind(op connectors.Operation) string {
	if op == connectors.OpImport {
		return "Import"
	}
	return ""
}

func (importSource) Import(ctx context.Context, _ connectors.ImportMode, _ string, sink connectors.ImportSink) (string, error) {
	if err := sink.Entitlement(ctx, connectors.Entitlement{ExternalID: "g1", Name: "G1"}); err != nil {
		return "", err
	}
	return "c1", sink.Account(ctx, connectors.ImportedAccount{Account: connectors.Account{Username: "zed", ExternalID: "zed"}, Entitlements: []string{"g1"}})
}
