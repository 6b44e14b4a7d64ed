package web

import (
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/provisor/provisor/identities"
	"github.com/provisor/provisor/requests"
	"github.com/provisor/provisor/tasks"
)

var taskStatuses = []string{tasks.StatusIdle, tasks.StatusTriggered, tasks.StatusDisabled}

// commonZones are offered in the schedule editor; any IANA zone is accepted.
var commonZones = []string{"UTC", "Europe/London", "Europe/Paris", "Europe/Berlin", "Europe/Madrid", "Europe/Rome",
	"Europe/Warsaw", "Europe/Helsinki", "Europe/Moscow", "Africa/Johannesburg", "Asia/Dubai", "Asia/Kolkata",
	"Asia/Singapore", "Asia/Shanghai", "Asia/Tokyo", "Australia/Sydney", "Pacific/Auckland", "America/Sao_Paulo",
	"America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles", "America/Toronto", "America/Mexico_City"}

type tasksData struct {
	Items []tasks.Task
	Paging
	Q        string
	Status   string
	Statuses []string
	Query    url.Values
	Admin    bool
	// Gates says, by task, why Trigger is off while its approval has not
	// come through.
	Gates map[string]string
}

// tasksPage is the tasks grid: every task for an admin, a requester's own
// tasks otherwise.
func (s *Server) tasksPage(c *fiber.Ctx) error {
	d := tasksData{Paging: pagingOf(c), Q: query(c, "q"), Status: queryIn(c, "status", taskStatuses), Statuses: taskStatuses,
		Query: currentQuery(c), Admin: isAdmin(c)}
	o := tasks.ListOpts{Query: d.Q, Status: d.Status, Limit: d.Limit(), Offset: d.Offset()}
	if !d.Admin {
		o.CreatedBy = user(c).Username
	}
	items, total, err := s.Tasks.List(c.UserContext(), o)
	if err != nil {
		return err
	}
	d.Items = items
	d.counted(total)
	d.Gates = map[string]string{}
	for i := range items {
		gate, _, err := s.triggerGate(c, &items[i])
		if err != nil {
			return err
		}
		d.Gates[items[i].ID] = gate
	}
	if IsHTMX(c) && c.Get("HX-Target") == "task-grid" {
		return s.fragment(c, "tasks", "grid", s.newPage(c, "tasks", "Tasks", d))
	}
	return s.render(c, fiber.StatusOK, "tasks", s.newPage(c, "tasks", "Tasks", d))
}

// taskFor returns a task the user may see: an admin any, a requester the
// tasks they created.
func (s *Server) taskFor(c *fiber.Ctx) (*tasks.Task, error) {
	t, err := s.Tasks.Get(c.UserContext(), param(c, "id"))
	if err != nil {
		return nil, err
	}
	if !isAdmin(c) && t.CreatedBy != user(c).Username {
		return nil, tasks.ErrNotFound
	}
	return t, nil
}

type rowData struct {
	T     *tasks.Task
	Admin bool
	CSRF  string
	Gate  string
}

// triggerGate returns why the task may not be triggered yet because of
// its approval ("" when it may), and the approval.
func (s *Server) triggerGate(c *fiber.Ctx, t *tasks.Task) (string, *requests.Approval, error) {
	if t.ApprovalID == nil {
		return "", nil, nil
	}
	a, err := s.approvalOf(c, t.ApprovalID)
	switch {
	case err != nil:
		return "", nil, err
	case a == nil:
		return "the approval of its request is gone: change its request to ask again", nil, nil
	case a.Status == requests.ApprovalPending:
		return "awaits approval", a, nil
	case a.Status != requests.ApprovalApproved:
		return "its request was not approved (" + a.Status + "): change its request to ask again", a, nil
	}
	return "", a, nil
}

// row is the grid row of t.
func (s *Server) row(c *fiber.Ctx, t *tasks.Task) error {
	gate, _, err := s.triggerGate(c, t)
	if err != nil {
		return err
	}
	return s.fragment(c, "tasks", "row", rowData{T: t, Admin: isAdmin(c), Gate: gate})
}

// taskRow is one row of the grid; a Triggered row polls itself until the
// run ends.
func (s *Server) taskRow(c *fiber.Ctx) error {
	t, err := s.taskFor(c)
	if err != nil {
		return err
	}
	return s.row(c, t)
}

