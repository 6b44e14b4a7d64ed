package tasks_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/provisor/provisor/app/apptest"
	"github.com/provisor/provisor/audit"
	"github.com/provisor/provisor/database/dbtest"
	"github.com/provisor/provisor/internal/testwait"
	"github.com/provisor/provisor/requests"
	"github.com/provisor/provisor/tasks"
)

func str(s string) *string { return &s }
func yes(b bool) *bool     { return &b }

func TestParseSchedule(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		expr, tz, wantErr string
	}{
		{"*/15 * * * *", "UTC", ""},
		{"0 22 * * 1-5", "Europe/Paris", ""},
		{"@daily", "UTC", ""},
		{"0 22 * * *", "Mars/Olympus", "timezone"},
		{"0 22 * * *", "", "timezone"},
		{"0 0 22 * * *", "UTC", "has 6 fields"},
		{"61 * * * *", "UTC", "cron"},
		{"@every 1s", "UTC", "@every is not supported"},
		{"CRON_TZ=UTC 0 * * * *", "UTC", "time zone separately"},
	} {
		_, _, err := tasks.ParseSchedule(c.expr, c.tz)
		switch {
		case c.wantErr == "" && err != nil:
			t.Errorf("%q %q: %v", c.expr, c.tz, err)
		case c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)):
			t.Errorf("%q %q: err %v, want %q", c.expr, c.tz, err, c.wantErr)
		}
	}
	from := time.Date(2026, 3, 28, 20, 0, 0, 0, time.UTC)
	runs, err := tasks.NextRuns("30 1 * * *", "Europe/Paris", from, 3)
	if err != nil {
		t.Fatal(err)
	}
	// 01:30 Paris is 00:30 UTC before the switch to summer time (29 March), 23:30 UTC after.
	want := []string{"2026-03-29T00:30:00Z", "2026-03-29T23:30:00Z", "2026-03-30T23:30:00Z"}
	for i, r := range runs {
		if got := r.UTC().Format(time.RFC3339); got != want[i] {
			t.Errorf("run %d = %s, want %s", i, got, want[i])
		}
	}
}

func TestPrevRun(t *testing.T) {
	t.Parallel()
	utc := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, c := range []struct {
		expr, tz, at, want string
	}{
		{"* * * * *", "UTC", "2026-05-04T10:00:40Z", "2026-05-04T10:00:00Z"},
		{"* * * * *", "UTC", "2026-05-04T10:00:00Z", "2026-05-04T10:00:00Z"},
		{"*/15 * * * *", "UTC", "2026-05-04T10:14:59.9Z", "2026-05-04T10:00:00Z"},
		{"0 22 * * *", "UTC", "2026-05-04T10:00:00Z", "2026-05-03T22:00:00Z"},
		// 01:30 Paris is 23:30 UTC the day before in summer.
		{"30 1 * * *", "Europe/Paris", "2026-06-01T23:31:10Z", "2026-06-01T23:30:00Z"},
		{"* * * * 1", "UTC", "2026-05-06T12:00:00Z", "2026-05-04T23:59:00Z"}, // a Wednesday; Monday's last minute
		{"0 0 29 2 *", "UTC", "2027-01-01T00:00:00Z", "2024-02-29T00:00:00Z"},
	} {
		got, err := tasks.PrevRun(c.expr, c.tz, utc(c.at))
		if err != nil {
			t.Errorf("%q %s at %s: %v", c.expr, c.tz, c.at, err)
			continue
		}
		if !got.Equal(utc(c.want)) {
			t.Errorf("%q %s at %s = %s, want %s", c.expr, c.tz, c.at, got.UTC().Format(time.RFC3339), c.want)
		}
	}
}

