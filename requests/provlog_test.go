package requests_test

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/provisor/provisor/app/apptest"
	"github.com/provisor/provisor/database/dbtest"
	"github.com/provisor/provisor/identities"
	"github.com/provisor/provisor/provlog"
	"github.com/provisor/provisor/requests"
)

// logOf returns the provisioning log entries of a run, oldest first.
func logOf(t *testing.T, b *apptest.Bundle, instanceID string) []provlog.Entry {
	t.Helper()
	got, _, err := b.Logs.Search(b.Ctx, provlog.Filter{InstanceID: instanceID, Limit: provlog.MaxLimit})
	if err != nil {
		t.Fatal(err)
	}
	sort.SliceStable(got, func(i, j int) bool {
		if got[i].JobSeq != got[j].JobSeq {
			return got[i].JobSeq < got[j].JobSeq
		}
		return got[i].At.Before(got[j].At)
	})
	return got
}

func summary(es []provlog.Entry) string {
	var lines []string
	for _, e := range es {
		lines = append(lines, fmt.Sprintf("#%d %s %s %s attempt %d %s %s", e.JobSeq, e.Action, e.TargetUsername, e.EntitlementExternalID,
			e.Attempt, e.Status, e.ErrorClass))
	}
	return strings.Join(lines, "\n")
}

// Every outcome of a job on the built-in directory is logged once per
// attempt, with what caused it, the source identity, the target and its
// steps and changes: success, no change, a permanent failure (a lookup that
// finds no account), and a job skipped because the job it needs failed.
func TestProvisioningLogOfEveryOutcomeOnTheDirectory(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect string) {
		t.Parallel()
		b := apptest.New(t, dialect, nil)
		dir, ents := b.Directory(t, "Dir", "VPN")
		alice, err := b.Identities.CreateIdentity(b.Ctx, identities.IdentityInput{Username: "alice", DisplayName: "Alice Liddell",
			Email: "Alice@Example.test"})
		if err != nil {
			t.Fatal(err)
		}
		inst := b.WaitSettled(t, b.Submit(t, requests.Request{Type: requests.CreateAccount, BeneficiaryType: "identity",
			BeneficiaryID: alice.ID, ConnectorID: dir.ID, Entitlements: []string{ents["VPN"].ID}}).ID)
		got := logOf(t, b, inst.ID)
		want := "#1 create alice  attempt 1 success \n#2 grant alice VPN attempt 1 success "
		if summary(got) != want {
			t.Fatalf("entries:\n%s\nwant:\n%s", summary(got), want)
		}
		e := got[1]
		if e.IdentityName != "Alice Liddell" || e.IdentityEmail != "Alice@Example.test" || e.ConnectorName != "Dir" ||
			e.ConnectorType != "internal" || e.InitiatedBy == "" || e.Trigger == "" || *e.InstanceID != inst.ID ||
			*e.JobID != inst.Jobs[1].ID || e.Kind != inst.Jobs[1].Kind || e.TargetExternalID != "alice" {
			t.Errorf("grant entry %+v", e)
		}
		if len(e.Steps) == 0 || e.Steps[0].Name != "modify" || len(e.Changes) != 1 || e.Changes[0].New != "true" {
			t.Errorf("grant steps %+v changes %+v", e.Steps, e.Changes)
		}
		if c := got[0].Changes; len(c) != 3 || c[0].Name != "username" || c[0].New != "alice" {
			t.Errorf("create changes %+v", c)
		}
		if got[0].At.IsZero() || got[0].DurationMS < 0 || got[0].At.After(time.Now()) {
			t.Errorf("create timing %v %d ms", got[0].At, got[0].DurationMS)
		}

		// The same grant again changes nothing; lock then logs its change.
		again := b.WaitSettled(t, b.Submit(t, requests.Request{Type: requests.AddEntitlements, BeneficiaryType: "identity",
			BeneficiaryID: alice.ID, ConnectorID: dir.ID, Entitlements: []string{ents["VPN"].ID}}).ID)
		if s := summary(logOf(t, b, again.ID)); s != "#1 grant alice VPN attempt 1 no_change " {
			t.Errorf("grant again: %s", s)
		}
		lock := b.WaitSettled(t, b.Submit(t, requests.Request{Type: requests.LockAccount, BeneficiaryType: "identity",
			BeneficiaryID: alice.ID, ConnectorID: dir.ID}).ID)
		if l := logOf(t, b, lock.ID); len(l) != 1 || l[0].Action != provlog.ActionDisable || l[0].Status != provlog.StatusSuccess ||
			len(l[0].Changes) != 1 || l[0].Changes[0].Old != "false" || l[0].Changes[0].New != "true" {
			t.Errorf("lock entries %+v", l)
		}

		// A grant to someone without an account fails at the lookup, and a
		// workgroup's create that fails skips the grant that needs it.
		bob := b.Identity(t, "bob")
		failed := b.WaitSettled(t, b.Submit(t, requests.Request{Type: requests.AddEntitlements, BeneficiaryType: "identity",
			BeneficiaryID: bob.ID, ConnectorID: dir.ID, Entitlements: []string{ents["VPN"].ID}}).ID)
		fl := logOf(t, b, failed.ID)
		if summary(fl) != "#1 grant bob VPN attempt 1 failure permanent" || !strings.Contains(fl[0].ErrorMessage, "no such account: bob") ||
			fl[0].Recommendation == "" {
			t.Errorf("failed grant: %s %+v", summary(fl), fl)
		}
		if st := fl[0].Steps; len(st) == 0 || st[len(st)-1].Name != "lookup" || !st[len(st)-1].Failed {
			t.Errorf("failed grant steps %+v", st)
		}
	})
}

// A job whose predecessor failed is logged as skipped; a transient failure
// is logged for each attempt, and the retry that succeeds after it.
func TestProvisioningLogOfRetriesAndSkips(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect string) {
		t.Parallel()
		f := newFlaky()
		f.failures["once"] = 1
		f.failures["throttled"] = 1
		b, rec, fents := flakyBundle(t, dialect, f, "--max-attempts", "3")
		denied := b.Identity(t, "denied")
		run := b.WaitSettled(t, b.Submit(t, requests.Request{Type: requests.CreateAccount, BeneficiaryType: "identity", BeneficiaryID: denied.ID,
			ConnectorID: rec.ID, Entitlements: []string{fents["G"].ID}}).ID)
		if s := summary(logOf(t, b, run.ID)); s != "#1 create denied  attempt 1 failure permanent\n#2 grant denied G attempt 0 skipped " {
			t.Errorf("denied:\n%s", s)
		}
		once := b.Identity(t, "once")
		run = b.WaitSettled(t, b.Submit(t, requests.Request{Type: requests.LockAccount, BeneficiaryType: "identity", BeneficiaryID: once.ID,
			ConnectorID: rec.ID}).ID)
		if s := summary(logOf(t, b, run.ID)); s != "#1 disable once  attempt 1 failure transient\n#1 disable once  attempt 2 success " {
			t.Errorf("once:\n%s", s)
		}
		th := b.Identity(t, "throttled")
		run = b.WaitSettled(t, b.Submit(t, requests.Request{Type: requests.LockAccount, BeneficiaryType: "identity", BeneficiaryID: th.ID,
			ConnectorID: rec.ID}).ID)
		if s := summary(logOf(t, b, run.ID)); s != "#1 disable throttled  attempt 1 warning transient\n#1 disable throttled  attempt 1 success " &&
			s != "#1 disable throttled  attempt 1 warning transient\n#1 disable throttled  attempt 2 success " {
			t.Errorf("throttled:\n%s", s)
		}
	})
}
