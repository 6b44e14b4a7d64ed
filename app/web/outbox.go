package web

import (
	"errors"
	"net/url"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/provisor/provisor/notifier"
	"github.com/provisor/provisor/requests"
)

type outboxData struct {
	Items []notifier.Notification
	Paging
	Status   string
	Statuses []string
	Query    url.Values
}

// outboxPage lists completion emails with their delivery status.
func (s *Server) outboxPage(c *fiber.Ctx) error {
	d := outboxData{Paging: pagingOf(c), Status: queryIn(c, "status", notifier.Statuses), Statuses: notifier.Statuses, Query: currentQuery(c)}
	items, total, err := s.Notifier.List(c.UserContext(), notifier.ListOpts{Status: d.Status, Limit: d.Limit(), Offset: d.Offset()})
	if err != nil {
		return err
	}
	d.Items = items
	d.counted(total)
	return s.render(c, fiber.StatusOK, "outbox", s.newPage(c, "outbox", "Outbox", d))
}

type messageData struct {
	N       *notifier.Notification
	Message string
}

func (s *Server) outboxMessage(c *fiber.Ctx) error {
	n, err := s.Notifier.Get(c.UserContext(), param(c, "id"))
	if err != nil {
		return err
	}
	return s.render(c, fiber.StatusOK, "message", s.newPage(c, "outbox", n.Subject, messageData{N: n}))
}

// outboxHTML shows a message's HTML part as the recipient's mail client
// would, sandboxed: no script runs and nothing is loaded from elsewhere.
func (s *Server) outboxHTML(c *fiber.Ctx) error {
	n, err := s.Notifier.Get(c.UserContext(), param(c, "id"))
	if err != nil {
		return err
	}
	c.Set("Content-Security-Policy", "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:")
	c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
	return c.SendString(n.BodyHTML)
}

func (s *Server) outboxResend(c *fiber.Ctx) error {
	n, err := s.Notifier.Resend(c.UserContext(), param(c, "id"), user(c).Username)
	if errors.Is(err, requests.ErrConflict) {
		s.flash(c, strings.TrimPrefix(err.Error(), "conflict: "))
		return redirect(c, "/outbox/"+param(c, "id"))
	}
	if err != nil {
		return err
	}
	s.flash(c, "The message to "+n.Address+" is queued again.")
	return redirect(c, "/outbox/"+n.ID)
}
