package requests_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"gorm.io/gorm"

	"github.com/provisor/provisor/app/apptest"
	"github.com/provisor/provisor/audit"
	"github.com/provisor/provisor/connectors"
	"github.com/provisor/provisor/connectors/configured"
	"github.com/provisor/provisor/database/dbtest"
	"github.com/provisor/provisor/identities"
	"github.com/provisor/provisor/internal/testwait"
	"github.com/provisor/provisor/requests"
)

func count(t *testing.T, b *apptest.Bundle, table string) int64 {
	t.Helper()
	var n int64
	if err := b.DB.Gorm.Table(table).Count(&n).Error; err != nil {
		t.Fatalf("count %s: %v", table, err)
	}
	return n
}

func TestInvalidRequestNamesEveryFieldAndWritesNothing(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect string) {
		t.Parallel()
		b := apptest.New(t, dialect, &apptest.Options{NoStart: true})
		dir, ents := b.Directory(t, "Dir", "VPN")
		other, otherEnts := b.Directory(t, "Other", "Wiki")
		_ = other
		alice := b.Identity(t, "alice")
		empty := b.Workgroup(t, "Empty")

		cases := []struct {
			name string
			req  requests.Request
			want []string
		}{
			{"everything missing", requests.Request{}, []string{"type", "beneficiary_type", "beneficiary_id", "connector_id", "justification"}},
			{"unknown ids", requests.Request{Type: requests.LockAccount, BeneficiaryType: "identity", BeneficiaryID: "9b3f0000-0000-4000-8000-000000000000",
				ConnectorID: "nope", Justification: "x"}, []string{"beneficiary_id", "connector_id"}},
			{"grant without entitlements", requests.Request{Type: requests.AddEntitlements, BeneficiaryType: "identity", BeneficiaryID: alice.ID,
				ConnectorID: dir.ID, Justification: "x"}, []string{"entitlements"}},
			{"entitlement of another connector, listed twice", requests.Request{Type: requests.AddEntitlements, BeneficiaryType: "identity",
				BeneficiaryID: alice.ID, ConnectorID: dir.ID, Justification: "x",
				Entitlements: []string{otherEnts["Wiki"].ID, ents["VPN"].ID, ents["VPN"].ID}}, []string{"entitlements[0]", "entitlements[2]"}},
			{"lock takes no entitlements nor duration", requests.Request{Type: requests.LockAccount, BeneficiaryType: "identity", BeneficiaryID: alice.ID,
				ConnectorID: dir.ID, Justification: "x", Entitlements: []string{ents["VPN"].ID}, Duration: "8h"}, []string{"entitlements", "duration"}},
			{"bad duration and priority", requests.Request{Type: requests.AddEntitlements, BeneficiaryType: "identity", BeneficiaryID: alice.ID,
				ConnectorID: dir.ID, Justification: "x", Entitlements: []string{ents["VPN"].ID}, Duration: "forever", Priority: "urgent"}, []string{"duration", "priority"}},
			{"duration too long", requests.Request{Type: requests.AddEntitlements, BeneficiaryType: "identity", BeneficiaryID: alice.ID,
				ConnectorID: dir.ID, Justification: "x", Entitlements: []string{ents["VPN"].ID}, Duration: "400d"}, []string{"duration"}},
			{"empty workgroup", requests.Request{Type: requests.LockAccount, BeneficiaryType: "workgroup", BeneficiaryID: empty.ID,
				ConnectorID: dir.ID, Justification: "x"}, []string{"beneficiary_id"}},
		}
		for _, c := range cases {
			_, err := b.Requests.Submit(b.Ctx, c.req, requests.StartOpts{Trigger: requests.TriggerSubmission, Actor: "tester"})
			got := requests.FieldMap(err)
			if got == nil {
				t.Errorf("%s: err = %v, want a validation error", c.name, err)
				continue
			}
			for _, f := range c.want {
				if got[f] == "" {
					t.Errorf("%s: no message for %s; got %v", c.name, f, got)
				}
			}
			if len(got) != len(c.want) {
				t.Errorf("%s: got fields %v, want exactly %v", c.name, got, c.want)
			}
		}
		for _, table := range []string{"request_instances", "connector_jobs", "job_events", "river_job"} {
			if n := count(t, b, table); n != 0 {
				t.Errorf("%s has %d rows after invalid requests, want 0", table, n)
			}
		}
	})
}

func TestRollbackLeavesNeitherInstanceNorQueueEntries(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect string) {
		t.Parallel()
		b := apptest.New(t, dialect, &apptest.Options{NoStart: true})
		dir, ents := b.Directory(t, "Dir", "VPN", "Wiki")
		alice := b.Identity(t, "alice")
		boom := errors.New("boom")
		err := b.DB.InTx(b.Ctx, func(tx *gorm.DB) error {
			inst, err := b.Requests.StartTx(b.Ctx, tx, requests.Request{Type: requests.CreateAccount, BeneficiaryType: "identity",
				BeneficiaryID: alice.ID, ConnectorID: dir.ID, Justification: "x",
				Entitlements: []string{ents["VPN"].ID, ents["Wiki"].ID}}, requests.StartOpts{Trigger: requests.TriggerAPI, Actor: "t"})
			if err != nil {
				return err
			}
			if len(inst.Jobs) != 3 {
				t.Errorf("jobs = %d, want 3", len(inst.Jobs))
			}
			// Inside the transaction, the queue entry of the job set exists.
			var n int64
			if err := tx.Table("river_job").Count(&n).Error; err != nil {
				return err
			}
			if n != 1 {
				t.Errorf("river_job inside the transaction = %d, want 1 (one set of three jobs)", n)
			}
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatalf("InTx = %v, want boom", err)
		}
		for _, table := range []string{"request_instances", "connector_jobs", "job_events", "river_job", "audit_events"} {
			if table == "audit_events" {
				continue // the factories above wrote none, but keep the list honest
			}
			if n := count(t, b, table); n != 0 {
				t.Errorf("%s has %d rows after rollback, want 0", table, n)
			}
		}
		// And a commit writes both.
		inst := b.Submit(t, requests.Request{Type: requests.LockAccount, BeneficiaryType: "identity", BeneficiaryID: alice.ID, ConnectorID: dir.ID})
		if n := count(t, b, "river_job"); n != 1 {
			t.Errorf("river_job after commit = %d, want 1", n)
		}
		if inst.Jobs[0].QueueJobID == nil {
			t.Error("job has no queue id")
		}
	})
}

