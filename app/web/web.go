// Package web is Provisor's portal: server-rendered pages with htmx for the
// parts that change in place. Every page needs a signed-in user; admin
// pages need the admin role; every form and every htmx request that
// changes something carries the session's CSRF token.
package web

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/filesystem"
	"gorm.io/gorm"

	"github.com/provisor/provisor/access"
	"github.com/provisor/provisor/app/httperr"
	"github.com/provisor/provisor/connectors/configured"
	"github.com/provisor/provisor/identities"
	"github.com/provisor/provisor/imports"
	"github.com/provisor/provisor/input"
	"github.com/provisor/provisor/notifier"
	"github.com/provisor/provisor/provlog"
	"github.com/provisor/provisor/requests"
	"github.com/provisor/provisor/tasks"
	"github.com/provisor/provisor/views"
)

// NextRunner tells when a task's schedule fires next in this process.
type NextRunner interface {
	NextRun(taskID string) (time.Time, bool)
}

// Deps are what the portal shows and changes.
type Deps struct {
	Log        *slog.Logger
	DB         *gorm.DB
	Access     *access.Service
	Identities *identities.Service
	Connectors *configured.Store
	Requests   *requests.Service
	Tasks      *tasks.Service
	Schedules  NextRunner
	Notifier   *notifier.Service
	Imports    *imports.Importer
	Logs       *provlog.Log
	// SecureCookies marks cookies Secure (the portal is served over HTTPS).
	SecureCookies bool
	// StuckAfter flags jobs pending or running longer than this.
	StuckAfter time.Duration
}

// Server is the portal.
type Server struct {
	Deps
	pages map[string]*template.Template
}

// New parses the templates and returns the portal.
func New(d Deps) (*Server, error) {
	if d.StuckAfter <= 0 {
		d.StuckAfter = 15 * time.Minute
	}
	s := &Server{Deps: d}
	if err := s.parse(views.Web()); err != nil {
		return nil, err
	}
	return s, nil
}

// parse builds one template set per page: the layout and the partials,
// plus the page's own file, which defines "title" and "content" and any
// fragments htmx asks for.
func (s *Server) parse(fsys fs.FS) error {
	base := template.New("").Funcs(funcs)
	shared, err := fs.Glob(fsys, "_*.html")
	if err != nil {
		return err
	}
	if len(shared) == 0 {
		return errors.New("web: no layout templates")
	}
	if base, err = base.ParseFS(fsys, shared...); err != nil {
		return fmt.Errorf("web: templates: %w", err)
	}
	files, err := fs.Glob(fsys, "*.html")
	if err != nil {
		return err
	}
	s.pages = map[string]*template.Template{}
	for _, f := range files {
		if strings.HasPrefix(f, "_") {
			continue
		}
		t, err := template.Must(base.Clone()).ParseFS(fsys, f)
		if err != nil {
			return fmt.Errorf("web: template %s: %w", f, err)
		}
		s.pages[strings.TrimSuffix(f, ".html")] = t
	}
	return nil
}

