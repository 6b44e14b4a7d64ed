package web

import (
	"bufio"
	"context"
	"net/url"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/provisor/provisor/provlog"
)

// logsData is the Provisioning logs page.
type logsData struct {
	Q, ConnectorID, Action, Status, ErrorClass, Since, Until, TZ string

	Items      []provlog.Entry
	Next       string
	Query      url.Values
	Errors     map[string]string
	Connectors []connectorChoice
	Actions    []string
	Statuses   []string
	Classes    []string
	Older      bool // the page is not the newest one
}

type connectorChoice struct{ ID, Name string }

// logFilter reads the page's filters: the times are the browser's local
// times (tz is its offset).
func logFilter(c *fiber.Ctx) (provlog.Filter, map[string]string) {
	tz := query(c, "tz")
	return provlog.ParseQuery(func(name string) string { return query(c, name) },
		func(v string) (time.Time, error) { return localTime(v, tz) })
}

func (s *Server) logsPage(c *fiber.Ctx) error {
	f, errs := logFilter(c)
	d := logsData{Q: query(c, "q"), ConnectorID: query(c, "connector_id"), Action: query(c, "action"), Status: query(c, "status"),
		ErrorClass: query(c, "error_class"), Since: query(c, "since"), Until: query(c, "until"), TZ: query(c, "tz"),
		Query: currentQuery(c), Errors: errs, Actions: provlog.Actions, Statuses: provlog.Statuses, Classes: provlog.Classes,
		Older: query(c, "before") != ""}
	d.Query.Del("before")
	recs, err := s.Connectors.List(c.UserContext())
	if err != nil {
		return err
	}
	for _, r := range recs {
		d.Connectors = append(d.Connectors, connectorChoice{ID: r.ID, Name: r.Name})
	}
	status := fiber.StatusOK
	if len(errs) == 0 {
		var next provlog.Cursor
		d.Items, next, err = s.Logs.Search(c.UserContext(), f)
		if err != nil {
			return err
		}
		d.Next = next.String()
	} else {
		status = fiber.StatusUnprocessableEntity
	}
	return s.render(c, status, "provlogs", s.newPage(c, "provlogs", "Provisioning logs", d))
}

// logTabs are the tabs of an entry's page.
var logTabs = []string{"summary", "steps", "troubleshooting", "properties"}

func (s *Server) logEntryPage(c *fiber.Ctx) error {
	e, err := s.Logs.Get(c.UserContext(), param(c, "id"))
	if err != nil {
		return err
	}
	tab := queryIn(c, "tab", logTabs)
	if tab == "" {
		tab = "summary"
	}
	return s.render(c, fiber.StatusOK, "provlog", s.newPage(c, "provlogs", "Provisioning log entry",
		struct {
			E   *provlog.Entry
			Tab string
		}{e, tab}))
}

// logsDownload streams the filtered entries as CSV or JSON. The rows are
// read from the database as they are written to the client, so a download
// of any size holds a few rows in memory; it is bounded by the request's
// own context only, not by the handler's return.
func (s *Server) logsDownload(c *fiber.Ctx) error {
	f, errs := logFilter(c)
	if len(errs) > 0 {
		return fiber.NewError(fiber.StatusUnprocessableEntity, "the filters are not valid: correct them on the Provisioning logs page")
	}
	format := queryIn(c, "format", []string{"csv", "json"})
	if format == "" {
		format = "csv"
	}
	name := "provisioning-logs-" + time.Now().UTC().Format("20060102-150405") + "." + format
	c.Set(fiber.HeaderContentType, provlog.ContentType(format))
	c.Set(fiber.HeaderContentDisposition, `attachment; filename="`+name+`"`)
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

// timelineSize is how many entries an identity's page shows.
const timelineSize = 100

// timelineOf returns the newest provisioning log entries about an identity.
func (s *Server) timelineOf(ctx context.Context, identityID string) ([]provlog.Entry, error) {
	items, _, err := s.Logs.Search(ctx, provlog.Filter{IdentityID: identityID, Limit: timelineSize})
	return items, err
}