func TestExpansionOrderDependenciesAndRevocations(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect string) {
		t.Parallel()
		b := apptest.New(t, dialect, &apptest.Options{NoStart: true})
		dir, ents := b.Directory(t, "Dir", "VPN", "Wiki")
		carol, alice, bob := b.Identity(t, "carol"), b.Identity(t, "alice"), b.Identity(t, "bob")
		wg := b.Workgroup(t, "Team", carol, alice, bob)
		inst := b.Submit(t, requests.Request{Type: requests.CreateAccount, BeneficiaryType: "workgroup", BeneficiaryID: wg.ID,
			ConnectorID: dir.ID, Entitlements: []string{ents["VPN"].ID, ents["Wiki"].ID}, Duration: "8h", Priority: requests.High})
		if inst.BeneficiaryName != "Team" || inst.Status != requests.InstancePending {
			t.Errorf("instance = %+v", inst)
		}
		var got []string
		for _, j := range inst.Jobs {
			dep := ""
			if j.DependsOn != nil {
				for _, o := range inst.Jobs {
					if o.ID == *j.DependsOn {
						dep = fmt.Sprintf(" after #%d", o.Seq)
					}
				}
			}
			got = append(got, fmt.Sprintf("#%d %s %s %s %s%s", j.Seq, j.Username, j.Kind, j.EntitlementName, j.Status, dep))
			if j.Priority != requests.High {
				t.Errorf("job #%d priority %s, want high", j.Seq, j.Priority)
			}
		}
		want := []string{
			"#1 alice Directory.CreateAccount  pending",
			"#2 alice Directory.AddToGroup VPN pending after #1",
			"#3 alice Directory.AddToGroup Wiki pending after #1",
			"#4 alice Directory.DeleteAccount  scheduled",
			"#5 bob Directory.CreateAccount  pending",
			"#6 bob Directory.AddToGroup VPN pending after #5",
			"#7 bob Directory.AddToGroup Wiki pending after #5",
			"#8 bob Directory.DeleteAccount  scheduled",
			"#9 carol Directory.CreateAccount  pending",
			"#10 carol Directory.AddToGroup VPN pending after #9",
			"#11 carol Directory.AddToGroup Wiki pending after #9",
			"#12 carol Directory.DeleteAccount  scheduled",
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("jobs:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		rev := inst.Jobs[3]
		if rev.RunAt == nil || inst.ExpiresAt == nil || !rev.RunAt.Equal(*inst.ExpiresAt) {
			t.Errorf("revocation run_at %v, instance expires %v", rev.RunAt, inst.ExpiresAt)
		}
		if d := time.Until(*inst.ExpiresAt); d < 7*time.Hour+59*time.Minute || d > 8*time.Hour {
			t.Errorf("expiry in %s, want 8h", d)
		}
		// The queue holds one entry per job set: each member's jobs, to run
		// now in order, and each member's revocation, for later.
		var rows []struct {
			ID          int64
			State       string
			Priority    int
			ScheduledAt time.Time
		}
		if err := b.DB.Gorm.Table("river_job").Select("id, state, priority, scheduled_at").Order("id").Scan(&rows).Error; err != nil {
			t.Fatal(err)
		}
		if len(rows) != 6 {
			t.Fatalf("river jobs = %d, want 6", len(rows))
		}
		for k, r := range rows {
			want := "available"
			if k%2 == 1 {
				want = "scheduled"
				if d := r.ScheduledAt.Sub(*inst.ExpiresAt); d < -time.Second || d > time.Second {
					t.Errorf("revocation entry %d scheduled at %s, want the expiry %s", k, r.ScheduledAt, inst.ExpiresAt)
				}
			}
			if r.State != want || r.Priority != 2 {
				t.Errorf("queue entry %d = %+v, want %s with priority 2", k, r, want)
			}
		}
		for _, j := range inst.Jobs {
			want := rows[(j.Seq-1)/4*2].ID
			if j.Revocation {
				want = rows[(j.Seq-1)/4*2+1].ID
			}
			if j.QueueJobID == nil || *j.QueueJobID != want {
				t.Errorf("job #%d is in queue entry %v, want %d", j.Seq, j.QueueJobID, want)
			}
		}
		// Every job starts its history.
		full, err := b.Requests.GetInstance(b.Ctx, inst.ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, j := range full.Jobs {
			if len(j.Events) != 1 || j.Events[0].Status != j.Status {
				t.Errorf("job #%d history %+v", j.Seq, j.Events)
			}
		}
		if !strings.Contains(full.Jobs[1].Events[0].Message, "waits for job #1") {
			t.Errorf("dependent's first event = %q", full.Jobs[1].Events[0].Message)
		}
	})
}

func TestRunCompletesAndRecordsAccessIdempotently(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect string) {
		t.Parallel()
		b := apptest.New(t, dialect, nil)
		dir, ents := b.Directory(t, "Dir", "VPN", "Wiki")
		alice := b.Identity(t, "alice")
		inst := b.Submit(t, requests.Request{Type: requests.CreateAccount, BeneficiaryType: "identity", BeneficiaryID: alice.ID,
			ConnectorID: dir.ID, Entitlements: []string{ents["VPN"].ID}})
		inst = b.WaitSettled(t, inst.ID)
		if inst.Status != requests.InstanceCompleted || inst.JobsDone != 2 || inst.EndedAt == nil {
			t.Fatalf("instance %s %d/%d: %s", inst.Status, inst.JobsDone, inst.JobsTotal, apptest.Describe(inst))
		}
		for _, j := range inst.Jobs {
			var statuses []string
			for _, e := range j.Events {
				statuses = append(statuses, e.Status)
			}
			if got := strings.Join(statuses, ","); got != "pending,running,completed" {
				t.Errorf("job #%d history %s", j.Seq, got)
			}
			if j.StartedAt == nil || j.EndedAt == nil || j.Attempts != 1 {
				t.Errorf("job #%d started %v ended %v attempts %d", j.Seq, j.StartedAt, j.EndedAt, j.Attempts)
			}
		}
		acct, err := b.Identities.AccountOf(b.Ctx, nil, dir.ID, alice.ID)
		if err != nil || acct.Status != "enabled" || acct.Username != "alice" {
			t.Fatalf("account = %+v, %v", acct, err)
		}
		// Granting the same entitlement again succeeds without change; lock and unlock follow.
		again := b.WaitSettled(t, b.Submit(t, requests.Request{Type: requests.AddEntitlements, BeneficiaryType: "identity",
			BeneficiaryID: alice.ID, ConnectorID: dir.ID, Entitlements: []string{ents["VPN"].ID, ents["Wiki"].ID}}).ID)
		if again.Status != requests.InstanceCompleted || !strings.Contains(again.Jobs[0].Message, "no change") ||
			strings.Contains(again.Jobs[1].Message, "no change") {
			t.Fatalf("second grant: %s", apptest.Describe(again))
		}
		held, _ := b.Identities.EntitlementsOf(b.Ctx, dir.ID, alice.ID)
		if len(held) != 2 {
			t.Errorf("alice holds %d entitlements, want 2", len(held))
		}
		for _, step := range []struct {
			typ    requests.Type
			status string
		}{{requests.LockAccount, "locked"}, {requests.UnlockAccount, "enabled"}, {requests.RemoveEntitlements, "enabled"}, {requests.DeleteAccount, "deleted"}} {
			r := requests.Request{Type: step.typ, BeneficiaryType: "identity", BeneficiaryID: alice.ID, ConnectorID: dir.ID}
			if step.typ == requests.RemoveEntitlements {
				r.Entitlements = []string{ents["Wiki"].ID}
			}
			done := b.WaitSettled(t, b.Submit(t, r).ID)
			if done.Status != requests.InstanceCompleted {
				t.Fatalf("%s: %s", step.typ, apptest.Describe(done))
			}
			acct, _ := b.Identities.AccountOf(b.Ctx, nil, dir.ID, alice.ID)
			if acct.Status != step.status {
				t.Errorf("after %s account is %s, want %s", step.typ, acct.Status, step.status)
			}
		}
		var members int64
		b.DB.Gorm.Table("directory_members").Where("connector_id = ?", dir.ID).Count(&members)
		if members != 0 {
			t.Errorf("directory still has %d memberships after delete", members)
		}
	})
}

