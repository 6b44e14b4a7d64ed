package api_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/provisor/provisor/access"
	"github.com/provisor/provisor/app/apptest"
	"github.com/provisor/provisor/database/dbtest"
	"github.com/provisor/provisor/requests"
	"github.com/provisor/provisor/tasks"
)

type previewJSON struct {
	BeneficiaryName string `json:"beneficiary_name"`
	Jobs            []struct {
		Number          int    `json:"number"`
		Username        string `json:"username"`
		Kind            string `json:"kind"`
		EntitlementName string `json:"entitlement_name"`
		Status          string `json:"status"`
		DependsOn       int    `json:"depends_on"`
		Prediction      string `json:"prediction"`
		Reason          string `json:"reason"`
	} `json:"jobs"`
	Changes        int    `json:"changes"`
	NoChanges      int    `json:"no_changes"`
	Revocations    int    `json:"revocations"`
	AwaitsApproval bool   `json:"awaits_approval"`
	Approval       string `json:"approval"`
	Steps          []struct {
		Kind     string `json:"kind"`
		Approver string `json:"approver"`
	} `json:"approval_steps"`
}

// lines lists a preview's jobs as a run's are listed by runLines.
func (p previewJSON) lines() string {
	var out []string
	for _, j := range p.Jobs {
		out = append(out, fmt.Sprintf("#%d %s %s %s %s", j.Number, j.Username, j.Kind, j.EntitlementName, j.Status))
	}
	return strings.Join(out, "\n")
}

func (p previewJSON) predictions() string {
	var out []string
	for _, j := range p.Jobs {
		out = append(out, j.Prediction)
	}
	return strings.Join(out, " ")
}

// runLines lists a run's jobs with the status they were written with.
func runLines(inst *requests.Instance) string {
	var out []string
	for _, j := range inst.Jobs {
		status := requests.JobPending
		if j.Revocation {
			status = requests.JobScheduled
		}
		out = append(out, fmt.Sprintf("#%d %s %s %s %s", j.Seq, j.Username, j.Kind, j.EntitlementName, status))
	}
	return strings.Join(out, "\n")
}

