package requests_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/provisor/provisor/app/apptest"
	"github.com/provisor/provisor/database/dbtest"
	"github.com/provisor/provisor/identities"
	"github.com/provisor/provisor/requests"
)

// previewLine is a job as both a preview and a run have it.
func previewLine(number int, username, op, kind, ent, status string, revocation bool, dep int) string {
	return fmt.Sprintf("#%d %s %s %s %s %s rev=%v after=%d", number, username, op, kind, ent, status, revocation, dep)
}

// comparePreview fails the test unless the run has the preview's jobs, in
// its order, with the same dependencies, initial statuses and times.
func comparePreview(t *testing.T, name string, p *requests.Preview, inst *requests.Instance) {
	t.Helper()
	seq := map[string]int{}
	for _, j := range inst.Jobs {
		seq[j.ID] = j.Seq
	}
	var got, want []string
	for _, j := range p.Jobs {
		ent := ""
		if j.EntitlementID != nil {
			ent = j.EntitlementName + "=" + *j.EntitlementID
		}
		want = append(want, previewLine(j.Number, j.Username, j.Operation, j.Kind, ent, j.Status, j.Revocation, j.DependsOn))
	}
	for _, j := range inst.Jobs {
		ent, dep := "", 0
		if j.EntitlementID != nil {
			ent = j.EntitlementName + "=" + *j.EntitlementID
		}
		if j.DependsOn != nil {
			dep = seq[*j.DependsOn]
		}
		got = append(got, previewLine(j.Seq, j.Username, j.Operation, j.Kind, ent, j.Status, j.Revocation, dep))
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("%s: the run's jobs:\n%s\nthe preview's:\n%s", name, strings.Join(got, "\n"), strings.Join(want, "\n"))
		return
	}
	for k, j := range p.Jobs {
		r := inst.Jobs[k]
		if (j.RunAt == nil) != (r.RunAt == nil) || (j.RunAt != nil && r.RunAt.Sub(*j.RunAt).Abs() > time.Minute) {
			t.Errorf("%s: job #%d runs at %v in the run, %v in the preview", name, j.Number, r.RunAt, j.RunAt)
		}
		if j.Priority != r.Priority || j.ConnectorName != r.ConnectorName {
			t.Errorf("%s: job #%d is %s on %s in the run, %s on %s in the preview", name, j.Number, r.Priority, r.ConnectorName, j.Priority, j.ConnectorName)
		}
	}
	if (p.ExpiresAt == nil) != (inst.ExpiresAt == nil) {
		t.Errorf("%s: the run expires %v, the preview %v", name, inst.ExpiresAt, p.ExpiresAt)
	}
}

// compareOutcomes fails the test unless every job the preview predicted
// ended as predicted: a change completed with a change, "no change"
// completed with none.
func compareOutcomes(t *testing.T, name string, p *requests.Preview, inst *requests.Instance) {
	t.Helper()
	for k, j := range p.Jobs {
		r := inst.Jobs[k]
		var ok bool
		switch j.Prediction {
		case requests.PredictChange:
			ok = r.Status == requests.JobCompleted && !r.Unchanged
		case requests.PredictNoChange:
			ok = r.NoChange()
		default:
			continue // the portal knew too little to say
		}
		if !ok {
			t.Errorf("%s: job #%d %s %s %s predicted %s (%s), ended %s unchanged=%v (%s)", name, j.Number, j.Kind, j.Username,
				j.EntitlementName, j.Prediction, j.Reason, r.Status, r.Unchanged, r.Message)
		}
	}
}

// predictions lists a preview's predictions as "#1 change" lines.
func predictions(p *requests.Preview) string {
	var out []string
	for _, j := range p.Jobs {
		out = append(out, fmt.Sprintf("#%d %s %s %s", j.Number, j.Username, j.Kind, j.Prediction))
	}
	return strings.Join(out, "\n")
}

// runQueue counts the queue's entries a run makes: its connector jobs and
// its emails, not the sweeps and the prune the queue's leader inserts on
// its own schedule (the prune at start, while a test may be comparing).
func runQueue(t *testing.T, b *apptest.Bundle) int64 {
	t.Helper()
	var n int64
	if err := b.DB.Gorm.Table("river_job").Where("kind IN ?", []string{"connector_job", "notification"}).Count(&n).Error; err != nil {
		t.Fatalf("count river_job: %v", err)
	}
	return n
}