func TestPermanentErrorFailsAtOnceAndCancelsDependents(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect string) {
		t.Parallel()
		b := apptest.New(t, dialect, nil)
		dir, ents := b.Directory(t, "Dir", "VPN")
		alice := b.Identity(t, "alice")
		inst := b.WaitSettled(t, b.Submit(t, requests.Request{Type: requests.AddEntitlements, BeneficiaryType: "identity",
			BeneficiaryID: alice.ID, ConnectorID: dir.ID, Entitlements: []string{ents["VPN"].ID}}).ID)
		j := inst.Jobs[0]
		if inst.Status != requests.InstanceFailed || j.Status != requests.JobFailed || j.Attempts != 1 || !strings.Contains(j.Message, "no such account: alice") {
			t.Fatalf("instance %s: %s", inst.Status, apptest.Describe(inst))
		}
		// The queue does not retry it: its entry ends after one attempt
		// (recorded by the queue a moment after the job's own row).
		var entry struct {
			State   string
			Attempt int
		}
		_ = testwait.Poll(b.Ctx, 10*time.Second, func() error {
			b.DB.Gorm.Table("river_job").Select("state, attempt").Where("id = ?", *j.QueueJobID).Scan(&entry)
			if entry.State != "completed" {
				return errors.New(entry.State)
			}
			return nil
		})
		if entry.State != "completed" || entry.Attempt != 1 {
			t.Errorf("queue entry %+v, want completed after attempt 1", entry)
		}

		// The jobs that need a failed job are not run; the others of the
		// set still are.
		f := newFlaky()
		fb, rec, fents := flakyBundle(t, dialect, f)
		denied := fb.Identity(t, "denied")
		wg := fb.Workgroup(t, "W", denied, fb.Identity(t, "fine"))
		run := fb.WaitSettled(t, fb.Submit(t, requests.Request{Type: requests.CreateAccount, BeneficiaryType: "workgroup", BeneficiaryID: wg.ID,
			ConnectorID: rec.ID, Entitlements: []string{fents["G"].ID}}).ID)
		var got []string
		for _, j := range run.Jobs {
			got = append(got, fmt.Sprintf("%s %s %s: %s", j.Username, j.Operation, j.Status, j.Message))
		}
		want := []string{
			"denied account.create failed: insufficient access rights",
			"denied entitlement.grant canceled: not run: job #1 (Flaky.account.create) failed",
			"fine account.create completed: done for fine",
			"fine entitlement.grant completed: done for fine",
		}
		if run.Status != requests.InstanceFailed || strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("run %s:\n%s\nwant:\n%s", run.Status, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		if f.calls["denied"] != 1 || f.calls["fine"] != 2 {
			t.Errorf("connector calls %v, want denied 1 and fine 2", f.calls)
		}
	})
}

// flaky is a connector whose operations fail transiently a number of times
// per account before they succeed, or fail permanently, or block until told.
type flaky struct {
	mu       sync.Mutex
	failures map[string]int // username -> transient failures left
	calls    map[string]int
	release  chan struct{}
}

func newFlaky() *flaky {
	return &flaky{failures: map[string]int{}, calls: map[string]int{}, release: make(chan struct{})}
}

func (f *flaky) do(ctx context.Context, a connectors.Account) (connectors.Result, error) {
	f.mu.Lock()
	f.calls[a.Username]++
	left := f.failures[a.Username]
	if left > 0 {
		f.failures[a.Username] = left - 1
	}
	f.mu.Unlock()
	if strings.HasPrefix(a.Username, "paced") {
		time.Sleep(40 * time.Millisecond)
	}
	if a.Username == "blocked" {
		select {
		case <-f.release:
		case <-ctx.Done():
			return connectors.Result{}, ctx.Err()
		}
	}
	if strings.HasPrefix(a.Username, "denied") {
		return connectors.Result{}, connectors.Permanent(errors.New("insufficient access rights"))
	}
	if left > 0 && strings.HasPrefix(a.Username, "throttled") {
		return connectors.Result{}, connectors.RetryAfter(errors.New("429 too many requests"), 30*time.Millisecond)
	}
	if left > 0 {
		return connectors.Result{}, connectors.Transient(errors.New("server busy"))
	}
	return connectors.Result{Changed: true, Message: "done for " + a.Username}, nil
}

func (f *flaky) Kind(op connectors.Operation) string { return "Flaky." + string(op) }
func (f *flaky) CreateAccount(ctx context.Context, a connectors.Account) (connectors.Result, error) {
	return f.do(ctx, a)
}
func (f *flaky) DeleteAccount(ctx context.Context, a connectors.Account) (connectors.Result, error) {
	return f.do(ctx, a)
}
func (f *flaky) EnableAccount(ctx context.Context, a connectors.Account) (connectors.Result, error) {
	return f.do(ctx, a)
}
func (f *flaky) DisableAccount(ctx context.Context, a connectors.Account) (connectors.Result, error) {
	return f.do(ctx, a)
}
func (f *flaky) Grant(ctx context.Context, a connectors.Account, _ connectors.Entitlement) (connectors.Result, error) {
	if a.Username == "slowgrant" {
		select {
		case <-f.release:
		case <-ctx.Done():
			return connectors.Result{}, ctx.Err()
		}
	}
	return f.do(ctx, a)
}
func (f *flaky) Revoke(ctx context.Context, a connectors.Account, _ connectors.Entitlement) (connectors.Result, error) {
	return f.do(ctx, a)
}
func (f *flaky) Check(context.Context) connectors.Health { return connectors.Health{OK: true} }
func (f *flaky) Import(context.Context, connectors.ImportMode, string, connectors.ImportSink) (string, error) {
	return "", nil
}

