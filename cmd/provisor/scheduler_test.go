package main

import (
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/provisor/provisor/database/dbtest"
	"github.com/provisor/provisor/internal/testwait"
	"github.com/provisor/provisor/tasks"
)

// TestScheduleTwoProcesses runs two `provisor serve` on one PostgreSQL
// database with tasks scheduled every minute, and checks across two real
// minute ticks that both processes fire each tick, that each tick starts
// exactly one run, that no connector job runs twice, and that a schedule
// switched off through the API of one process stops firing in both,
// without a restart.
//
// Schedules have a minute's resolution (5-field cron, ticks claimed per
// minute), so the test waits for two minute boundaries: 65 to 125 seconds.
func TestScheduleTwoProcesses(t *testing.T) {
	t.Parallel()
	dbURL := dbtest.NewPostgres(t)
	dbArgs := []string{"--database", dbURL, "--secret-key", testSecretKey}
	clientID, secret := createAPIClient(t, append(dbArgs, "--data-dir", t.TempDir())...)
	// Debug logs show every firing, including the ones that lose the claim;
	// --schedule-sync 1s lets a process see another's schedule changes soon.
	serveArgs := append([]string{"--workers", "4", "--schedule-sync", "1s", "--log-level", "debug"}, dbArgs...)
	procs := []*server{
		startServer(t, "serve-a", append(serveArgs, "--data-dir", t.TempDir())...),
		startServer(t, "serve-b", append(serveArgs, "--data-dir", t.TempDir())...),
	}
	apiA := newAPI(t, procs[0].URL, clientID, secret)
	apiB := newAPI(t, procs[1].URL, clientID, secret)
	dir := makeDirectory(apiA, "sched", 5, 2)
	db := openDB(t, dbURL, "")

	newTask := func(a *apiClient, name string) tasks.Task {
		t.Helper()
		var tk tasks.Task
		a.do(http.MethodPost, "/api/v1/tasks", map[string]any{
			"name": name, "request": dir.createAccounts(), "cron": "* * * * *", "timezone": "UTC",
		}, &tk)
		if !tk.ScheduleEnabled || len(tk.NextRuns) == 0 {
			t.Fatalf("task %s: schedule_enabled %v, next runs %v; want an enabled schedule", name, tk.ScheduleEnabled, tk.NextRuns)
		}
		return tk
	}
	keep := newTask(apiA, "every-minute")
	stop := newTask(apiB, "switched-off-after-first-tick")
	// The first tick the test follows is the first one after both
	// processes know both schedules; a tick that came while one of them
	// was still learning them is left out of what is checked.
	for _, p := range procs {
		for _, tk := range []tasks.Task{keep, stop} {
			added := regexp.MustCompile(`msg="schedule added".* component=scheduler.* task_id=` + regexp.QuoteMeta(tk.ID))
			testwait.Until(t, 30*time.Second, func() error {
				if !added.MatchString(p.logText()) {
					return fmt.Errorf("%s does not have the schedule of %s yet", p.name, tk.Name)
				}
				return nil
			})
		}
	}
	tick1 := time.Now().UTC().Truncate(time.Minute).Add(time.Minute)
	tick2 := tick1.Add(time.Minute)
	if next := keep.NextRuns[0]; next.After(tick1) {
		t.Fatalf("next run of %s is %s, want %s or before", keep.Name, next, tick1)
	}
	t.Logf("waiting for the ticks of %s and %s", tick1.Format(time.TimeOnly), tick2.Format(time.TimeOnly))

	// Tick 1: both tasks fire in both processes; one run each.
	waitFired(t, procs, keep.Name, tick1)
	waitFired(t, procs, stop.Name, tick1)
	checkOneWinner(t, procs, keep.Name, tick1)
	checkOneWinner(t, procs, stop.Name, tick1)

	// Switch the second schedule off through the process that did not make it.
	var changed tasks.Task
	apiA.do(http.MethodPatch, "/api/v1/tasks/"+stop.ID, map[string]any{"schedule_enabled": false}, &changed)
	if changed.ScheduleEnabled || len(changed.NextRuns) != 0 {
		t.Fatalf("after PATCH schedule_enabled=false: schedule_enabled %v, next runs %v", changed.ScheduleEnabled, changed.NextRuns)
	}

	// Both processes drop the schedule before tick 2 (they re-read
	// schedules every second): from then on it cannot fire.
	removed := regexp.MustCompile(`msg="schedule removed".* component=scheduler.* task_id=` + regexp.QuoteMeta(stop.ID))
	for _, p := range procs {
		testwait.Until(t, 30*time.Second, func() error {
			if !removed.MatchString(p.logText()) {
				return fmt.Errorf("%s still has the schedule of %s", p.name, stop.Name)
			}
			return nil
		})
	}
	if time.Now().After(tick2) {
		t.Fatalf("the schedule of %s was dropped after the tick of %s", stop.Name, tick2.Format(time.TimeOnly))
	}

	// Tick 2: only the first task fires, still in both processes.
	waitFired(t, procs, keep.Name, tick2)
	checkOneWinner(t, procs, keep.Name, tick2)
	for _, p := range procs {
		for _, f := range firings(p, stop.Name) {
			if f.tick.After(tick1) {
				t.Errorf("%s fired %s for the tick of %s after its schedule was switched off: %s", p.name, stop.Name, f.tick.Format(time.TimeOnly), f.msg)
			}
		}
		select {
		case <-p.done:
			t.Fatalf("%s exited: %v", p.name, p.err)
		default:
		}
	}

	// The database holds one claimed tick and one scheduled run per minute.
	for _, c := range []struct {
		task  tasks.Task
		ticks []time.Time
	}{{keep, []time.Time{tick1, tick2}}, {stop, []time.Time{tick1}}} {
		var claimed []time.Time
		if err := db.Raw(`SELECT tick_at FROM schedule_ticks WHERE task_id = ? AND tick_at >= ? ORDER BY tick_at`, c.task.ID, tick1).Scan(&claimed).Error; err != nil {
			t.Fatal(err)
		}
		var runs []struct {
			ID        string
			Trigger   string
			CreatedAt time.Time
		}
		if err := db.Raw(`SELECT id, trigger, created_at FROM request_instances WHERE task_id = ? AND created_at >= ? ORDER BY created_at`, c.task.ID, tick1.Add(-time.Second)).Scan(&runs).Error; err != nil {
			t.Fatal(err)
		}
		if len(claimed) != len(c.ticks) || len(runs) != len(c.ticks) {
			t.Fatalf("%s: %d claimed ticks %v and %d runs, want one of each for %v", c.task.Name, len(claimed), claimed, len(runs), c.ticks)
		}
		var ids []string
		for i, tick := range c.ticks {
			r := runs[i]
			ids = append(ids, r.ID)
			if !claimed[i].Equal(tick) {
				t.Errorf("%s: claimed tick %s, want %s", c.task.Name, claimed[i], tick)
			}
			if r.Trigger != "schedule" || r.CreatedAt.Before(tick.Add(-time.Second)) || !r.CreatedAt.Before(tick.Add(30*time.Second)) {
				t.Errorf("%s: run %s triggered by %s at %s, want one triggered by schedule just after %s", c.task.Name, r.ID, r.Trigger, r.CreatedAt, tick)
			}
		}
		apiB.waitFinal(time.Minute, ids...)
	}
	checkJobsRanOnce(t, db)
}

