package api

import (
	"bufio"
	"context"
	"sort"
	"strings"
	"time"

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
	c.Vary(fiber.HeaderAccept)
	f, errs := provlog.ParseQuery(func(name string) string { return strings.Clone(c.Query(name)) }, nil)
	format := strings.Clone(c.Query("format"))
	if format != "" && format != provlog.FormatCSV && format != provlog.FormatJSON {
		errs["format"] = "must be csv or json"
	}
	if format == "" && c.Accepts(fiber.MIMEApplicationJSON, "text/csv") == "text/csv" {
		format = provlog.FormatCSV
	}
	if len(errs) > 0 {
		var fields []requests.FieldError
		for name, msg := range errs {
			fields = append(fields, requests.FieldError{Field: name, Message: msg})
		}
		sort.Slice(fields, func(i, j int) bool { return fields[i].Field < fields[j].Field })
		return problem(422, "invalid query parameter", fields...)
	}
	if format != "" {
		return s.downloadProvisioningLogs(c, f, format)
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

// downloadProvisioningLogs streams every entry f selects (not a page: limit
// applies only when given) in format, as the portal's download does: the
// rows are read from the database as they are written to the client. The
// filter is checked before the answer starts, since an error cannot be
// told once the body is under way.
func (s *server) downloadProvisioningLogs(c *fiber.Ctx, f provlog.Filter, format string) error {
	if err := f.Validate(); err != nil {
		return problem(422, err.Error())
	}
	c.Set(fiber.HeaderContentType, provlog.ContentType(format))
	c.Set(fiber.HeaderContentDisposition, `attachment; filename="provisioning-logs-`+time.Now().UTC().Format("20060102-150405")+"."+format+`"`)
	c.Set(fiber.HeaderCacheControl, "no-store")
	logs, log := s.Logs, s.Log
	c.Context().SetBodyStreamWriter(func(w *bufio.Writer) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
		defer cancel()
		if err := logs.Download(ctx, w, f, format); err != nil {
			log.Warn("provisioning log download ended early", "err", err)
		}
	})
	return nil
}
