package bench

import (
	"bytes"
	"context"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/provisor/provisor/database/dbtest"
	"github.com/provisor/provisor/identities"
	"github.com/provisor/provisor/requests"
)

// A small portal run seeds every kind of row, checks the page's counters
// against the jobs, times every page and drops its database.
func TestPortalMainSmall(t *testing.T) {
	t.Parallel()
	var out, errs bytes.Buffer
	args := []string{"--postgres", dbtest.ServerURL(), "--instances", "300", "--jobs", "3000", "--tasks", "60", "--samples", "2"}
	if err := Main(context.Background(), append([]string{"portal"}, args...), &out, &errs); err != nil {
		t.Fatalf("Main: %v\nstderr:\n%s", err, errs.String())
	}
	got := out.String()
	for _, want := range []string{"300 request instances, 3000 connector jobs, 60 tasks", "Connector Jobs page (GET /jobs)",
		"status=completed | 18 |", "status=scheduled | 18 |", "| last page, every filter | 42 |", "| q=finance | 6 |",
		"Targets: Connector Jobs page p95 < 100.0 ms for every filter: "} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	checkDropped(t, errs.String())
}

func TestPlanInstancesSpreadsTheJobs(t *testing.T) {
	t.Parallel()
	w := &seedWorld{targets: make([]seedTarget, 2), people: make([]*identities.Identity, 10), groups: make([]*identities.Workgroup, 3)}
	plans := planInstances(rand.New(rand.NewPCG(1, 2)), w, 5000, 50000)
	total := 0
	jobs := map[uint8]int{}
	runs := map[string]int{}
	for _, p := range plans {
		if n := len(p.statuses); n < 1 || n > 30 {
			t.Fatalf("a run of %d jobs", n)
		}
		total += len(p.statuses)
		c := p.counts()
		for s, n := range c {
			jobs[uint8(s)] += n
		}
		st := rollUp(&c)
		runs[st]++
		if requests.Busy(st) && time.Since(p.created) > 3*time.Hour {
			t.Errorf("a %s run created %s ago", st, time.Since(p.created))
		}
	}
	if total != 50000 {
		t.Errorf("%d jobs, want 50000", total)
	}
	if jobs[sCompleted] < total*3/4 {
		t.Errorf("%d of %d jobs completed, want most", jobs[sCompleted], total)
	}
	for s, name := range jobStatusNames {
		if jobs[uint8(s)] == 0 {
			t.Errorf("no %s job", name)
		}
	}
	for _, st := range requests.InstanceStatuses {
		// Statuses of the approval flow do not roll up from jobs: the
		// seed, a history of runs, holds none.
		if st == requests.InstanceAwaitingApproval || requests.Unapproved(st) {
			continue
		}
		if runs[st] == 0 {
			t.Errorf("no %s run: %v", st, runs)
		}
	}
}

func TestParsePortalArgs(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		args    []string
		wantErr string
	}{
		{nil, ""},
		{[]string{"--database", "postgres://x/y"}, "--database"},
		{[]string{"--samples", "0"}, "at least 1"},
	} {
		o, err := parsePortalArgs(c.args, func(string) string { return "" }, &bytes.Buffer{})
		if c.wantErr == "" {
			if err != nil || o.Instances != DefaultPortalInstances || o.Jobs != DefaultPortalJobs || o.Samples != DefaultPortalSamples {
				t.Errorf("%v: %+v, %v", c.args, o, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.wantErr) {
			t.Errorf("%v: err = %v, want one saying %q", c.args, err, c.wantErr)
		}
	}
}
