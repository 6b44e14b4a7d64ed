package main

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/provisor/provisor/database"
	"github.com/provisor/provisor/database/dbtest"
	"github.com/provisor/provisor/internal/testwait"
	"github.com/provisor/provisor/notifier/smtptest"
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
	testwait.Until(t, 180*time.Second, func() error {
		if done := count(t, db, `SELECT count(*) FROM connector_jobs WHERE status = 'completed'`); done < total/10 {
			return fmt.Errorf("only %d of %d jobs completed", done, total)
		}
		return nil
	})
	first.kill()
	waitDeadStatements(t, db)
	done := count(t, db, `SELECT count(*) FROM connector_jobs WHERE status = 'completed'`)
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
	testwait.Until(t, 90*time.Second, func() error {
		if left := count(t, db, `SELECT count(*) FROM river_job WHERE kind = 'connector_job' AND state NOT IN ('completed', 'cancelled', 'discarded')`); left > 0 {
			return fmt.Errorf("%d queue entries are not finalized after the restart", left)
		}
		return nil
	})
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

// The crash suite's settings. The job timeout and the rescue delay are
// short so that work whose process died is taken over within seconds.
const (
	suiteJobTimeout  = 2 * time.Second
	suiteRescueAfter = 5 * time.Second
	// suiteRescuerInterval is how often the queue's job rescuer looks for
	// entries whose worker died (River's default, which Provisor keeps).
	suiteRescuerInterval = 30 * time.Second
	// suiteMembers is the size of the workgroup: more than the 200 members
	// a workgroup run is asked to hold up with.
	suiteMembers = 220
	// suiteSolo is how many identities get single-job runs.
	suiteSolo = 12
	// suiteRecipients is how many identities every task's email goes to.
	suiteRecipients = 3
)

// resumeBound is how soon after a restart the entries the dead process
// held must move on: taken over once they are --rescue-after old, by a
// rescuer that looks once per interval.
const resumeBound = suiteRescueAfter + suiteRescuerInterval

// TestCrashMixedWorkload kills `provisor serve` with SIGKILL at ten moments
// of a mixed workload (workgroup runs of more than 200 members, single-job
// runs, time-bound grants whose revocations are made due by Force End, and
// completion emails to an SMTP server) and restarts it on the same
// database each time. At the end every connector job completed exactly
// once, every run and task settled, every email was received once; and
// after each restart the entries the dead process held moved on within
// --rescue-after plus one rescuer interval.
func TestCrashMixedWorkload(t *testing.T) {
	t.Parallel()
	for _, dialect := range dbtest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			newCrashSuite(t, dialect).run()
		})
	}
}

// crashSuite is one database's workload and the process running it.
type crashSuite struct {
	t                 *testing.T
	db                *gorm.DB
	serveArgs         []string
	clientID, secret  string
	smtp              *smtptest.Server
	srv               *server
	api               *apiClient
	restarts          int
	dir               directory // the workgroup's people and the groups
	solo              []string  // identities of the single-job runs
	recipients        []string  // identities the tasks' emails go to
	tasks             []string  // one notifying task per solo identity
	runs              []string  // every run submitted or triggered
	resumes           []time.Duration
	unrecorded        map[string]bool // Message-IDs; see crash
	phaseStart, kills int
}

func newCrashSuite(t *testing.T, dialect string) *crashSuite {
	dataDir := t.TempDir()
	dbArgs := []string{"--data-dir", dataDir}
	var dbURL, sqlitePath string
	if dialect == database.Postgres {
		dbURL = dbtest.NewPostgres(t)
		dbArgs = append(dbArgs, "--database", dbURL, "--secret-key", testSecretKey)
	} else {
		sqlitePath = filepath.Join(dataDir, "provisor.db")
	}
	s := &crashSuite{t: t, smtp: smtptest.Start(t, nil), unrecorded: map[string]bool{}}
	s.clientID, s.secret = createAPIClient(t, dbArgs...)
	s.serveArgs = append([]string{"--workers", "4",
		"--job-timeout", suiteJobTimeout.String(), "--rescue-after", suiteRescueAfter.String()}, dbArgs...)
	// An email whose send failed (cut short by the job timeout on a
	// loaded machine, say) waits before its next try: 30 s and then a
	// minute with the default retry period of a day, longer than the suite
	// waits for the outbox to drain. An hour's period waits 1.25 s, then
	// twice as long each time.
	s.serveArgs = append(s.serveArgs, append(s.smtp.Args(), "--smtp-retry-for", "1h")...)
	s.start()
	s.db = openDB(t, dbURL, sqlitePath)
	return s
}

