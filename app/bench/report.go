package bench

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/provisor/provisor/database"
)

// The targets, checked on PostgreSQL.
const (
	TargetRatio      = 0.5
	TargetLatencyP50 = 100 * time.Millisecond
)

// Report is the figures of one bench run.
type Report struct {
	Workers     int
	Jobs        int
	Tasks       int
	LatencyRuns int
	Results     []*Result
	// Took is the whole run's duration, set by Main.
	Took time.Duration
}

// Result is one dialect's figures.
type Result struct {
	Dialect  string
	River    RiverResult
	Provisor ProvisorResult
	// ProvisorNoLog is the same drain without provisioning log entries.
	ProvisorNoLog ProvisorResult
	Latency       LatencyResult
}

// LogCost is the share of Provisor's drain rate that writing the
// provisioning log entries costs.
func (r *Result) LogCost() float64 {
	if r.ProvisorNoLog.JobsPerSec() == 0 {
		return 0
	}
	return 1 - r.Provisor.JobsPerSec()/r.ProvisorNoLog.JobsPerSec()
}

// LogCostExpanded is LogCost with the time taken after the drain to move
// the entries still pending into the log counted in the drain.
func (r *Result) LogCostExpanded() float64 {
	if r.ProvisorNoLog.JobsPerSec() == 0 {
		return 0
	}
	return 1 - rate(r.Provisor.Jobs, r.Provisor.Elapsed+r.Provisor.Expand)/r.ProvisorNoLog.JobsPerSec()
}

// TargetLogCost is the most the provisioning log may cost.
const TargetLogCost = 0.10

// RiverResult is the raw River run: Insert is the time to write the jobs,
// Worked from start until every job was worked, Elapsed from start until
// every job was marked completed in the database.
type RiverResult struct {
	Jobs                    int
	Insert, Worked, Elapsed time.Duration
}

// JobsPerSec is the drain rate: jobs over the time from start to all completed.
func (r RiverResult) JobsPerSec() float64 { return rate(r.Jobs, r.Elapsed) }

// EndToEndJobsPerSec counts the insert time too.
func (r RiverResult) EndToEndJobsPerSec() float64 { return rate(r.Jobs, r.Insert+r.Elapsed) }

// ProvisorResult is the Provisor throughput run: Trigger is the time to
// trigger every run (workers stopped), Elapsed from the workers' start until
// the last run ended.
type ProvisorResult struct {
	Runs, Jobs, Failed int
	Trigger, Elapsed   time.Duration
	// Expanded is how many provisioning log entries were still pending
	// when the drain ended, and Expand how long moving them into the log
	// took then (the expander moves entries a few seconds old meanwhile,
	// inside Elapsed).
	Expanded int64
	Expand   time.Duration
}

// add counts the runs of r in p, as one drain twice as long.
func (p *ProvisorResult) add(r ProvisorResult) {
	p.Runs += r.Runs
	p.Jobs += r.Jobs
	p.Failed += r.Failed
	p.Trigger += r.Trigger
	p.Elapsed += r.Elapsed
	p.Expanded += r.Expanded
	p.Expand += r.Expand
}

// JobsPerSec is the drain rate: connector jobs over the time from start to the last run's end.
func (p ProvisorResult) JobsPerSec() float64 { return rate(p.Jobs, p.Elapsed) }

// TriggersPerSec is how fast runs of ten jobs were triggered.
func (p ProvisorResult) TriggersPerSec() float64 { return rate(p.Runs, p.Trigger) }

// EndToEndJobsPerSec counts the trigger time too.
func (p ProvisorResult) EndToEndJobsPerSec() float64 { return rate(p.Jobs, p.Trigger+p.Elapsed) }

// LatencyResult holds one-job runs' trigger-to-completion times: DB from the
// run's created_at to its ended_at, Observed from the Trigger call until a
// poll saw the run settled.
type LatencyResult struct {
	Runs         int
	DB, Observed []time.Duration
}

// Ratio is Provisor's drain rate over raw River's.
func (r *Result) Ratio() float64 { return r.Provisor.JobsPerSec() / r.River.JobsPerSec() }