// A preview is the run: for every request type, for a person and for a
// workgroup, with and without a duration, the run writes the jobs the
// preview listed, in order, and each job the preview predicted ends as
// predicted (revocations too, once Force End runs them). Nothing is
// written by a preview.
func TestPreviewIsTheRun(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect string) {
		t.Parallel()
		b := apptest.New(t, dialect, nil)
		dir, ents := b.Directory(t, "Dir", "VPN", "Wiki", "Mail")
		alice, bob, carol, dave := b.Identity(t, "alice"), b.Identity(t, "bob"), b.Identity(t, "carol"), b.Identity(t, "dave")
		team := b.Workgroup(t, "Team", alice, bob, carol)
		all := b.Workgroup(t, "All", alice, bob, carol, dave)
		vpn, wiki, mail := ents["VPN"].ID, ents["Wiki"].ID, ents["Mail"].ID
		person := func(typ requests.Type, who *identities.Identity, duration string, es ...string) requests.Request {
			return requests.Request{Type: typ, BeneficiaryType: requests.BeneficiaryIdentity, BeneficiaryID: who.ID,
				ConnectorID: dir.ID, Entitlements: es, Duration: duration, Justification: "test", Priority: requests.High}
		}
		group := func(typ requests.Type, wg *identities.Workgroup, duration string, es ...string) requests.Request {
			return requests.Request{Type: typ, BeneficiaryType: requests.BeneficiaryWorkgroup, BeneficiaryID: wg.ID,
				ConnectorID: dir.ID, Entitlements: es, Duration: duration, Justification: "test"}
		}
		cases := []struct {
			name string
			req  requests.Request
			// want lists the predictions, when the case checks them.
			want string
		}{
			{"create for a person", person(requests.CreateAccount, alice, "", vpn), `
#1 alice Directory.CreateAccount change
#2 alice Directory.AddToGroup change`},
			{"create for a workgroup, one account there", group(requests.CreateAccount, team, "", vpn, wiki), `
#1 alice Directory.CreateAccount no_change
#2 alice Directory.AddToGroup no_change
#3 alice Directory.AddToGroup change
#4 bob Directory.CreateAccount change
#5 bob Directory.AddToGroup change
#6 bob Directory.AddToGroup change
#7 carol Directory.CreateAccount change
#8 carol Directory.AddToGroup change
#9 carol Directory.AddToGroup change`},
			{"time-bound grant to a person, one held", person(requests.AddEntitlements, alice, "1h", vpn, mail), `
#1 alice Directory.AddToGroup no_change
#2 alice Directory.AddToGroup change
#3 alice Directory.RemoveFromGroup change
#4 alice Directory.RemoveFromGroup change`},
			{"remove from a workgroup, one without an account", group(requests.RemoveEntitlements, all, "", wiki), `
#1 alice Directory.RemoveFromGroup change
#2 bob Directory.RemoveFromGroup change
#3 carol Directory.RemoveFromGroup change
#4 dave Directory.RemoveFromGroup unknown`},
			{"remove from a person who lost it", person(requests.RemoveEntitlements, bob, "", wiki, vpn), `
#1 bob Directory.RemoveFromGroup no_change
#2 bob Directory.RemoveFromGroup change`},
			{"lock a workgroup", group(requests.LockAccount, team, ""), `
#1 alice Account.Disable change
#2 bob Account.Disable change
#3 carol Account.Disable change`},
			{"lock a person already locked", person(requests.LockAccount, alice, ""), `
#1 alice Account.Disable no_change`},
			{"unlock a person", person(requests.UnlockAccount, alice, ""), `
#1 alice Account.Enable change`},
			{"unlock a workgroup, one unlocked", group(requests.UnlockAccount, all, ""), `
#1 alice Account.Enable no_change
#2 bob Account.Enable change
#3 carol Account.Enable change
#4 dave Account.Enable unknown`},
			{"time-bound grant to a workgroup", group(requests.AddEntitlements, team, "2h", vpn), `
#1 alice Directory.AddToGroup change
#2 alice Directory.RemoveFromGroup change
#3 bob Directory.AddToGroup change
#4 bob Directory.RemoveFromGroup change
#5 carol Directory.AddToGroup no_change
#6 carol Directory.RemoveFromGroup change`},
			{"time-bound create for a person", person(requests.CreateAccount, dave, "8h", mail), `
#1 dave Directory.CreateAccount change
#2 dave Directory.AddToGroup change
#3 dave Directory.DeleteAccount change`},
			{"delete a person", person(requests.DeleteAccount, bob, ""), `
#1 bob Directory.DeleteAccount change`},
			{"delete a workgroup, one deleted already", group(requests.DeleteAccount, all, ""), `
#1 alice Directory.DeleteAccount change
#2 bob Directory.DeleteAccount no_change
#3 carol Directory.DeleteAccount change
#4 dave Directory.DeleteAccount no_change`},
			{"time-bound create for a workgroup", group(requests.CreateAccount, team, "30d"), `
#1 alice Directory.CreateAccount change
#2 alice Directory.DeleteAccount change
#3 bob Directory.CreateAccount change
#4 bob Directory.DeleteAccount change
#5 carol Directory.CreateAccount change
#6 carol Directory.DeleteAccount change`},
		}
		for _, c := range cases {
			before := []int64{count(t, b, "request_instances"), count(t, b, "connector_jobs"), runQueue(t, b)}
			p, err := b.Requests.Preview(b.Ctx, c.req, requests.PreviewOpts{})
			if err != nil {
				t.Fatalf("%s: preview: %v", c.name, err)
			}
			after := []int64{count(t, b, "request_instances"), count(t, b, "connector_jobs"), runQueue(t, b)}
			if fmt.Sprint(before) != fmt.Sprint(after) {
				t.Errorf("%s: a preview wrote rows: runs, jobs, queue %v before, %v after", c.name, before, after)
			}
			if got := predictions(p); c.want != "" && got != strings.TrimSpace(c.want) {
				t.Errorf("%s: predictions:\n%s\nwant:\n%s", c.name, got, strings.TrimSpace(c.want))
			}
			inst := b.Submit(t, c.req)
			comparePreview(t, c.name, p, inst)
			done := b.WaitSettled(t, inst.ID)
			if done.Status == requests.InstanceActive {
				if _, err := b.Requests.ForceEnd(b.Ctx, inst.ID, "tester"); err != nil {
					t.Fatalf("%s: force end: %v", c.name, err)
				}
				done = b.Wait(t, inst.ID, 30*time.Second, func(i *requests.Instance) bool { return requests.Final(i.Status) })
			}
			compareOutcomes(t, c.name, p, done)
			// The run counts its no-change jobs apart, as the preview did.
			if p.Unknown == 0 && done.JobsUnchanged != p.NoChanges {
				t.Errorf("%s: the run counts %d jobs with no change, the preview %d", c.name, done.JobsUnchanged, p.NoChanges)
			}
		}
	})
}

