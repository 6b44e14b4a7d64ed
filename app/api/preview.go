package api

import (
	"github.com/gofiber/fiber/v2"

	"github.com/provisor/provisor/requests"
)

// previewRequest says what submitting the body would do now, checked as a
// submission by the client is.
func (s *server) previewRequest(c *fiber.Ctx) error {
	var in requests.Request
	if err := decode(c, &in); err != nil {
		return err
	}
	who := requesterOf(principal(c))
	p, err := s.Requests.Preview(c.UserContext(), in, requests.PreviewOpts{By: &who})
	if err != nil {
		return err
	}
	return c.JSON(p)
}

// previewTask says what triggering the task would do now.
func (s *server) previewTask(c *fiber.Ctx) error {
	t, err := s.Tasks.Get(c.UserContext(), param(c, "id"))
	if err != nil {
		return err
	}
	p, err := s.Tasks.Preview(c.UserContext(), t)
	if err != nil {
		return err
	}
	return c.JSON(p)
}