func flakyType(f *flaky) connectors.Type {
	return connectors.Type{Name: "flaky", Label: "Flaky", New: func(connectors.Config) (connectors.Connector, error) { return f, nil }}
}

func flakyBundle(t *testing.T, dialect string, f *flaky, args ...string) (*apptest.Bundle, *configured.Record, map[string]*identities.Entitlement) {
	b := apptest.New(t, dialect, &apptest.Options{ConnectorTypes: []connectors.Type{flakyType(f)}, Args: args})
	rec, err := b.Connectors.Create(b.Ctx, configured.Input{Name: "Flaky", Type: "flaky"})
	if err != nil {
		t.Fatal(err)
	}
	e, err := b.Identities.CreateEntitlement(b.Ctx, rec.ID, identities.EntitlementInput{Name: "G"})
	if err != nil {
		t.Fatal(err)
	}
	return b, rec, map[string]*identities.Entitlement{"G": e}
}

func TestTransientErrorsRetryWithBackoffThenGiveUp(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect string) {
		t.Parallel()
		f := newFlaky()
		f.failures["once"] = 1
		f.failures["always"] = 100
		b, rec, _ := flakyBundle(t, dialect, f, "--max-attempts", "2")
		once, always := b.Identity(t, "once"), b.Identity(t, "always")
		i1 := b.Submit(t, requests.Request{Type: requests.LockAccount, BeneficiaryType: "identity", BeneficiaryID: once.ID, ConnectorID: rec.ID})
		i2 := b.Submit(t, requests.Request{Type: requests.LockAccount, BeneficiaryType: "identity", BeneficiaryID: always.ID, ConnectorID: rec.ID})
		i1 = b.WaitSettled(t, i1.ID)
		j := i1.Jobs[0]
		if i1.Status != requests.InstanceCompleted || j.Attempts != 2 {
			t.Fatalf("retried job: %s attempts %d", apptest.Describe(i1), j.Attempts)
		}
		var hist []string
		for _, e := range j.Events {
			hist = append(hist, e.Status)
		}
		if got := strings.Join(hist, ","); got != "pending,running,pending,running,completed" {
			t.Errorf("history %s", got)
		}
		if !strings.Contains(j.Events[2].Message, "attempt 1 failed, will retry: server busy") {
			t.Errorf("retry event %q", j.Events[2].Message)
		}
		// The retry waited for the queue's backoff (about a second after the first attempt).
		if gap := j.Events[3].At.Sub(j.Events[2].At); gap < 500*time.Millisecond {
			t.Errorf("retry came %s after the failure; want a backoff", gap)
		}
		i2 = b.WaitSettled(t, i2.ID)
		if i2.Status != requests.InstanceFailed || !strings.Contains(i2.Jobs[0].Message, "gave up after 2 attempts: server busy") {
			t.Errorf("exhausted job: %s", apptest.Describe(i2))
		}
	})
}

func TestSteerCancelRetryForceEnd(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect string) {
		t.Parallel()
		f := newFlaky()
		b, rec, ents := flakyBundle(t, dialect, f)
		blocked, denied, tb := b.Identity(t, "blocked"), b.Identity(t, "denied"), b.Identity(t, "timebound")

		// A running job cannot be canceled; the pending jobs of its run can.
		wg := b.Workgroup(t, "W", blocked)
		run := b.Submit(t, requests.Request{Type: requests.CreateAccount, BeneficiaryType: "workgroup", BeneficiaryID: wg.ID,
			ConnectorID: rec.ID, Entitlements: []string{ents["G"].ID}})
		run = b.Wait(t, run.ID, 10*time.Second, func(i *requests.Instance) bool { return i.Jobs[0].Status == requests.JobRunning })
		if _, err := b.Requests.CancelJob(b.Ctx, run.Jobs[0].ID, "admin"); !errors.Is(err, requests.ErrConflict) || !strings.Contains(err.Error(), "running") {
			t.Errorf("cancel running job: %v", err)
		}
		canceled, err := b.Requests.CancelJob(b.Ctx, run.Jobs[1].ID, "admin")
		if err != nil || canceled.Status != requests.JobCanceled || canceled.Message != "canceled by admin" {
			t.Fatalf("cancel pending job: %+v %v", canceled, err)
		}
		if _, err := b.Requests.CancelJob(b.Ctx, run.Jobs[1].ID, "admin"); !errors.Is(err, requests.ErrConflict) {
			t.Errorf("cancel twice: %v", err)
		}
		close(f.release)
		run = b.WaitSettled(t, run.ID)
		if run.Status != requests.InstanceCanceled || run.Jobs[0].Status != requests.JobCompleted {
			t.Errorf("run after cancel: %s %s", run.Status, apptest.Describe(run))
		}

		// A failed job can be retried; a completed one cannot.
		failed := b.WaitSettled(t, b.Submit(t, requests.Request{Type: requests.LockAccount, BeneficiaryType: "identity",
			BeneficiaryID: denied.ID, ConnectorID: rec.ID}).ID)
		if failed.Status != requests.InstanceFailed {
			t.Fatalf("denied: %s", apptest.Describe(failed))
		}
		if _, err := b.Requests.RetryJob(b.Ctx, run.Jobs[0].ID, "admin"); !errors.Is(err, requests.ErrConflict) {
			t.Errorf("retry completed: %v", err)
		}
		retried, err := b.Requests.RetryJob(b.Ctx, failed.Jobs[0].ID, "admin")
		if err != nil || retried.Status != requests.JobPending {
			t.Fatalf("retry: %+v %v", retried, err)
		}
		again := b.WaitSettled(t, failed.ID)
		if again.Status != requests.InstanceFailed || f.calls["denied"] != 2 {
			t.Errorf("after retry: %s, calls %d", apptest.Describe(again), f.calls["denied"])
		}

		// Time-bound access: scheduled revocations cannot be canceled; Force End runs them now.
		timed := b.Submit(t, requests.Request{Type: requests.AddEntitlements, BeneficiaryType: "identity", BeneficiaryID: tb.ID,
			ConnectorID: rec.ID, Entitlements: []string{ents["G"].ID}, Duration: "30d"})
		timed = b.WaitSettled(t, timed.ID)
		if timed.Status != requests.InstanceActive || timed.Jobs[1].Status != requests.JobScheduled {
			t.Fatalf("time-bound run: %s %s", timed.Status, apptest.Describe(timed))
		}
		if _, err := b.Requests.CancelJob(b.Ctx, timed.Jobs[1].ID, "admin"); !errors.Is(err, requests.ErrConflict) || !strings.Contains(err.Error(), "Force End") {
			t.Errorf("cancel revocation: %v", err)
		}
		if _, err := b.Requests.CancelInstance(b.Ctx, timed.ID, "admin"); !errors.Is(err, requests.ErrConflict) {
			t.Errorf("cancel instance with only a revocation left: %v", err)
		}
		if _, err := b.Requests.ForceEnd(b.Ctx, timed.ID, "admin"); err != nil {
			t.Fatalf("force end: %v", err)
		}
		ended := b.WaitSettled(t, timed.ID)
		if ended.Status != requests.InstanceCompleted || ended.Jobs[1].Status != requests.JobCompleted {
			t.Errorf("after Force End: %s %s", ended.Status, apptest.Describe(ended))
		}
		if _, err := b.Requests.ForceEnd(b.Ctx, timed.ID, "admin"); !errors.Is(err, requests.ErrConflict) {
			t.Errorf("force end twice: %v", err)
		}

		// Each action is in the audit trail with who did it.
		events, _, err := audit.List(b.Ctx, b.DB.Gorm, audit.Filter{Actor: "admin"})
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]int{}
		for _, e := range events {
			seen[e.Action]++
		}
		for _, a := range []string{"job.cancel", "job.retry", "request.force_end"} {
			if seen[a] != 1 {
				t.Errorf("audit %s = %d entries, want 1 (all: %v)", a, seen[a], seen)
			}
		}
	})
}

