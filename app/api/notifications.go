package api

import (
	"slices"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/provisor/provisor/input"
	"github.com/provisor/provisor/notifier"
	"github.com/provisor/provisor/requests"
)

// The notification outbox: completion emails, what became of them, and
// resending one that failed or was held.

func (s *server) listNotifications(c *fiber.Ctx) error {
	limit, offset, err := paging(c)
	if err != nil {
		return err
	}
	status := c.Query("status")
	if status != "" && !slices.Contains(notifier.Statuses, status) {
		return problem(422, "invalid query parameter", requests.FieldError{Field: "status", Message: "must be one of " + strings.Join(notifier.Statuses, ", ")})
	}
	instance := c.Query("instance_id")
	if instance != "" {
		if !input.ID(instance) {
			return problem(422, "invalid query parameter", requests.FieldError{Field: "instance_id", Message: "must be a request instance id (UUID)"})
		}
	}
	items, total, err := s.Notifier.List(c.UserContext(), notifier.ListOpts{Status: status, InstanceID: instance, Limit: limit, Offset: offset})
	if err != nil {
		return err
	}
	return c.JSON(list[notifier.Notification]{Items: items, Total: total, Limit: limit, Offset: offset})
}

func (s *server) getNotification(c *fiber.Ctx) error {
	n, err := s.Notifier.Get(c.UserContext(), param(c, "id"))
	if err != nil {
		return err
	}
	return c.JSON(n)
}

func (s *server) resendNotification(c *fiber.Ctx) error {
	n, err := s.Notifier.Resend(c.UserContext(), param(c, "id"), principal(c).Name)
	if err != nil {
		return err
	}
	return c.JSON(n)
}
