package api

import (
	"slices"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/provisor/provisor/access"
	"github.com/provisor/provisor/requests"
)

// Portal users and API clients: listing them, disabling and enabling a
// user, resetting a password, changing a role and revoking a client. Every
// route needs the admin scope; every change is in the audit trail.

func (s *server) listAPIClients(c *fiber.Ctx) error {
	items, err := s.Access.ListClients(c.UserContext())
	if err != nil {
		return err
	}
	return c.JSON(list[access.Client]{Items: items, Total: int64(len(items)), Limit: len(items)})
}

func (s *server) revokeAPIClient(c *fiber.Ctx) error {
	cl, err := s.Access.RevokeClient(c.UserContext(), param(c, "id"), principal(c).Name)
	if err != nil {
		return err
	}
	return c.JSON(cl)
}

func (s *server) listUsers(c *fiber.Ctx) error {
	items, err := s.Access.ListUsers(c.UserContext())
	if err != nil {
		return err
	}
	return c.JSON(list[access.User]{Items: items, Total: int64(len(items)), Limit: len(items)})
}

func (s *server) disableUser(c *fiber.Ctx) error { return s.setDisabled(c, true) }
func (s *server) enableUser(c *fiber.Ctx) error  { return s.setDisabled(c, false) }

func (s *server) setDisabled(c *fiber.Ctx, disabled bool) error {
	u, err := s.Access.SetDisabled(c.UserContext(), param(c, "id"), disabled, principal(c).Name)
	if err != nil {
		return err
	}
	return c.JSON(u)
}

func (s *server) setUserRole(c *fiber.Ctx) error {
	var in struct {
		Role string `json:"role"`
	}
	if err := decode(c, &in); err != nil {
		return err
	}
	if !slices.Contains(access.Roles, in.Role) {
		return problem(422, "invalid role", requests.FieldError{Field: "role", Message: "must be one of " + strings.Join(access.Roles, ", ")})
	}
	u, err := s.Access.SetRole(c.UserContext(), param(c, "id"), in.Role, principal(c).Name)
	if err != nil {
		return err
	}
	return c.JSON(u)
}

func (s *server) resetPassword(c *fiber.Ctx) error {
	u, pw, err := s.Access.ResetPassword(c.UserContext(), param(c, "id"), principal(c).Name)
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.JSON(fiber.Map{"user": u, "password": pw})
}
