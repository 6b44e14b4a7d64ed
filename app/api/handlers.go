package api

import (
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/provisor/provisor/access"
	"github.com/provisor/provisor/audit"
	"github.com/provisor/provisor/connectors"
	"github.com/provisor/provisor/connectors/configured"
	"github.com/provisor/provisor/identities"
	"github.com/provisor/provisor/imports"
	"github.com/provisor/provisor/input"
	"github.com/provisor/provisor/requests"
	"github.com/provisor/provisor/tasks"
)

func (s *server) listIdentities(c *fiber.Ctx) error {
	limit, offset, err := paging(c)
	if err != nil {
		return err
	}
	items, total, err := s.Identities.ListIdentities(c.UserContext(), identities.ListOpts{Query: c.Query("q"), Limit: limit, Offset: offset})
	if err != nil {
		return err
	}
	return c.JSON(list[identities.Identity]{Items: items, Total: total, Limit: limit, Offset: offset})
}

func (s *server) createIdentity(c *fiber.Ctx) error {
	var in identities.IdentityInput
	if err := decode(c, &in); err != nil {
		return err
	}
	id, err := s.Identities.CreateIdentity(c.UserContext(), in)
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(id)
}

func (s *server) getIdentity(c *fiber.Ctx) error {
	id, err := s.Identities.GetIdentity(c.UserContext(), param(c, "id"))
	if err != nil {
		return err
	}
	accounts, err := s.Identities.Accounts(c.UserContext(), id.ID)
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"identity": id, "accounts": accounts})
}

func (s *server) listWorkgroups(c *fiber.Ctx) error {
	limit, offset, err := paging(c)
	if err != nil {
		return err
	}
	items, total, err := s.Identities.ListWorkgroups(c.UserContext(), identities.ListOpts{Query: c.Query("q"), Limit: limit, Offset: offset})
	if err != nil {
		return err
	}
	return c.JSON(list[identities.Workgroup]{Items: items, Total: total, Limit: limit, Offset: offset})
}

func (s *server) createWorkgroup(c *fiber.Ctx) error {
	var in identities.WorkgroupInput
	if err := decode(c, &in); err != nil {
		return err
	}
	wg, err := s.Identities.CreateWorkgroup(c.UserContext(), in)
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(wg)
}

func (s *server) getWorkgroup(c *fiber.Ctx) error {
	wg, err := s.Identities.GetWorkgroup(c.UserContext(), param(c, "id"))
	if err != nil {
		return err
	}
	members, err := s.Identities.Members(c.UserContext(), nil, wg.ID)
	if err != nil {
		return err
	}
	wg.MemberCount = len(members)
	return c.JSON(fiber.Map{"workgroup": wg, "members": members})
}

func (s *server) addMembers(c *fiber.Ctx) error {
	var in struct {
		Members []string `json:"members"`
	}
	if err := decode(c, &in); err != nil {
		return err
	}
	if len(in.Members) == 0 {
		return problem(422, "no members given", requests.FieldError{Field: "members", Message: "give at least one identity id"})
	}
	if err := s.Identities.AddMembers(c.UserContext(), param(c, "id"), in.Members); err != nil {
		return err
	}
	return s.getWorkgroup(c)
}

// connectorView is a connector as the API shows it: secrets by name only.
type connectorView struct {
	ID            string         `json:"id"`
	Name          string         `json:"name"`
	Type          string         `json:"type"`
	Description   string         `json:"description"`
	Settings      map[string]any `json:"settings"`
	Secrets       []string       `json:"secrets"`
	Enabled       bool           `json:"enabled"`
	Health        string         `json:"health"`
	HealthMessage string         `json:"health_message"`
	HealthAt      *time.Time     `json:"health_checked_at"`
	CreatedAt     time.Time      `json:"created_at"`
	UpdatedAt     time.Time      `json:"updated_at"`
}

func (s *server) viewConnector(r *configured.Record) connectorView {
	v := connectorView{ID: r.ID, Name: r.Name, Type: r.Type, Description: r.Description, Enabled: r.Enabled,
		Health: r.Health, HealthMessage: r.HealthMessage, HealthAt: r.HealthAt, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt,
		Settings: map[string]any{}, Secrets: []string{}}
	_ = decodeJSON(r.Settings, &v.Settings)
	if names, err := s.Connectors.SecretNames(r); err == nil {
		v.Secrets = names
	}
	return v
}

