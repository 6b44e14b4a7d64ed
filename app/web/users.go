package web

import (
	"errors"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/provisor/provisor/access"
)

// The "Users and API clients" page: admins disable, enable and reset portal
// users and revoke API clients. Each action is a POST form that htmx sends
// in place, swapping the row it changed.

type usersData struct {
	Users   []userRowData
	Clients []clientRowData
	// Reset is the user whose password was just reset, with the new
	// password, shown once on a page rendered without htmx.
	Reset *resetData
}

type resetData struct {
	Username, Password string
}

// userRowData is one row of the users table.
type userRowData struct {
	U    *access.User
	CSRF string
	Self bool
	// Password is the new password after a reset, shown once in the row.
	Password string
}

type clientRowData struct {
	C    *access.Client
	CSRF string
}

func (s *Server) usersData(c *fiber.Ctx) (*usersData, error) {
	users, err := s.Access.ListUsers(c.UserContext())
	if err != nil {
		return nil, err
	}
	clients, err := s.Access.ListClients(c.UserContext())
	if err != nil {
		return nil, err
	}
	d := &usersData{}
	csrf := session(c).CSRFToken
	for i := range users {
		d.Users = append(d.Users, userRowData{U: &users[i], CSRF: csrf, Self: users[i].ID == user(c).ID})
	}
	for i := range clients {
		d.Clients = append(d.Clients, clientRowData{C: &clients[i], CSRF: csrf})
	}
	return d, nil
}

// usersPage lists portal users and API clients.
func (s *Server) usersPage(c *fiber.Ctx) error {
	d, err := s.usersData(c)
	if err != nil {
		return err
	}
	return s.render(c, fiber.StatusOK, "users", s.newPage(c, "users", "Users and API clients", d))
}

// refused shows why an action did not apply: in place for htmx, as a flash
// on the page otherwise.
func (s *Server) refused(c *fiber.Ctx, err error) error {
	if IsHTMX(c) || !errors.Is(err, access.ErrConflict) {
		return err
	}
	s.flash(c, strings.TrimPrefix(err.Error(), access.ErrConflict.Error()+": "))
	return redirect(c, "/users")
}

func (s *Server) userRow(c *fiber.Ctx, u *access.User, password string) error {
	return s.fragment(c, "users", "user-row", userRowData{U: u, CSRF: session(c).CSRFToken, Self: u.ID == user(c).ID, Password: password})
}

func (s *Server) userDisable(c *fiber.Ctx) error { return s.userSetDisabled(c, true) }
func (s *Server) userEnable(c *fiber.Ctx) error  { return s.userSetDisabled(c, false) }

func (s *Server) userSetDisabled(c *fiber.Ctx, disabled bool) error {
	u, err := s.Access.SetDisabled(c.UserContext(), param(c, "id"), disabled, user(c).Username)
	if err != nil {
		return s.refused(c, err)
	}
	if disabled && u.ID == user(c).ID {
		// Their own session has just ended.
		s.clearCookie(c, sessionCookie)
		return redirect(c, "/login")
	}
	if IsHTMX(c) {
		return s.userRow(c, u, "")
	}
	if disabled {
		s.flash(c, u.Username+" is disabled: their sessions have ended and they cannot sign in.")
	} else {
		s.flash(c, u.Username+" is enabled: they can sign in again.")
	}
	return redirect(c, "/users")
}

// userResetPassword shows the new password once: in the row for htmx, on
// the page otherwise (never through a redirect, so it is kept nowhere).
func (s *Server) userResetPassword(c *fiber.Ctx) error {
	u, pw, err := s.Access.ResetPassword(c.UserContext(), param(c, "id"), user(c).Username)
	if err != nil {
		return s.refused(c, err)
	}
	if IsHTMX(c) {
		return s.userRow(c, u, pw)
	}
	d, err := s.usersData(c)
	if err != nil {
		return err
	}
	d.Reset = &resetData{Username: u.Username, Password: pw}
	return s.render(c, fiber.StatusOK, "users", s.newPage(c, "users", "Users and API clients", d))
}

func (s *Server) clientRevoke(c *fiber.Ctx) error {
	cl, err := s.Access.RevokeClient(c.UserContext(), param(c, "id"), user(c).Username)
	if err != nil {
		return s.refused(c, err)
	}
	if IsHTMX(c) {
		return s.fragment(c, "users", "client-row", clientRowData{C: cl, CSRF: session(c).CSRFToken})
	}
	s.flash(c, "The API client "+cl.Name+" is revoked: its tokens no longer work.")
	return redirect(c, "/users")
}
