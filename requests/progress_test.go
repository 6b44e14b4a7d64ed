package requests_test

import (
	"testing"
	"time"

	"github.com/provisor/provisor/app/apptest"
	"github.com/provisor/provisor/database/dbtest"
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
