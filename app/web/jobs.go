package web

import (
	"errors"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/provisor/provisor/requests"
)

var pageSizes = []int{10, 25, 50}

type groupRow struct {
	requests.Group
	Types string
	Stuck int
	// Unchanged counts the completed jobs that changed nothing.
	Unchanged int
}

type jobsData struct {
	Rows       []groupRow
	Page       *requests.GroupPage
	Status     string
	Statuses   []string
	Size       int
	Sizes      []int
	First      int
	Last       int
	Query      url.Values
	Open       string
	StuckAfter time.Duration
	Sort       string
	Heads      map[string]sortHead
	// Poll is how often the board refreshes itself ("" when nothing on
	// it is pending, running or scheduled); BoardURL is what it asks for.
	Poll     string
	BoardURL string
}

// sortHead is a sortable column head: the link that sorts by it (or the
// other way when it is the sort), and its aria-sort.
type sortHead struct {
	Href     string
	AriaSort string
	Arrow    string
}

// livePoll says how often a page showing jobs in these statuses asks
// again: often while jobs wait or run, now and then while only scheduled
// revocations remain, never once all are done.
func livePoll(statuses []string) string {
	poll := ""
	for _, st := range statuses {
		switch st {
		case requests.JobPending, requests.JobRunning, requests.InstanceAwaitingApproval:
			return "2s"
		case requests.JobScheduled:
			poll = "10s"
		}
	}
	return poll
}

// jobsPage is the Connector Jobs page: jobs grouped by request instance
// ("activation"), newest first, with the filter and page in the URL.
func (s *Server) jobsPage(c *fiber.Ctx) error {
	d := jobsData{Status: query(c, "status"), Statuses: requests.StatusFilters, Sizes: pageSizes, Query: currentQuery(c), StuckAfter: s.StuckAfter,
		Sort: queryIn(c, "sort", requests.GroupSorts)}
	if d.Status == "all" || !requests.ValidStatusFilter(d.Status) {
		d.Status = ""
	}
	d.Size, _ = strconv.Atoi(c.Query("size"))
	if !slices.Contains(pageSizes, d.Size) {
		d.Size = 25
	}
	page, err := s.Requests.ListGroups(c.UserContext(), requests.GroupFilter{Status: d.Status, Page: pageNumber(c), PageSize: d.Size, Sort: d.Sort})
	if err != nil {
		return err
	}
	d.Page = page
	now := time.Now()
	var seen []string
	for _, g := range page.Groups {
		r := groupRow{Group: g}
		types := map[string]bool{}
		seen = append(seen, g.Status)
		for _, j := range g.Jobs {
			seen = append(seen, j.Status)
			types[s.typeLabel(j.ConnectorType)] = true
			if s.stuck(&j, now) {
				r.Stuck++
			}
			if j.NoChange() {
				r.Unchanged++
			}
		}
		list := make([]string, 0, len(types))
		for t := range types {
			list = append(list, t)
		}
		sort.Strings(list)
		r.Types = strings.Join(list, ", ")
		d.Rows = append(d.Rows, r)
	}
	if n := len(page.Groups); n > 0 {
		d.First = (page.Page-1)*page.PageSize + 1
		d.Last = d.First + n - 1
	}
	if id := query(c, "open"); id != "" {
		d.Open = "/jobs/" + url.PathEscape(id)
	}
	d.Poll = livePoll(seen)
	board := url.Values{}
	for k, v := range d.Query {
		if k != "open" {
			board[k] = v
		}
	}
	d.BoardURL = "/jobs"
	if q := board.Encode(); q != "" {
		d.BoardURL += "?" + q
	}
	d.Heads = map[string]sortHead{}
	for _, col := range []string{"updated", "user", "status"} {
		// Updated starts newest first; the others from the top.
		first, second := col, "-"+col
		if col == "updated" {
			first, second = second, first
		}
		cur := d.Sort
		if cur == "" {
			cur = "-updated"
		}
		h := sortHead{AriaSort: "none"}
		next := first
		switch cur {
		case first:
			next, h.AriaSort = second, map[bool]string{true: "descending", false: "ascending"}[first[0] == '-']
		case second:
			h.AriaSort = map[bool]string{true: "descending", false: "ascending"}[second[0] == '-']
		}
		if h.AriaSort == "ascending" {
			h.Arrow = "▲"
		} else if h.AriaSort == "descending" {
			h.Arrow = "▼"
		}
		q := url.Values{}
		for k, v := range board {
			q[k] = v
		}
		q.Del("page")
		q.Set("sort", next)
		h.Href = "/jobs?" + q.Encode()
		d.Heads[col] = h
	}
	if IsHTMX(c) && c.Get("HX-Target") == "jobs-board" {
		return s.fragment(c, "jobs", "board", d)
	}
	return s.render(c, fiber.StatusOK, "jobs", s.newPage(c, "jobs", "Connector Jobs", d))
}

