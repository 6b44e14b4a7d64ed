package web

import (
	"encoding/json"
	"errors"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/provisor/provisor/connectors"
	"github.com/provisor/provisor/connectors/configured"
	"github.com/provisor/provisor/identities"
	"github.com/provisor/provisor/input"
	"github.com/provisor/provisor/requests"
)

type connectorsData struct {
	Items  []configured.Record
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
	Rec          *configured.Record
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
func (s *Server) connectorInput(c *fiber.Ctx, typeName string) (configured.Input, map[string]string, string) {
	in := configured.Input{Name: form(c, "name"), Type: form(c, "type"), Description: strings.TrimSpace(form(c, "description")),
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
	var fe input.FieldErrors
	if errors.As(err, &fe) {
		return fe
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

func (s *Server) connectorForm(c *fiber.Ctx, rec *configured.Record) (connectorForm, error) {
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