// Mount registers the portal's routes on app.
func (s *Server) Mount(app fiber.Router) {
	app.Use("/static", filesystem.New(filesystem.Config{Root: http.FS(views.Static()), MaxAge: 3600}))
	app.Get("/favicon.ico", func(c *fiber.Ctx) error { return c.Redirect("/static/favicon.svg", fiber.StatusMovedPermanently) })
	app.Use(s.secureHeaders, s.loadSession)
	app.Get("/login", s.loginPage)
	app.Post("/login", s.loginSubmit)

	app.Use(s.requireUser, s.checkCSRF)
	app.Post("/logout", s.logout)
	app.Get("/", func(c *fiber.Ctx) error { return c.Redirect("/requests") })

	app.Get("/requests", s.requestsPage)
	app.Get("/requests/new", s.wizardStart)
	app.Post("/requests/new", s.wizardCreate)
	app.Get("/requests/drafts/:id/:step", s.wizardStep)
	app.Post("/requests/drafts/:id/:step", s.wizardSave)
	app.Post("/requests/drafts/:id", s.wizardDiscard)
	app.Get("/requests/:id", s.instancePage)
	app.Get("/lookup/identities", s.lookupIdentities)
	app.Get("/lookup/workgroups", s.lookupWorkgroups)
	app.Get("/lookup/entitlements", s.lookupEntitlements)

	app.Get("/approvals", s.approvalsPage)
	app.Get("/approvals/:id", s.approvalPage)
	app.Post("/approvals/:id/approve", s.approvalApprove)
	app.Post("/approvals/:id/deny", s.approvalDeny)
	app.Post("/approvals/:id/withdraw", s.approvalWithdraw)

	app.Get("/tasks", s.tasksPage)
	app.Get("/tasks/schedule-preview", s.schedulePreview)
	app.Get("/tasks/:id", s.taskPage)
	app.Get("/tasks/:id/row", s.taskRow)
	app.Get("/tasks/:id/history", s.taskHistory)
	app.Post("/tasks/:id", s.taskSave)
	app.Post("/tasks/:id/notify", s.taskNotify)
	app.Post("/tasks/:id/schedule", admin, s.taskSchedule)
	app.Post("/tasks/:id/trigger", admin, s.taskTrigger)
	app.Post("/tasks/:id/enable", admin, s.taskEnable)
	app.Post("/tasks/:id/delete", s.taskDelete)

	app.Get("/jobs", admin, s.jobsPage)
	app.Get("/jobs/:id", admin, s.jobsDialog)
	app.Post("/jobs/:id/cancel", admin, s.jobsCancelInstance)
	app.Post("/jobs/:id/force-end", admin, s.jobsForceEnd)
	app.Post("/jobs/:id/jobs/:job/cancel", admin, s.jobsCancelJob)
	app.Post("/jobs/:id/jobs/:job/retry", admin, s.jobsRetryJob)

	app.Get("/connectors", admin, s.connectorsPage)
	app.Get("/connectors/new", admin, s.connectorNew)
	app.Post("/connectors/new", admin, s.connectorCreate)
	app.Get("/connectors/:id", admin, s.connectorPage)
	app.Post("/connectors/:id", admin, s.connectorSave)
	app.Post("/connectors/:id/check", admin, s.connectorCheck)
	app.Post("/connectors/:id/pause", admin, s.connectorSteer(requests.ActionPause, "Connector paused: its jobs wait until it is resumed."))
	app.Post("/connectors/:id/resume", admin, s.connectorSteer(requests.ActionResume, "Connector active: its waiting jobs run now."))
	app.Post("/connectors/:id/release", admin, s.connectorSteer(requests.ActionRelease, "Connector released: its waiting jobs run now."))
	app.Post("/connectors/:id/entitlements", admin, s.connectorAddEntitlement)
	app.Get("/entitlements/:id", admin, s.entitlementPage)
	app.Post("/entitlements/:id", admin, s.entitlementSave)

	app.Get("/identities", admin, s.identitiesPage)
	app.Post("/identities", admin, s.identityCreate)
	app.Get("/identities/:id", admin, s.identityPage)
	app.Post("/identities/:id/manager", admin, s.identityManager)
	app.Get("/workgroups", admin, s.workgroupsPage)
	app.Post("/workgroups", admin, s.workgroupCreate)
	app.Get("/workgroups/:id", admin, s.workgroupPage)
	app.Post("/workgroups/:id/members", admin, s.workgroupAddMembers)
	app.Post("/workgroups/:id/owner", admin, s.workgroupOwner)

	app.Get("/audit", admin, s.auditPage)
	app.Get("/provisioning-logs", admin, s.logsPage)
	app.Get("/provisioning-logs/download", admin, s.logsDownload)
	app.Get("/provisioning-logs/:id", admin, s.logEntryPage)

	app.Get("/imports", admin, s.importsPage)
	app.Post("/imports/run", admin, s.importRunNow)
	app.Get("/imports/:id", admin, s.importPage)
	app.Post("/imports/:id/decide", admin, s.importDecide)

	app.Get("/outbox", admin, s.outboxPage)
	app.Get("/outbox/:id", admin, s.outboxMessage)
	app.Get("/outbox/:id/html", admin, s.outboxHTML)
	app.Post("/outbox/:id/resend", admin, s.outboxResend)

	app.Get("/users", admin, s.usersPage)
	app.Post("/users/:id/disable", admin, s.userDisable)
	app.Post("/users/:id/enable", admin, s.userEnable)
	app.Post("/users/:id/reset-password", admin, s.userResetPassword)
	app.Post("/api-clients/:id/revoke", admin, s.clientRevoke)
}

// page is what every full page renders with.
type page struct {
	Title string
	Nav   string
	User  *access.User
	CSRF  string
	Flash string
	Path  string
	Data  any
	// Waiting is how many approvals wait for the user's decision.
	Waiting int64
}

func (s *Server) newPage(c *fiber.Ctx, nav, title string, data any) *page {
	p := &page{Title: title, Nav: nav, Data: data, Path: c.OriginalURL()}
	if sess := session(c); sess != nil {
		p.User, p.CSRF = sess.User, sess.CSRFToken
		p.Waiting = s.waiting(c)
	}
	p.Flash = takeFlash(c)
	return p
}

// render writes a whole page.
func (s *Server) render(c *fiber.Ctx, status int, name string, p *page) error {
	return s.execute(c, status, name, "layout", p)
}

// fragment writes one named template of a page, for htmx.
func (s *Server) fragment(c *fiber.Ctx, name, tmpl string, data any) error {
	return s.execute(c, fiber.StatusOK, name, tmpl, data)
}

func (s *Server) execute(c *fiber.Ctx, status int, name, tmpl string, data any) error {
	t, ok := s.pages[name]
	if !ok {
		return fmt.Errorf("web: no page %q", name)
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, tmpl, data); err != nil {
		return fmt.Errorf("web: render %s/%s: %w", name, tmpl, err)
	}
	c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.Status(status).Send(buf.Bytes())
}

