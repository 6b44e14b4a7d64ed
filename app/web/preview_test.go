package web_test

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"

	"github.com/provisor/provisor/app/apptest"
	"github.com/provisor/provisor/connectors/configured"
	"github.com/provisor/provisor/requests"
	"github.com/provisor/provisor/tasks"
)

// The review step and a task's page preview the run's jobs per member,
// each as a change or no change; once run, a job that changed nothing has
// its own badge on the run page and in Connector Jobs, is counted apart,
// and can be filtered on.
func TestPortalPreviewAndNoChange(t *testing.T) {
	t.Parallel()
	forEachDialect(t, func(t *testing.T, dialect string) {
		b := apptest.New(t, dialect, nil)
		br := adminBrowser(t, b)
		dir, ents := b.Directory(t, "Corp", "VPN", "Wiki")
		alice, bob := b.Identity(t, "alice"), b.Identity(t, "bob")
		team := b.Workgroup(t, "Team", alice, bob)
		first := b.Submit(t, requests.Request{Type: requests.CreateAccount, BeneficiaryType: "workgroup", BeneficiaryID: team.ID,
			ConnectorID: dir.ID, Entitlements: []string{ents["VPN"].ID}})
		b.WaitSettled(t, first.ID)

		base := startWizard(t, br, "add_entitlements")
		for _, step := range []struct {
			name string
			f    url.Values
		}{
			{"beneficiary", url.Values{"beneficiary_type": {"workgroup"}, "beneficiary_id": {team.ID}}},
			{"connector", url.Values{"connector_id": {dir.ID}}},
			{"access", url.Values{"entitlements": {ents["VPN"].ID, ents["Wiki"].ID}}},
			{"details", url.Values{"justification": {"project"}, "priority": {"normal"}, "duration": {"8h"}}},
		} {
			step.f.Set("action", "next")
			if r := br.post(base+step.name, step.f); r.status != 303 {
				t.Fatalf("%s: %d %s", step.name, r.status, r.body)
			}
		}
		review := br.get(base + "review")
		contains(t, "review", review, "Preview: the jobs a run would write now", "8 jobs on Corp", "6 will change",
			"2 already so, no change", "4 revocations scheduled", `<th scope="rowgroup" colspan="4">alice</th>`,
			`<th scope="rowgroup" colspan="4">bob</th>`, "alice already is a member of VPN", "adds bob to Wiki", "Already so, no change")
		if strings.Index(review.body, ">alice</th>") > strings.Index(review.body, ">bob</th>") {
			t.Errorf("review: the members are not in the run's order")
		}
		r := br.post(base+"review", url.Values{"action": {"submit"}, "idempotency_key": {"k1"}})
		if r.status != 303 || !strings.HasPrefix(r.header.Get("Location"), "/requests/") {
			t.Fatalf("submit: %d %s", r.status, r.body)
		}
		runID := strings.TrimPrefix(r.header.Get("Location"), "/requests/")
		b.WaitSettled(t, runID)

		run := br.get("/requests/" + runID)
		if n := strings.Count(run.body, "Completed · no change</span>"); n != 2 {
			t.Errorf("run page: %d no-change badges, want 2", n)
		}
		contains(t, "run page", run, `<span class="outcome outcome-completed">2 completed</span>`,
			`<span class="outcome outcome-no_change">2 no change</span>`, `<span class="outcome outcome-scheduled">4 scheduled</span>`)
		dialog := br.do("GET", "/jobs/"+runID, nil, "HX-Request", "true", "HX-Target", "dialog-body")
		contains(t, "jobs dialog", dialog, "Completed · no change", `<span class="outcome outcome-no_change">2 no change</span>`)
		board := br.get("/jobs?status=no_change")
		contains(t, "jobs board filtered", board, runID, `<option value="no_change" selected>No change</option>`, "2 no change")
		if strings.Contains(board.body, first.ID) {
			t.Errorf("the no-change filter lists the first run, which changed everything")
		}

		name := "Lock Team"
		task, err := b.Tasks.Create(b.Ctx, tasks.Input{Name: &name, Request: &requests.Request{Type: requests.LockAccount,
			BeneficiaryType: "workgroup", BeneficiaryID: team.ID, ConnectorID: dir.ID, Justification: "leave"}}, "admin")
		if err != nil {
			t.Fatal(err)
		}
		page := br.get("/tasks/" + task.ID)
		contains(t, "task page", page, "Preview: the jobs a run would write now", "2 will change", "locks account alice", "locks account bob")
		off := false
		if _, err := b.Connectors.Update(b.Ctx, dir.ID, configured.Input{Name: dir.Name, Settings: json.RawMessage(dir.Settings), Enabled: &off}); err != nil {
			t.Fatal(err)
		}
		page = br.get("/tasks/" + task.ID)
		contains(t, "task page of a disabled connector", page, "can no longer run", "is disabled")
	})
}