// EndToEndRatio compares the rates that count writing the work too.
func (r *Result) EndToEndRatio() float64 {
	return r.Provisor.EndToEndJobsPerSec() / r.River.EndToEndJobsPerSec()
}

// RatioPass says whether Provisor drains at least TargetRatio times as fast as raw River.
func (r *Result) RatioPass() bool { return r.Ratio() >= TargetRatio }

// LatencyPass says whether the median one-job run, from created_at to
// ended_at, took less than TargetLatencyP50.
func (r *Result) LatencyPass() bool { return percentile(r.Latency.DB, 0.5) < TargetLatencyP50 }

func rate(n int, d time.Duration) float64 {
	if d <= 0 {
		return math.Inf(1)
	}
	return float64(n) / d.Seconds()
}

// percentile is the nearest-rank percentile q (0 < q <= 1) of ds.
func percentile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

func dialectName(d string) string {
	if d == database.Postgres {
		return "PostgreSQL"
	}
	return "SQLite"
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }

func passMiss(ok bool) string {
	if ok {
		return "PASS"
	}
	return "MISS"
}

// row is one line of the figures of the job bench.
type row = tableRow[*Result]

func (rep *Report) rows() []row {
	return []row{
		{"raw River: insert, jobs/s", func(r *Result) string { return fmt.Sprintf("%.0f", rate(r.River.Jobs, r.River.Insert)) }},
		{"raw River: start to all completed, jobs/s", func(r *Result) string { return fmt.Sprintf("%.0f", r.River.JobsPerSec()) }},
		{"Provisor: trigger (10 jobs each), runs/s", func(r *Result) string { return fmt.Sprintf("%.1f", r.Provisor.TriggersPerSec()) }},
		{"Provisor: start to all runs final, jobs/s", func(r *Result) string { return fmt.Sprintf("%.0f", r.Provisor.JobsPerSec()) }},
		{"Provisor without provisioning log entries, jobs/s", func(r *Result) string { return fmt.Sprintf("%.0f", r.ProvisorNoLog.JobsPerSec()) }},
		{"cost of the provisioning log entries", func(r *Result) string { return fmt.Sprintf("%.1f%%", 100*r.LogCost()) }},
		{"entries pending at the drain's end, moved into the log in", func(r *Result) string {
			return fmt.Sprintf("%d, %s", r.Provisor.Expanded, r.Provisor.Expand.Round(time.Millisecond))
		}},
		{"cost with that move counted in the drain", func(r *Result) string { return fmt.Sprintf("%.1f%%", 100*r.LogCostExpanded()) }},
		{"Provisor / raw River", func(r *Result) string { return fmt.Sprintf("%.2f", r.Ratio()) }},
		{"end to end (write + drain): Provisor / raw River, jobs/s", func(r *Result) string {
			return fmt.Sprintf("%.0f / %.0f = %.2f", r.Provisor.EndToEndJobsPerSec(), r.River.EndToEndJobsPerSec(), r.EndToEndRatio())
		}},
		{"Provisor runs not completed", func(r *Result) string { return fmt.Sprintf("%d of %d", r.Provisor.Failed, r.Provisor.Runs) }},
		{"latency p50 / p95, created_at to ended_at", func(r *Result) string {
			return ms(percentile(r.Latency.DB, 0.5)) + " / " + ms(percentile(r.Latency.DB, 0.95))
		}},
		{"latency p50 / p95, Trigger call to settled seen", func(r *Result) string {
			return ms(percentile(r.Latency.Observed, 0.5)) + " / " + ms(percentile(r.Latency.Observed, 0.95))
		}},
	}
}

// targets lists the checks, on PostgreSQL only.
func (rep *Report) targets() []string {
	var out []string
	for _, r := range rep.Results {
		if r.Dialect != database.Postgres {
			continue
		}
		out = append(out,
			fmt.Sprintf("Provisor jobs/s >= %.1f x raw River jobs/s: %.2f x, %s", TargetRatio, r.Ratio(), passMiss(r.RatioPass())),
			fmt.Sprintf("provisioning log entries cost <= %.0f%% of jobs/s: %.1f%%, %s", 100*TargetLogCost, 100*r.LogCost(), passMiss(r.LogCost() <= TargetLogCost)),
			fmt.Sprintf("p50 trigger-to-completion < %s: %s, %s", ms(TargetLatencyP50), ms(percentile(r.Latency.DB, 0.5)), passMiss(r.LatencyPass())))
	}
	return out
}