// IsHTMX reports whether htmx made the request.
func IsHTMX(c *fiber.Ctx) bool { return c.Get("HX-Request") == "true" }

// redirect sends the browser to to, as htmx expects it for htmx requests.
func redirect(c *fiber.Ctx, to string) error {
	if IsHTMX(c) {
		c.Set("HX-Redirect", to)
		return c.SendStatus(fiber.StatusNoContent)
	}
	return c.Redirect(to, fiber.StatusSeeOther)
}

// ErrorPage answers err with an error page.
func (s *Server) ErrorPage(c *fiber.Ctx, err error) error {
	status, msg := s.explain(c, err)
	p := s.newPage(c, "", http.StatusText(status), map[string]any{"Status": status, "Message": msg})
	return s.render(c, status, "error", p)
}

// ErrorFragment answers err with a short message for an htmx request,
// shown in the page's flash area.
func (s *Server) ErrorFragment(c *fiber.Ctx, err error) error {
	status, msg := s.explain(c, err)
	c.Set("HX-Retarget", "#flash")
	c.Set("HX-Reswap", "innerHTML")
	return s.execute(c, status, "error", "message", map[string]any{"Status": status, "Message": msg})
}

// explain is the status and the message the portal shows for err.
func (s *Server) explain(c *fiber.Ctx, err error) (int, string) {
	class := httperr.Classify(err)
	class.SetRetryAfter(c)
	msg := class.Message
	var de *requests.DecisionError
	switch class.Status {
	case http.StatusInternalServerError:
		if class.Internal() {
			s.Log.Error("portal error", "method", c.Method(), "path", c.Path(), "err", err)
			msg = "Something went wrong on our side. The server log has the details."
		}
	case http.StatusForbidden:
		if errors.As(err, &de) {
			msg = de.Reason
		}
		if class.Policy != nil || de != nil || errors.Is(err, requests.ErrNotAllowed) {
			msg = "Not allowed: " + msg + "."
		}
	case http.StatusNotFound:
		if errors.Is(err, input.ErrNotFound) {
			msg = "There is nothing here: it may have been deleted, or the link is wrong."
		} else if msg == "Cannot "+c.Method()+" "+c.Path() {
			msg = "There is no page at this address."
		}
	case http.StatusTooManyRequests:
		msg = "Too many attempts. Wait " + class.RetryAfter.Round(time.Second).String() + " and try again."
	}
	return class.Status, msg
}

// param returns a path parameter copied out of Fiber's reused buffers.
func param(c *fiber.Ctx, name string) string { return strings.Clone(c.Params(name)) }

// query returns a query parameter copied out of Fiber's reused buffers.
func query(c *fiber.Ctx, name string) string { return strings.Clone(strings.TrimSpace(c.Query(name))) }

// queryIn returns a query parameter when it is one of allowed, else "":
// a filter the page does not know shows everything.
func queryIn(c *fiber.Ctx, name string, allowed []string) string {
	v := query(c, name)
	if !slices.Contains(allowed, v) {
		return ""
	}
	return v
}

// form returns a form value copied out of Fiber's reused buffers.
func form(c *fiber.Ctx, name string) string { return strings.Clone(c.FormValue(name)) }

// formList returns every value of a repeated form field.
func formList(c *fiber.Ctx, name string) []string {
	var out []string
	c.Request().PostArgs().VisitAll(func(k, v []byte) {
		if string(k) == name && len(v) > 0 {
			out = append(out, string(v))
		}
	})
	return out
}

// idempotencyKey reads the idempotency key a button that starts a run
// sends (the Idempotency-Key header from htmx, or the idempotency_key field
// of a form): nil when there is none or it is not one the portal makes.
// The key is the user's and stands for the route it was sent to.
func idempotencyKey(c *fiber.Ctx) *requests.IdempotencyKey {
	v := c.Get(requests.KeyField)
	if v == "" {
		v = c.FormValue("idempotency_key")
	}
	if len(v) < 16 || len(v) > 64 || strings.IndexFunc(v, func(r rune) bool { return r < 0x21 || r > 0x7e }) >= 0 {
		return nil
	}
	sum := sha256.Sum256([]byte(c.Method() + " " + c.Path()))
	return &requests.IdempotencyKey{Actor: "user:" + user(c).ID, Key: strings.Clone(v), Fingerprint: hex.EncodeToString(sum[:])}
}

// safeNext keeps a post-login destination on this site.
func safeNext(next string) string {
	u, err := url.Parse(next)
	if err != nil || next == "" || u.IsAbs() || u.Host != "" || !strings.HasPrefix(u.Path, "/") || strings.HasPrefix(next, "//") ||
		strings.HasPrefix(u.Path, "/login") || strings.ContainsAny(next, "\\\r\n") {
		return "/"
	}
	return path.Clean(u.Path) + func() string {
		if u.RawQuery != "" {
			return "?" + u.RawQuery
		}
		return ""
	}()
}
