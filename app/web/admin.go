package web

import (
	"encoding/json"
	"errors"
	"github.com/provisor/provisor/provlog"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/provisor/provisor/audit"
	"github.com/provisor/provisor/connectors"
	"github.com/provisor/provisor/identities"
	"github.com/provisor/provisor/requests"
)

type connectorsData struct {
	Items  []connectors.Record
	Labels map[string]string
	// States are the connectors' current states, by id.
	States map[string]connectorListState
}

type connectorListState struct {
	Shown string
	State requests.ConnectorState
}

func (s *Server) connectorsPage(c *fiber.Ctx) error {
	list, err := s.Connectors.List(c.UserContext())
	if err != nil {
		return err
	}
	states, err := s.Requests.ConnectorStates(c.UserContext())
	if err != nil {
		return err
	}
	d := connectorsData{Items: list, Labels: map[string]string{}, States: map[string]connectorListState{}}
	for _, r := range list {
		d.Labels[r.Type] = s.typeLabel(r.Type)
		st := states[r.ID]
		d.States[r.ID] = connectorListState{Shown: st.Shown(r.Enabled), State: st}
	}
	return s.render(c, fiber.StatusOK, "connectors", s.newPage(c, "connectors", "Connectors", d))
}

type connectorForm struct {
	New          bool
	Rec          *connectors.Record
	Types        []typeOption
	Name         string
	Type         string
	Description  string
	Enabled      bool
	Settings     string
	SecretNames  []string
	Errors       map[string]string
	Check        *connectors.Health
	Entitlements []identities.Entitlement
	EntErrors    map[string]string
	// Features are what the connector can do; OpenErr says why it could
	// not be opened to tell.
	Features []connectors.Feature
	OpenErr  string
	// Kinds are the entitlement kinds an admin may add on this connector.
	Kinds []string
	// Fields are the settings as a form, for a type that describes them;
	// Settings stays as JSON under Advanced.
	Fields []settingField
	// Status is the connector's current status.
	Status *connectorStatus
}

// withFields fills the settings form of the connector's type from
// d.Settings, with the errors next to their fields.
func (s *Server) withFields(d *connectorForm) {
	if t, ok := s.Connectors.Registry().Lookup(d.Type); ok {
		d.Fields = settingsFields(t, d.Settings, d.Errors)
	}
	var obj any
	if json.Unmarshal([]byte(d.Settings), &obj) == nil {
		if b, err := json.MarshalIndent(obj, "", "  "); err == nil {
			d.Settings = string(b)
		}
	}
}

type typeOption struct{ Name, Label string }

func (s *Server) typeOptions() []typeOption {
	var out []typeOption
	for _, n := range s.Connectors.Registry().Names() {
		out = append(out, typeOption{Name: n, Label: s.typeLabel(n)})
	}
	return out
}

func (s *Server) connectorNew(c *fiber.Ctx) error {
	d := connectorForm{New: true, Types: s.typeOptions(), Enabled: true, Settings: "{}", Type: query(c, "type")}
	if _, ok := s.Connectors.Registry().Lookup(d.Type); !ok && len(d.Types) > 0 {
		d.Type = d.Types[0].Name
	}
	s.withFields(&d)
	return s.render(c, fiber.StatusOK, "connector", s.newPage(c, "connectors", "New connector", d))
}

// connectorInput reads the form: settings as JSON, secrets as name/value
// pairs of which an empty value keeps the stored secret.
func (s *Server) connectorInput(c *fiber.Ctx, typeName string) (connectors.Input, map[string]string, string) {
	in := connectors.Input{Name: form(c, "name"), Type: form(c, "type"), Description: strings.TrimSpace(form(c, "description")),
		Secrets: map[string]string{}}
	on := form(c, "enabled") == "on"
	in.Enabled = &on
	t, _ := s.Connectors.Registry().Lookup(typeName)
	settings, problems := formSettings(c, t)
	var obj map[string]any
	if err := json.Unmarshal([]byte(settings), &obj); err != nil {
		problems["settings"] = "must be a JSON object, such as {\"host\": \"ldap.example.com\"}: " + err.Error()
	} else {
		in.Settings = json.RawMessage(settings)
	}
	// Names and values pair up by position, empty values included.
	names, values := rawList(c, "secret_name"), rawList(c, "secret_value")
	for i, n := range names {
		n = strings.TrimSpace(n)
		if n == "" || i >= len(values) || values[i] == "" {
			continue
		}
		in.Secrets[n] = values[i]
	}
	return in, problems, settings
}