// start runs a new `provisor serve` on the suite's database.
func (s *crashSuite) start() {
	s.t.Helper()
	s.srv = startServer(s.t, fmt.Sprintf("serve-%d", s.restarts+1), s.serveArgs...)
	s.api = newAPI(s.t, s.srv.URL, s.clientID, s.secret)
	s.restarts++
}

func (s *crashSuite) run() {
	t := s.t
	suiteStart := time.Now()
	s.setup()
	w := s.dir
	g := w.Entitlements

	// 1. A burst of account creations (a set per member), killed once 40 jobs completed.
	s.submit(s.workgroup(requests.CreateAccount, nil, ""))
	for _, id := range s.solo {
		s.submit(s.single(requests.CreateAccount, id, nil, ""))
	}
	s.crash("accounts: 40 jobs completed", func() bool { return s.completedInPhase() >= 40 && s.running("") > 0 })
	s.waitSettled(s.runs, "the account creations")

	// 2. Right after a burst: single grants and the workgroup's grant of a
	// group (one set of every member), killed while the big set runs. The
	// big set goes last: sent first, it could be done (one batch) before
	// the singles were all sent.
	for _, id := range s.solo {
		s.submit(s.single(requests.AddEntitlements, id, g[:1], ""))
	}
	s.submit(s.workgroup(requests.AddEntitlements, g[:1], ""))
	s.crash("right after a burst of grants", func() bool { return s.runningBigSets() > 0 })

	// 3. Another big grant and single grants, killed once some completed.
	s.submit(s.workgroup(requests.AddEntitlements, g[1:2], ""))
	for _, id := range s.solo {
		s.submit(s.single(requests.AddEntitlements, id, g[1:2], ""))
	}
	s.crash("grants: 6 jobs completed", func() bool { return s.completedInPhase() >= 6 && s.running("") > 0 })

	// 4. Time-bound grants, killed while they run.
	timeBound := []string{s.submit(s.workgroup(requests.AddEntitlements, g[2:3], "8h"))}
	for _, id := range s.solo {
		timeBound = append(timeBound, s.submit(s.single(requests.AddEntitlements, id, g[2:3], "1h")))
	}
	s.crash("time-bound grants: 6 jobs completed", func() bool { return s.completedInPhase() >= 6 && s.running("") > 0 })

	// 5. Force End makes the revocations due now; killed while they run.
	for _, id := range s.waitStatus(timeBound, requests.InstanceActive, "the time-bound grants") {
		s.api.do(http.MethodPost, "/api/v1/request-instances/"+id+"/force-end", nil, nil)
	}
	s.crash("revocations after Force End", func() bool { return s.completedInPhase() >= 3 && s.running("connector_job") > 0 })

	// 6. Completion emails, to a slow server: killed during their delivery.
	s.smtp.SetDelay(30 * time.Millisecond)
	s.triggerTasks()
	s.crash("during email delivery", func() bool { return s.emailsSent() >= 4 && s.running("notification") > 0 })

	// 7. Right after a burst: the tasks again, the workgroup losing a group
	// (one set of every member) and single revokes.
	s.triggerTasks()
	s.submit(s.workgroup(requests.RemoveEntitlements, g[1:2], ""))
	for _, id := range s.solo {
		s.submit(s.single(requests.RemoveEntitlements, id, g[1:2], ""))
	}
	s.crash("right after a burst of tasks and revokes", func() bool { return s.running("") > 0 })

	// 8. The tasks once more, killed while their emails go out.
	s.waitSettled(s.runs[len(s.runs)-2*suiteSolo-1:], "the tasks' second runs")
	sent := s.emailsSent()
	s.triggerTasks()
	s.crash("during email delivery, again", func() bool { return s.emailsSent() >= sent+3 && s.running("notification") > 0 })

	// 9. A time-bound workgroup grant, killed while its set runs.
	last := s.submit(s.workgroup(requests.AddEntitlements, g[3:4], "2h"))
	s.crash("a time-bound workgroup grant", func() bool { return s.runningBigSets() > 0 })

	// 10. Its Force End with the tasks: killed while revocations and emails run.
	for _, id := range s.waitStatus([]string{last}, requests.InstanceActive, "the time-bound workgroup grant") {
		s.api.do(http.MethodPost, "/api/v1/request-instances/"+id+"/force-end", nil, nil)
	}
	s.triggerTasks()
	s.crash("revocations and emails", func() bool { return s.completedInPhase() >= 1 && s.running("") > 0 })

	s.waitSettled(s.runs, "every run")
	s.check()
	var worst time.Duration
	for _, d := range s.resumes {
		worst = max(worst, d)
	}
	t.Logf("%d kills; held entries moved on within %v after each restart (bound %s), worst %s; suite took %s",
		s.kills, s.resumes, resumeBound, worst.Round(time.Millisecond), time.Since(suiteStart).Round(time.Second))
}

