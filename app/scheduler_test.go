package app_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/provisor/provisor/app/apptest"
	"github.com/provisor/provisor/database/dbtest"
	"github.com/provisor/provisor/internal/testwait"
	"github.com/provisor/provisor/requests"
	"github.com/provisor/provisor/tasks"
)

func waitNextRun(t *testing.T, b *apptest.Bundle, id string, want bool) time.Time {
	t.Helper()
	return testwait.For(t, 10*time.Second, func() (time.Time, error) {
		next, ok := b.Scheduler.NextRun(id)
		if ok != want {
			return next, fmt.Errorf("schedule of %s present=%v, want %v", id, ok, want)
		}
		return next, nil
	})
}

// A schedule changed through the service, or by another process straight
// in the database, takes effect without a restart.
func TestSchedulerFollowsScheduleChanges(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect string) {
		t.Parallel()
		b := apptest.New(t, dialect, nil)
		dir, _ := b.Directory(t, "Dir")
		alice := b.Identity(t, "alice")
		s := func(v string) *string { return &v }
		task, err := b.Tasks.Create(b.Ctx, tasks.Input{Name: s("Nightly"), Cron: s("30 22 * * *"), Timezone: s("America/New_York"),
			Request: &requests.Request{Type: requests.LockAccount, BeneficiaryType: "identity", BeneficiaryID: alice.ID,
				ConnectorID: dir.ID, Justification: "x"}}, "admin")
		if err != nil {
			t.Fatal(err)
		}
		next := waitNextRun(t, b, task.ID, true)
		ny, _ := time.LoadLocation("America/New_York")
		if l := next.In(ny); l.Hour() != 22 || l.Minute() != 30 {
			t.Errorf("next run %v, want 22:30 New York time", l)
		}
		if !next.Equal(task.NextRuns[0]) {
			t.Errorf("scheduler's next run %v, task says %v", next, task.NextRuns[0])
		}

		if _, err := b.Tasks.Update(b.Ctx, task.ID, tasks.Input{Cron: s("15 6 * * *")}, "admin"); err != nil {
			t.Fatal(err)
		}
		testwait.Until(t, 10*time.Second, func() error {
			if next, _ := b.Scheduler.NextRun(task.ID); next.In(ny).Hour() != 6 {
				return fmt.Errorf("changed schedule not applied: next %v", next.In(ny))
			}
			return nil
		})

		// Another process disables it: the periodic re-read notices.
		if err := b.DB.Gorm.Exec("UPDATE tasks SET schedule_enabled = ? WHERE id = ?", false, task.ID).Error; err != nil {
			t.Fatal(err)
		}
		waitNextRun(t, b, task.ID, false)
		if err := b.DB.Gorm.Exec("UPDATE tasks SET schedule_enabled = ? WHERE id = ?", true, task.ID).Error; err != nil {
			t.Fatal(err)
		}
		waitNextRun(t, b, task.ID, true)
		no := false
		if _, err := b.Tasks.Update(b.Ctx, task.ID, tasks.Input{Enabled: &no}, "admin"); err != nil {
			t.Fatal(err)
		}
		waitNextRun(t, b, task.ID, false)
	})
}

// A fire that comes late claims the tick it was scheduled for: the
// schedule's activation at or before the fire, not the nearest minute. Each
// tick runs once however many processes fire it, however late.
func TestLateFireClaimsItsOwnTick(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect string) {
		t.Parallel()
		b := apptest.New(t, dialect, nil)
		dir, _ := b.Directory(t, "Dir")
		alice := b.Identity(t, "alice")
		s := func(v string) *string { return &v }
		off := false
		// The schedule is off, so that this process's own scheduler
		// leaves it to the test's fires.
		task, err := b.Tasks.Create(b.Ctx, tasks.Input{Name: s("Every minute"), Cron: s("* * * * *"), Timezone: s("Europe/Paris"),
			ScheduleEnabled: &off, Request: &requests.Request{Type: requests.LockAccount, BeneficiaryType: "identity",
				BeneficiaryID: alice.ID, ConnectorID: dir.ID, Justification: "x"}}, "admin")
		if err != nil {
			t.Fatal(err)
		}
		ticks := func() []string {
			var out []time.Time
			if err := b.DB.Gorm.Table("schedule_ticks").Where("task_id = ?", task.ID).Order("tick_at").Pluck("tick_at", &out).Error; err != nil {
				t.Fatal(err)
			}
			s := make([]string, len(out))
			for i, v := range out {
				s[i] = v.UTC().Format(time.RFC3339)
			}
			return s
		}
		paris, _ := time.LoadLocation("Europe/Paris")
		ten := time.Date(2026, 5, 4, 10, 0, 0, 0, paris) // 08:00 UTC
		fire := func(at time.Time) *requests.Instance {
			t.Helper()
			inst, err := b.Scheduler.Fire(task.ID, "* * * * *", "Europe/Paris", at)
			if err != nil {
				t.Fatalf("fire at %s: %v", at, err)
			}
			return inst
		}

		// This process fires 10:00 forty seconds late: it is 10:00's run.
		if inst := fire(ten.Add(40 * time.Second)); inst == nil {
			t.Fatal("late fire of 10:00 started no run")
		}
		if got := strings.Join(ticks(), ","); got != "2026-05-04T08:00:00Z" {
			t.Fatalf("ticks after the late fire: %s, want 10:00 Paris (08:00 UTC)", got)
		}
		// Another process fired 10:00 on time (a little early, even): the
		// tick is taken.
		if inst := fire(ten.Add(-300 * time.Millisecond)); inst != nil {
			t.Errorf("second fire of 10:00 started run %s", inst.ID)
		}
		// 10:01 fires on time and is not swallowed by the late 10:00.
		if inst := fire(ten.Add(time.Minute + 20*time.Millisecond)); inst == nil {
			t.Error("10:01 started no run")
		}
		if got := strings.Join(ticks(), ","); got != "2026-05-04T08:00:00Z,2026-05-04T08:01:00Z" {
			t.Errorf("ticks: %s, want 10:00 and 10:01 Paris", got)
		}
		runs, total, err := b.Requests.ListInstances(b.Ctx, requests.InstanceFilter{TaskID: task.ID})
		if err != nil {
			t.Fatal(err)
		}
		if total != 2 {
			t.Errorf("%d runs, want 2 (one per tick): %+v", total, runs)
		}
	})
}