// rawList returns every value of a repeated form field, empty ones too.
func rawList(c *fiber.Ctx, name string) []string {
	var out []string
	c.Request().PostArgs().VisitAll(func(k, v []byte) {
		if string(k) == name {
			out = append(out, string(v))
		}
	})
	return out
}

func fieldMap(err error) map[string]string {
	var fe connectors.FieldErrors
	if errors.As(err, &fe) {
		return map[string]string(fe)
	}
	var ie identities.FieldErrors
	if errors.As(err, &ie) {
		return map[string]string(ie)
	}
	return nil
}

func (s *Server) connectorCreate(c *fiber.Ctx) error {
	in, problems, settings := s.connectorInput(c, form(c, "type"))
	d := connectorForm{New: true, Types: s.typeOptions(), Name: in.Name, Type: in.Type, Description: in.Description,
		Enabled: *in.Enabled, Settings: settings, Errors: problems}
	if len(problems) == 0 {
		rec, err := s.Connectors.Create(c.UserContext(), in)
		if err == nil {
			s.flash(c, "Connector "+rec.Name+" created. Test the connection to check its settings.")
			return redirect(c, "/connectors/"+rec.ID)
		}
		if d.Errors = fieldMap(err); d.Errors == nil {
			return err
		}
	}
	s.withFields(&d)
	return s.render(c, fiber.StatusUnprocessableEntity, "connector", s.newPage(c, "connectors", "New connector", d))
}

func (s *Server) connectorForm(c *fiber.Ctx, rec *connectors.Record) (connectorForm, error) {
	d := connectorForm{Rec: rec, Name: rec.Name, Type: rec.Type, Description: rec.Description, Enabled: rec.Enabled, Settings: rec.Settings}
	names, err := s.Connectors.SecretNames(rec)
	if err != nil {
		d.Errors = map[string]string{"secrets": err.Error()}
	}
	d.SecretNames = names
	s.withFields(&d)
	d.Kinds = []string{identities.KindGroup, identities.KindRole}
	if conn, err := s.Connectors.Open(c.UserContext(), rec); err != nil {
		d.OpenErr = err.Error()
	} else {
		d.Features = connectors.Features(conn)
		if k, ok := conn.(connectors.EntitlementKindLister); ok {
			d.Kinds = k.EntitlementKinds()
		}
	}
	ents, _, err := s.Identities.ListEntitlements(c.UserContext(), rec.ID, identities.ListOpts{Limit: 500})
	if err != nil {
		return d, err
	}
	d.Entitlements = ents
	// Every render of the page has the status card, those of a form
	// refused too.
	if d.Status, err = s.connectorStatusOf(c, rec.ID); err != nil {
		return d, err
	}
	return d, nil
}

func (s *Server) connectorPage(c *fiber.Ctx) error {
	rec, err := s.Connectors.Get(c.UserContext(), param(c, "id"))
	if err != nil {
		return err
	}
	d, err := s.connectorForm(c, rec)
	if err != nil {
		return err
	}
	return s.render(c, fiber.StatusOK, "connector", s.newPage(c, "connectors", rec.Name, d))
}