func (s *server) listConnectors(c *fiber.Ctx) error {
	recs, err := s.Connectors.List(c.UserContext())
	if err != nil {
		return err
	}
	out := make([]connectorView, len(recs))
	for i := range recs {
		out[i] = s.viewConnector(&recs[i])
	}
	return c.JSON(list[connectorView]{Items: out, Total: int64(len(out)), Limit: len(out)})
}

func (s *server) createConnector(c *fiber.Ctx) error {
	var in configured.Input
	if err := decode(c, &in); err != nil {
		return err
	}
	r, err := s.Connectors.Create(c.UserContext(), in)
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(s.viewConnector(r))
}

func (s *server) getConnector(c *fiber.Ctx) error {
	r, err := s.Connectors.Get(c.UserContext(), param(c, "id"))
	if err != nil {
		return err
	}
	return c.JSON(s.viewConnector(r))
}

func (s *server) updateConnector(c *fiber.Ctx) error {
	var in configured.Input
	if err := decode(c, &in); err != nil {
		return err
	}
	r, err := s.Connectors.Get(c.UserContext(), param(c, "id"))
	if err != nil {
		return err
	}
	if in.Name == "" {
		in.Name = r.Name
	}
	if in.Settings == nil {
		in.Settings = []byte(r.Settings)
	}
	if in.Description == "" {
		in.Description = r.Description
	}
	r, err = s.Connectors.Update(c.UserContext(), r.ID, in)
	if err != nil {
		return err
	}
	return c.JSON(s.viewConnector(r))
}

func (s *server) checkConnector(c *fiber.Ctx) error {
	if len(c.Body()) > 0 {
		// Unsaved settings: tested, not recorded as the connector's health.
		var in configured.Input
		if err := decode(c, &in); err != nil {
			return err
		}
		h, err := s.Connectors.CheckInput(c.UserContext(), param(c, "id"), in)
		if err != nil {
			return err
		}
		return c.JSON(fiber.Map{"ok": h.OK, "message": h.Message, "latency_ms": h.Latency.Milliseconds()})
	}
	r, conn, err := s.Connectors.OpenByID(c.UserContext(), param(c, "id"))
	if err != nil {
		return err
	}
	h := connectors.CheckHealth(c.UserContext(), conn)
	if err := s.Connectors.RecordHealth(c.UserContext(), r.ID, h); err != nil {
		return err
	}
	return c.JSON(fiber.Map{"ok": h.OK, "message": h.Message, "latency_ms": h.Latency.Milliseconds()})
}

func (s *server) listEntitlements(c *fiber.Ctx) error {
	r, err := s.Connectors.Get(c.UserContext(), param(c, "id"))
	if err != nil {
		return err
	}
	limit, offset, err := paging(c)
	if err != nil {
		return err
	}
	items, total, err := s.Identities.ListEntitlements(c.UserContext(), r.ID, identities.ListOpts{Query: c.Query("q"), Limit: limit, Offset: offset})
	if err != nil {
		return err
	}
	return c.JSON(list[identities.Entitlement]{Items: items, Total: total, Limit: limit, Offset: offset})
}

func (s *server) createEntitlement(c *fiber.Ctx) error {
	var in identities.EntitlementInput
	if err := decode(c, &in); err != nil {
		return err
	}
	e, err := s.Identities.CreateEntitlement(c.UserContext(), param(c, "id"), in)
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(e)
}

func (s *server) submitRequest(c *fiber.Ctx) error {
	var in requests.Request
	if err := decode(c, &in); err != nil {
		return err
	}
	key, err := idempotencyKey(c)
	if err != nil {
		return err
	}
	who := requesterOf(principal(c))
	inst, err := s.Requests.Submit(c.UserContext(), in, requests.StartOpts{Trigger: requests.TriggerAPI, Actor: principal(c).Name, Key: key, By: &who})
	if err != nil {
		return err
	}
	c.Location("/api/v1/request-instances/" + inst.ID)
	return c.Status(fiber.StatusCreated).JSON(inst)
}