func TestTaskLifecycle(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect string) {
		t.Parallel()
		b := apptest.New(t, dialect, nil)
		dir, ents := b.Directory(t, "Dir", "VPN")
		alice := b.Identity(t, "alice")
		req := &requests.Request{Type: requests.CreateAccount, BeneficiaryType: "identity", BeneficiaryID: alice.ID,
			ConnectorID: dir.ID, Entitlements: []string{ents["VPN"].ID}, Justification: "new hire"}

		// Every problem is named, including the request's, and nothing is written.
		_, err := b.Tasks.Create(b.Ctx, tasks.Input{Name: str(" "), Cron: str("99 * * * *"), Timezone: str("Nowhere/Land"),
			Request: &requests.Request{Type: "bogus"}, Notify: &tasks.Notify{When: "sometimes"}}, "alice")
		got := requests.FieldMap(err)
		for _, f := range []string{"name", "timezone", "request.type", "request.justification", "notify.when"} {
			if got[f] == "" {
				t.Errorf("no error for %s: %v", f, got)
			}
		}
		if list, total, _ := b.Tasks.List(b.Ctx, tasks.ListOpts{}); total != 0 || len(list) != 0 {
			t.Fatalf("invalid task was stored")
		}

		task, err := b.Tasks.Create(b.Ctx, tasks.Input{Name: str("Onboard Alice"), Description: str("first day"), Request: req}, "alice")
		if err != nil {
			t.Fatal(err)
		}
		if task.Status != tasks.StatusIdle || task.BeneficiaryName != "alice" || task.Type != requests.CreateAccount || task.Notify.When != "always" {
			t.Errorf("task = %+v", task)
		}
		if _, err := b.Tasks.Create(b.Ctx, tasks.Input{Name: str("Onboard Alice"), Request: req}, "alice"); requests.FieldMap(err)["name"] == "" {
			t.Errorf("duplicate name: %v", err)
		}

		// Trigger: Triggered while the run is under way, Idle after, with the last result.
		inst, err := b.Tasks.Trigger(b.Ctx, task.ID, requests.TriggerManual, "admin")
		if err != nil {
			t.Fatal(err)
		}
		if now, _ := b.Tasks.Get(b.Ctx, task.ID); now.Status != tasks.StatusTriggered {
			t.Errorf("right after trigger the task is %s", now.Status)
		}
		if inst.TaskName != "Onboard Alice" || inst.Trigger != requests.TriggerManual || inst.TriggeredBy != "admin" {
			t.Errorf("instance = %+v", inst)
		}
		b.WaitSettled(t, inst.ID)
		var after *tasks.Task
		_ = testwait.Poll(b.Ctx, 10*time.Second, func() error {
			after, _ = b.Tasks.Get(b.Ctx, task.ID)
			if after.Status != tasks.StatusIdle {
				return errors.New(after.Status)
			}
			return nil
		})
		if after.Status != tasks.StatusIdle || after.LastResult != requests.InstanceCompleted || after.LastRunAt == nil ||
			after.LastInstanceID == nil || *after.LastInstanceID != inst.ID {
			t.Errorf("after the run: %+v", after)
		}
		hist, total, err := b.Requests.ListInstances(b.Ctx, requests.InstanceFilter{TaskID: task.ID})
		if err != nil || total != 1 || hist[0].ID != inst.ID {
			t.Errorf("history: %v %d %v", hist, total, err)
		}

		// Disabled tasks do not run, and say so.
		if _, err := b.Tasks.Update(b.Ctx, task.ID, tasks.Input{Enabled: yes(false)}, "admin"); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Tasks.Trigger(b.Ctx, task.ID, requests.TriggerManual, "admin"); !errors.Is(err, tasks.ErrConflict) || !strings.Contains(err.Error(), "disabled") {
			t.Errorf("trigger disabled: %v", err)
		}
		upd, err := b.Tasks.Update(b.Ctx, task.ID, tasks.Input{Enabled: yes(true), Name: str("Onboard Alice Martin"),
			Cron: str("0 8 * * 1"), Timezone: str("Europe/Paris")}, "admin")
		if err != nil {
			t.Fatal(err)
		}
		if upd.Status != tasks.StatusIdle || upd.Name != "Onboard Alice Martin" || !upd.ScheduleEnabled || len(upd.NextRuns) != 5 {
			t.Errorf("updated = %+v", upd)
		}
		if upd.NextRuns[0].In(time.UTC).Weekday() != time.Monday {
			t.Errorf("next run %v is not a Monday", upd.NextRuns[0])
		}
		if _, err := b.Tasks.Update(b.Ctx, task.ID, tasks.Input{Cron: str("every day")}, "admin"); requests.FieldMap(err)["cron"] == "" {
			t.Errorf("bad cron on update: %v", err)
		}
		if _, err := b.Tasks.Update(b.Ctx, task.ID, tasks.Input{Cron: str(""), ScheduleEnabled: yes(true)}, "admin"); requests.FieldMap(err)["cron"] == "" {
			t.Errorf("schedule without cron: %v", err)
		}

		// Delete keeps the past runs.
		if err := b.Tasks.Delete(b.Ctx, task.ID, "admin"); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Tasks.Get(b.Ctx, task.ID); !errors.Is(err, tasks.ErrNotFound) {
			t.Errorf("get deleted: %v", err)
		}
		if old, err := b.Requests.GetInstance(b.Ctx, inst.ID); err != nil || old.TaskName != "Onboard Alice" {
			t.Errorf("past run after delete: %v", err)
		}
	})
}

