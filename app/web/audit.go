package web

import (
	"errors"
	"net/url"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/provisor/provisor/audit"
)

type auditData struct {
	Items []audit.Event
	Paging
	Actor, Action    string
	Since, Until, TZ string
	Query            url.Values
	Errors           map[string]string
	Actions          []string
}

// auditActions are offered in the filter; any action name is accepted.
var auditActions = []string{"request.start", "request.cancel", "request.force_end", "job.cancel", "job.retry",
	"task.create", "task.update", "task.delete", "task.trigger", "user.create", "user.sign_in", "user.sign_in_failed",
	"user.sign_out", "api_client.create"}

// localTime reads a datetime-local value in the browser's zone, given as
// its offset in minutes west of UTC (JavaScript's getTimezoneOffset).
func localTime(v, tz string) (time.Time, error) {
	offset, _ := strconv.Atoi(tz)
	if offset < -14*60 || offset > 14*60 {
		offset = 0
	}
	loc := time.FixedZone("browser", -offset*60)
	for _, layout := range []string{"2006-01-02T15:04", "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, v, loc); err == nil {
			return t, nil
		}
	}
	return time.Time{}, errors.New("must be a date and time such as 2026-01-31T14:00")
}

func (s *Server) auditPage(c *fiber.Ctx) error {
	d := auditData{Paging: pagingOf(c), Actor: query(c, "actor"), Action: query(c, "action"), Since: query(c, "since"),
		Until: query(c, "until"), TZ: query(c, "tz"), Query: currentQuery(c), Errors: map[string]string{}, Actions: auditActions}
	f := audit.Filter{Actor: d.Actor, Action: d.Action, Limit: d.Limit(), Offset: d.Offset()}
	var err error
	if d.Since != "" {
		if f.Since, err = localTime(d.Since, d.TZ); err != nil {
			d.Errors["since"] = err.Error()
		}
	}
	if d.Until != "" {
		if f.Until, err = localTime(d.Until, d.TZ); err != nil {
			d.Errors["until"] = err.Error()
		}
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Since.Before(f.Until) {
		d.Errors["until"] = "must be after From"
	}
	status := fiber.StatusOK
	if len(d.Errors) == 0 {
		d.Items, d.Total, err = audit.List(c.UserContext(), s.DB, f)
		if err != nil {
			return err
		}
		d.counted(d.Total)
	} else {
		status = fiber.StatusUnprocessableEntity
	}
	return s.render(c, status, "audit", s.newPage(c, "audit", "Audit", d))
}