func (s *server) listInstances(c *fiber.Ctx) error {
	limit, offset, err := paging(c)
	if err != nil {
		return err
	}
	if id := c.Query("task_id"); id != "" {
		if !input.ID(id) {
			return problem(422, "invalid query parameter", requests.FieldError{Field: "task_id", Message: "must be a task id (UUID)"})
		}
	}
	if st := c.Query("status"); st != "" && !slices.Contains(requests.InstanceStatuses, st) {
		return problem(422, "invalid query parameter", requests.FieldError{Field: "status", Message: "must be one of " + strings.Join(requests.InstanceStatuses, ", ")})
	}
	items, total, err := s.Requests.ListInstances(c.UserContext(), requests.InstanceFilter{
		TaskID: c.Query("task_id"), Status: c.Query("status"), Limit: limit, Offset: offset,
	})
	if err != nil {
		return err
	}
	return c.JSON(list[requests.Instance]{Items: items, Total: total, Limit: limit, Offset: offset})
}

func (s *server) getInstance(c *fiber.Ctx) error {
	inst, err := s.Requests.GetInstance(c.UserContext(), param(c, "id"))
	if err != nil {
		return err
	}
	return c.JSON(inst)
}

func (s *server) cancelInstance(c *fiber.Ctx) error {
	inst, err := s.Requests.CancelInstance(c.UserContext(), param(c, "id"), principal(c).Name)
	if err != nil {
		return err
	}
	return c.JSON(inst)
}

func (s *server) forceEnd(c *fiber.Ctx) error {
	inst, err := s.Requests.ForceEnd(c.UserContext(), param(c, "id"), principal(c).Name)
	if err != nil {
		return err
	}
	return c.JSON(inst)
}

func (s *server) listJobGroups(c *fiber.Ctx) error {
	page, err := intQuery(c, "page", 1, 1<<30)
	if err != nil {
		return err
	}
	size, err := intQuery(c, "page_size", 25, 50)
	if err != nil {
		return err
	}
	if size != 10 && size != 25 && size != 50 {
		return problem(422, "invalid query parameter", requests.FieldError{Field: "page_size", Message: "must be 10, 25 or 50"})
	}
	out, err := s.Requests.ListGroups(c.UserContext(), requests.GroupFilter{Status: c.Query("status"), Page: page, PageSize: size})
	if err != nil {
		return err
	}
	return c.JSON(out)
}

func (s *server) cancelJob(c *fiber.Ctx) error {
	j, err := s.Requests.CancelJob(c.UserContext(), param(c, "id"), principal(c).Name)
	if err != nil {
		return err
	}
	return c.JSON(j)
}

func (s *server) retryJob(c *fiber.Ctx) error {
	j, err := s.Requests.RetryJob(c.UserContext(), param(c, "id"), principal(c).Name)
	if err != nil {
		return err
	}
	return c.JSON(j)
}

func (s *server) listTasks(c *fiber.Ctx) error {
	limit, offset, err := paging(c)
	if err != nil {
		return err
	}
	if name := c.Query("name"); name != "" {
		t, err := s.Tasks.ByName(c.UserContext(), name)
		if errors.Is(err, tasks.ErrNotFound) {
			return c.JSON(list[tasks.Task]{Items: []tasks.Task{}, Limit: limit})
		}
		if err != nil {
			return err
		}
		return c.JSON(list[tasks.Task]{Items: []tasks.Task{*t}, Total: 1, Limit: limit})
	}
	status := c.Query("status")
	switch status {
	case "", tasks.StatusIdle, tasks.StatusTriggered, tasks.StatusDisabled:
	default:
		return problem(422, "invalid query parameter", requests.FieldError{Field: "status", Message: "must be idle, triggered or disabled"})
	}
	items, total, err := s.Tasks.List(c.UserContext(), tasks.ListOpts{Query: c.Query("q"), Status: status, Limit: limit, Offset: offset})
	if err != nil {
		return err
	}
	return c.JSON(list[tasks.Task]{Items: items, Total: total, Limit: limit, Offset: offset})
}

func (s *server) createTask(c *fiber.Ctx) error {
	var in tasks.Input
	if err := decode(c, &in); err != nil {
		return err
	}
	if tasks.TouchesSchedule(nil, in) {
		if err := needsTrigger(c); err != nil {
			return err
		}
	}
	who := requesterOf(principal(c))
	in.By = &who
	t, err := s.Tasks.Create(c.UserContext(), in, principal(c).Name)
	if err != nil {
		return err
	}
	c.Location("/api/v1/tasks/" + t.ID)
	return c.Status(fiber.StatusCreated).JSON(t)
}