func TestTriggerTickFiresOnce(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect string) {
		t.Parallel()
		b := apptest.New(t, dialect, &apptest.Options{NoStart: true})
		dir, _ := b.Directory(t, "Dir")
		alice := b.Identity(t, "alice")
		task, err := b.Tasks.Create(b.Ctx, tasks.Input{Name: str("Nightly lock"), Cron: str("0 22 * * *"), Timezone: str("UTC"),
			Request: &requests.Request{Type: requests.LockAccount, BeneficiaryType: "identity", BeneficiaryID: alice.ID,
				ConnectorID: dir.ID, Justification: "nightly"}}, "admin")
		if err != nil {
			t.Fatal(err)
		}
		tick := time.Date(2026, 11, 23, 22, 0, 0, 0, time.UTC)
		type result struct {
			inst *requests.Instance
			err  error
		}
		results := make(chan result, 4)
		for range 4 {
			go func() {
				inst, err := b.Tasks.TriggerTick(b.Ctx, task.ID, tick)
				results <- result{inst, err}
			}()
		}
		started := 0
		for range 4 {
			r := <-results
			if r.err != nil {
				t.Errorf("TriggerTick: %v", r.err)
			}
			if r.inst != nil {
				started++
				if r.inst.Trigger != requests.TriggerSchedule || r.inst.TriggeredBy != audit.ActorScheduler {
					t.Errorf("instance = %+v", r.inst)
				}
			}
		}
		if started != 1 {
			t.Errorf("%d runs for one tick, want 1", started)
		}
		if next, err := b.Tasks.TriggerTick(b.Ctx, task.ID, tick.Add(24*time.Hour)); err != nil || next == nil {
			t.Errorf("next tick: %v %v", next, err)
		}
	})
}

// Many runs of one task ending together leave it Idle with the newest run's
// result, and a task left Triggered (its process stopped right after its
// last run ended) is brought back by Reconcile.
func TestTaskSettlesAfterConcurrentRunsAndReconciles(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect string) {
		t.Parallel()
		// The scheduler's own reconciling waits an hour: the runs alone
		// must bring the task back to Idle.
		b := apptest.New(t, dialect, &apptest.Options{Args: []string{"--schedule-sync", "1h"}})
		dir, ents := b.Directory(t, "Dir", "VPN", "Wiki")
		alice := b.Identity(t, "alice")
		b.WaitSettled(t, b.Submit(t, requests.Request{Type: requests.CreateAccount, BeneficiaryType: "identity", BeneficiaryID: alice.ID,
			ConnectorID: dir.ID}).ID)
		task, err := b.Tasks.Create(b.Ctx, tasks.Input{Name: str("Grant"), Request: &requests.Request{Type: requests.AddEntitlements,
			BeneficiaryType: "identity", BeneficiaryID: alice.ID, ConnectorID: dir.ID, Entitlements: []string{ents["VPN"].ID, ents["Wiki"].ID},
			Justification: "x"}}, "admin")
		if err != nil {
			t.Fatal(err)
		}
		// The runs overlap and end close together.
		var last *requests.Instance
		var runs []string
		for range 30 {
			if last, err = b.Tasks.Trigger(b.Ctx, task.ID, requests.TriggerAPI, "admin"); err != nil {
				t.Fatal(err)
			}
			runs = append(runs, last.ID)
		}
		// On a loaded machine a run may wait for a retry: every run ends
		// first, then the task must be Idle at once.
		for _, id := range runs {
			b.WaitSettled(t, id)
		}
		var got *tasks.Task
		_ = testwait.Poll(b.Ctx, 10*time.Second, func() error {
			if got, err = b.Tasks.Get(b.Ctx, task.ID); err != nil {
				t.Fatal(err)
			}
			// The runs' after-commit hooks may come in any order: one that
			// finds no run busy makes the task Idle, and the newest run's
			// records its result, maybe a moment later.
			if got.Status != tasks.StatusIdle || got.LastResult != requests.InstanceCompleted {
				return errors.New(got.Status)
			}
			return nil
		})
		if got.Status != tasks.StatusIdle || got.LastResult != requests.InstanceCompleted || *got.LastInstanceID != last.ID {
			t.Fatalf("after 30 runs: status %s, last result %s, last run %v (want %s)", got.Status, got.LastResult, *got.LastInstanceID, last.ID)
		}

		// A task left Triggered with no busy run, and a stale result.
		if err := b.DB.Gorm.Table("tasks").Where("id = ?", task.ID).Updates(map[string]any{"status": tasks.StatusTriggered, "last_result": "running"}).Error; err != nil {
			t.Fatal(err)
		}
		if err := b.Tasks.Reconcile(b.Ctx); err != nil {
			t.Fatal(err)
		}
		if got, _ = b.Tasks.Get(b.Ctx, task.ID); got.Status != tasks.StatusIdle || got.LastResult != requests.InstanceCompleted {
			t.Errorf("after Reconcile: status %s, last result %s", got.Status, got.LastResult)
		}
		// A task with a run under way stays Triggered.
		run, err := b.Tasks.Trigger(b.Ctx, task.ID, requests.TriggerAPI, "admin")
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Tasks.Reconcile(b.Ctx); err != nil {
			t.Fatal(err)
		}
		// The task is read first: if the run is still under way after,
		// it was then too.
		got, _ = b.Tasks.Get(b.Ctx, task.ID)
		if inst, _ := b.Requests.GetInstance(b.Ctx, run.ID); requests.Busy(inst.Status) && got.Status != tasks.StatusTriggered {
			t.Errorf("Reconcile with a run under way: status %s", got.Status)
		}
		b.WaitSettled(t, run.ID)
	})
}