func (s *Server) taskTrigger(c *fiber.Ctx) error {
	t, err := s.taskFor(c)
	if err != nil {
		return err
	}
	inst, err := s.Tasks.TriggerWithKey(c.UserContext(), t.ID, requests.TriggerManual, user(c).Username, idempotencyKey(c))
	if err != nil {
		return err
	}
	if IsHTMX(c) && c.Get("HX-Target") != "" {
		t, err = s.Tasks.Get(c.UserContext(), t.ID)
		if err != nil {
			return err
		}
		return s.row(c, t)
	}
	s.flash(c, "Task triggered: run "+inst.ID+" started.")
	return redirect(c, "/tasks/"+t.ID)
}

type taskData struct {
	T           *tasks.Task
	Admin       bool
	Errors      map[string]string
	Connector   string
	Ents        []identities.Entitlement
	Accounts    []accountLine
	Recipients  []identities.Identity
	Zones       []string
	Schedule    scheduleData
	Dynamic     []string
	RecentRuns  []requests.Instance
	ScheduledAt time.Time
	// Approval covers the task's request, or is what it awaits; Gate
	// says why Trigger is off until it is approved.
	Approval *requests.Approval
	Gate     string
	// Preview is what a trigger would run now.
	Preview *previewView
}

type scheduleData struct {
	Cron, Timezone string
	Description    string
	Next           []time.Time
	Error          string
}

func preview(expr, tz string) scheduleData {
	d := scheduleData{Cron: expr, Timezone: tz}
	if strings.TrimSpace(expr) == "" {
		return d
	}
	next, err := tasks.NextRuns(expr, tz, time.Now(), 5)
	if err != nil {
		d.Error = err.Error()
		return d
	}
	d.Next, d.Description = next, tasks.Describe(expr, tz)
	return d
}

func (s *Server) taskPage(c *fiber.Ctx) error {
	t, err := s.taskFor(c)
	if err != nil {
		return err
	}
	return s.showTask(c, fiber.StatusOK, t, nil)
}

func (s *Server) showTask(c *fiber.Ctx, status int, t *tasks.Task, errs map[string]string) error {
	ctx := c.UserContext()
	d := taskData{T: t, Admin: isAdmin(c), Errors: errs, Zones: commonZones,
		Schedule: preview(t.Cron, t.Timezone), Dynamic: []string{"requester", "beneficiary"}}
	if rec, err := s.Connectors.Get(ctx, t.ConnectorID); err == nil {
		d.Connector = rec.Name
	}
	for _, id := range t.Request.Entitlements {
		if e, err := s.Identities.GetEntitlement(ctx, id); err == nil {
			d.Ents = append(d.Ents, *e)
		}
	}
	d.Accounts = s.accountLines(c, &requests.Draft{Request: t.Request})
	for _, r := range t.Notify.Recipients {
		if r == "requester" || r == "beneficiary" {
			continue
		}
		if p, err := s.Identities.GetIdentity(ctx, r); err == nil {
			d.Recipients = append(d.Recipients, *p)
		}
	}
	runs, _, err := s.Requests.ListInstances(ctx, requests.InstanceFilter{TaskID: t.ID, Limit: 5})
	if err != nil {
		return err
	}
	d.RecentRuns = runs
	if d.Gate, d.Approval, err = s.triggerGate(c, t); err != nil {
		return err
	}
	if next, ok := s.Schedules.NextRun(t.ID); ok {
		d.ScheduledAt = next
	}
	p, err := s.Tasks.Preview(ctx, t)
	if d.Preview, err = previewOf(p, err); err != nil {
		return err
	}
	return s.render(c, status, "task", s.newPage(c, "tasks", t.Name, d))
}

// taskSave changes the name and description.
func (s *Server) taskSave(c *fiber.Ctx) error {
	t, err := s.taskFor(c)
	if err != nil {
		return err
	}
	name, desc := form(c, "name"), form(c, "description")
	return s.updateTask(c, t, tasks.Input{Name: &name, Description: &desc}, "Task saved.")
}

// updateTask applies in and shows the page again: with the errors next to
// their fields, or with a message.
func (s *Server) updateTask(c *fiber.Ctx, t *tasks.Task, in tasks.Input, done string) error {
	_, err := s.Tasks.Update(c.UserContext(), t.ID, in, user(c).Username)
	if errs := requests.FieldMap(err); errs != nil {
		// Show what was typed, not what is stored.
		if in.Name != nil {
			t.Name = *in.Name
		}
		if in.Description != nil {
			t.Description = *in.Description
		}
		if in.Cron != nil {
			t.Cron = *in.Cron
		}
		if in.Timezone != nil {
			t.Timezone = *in.Timezone
		}
		if in.Notify != nil {
			t.Notify = *in.Notify
		}
		return s.showTask(c, fiber.StatusUnprocessableEntity, t, errs)
	}
	if err != nil {
		return err
	}
	s.flash(c, done)
	return redirect(c, "/tasks/"+t.ID)
}

