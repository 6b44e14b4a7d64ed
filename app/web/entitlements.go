package web

import (
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/provisor/provisor/identities"
)

type entitlementData struct {
	E          *identities.Entitlement
	Connector  string
	Approvals  []string
	Identities []identities.Identity
	Workgroups []identities.Workgroup
	// Owner is "identity:ID", "workgroup:ID" or "".
	Owner  string
	Errors map[string]string
}

func (s *Server) entitlementPage(c *fiber.Ctx) error {
	e, err := s.Identities.GetEntitlement(c.UserContext(), param(c, "id"))
	if err != nil {
		return err
	}
	return s.showEntitlement(c, fiber.StatusOK, e, nil)
}

func (s *Server) showEntitlement(c *fiber.Ctx, status int, e *identities.Entitlement, errs map[string]string) error {
	ctx := c.UserContext()
	d := entitlementData{E: e, Approvals: identities.Approvals, Errors: errs}
	if rec, err := s.Connectors.Get(ctx, e.ConnectorID); err == nil {
		d.Connector = rec.Name
	}
	var err error
	if d.Identities, _, err = s.Identities.ListIdentities(ctx, identities.ListOpts{Limit: 500}); err != nil {
		return err
	}
	if d.Workgroups, _, err = s.Identities.ListWorkgroups(ctx, identities.ListOpts{Limit: 500}); err != nil {
		return err
	}
	switch {
	case e.OwnerIdentityID != nil:
		d.Owner = "identity:" + *e.OwnerIdentityID
	case e.OwnerWorkgroupID != nil:
		d.Owner = "workgroup:" + *e.OwnerWorkgroupID
	}
	return s.render(c, status, "entitlement", s.newPage(c, "connectors", e.Name, d))
}

// entitlementSave changes an entitlement's request policy.
func (s *Server) entitlementSave(c *fiber.Ctx) error {
	sens, appr, maxd := form(c, "sensitivity"), form(c, "approval"), strings.TrimSpace(form(c, "max_duration"))
	req := form(c, "requestable") == "on"
	in := identities.PolicyInput{Sensitivity: &sens, Approval: &appr, MaxDuration: &maxd, Requestable: &req}
	none := ""
	kind, id, _ := strings.Cut(form(c, "owner"), ":")
	switch kind {
	case "identity":
		in.OwnerIdentityID = &id
	case "workgroup":
		in.OwnerWorkgroupID = &id
	default:
		in.OwnerIdentityID, in.OwnerWorkgroupID = &none, &none
	}
	e, err := s.Identities.SetPolicy(c.UserContext(), param(c, "id"), in, user(c).Username)
	if problems := fieldMap(err); problems != nil {
		cur, gerr := s.Identities.GetEntitlement(c.UserContext(), param(c, "id"))
		if gerr != nil {
			return gerr
		}
		return s.showEntitlement(c, fiber.StatusUnprocessableEntity, cur, problems)
	}
	if err != nil {
		return err
	}
	s.flash(c, "Policy of "+e.Name+" saved.")
	return redirect(c, "/entitlements/"+e.ID)
}
