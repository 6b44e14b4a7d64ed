package requests_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/riverqueue/river"

	"github.com/provisor/provisor/app/apptest"
	"github.com/provisor/provisor/database/dbtest"
	"github.com/provisor/provisor/internal/testwait"
	"github.com/provisor/provisor/requests"
)

// TestEstimateProgress: a running import's progress is objects read of
// those the last cycle read, and the end its pace so far makes.
func TestEstimateProgress(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *time.Time { x := start.Add(d); return &x }
	for _, c := range []struct {
		name        string
		now         time.Duration
		done, total int
		took        time.Duration
		wantPercent int
		wantEnd     *time.Time
	}{
		{name: "a quarter in 1 min", now: time.Minute, done: 250, total: 1000, wantPercent: 25, wantEnd: at(4 * time.Minute)},
		{name: "nothing read yet: as long as the last cycle", now: 10 * time.Second, total: 1000, took: 3 * time.Minute, wantEnd: at(3 * time.Minute)},
		{name: "nothing read, no length known", now: 10 * time.Second, total: 1000},
		{name: "more than the last cycle", now: 2 * time.Minute, done: 1200, total: 1000, wantPercent: 99, wantEnd: at(2 * time.Minute)},
		{name: "no earlier cycle", now: time.Minute, done: 30},
	} {
		p := requests.EstimateProgress(start, start.Add(c.now), c.done, c.total, c.took)
		if p.Done != c.done || p.Total != c.total || p.Percent != c.wantPercent {
			t.Errorf("%s: %+v", c.name, p)
		}
		if (p.EstimatedEnd == nil) != (c.wantEnd == nil) || (p.EstimatedEnd != nil && !p.EstimatedEnd.Equal(*c.wantEnd)) {
			t.Errorf("%s: estimated end %v, want %v", c.name, p.EstimatedEnd, c.wantEnd)
		}
	}
}

// TestImportProgressKeepsTheState: what an import says of its progress
// is kept beside the connector's state and changes nothing else of it.
func TestImportProgressKeepsTheState(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect string) {
		t.Parallel()
		b := apptest.New(t, dialect, &apptest.Options{NoStart: true})
		dir, _ := b.Directory(t, "Corp Dir", "VPN")
		if _, err := b.Requests.SteerConnector(b.Ctx, dir.ID, requests.ActionPause, "ada"); err != nil {
			t.Fatal(err)
		}
		for _, n := range []int{0, 1500} {
			b.Requests.NoteImportProgress(b.Ctx, dir.ID, n)
			states, err := b.Requests.ConnectorStates(b.Ctx)
			if err != nil {
				t.Fatal(err)
			}
			st := states[dir.ID]
			if st.ImportRead != n || st.ImportReadAt == nil || st.State != requests.StatePaused || st.Reason != "paused by ada" {
				t.Errorf("after progress %d: %+v", n, st)
			}
		}
	})
}

// TestSweepPrunesConnectorHours: the periodic sweep deletes the chart's
// hourly counts older than HoursKept, in batches, and keeps the others.
func TestSweepPrunesConnectorHours(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect string) {
		t.Parallel()
		b := apptest.New(t, dialect, &apptest.Options{NoStart: true})
		dir, _ := b.Directory(t, "Corp Dir", "VPN")
		now := time.Now().UTC().Truncate(time.Hour)
		// 1,200 hours older than kept (several batches), and the last 40.
		const old, recent = 1200, 40
		var rows []map[string]any
		for i := range old + recent {
			hour := now.Add(-time.Duration(i) * time.Hour)
			if i >= recent {
				hour = now.Add(-requests.HoursKept - time.Duration(i)*time.Hour)
			}
			rows = append(rows, map[string]any{"connector_id": dir.ID, "hour": hour, "operations": 1, "failures": 0})
		}
		if err := b.DB.Gorm.Table("connector_hours").CreateInBatches(rows, 200).Error; err != nil {
			t.Fatal(err)
		}
		if err := requests.NewSweepWorker(b.Requests, time.Hour).Work(b.Ctx, &river.Job[requests.SweepArgs]{}); err != nil {
			t.Fatal(err)
		}
		var left []time.Time
		if err := b.DB.Gorm.Table("connector_hours").Order("hour").Pluck("hour", &left).Error; err != nil {
			t.Fatal(err)
		}
		if len(left) != recent || left[0].Before(now.Add(-requests.HoursKept)) {
			t.Errorf("%d hourly counts left, oldest %v; want the last %d", len(left), left, recent)
		}
		if st, err := b.Requests.ConnectorStatus(b.Ctx, dir.ID); err != nil || len(st.Hours) != 24 || st.Hours[23].Operations != 1 {
			t.Errorf("status after the prune: %v %+v", err, st)
		}
	})
}

