package requests_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/provisor/provisor/app/apptest"
	"github.com/provisor/provisor/database/dbtest"
	"github.com/provisor/provisor/internal/testwait"
	"github.com/provisor/provisor/migrations"
	"github.com/provisor/provisor/requests"
)

// counterMismatches lists the instances whose job counters differ from
// their jobs. It is one statement, so a run moving on meanwhile cannot make
// the counters and the jobs disagree in what it reads.
func counterMismatches(t *testing.T, b *apptest.Bundle) []string {
	t.Helper()
	cols := []string{"i.id", "i.jobs_total", "(SELECT count(*) FROM connector_jobs j WHERE j.instance_id = i.id)"}
	cond := []string{"i.jobs_total <> " + cols[2]}
	for _, st := range requests.JobStatuses {
		real := fmt.Sprintf("(SELECT count(*) FROM connector_jobs j WHERE j.instance_id = i.id AND j.status = '%s')", st)
		cols = append(cols, "i.jobs_"+st, real)
		cond = append(cond, "i.jobs_"+st+" <> "+real)
	}
	rows, err := b.DB.SQL.QueryContext(b.Ctx, "SELECT "+strings.Join(cols, ", ")+" FROM request_instances i WHERE "+strings.Join(cond, " OR "))
	if err != nil {
		t.Fatalf("read counters: %v", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		n := make([]int64, len(cols)-1)
		dest := []any{&id}
		for i := range n {
			dest = append(dest, &n[i])
		}
		if err := rows.Scan(dest...); err != nil {
			t.Fatal(err)
		}
		desc := fmt.Sprintf("%s: total %d (jobs %d)", id, n[0], n[1])
		for i, st := range requests.JobStatuses {
			desc += fmt.Sprintf(", %s %d (jobs %d)", st, n[2+2*i], n[3+2*i])
		}
		out = append(out, desc)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// checkCounters checks that the counters agree with the jobs. A job set's
// worker claims each job on its own and rolls the run up when it writes its
// results, a quarter of a second later while an operation runs: the
// counters may trail the jobs that long, plus the time to write them on a
// loaded machine.
func checkCounters(t *testing.T, b *apptest.Bundle, when string) {
	t.Helper()
	err := testwait.Poll(context.Background(), 10*time.Second, func() error {
		if bad := counterMismatches(t, b); len(bad) > 0 {
			return errors.New("job counters differ from the jobs:\n  " + strings.Join(bad, "\n  "))
		}
		return nil
	})
	if err != nil {
		t.Errorf("%s: %v", when, err)
	}
}

// checkListGroups compares every filter of the Connector Jobs listing, its
// totals and the runs on all its pages, with what the jobs say.
func checkListGroups(t *testing.T, b *apptest.Bundle) {
	t.Helper()
	for _, st := range append([]string{"all"}, requests.JobStatuses...) {
		q := b.DB.Gorm.Table("connector_jobs")
		if st != "all" {
			q = q.Where("status = ?", st)
		}
		var want []string
		var jobs int64
		if err := q.Count(&jobs).Error; err != nil {
			t.Fatal(err)
		}
		if err := q.Distinct("instance_id").Order("instance_id").Pluck("instance_id", &want).Error; err != nil {
			t.Fatal(err)
		}
		var got []string
		var page *requests.GroupPage
		for n := 1; n == 1 || n <= page.Pages; n++ {
			var err error
			if page, err = b.Requests.ListGroups(b.Ctx, requests.GroupFilter{Status: st, Page: n, PageSize: 10}); err != nil {
				t.Fatal(err)
			}
			if page.TotalGroups != int64(len(want)) || page.TotalJobs != jobs {
				t.Errorf("filter %s page %d: %d runs, %d jobs; the jobs say %d runs, %d jobs", st, n, page.TotalGroups, page.TotalJobs, len(want), jobs)
			}
			for i, g := range page.Groups {
				got = append(got, g.InstanceID)
				if i > 0 && g.UpdatedAt.After(page.Groups[i-1].UpdatedAt) {
					t.Errorf("filter %s page %d: runs are not newest first", st, n)
				}
				if st != "all" && !slices.ContainsFunc(g.Jobs, func(j requests.Job) bool { return j.Status == st }) {
					t.Errorf("filter %s lists run %s, which has no %s job", st, g.InstanceID, st)
				}
			}
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("filter %s lists runs %v, want %v", st, got, want)
		}
	}
}

// The counters the Connector Jobs page reads follow every status change:
// runs, retries after transient errors, permanent failures, cancels of a
// job and of a run, retries by an admin, time-bound runs and Force End.
func TestJobCountersFollowEveryStatusChange(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect string) {
		t.Parallel()
		f := newFlaky()
		f.failures["retry"] = 1
		b, rec, ents := flakyBundle(t, dialect, f, "--max-attempts", "3")
		blocked, ok, denied, retry, tb := b.Identity(t, "blocked"), b.Identity(t, "ok"), b.Identity(t, "denied"), b.Identity(t, "retry"), b.Identity(t, "timebound")
		g := []string{ents["G"].ID}
		byUser := func(inst *requests.Instance, user, op string) *requests.Job {
			for i := range inst.Jobs {
				if j := &inst.Jobs[i]; j.Username == user && j.Operation == op {
					return j
				}
			}
			t.Fatalf("no %s job for %s: %s", op, user, apptest.Describe(inst))
			return nil
		}

		// A workgroup run whose first member blocks: the other member's
		// jobs complete, the blocked one runs, its grant waits.
		wg := b.Workgroup(t, "W", blocked, ok)
		run := b.Submit(t, requests.Request{Type: requests.CreateAccount, BeneficiaryType: "workgroup", BeneficiaryID: wg.ID,
			ConnectorID: rec.ID, Entitlements: g})
		checkCounters(t, b, "just submitted")
		run = b.Wait(t, run.ID, 20*time.Second, func(i *requests.Instance) bool {
			return byUser(i, "blocked", "account.create").Status == requests.JobRunning &&
				byUser(i, "ok", "entitlement.grant").Status == requests.JobCompleted
		})
		checkCounters(t, b, "one job running")
		if _, err := b.Requests.CancelJob(b.Ctx, byUser(run, "blocked", "entitlement.grant").ID, "admin"); err != nil {
			t.Fatal(err)
		}
		checkCounters(t, b, "after canceling a job")

		// A second blocked run, canceled as a whole while its first job runs.
		second := b.Submit(t, requests.Request{Type: requests.CreateAccount, BeneficiaryType: "identity", BeneficiaryID: blocked.ID,
			ConnectorID: rec.ID, Entitlements: g})
		b.Wait(t, second.ID, 20*time.Second, func(i *requests.Instance) bool { return i.Jobs[0].Status == requests.JobRunning })
		if _, err := b.Requests.CancelInstance(b.Ctx, second.ID, "admin"); err != nil {
			t.Fatal(err)
		}
		checkCounters(t, b, "after canceling a run")

		// A permanent failure, retried by an admin, failing again.
		failed := b.WaitSettled(t, b.Submit(t, requests.Request{Type: requests.LockAccount, BeneficiaryType: "identity",
			BeneficiaryID: denied.ID, ConnectorID: rec.ID}).ID)
		checkCounters(t, b, "after a failure")
		if _, err := b.Requests.RetryJob(b.Ctx, failed.Jobs[0].ID, "admin"); err != nil {
			t.Fatal(err)
		}
		checkCounters(t, b, "after a retry")
		if again := b.WaitSettled(t, failed.ID); again.Status != requests.InstanceFailed {
			t.Errorf("retried run: %s", apptest.Describe(again))
		}

		// A transient error: back to pending, then completed.
		if r := b.WaitSettled(t, b.Submit(t, requests.Request{Type: requests.LockAccount, BeneficiaryType: "identity",
			BeneficiaryID: retry.ID, ConnectorID: rec.ID}).ID); r.Jobs[0].Attempts != 2 || r.Status != requests.InstanceCompleted {
			t.Errorf("transient run: %s", apptest.Describe(r))
		}
		checkCounters(t, b, "after a transient error")

		// Time-bound access: a scheduled revocation, run now by Force End.
		timed := b.WaitSettled(t, b.Submit(t, requests.Request{Type: requests.AddEntitlements, BeneficiaryType: "identity",
			BeneficiaryID: tb.ID, ConnectorID: rec.ID, Entitlements: g, Duration: "30d"}).ID)
		if timed.Status != requests.InstanceActive {
			t.Fatalf("time-bound run: %s %s", timed.Status, apptest.Describe(timed))
		}
		checkCounters(t, b, "with a scheduled revocation")
		checkListGroups(t, b)
		if _, err := b.Requests.ForceEnd(b.Ctx, timed.ID, "admin"); err != nil {
			t.Fatal(err)
		}
		checkCounters(t, b, "after Force End")
		b.WaitSettled(t, timed.ID)

		close(f.release)
		for _, id := range []string{run.ID, second.ID} {
			b.WaitSettled(t, id)
		}
		checkCounters(t, b, "at the end")
		checkListGroups(t, b)
	})
}

// Runs written before the counters existed get them from the migration.
func TestJobCountersBackfilledByMigration(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect string) {
		t.Parallel()
		b := apptest.New(t, dialect, &apptest.Options{NoStart: true})
		dir, ents := b.Directory(t, "Dir", "VPN", "Wiki", "Mail")
		wg := b.Workgroup(t, "W", b.Identity(t, "alice"), b.Identity(t, "bob"), b.Identity(t, "carol"))
		for range 3 {
			b.Submit(t, requests.Request{Type: requests.AddEntitlements, BeneficiaryType: "workgroup", BeneficiaryID: wg.ID,
				ConnectorID: dir.ID, Entitlements: []string{ents["VPN"].ID, ents["Wiki"].ID, ents["Mail"].ID}, Duration: "8h"})
		}
		ctx := context.Background()
		applied, err := migrations.Status(ctx, b.DB.SQL)
		if err != nil {
			t.Fatal(err)
		}
		steps := 0
		for _, a := range applied {
			if a.Version >= 5 {
				steps++
			}
		}
		if _, err := migrations.Down(ctx, b.DB.SQL, dialect, steps); err != nil {
			t.Fatalf("down to 004: %v", err)
		}
		// What older versions wrote: every status, with no counters.
		statuses := `CASE seq % 6 WHEN 0 THEN 'pending' WHEN 1 THEN 'running' WHEN 2 THEN 'completed'
			WHEN 3 THEN 'failed' WHEN 4 THEN 'canceled' ELSE 'scheduled' END`
		if _, err := b.DB.SQL.ExecContext(ctx, "UPDATE connector_jobs SET status = "+statuses); err != nil {
			t.Fatal(err)
		}
		if _, err := migrations.Up(ctx, b.DB.SQL, dialect); err != nil {
			t.Fatalf("up: %v", err)
		}
		checkCounters(t, b, "after the migration")
		q := "SELECT sum(jobs_pending), sum(jobs_running), sum(jobs_completed), sum(jobs_failed), sum(jobs_canceled), sum(jobs_scheduled) FROM request_instances"
		sums := make([]int64, 6)
		if err := b.DB.SQL.QueryRowContext(ctx, q).Scan(&sums[0], &sums[1], &sums[2], &sums[3], &sums[4], &sums[5]); err != nil {
			t.Fatal(err)
		}
		if slices.Contains(sums, 0) {
			t.Errorf("backfilled counters by status (pending, running, completed, failed, canceled, scheduled): %v, want each above 0", sums)
		}
	})
}