func (s *server) getTask(c *fiber.Ctx) error {
	t, err := s.Tasks.Get(c.UserContext(), param(c, "id"))
	if err != nil {
		return err
	}
	return c.JSON(t)
}

func (s *server) updateTask(c *fiber.Ctx) error {
	var in tasks.Input
	if err := decode(c, &in); err != nil {
		return err
	}
	who := requesterOf(principal(c))
	in.By = &who
	id := param(c, "id")
	// Checked on the task as read, to refuse before validating, and again
	// under the task's lock, where no other change can come in between.
	allow := func(cur *tasks.Task) error {
		if tasks.TouchesSchedule(cur, in) {
			return needsTrigger(c)
		}
		return nil
	}
	cur, err := s.Tasks.Get(c.UserContext(), id)
	if err != nil {
		return err
	}
	if !ownsTask(c, cur) {
		return tasks.ErrNotFound
	}
	if err := allow(cur); err != nil {
		return err
	}
	t, err := s.Tasks.UpdateChecked(c.UserContext(), id, in, principal(c).Name, allow)
	if err != nil {
		return err
	}
	return c.JSON(t)
}

// needsTrigger refuses a change of a task that touches its schedule
// (tasks.TouchesSchedule) unless the caller also holds the trigger scope:
// a schedule triggers the task, so the tasks scope alone must not start
// runs through one.
func needsTrigger(c *fiber.Ctx) error {
	if p := principal(c); p != nil && p.Has(access.ScopeTrigger) {
		return nil
	}
	return problem(403, "this call needs the trigger scope as well as tasks: a schedule triggers its task, so setting, changing or "+
		"switching on a schedule, and changing the request of a scheduled task, are for clients that may trigger it")
}

func (s *server) deleteTask(c *fiber.Ctx) error {
	t, err := s.Tasks.Get(c.UserContext(), param(c, "id"))
	if err != nil {
		return err
	}
	if !ownsTask(c, t) {
		return tasks.ErrNotFound
	}
	if err := s.Tasks.Delete(c.UserContext(), t.ID, principal(c).Name); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}

// ownsTask reports whether the caller may change or delete t: a client
// that acts as a service, or for an admin, may change any task; a client
// that acts for another user only that user's own (made in the portal by
// the user, or through the API by this client), as the portal allows.
// Others are answered 404, as for a task that does not exist.
func ownsTask(c *fiber.Ctx, t *tasks.Task) bool {
	p := principal(c)
	if p.User == nil || p.User.Role == access.RoleAdmin {
		return true
	}
	return t.CreatedBy == p.User.Username || t.CreatedBy == p.Name
}

func (s *server) triggerTask(c *fiber.Ctx) error {
	trigger := requests.TriggerAPI
	if len(c.Body()) > 0 {
		var in struct {
			Source string `json:"source"`
		}
		if err := decode(c, &in); err != nil {
			return err
		}
		switch in.Source {
		case "", requests.TriggerAPI:
		case requests.TriggerCLI:
			trigger = requests.TriggerCLI
		default:
			return problem(422, "invalid source", requests.FieldError{Field: "source", Message: "must be api or cli"})
		}
	}
	key, err := idempotencyKey(c)
	if err != nil {
		return err
	}
	inst, err := s.Tasks.TriggerWithKey(c.UserContext(), param(c, "id"), trigger, principal(c).Name, key)
	if err != nil {
		return err
	}
	c.Location("/api/v1/request-instances/" + inst.ID)
	return c.Status(fiber.StatusCreated).JSON(inst)
}

func (s *server) taskHistory(c *fiber.Ctx) error {
	t, err := s.Tasks.Get(c.UserContext(), param(c, "id"))
	if err != nil {
		return err
	}
	limit, offset, err := paging(c)
	if err != nil {
		return err
	}
	items, total, err := s.Requests.ListInstances(c.UserContext(), requests.InstanceFilter{TaskID: t.ID, Limit: limit, Offset: offset})
	if err != nil {
		return err
	}
	return c.JSON(list[requests.Instance]{Items: items, Total: total, Limit: limit, Offset: offset})
}

