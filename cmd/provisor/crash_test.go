package main

import (
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/provisor/provisor/app/database"
	"github.com/provisor/provisor/app/database/dbtest"
	"github.com/provisor/provisor/requests"
)

// TestCrashRecovery kills `provisor serve` with SIGKILL while runs are half
// done, starts it again on the same database, and checks that every
// connector job ends completed exactly once: jobs whose worker died are
// taken over (rescued) by the new process, and nothing is done twice.
func TestCrashRecovery(t *testing.T) {
	t.Parallel()
	for _, dialect := range dbtest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			crashAndRecover(t, dialect)
		})
	}
}

func crashAndRecover(t *testing.T, dialect string) {
	const (
		people = 60
		groups = 5
		runs   = 3
	)
	dataDir := t.TempDir()
	dbArgs := []string{"--data-dir", dataDir}
	var dbURL, sqlitePath string
	if dialect == database.Postgres {
		dbURL = dbtest.NewPostgres(t)
		dbArgs = append(dbArgs, "--database", dbURL, "--secret-key", testSecretKey)
	} else {
		sqlitePath = filepath.Join(dataDir, "provisor.db")
	}
	clientID, secret := createAPIClient(t, dbArgs...)
	// Few workers, so that a run takes long enough to be cut in the middle
	// (more would mostly wait for the instance's row lock, and some would
	// hit the short job timeout); a short job timeout and rescue delay, so
	// that jobs whose worker died are taken over soon after the restart.
	serveArgs := append([]string{"--workers", "4", "--job-timeout", "2s", "--rescue-after", "5s"}, dbArgs...)

	first := startServer(t, "serve-1", serveArgs...)
	a := newAPI(t, first.URL, clientID, secret)
	dir := makeDirectory(a, "crash", people, groups)
	db := openDB(t, dbURL, sqlitePath)

	var ids []string
	for range runs {
		var inst requests.Instance
		a.do(http.MethodPost, "/api/v1/requests", dir.createAccounts(), &inst)
		ids = append(ids, inst.ID)
	}
	total := int64(runs * people * (1 + groups))
	if n := count(t, db, `SELECT count(*) FROM connector_jobs`); n != total {
		t.Fatalf("%d runs made %d jobs, want %d", runs, n, total)
	}

	// Kill the process in the middle: once a tenth of the jobs completed
	// (a loaded machine may take a while to get there).
	deadline := time.Now().Add(180 * time.Second)
	var done int64
	for {
		done = count(t, db, `SELECT count(*) FROM connector_jobs WHERE status = 'completed'`)
		if done >= total/10 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d jobs completed after 180s", done, total)
		}
		time.Sleep(10 * time.Millisecond)
	}
	first.kill()
	done = count(t, db, `SELECT count(*) FROM connector_jobs WHERE status = 'completed'`)
	runningJobs := count(t, db, `SELECT count(*) FROM connector_jobs WHERE status = 'running'`)
	var orphans []int64
	if err := db.Raw(`SELECT id FROM river_job WHERE kind = 'connector_job' AND state = 'running' ORDER BY id`).Scan(&orphans).Error; err != nil {
		t.Fatal(err)
	}
	t.Logf("killed %s with %d of %d jobs completed, %d jobs marked running, %d queue entries held by the dead process",
		first.name, done, total, runningJobs, len(orphans))
	if done >= total {
		t.Fatalf("every job completed before the kill; the test did not interrupt a run")
	}
	if len(orphans) == 0 {
		t.Fatalf("no queue entry was running when the process died; the test did not exercise the rescue of abandoned jobs")
	}

	second := startServer(t, "serve-2", serveArgs...)
	a = newAPI(t, second.URL, clientID, secret)
	start := time.Now()
	a.waitFinal(2*time.Minute, ids...)
	t.Logf("every run ended %s after the restart", time.Since(start).Round(time.Millisecond))

	jobs := checkJobsRanOnce(t, db)
	if jobs != total {
		t.Errorf("%d jobs, want %d", jobs, total)
	}
	// The directory and the portal's view of it hold each account and
	// membership once.
	for _, c := range []struct {
		what, query string
		want        int64
	}{
		{"directory accounts", `SELECT count(*) FROM directory_accounts WHERE connector_id = ?`, people},
		{"directory memberships", `SELECT count(*) FROM directory_members WHERE connector_id = ?`, people * groups},
		{"portal accounts", `SELECT count(*) FROM accounts WHERE connector_id = ? AND status = 'enabled'`, people},
		{"portal memberships", `SELECT count(*) FROM memberships m JOIN accounts a ON a.id = m.account_id WHERE a.connector_id = ?`, people * groups},
	} {
		if n := count(t, db, c.query, dir.ConnectorID); n != c.want {
			t.Errorf("%s: %d, want %d", c.what, n, c.want)
		}
	}
	rerun := count(t, db, `SELECT count(*) FROM (SELECT job_id FROM job_events WHERE status = 'running' GROUP BY job_id HAVING count(*) > 1) AS r`)
	t.Logf("%d jobs were started more than once", rerun)

	// The queue drains: entries the dead process held are rescued and end
	// without running their job again.
	deadline = time.Now().Add(90 * time.Second)
	for {
		left := count(t, db, `SELECT count(*) FROM river_job WHERE kind = 'connector_job' AND state NOT IN ('completed', 'cancelled', 'discarded')`)
		if left == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d queue entries are still not finalized 90s after the restart", left)
		}
		time.Sleep(250 * time.Millisecond)
	}
	if n := count(t, db, `SELECT count(*) FROM river_job WHERE kind = 'connector_job' AND state <> 'completed'`); n != 0 {
		t.Errorf("%d queue entries ended cancelled or discarded, want none", n)
	}
	// The entries the dead process held were rescued: run again, as attempt 2 or later.
	if n := count(t, db, `SELECT count(*) FROM river_job WHERE id IN ? AND attempt < 2`, orphans); n != 0 {
		t.Errorf("%d of the %d queue entries held by the dead process were not run again", n, len(orphans))
	}
	if n := count(t, db, `SELECT count(*) FROM job_events WHERE status = 'completed'`); n != total {
		t.Errorf("after the queue drained, job_events has %d 'completed' entries for %d jobs", n, total)
	}
}