// setup makes, through the API, the directory with its workgroup, the solo
// identities and recipients, and one notifying task per solo identity.
func (s *crashSuite) setup() {
	s.dir = makeDirectory(s.api, "suite", suiteMembers, 4)
	var idOnly struct {
		ID string `json:"id"`
	}
	for i := range suiteSolo + suiteRecipients {
		u := fmt.Sprintf("solo.user%02d", i)
		s.api.do(http.MethodPost, "/api/v1/identities", map[string]any{"username": u, "display_name": "Solo " + u, "email": u + "@example.test"}, &idOnly)
		if i < suiteSolo {
			s.solo = append(s.solo, idOnly.ID)
		} else {
			s.recipients = append(s.recipients, idOnly.ID)
		}
	}
	for i, id := range s.solo {
		req := s.single(requests.AddEntitlements, id, s.dir.Entitlements[3:4], "")
		s.api.do(http.MethodPost, "/api/v1/tasks", map[string]any{
			"name": fmt.Sprintf("Suite task %02d", i), "description": "crash suite", "request": req,
			"notify": map[string]any{"enabled": true, "recipients": s.recipients, "when": "always"},
		}, &idOnly)
		s.tasks = append(s.tasks, idOnly.ID)
	}
}

func (s *crashSuite) workgroup(typ requests.Type, ents []string, duration string) requests.Request {
	return requests.Request{Type: typ, BeneficiaryType: requests.BeneficiaryWorkgroup, BeneficiaryID: s.dir.WorkgroupID,
		ConnectorID: s.dir.ConnectorID, Entitlements: ents, Justification: "crash suite", Priority: requests.Normal, Duration: duration}
}

func (s *crashSuite) single(typ requests.Type, identity string, ents []string, duration string) requests.Request {
	return requests.Request{Type: typ, BeneficiaryType: requests.BeneficiaryIdentity, BeneficiaryID: identity,
		ConnectorID: s.dir.ConnectorID, Entitlements: ents, Justification: "crash suite", Priority: requests.Normal, Duration: duration}
}

// submit posts a request and returns its run's id.
func (s *crashSuite) submit(r requests.Request) string {
	s.t.Helper()
	var inst requests.Instance
	s.api.do(http.MethodPost, "/api/v1/requests", r, &inst)
	s.runs = append(s.runs, inst.ID)
	return inst.ID
}

// triggerTasks triggers every notifying task once.
func (s *crashSuite) triggerTasks() {
	s.t.Helper()
	for _, id := range s.tasks {
		var inst requests.Instance
		s.api.do(http.MethodPost, "/api/v1/tasks/"+id+"/trigger", nil, &inst)
		s.runs = append(s.runs, inst.ID)
	}
}

// completedInPhase counts the connector jobs completed since the last restart's phase began.
func (s *crashSuite) completedInPhase() int {
	return int(count(s.t, s.db, `SELECT count(*) FROM connector_jobs WHERE status = 'completed'`)) - s.phaseStart
}

// running counts the queue entries being worked, of one kind or ("") all.
func (s *crashSuite) running(kind string) int64 {
	if kind == "" {
		return count(s.t, s.db, `SELECT count(*) FROM river_job WHERE state = 'running'`)
	}
	return count(s.t, s.db, `SELECT count(*) FROM river_job WHERE state = 'running' AND kind = ?`, kind)
}

// emailsSent counts the messages the outbox records as sent. The moments
// of the kills are taken from it rather than from what the SMTP server
// received, so that they do not fall just after an acceptance more often
// than chance would have it.
func (s *crashSuite) emailsSent() int64 {
	return count(s.t, s.db, `SELECT count(*) FROM notifications WHERE status = 'sent'`)
}

// runningBigSets counts the running job sets of 200 or more jobs.
func (s *crashSuite) runningBigSets() int64 {
	return count(s.t, s.db, `SELECT count(*) FROM river_job WHERE state = 'running' AND kind = 'connector_job'
		AND CAST(args->>'jobs' AS integer) >= 200`)
}

// heldEntry is a queue entry that was being worked when its process died.
type heldEntry struct {
	ID      int64
	Kind    string
	Attempt int
	Jobs    int
}