func TestCancelInstanceCancelsPendingJobs(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect string) {
		t.Parallel()
		b := apptest.New(t, dialect, &apptest.Options{NoStart: true})
		dir, ents := b.Directory(t, "Dir", "VPN")
		alice := b.Identity(t, "alice")
		inst := b.Submit(t, requests.Request{Type: requests.CreateAccount, BeneficiaryType: "identity", BeneficiaryID: alice.ID,
			ConnectorID: dir.ID, Entitlements: []string{ents["VPN"].ID}, Duration: "1h"})
		out, err := b.Requests.CancelInstance(b.Ctx, inst.ID, "admin")
		if err != nil {
			t.Fatal(err)
		}
		got := []string{}
		for _, j := range out.Jobs {
			got = append(got, j.Status)
		}
		// The revocation stays scheduled: the run is active until it ran.
		if strings.Join(got, ",") != "canceled,canceled,scheduled" || out.Status != requests.InstanceActive {
			t.Errorf("after cancel: %s %v", out.Status, got)
		}
		var states []string
		b.DB.Gorm.Table("river_job").Order("id").Pluck("state", &states)
		if strings.Join(states, ",") != "cancelled,scheduled" {
			t.Errorf("queue states %v", states)
		}
		if _, err := b.Requests.CancelInstance(b.Ctx, inst.ID, "admin"); !errors.Is(err, requests.ErrConflict) {
			t.Errorf("second cancel: %v", err)
		}
		if _, err := b.Requests.CancelInstance(b.Ctx, "not-a-uuid", "admin"); !errors.Is(err, requests.ErrNotFound) && err == nil {
			t.Errorf("unknown instance: %v", err)
		}
	})
}

func TestListGroupsFiltersAndPages(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect string) {
		t.Parallel()
		b := apptest.New(t, dialect, &apptest.Options{NoStart: true})
		dir, ents := b.Directory(t, "Dir", "VPN", "Wiki")
		alice := b.Identity(t, "alice")
		for i := 0; i < 12; i++ {
			r := requests.Request{Type: requests.LockAccount, BeneficiaryType: "identity", BeneficiaryID: alice.ID, ConnectorID: dir.ID}
			if i%3 == 0 {
				r = requests.Request{Type: requests.AddEntitlements, BeneficiaryType: "identity", BeneficiaryID: alice.ID,
					ConnectorID: dir.ID, Entitlements: []string{ents["VPN"].ID, ents["Wiki"].ID}}
			}
			b.Submit(t, r)
		}
		page, err := b.Requests.ListGroups(b.Ctx, requests.GroupFilter{Page: 2, PageSize: 10})
		if err != nil {
			t.Fatal(err)
		}
		if page.TotalGroups != 12 || page.TotalJobs != 16 || page.Pages != 2 || len(page.Groups) != 2 {
			t.Errorf("page 2: groups %d jobs %d pages %d rows %d", page.TotalGroups, page.TotalJobs, page.Pages, len(page.Groups))
		}
		first, _ := b.Requests.ListGroups(b.Ctx, requests.GroupFilter{PageSize: 10})
		if first.Groups[2].Kind != "2 jobs" || first.Groups[1].Kind != "Account.Disable" || first.Groups[2].Connectors != "Dir" {
			t.Errorf("newest groups: %+v / %+v", first.Groups[2].Kind, first.Groups[1].Kind)
		}
		if !first.Groups[0].UpdatedAt.After(first.Groups[9].UpdatedAt) && !first.Groups[0].UpdatedAt.Equal(first.Groups[9].UpdatedAt) {
			t.Error("groups are not newest first")
		}
		// Cancel one job: the canceled filter finds its group only.
		if _, err := b.Requests.CancelJob(b.Ctx, first.Groups[1].Jobs[0].ID, "admin"); err != nil {
			t.Fatal(err)
		}
		c, _ := b.Requests.ListGroups(b.Ctx, requests.GroupFilter{Status: "canceled"})
		if c.TotalGroups != 1 || c.TotalJobs != 1 || c.Groups[0].InstanceID != first.Groups[1].InstanceID {
			t.Errorf("canceled filter: %+v", c)
		}
		if _, err := b.Requests.ListGroups(b.Ctx, requests.GroupFilter{Status: "bogus"}); requests.FieldMap(err)["status"] == "" {
			t.Errorf("bogus status: %v", err)
		}
	})
}