func (s *server) listAudit(c *fiber.Ctx) error {
	limit, offset, err := paging(c)
	if err != nil {
		return err
	}
	f := audit.Filter{Actor: c.Query("actor"), Action: c.Query("action"), Limit: limit, Offset: offset}
	var bad []requests.FieldError
	for _, q := range []struct {
		name string
		dst  *time.Time
	}{{"since", &f.Since}, {"until", &f.Until}} {
		if v := c.Query(q.name); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				bad = append(bad, requests.FieldError{Field: q.name, Message: "must be an RFC 3339 time such as 2026-01-02T15:04:05Z"})
				continue
			}
			*q.dst = t
		}
	}
	if len(bad) == 0 && !f.Since.IsZero() && !f.Until.IsZero() && !f.Since.Before(f.Until) {
		bad = append(bad, requests.FieldError{Field: "until", Message: "must be after since"})
	}
	if len(bad) > 0 {
		return problem(422, "invalid query parameter", bad...)
	}
	items, total, err := audit.List(c.UserContext(), s.DB.Gorm, f)
	if err != nil {
		return err
	}
	return c.JSON(list[audit.Event]{Items: items, Total: total, Limit: limit, Offset: offset})
}

func decodeJSON(s string, v any) error {
	return jsonUnmarshal(strings.TrimSpace(s), v)
}

func (s *server) getEntitlement(c *fiber.Ctx) error {
	e, err := s.Identities.GetEntitlement(c.UserContext(), param(c, "id"))
	if err != nil {
		return err
	}
	return c.JSON(e)
}

// updateEntitlement changes an entitlement's request policy.
func (s *server) updateEntitlement(c *fiber.Ctx) error {
	var in identities.PolicyInput
	if err := decode(c, &in); err != nil {
		return err
	}
	e, err := s.Identities.SetPolicy(c.UserContext(), param(c, "id"), in, principal(c).Name)
	if err != nil {
		return err
	}
	return c.JSON(e)
}

// updateIdentity sets an identity's manager ("" for none).
func (s *server) updateIdentity(c *fiber.Ctx) error {
	var in struct {
		ManagerID *string `json:"manager_id"`
	}
	if err := decode(c, &in); err != nil {
		return err
	}
	if in.ManagerID == nil {
		return problem(422, "nothing to change", requests.FieldError{Field: "manager_id", Message: "give an identity id, or \"\" for none"})
	}
	if _, err := s.Identities.SetManager(c.UserContext(), param(c, "id"), *in.ManagerID, principal(c).Name); err != nil {
		return err
	}
	return s.getIdentity(c)
}

// updateWorkgroup sets a workgroup's owner ("" for none).
func (s *server) updateWorkgroup(c *fiber.Ctx) error {
	var in struct {
		OwnerID *string `json:"owner_id"`
	}
	if err := decode(c, &in); err != nil {
		return err
	}
	if in.OwnerID == nil {
		return problem(422, "nothing to change", requests.FieldError{Field: "owner_id", Message: "give an identity id, or \"\" for none"})
	}
	if _, err := s.Identities.SetOwner(c.UserContext(), param(c, "id"), *in.OwnerID, principal(c).Name); err != nil {
		return err
	}
	return s.getWorkgroup(c)
}

// connectorStatus answers a connector's status; a running import's
// progress is measured against the last import that was applied.
func (s *server) connectorStatus(c *fiber.Ctx) error {
	ctx, id := c.UserContext(), param(c, "id")
	st, err := s.Requests.ConnectorStatus(ctx, id)
	if err != nil {
		return err
	}
	if st.Importing != nil {
		last, _, err := s.Imports.ListImports(ctx, imports.ImportFilter{ConnectorID: id, Status: imports.ImportApplied, Limit: 1})
		if err != nil {
			return err
		}
		if len(last) == 1 && last[0].JobID != nil {
			st.EstimateImport(time.Now(), last[0].Counts.AccountsRead+last[0].Counts.GroupsRead, *last[0].JobID)
		} else {
			st.EstimateImport(time.Now(), 0, "")
		}
	}
	return c.JSON(st)
}

// steerConnector pauses, resumes or releases a connector and answers with
// its status.
func (s *server) steerConnector(action requests.ConnectorAction) fiber.Handler {
	return func(c *fiber.Ctx) error {
		if _, err := s.Requests.SteerConnector(c.UserContext(), param(c, "id"), action, principal(c).Name); err != nil {
			return err
		}
		return s.connectorStatus(c)
	}
}