// crash waits until moment is reached, kills the server with SIGKILL,
// starts a new one on the same database, and measures how long the entries
// the dead process held take to move on (be taken over, or end).
func (s *crashSuite) crash(moment string, reached func() bool) {
	t := s.t
	t.Helper()
	testwait.Until(t, 2*time.Minute, func() error {
		if !reached() {
			return fmt.Errorf("kill %d (%s): the moment did not come", s.kills+1, moment)
		}
		return nil
	})
	s.srv.kill()
	waitDeadStatements(t, s.db)
	s.kills++
	var held []heldEntry
	if err := s.db.Raw(`SELECT id, kind, attempt, COALESCE(CAST(args->>'jobs' AS integer), 0) AS jobs
		FROM river_job WHERE state = 'running' ORDER BY id`).Scan(&held).Error; err != nil {
		t.Fatal(err)
	}
	busy := count(t, s.db, `SELECT count(*) FROM connector_jobs WHERE status IN ('pending', 'running')`)
	unsent := count(t, s.db, `SELECT count(*) FROM notifications WHERE status <> 'sent'`)
	biggest := 0
	for _, h := range held {
		biggest = max(biggest, h.Jobs)
	}
	// Messages the server accepted that the outbox had not recorded as
	// sent when the process died: the restart sends them again.
	var unsentIDs []string
	if err := s.db.Raw(`SELECT message_id FROM notifications WHERE status <> 'sent'`).Scan(&unsentIDs).Error; err != nil {
		t.Fatal(err)
	}
	received := s.smtp.ByMessageID()
	for _, id := range unsentIDs {
		if received["<"+strings.Trim(id, "<>")+">"] > 0 {
			s.unrecorded[id] = true
		}
	}
	t.Logf("kill %d (%s): %d queue entries held (largest set %d jobs), %d connector jobs pending or running, %d emails not sent, %d received, %d received but not recorded as sent so far",
		s.kills, moment, len(held), biggest, busy, unsent, s.smtp.Accepted(), len(s.unrecorded))
	if len(held) == 0 {
		t.Errorf("kill %d (%s): no queue entry was being worked; the kill was not mid-work", s.kills, moment)
	}

	restart := time.Now()
	s.start()
	ids := make([]int64, len(held))
	for i, h := range held {
		ids[i] = h.ID
	}
	// An entry moved on when it is no longer running, or runs again as a
	// later attempt.
	stuck := func() []heldEntry {
		if len(ids) == 0 {
			return nil
		}
		var now []heldEntry
		if err := s.db.Raw(`SELECT id, kind, attempt FROM river_job WHERE id IN ? AND state = 'running'`, ids).Scan(&now).Error; err != nil {
			t.Fatal(err)
		}
		var out []heldEntry
		for _, n := range now {
			for _, h := range held {
				if h.ID == n.ID && n.Attempt == h.Attempt {
					out = append(out, h)
				}
			}
		}
		return out
	}
	// Polled a little beyond the bound, so that a miss is measured rather
	// than only noticed.
	var left []heldEntry
	_ = testwait.Poll(context.Background(), time.Until(restart.Add(resumeBound+10*time.Second)), func() error {
		if left = stuck(); len(left) > 0 {
			return fmt.Errorf("%d held entries", len(left))
		}
		return nil
	})
	took := time.Since(restart)
	if len(left) > 0 {
		t.Errorf("kill %d (%s): %d of %d held entries (first: %s of %d jobs) still held by the dead process %s after the restart; want them moved on within %s",
			s.kills, moment, len(left), len(held), left[0].Kind, left[0].Jobs, took.Round(time.Millisecond), resumeBound)
	} else {
		s.resumes = append(s.resumes, took.Round(time.Millisecond))
		t.Logf("kill %d (%s): held entries moved on %s after the restart", s.kills, moment, took.Round(time.Millisecond))
		if took > resumeBound {
			t.Errorf("kill %d (%s): held entries moved on %s after the restart; want within %s", s.kills, moment, took.Round(time.Millisecond), resumeBound)
		}
	}
	s.phaseStart = int(count(t, s.db, `SELECT count(*) FROM connector_jobs WHERE status = 'completed'`))
}

// waitStatus waits until every run in ids has status want and returns
// those that do; the others are reported, and the suite goes on without them.
func (s *crashSuite) waitStatus(ids []string, want, what string) []string {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var ok []string
	for _, id := range ids {
		err := testwait.Poll(ctx, 90*time.Second, func() error {
			if inst := s.api.instance(id); inst.Status != want {
				return fmt.Errorf("run %s is %s (%d of %d jobs done), want %s", id, inst.Status, inst.JobsDone, inst.JobsTotal, want)
			}
			return nil
		})
		if err != nil {
			s.t.Errorf("%s: %v", what, err)
			continue
		}
		ok = append(ok, id)
	}
	return ok
}

