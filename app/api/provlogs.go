package api

import (
	"sort"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/provisor/provisor/provlog"
	"github.com/provisor/provisor/requests"
)

// logPage is a page of the provisioning log: Next is the cursor of the
// older entries (the before parameter), empty on the last page.
type logPage struct {
	Items []provlog.Entry `json:"items"`
	Next  string          `json:"next,omitempty"`
}

func (s *server) listProvisioningLogs(c *fiber.Ctx) error {
	f, errs := provlog.ParseQuery(func(name string) string { return strings.Clone(c.Query(name)) }, nil)
	if len(errs) > 0 {
		var fields []requests.FieldError
		for name, msg := range errs {
			fields = append(fields, requests.FieldError{Field: name, Message: msg})
		}
		sort.Slice(fields, func(i, j int) bool { return fields[i].Field < fields[j].Field })
		return problem(422, "invalid query parameter", fields...)
	}
	items, next, err := s.Logs.Search(c.UserContext(), f)
	if err != nil {
		return err
	}
	if items == nil {
		items = []provlog.Entry{}
	}
	return c.JSON(logPage{Items: items, Next: next.String()})
}