// A preview is refused as the submission would be, for the same reasons,
// and names the approvals a submission would wait for.
func TestPreviewAppliesTheRequestPolicy(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect string) {
		t.Parallel()
		b := apptest.New(t, dialect, &apptest.Options{NoStart: true})
		dir, ents := b.Directory(t, "Dir", "VPN")
		rita, other := b.Identity(t, "rita"), b.Identity(t, "other")
		who := requests.Requester{Username: "rita", IdentityID: rita.ID}
		req := requests.Request{Type: requests.AddEntitlements, BeneficiaryType: requests.BeneficiaryIdentity, BeneficiaryID: other.ID,
			ConnectorID: dir.ID, Entitlements: []string{ents["VPN"].ID}, Justification: "test"}
		_, previewErr := b.Requests.Preview(b.Ctx, req, requests.PreviewOpts{By: &who})
		_, submitErr := b.Requests.Submit(b.Ctx, req, requests.StartOpts{Trigger: requests.TriggerSubmission, Actor: "rita", By: &who})
		var pp, sp *requests.PolicyError
		if !errors.As(previewErr, &pp) || !errors.As(submitErr, &sp) {
			t.Fatalf("preview: %v; submit: %v; want both refused by the policy", previewErr, submitErr)
		}
		if fmt.Sprint(pp.Refusals) != fmt.Sprint(sp.Refusals) {
			t.Errorf("preview refusals %v, submit refusals %v", pp.Refusals, sp.Refusals)
		}
		// For herself, rita may: the preview shows the jobs.
		req.BeneficiaryID = rita.ID
		p, err := b.Requests.Preview(b.Ctx, req, requests.PreviewOpts{By: &who})
		if err != nil || len(p.Jobs) != 1 || p.AwaitsApproval || p.Jobs[0].Prediction != requests.PredictUnknown {
			t.Fatalf("preview for herself: %+v, %v", p, err)
		}
		// An invalid request is invalid in a preview too.
		req.Entitlements = nil
		if _, err := b.Requests.Preview(b.Ctx, req, requests.PreviewOpts{By: &who}); requests.FieldMap(err)["entitlements"] == "" {
			t.Errorf("preview without entitlements: %v, want a validation error", err)
		}
	})
}
