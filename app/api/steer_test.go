package api_test

import (
	"strings"
	"testing"

	"github.com/provisor/provisor/access"
	"github.com/provisor/provisor/app/apptest"
	"github.com/provisor/provisor/database/dbtest"
	"github.com/provisor/provisor/requests"
)

// statuses lists a run's job statuses in order.
func statuses(inst *requests.Instance) string {
	s := make([]string, len(inst.Jobs))
	for i, j := range inst.Jobs {
		s[i] = j.Status
	}
	return strings.Join(s, ",")
}

// A revocation ends time-bound access: it is never canceled, neither
// waiting for the expiry nor after Force End made it pending, neither alone
// nor with the rest of its run.
func TestRevocationsCannotBeCanceled(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect string) {
		t.Parallel()
		// No workers: the jobs stay pending for as long as the test needs.
		h := harness{apptest.New(t, dialect, &apptest.Options{NoStart: true}), t}
		dir, ents := h.Directory(t, "Dir", "VPN")
		alice := h.Identity(t, "alice")
		inst := h.Submit(t, requests.Request{Type: requests.CreateAccount, BeneficiaryType: "identity", BeneficiaryID: alice.ID,
			ConnectorID: dir.ID, Entitlements: []string{ents["VPN"].ID}, Duration: "8h"})
		rev := inst.Jobs[2]
		if !rev.Revocation || rev.Status != requests.JobScheduled {
			t.Fatalf("third job is not a scheduled revocation: %s", apptest.Describe(inst))
		}
		tok := h.token(access.ScopeRead, access.ScopeJobs)
		cancelJob := "/api/v1/connector-jobs/" + rev.ID + "/cancel"
		if status, _, body := h.do("POST", cancelJob, tok, "", ""); status != 409 || !strings.Contains(body, "Force End") {
			t.Errorf("cancel scheduled revocation = %d %s", status, body)
		}

		var out requests.Instance
		h.json("POST", "/api/v1/request-instances/"+inst.ID+"/force-end", tok, "", 200, &out)
		if got := statuses(&out); got != "pending,pending,pending" {
			t.Fatalf("after Force End: %s", got)
		}
		if status, _, body := h.do("POST", cancelJob, tok, "", ""); status != 409 || !strings.Contains(body, "time-bound access") {
			t.Errorf("cancel revocation after Force End = %d %s", status, body)
		}
		// Cancel-run cancels the others and leaves the revocation.
		h.json("POST", "/api/v1/request-instances/"+inst.ID+"/cancel", tok, "", 200, &out)
		if got := statuses(&out); got != "canceled,canceled,pending" {
			t.Errorf("after cancel-run: %s", got)
		}
		if status, _, body := h.do("POST", "/api/v1/request-instances/"+inst.ID+"/cancel", tok, "", ""); status != 409 {
			t.Errorf("cancel-run with only the revocation left = %d %s", status, body)
		}
		h.json("GET", "/api/v1/request-instances/"+inst.ID, tok, "", 200, &out)
		if got := statuses(&out); got != "canceled,canceled,pending" || out.Status == requests.InstanceCanceled {
			t.Errorf("in the end: %s %s", out.Status, got)
		}
	})
}
