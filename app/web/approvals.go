package web

import (
	"errors"
	"net/url"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/provisor/provisor/access"
	"github.com/provisor/provisor/requests"
)

// The tabs of My approvals.
const (
	tabWaiting = "waiting"
	tabMine    = "mine"
	tabAll     = "all"
)

type approvalsData struct {
	Tab   string
	Items []approvalRow
	Paging
	Status   string
	Statuses []string
	Query    url.Values
	Admin    bool
	Waiting  int64
}

// approvalRow is one approval of a list, with whom it waits for.
type approvalRow struct {
	requests.Approval
	WaitsFor string
}

// waitsFor names who the open steps of a wait for: "Olga Owner (owner of
// VPN) and an admin".
func waitsFor(a *requests.Approval) string {
	var names []string
	for _, st := range a.Current() {
		if st.Kind == requests.StepAdmin {
			names = append(names, "an admin")
		} else {
			names = append(names, st.ApproverName+" ("+st.Role()+")")
		}
	}
	return strings.Join(names, " and ")
}

// waiting is how many approvals wait for the signed-in user's decision,
// for the badge in the navigation; 0 when it cannot be told. It is counted
// once per request.
func (s *Server) waiting(c *fiber.Ctx) int64 {
	if n, ok := c.Locals("waiting").(int64); ok {
		return n
	}
	who := requester(c)
	_, n, err := s.Requests.ListApprovals(c.UserContext(), requests.ApprovalListOpts{For: &who, Status: requests.ApprovalPending, Limit: 1})
	if err != nil {
		s.Log.Warn("portal: approvals waiting", "user", who.Username, "err", err)
		return 0
	}
	c.Locals("waiting", n)
	return n
}

// approvalsPage is My approvals: what waits for the user's decision, the
// approvals of the user's own requests, and for admins every approval.
func (s *Server) approvalsPage(c *fiber.Ctx) error {
	ctx := c.UserContext()
	who := requester(c)
	d := approvalsData{Paging: pagingOf(c), Query: currentQuery(c), Admin: isAdmin(c), Statuses: requests.ApprovalStatuses,
		Status: queryIn(c, "status", requests.ApprovalStatuses)}
	d.Waiting = s.waiting(c)
	tabs := []string{tabWaiting, tabMine}
	if d.Admin {
		tabs = append(tabs, tabAll)
	}
	d.Tab = queryIn(c, "tab", tabs)
	if d.Tab == "" {
		// Start where there is something to do.
		d.Tab = tabMine
		if d.Waiting > 0 {
			d.Tab = tabWaiting
		}
	}
	o := requests.ApprovalListOpts{Status: d.Status, Limit: d.Limit(), Offset: d.Offset()}
	switch d.Tab {
	case tabWaiting:
		o.For, o.Status, d.Status = &who, requests.ApprovalPending, ""
	case tabMine:
		o.Mine = who.Username
	case tabAll:
		o.All = true
	}
	items, total, err := s.Requests.ListApprovals(ctx, o)
	if err != nil {
		return err
	}
	for i := range items {
		d.Items = append(d.Items, approvalRow{Approval: items[i], WaitsFor: waitsFor(&items[i])})
	}
	d.counted(total)
	return s.render(c, fiber.StatusOK, "approvals", s.newPage(c, "approvals", "My approvals", d))
}

// approvalFor returns an approval the user may see: its requester, anyone
// who may decide a step of it now or decided one, admins and helpdesk.
// Anyone else is told there is nothing there, so ids cannot be probed.
func (s *Server) approvalFor(c *fiber.Ctx) (*requests.Approval, error) {
	a, err := s.Requests.GetApproval(c.UserContext(), param(c, "id"))
	if err != nil {
		return nil, err
	}
	u := user(c)
	if u.Role == access.RoleAdmin || u.Role == access.RoleHelpdesk || strings.EqualFold(a.RequestedBy, u.Username) {
		return a, nil
	}
	for _, st := range a.Steps {
		if st.DecidedBy != "" && strings.EqualFold(st.DecidedBy, u.Username) {
			return a, nil
		}
	}
	ok, _, err := s.Requests.CanDecide(c.UserContext(), a, requester(c))
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, requests.ErrApprovalNotFound
	}
	return a, nil
}

