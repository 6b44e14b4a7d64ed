package app_test

import (
	"testing"
	"time"

	"github.com/provisor/provisor/app/apptest"
	"github.com/provisor/provisor/app/database/dbtest"
	"github.com/provisor/provisor/requests"
	"github.com/provisor/provisor/tasks"
)

func waitNextRun(t *testing.T, b *apptest.Bundle, id string, want bool) time.Time {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		next, ok := b.Scheduler.NextRun(id)
		if ok == want {
			return next
		}
		if time.Now().After(deadline) {
			t.Fatalf("schedule of %s present=%v after 5s, want %v", id, ok, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
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
		deadline := time.Now().Add(5 * time.Second)
		for {
			next, _ := b.Scheduler.NextRun(task.ID)
			if next.In(ny).Hour() == 6 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("changed schedule not applied: next %v", next.In(ny))
			}
			time.Sleep(20 * time.Millisecond)
		}

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
