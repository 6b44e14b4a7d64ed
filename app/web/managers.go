package web

import (
	"errors"

	"github.com/gofiber/fiber/v2"

	"github.com/provisor/provisor/connectors"
	"github.com/provisor/provisor/identities"
)

// managerData is what the identity page shows of the identity's manager
// and direct reports, and the manager form's errors.
type managerData struct {
	Manager *identities.Identity
	// ManagerFrom is the connector whose import set the manager, when a
	// directory did; empty when it was set by hand.
	ManagerFrom string
	// ManagerFromDirectory is set when an import set the manager.
	ManagerFromDirectory bool
	Reports              []identities.Identity
	ManagerErrors        map[string]string
}

func (s *Server) managerData(c *fiber.Ctx, id *identities.Identity, errs map[string]string) (managerData, error) {
	ctx := c.UserContext()
	d := managerData{ManagerErrors: errs}
	var err error
	if id.ManagerID != nil {
		if d.Manager, err = s.Identities.GetIdentity(ctx, *id.ManagerID); err != nil && !errors.Is(err, identities.ErrNotFound) {
			return d, err
		}
		if src := id.ManagerSourceConnectorID; src != nil {
			d.ManagerFromDirectory = true
			d.ManagerFrom = "a connector deleted since"
			if rec, err := s.Connectors.Get(ctx, *src); err == nil {
				d.ManagerFrom = rec.Name
			} else if !errors.Is(err, connectors.ErrNotFound) {
				return d, err
			}
		}
	}
	d.Reports, err = s.Identities.DirectReports(ctx, id.ID)
	return d, err
}

// identityManager sets (action "set", manager_id) or removes (action
// "clear") an identity's manager. Admins only.
func (s *Server) identityManager(c *fiber.Ctx) error {
	id := param(c, "id")
	managerID := form(c, "manager_id")
	if form(c, "action") == "clear" {
		managerID = ""
	} else if managerID == "" {
		if _, err := s.Identities.GetIdentity(c.UserContext(), id); err != nil {
			return err
		}
		return s.showIdentity(c, fiber.StatusUnprocessableEntity, map[string]string{"manager_id": "choose the manager among the identities found"})
	}
	idn, err := s.Identities.SetManager(c.UserContext(), id, managerID, user(c).Username)
	if problems := fieldMap(err); problems != nil {
		return s.showIdentity(c, fiber.StatusUnprocessableEntity, problems)
	}
	if err != nil {
		return err
	}
	msg := "Manager of " + idn.DisplayName + " removed."
	if idn.ManagerID != nil {
		msg = "Manager of " + idn.DisplayName + " set."
	}
	s.flash(c, msg)
	return redirect(c, "/identities/"+idn.ID)
}

// workgroupOwner sets (action "set", owner_id) or removes (action "clear")
// a workgroup's owner. Admins only.
func (s *Server) workgroupOwner(c *fiber.Ctx) error {
	id := param(c, "id")
	ownerID := form(c, "owner_id")
	if form(c, "action") == "clear" {
		ownerID = ""
	} else if ownerID == "" {
		return s.showWorkgroupWith(c, fiber.StatusUnprocessableEntity, nil, map[string]string{"owner_id": "choose the owner among the identities found"})
	}
	wg, err := s.Identities.SetOwner(c.UserContext(), id, ownerID, user(c).Username)
	if problems := fieldMap(err); problems != nil {
		return s.showWorkgroupWith(c, fiber.StatusUnprocessableEntity, nil, problems)
	}
	if err != nil {
		return err
	}
	msg := "Owner of " + wg.Name + " removed."
	if wg.OwnerID != nil {
		msg = "Owner of " + wg.Name + " set."
	}
	s.flash(c, msg)
	return redirect(c, "/workgroups/"+wg.ID)
}