// stuck reports a job pending or running for longer than the limit.
func (s *Server) stuck(j *requests.Job, now time.Time) bool {
	switch j.Status {
	case requests.JobPending:
		since := j.UpdatedAt
		if j.DependsOn != nil && j.CreatedAt.Before(since) {
			since = j.CreatedAt
		}
		return now.Sub(since) > s.StuckAfter
	case requests.JobRunning:
		if j.StartedAt != nil {
			return now.Sub(*j.StartedAt) > s.StuckAfter
		}
	}
	return false
}

func (s *Server) typeLabel(name string) string {
	if t, ok := s.Connectors.Registry().Lookup(name); ok && t.Label != "" {
		return t.Label
	}
	return name
}

type cardData struct {
	requests.Job
	TypeLabel string
	Stuck     bool
	CanCancel bool
	CanRetry  bool
}

type dialogData struct {
	// Poll is how often the open dialog refreshes itself ("" when done).
	Poll     string
	Inst     *requests.Instance
	Approval *requests.Approval
	// Withdraw is set when the run awaits approval: cancelling it
	// withdraws its request.
	Withdraw   bool
	Cards      []cardData
	Message    string
	CanForce   bool
	CanCancel  bool
	StuckAfter time.Duration
}

func (s *Server) jobsDialog(c *fiber.Ctx) error {
	return s.showDialog(c, param(c, "id"), "")
}

// showDialog renders the Activation Jobs dialog of one instance.
func (s *Server) showDialog(c *fiber.Ctx, id, message string) error {
	inst, err := s.Requests.GetInstance(c.UserContext(), id)
	if err != nil {
		return err
	}
	d := dialogData{Inst: inst, Message: message, StuckAfter: s.StuckAfter, Withdraw: inst.Status == requests.InstanceAwaitingApproval}
	if d.Approval, err = s.approvalOf(c, inst.ApprovalID); err != nil {
		return err
	}
	now := time.Now()
	statuses := []string{inst.Status}
	for _, j := range inst.Jobs {
		statuses = append(statuses, j.Status)
		card := cardData{Job: j, TypeLabel: s.typeLabel(j.ConnectorType), Stuck: s.stuck(&j, now),
			CanCancel: j.Status == requests.JobPending && !j.Revocation, CanRetry: j.Status == requests.JobFailed || j.Status == requests.JobCanceled}
		if j.Status == requests.JobScheduled {
			d.CanForce = true
		}
		if card.CanCancel {
			d.CanCancel = true
		}
		d.Cards = append(d.Cards, card)
	}
	d.Poll = livePoll(statuses)
	if message != "" {
		// The board behind the dialog shows what the action changed.
		c.Set("HX-Trigger", "jobs-changed")
	}
	if !IsHTMX(c) {
		// Without htmx, the dialog opens on the page itself.
		return c.Redirect("/jobs?open="+url.QueryEscape(inst.ID), fiber.StatusSeeOther)
	}
	return s.fragment(c, "jobs", "dialog", d)
}

// steer runs an action and shows the dialog again, with the reason when
// the action does not apply.
func (s *Server) steer(c *fiber.Ctx, done string, fn func() error) error {
	msg := done
	if err := fn(); err != nil {
		if !errors.Is(err, requests.ErrConflict) {
			return err
		}
		msg = strings.TrimPrefix(err.Error(), "conflict: ")
	}
	return s.showDialog(c, param(c, "id"), msg)
}

func (s *Server) jobsCancelInstance(c *fiber.Ctx) error {
	msg := "Pending jobs canceled."
	if inst, err := s.Requests.GetInstance(c.UserContext(), param(c, "id")); err == nil && inst.Status == requests.InstanceAwaitingApproval {
		msg = "Run canceled: its request is withdrawn and nobody needs to approve it."
	}
	return s.steer(c, msg, func() error {
		_, err := s.Requests.CancelInstance(c.UserContext(), param(c, "id"), user(c).Username)
		return err
	})
}

func (s *Server) jobsForceEnd(c *fiber.Ctx) error {
	return s.steer(c, "Force End: the scheduled revocations run now.", func() error {
		_, err := s.Requests.ForceEnd(c.UserContext(), param(c, "id"), user(c).Username)
		return err
	})
}

func (s *Server) jobsCancelJob(c *fiber.Ctx) error {
	return s.steer(c, "Job canceled.", func() error {
		_, err := s.jobOf(c)
		if err != nil {
			return err
		}
		_, err = s.Requests.CancelJob(c.UserContext(), param(c, "job"), user(c).Username)
		return err
	})
}

func (s *Server) jobsRetryJob(c *fiber.Ctx) error {
	return s.steer(c, "Job queued again.", func() error {
		_, err := s.jobOf(c)
		if err != nil {
			return err
		}
		_, err = s.Requests.RetryJob(c.UserContext(), param(c, "job"), user(c).Username)
		return err
	})
}

// jobOf checks that the job in the URL belongs to the instance in the URL.
func (s *Server) jobOf(c *fiber.Ctx) (*requests.Job, error) {
	inst, err := s.Requests.GetInstance(c.UserContext(), param(c, "id"))
	if err != nil {
		return nil, err
	}
	for i := range inst.Jobs {
		if inst.Jobs[i].ID == param(c, "job") {
			return &inst.Jobs[i], nil
		}
	}
	return nil, requests.ErrNotFound
}