type approvalData struct {
	A       *requests.Approval
	Req     requests.Request
	Mine    bool
	CanRun  bool // the user may open the run or task
	Decide  bool
	WhyNot  string
	Comment string
	Errors  map[string]string
	// WaitsFor names who the open steps wait for.
	WaitsFor string
}

func (s *Server) approvalPage(c *fiber.Ctx) error {
	a, err := s.approvalFor(c)
	if err != nil {
		return err
	}
	return s.showApproval(c, fiber.StatusOK, a, "", nil)
}

// showApproval renders the approval page, with a comment typed and its
// error when a decision was refused.
func (s *Server) showApproval(c *fiber.Ctx, status int, a *requests.Approval, comment string, errs map[string]string) error {
	u := user(c)
	d := approvalData{A: a, Mine: strings.EqualFold(a.RequestedBy, u.Username), Comment: comment, Errors: errs, WaitsFor: waitsFor(a)}
	if r, err := a.RequestOf(); err == nil {
		d.Req = r
	}
	// The run and the task pages show them to an admin and to whoever
	// started them.
	d.CanRun = isAdmin(c) || d.Mine
	if a.Open() {
		ok, why, err := s.Requests.CanDecide(c.UserContext(), a, requester(c))
		if err != nil {
			return err
		}
		d.Decide, d.WhyNot = ok, why
	}
	return s.render(c, status, "approval", s.newPage(c, "approvals", "Approval of "+a.Type.Label()+" for "+a.BeneficiaryName, d))
}

func (s *Server) approvalApprove(c *fiber.Ctx) error { return s.decide(c, true) }
func (s *Server) approvalDeny(c *fiber.Ctx) error    { return s.decide(c, false) }

// decide approves or denies the step the user may decide.
func (s *Server) decide(c *fiber.Ctx, approve bool) error {
	a, err := s.approvalFor(c)
	if err != nil {
		return err
	}
	comment := form(c, "comment")
	done, err := s.Requests.Decide(c.UserContext(), a.ID, requester(c), requests.Decision{Approve: approve, Comment: comment})
	if err != nil {
		return s.decisionError(c, a, comment, err)
	}
	s.flash(c, decidedMessage(done, approve))
	return redirect(c, "/approvals/"+a.ID)
}

// decidedMessage says what a decision did.
func decidedMessage(a *requests.Approval, approved bool) string {
	switch {
	case !approved:
		return "Denied: the request will not be provisioned, and its requester is told."
	case a.Status == requests.ApprovalApproved && a.InstanceID != nil:
		return "Approved: the request's jobs are queued."
	case a.Status == requests.ApprovalApproved:
		return "Approved: the task's runs may start."
	}
	return "Approved. The request now waits for " + waitsFor(a) + "."
}

func (s *Server) approvalWithdraw(c *fiber.Ctx) error {
	a, err := s.approvalFor(c)
	if err != nil {
		return err
	}
	comment := form(c, "comment")
	if _, err := s.Requests.Withdraw(c.UserContext(), a.ID, requester(c), comment); err != nil {
		return s.decisionError(c, a, comment, err)
	}
	s.flash(c, "Request withdrawn: nobody needs to decide it any more.")
	return redirect(c, "/approvals/"+a.ID)
}

// decisionError shows a comment that is too long next to its field; other
// errors go to the error page (403 with the reason, 409 when decided).
func (s *Server) decisionError(c *fiber.Ctx, a *requests.Approval, comment string, err error) error {
	var ve *requests.ValidationError
	if !errors.As(err, &ve) || IsHTMX(c) {
		return err
	}
	errs := map[string]string{}
	for _, f := range ve.Fields {
		errs[f.Field] = f.Message
	}
	return s.showApproval(c, fiber.StatusUnprocessableEntity, a, comment, errs)
}

// approvalOf returns the approval a run or task names, or nil when it
// names none or it is gone.
func (s *Server) approvalOf(c *fiber.Ctx, id *string) (*requests.Approval, error) {
	if id == nil || *id == "" {
		return nil, nil
	}
	a, err := s.Requests.GetApproval(c.UserContext(), *id)
	if errors.Is(err, requests.ErrNotFound) {
		return nil, nil
	}
	return a, err
}
