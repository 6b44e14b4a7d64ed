package web

import (
	"net/url"

	"github.com/gofiber/fiber/v2"

	"github.com/provisor/provisor/requests"
)

// currentQuery copies the request's query string.
func currentQuery(c *fiber.Ctx) url.Values {
	q, _ := url.ParseQuery(string(c.Request().URI().QueryString()))
	return q
}

type requestsData struct {
	Items []requests.Instance
	Paging
	Status   string
	Statuses []string
	Query    url.Values
	All      bool
}

// requestsPage lists runs: a requester's own, or every run for an admin.
func (s *Server) requestsPage(c *fiber.Ctx) error {
	d := requestsData{Paging: pagingOf(c), Status: queryIn(c, "status", requests.InstanceStatuses), Statuses: requests.InstanceStatuses,
		Query: currentQuery(c), All: isAdmin(c)}
	f := requests.InstanceFilter{Status: d.Status, Limit: d.Limit(), Offset: d.Offset()}
	if !d.All {
		f.TriggeredBy = user(c).Username
	}
	items, total, err := s.Requests.ListInstances(c.UserContext(), f)
	if err != nil {
		return err
	}
	d.Items = items
	d.counted(total)
	return s.render(c, fiber.StatusOK, "requests", s.newPage(c, "requests", "Requests", d))
}

// instanceFor returns an instance the user may see: an admin any, a
// requester the runs they started.
func (s *Server) instanceFor(c *fiber.Ctx, id string) (*requests.Instance, error) {
	inst, err := s.Requests.GetInstance(c.UserContext(), id)
	if err != nil {
		return nil, err
	}
	if !isAdmin(c) && inst.TriggeredBy != user(c).Username {
		return nil, requests.ErrNotFound
	}
	return inst, nil
}

type instanceData struct {
	Inst  *requests.Instance
	Busy  bool
	Admin bool
	// Approval is the approval the run waits for or went ahead under.
	Approval *requests.Approval
}

// instancePage shows one run with its jobs and their history; while the
// run is busy, htmx refreshes the jobs every two seconds.
func (s *Server) instancePage(c *fiber.Ctx) error {
	inst, err := s.instanceFor(c, param(c, "id"))
	if err != nil {
		return err
	}
	d := instanceData{Inst: inst, Busy: requests.Busy(inst.Status), Admin: isAdmin(c)}
	if d.Approval, err = s.approvalOf(c, inst.ApprovalID); err != nil {
		return err
	}
	if IsHTMX(c) {
		return s.fragment(c, "request", "run", d)
	}
	return s.render(c, fiber.StatusOK, "request", s.newPage(c, "requests", "Run "+inst.ID, d))
}