func (s *Server) connectorSave(c *fiber.Ctx) error {
	rec, err := s.Connectors.Get(c.UserContext(), param(c, "id"))
	if err != nil {
		return err
	}
	in, problems, settings := s.connectorInput(c, rec.Type)
	in.Type = ""
	if len(problems) == 0 {
		if _, err := s.Connectors.Update(c.UserContext(), rec.ID, in); err == nil {
			s.flash(c, "Connector saved.")
			return redirect(c, "/connectors/"+rec.ID)
		} else if problems = fieldMap(err); problems == nil {
			return err
		}
	}
	d, err := s.connectorForm(c, rec)
	if err != nil {
		return err
	}
	d.Name, d.Description, d.Enabled, d.Settings, d.Errors = in.Name, in.Description, *in.Enabled, settings, problems
	s.withFields(&d)
	return s.render(c, fiber.StatusUnprocessableEntity, "connector", s.newPage(c, "connectors", rec.Name, d))
}

// connectorCheck tests the connection and shows the result in place.
func (s *Server) connectorCheck(c *fiber.Ctx) error {
	rec, conn, err := s.Connectors.OpenByID(c.UserContext(), param(c, "id"))
	var h connectors.Health
	switch {
	case errors.Is(err, connectors.ErrNotFound):
		return err
	case err != nil:
		h = connectors.Health{Message: err.Error()}
	default:
		h = connectors.CheckHealth(c.UserContext(), conn)
		if err := s.Connectors.RecordHealth(c.UserContext(), rec.ID, h); err != nil {
			return err
		}
	}
	if fresh, err := s.Connectors.Get(c.UserContext(), param(c, "id")); err == nil {
		rec = fresh
	} else {
		return err
	}
	return s.fragment(c, "connector", "connection", map[string]any{"Rec": rec, "Check": &h})
}

func (s *Server) connectorAddEntitlement(c *fiber.Ctx) error {
	rec, err := s.Connectors.Get(c.UserContext(), param(c, "id"))
	if err != nil {
		return err
	}
	in := identities.EntitlementInput{Name: form(c, "ent_name"), ExternalID: form(c, "ent_external_id"), Kind: form(c, "ent_kind"),
		Description: form(c, "ent_description")}
	if _, err := s.Identities.CreateEntitlement(c.UserContext(), rec.ID, in); err != nil {
		problems := fieldMap(err)
		if problems == nil {
			return err
		}
		d, ferr := s.connectorForm(c, rec)
		if ferr != nil {
			return ferr
		}
		d.EntErrors = problems
		return s.render(c, fiber.StatusUnprocessableEntity, "connector", s.newPage(c, "connectors", rec.Name, d))
	}
	s.flash(c, "Entitlement "+in.Name+" added.")
	return redirect(c, "/connectors/"+rec.ID+"#entitlements")
}

type listData[T any] struct {
	Items  []T
	Total  int64
	Page   int
	Pages  int
	Q      string
	Query  url.Values
	Errors map[string]string
	Input  map[string]string
}

func (s *Server) identitiesPage(c *fiber.Ctx) error {
	return s.showIdentities(c, fiber.StatusOK, nil, nil)
}

func (s *Server) showIdentities(c *fiber.Ctx, status int, errs, input map[string]string) error {
	d := listData[identities.Identity]{Page: pageNumber(c), Q: query(c, "q"), Query: currentQuery(c), Errors: errs, Input: input}
	var err error
	d.Items, d.Total, err = s.Identities.ListIdentities(c.UserContext(), identities.ListOpts{Query: d.Q, Limit: gridPageSize, Offset: (d.Page - 1) * gridPageSize})
	if err != nil {
		return err
	}
	d.Pages = pages(d.Total, gridPageSize)
	return s.render(c, status, "identities", s.newPage(c, "identities", "Identities", d))
}

func (s *Server) identityCreate(c *fiber.Ctx) error {
	in := identities.IdentityInput{Username: form(c, "username"), DisplayName: form(c, "display_name"), Email: form(c, "email")}
	id, err := s.Identities.CreateIdentity(c.UserContext(), in)
	if err != nil {
		if problems := fieldMap(err); problems != nil {
			return s.showIdentities(c, fiber.StatusUnprocessableEntity, problems,
				map[string]string{"username": in.Username, "display_name": in.DisplayName, "email": in.Email})
		}
		return err
	}
	s.flash(c, "Identity "+id.Username+" created.")
	return redirect(c, "/identities/"+id.ID)
}