// waitSettled waits until every run in ids is final; runs that are not
// within two minutes are reported, and the suite goes on.
func (s *crashSuite) waitSettled(ids []string, what string) {
	s.t.Helper()
	start := time.Now()
	busy := func() int64 {
		return count(s.t, s.db, `SELECT count(*) FROM request_instances WHERE id IN ? AND status IN ('pending', 'running', 'active')`, ids)
	}
	waitFor(s.t, 2*time.Minute, what+" settled", busy)
	s.t.Logf("%s: %d runs not settled %s after asked", what, busy(), time.Since(start).Round(time.Millisecond))
}

// check is the end state: every job completed once, every run and task
// settled, the queue drained, and every email received once.
func (s *crashSuite) check() {
	t := s.t
	jobs := checkJobsRanOnce(t, s.db)
	if n := count(t, s.db, `SELECT count(*) FROM request_instances WHERE status IN ('pending', 'running', 'active')`); n != 0 {
		t.Errorf("%d runs are not settled", n)
	}
	waitFor(t, 30*time.Second, "every task back from Triggered", func() int64 {
		return count(t, s.db, `SELECT count(*) FROM tasks WHERE status = 'triggered'`)
	})
	waitFor(t, 60*time.Second, "every email sent", func() int64 {
		return count(t, s.db, `SELECT count(*) FROM notifications WHERE status <> 'sent'`)
	})
	// A delivery whose run ended in an error after a rescue retries on
	// River's policy (attempt⁴ seconds: 81 s at the third attempt).
	waitFor(t, 3*time.Minute, "the queue drained", func() int64 {
		return count(t, s.db, `SELECT count(*) FROM river_job WHERE state NOT IN ('completed', 'cancelled', 'discarded')`)
	})
	if n := count(t, s.db, `SELECT count(*) FROM river_job WHERE state <> 'completed'`); n != 0 {
		t.Errorf("%d queue entries ended cancelled or discarded, want none", n)
	}
	var ids []string
	if err := s.db.Raw(`SELECT message_id FROM notifications`).Scan(&ids).Error; err != nil {
		t.Fatal(err)
	}
	want := 4 * suiteSolo * suiteRecipients
	if len(ids) != want {
		t.Errorf("the outbox holds %d emails, want %d (%d task runs to %d recipients)", len(ids), want, 4*suiteSolo, suiteRecipients)
	}
	got := s.smtp.ByMessageID()
	dup := 0
	for _, id := range ids {
		switch n := got["<"+strings.Trim(id, "<>")+">"]; {
		case n == 0:
			t.Errorf("email %s was never received", id)
		case n > 1:
			// SMTP has no way to take back a message: one the server
			// accepted and the outbox had not recorded as sent when its
			// process died is sent again, with the same Message-ID
			// (RFC 5321 lets the receiver drop the copy). Any other copy
			// is a fault.
			dup++
			if !s.unrecorded[id] {
				t.Errorf("email %s was received %d times, and was not in flight at a kill", id, n)
			}
		}
	}
	if len(got) != len(ids) {
		t.Errorf("the server received %d distinct Message-IDs, the outbox holds %d", len(got), len(ids))
	}
	rerun := count(t, s.db, `SELECT count(*) FROM (SELECT job_id FROM job_events WHERE status = 'running' GROUP BY job_id HAVING count(*) > 1) AS r`)
	t.Logf("%d connector jobs (%d started more than once); %d emails, %d received more than once (%d were accepted but not recorded as sent when a process died); %d runs",
		jobs, rerun, len(ids), dup, len(s.unrecorded), len(s.runs))
}

// waitFor polls left until it reports 0, and fails the test after timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, left func() int64) {
	t.Helper()
	err := testwait.Poll(context.Background(), timeout, func() error {
		if n := left(); n > 0 {
			return fmt.Errorf("%d left", n)
		}
		return nil
	})
	if err != nil {
		t.Errorf("%s: %v", what, err)
	}
}

// waitDeadStatements waits until the statements a killed process left
// running in PostgreSQL have ended: a statement sent before the kill
// (the queue's batch that marks entries completed) runs to its end, and
// commits, after its client is gone. What the test then reads of the
// dead process's entries is what the next process finds.
func waitDeadStatements(t *testing.T, db *gorm.DB) {
	t.Helper()
	if db.Dialector.Name() != "postgres" {
		return // SQLite's statements end with their process
	}
	testwait.Until(t, 30*time.Second, func() error {
		if n := count(t, db, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND state <> 'idle'`); n > 0 {
			return fmt.Errorf("%d statements of the dead process are still running", n)
		}
		return nil
	})
}