// A set's jobs run in order; while one operation takes long, the ones
// before it are seen done and it is seen running.
func TestSlowOperationShowsProgress(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect string) {
		t.Parallel()
		f := newFlaky()
		b, rec, ents := flakyBundle(t, dialect, f)
		slow := b.Identity(t, "slowgrant")
		run := b.Submit(t, requests.Request{Type: requests.CreateAccount, BeneficiaryType: "identity", BeneficiaryID: slow.ID,
			ConnectorID: rec.ID, Entitlements: []string{ents["G"].ID}})
		mid := b.Wait(t, run.ID, 10*time.Second, func(i *requests.Instance) bool {
			return i.Status == requests.InstanceRunning && i.Jobs[0].Status == requests.JobCompleted && i.Jobs[1].Status == requests.JobRunning
		})
		if len(mid.Jobs[0].Events) != 3 || mid.Jobs[0].Events[2].Message != "done for slowgrant" {
			t.Errorf("first job's history while the second runs: %+v", mid.Jobs[0].Events)
		}
		checkCounters(t, b, "while the second job runs")
		close(f.release)
		if done := b.WaitSettled(t, run.ID); done.Status != requests.InstanceCompleted {
			t.Errorf("run: %s", apptest.Describe(done))
		}
	})
}

// An operation that does not answer within the job timeout fails its
// attempt; the set goes on with the jobs after it.
func TestOperationTimeout(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect string) {
		t.Parallel()
		f := newFlaky()
		b, rec, ents := flakyBundle(t, dialect, f, "--job-timeout", "300ms", "--max-attempts", "1")
		slow, fine := b.Identity(t, "slowgrant"), b.Identity(t, "fine")
		wg := b.Workgroup(t, "W", slow, fine)
		start := time.Now()
		run := b.WaitSettled(t, b.Submit(t, requests.Request{Type: requests.AddEntitlements, BeneficiaryType: "workgroup", BeneficiaryID: wg.ID,
			ConnectorID: rec.ID, Entitlements: []string{ents["G"].ID}}).ID)
		var slowJob, fineJob requests.Job
		for _, j := range run.Jobs {
			if j.Username == "slowgrant" {
				slowJob = j
			} else {
				fineJob = j
			}
		}
		if run.Status != requests.InstanceFailed || slowJob.Status != requests.JobFailed ||
			!strings.Contains(slowJob.Message, "gave up after 1 attempts: no answer within 300ms") || fineJob.Status != requests.JobCompleted {
			t.Errorf("run %s: %s", run.Status, apptest.Describe(run))
		}
		if d := time.Since(start); d > 20*time.Second {
			t.Errorf("the run took %s", d)
		}
	})
}

// A workgroup's grants and revokes go in sets per entitlement, each run as
// one batch, and each member's job answers for that member: one without an
// account fails while the others complete.
func TestWorkgroupAccessRunsPerEntitlement(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect string) {
		t.Parallel()
		b := apptest.New(t, dialect, nil)
		dir, ents := b.Directory(t, "Dir", "VPN", "Wiki")
		var people []*identities.Identity
		for _, n := range []string{"alice", "bob", "carol", "dave"} {
			people = append(people, b.Identity(t, n))
		}
		for _, p := range people[:3] {
			done := b.WaitSettled(t, b.Submit(t, requests.Request{Type: requests.CreateAccount, BeneficiaryType: "identity",
				BeneficiaryID: p.ID, ConnectorID: dir.ID, Entitlements: []string{ents["Wiki"].ID}}).ID)
			if done.Status != requests.InstanceCompleted {
				t.Fatal(apptest.Describe(done))
			}
		}
		wg := b.Workgroup(t, "Team", people...)
		both := []string{ents["VPN"].ID, ents["Wiki"].ID}
		inst := b.Submit(t, requests.Request{Type: requests.AddEntitlements, BeneficiaryType: "workgroup", BeneficiaryID: wg.ID,
			ConnectorID: dir.ID, Entitlements: both, Duration: "8h"})
		// Four sets: the grants of each entitlement, and their revocations.
		sets := map[int64][]string{}
		for _, j := range inst.Jobs {
			sets[*j.QueueJobID] = append(sets[*j.QueueJobID], fmt.Sprintf("%s %s %v", j.EntitlementName, j.Operation, j.Revocation))
		}
		if len(sets) != 4 {
			t.Errorf("%d queue entries, want 4: %v", len(sets), sets)
		}
		for id, jobs := range sets {
			if len(jobs) != 4 || jobs[0] != jobs[3] {
				t.Errorf("queue entry %d runs %v", id, jobs)
			}
		}
		inst = b.WaitSettled(t, inst.ID)
		var got []string
		for _, j := range inst.Jobs {
			if !j.Revocation {
				got = append(got, fmt.Sprintf("%s %s: %s", j.Username, j.EntitlementName, j.Message))
			}
		}
		want := []string{
			"alice VPN: alice added to VPN", "alice Wiki: alice was already a member of Wiki (no change)",
			"bob VPN: bob added to VPN", "bob Wiki: bob was already a member of Wiki (no change)",
			"carol VPN: carol added to VPN", "carol Wiki: carol was already a member of Wiki (no change)",
			"dave VPN: no such account: dave", "dave Wiki: no such account: dave",
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") || inst.Status != requests.InstanceFailed {
			t.Fatalf("%s\njobs:\n%s\nwant:\n%s", inst.Status, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		for _, p := range people[:3] {
			if held, _ := b.Identities.EntitlementsOf(b.Ctx, dir.ID, p.ID); len(held) != 2 {
				t.Errorf("%s holds %d entitlements, want 2", p.Username, len(held))
			}
		}
		// Removed from the workgroup in two batches.
		gone := b.WaitSettled(t, b.Submit(t, requests.Request{Type: requests.RemoveEntitlements, BeneficiaryType: "workgroup",
			BeneficiaryID: wg.ID, ConnectorID: dir.ID, Entitlements: both}).ID)
		if gone.Status != requests.InstanceCompleted {
			t.Fatal(apptest.Describe(gone))
		}
		for _, p := range people[:3] {
			if held, _ := b.Identities.EntitlementsOf(b.Ctx, dir.ID, p.ID); len(held) != 0 {
				t.Errorf("%s still holds %v", p.Username, held)
			}
		}
		var members int64
		b.DB.Gorm.Table("directory_members").Where("connector_id = ?", dir.ID).Count(&members)
		if members != 0 {
			t.Errorf("directory still has %d memberships", members)
		}
	})
}

