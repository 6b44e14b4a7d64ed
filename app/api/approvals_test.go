package api_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/provisor/provisor/access"
	"github.com/provisor/provisor/app/apptest"
	"github.com/provisor/provisor/database/dbtest"
	"github.com/provisor/provisor/identities"
	"github.com/provisor/provisor/internal/testwait"
	"github.com/provisor/provisor/notifier"
	"github.com/provisor/provisor/requests"
)

type approvalJSON struct {
	ID         string  `json:"id"`
	InstanceID *string `json:"instance_id"`
	TaskID     *string `json:"task_id"`
	Status     string  `json:"status"`
	ApprovedBy string  `json:"approved_by"`
	CanDecide  bool    `json:"can_decide"`
	WhyNot     string  `json:"why_not"`
	Steps      []struct {
		Number        int    `json:"number"`
		Stage         int    `json:"stage"`
		Kind          string `json:"kind"`
		Approver      string `json:"approver"`
		Reason        string `json:"reason"`
		Status        string `json:"status"`
		DecidedByName string `json:"decided_by_name"`
		Comment       string `json:"comment"`
	} `json:"steps"`
}

type runJSON struct {
	ID         string  `json:"id"`
	Status     string  `json:"status"`
	ApprovalID *string `json:"approval_id"`
	JobsTotal  int     `json:"jobs_total"`
}