func (rep *Report) settings() string {
	return fmt.Sprintf("%d workers; raw River %d no-op jobs; Provisor %d runs x 10 connector jobs; latency %d one-job runs",
		rep.Workers, rep.Jobs, rep.Tasks, rep.LatencyRuns)
}

// Print writes the table, the targets and the markdown block.
func (rep *Report) Print(w io.Writer) { rep.table().print(w) }

// Markdown writes the figures as a markdown table and the targets as a list.
func (rep *Report) Markdown(w io.Writer) { rep.table().markdown(w) }

func (rep *Report) table() table[*Result] {
	t := table[*Result]{title: "Provisor bench", settings: rep.settings(), took: rep.Took, results: rep.Results,
		rows: rep.rows(), targetsTitle: "Targets", targets: rep.targets()}
	for _, r := range rep.Results {
		t.dialects = append(t.dialects, r.Dialect)
	}
	return t
}

// table is what a bench prints: its settings, a row of figures for each
// measure with a column per dialect, and its targets.
type table[R any] struct {
	title, settings string
	took            time.Duration
	dialects        []string // of each result
	results         []R
	rows            []tableRow[R]
	targetsTitle    string
	targets         []string
}

// tableRow is one line of the figures, as text for each dialect.
type tableRow[R any] struct {
	label string
	cell  func(r R) string
}

// print writes the table as aligned text, the targets and the markdown block.
func (t table[R]) print(w io.Writer) {
	fmt.Fprintf(w, "\n%s: %s", t.title, t.settings)
	if t.took > 0 {
		fmt.Fprintf(w, " (took %s)", t.took.Round(time.Second))
	}
	fmt.Fprint(w, "\n\n")
	// Labels are padded to one width, so that right-aligning every column
	// leaves them aligned on the left.
	width := 0
	for _, rw := range t.rows {
		width = max(width, len(rw.label))
	}
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', tabwriter.AlignRight)
	head := []string{strings.Repeat(" ", width)}
	for _, d := range t.dialects {
		head = append(head, dialectName(d))
	}
	fmt.Fprintln(tw, strings.Join(head, "\t")+"\t")
	for _, rw := range t.rows {
		cells := []string{fmt.Sprintf("%-*s", width, rw.label)}
		for _, r := range t.results {
			cells = append(cells, rw.cell(r))
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t")+"\t")
	}
	_ = tw.Flush()
	if len(t.targets) > 0 {
		fmt.Fprintf(w, "\n%s (PostgreSQL):\n", t.targetsTitle)
		for _, line := range t.targets {
			fmt.Fprintln(w, "  "+line)
		}
	}
	fmt.Fprintln(w, "\nMarkdown for BENCHMARKS.md:")
	fmt.Fprintln(w)
	t.markdown(w)
}

// markdown writes the figures as a markdown table and the targets as a list.
func (t table[R]) markdown(w io.Writer) {
	fmt.Fprintf(w, "Settings: %s.\n\n", t.settings)
	head, sep := "| |", "|---|"
	for _, d := range t.dialects {
		head += " " + dialectName(d) + " |"
		sep += "---:|"
	}
	fmt.Fprintln(w, head)
	fmt.Fprintln(w, sep)
	for _, rw := range t.rows {
		line := "| " + rw.label + " |"
		for _, r := range t.results {
			line += " " + rw.cell(r) + " |"
		}
		fmt.Fprintln(w, line)
	}
	if len(t.targets) > 0 {
		fmt.Fprintf(w, "\n%s on PostgreSQL:\n", t.targetsTitle)
		fmt.Fprintln(w)
		for _, line := range t.targets {
			fmt.Fprintln(w, "- "+line)
		}
	}
}