// TestFailureRatioQuarantines: a connector whose failed operations pass
// --quarantine-ratio of the last --quarantine-window is quarantined, even
// though no failure was one of connection; at the ratio itself it is not.
func TestFailureRatioQuarantines(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect string) {
		t.Parallel()
		b := apptest.New(t, dialect, &apptest.Options{Args: []string{"--quarantine-window", "4", "--quarantine-ratio", "50",
			"--quarantine-failures", "100"}})
		dir, ents := b.Directory(t, "Corp Dir", "VPN")
		run := func(r requests.Request, want string) {
			t.Helper()
			r.BeneficiaryType, r.ConnectorID = requests.BeneficiaryIdentity, dir.ID
			if inst := b.WaitSettled(t, b.Submit(t, r).ID); inst.Status != want {
				t.Fatalf("run: %s, want %s", apptest.Describe(inst), want)
			}
		}
		state := func() requests.ConnectorState {
			t.Helper()
			states, err := b.Requests.ConnectorStates(b.Ctx)
			if err != nil {
				t.Fatal(err)
			}
			return states[dir.ID]
		}
		people := map[string]string{}
		person := func(u string) string {
			if people[u] == "" {
				people[u] = b.Identity(t, u).ID
			}
			return people[u]
		}
		// Two successes, then grants to people without an account there:
		// each fails at once, for good.
		for _, u := range []string{"alice", "bob"} {
			run(requests.Request{Type: requests.CreateAccount, BeneficiaryID: person(u)}, requests.InstanceCompleted)
		}
		grant := func(u string) requests.Request {
			return requests.Request{Type: requests.AddEntitlements, BeneficiaryType: requests.BeneficiaryIdentity, BeneficiaryID: person(u),
				ConnectorID: dir.ID, Entitlements: []string{ents["VPN"].ID}}
		}
		run(grant("carol"), requests.InstanceFailed)
		run(grant("dan"), requests.InstanceFailed)
		if st := state(); st.State != requests.StateActive || st.Shown(true) != requests.StateDegraded || st.FailureRatio() != 50 {
			t.Fatalf("2 of the last 4 failed (50%%, not above it): %+v", st)
		}
		run(grant("erin"), requests.InstanceFailed)
		st := state()
		if st.State != requests.StateQuarantined || !strings.HasPrefix(st.Reason, "3 of the last 4 operations failed: ") || st.NextProbeAt == nil {
			t.Fatalf("3 of the last 4 failed: %+v", st)
		}
		// Its jobs now wait, with the reason.
		inst := b.Submit(t, grant("alice"))
		testwait.Until(t, 20*time.Second, func() error {
			got, err := b.Requests.GetInstance(b.Ctx, inst.ID)
			if err != nil {
				return err
			}
			if j := got.Jobs[0]; j.Status != requests.JobPending || !strings.HasPrefix(j.Message, "connector quarantined: 3 of the last 4") {
				return fmt.Errorf("job of the quarantined connector: %s %q", j.Status, j.Message)
			}
			return nil
		})
	})
}
