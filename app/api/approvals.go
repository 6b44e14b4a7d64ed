package api

import (
	"errors"
	"slices"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/provisor/provisor/requests"
)

// approvalView is an approval as the API shows it: with whether the
// caller may decide it now, and if not, why.
type approvalView struct {
	*requests.Approval
	Approvers string `json:"approved_by,omitempty"`
	CanDecide bool   `json:"can_decide"`
	WhyNot    string `json:"why_not,omitempty"`
}

// Views of the approvals listing.
const (
	viewWaiting = "waiting"
	viewMine    = "mine"
	viewAll     = "all"
)

// listApprovals lists approvals: by default those waiting for the
// caller's decision; view=mine those the caller asked for; view=all
// every one (admins, and clients that act as a service).
func (s *server) listApprovals(c *fiber.Ctx) error {
	limit, offset, err := paging(c)
	if err != nil {
		return err
	}
	view := c.Query("view", viewWaiting)
	status := c.Query("status")
	if status != "" && !slices.Contains(requests.ApprovalStatuses, status) {
		return problem(422, "invalid query parameter", requests.FieldError{Field: "status", Message: "must be one of " + strings.Join(requests.ApprovalStatuses, ", ")})
	}
	p := principal(c)
	who := requesterOf(p)
	o := requests.ApprovalListOpts{Status: status, Limit: limit, Offset: offset}
	switch view {
	case viewWaiting:
		if p.User == nil {
			return problem(422, "invalid query parameter", requests.FieldError{Field: "view",
				Message: "a client that acts as a service waits for no decision: use view=all"})
		}
		o.For = &who
	case viewMine:
		if p.User == nil {
			return problem(422, "invalid query parameter", requests.FieldError{Field: "view",
				Message: "a client that acts as a service asks for nothing that needs approval: use view=all"})
		}
		o.Mine = p.User.Username
	case viewAll:
		if !who.Admin && !who.Helpdesk {
			return problem(403, "only admins and the helpdesk list every approval")
		}
		o.All = true
	default:
		return problem(422, "invalid query parameter", requests.FieldError{Field: "view", Message: "must be waiting, mine or all"})
	}
	items, total, err := s.Requests.ListApprovals(c.UserContext(), o)
	if err != nil {
		return err
	}
	out := make([]approvalView, len(items))
	for i := range items {
		if out[i], err = s.view(c, &items[i]); err != nil {
			return err
		}
	}
	return c.JSON(list[approvalView]{Items: out, Total: total, Limit: limit, Offset: offset})
}

func (s *server) view(c *fiber.Ctx, a *requests.Approval) (approvalView, error) {
	v := approvalView{Approval: a, Approvers: a.Approvers()}
	p := principal(c)
	if p.User == nil {
		v.WhyNot = "an API client decides approvals only as the user it acts for"
		return v, nil
	}
	ok, why, err := s.Requests.CanDecide(c.UserContext(), a, requesterOf(p))
	v.CanDecide, v.WhyNot = ok, why
	return v, err
}

// getApproval shows one approval to who may see it: its requester, its
// approvers, admins, the helpdesk and clients that act as a service.
// Others are answered 404, as for an approval that does not exist.
func (s *server) getApproval(c *fiber.Ctx) error {
	v, err := s.seen(c)
	if err != nil {
		return err
	}
	return c.JSON(v)
}

// seen returns the approval of the path as the caller sees it, or not
// found when it is not the caller's to see.
func (s *server) seen(c *fiber.Ctx) (approvalView, error) {
	a, err := s.Requests.GetApproval(c.UserContext(), param(c, "id"))
	if err != nil {
		return approvalView{}, err
	}
	v, err := s.view(c, a)
	if err != nil {
		return approvalView{}, err
	}
	if !s.maySee(c, &v) {
		return approvalView{}, requests.ErrApprovalNotFound
	}
	return v, nil
}

func (s *server) maySee(c *fiber.Ctx, v *approvalView) bool {
	p := principal(c)
	if p.User == nil || v.CanDecide {
		return true
	}
	who := requesterOf(p)
	if who.Admin || who.Helpdesk || strings.EqualFold(v.RequestedBy, p.User.Username) {
		return true
	}
	for _, st := range v.Steps {
		if strings.EqualFold(st.DecidedBy, p.User.Username) {
			return true
		}
	}
	return false
}

type decisionBody struct {
	Comment string `json:"comment"`
}

// decideApproval approves or denies the step of an approval the caller
// may decide.
func (s *server) decideApproval(approve bool) fiber.Handler {
	return func(c *fiber.Ctx) error {
		in, err := s.decisionBody(c)
		if err != nil {
			return err
		}
		p := principal(c)
		if p.User == nil {
			return problem(403, "an API client decides approvals only as the user it acts for")
		}
		a, err := s.Requests.Decide(c.UserContext(), param(c, "id"), requesterOf(p), requests.Decision{Approve: approve, Comment: in.Comment})
		if err != nil {
			return s.hideUnseen(c, err)
		}
		v, err := s.view(c, a)
		if err != nil {
			return err
		}
		return c.JSON(v)
	}
}

// withdrawApproval withdraws a request of the caller's that waits for its
// approval.
func (s *server) withdrawApproval(c *fiber.Ctx) error {
	in, err := s.decisionBody(c)
	if err != nil {
		return err
	}
	p := principal(c)
	if p.User == nil {
		return problem(403, "an API client withdraws only the requests of the user it acts for")
	}
	a, err := s.Requests.Withdraw(c.UserContext(), param(c, "id"), requesterOf(p), in.Comment)
	if err != nil {
		return s.hideUnseen(c, err)
	}
	v, err := s.view(c, a)
	if err != nil {
		return err
	}
	return c.JSON(v)
}

// decisionBody reads an optional {"comment": "..."}; an empty body is none.
func (s *server) decisionBody(c *fiber.Ctx) (decisionBody, error) {
	var in decisionBody
	if len(c.Body()) == 0 {
		return in, nil
	}
	return in, decode(c, &in)
}

// hideUnseen answers 404 instead of 403 for an approval the caller may
// not see, so ids cannot be probed.
func (s *server) hideUnseen(c *fiber.Ctx, err error) error {
	if !errors.Is(err, requests.ErrNotAllowed) {
		return err
	}
	if _, serr := s.seen(c); serr != nil {
		return serr
	}
	return err
}
