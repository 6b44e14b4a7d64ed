package notifier

import (
	"bytes"
	"context"
	"fmt"
	"strings"

	"gorm.io/gorm"

	"github.com/provisor/provisor/requests"
)

// approvalData is what the approval email templates see.
type approvalData struct {
	Subject string
	// Heading and Intro open the message: what it asks of its reader, or
	// what became of their request.
	Heading string
	Intro   string
	// Rows describe the request, in order.
	Rows    [][2]string
	Steps   []stepRow
	Comment string
	Link    string
	Action  string
}

type stepRow struct {
	Number   int
	Approver string
	Status   string
	By       string
	Comment  string
}

// ApprovalTx is the requests.ApprovalFunc that writes approval emails to
// the outbox in the transaction that opens steps or ends a task's
// approval: each person who may decide an opened step is asked to; the
// requester of a task's request hears how its approval ended (a run's
// requester hears it from the run's own email).
func (s *Service) ApprovalTx(ctx context.Context, tx *gorm.DB, ev *requests.ApprovalEvent) error {
	if s.dir == nil {
		return nil
	}
	a := ev.Approval
	var rows []Notification
	for _, ask := range ev.Asks {
		for _, p := range ask.To {
			if p.Email == "" {
				s.log.Info("approval email skipped", "approval", a.ID, "approver", p.Username, "reason", "no email address")
				continue
			}
			c, err := s.render.approvalAsk(a, &ask.Step)
			if err != nil {
				return err
			}
			rows = append(rows, s.approvalMessage(a, recipient{Type: RecipientApprover, Name: p.Name, Address: p.Email}, c,
				"ask "+ask.Step.ID+" "+p.Email))
		}
	}
	if ev.Ended && !(a.Status == requests.ApprovalWithdrawn && strings.EqualFold(a.DecidedBy, a.RequestedBy)) {
		r, why, err := s.requesterTx(ctx, tx, a.RequestedBy)
		if err != nil {
			return err
		}
		if r == nil {
			s.log.Info("approval email skipped", "approval", a.ID, "requester", a.RequestedBy, "reason", why)
		} else {
			c, err := s.render.approvalEnded(a)
			if err != nil {
				return err
			}
			rows = append(rows, s.approvalMessage(a, *r, c, "decision "+a.ID+" "+r.Address))
		}
	}
	if len(rows) == 0 {
		return nil
	}
	_, err := s.EnqueueTx(ctx, tx, rows)
	return err
}

func (s *Service) approvalMessage(a *requests.Approval, r recipient, c *Content, key string) Notification {
	n := s.newMessage(r, c, key)
	n.ApprovalID = &a.ID
	n.InstanceID = a.InstanceID
	return n
}

// describe is the request of an approval as the emails list it.
func describe(a *requests.Approval) [][2]string {
	r, _ := a.RequestOf()
	rows := [][2]string{{"Request", a.Type.Label()}, {"For", a.BeneficiaryName + " (" + a.BeneficiaryType + ")"},
		{"Connector", a.ConnectorName}}
	if len(a.EntitlementNames) > 0 {
		rows = append(rows, [2]string{"Entitlements", strings.Join(a.EntitlementNames, ", ")})
	}
	if r.Duration != "" {
		rows = append(rows, [2]string{"Duration", r.Duration + " from approval"})
	}
	if a.TaskName != "" {
		rows = append(rows, [2]string{"Task", a.TaskName})
	}
	rows = append(rows, [2]string{"Asked by", a.RequestedBy}, [2]string{"Asked at", formatTime(a.CreatedAt)})
	if r.Justification != "" {
		rows = append(rows, [2]string{"Justification", r.Justification})
	}
	return append(rows, [2]string{"Expires", formatTime(a.ExpiresAt)})
}

func steps(a *requests.Approval) []stepRow {
	out := make([]stepRow, len(a.Steps))
	for i, st := range a.Steps {
		out[i] = stepRow{Number: st.Seq, Approver: st.ApproverName + " (" + st.Role() + ")", Status: st.Status,
			By: st.DecidedByName, Comment: st.Comment}
	}
	return out
}

// approvalAsk renders the request to decide step st of a.
func (r *renderer) approvalAsk(a *requests.Approval, st *requests.ApprovalStep) (*Content, error) {
	d := approvalData{
		Subject: "Approval needed: " + a.Type.Label() + " for " + a.BeneficiaryName,
		Heading: "Your approval is needed",
		Intro: fmt.Sprintf("%s asks for %s for %s. You are asked to decide as %s (step %d of %d).",
			a.RequestedBy, strings.ToLower(a.Type.Label()), a.BeneficiaryName, st.Role(), st.Seq, len(a.Steps)),
		Rows: describe(a), Steps: steps(a), Link: r.baseURL + "/approvals/" + a.ID, Action: "Approve or deny in the portal",
	}
	if st.Reason != "" {
		d.Intro += " " + upperFirst(st.Reason) + ": the admins decide."
	}
	return r.renderApproval(&d)
}

// approvalEnded renders the outcome of a task's approval for its requester.
func (r *renderer) approvalEnded(a *requests.Approval) (*Content, error) {
	what := map[string]string{requests.ApprovalApproved: "was approved", requests.ApprovalDenied: "was denied",
		requests.ApprovalWithdrawn: "was withdrawn", requests.ApprovalExpired: "expired without a decision"}[a.Status]
	d := approvalData{
		Subject: "Request " + what + ": " + a.Type.Label() + " for " + a.BeneficiaryName,
		Heading: "Your request " + what,
		Rows:    describe(a), Steps: steps(a), Comment: a.Comment, Link: r.baseURL + "/approvals/" + a.ID, Action: "Open the approval in the portal",
	}
	if a.TaskName != "" {
		d.Intro = "The request of task " + a.TaskName + " " + what + "."
		if a.Status == requests.ApprovalApproved {
			d.Intro += " The task's runs may now start."
		}
	}
	return r.renderApproval(&d)
}

func (r *renderer) renderApproval(d *approvalData) (*Content, error) {
	d.Subject = oneLine("[Provisor] "+d.Subject, 250)
	c := &Content{Subject: d.Subject}
	var b bytes.Buffer
	if err := r.approvalText.Execute(&b, d); err != nil {
		return nil, fmt.Errorf("notifier: render approval text: %w", err)
	}
	c.Text = b.String()
	b.Reset()
	if err := r.approvalHTML.Execute(&b, d); err != nil {
		return nil, fmt.Errorf("notifier: render approval html: %w", err)
	}
	c.HTML = b.String()
	return c, nil
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