// Every approval path through the API, on both databases: an owner's
// approval, owner then admin by two people, an admin's denial, no eligible
// owner, no self-approval and no approval for oneself, withdrawal, expiry,
// and the approval of a task's request; with the emails, the run's status
// and history, and the audit trail.
func TestApprovals(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect string) {
		t.Parallel()
		h := harness{apptest.New(t, dialect, nil), t}
		dir, ents := h.Directory(t, "Corp", "Finance", "Payroll", "Root", "Orphan", "Mine")
		ids := map[string]*identities.Identity{}
		for _, n := range []string{"rita", "olga", "oscar", "owen", "ada", "adam", "helen", "nobody"} {
			ids[n] = h.Identity(t, n)
		}
		owners := h.Workgroup(t, "Payroll owners", ids["oscar"], ids["owen"])
		dirTok := h.token(access.ScopeDirectory)
		for name, policy := range map[string]string{
			"Finance": `{"approval":"owner","owner_identity_id":"` + ids["olga"].ID + `"}`,
			"Payroll": `{"approval":"owner_then_admin","owner_workgroup_id":"` + owners.ID + `"}`,
			"Root":    `{"approval":"admin"}`,
			"Orphan":  `{"approval":"owner","owner_identity_id":"` + ids["nobody"].ID + `"}`,
			"Mine":    `{"approval":"owner","owner_identity_id":"` + ids["rita"].ID + `"}`,
		} {
			h.json("PATCH", "/api/v1/entitlements/"+ents[name].ID, dirTok, policy, 200, nil)
		}
		for n, role := range map[string]string{"rita": access.RoleRequester, "olga": access.RoleRequester, "oscar": access.RoleRequester,
			"owen": access.RoleAdmin, "ada": access.RoleAdmin, "adam": access.RoleAdmin, "helen": access.RoleHelpdesk} {
			h.user(n, role)
		}
		tok := map[string]string{}
		for _, n := range []string{"rita", "olga", "oscar", "owen", "ada", "adam", "helen"} {
			tok[n] = h.tokenFor(n, access.ScopeRequests, access.ScopeTasks, access.ScopeApprovals, access.ScopeRead)
		}
		service := h.token(access.ScopeApprovals, access.ScopeRead)

		ask := func(who, ben, ent string) (runJSON, approvalJSON) {
			t.Helper()
			var run runJSON
			h.json("POST", "/api/v1/requests", tok[who], fmt.Sprintf(`{"type":"create_account","beneficiary_type":"identity","beneficiary_id":%q,
				"connector_id":%q,"entitlements":[%q],"justification":"month-end close"}`, ids[ben].ID, dir.ID, ents[ent].ID), 201, &run)
			if run.Status != requests.InstanceAwaitingApproval || run.ApprovalID == nil || run.JobsTotal != 0 {
				t.Fatalf("%s asks %s for %s: %+v, want awaiting approval without jobs", who, ent, ben, run)
			}
			var a approvalJSON
			h.json("GET", "/api/v1/approvals/"+*run.ApprovalID, tok[who], "", 200, &a)
			return run, a
		}
		decide := func(who, id, verb, comment string, want int) approvalJSON {
			t.Helper()
			var a approvalJSON
			status, _, got := h.do("POST", "/api/v1/approvals/"+id+"/"+verb, tok[who], "application/json", `{"comment":`+quote(comment)+`}`)
			if status != want {
				t.Fatalf("%s %s %s: %d, want %d: %s", who, verb, id, status, want, got)
			}
			_ = json.Unmarshal([]byte(got), &a)
			return a
		}
		waiting := func(who, view string) []string {
			t.Helper()
			var l struct{ Items []approvalJSON }
			h.json("GET", "/api/v1/approvals?view="+view, tok[who], "", 200, &l)
			var out []string
			for _, a := range l.Items {
				out = append(out, a.ID)
			}
			return out
		}
		asked := func(id, address string) int64 {
			var n int64
			if err := h.DB.Gorm.Model(&notifier.Notification{}).Where("approval_id = ? AND address = ? AND recipient_type = 'approver'", id, address).
				Count(&n).Error; err != nil {
				t.Fatal(err)
			}
			return n
		}

		// The owner approves; nobody approves their own request.
		run, a := ask("rita", "rita", "Finance")
		if len(a.Steps) != 1 || a.Steps[0].Kind != "owner" || a.Steps[0].Approver != "olga" || a.CanDecide || !strings.Contains(a.WhyNot, "own request") {
			t.Errorf("Finance approval as rita sees it: %+v", a)
		}
		if got := waiting("olga", "waiting"); len(got) != 1 || got[0] != a.ID {
			t.Errorf("olga waits for %v", got)
		}
		if got := waiting("rita", "waiting"); len(got) != 0 {
			t.Errorf("rita waits for her own request: %v", got)
		}
		if got := waiting("rita", "mine"); len(got) != 1 {
			t.Errorf("rita's requests: %v", got)
		}
		if asked(a.ID, "olga@example.test") != 1 || asked(a.ID, "ada@example.test") != 0 {
			t.Errorf("the owner, and only she, is asked by email")
		}
		decide("rita", a.ID, "approve", "", 403)
		h.json("GET", "/api/v1/approvals/"+a.ID, tok["oscar"], "", 404, nil) // not his to see
		decide("oscar", a.ID, "approve", "", 404)
		got := decide("olga", a.ID, "approve", "fine for the close", 200)
		if got.Status != requests.ApprovalApproved || got.ApprovedBy != "olga (owner of Finance)" || got.Steps[0].Comment != "fine for the close" {
			t.Errorf("after olga's approval: %+v", got)
		}
		decide("olga", a.ID, "approve", "", 409)
		done := h.WaitSettled(t, run.ID)
		if done.Status != requests.InstanceCompleted || done.JobsTotal != 2 {
			t.Errorf("approved run: %s", apptest.Describe(done))
		}
		if len(done.Jobs) > 0 && (len(done.Jobs[0].Events) == 0 || !strings.Contains(done.Jobs[0].Events[0].Message, "approved by olga (owner of Finance)")) {
			t.Errorf("the job's history does not say who approved: %+v", done.Jobs[0].Events)
		}
		h.waitMail(t, run.ID, "rita@example.test", "Approval:    approved by olga (owner of Finance)")

		// Owner, then admin, by two different people.
		run, a = ask("rita", "rita", "Payroll")
		if len(a.Steps) != 2 || a.Steps[0].Stage != 1 || a.Steps[1].Stage != 2 || a.Steps[1].Status != requests.StepWaiting {
			t.Fatalf("Payroll steps: %+v", a.Steps)
		}
		if asked(a.ID, "oscar@example.test") != 1 || asked(a.ID, "owen@example.test") != 1 || asked(a.ID, "ada@example.test") != 0 {
			t.Errorf("the owners' workgroup is asked first, and only it")
		}
		if e := decide("ada", a.ID, "approve", "", 403); e.ID != "" {
			t.Errorf("an admin approved the owners' step")
		}
		decide("owen", a.ID, "approve", "", 200)
		if slices.Contains(waiting("owen", "waiting"), a.ID) || !slices.Contains(waiting("ada", "waiting"), a.ID) {
			t.Errorf("the admin step waits for owen, who approved the first, or not for ada")
		}
		if asked(a.ID, "ada@example.test") != 1 || asked(a.ID, "adam@example.test") != 1 || asked(a.ID, "owen@example.test") != 2 {
			t.Errorf("the admins are not asked for the second step")
		}
		if status, _, body := h.do("POST", "/api/v1/approvals/"+a.ID+"/approve", tok["owen"], "", ""); status != 403 || !strings.Contains(body, "another approver decides the next") {
			t.Errorf("owen approved both steps: %d %s", status, body)
		}
		if got := decide("ada", a.ID, "approve", "", 200); got.Status != requests.ApprovalApproved || got.ApprovedBy != "owen (owner of Payroll), ada (admin)" {
			t.Errorf("after two steps: %+v", got)
		}
		if done := h.WaitSettled(t, run.ID); done.Status != requests.InstanceCompleted {
			t.Errorf("two-step run: %s", apptest.Describe(done))
		}

		// An admin denies; the requester is mailed.
		run, a = ask("rita", "rita", "Root")
		if got := decide("adam", a.ID, "deny", "use the break-glass account", 200); got.Status != requests.ApprovalDenied {
			t.Errorf("after the denial: %+v", got)
		}
		if done := h.WaitSettled(t, run.ID); done.Status != requests.InstanceDenied || done.JobsTotal != 0 || done.EndedAt == nil {
			t.Errorf("denied run: %s", apptest.Describe(done))
		}
		h.waitMail(t, run.ID, "rita@example.test", `denied by adam (admin): "use the break-glass account"`)

		// No eligible owner: the admins decide, and say why.
		for _, ent := range []string{"Orphan", "Mine"} {
			_, a = ask("rita", "rita", ent)
			if len(a.Steps) != 1 || a.Steps[0].Kind != "admin" || !strings.Contains(a.Steps[0].Reason, ent) {
				t.Errorf("%s: %+v, want one admin step that says why", ent, a.Steps)
			}
		}
		// The owner is the beneficiary: not hers to approve. An admin who
		// is the beneficiary may not approve either.
		_, a = ask("helen", "olga", "Finance")
		if a.Steps[0].Kind != "admin" {
			t.Errorf("a request for the owner is hers to approve: %+v", a.Steps)
		}
		_, a = ask("helen", "ada", "Root")
		if slices.Contains(waiting("ada", "waiting"), a.ID) || !slices.Contains(waiting("adam", "waiting"), a.ID) {
			t.Errorf("a request for ada waits for her, or not for adam")
		}
		if status, _, body := h.do("POST", "/api/v1/approvals/"+a.ID+"/approve", tok["ada"], "", ""); status != 403 || !strings.Contains(body, "for you") {
			t.Errorf("ada approved a request for herself: %d %s", status, body)
		}
		decide("adam", a.ID, "approve", "", 200)

		// Two admins approve at once: one decision counts, and the run's
		// jobs are written once.
		run, a = ask("rita", "rita", "Root")
		codes := make(chan int, 2)
		for _, who := range []string{"ada", "adam"} {
			go func(tk string) {
				req := httptest.NewRequest("POST", "/api/v1/approvals/"+a.ID+"/approve", nil)
				req.Header.Set("Authorization", "Bearer "+tk)
				resp, err := h.HTTP.Test(req, 10000)
				if err != nil {
					codes <- 0
					return
				}
				resp.Body.Close()
				codes <- resp.StatusCode
			}(tok[who])
		}
		if c1, c2 := <-codes, <-codes; c1+c2 != 200+409 {
			t.Errorf("two admins at once: %d and %d, want 200 and 409", c1, c2)
		}
		if done := h.WaitSettled(t, run.ID); done.JobsTotal != 2 || len(done.Jobs) != 2 {
			t.Errorf("run approved twice at once: %s", apptest.Describe(done))
		}

		// The requester withdraws; nobody else may.
		run, a = ask("rita", "rita", "Finance")
		decide("olga", a.ID, "withdraw", "", 403)
		if got := decide("rita", a.ID, "withdraw", "not needed after all", 200); got.Status != requests.ApprovalWithdrawn {
			t.Errorf("withdrawn: %+v", got)
		}
		decide("olga", a.ID, "approve", "", 409)
		if inst, _ := h.Requests.GetInstance(h.Ctx, run.ID); inst.Status != requests.InstanceWithdrawn {
			t.Errorf("withdrawn run: %s", inst.Status)
		}

		// Expiry.
		run, a = ask("rita", "rita", "Finance")
		if err := h.DB.Gorm.Model(&requests.Approval{}).Where("id = ?", a.ID).Update("expires_at", time.Now().UTC().Add(-time.Minute)).Error; err != nil {
			t.Fatal(err)
		}
		if n, err := h.Requests.ExpireApprovals(h.Ctx, time.Now().UTC()); err != nil || n != 1 {
			t.Fatalf("expired %d: %v", n, err)
		}
		if inst, _ := h.Requests.GetInstance(h.Ctx, run.ID); inst.Status != requests.InstanceExpired {
			t.Errorf("expired run: %s", inst.Status)
		}
		h.waitMail(t, run.ID, "rita@example.test", "expired without a decision")
		decide("olga", a.ID, "approve", "", 409)

		// A task's request is approved once; its runs start only then, and
		// carry the approval. A change of its request asks again.
		var task struct {
			ID         string  `json:"id"`
			ApprovalID *string `json:"approval_id"`
		}
		req := func(ent string) string {
			return fmt.Sprintf(`{"type":"create_account","beneficiary_type":"identity","beneficiary_id":%q,"connector_id":%q,"entitlements":[%q],"justification":"monthly"}`,
				ids["rita"].ID, dir.ID, ents[ent].ID)
		}
		h.json("POST", "/api/v1/tasks", tok["rita"], `{"name":"Finance for rita","request":`+req("Finance")+`}`, 201, &task)
		if task.ApprovalID == nil {
			t.Fatal("a requester's task that needs approval has none")
		}
		trig := h.token(access.ScopeTrigger)
		if status, _, body := h.do("POST", "/api/v1/tasks/"+task.ID+"/trigger", trig, "", ""); status != 409 || !strings.Contains(body, "awaits approval") {
			t.Errorf("trigger before approval: %d %s", status, body)
		}
		decide("olga", *task.ApprovalID, "approve", "", 200)
		for i := 0; i < 2; i++ {
			var r runJSON
			h.json("POST", "/api/v1/tasks/"+task.ID+"/trigger", trig, "", 201, &r)
			if r.ApprovalID == nil || *r.ApprovalID != *task.ApprovalID || r.Status == requests.InstanceAwaitingApproval {
				t.Errorf("task run %d: %+v", i, r)
			}
			h.WaitSettled(t, r.ID)
		}
		first := *task.ApprovalID
		h.json("PATCH", "/api/v1/tasks/"+task.ID, tok["rita"], `{"request":`+req("Root")+`}`, 200, &task)
		if task.ApprovalID == nil || *task.ApprovalID == first {
			t.Errorf("a changed request kept its approval: %v", task.ApprovalID)
		}
		if status, _, _ := h.do("POST", "/api/v1/tasks/"+task.ID+"/trigger", trig, "", ""); status != 409 {
			t.Errorf("trigger of a changed request before its approval: %d", status)
		}
		// Denied by an admin: the requester hears of it by email.
		decide("ada", *task.ApprovalID, "deny", "no standing access", 200)
		var n int64
		h.DB.Gorm.Model(&notifier.Notification{}).Where("approval_id = ? AND recipient_type = 'requester' AND address = 'rita@example.test'", *task.ApprovalID).Count(&n)
		if n != 1 {
			t.Errorf("%d emails of the task's denial to its requester, want 1", n)
		}

		// A client that acts as a service sees every approval and decides none.
		var all struct{ Total int64 }
		h.json("GET", "/api/v1/approvals?view=all", service, "", 200, &all)
		if all.Total < 10 {
			t.Errorf("service client lists %d approvals", all.Total)
		}
		h.json("GET", "/api/v1/approvals", service, "", 422, nil)
		h.json("GET", "/api/v1/approvals?view=all", tok["rita"], "", 403, nil)
		h.json("GET", "/api/v1/approvals?status=maybe", tok["olga"], "", 422, nil)
		h.json("POST", "/api/v1/approvals/not-a-uuid/approve", tok["olga"], "", 404, nil)
		if status, _, _ := h.do("POST", "/api/v1/approvals/"+first+"/approve", service, "", ""); status != 403 {
			t.Errorf("service client decided: %d", status)
		}
		if status, _, _ := h.do("GET", "/api/v1/approvals", h.token(access.ScopeRead), "", ""); status != 403 {
			t.Errorf("read scope lists approvals: %d", status)
		}
		decide("olga", first, "approve", strings.Repeat("é", requests.MaxComment+1), 422)

		for _, action := range []string{"approval.request", "approval.approve", "approval.deny", "approval.withdraw", "approval.expire"} {
			if h.audits(t, action) == 0 {
				t.Errorf("no %s in the audit trail", action)
			}
		}
		// A refused request is in the audit trail too.
		h.json("POST", "/api/v1/requests", tok["rita"], fmt.Sprintf(`{"type":"lock_account","beneficiary_type":"identity","beneficiary_id":%q,"connector_id":%q}`,
			ids["oscar"].ID, dir.ID), 403, nil)
		if h.audits(t, "request.refused") == 0 {
			t.Error("a refused request is not audited")
		}
	})
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// waitMail waits for the email of run to address and checks that its text
// holds want.
func (h harness) waitMail(t *testing.T, run, address, want string) {
	t.Helper()
	err := testwait.Poll(h.Ctx, 10*time.Second, func() error {
		items, _, err := h.Notifier.List(h.Ctx, notifier.ListOpts{InstanceID: run, Limit: 50})
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range items {
			if n.Address != address || n.RecipientType == notifier.RecipientApprover {
				continue
			}
			full, err := h.Notifier.Get(h.Ctx, n.ID)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(full.BodyText, want) {
				t.Errorf("email of %s to %s does not say %q:\n%s", run, address, want, full.BodyText)
			}
			return nil
		}
		return errors.New("not yet")
	})
	if err != nil {
		t.Errorf("no email of run %s to %s", run, address)
	}
}
