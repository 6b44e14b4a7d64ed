package tasks_test

import (
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/provisor/provisor/app/apptest"
	"github.com/provisor/provisor/database/dbtest"
	"github.com/provisor/provisor/identities"
	"github.com/provisor/provisor/requests"
	"github.com/provisor/provisor/tasks"
)

// Notification recipients are checked when a task is saved: a bad one is
// reported by its position, not skipped when the run ends.
func TestNotifyRecipientsCheckedOnSave(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect string) {
		t.Parallel()
		b := apptest.New(t, dialect, &apptest.Options{NoStart: true})
		dir, _ := b.Directory(t, "Dir")
		alice := b.Identity(t, "alice")
		noMail, err := b.Identities.CreateIdentity(b.Ctx, identities.IdentityInput{Username: "nomail"})
		if err != nil {
			t.Fatal(err)
		}
		req := &requests.Request{Type: requests.LockAccount, BeneficiaryType: "identity", BeneficiaryID: alice.ID, ConnectorID: dir.ID, Justification: "x"}
		unknown := uuid.NewString()
		_, err = b.Tasks.Create(b.Ctx, tasks.Input{Name: str("Bad recipients"), Request: req, Notify: &tasks.Notify{Enabled: true, When: "failure",
			Recipients: []string{alice.ID, noMail.ID, unknown, "manager", "requester", "requester", alice.ID, "not-an-id"}}}, "admin")
		got := requests.FieldMap(err)
		want := map[string]string{
			"notify.recipients[1]": "identity nomail has no email address",
			"notify.recipients[2]": "no identity with id " + unknown,
			"notify.recipients[3]": `"manager" is neither an identity id nor requester or beneficiary`,
			"notify.recipients[5]": "listed twice (also recipients[4])",
			"notify.recipients[6]": "listed twice (also recipients[0])",
			"notify.recipients[7]": `"not-an-id" is neither`,
		}
		for f, msg := range want {
			if !strings.Contains(got[f], msg) {
				t.Errorf("%s = %q, want %q", f, got[f], msg)
			}
		}
		for _, ok := range []string{"notify.recipients[0]", "notify.recipients[4]"} {
			if got[ok] != "" {
				t.Errorf("%s refused: %s", ok, got[ok])
			}
		}
		if _, err := b.Tasks.Create(b.Ctx, tasks.Input{Name: str("Nobody"), Request: req, Notify: &tasks.Notify{Enabled: true}}, "admin"); requests.FieldMap(err)["notify.recipients"] == "" {
			t.Errorf("notifications on without recipients: %v", err)
		}

		task, err := b.Tasks.Create(b.Ctx, tasks.Input{Name: str("Good"), Request: req,
			Notify: &tasks.Notify{Enabled: true, Recipients: []string{alice.ID, "requester", "beneficiary"}, When: "failure"}}, "admin")
		if err != nil {
			t.Fatal(err)
		}
		if n := task.Notify; !n.Enabled || n.When != "failure" || len(n.Recipients) != 3 {
			t.Errorf("stored settings %+v", n)
		}
		// An update that changes the recipients is checked too.
		if _, err := b.Tasks.Update(b.Ctx, task.ID, tasks.Input{Notify: &tasks.Notify{Enabled: true, Recipients: []string{noMail.ID}}}, "admin"); requests.FieldMap(err)["notify.recipients[0]"] == "" {
			t.Errorf("update to a recipient without email: %v", err)
		}
	})
}