// Admins who change different fields of a task at the same moment each
// keep their change: an edit writes only the fields it changes, onto the
// task as it is under its lock.
func TestConcurrentEditsOfDifferentFieldsAllStay(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect string) {
		t.Parallel()
		b := apptest.New(t, dialect, &apptest.Options{NoStart: true})
		dir, _ := b.Directory(t, "Dir")
		alice := b.Identity(t, "alice")
		task, err := b.Tasks.Create(b.Ctx, tasks.Input{Name: str("Lock Alice"), Description: str("before"),
			Request: &requests.Request{Type: requests.LockAccount, BeneficiaryType: "identity", BeneficiaryID: alice.ID,
				ConnectorID: dir.ID, Justification: "x"}}, "admin")
		if err != nil {
			t.Fatal(err)
		}
		// A slow transaction holds the task's row while the edits read the
		// task and wait for it, so that each has read it before any writes.
		held, release, holderDone := make(chan struct{}), make(chan struct{}), make(chan error, 1)
		go func() {
			holderDone <- b.DB.InTx(b.Ctx, func(tx *gorm.DB) error {
				if err := tx.Exec("UPDATE tasks SET updated_at = ? WHERE id = ?", time.Now().UTC(), task.ID).Error; err != nil {
					return err
				}
				close(held)
				<-release
				return nil
			})
		}()
		<-held
		edits := []tasks.Input{
			{Name: str("Lock Alice nightly")},
			{Description: str("after")},
			{Cron: str("0 6 * * *"), Timezone: str("Europe/Paris")},
			{Notify: &tasks.Notify{When: "failure", Recipients: []string{tasks.NotifyRequester}, Enabled: true}},
		}
		errs := make(chan error, len(edits))
		for i, in := range edits {
			go func() {
				_, err := b.Tasks.Update(b.Ctx, task.ID, in, fmt.Sprintf("admin%d", i))
				errs <- err
			}()
		}
		// Every edit has read the task and waits for the lock.
		testwait.Until(t, 10*time.Second, func() error {
			n, err := b.DB.Waiting(b.Ctx)
			if err != nil {
				t.Fatal(err)
			}
			if n < len(edits) {
				return fmt.Errorf("%d edits wait for the lock, want %d", n, len(edits))
			}
			return nil
		})
		close(release)
		if err := <-holderDone; err != nil {
			t.Fatal(err)
		}
		for range edits {
			if err := <-errs; err != nil {
				t.Errorf("edit: %v", err)
			}
		}
		got, err := b.Tasks.Get(b.Ctx, task.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Name != "Lock Alice nightly" || got.Description != "after" || got.Cron != "0 6 * * *" || got.Timezone != "Europe/Paris" ||
			!got.ScheduleEnabled || got.Notify.When != "failure" || !got.Notify.Enabled || strings.Join(got.Notify.Recipients, ",") != "requester" {
			t.Errorf("after four edits: name %q, description %q, schedule %q %q on=%v, notify %+v",
				got.Name, got.Description, got.Cron, got.Timezone, got.ScheduleEnabled, got.Notify)
		}
	})
}