// A set longer than the rescue delay runs in attempts that each end before
// it, going on at once without spending attempts: the queue's bound on an
// attempt is the rescue delay whatever the size of the set, so a set whose
// worker died is taken over that long after, not after its whole length.
func TestLongSetRunsInSlicesWithinTheRescueDelay(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect string) {
		t.Parallel()
		f := newFlaky()
		b, rec, ents := flakyBundle(t, dialect, f, "--job-timeout", "200ms", "--rescue-after", "2s")
		var members []*identities.Identity
		for i := range 60 {
			members = append(members, b.Identity(t, fmt.Sprintf("paced%02d", i)))
		}
		wg := b.Workgroup(t, "Paced", members...)
		run := b.Submit(t, requests.Request{Type: requests.AddEntitlements, BeneficiaryType: "workgroup", BeneficiaryID: wg.ID,
			ConnectorID: rec.ID, Entitlements: []string{ents["G"].ID}})
		var sets []int64
		for _, j := range run.Jobs {
			if len(sets) == 0 || sets[len(sets)-1] != *j.QueueJobID {
				sets = append(sets, *j.QueueJobID)
			}
		}
		if len(sets) != 1 {
			t.Fatalf("%d sets, want one set of the workgroup's 60 grants", len(sets))
		}
		w := requests.NewWorker(b.Requests)
		if got := w.Timeout(&river.Job[requests.JobArgs]{Args: requests.JobArgs{Jobs: 60}}); got != 2*time.Second {
			t.Errorf("an attempt of a set of 60 is bounded by %s, want the rescue delay (2s)", got)
		}
		done := b.Wait(t, run.ID, 60*time.Second, func(i *requests.Instance) bool { return !requests.Busy(i.Status) })
		if done.Status != requests.InstanceCompleted {
			t.Fatalf("run %s: %s", done.Status, apptest.Describe(done))
		}
		var entry struct {
			Attempt  int
			Metadata string
		}
		if err := b.DB.Gorm.Raw("SELECT attempt, CAST(metadata AS TEXT) AS metadata FROM river_job WHERE id = ?", sets[0]).Scan(&entry).Error; err != nil {
			t.Fatal(err)
		}
		if entry.Attempt != 1 || !strings.Contains(entry.Metadata, "snoozes") {
			t.Errorf("queue entry: attempt %d, metadata %s; want attempt 1 and the set gone on after snoozes", entry.Attempt, entry.Metadata)
		}
		// Each operation ran once; one cut short by an attempt that ran
		// over its bound (a loaded machine) runs once more: a couple at most.
		f.mu.Lock()
		defer f.mu.Unlock()
		calls := 0
		for _, j := range done.Jobs {
			calls += f.calls[j.Username]
		}
		if calls < len(done.Jobs) || calls > len(done.Jobs)+2 {
			t.Errorf("%d operations for %d jobs", calls, len(done.Jobs))
		}
	})
}

// The sweep gives a set whose queue entry will not run again (discarded
// after its attempts, here) a new entry, with a history entry, and rolls
// up a run whose last roll-up was lost; the run then completes.
func TestSweepHandsBackAbandonedWork(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect string) {
		t.Parallel()
		b := apptest.New(t, dialect, &apptest.Options{NoStart: true})
		rec, ents := b.Directory(t, "Swept", "G")
		alice, bob := b.Identity(t, "alice"), b.Identity(t, "bob")
		run := b.Submit(t, requests.Request{Type: requests.CreateAccount, BeneficiaryType: "identity", BeneficiaryID: alice.ID,
			ConnectorID: rec.ID, Entitlements: []string{ents["G"].ID}})
		done := b.Submit(t, requests.Request{Type: requests.CreateAccount, BeneficiaryType: "identity", BeneficiaryID: bob.ID,
			ConnectorID: rec.ID})
		old := time.Now().UTC().Add(-time.Hour)
		entry := *run.Jobs[0].QueueJobID
		g := b.DB.Gorm
		for _, q := range []struct {
			sql  string
			args []any
		}{
			{"UPDATE river_job SET state = 'discarded', finalized_at = ? WHERE id = ?", []any{old, entry}},
			{"UPDATE connector_jobs SET updated_at = ? WHERE instance_id = ?", []any{old, run.ID}},
			// Bob's run: its job ended, its roll-up was lost.
			{"UPDATE connector_jobs SET status = 'completed', ended_at = ?, updated_at = ? WHERE instance_id = ?", []any{old, old, done.ID}},
			{"UPDATE request_instances SET status = 'running', updated_at = ? WHERE id = ?", []any{old, done.ID}},
		} {
			if err := g.Exec(q.sql, q.args...).Error; err != nil {
				t.Fatal(err)
			}
		}
		// Work changed a moment ago is not taken.
		if res, err := b.Requests.Sweep(b.Ctx, 2*time.Hour); err != nil || res != (requests.SweepResult{}) {
			t.Fatalf("sweep of recent work: %+v, %v", res, err)
		}
		res, err := b.Requests.Sweep(b.Ctx, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if res != (requests.SweepResult{Sets: 1, Jobs: 2, Runs: 1}) {
			t.Errorf("sweep: %+v, want one set of two jobs and one run", res)
		}
		if again, err := b.Requests.Sweep(b.Ctx, time.Minute); err != nil || again != (requests.SweepResult{}) {
			t.Errorf("second sweep: %+v, %v; want nothing left", again, err)
		}
		got, err := b.Requests.GetInstance(b.Ctx, run.ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, j := range got.Jobs {
			last := j.Events[len(j.Events)-1]
			if *j.QueueJobID == entry || !strings.Contains(last.Message, "handed back to the queue") || !strings.Contains(last.Message, "discarded") {
				t.Errorf("job #%d: entry %d, last history %q", j.Seq, *j.QueueJobID, last.Message)
			}
		}
		if inst, _ := b.Requests.GetInstance(b.Ctx, done.ID); inst.Status != requests.InstanceCompleted {
			t.Errorf("run with every job ended: %s", inst.Status)
		}
		if err := b.App.Start(b.Ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = b.App.Shutdown() })
		if end := b.WaitSettled(t, run.ID); end.Status != requests.InstanceCompleted {
			t.Errorf("run after the sweep: %s", apptest.Describe(end))
		}
	})
}