func (s *Server) taskSchedule(c *fiber.Ctx) error {
	t, err := s.taskFor(c)
	if err != nil {
		return err
	}
	expr, tz, on := strings.TrimSpace(form(c, "cron")), strings.TrimSpace(form(c, "timezone")), form(c, "schedule_enabled") == "on"
	if expr == "" {
		on = false
	}
	return s.updateTask(c, t, tasks.Input{Cron: &expr, Timezone: &tz, ScheduleEnabled: &on}, "Schedule saved.")
}

func (s *Server) taskNotify(c *fiber.Ctx) error {
	t, err := s.taskFor(c)
	if err != nil {
		return err
	}
	n := tasks.Notify{Enabled: form(c, "enabled") == "yes", When: form(c, "when"), Recipients: []string{}}
	for _, r := range formList(c, "recipients") {
		if !slices.Contains(n.Recipients, r) {
			n.Recipients = append(n.Recipients, r)
		}
	}
	return s.updateTask(c, t, tasks.Input{Notify: &n}, "Notification settings saved.")
}

func (s *Server) taskEnable(c *fiber.Ctx) error {
	t, err := s.taskFor(c)
	if err != nil {
		return err
	}
	on := form(c, "enabled") == "true"
	msg := "Task disabled: it will not run until it is enabled."
	if on {
		msg = "Task enabled."
	}
	return s.updateTask(c, t, tasks.Input{Enabled: &on}, msg)
}

func (s *Server) taskDelete(c *fiber.Ctx) error {
	t, err := s.taskFor(c)
	if err != nil {
		return err
	}
	if err := s.Tasks.Delete(c.UserContext(), t.ID, user(c).Username); err != nil {
		return err
	}
	s.flash(c, "Task "+t.Name+" deleted; its past runs stay in Requests.")
	return redirect(c, "/tasks")
}

type historyData struct {
	T     *tasks.Task
	Items []requests.Instance
	Paging
	Query url.Values
}

func (s *Server) taskHistory(c *fiber.Ctx) error {
	t, err := s.taskFor(c)
	if err != nil {
		return err
	}
	d := historyData{T: t, Paging: pagingOf(c), Query: currentQuery(c)}
	d.Items, d.Total, err = s.Requests.ListInstances(c.UserContext(), requests.InstanceFilter{TaskID: t.ID, Limit: d.Limit(), Offset: d.Offset()})
	if err != nil {
		return err
	}
	d.counted(d.Total)
	return s.render(c, fiber.StatusOK, "history", s.newPage(c, "tasks", "History of "+t.Name, d))
}

// schedulePreview reads a cron expression as it is typed.
func (s *Server) schedulePreview(c *fiber.Ctx) error {
	return s.fragment(c, "task", "preview", preview(query(c, "cron"), query(c, "timezone")))
}

// lookupIdentities answers the search of a recipient picker: a requester
// finds only the identities they may ask for, not the whole directory.
// With pick=one the picker takes one identity (radio buttons).
func (s *Server) lookupIdentities(c *fiber.Ctx) error {
	reach, err := s.Requests.Reach(c.UserContext(), requester(c))
	if err != nil {
		return err
	}
	list, _, err := s.Identities.ListIdentities(c.UserContext(), identities.ListOpts{Query: query(c, "q"), Limit: 20, Reach: reach})
	if err != nil {
		return err
	}
	return s.fragment(c, "task", "identity-options", map[string]any{"Items": list, "Name": query(c, "name"), "One": query(c, "pick") == "one"})
}

func (s *Server) lookupWorkgroups(c *fiber.Ctx) error {
	list, _, err := s.Identities.ListWorkgroups(c.UserContext(), identities.ListOpts{Query: query(c, "q"), Limit: 20})
	if err != nil {
		return err
	}
	return s.fragment(c, "task", "workgroup-options", map[string]any{"Items": list, "Name": query(c, "name")})
}

func (s *Server) lookupEntitlements(c *fiber.Ctx) error {
	list, _, err := s.Identities.ListEntitlements(c.UserContext(), query(c, "connector"), identities.ListOpts{Query: query(c, "q"), Limit: 20})
	if err != nil {
		return err
	}
	return s.fragment(c, "task", "entitlement-options", map[string]any{"Items": list, "Name": query(c, "name")})
}
