package notifier

import (
	"bytes"
	"fmt"
	htmltemplate "html/template"
	"io/fs"
	"strings"
	"text/tabwriter"
	texttemplate "text/template"
	"time"
	"unicode"

	"github.com/provisor/provisor/requests"
	"github.com/provisor/provisor/views"
)

// Content is a rendered completion email.
type Content struct {
	Subject string
	Text    string
	HTML    string
}

// emailData is what the templates in views/email see.
type emailData struct {
	Subject string
	// Title names the run: the task's name, or the request type of a
	// direct request.
	Title           string
	TaskName        string
	Type            string
	Beneficiary     string
	BeneficiaryType string
	InstanceID      string
	Trigger         string
	StartedBy       string
	Start           string
	End             string
	Duration        string
	Result          string
	// Headline says what happened, for the subject and the first line:
	// the result, or for time-bound access "granted until …" and then
	// "revoked".
	Headline string
	Summary  string
	// Approval says who approved the run (or its task's request), or how
	// its approval ended; "" when it needed none.
	Approval string
	Jobs     []jobRow
	Link     string
}

type jobRow struct {
	Number    int
	Type      string
	Connector string
	// Status is the job's status as the email says it ("completed · no
	// change" for a completed job that changed nothing), Outcome its
	// status or requests.JobNoChange.
	Status  string
	Outcome string
	Message string
}

// renderer holds the parsed email templates.
type renderer struct {
	subject *texttemplate.Template
	text    *texttemplate.Template
	html    *htmltemplate.Template
	// approvalText and approvalHTML are the parts of approval emails.
	approvalText *texttemplate.Template
	approvalHTML *htmltemplate.Template
	baseURL      string
}

func newRenderer(files fs.FS, baseURL string) (*renderer, error) {
	if files == nil {
		files = views.Email()
	}
	funcs := texttemplate.FuncMap{"jobTable": jobTable}
	subject, err := texttemplate.New("subject.txt.tmpl").ParseFS(files, "subject.txt.tmpl")
	if err != nil {
		return nil, fmt.Errorf("notifier: email templates: %w", err)
	}
	text, err := texttemplate.New("completion.txt.tmpl").Funcs(funcs).ParseFS(files, "completion.txt.tmpl")
	if err != nil {
		return nil, fmt.Errorf("notifier: email templates: %w", err)
	}
	html, err := htmltemplate.New("completion.html.tmpl").Funcs(htmltemplate.FuncMap{"resultColor": resultColor}).ParseFS(files, "completion.html.tmpl")
	if err != nil {
		return nil, fmt.Errorf("notifier: email templates: %w", err)
	}
	approvalText, err := texttemplate.New("approval.txt.tmpl").Funcs(texttemplate.FuncMap{"line": cell}).ParseFS(files, "approval.txt.tmpl")
	if err != nil {
		return nil, fmt.Errorf("notifier: email templates: %w", err)
	}
	approvalHTML, err := htmltemplate.New("approval.html.tmpl").ParseFS(files, "approval.html.tmpl")
	if err != nil {
		return nil, fmt.Errorf("notifier: email templates: %w", err)
	}
	return &renderer{subject: subject, text: text, html: html, approvalText: approvalText, approvalHTML: approvalHTML,
		baseURL: strings.TrimRight(baseURL, "/")}, nil
}