// A time-bound Create account for someone whose account the portal knows
// from before ends by taking back the run's grants, not the account.
func TestTimeBoundCreateKeepsAnAccountThatWasThere(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect string) {
		t.Parallel()
		b := apptest.New(t, dialect, nil)
		dir, ents := b.Directory(t, "Dir", "VPN")
		alice, bob := b.Identity(t, "alice"), b.Identity(t, "bob")
		first := b.Submit(t, requests.Request{Type: requests.CreateAccount, BeneficiaryType: "identity", BeneficiaryID: alice.ID, ConnectorID: dir.ID})
		if done := b.WaitSettled(t, first.ID); done.Status != requests.InstanceCompleted {
			t.Fatalf("alice's account: %s", apptest.Describe(done))
		}
		wg := b.Workgroup(t, "Cover", alice, bob)
		inst := b.Submit(t, requests.Request{Type: requests.CreateAccount, BeneficiaryType: "workgroup", BeneficiaryID: wg.ID,
			ConnectorID: dir.ID, Entitlements: []string{ents["VPN"].ID}, Duration: "8h"})
		var got []string
		for _, j := range inst.Jobs {
			got = append(got, fmt.Sprintf("%s %s %s %s", j.Username, j.Kind, j.EntitlementName, j.Status))
		}
		want := []string{
			"alice Directory.CreateAccount  pending",
			"alice Directory.AddToGroup VPN pending",
			"alice Directory.RemoveFromGroup VPN scheduled",
			"bob Directory.CreateAccount  pending",
			"bob Directory.AddToGroup VPN pending",
			"bob Directory.DeleteAccount  scheduled",
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("jobs:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	})
}

// reporting is flaky as a connector whose batches tell of each
// membership's result as it comes (connectors.Reporter), several at a time.
type reporting struct{ *flaky }

func (r reporting) GrantAll(ctx context.Context, ms []connectors.Membership) ([]connectors.Result, []error) {
	return connectors.OneByOne(ctx, ms, r.Grant)
}

func (r reporting) RevokeAll(ctx context.Context, ms []connectors.Membership) ([]connectors.Result, []error) {
	return connectors.OneByOne(ctx, ms, r.Revoke)
}

func (r reporting) GrantEach(ctx context.Context, ms []connectors.Membership, report connectors.ReportFunc) {
	var wg sync.WaitGroup
	for i, m := range ms {
		wg.Go(func() {
			res, err := r.Grant(ctx, m.Account, m.Entitlement)
			report(i, res, err)
		})
	}
	wg.Wait()
}

func (r reporting) RevokeEach(ctx context.Context, ms []connectors.Membership, report connectors.ReportFunc) {
	connectors.DoEach(ctx, r.flaky, connectors.OpRevoke, ms, report)
}

// A batch's results are recorded as the connector reports them: the
// members it answered for are done while it still waits for another, and a
// member it does not answer for in time fails alone.
func TestBatchResultsAreRecordedAsTheyCome(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect string) {
		t.Parallel()
		f := newFlaky()
		b := apptest.New(t, dialect, &apptest.Options{Args: []string{"--job-timeout", "5s", "--max-attempts", "1"},
			ConnectorTypes: []connectors.Type{{Name: "reporting", Label: "Reporting",
				New: func(connectors.Config) (connectors.Connector, error) { return reporting{f}, nil }}}})
		rec, err := b.Connectors.Create(b.Ctx, configured.Input{Name: "Reporting", Type: "reporting"})
		if err != nil {
			t.Fatal(err)
		}
		g, err := b.Identities.CreateEntitlement(b.Ctx, rec.ID, identities.EntitlementInput{Name: "G"})
		if err != nil {
			t.Fatal(err)
		}
		wg := b.Workgroup(t, "W", b.Identity(t, "ann"), b.Identity(t, "slowgrant"), b.Identity(t, "ben"))
		run := b.Submit(t, requests.Request{Type: requests.AddEntitlements, BeneficiaryType: "workgroup", BeneficiaryID: wg.ID,
			ConnectorID: rec.ID, Entitlements: []string{g.ID}})
		if len(run.Jobs) != 3 || *run.Jobs[0].QueueJobID != *run.Jobs[2].QueueJobID {
			t.Fatalf("want one set of 3 grants: %s", apptest.Describe(run))
		}
		status := func(inst *requests.Instance) map[string]string {
			out := map[string]string{}
			for _, j := range inst.Jobs {
				out[j.Username] = j.Status
			}
			return out
		}
		// The run and its jobs are read one after the other: the wait is
		// for both to say so.
		mid := b.Wait(t, run.ID, 10*time.Second, func(i *requests.Instance) bool {
			s := status(i)
			return s["ann"] == requests.JobCompleted && s["ben"] == requests.JobCompleted && i.JobsDone == 2
		})
		if s := status(mid); s["slowgrant"] != requests.JobRunning || mid.Status != requests.InstanceRunning || mid.JobsDone != 2 {
			t.Fatalf("while the batch waits for slowgrant: run %s, %d done: %s", mid.Status, mid.JobsDone, apptest.Describe(mid))
		}
		checkCounters(t, b, "while the batch runs")
		close(f.release)
		done := b.WaitSettled(t, run.ID)
		if done.Status != requests.InstanceCompleted || done.JobsDone != 3 {
			t.Fatalf("run %s: %s", done.Status, apptest.Describe(done))
		}
		for _, j := range done.Jobs {
			if len(j.Events) != 3 || j.Events[1].Status != requests.JobRunning || j.Events[2].Message != "done for "+j.Username {
				t.Errorf("history of %s: %+v", j.Username, j.Events)
			}
		}

		// A member the connector does not answer for within the job
		// timeout fails; the others of the batch complete.
		f2 := newFlaky()
		b2 := apptest.New(t, dialect, &apptest.Options{Args: []string{"--job-timeout", "300ms", "--max-attempts", "1"},
			ConnectorTypes: []connectors.Type{{Name: "reporting", Label: "Reporting",
				New: func(connectors.Config) (connectors.Connector, error) { return reporting{f2}, nil }}}})
		rec2, err := b2.Connectors.Create(b2.Ctx, configured.Input{Name: "Reporting", Type: "reporting"})
		if err != nil {
			t.Fatal(err)
		}
		g2, err := b2.Identities.CreateEntitlement(b2.Ctx, rec2.ID, identities.EntitlementInput{Name: "G"})
		if err != nil {
			t.Fatal(err)
		}
		wg2 := b2.Workgroup(t, "W", b2.Identity(t, "ann"), b2.Identity(t, "slowgrant"), b2.Identity(t, "ben"))
		timedOut := b2.WaitSettled(t, b2.Submit(t, requests.Request{Type: requests.AddEntitlements, BeneficiaryType: "workgroup",
			BeneficiaryID: wg2.ID, ConnectorID: rec2.ID, Entitlements: []string{g2.ID}}).ID)
		s := status(timedOut)
		var slow requests.Job
		for _, j := range timedOut.Jobs {
			if j.Username == "slowgrant" {
				slow = j
			}
		}
		if timedOut.Status != requests.InstanceFailed || s["ann"] != requests.JobCompleted || s["ben"] != requests.JobCompleted ||
			slow.Status != requests.JobFailed || !strings.Contains(slow.Message, "no answer within 300ms") {
			t.Errorf("run %s: %s", timedOut.Status, apptest.Describe(timedOut))
		}
	})
}