// POST /requests/preview and GET /tasks/{id}/preview: what a submission or
// a trigger would do, checked as they are, and the same jobs as the run;
// a run's no-change jobs are marked, counted and filtered on.
func TestPreviewAPI(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect string) {
		t.Parallel()
		h := harness{apptest.New(t, dialect, nil), t}
		dir, ents := h.Directory(t, "Corp", "VPN", "Finance")
		rita, olga, alice := h.Identity(t, "rita"), h.Identity(t, "olga"), h.Identity(t, "alice")
		h.json("PATCH", "/api/v1/entitlements/"+ents["Finance"].ID, h.token(access.ScopeDirectory),
			`{"approval":"owner","owner_identity_id":"`+olga.ID+`"}`, 200, nil)
		h.user("rita", access.RoleRequester)
		h.user("olga", access.RoleRequester)
		service := h.token(access.ScopeRequests)
		read := h.token(access.ScopeRead)
		ritaTok := h.tokenFor("rita", access.ScopeRequests)
		olgaTok := h.tokenFor("olga", access.ScopeApprovals)

		body := fmt.Sprintf(`{"type":"create_account","beneficiary_type":"identity","beneficiary_id":%q,"connector_id":%q,
			"entitlements":[%q],"justification":"new hire","duration":"8h"}`, rita.ID, dir.ID, ents["VPN"].ID)
		runs := h.runs()
		var p previewJSON
		h.json("POST", "/api/v1/requests/preview", service, body, 200, &p)
		if h.runs() != runs {
			t.Errorf("a preview started a run")
		}
		if p.predictions() != "change change change" || p.Changes != 3 || p.Revocations != 1 || p.AwaitsApproval || p.BeneficiaryName != rita.DisplayName {
			t.Errorf("preview of a new account: %+v", p)
		}
		if p.Jobs[1].DependsOn != 1 || !strings.Contains(p.Jobs[2].Reason, "at the expiry") {
			t.Errorf("preview jobs: %+v", p.Jobs)
		}
		var run requests.Instance
		h.json("POST", "/api/v1/requests", service, body, 201, &run)
		done := h.WaitSettled(t, run.ID)
		if got, want := runLines(done), p.lines(); got != want {
			t.Errorf("the run's jobs:\n%s\nthe preview's:\n%s", got, want)
		}

		// Asked again, the account and its group are there already.
		p = previewJSON{}
		h.json("POST", "/api/v1/requests/preview", service, body, 200, &p)
		if p.predictions() != "no_change no_change change" || p.NoChanges != 2 {
			t.Errorf("preview of the same request again: %s", p.predictions())
		}
		h.json("POST", "/api/v1/requests", service, body, 201, &run)
		h.WaitSettled(t, run.ID)
		var got requests.Instance
		h.json("GET", "/api/v1/request-instances/"+run.ID, read, "", 200, &got)
		if got.JobsUnchanged != 2 || !got.Jobs[0].Unchanged || !got.Jobs[1].Unchanged || got.Jobs[2].Unchanged {
			t.Errorf("the second run: %d unchanged, jobs %+v", got.JobsUnchanged, got.Jobs)
		}
		var page requests.GroupPage
		h.json("GET", "/api/v1/connector-jobs?status=no_change", read, "", 200, &page)
		if page.TotalGroups != 1 || page.TotalJobs != 2 || page.Groups[0].InstanceID != run.ID {
			t.Errorf("connector jobs with no change: %d groups, %d jobs", page.TotalGroups, page.TotalJobs)
		}
		h.json("GET", "/api/v1/connector-jobs?status=unchanged", read, "", 422, nil)

		// The request policy applies to a preview as to a submission.
		other := fmt.Sprintf(`{"type":"add_entitlements","beneficiary_type":"identity","beneficiary_id":%q,"connector_id":%q,
			"entitlements":[%q],"justification":"x"}`, alice.ID, dir.ID, ents["VPN"].ID)
		status, _, answer := h.do("POST", "/api/v1/requests/preview", ritaTok, "application/json", other)
		if status != 403 || !strings.Contains(answer, `"rule":"beneficiary"`) || !strings.Contains(answer, `"refusals"`) {
			t.Errorf("rita previews a grant to alice: %d %s", status, answer)
		}
		h.json("POST", "/api/v1/requests/preview", service, `{"type":"add_entitlements"}`, 422, nil)

		// A request that needs an approval previews the jobs it will have,
		// and says it waits.
		finance := fmt.Sprintf(`{"type":"add_entitlements","beneficiary_type":"identity","beneficiary_id":%q,"connector_id":%q,
			"entitlements":[%q],"justification":"close"}`, rita.ID, dir.ID, ents["Finance"].ID)
		p = previewJSON{}
		h.json("POST", "/api/v1/requests/preview", ritaTok, finance, 200, &p)
		if !p.AwaitsApproval || len(p.Steps) != 1 || p.Steps[0].Approver != "olga" || !strings.Contains(p.Approval, "olga") || p.predictions() != "change" {
			t.Errorf("preview of a request that needs approval: %+v", p)
		}
		h.json("POST", "/api/v1/requests", ritaTok, finance, 201, &run)
		if run.Status != requests.InstanceAwaitingApproval || run.ApprovalID == nil {
			t.Fatalf("run: %+v", run)
		}
		h.json("POST", "/api/v1/approvals/"+*run.ApprovalID+"/approve", olgaTok, `{"comment":"ok"}`, 200, nil)
		done = h.WaitSettled(t, run.ID)
		if got, want := runLines(done), p.lines(); got != want || done.Status != requests.InstanceCompleted {
			t.Errorf("the approved run (%s):\n%s\nthe preview's:\n%s", done.Status, got, want)
		}

		// A task's preview is what its trigger does.
		name := "Lock rita"
		task, err := h.Tasks.Create(h.Ctx, tasks.Input{Name: &name, Request: &requests.Request{Type: requests.LockAccount,
			BeneficiaryType: requests.BeneficiaryIdentity, BeneficiaryID: rita.ID, ConnectorID: dir.ID, Justification: "leaves"}}, "admin")
		if err != nil {
			t.Fatal(err)
		}
		p = previewJSON{}
		h.json("GET", "/api/v1/tasks/"+task.ID+"/preview", read, "", 200, &p)
		if p.predictions() != "change" || p.Jobs[0].Kind != "Account.Disable" {
			t.Errorf("task preview: %+v", p)
		}
		h.json("POST", "/api/v1/tasks/"+task.ID+"/trigger", h.token(access.ScopeTrigger), "", 201, &run)
		done = h.WaitSettled(t, run.ID)
		if got, want := runLines(done), p.lines(); got != want {
			t.Errorf("the task's run:\n%s\nits preview:\n%s", got, want)
		}
		p = previewJSON{}
		h.json("GET", "/api/v1/tasks/"+task.ID+"/preview", read, "", 200, &p)
		if p.predictions() != "no_change" || !strings.Contains(p.Jobs[0].Reason, "already locked") {
			t.Errorf("task preview once locked: %+v", p)
		}
		h.json("GET", "/api/v1/tasks/00000000-0000-4000-8000-000000000000/preview", read, "", 404, nil)
	})
}