// firing is one firing of a schedule in a process's log.
type firing struct {
	tick time.Time
	msg  string
}

var schedLine = regexp.MustCompile(`msg="([^"]*)".* component=scheduler task=(\S+) tick=(\S+)`)

// firings lists the times a process fired task's schedule, as its log says:
// "scheduled run started", "tick already fired by another process", or
// "scheduled run failed to start".
func firings(p *server, task string) []firing {
	var out []firing
	for _, l := range strings.Split(p.logText(), "\n") {
		m := schedLine.FindStringSubmatch(l)
		if m == nil || m[2] != task {
			continue
		}
		tick, err := time.Parse(time.RFC3339, m[3])
		if err != nil {
			p.t.Fatalf("%s: tick in %q: %v", p.name, l, err)
		}
		out = append(out, firing{tick: tick, msg: m[1]})
	}
	return out
}

// waitFired waits until every process logged its firing of task's tick.
func waitFired(t *testing.T, procs []*server, task string, tick time.Time) {
	t.Helper()
	deadline := tick.Add(30 * time.Second)
	for _, p := range procs {
		testwait.Until(t, time.Until(deadline), func() error {
			n := 0
			for _, f := range firings(p, task) {
				if f.tick.Equal(tick) {
					n++
				}
			}
			if n > 1 {
				t.Fatalf("%s fired %s %d times for the tick of %s", p.name, task, n, tick.Format(time.TimeOnly))
			}
			if n == 0 {
				return fmt.Errorf("%s did not fire %s for the tick of %s", p.name, task, tick.Format(time.TimeOnly))
			}
			return nil
		})
	}
}

// checkOneWinner checks that exactly one process started the tick's run
// and the others found it claimed.
func checkOneWinner(t *testing.T, procs []*server, task string, tick time.Time) {
	t.Helper()
	won := 0
	for _, p := range procs {
		for _, f := range firings(p, task) {
			if !f.tick.Equal(tick) {
				continue
			}
			switch f.msg {
			case "scheduled run started":
				won++
			case "tick already fired by another process":
			default:
				t.Errorf("%s: %s at %s: %s", p.name, task, tick.Format(time.TimeOnly), f.msg)
			}
		}
	}
	if won != 1 {
		t.Errorf("%s: %d processes started a run for the tick of %s, want 1", task, won, tick.Format(time.TimeOnly))
	}
}
