package notifier

import (
	"strings"
	"testing"
	"time"

	"github.com/provisor/provisor/requests"
)

func TestBackoff(t *testing.T) {
	t.Parallel()
	b := newBackoff(24 * time.Hour)
	if b.first != 30*time.Second || b.most != time.Hour {
		t.Fatalf("24h: first %s, most %s", b.first, b.most)
	}
	var total time.Duration
	attempts := 0
	for total < 24*time.Hour {
		attempts++
		w := b.wait(attempts)
		base := min(30*time.Second<<min(attempts-1, 20), time.Hour)
		if w > base || w < base-base/10 {
			t.Fatalf("wait %d = %s, want %s less up to 10%%", attempts, w, base)
		}
		total += w
	}
	if attempts < 25 || attempts > 40 {
		t.Errorf("%d attempts in 24h", attempts)
	}
	short := newBackoff(2 * time.Second)
	if short.first != 100*time.Millisecond || short.most != 100*time.Millisecond {
		t.Errorf("2s: first %s, most %s", short.first, short.most)
	}
}

func TestRenderEscapesAndSummarizes(t *testing.T) {
	t.Parallel()
	r, err := newRenderer(nil, "https://idm.example.test/")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	end := start.Add(83 * time.Second)
	hostile := "<script>alert(1)</script>"
	inst := &requests.Instance{ID: "0b1c", TaskName: hostile + "\r\nBcc: evil@example.test", Type: requests.AddEntitlements,
		BeneficiaryType: "workgroup", BeneficiaryName: "Finance & <b>Ops</b>", Trigger: "schedule", TriggeredBy: "scheduler",
		Status: requests.InstanceFailed, CreatedAt: start, EndedAt: &end}
	jobs := []requests.Job{
		{Seq: 1, Kind: "Directory.AddToGroup", ConnectorName: "Corp Dir", Status: requests.JobCompleted, Message: "added"},
		{Seq: 2, Kind: "Directory.AddToGroup", ConnectorName: "Corp Dir", Status: requests.JobFailed, Message: hostile + "\nno such group"},
	}
	c, err := r.render(inst, jobs, nil)
	if err != nil {
		t.Fatal(err)
	}
	if strings.ContainsAny(c.Subject, "\r\n") || !strings.HasPrefix(c.Subject, "[Provisor] <script>alert(1)</script> Bcc: evil@example.test: failed for Finance") {
		t.Errorf("subject %q", c.Subject)
	}
	if strings.Contains(c.HTML, "<script") || strings.Contains(c.HTML, "<b>Ops") {
		t.Errorf("markup reached the HTML part:\n%s", c.HTML)
	}
	for _, want := range []string{"&lt;script&gt;alert(1)&lt;/script&gt;", "Finance &amp; &lt;b&gt;Ops&lt;/b&gt;", `href="https://idm.example.test/requests/0b1c"`, "1m23s"} {
		if !strings.Contains(c.HTML, want) {
			t.Errorf("HTML lacks %q", want)
		}
	}
	for _, want := range []string{"2 jobs: 1 completed, 1 failed.", "Start:       2026-11-23 09:00:00 UTC", "End:         2026-11-23 09:01:23 UTC",
		"Duration:    1m23s", "Started by:  scheduler", "  2  Directory.AddToGroup  Corp Dir   failed     <script>alert(1)</script> no such group",
		"https://idm.example.test/requests/0b1c"} {
		if !strings.Contains(c.Text, want) {
			t.Errorf("text lacks %q:\n%s", want, c.Text)
		}
	}
}

// A job that changed nothing is said so in both parts, and counted apart
// from the jobs that completed with a change.
func TestRenderCountsNoChangeApart(t *testing.T) {
	t.Parallel()
	r, err := newRenderer(nil, "https://idm.example.test")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	inst := &requests.Instance{ID: "0b1d", Type: requests.AddEntitlements, BeneficiaryType: "workgroup", BeneficiaryName: "Finance",
		Trigger: "manual", TriggeredBy: "ada", Status: requests.InstanceCompleted, CreatedAt: start, EndedAt: &start}
	jobs := []requests.Job{
		{Seq: 1, Kind: "Directory.AddToGroup", ConnectorName: "Corp", Status: requests.JobCompleted, Message: "alice added to VPN"},
		{Seq: 2, Kind: "Directory.AddToGroup", ConnectorName: "Corp", Status: requests.JobCompleted, Unchanged: true,
			Message: "bob was already a member of VPN (no change)"},
		{Seq: 3, Kind: "Directory.AddToGroup", ConnectorName: "Corp", Status: requests.JobCompleted, Unchanged: true, Message: "(no change)"},
	}
	c, err := r.render(inst, jobs, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"3 jobs: 1 completed, 2 completed with no change.", "  2  Directory.AddToGroup  Corp       completed · no change"} {
		if !strings.Contains(c.Text, want) {
			t.Errorf("text lacks %q:\n%s", want, c.Text)
		}
	}
	if strings.Count(c.HTML, ">completed · no change</td>") != 2 || !strings.Contains(c.HTML, "3 jobs: 1 completed, 2 completed with no change.") {
		t.Errorf("HTML does not show the jobs with no change:\n%s", c.HTML)
	}
}