type identityData struct {
	Identity *identities.Identity
	Accounts []accountView
	// Timeline is the provisioning log of the identity, newest first.
	Timeline []provlog.Entry
	managerData
}

type accountView struct {
	identities.Account
	Connector    string
	Entitlements []identities.Entitlement
}

func (s *Server) identityPage(c *fiber.Ctx) error {
	return s.showIdentity(c, fiber.StatusOK, nil)
}

func (s *Server) showIdentity(c *fiber.Ctx, status int, errs map[string]string) error {
	ctx := c.UserContext()
	id, err := s.Identities.GetIdentity(ctx, param(c, "id"))
	if err != nil {
		return err
	}
	accts, err := s.Identities.Accounts(ctx, id.ID)
	if err != nil {
		return err
	}
	d := identityData{Identity: id}
	if d.managerData, err = s.managerData(c, id, errs); err != nil {
		return err
	}
	for _, a := range accts {
		v := accountView{Account: a}
		if rec, err := s.Connectors.Get(ctx, a.ConnectorID); err == nil {
			v.Connector = rec.Name
		}
		v.Entitlements, _ = s.Identities.EntitlementsOf(ctx, a.ConnectorID, id.ID)
		d.Accounts = append(d.Accounts, v)
	}
	if d.Timeline, err = s.timelineOf(ctx, id.ID); err != nil {
		return err
	}
	return s.render(c, status, "identity", s.newPage(c, "identities", id.DisplayName, d))
}

func (s *Server) workgroupsPage(c *fiber.Ctx) error {
	return s.showWorkgroups(c, fiber.StatusOK, nil, nil)
}

func (s *Server) showWorkgroups(c *fiber.Ctx, status int, errs, input map[string]string) error {
	d := listData[identities.Workgroup]{Page: pageNumber(c), Q: query(c, "q"), Query: currentQuery(c), Errors: errs, Input: input}
	var err error
	d.Items, d.Total, err = s.Identities.ListWorkgroups(c.UserContext(), identities.ListOpts{Query: d.Q, Limit: gridPageSize, Offset: (d.Page - 1) * gridPageSize})
	if err != nil {
		return err
	}
	d.Pages = pages(d.Total, gridPageSize)
	return s.render(c, status, "workgroups", s.newPage(c, "identities", "Workgroups", d))
}

func (s *Server) workgroupCreate(c *fiber.Ctx) error {
	in := identities.WorkgroupInput{Name: form(c, "name"), Description: form(c, "description"), Members: formList(c, "members")}
	wg, err := s.Identities.CreateWorkgroup(c.UserContext(), in)
	if err != nil {
		if problems := fieldMap(err); problems != nil {
			return s.showWorkgroups(c, fiber.StatusUnprocessableEntity, problems, map[string]string{"name": in.Name, "description": in.Description})
		}
		return err
	}
	s.flash(c, "Workgroup "+wg.Name+" created.")
	return redirect(c, "/workgroups/"+wg.ID)
}

type workgroupData struct {
	Workgroup *identities.Workgroup
	Members   []identities.Identity
	Errors    map[string]string
	// Owner is the workgroup's owner, if any; OwnerErrors are the owner
	// form's.
	Owner       *identities.Identity
	OwnerErrors map[string]string
}

func (s *Server) workgroupPage(c *fiber.Ctx) error {
	return s.showWorkgroup(c, fiber.StatusOK, nil)
}

func (s *Server) showWorkgroup(c *fiber.Ctx, status int, errs map[string]string) error {
	return s.showWorkgroupWith(c, status, errs, nil)
}