// render makes the email of an ended instance, its jobs and the approval
// it went ahead under or ended with (nil if none).
func (r *renderer) render(inst *requests.Instance, jobs []requests.Job, a *requests.Approval) (*Content, error) {
	d := emailData{
		Title: inst.TaskName, TaskName: inst.TaskName, Type: inst.Type.Label(),
		Beneficiary: inst.BeneficiaryName, BeneficiaryType: inst.BeneficiaryType, InstanceID: inst.ID,
		Trigger: inst.Trigger, StartedBy: inst.TriggeredBy, Start: formatTime(inst.CreatedAt), Result: inst.Status,
		Link: r.baseURL + "/requests/" + inst.ID,
	}
	if d.Title == "" {
		d.Title = inst.Type.Label()
	}
	if d.StartedBy == "" {
		d.StartedBy = "(unknown)"
	}
	end := inst.UpdatedAt
	if inst.EndedAt != nil {
		end = *inst.EndedAt
	}
	d.End = formatTime(end)
	d.Duration = formatDuration(end.Sub(inst.CreatedAt))
	for _, j := range jobs {
		row := jobRow{Number: j.Seq, Type: j.Kind, Connector: j.ConnectorName, Status: j.Status, Outcome: j.Outcome(), Message: j.Message}
		if j.NoChange() {
			row.Status = "completed · no change"
		}
		d.Jobs = append(d.Jobs, row)
	}
	// Jobs that changed nothing are counted apart from those that did.
	var parts []string
	for _, o := range requests.CountOutcomes(jobs) {
		what := o.Outcome
		if what == requests.JobNoChange {
			what = "completed with no change"
		}
		parts = append(parts, fmt.Sprintf("%d %s", o.N, what))
	}
	noun := "jobs"
	if len(jobs) == 1 {
		noun = "job"
	}
	d.Summary = fmt.Sprintf("%d %s: %s.", len(jobs), noun, strings.Join(parts, ", "))
	if len(jobs) == 0 {
		d.Summary = "The run had no jobs."
	}
	d.Headline = inst.Status
	if inst.ExpiresAt != nil {
		until := formatTime(*inst.ExpiresAt)
		switch inst.Status {
		case requests.InstanceActive:
			d.Headline, d.Result = "granted until "+until, "active"
			d.End = "access until " + until
			d.Summary += " The access is time-bound: it is revoked at " + until + " (or earlier, if an admin ends it), and you get another message then."
		case requests.InstanceCompleted:
			d.Headline = "revoked"
			d.Summary += " The time-bound access has ended: it was granted until " + until + " and is now revoked."
		}
	}
	if a != nil {
		d.Approval = approvalLine(a)
		if requests.Unapproved(inst.Status) {
			d.Summary = "The request " + map[string]string{requests.InstanceDenied: "was denied", requests.InstanceWithdrawn: "was withdrawn",
				requests.InstanceExpired: "expired without a decision"}[inst.Status] + ": nothing was provisioned."
		}
	}

	var b bytes.Buffer
	if err := r.subject.Execute(&b, d); err != nil {
		return nil, fmt.Errorf("notifier: render subject: %w", err)
	}
	d.Subject = oneLine(b.String(), 250)
	c := &Content{Subject: d.Subject}
	b.Reset()
	if err := r.text.Execute(&b, d); err != nil {
		return nil, fmt.Errorf("notifier: render text: %w", err)
	}
	c.Text = b.String()
	b.Reset()
	if err := r.html.Execute(&b, d); err != nil {
		return nil, fmt.Errorf("notifier: render html: %w", err)
	}
	c.HTML = b.String()
	return c, nil
}

// approvalLine says who approved a, or how it ended otherwise.
func approvalLine(a *requests.Approval) string {
	var line string
	switch a.Status {
	case requests.ApprovalApproved:
		line = "approved by " + a.Approvers()
		if a.TaskName != "" && a.InstanceID == nil {
			line += " (the request of task " + a.TaskName + ", " + formatTime(*a.DecidedAt) + ")"
		}
		return line
	case requests.ApprovalDenied:
		for _, st := range a.Steps {
			if st.Status == requests.StepDenied {
				line = "denied by " + st.DecidedByName + " (" + st.Role() + ")"
			}
		}
	case requests.ApprovalWithdrawn:
		line = "withdrawn by " + a.DecidedBy
	case requests.ApprovalExpired:
		line = "expired: no decision by " + formatTime(a.ExpiresAt)
	default:
		return "awaiting approval"
	}
	if a.Comment != "" {
		line += `: "` + a.Comment + `"`
	}
	return line
}

// jobTable lays the jobs out as aligned columns for a terminal; the
// message column comes last so that long errors only make lines longer.
func jobTable(jobs []jobRow) string {
	if len(jobs) == 0 {
		return "  (no jobs)\n"
	}
	var b bytes.Buffer
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "  #\tJob type\tConnector\tStatus\tError / message")
	for _, j := range jobs {
		fmt.Fprintf(w, "  %d\t%s\t%s\t%s\t%s\n", j.Number, cell(j.Type), cell(j.Connector), j.Status, cell(j.Message))
	}
	_ = w.Flush()
	return b.String()
}

// cell keeps a value on one table line.
func cell(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\t' || unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
}

// oneLine makes a header value: no control characters, at most n runes.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(cell(s)), " ")
	if r := []rune(s); len(r) > n {
		s = string(r[:n-1]) + "…"
	}
	return s
}

func resultColor(status string) string {
	switch status {
	case requests.JobCompleted:
		return "#1e7e34"
	case requests.JobNoChange:
		return "#52606d"
	case requests.JobFailed:
		return "#c62828"
	case requests.JobCanceled:
		return "#7b8794"
	}
	return "#1f2933"
}

func formatTime(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 MST") }

func formatDuration(d time.Duration) string {
	switch {
	case d < 0:
		return "0s"
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	default:
		return d.Round(time.Second).String()
	}
}