func (s *Server) showWorkgroupWith(c *fiber.Ctx, status int, errs, ownerErrs map[string]string) error {
	wg, err := s.Identities.GetWorkgroup(c.UserContext(), param(c, "id"))
	if err != nil {
		return err
	}
	members, err := s.Identities.Members(c.UserContext(), nil, wg.ID)
	if err != nil {
		return err
	}
	d := workgroupData{Workgroup: wg, Members: members, Errors: errs, OwnerErrors: ownerErrs}
	if wg.OwnerID != nil {
		if d.Owner, err = s.Identities.GetIdentity(c.UserContext(), *wg.OwnerID); err != nil && !errors.Is(err, identities.ErrNotFound) {
			return err
		}
	}
	return s.render(c, status, "workgroup", s.newPage(c, "identities", wg.Name, d))
}

func (s *Server) workgroupAddMembers(c *fiber.Ctx) error {
	ids := formList(c, "members")
	if len(ids) == 0 {
		return s.showWorkgroup(c, fiber.StatusUnprocessableEntity, map[string]string{"members": "choose at least one identity"})
	}
	if err := s.Identities.AddMembers(c.UserContext(), param(c, "id"), ids); err != nil {
		if problems := fieldMap(err); problems != nil {
			return s.showWorkgroup(c, fiber.StatusUnprocessableEntity, problems)
		}
		return err
	}
	s.flash(c, plural(len(ids), "member")+" added.")
	return redirect(c, "/workgroups/"+param(c, "id"))
}

type auditData struct {
	Items            []audit.Event
	Total            int64
	Page, Pages      int
	Actor, Action    string
	Since, Until, TZ string
	Query            url.Values
	Errors           map[string]string
	Actions          []string
}

// auditActions are offered in the filter; any action name is accepted.
var auditActions = []string{"request.start", "request.cancel", "request.force_end", "job.cancel", "job.retry",
	"task.create", "task.update", "task.delete", "task.trigger", "user.create", "user.sign_in", "user.sign_in_failed",
	"user.sign_out", "api_client.create"}

// localTime reads a datetime-local value in the browser's zone, given as
// its offset in minutes west of UTC (JavaScript's getTimezoneOffset).
func localTime(v, tz string) (time.Time, error) {
	offset, _ := strconv.Atoi(tz)
	if offset < -14*60 || offset > 14*60 {
		offset = 0
	}
	loc := time.FixedZone("browser", -offset*60)
	for _, layout := range []string{"2006-01-02T15:04", "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, v, loc); err == nil {
			return t, nil
		}
	}
	return time.Time{}, errors.New("must be a date and time such as 2026-01-31T14:00")
}

func (s *Server) auditPage(c *fiber.Ctx) error {
	d := auditData{Page: pageNumber(c), Actor: query(c, "actor"), Action: query(c, "action"), Since: query(c, "since"),
		Until: query(c, "until"), TZ: query(c, "tz"), Query: currentQuery(c), Errors: map[string]string{}, Actions: auditActions}
	f := audit.Filter{Actor: d.Actor, Action: d.Action, Limit: gridPageSize, Offset: (d.Page - 1) * gridPageSize}
	var err error
	if d.Since != "" {
		if f.Since, err = localTime(d.Since, d.TZ); err != nil {
			d.Errors["since"] = err.Error()
		}
	}
	if d.Until != "" {
		if f.Until, err = localTime(d.Until, d.TZ); err != nil {
			d.Errors["until"] = err.Error()
		}
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Since.Before(f.Until) {
		d.Errors["until"] = "must be after From"
	}
	status := fiber.StatusOK
	if len(d.Errors) == 0 {
		d.Items, d.Total, err = audit.List(c.UserContext(), s.DB, f)
		if err != nil {
			return err
		}
		d.Pages = pages(d.Total, gridPageSize)
	} else {
		status = fiber.StatusUnprocessableEntity
	}
	return s.render(c, status, "audit", s.newPage(c, "audit", "Audit", d))
}
