// Package api is Provisor's JSON API under /api/v1, described by the
// OpenAPI file it serves at /api/v1/openapi.yaml. Clients authenticate with
// a bearer token from POST /api/v1/token (OAuth2 client credentials);
// errors are application/problem+json.
package api

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/provisor/provisor/access"
	"github.com/provisor/provisor/app/httperr"
	"github.com/provisor/provisor/connectors/configured"
	"github.com/provisor/provisor/database"
	"github.com/provisor/provisor/identities"
	"github.com/provisor/provisor/imports"
	"github.com/provisor/provisor/notifier"
	"github.com/provisor/provisor/provlog"
	"github.com/provisor/provisor/requests"
	"github.com/provisor/provisor/tasks"
)

//go:embed openapi.yaml
var openapi []byte

// Deps are what the API serves.
type Deps struct {
	Log        *slog.Logger
	DB         *database.DB
	Access     *access.Service
	Identities *identities.Service
	Connectors *configured.Store
	Requests   *requests.Service
	Tasks      *tasks.Service
	Notifier   *notifier.Service
	// Imports are the directory imports and their approvals.
	Imports *imports.Importer
	// Logs is the provisioning log.
	Logs *provlog.Log
}

type server struct{ Deps }

// Server is the API, as the HTTP server of the app mounts it.
type Server struct{ s *server }

// New returns the API.
func New(d Deps) *Server { return &Server{&server{d}} }

// Mount registers the API's routes on r, the /api/v1 group.
func (a *Server) Mount(r fiber.Router) { a.s.routes(r) }

// HandleError answers err as application/problem+json.
func (a *Server) HandleError(c *fiber.Ctx, err error) error { return a.s.errorHandler(c, err) }

// routes mounts the API on r.
func (s *server) routes(r fiber.Router) {
	r.Get("/openapi.yaml", func(c *fiber.Ctx) error {
		c.Set(fiber.HeaderContentType, "application/yaml")
		return c.Send(openapi)
	})
	r.Post("/token", s.token)

	r.Use(s.authenticate)
	read, req, tsk, trig, jobs, dir := scope(access.ScopeRead), scope(access.ScopeRequests), scope(access.ScopeTasks),
		scope(access.ScopeTrigger), scope(access.ScopeJobs), scope(access.ScopeDirectory)

	r.Get("/identities", read, s.listIdentities)
	r.Post("/identities", dir, s.createIdentity)
	r.Get("/identities/:id", read, s.getIdentity)
	r.Patch("/identities/:id", dir, s.updateIdentity)
	r.Get("/workgroups", read, s.listWorkgroups)
	r.Post("/workgroups", dir, s.createWorkgroup)
	r.Get("/workgroups/:id", read, s.getWorkgroup)
	r.Patch("/workgroups/:id", dir, s.updateWorkgroup)
	r.Post("/workgroups/:id/members", dir, s.addMembers)
	r.Get("/connectors", read, s.listConnectors)
	r.Post("/connectors", dir, s.createConnector)
	r.Get("/connectors/:id", read, s.getConnector)
	r.Patch("/connectors/:id", dir, s.updateConnector)
	r.Post("/connectors/:id/check", dir, s.checkConnector)
	r.Get("/connectors/:id/status", read, s.connectorStatus)
	r.Post("/connectors/:id/pause", dir, s.steerConnector(requests.ActionPause))
	r.Post("/connectors/:id/resume", dir, s.steerConnector(requests.ActionResume))
	r.Post("/connectors/:id/release", dir, s.steerConnector(requests.ActionRelease))
	r.Get("/connectors/:id/entitlements", read, s.listEntitlements)
	r.Post("/connectors/:id/entitlements", dir, s.createEntitlement)
	r.Get("/entitlements/:id", read, s.getEntitlement)
	r.Patch("/entitlements/:id", dir, s.updateEntitlement)

	r.Post("/requests", req, s.submitRequest)
	r.Post("/requests/preview", req, s.previewRequest)
	r.Get("/request-instances", read, s.listInstances)
	r.Get("/request-instances/:id", read, s.getInstance)
	r.Post("/request-instances/:id/cancel", jobs, s.cancelInstance)
	r.Post("/request-instances/:id/force-end", jobs, s.forceEnd)
	r.Get("/connector-jobs", read, s.listJobGroups)
	r.Post("/connector-jobs/:id/cancel", jobs, s.cancelJob)
	r.Post("/connector-jobs/:id/retry", jobs, s.retryJob)

	r.Get("/tasks", read, s.listTasks)
	r.Post("/tasks", tsk, s.createTask)
	r.Get("/tasks/:id", read, s.getTask)
	r.Patch("/tasks/:id", tsk, s.updateTask)
	r.Delete("/tasks/:id", tsk, s.deleteTask)
	r.Post("/tasks/:id/trigger", trig, s.triggerTask)
	r.Get("/tasks/:id/history", read, s.taskHistory)
	r.Get("/tasks/:id/preview", read, s.previewTask)

	r.Get("/audit", read, s.listAudit)
	r.Get("/provisioning-logs", read, s.listProvisioningLogs)

	r.Get("/imports", read, s.listImports)
	r.Get("/imports/:id", read, s.getImport)
	r.Post("/imports/:id/approve", dir, s.approveImport)
	r.Post("/imports/:id/reject", dir, s.rejectImport)

	r.Get("/notifications", read, s.listNotifications)
	r.Get("/notifications/:id", read, s.getNotification)
	r.Post("/notifications/:id/resend", jobs, s.resendNotification)

	adm := scope(access.ScopeAdmin)
	r.Get("/api-clients", adm, s.listAPIClients)
	r.Post("/api-clients/:id/revoke", adm, s.revokeAPIClient)
	r.Get("/users", adm, s.listUsers)
	r.Post("/users/:id/disable", adm, s.disableUser)
	r.Post("/users/:id/enable", adm, s.enableUser)
	r.Post("/users/:id/reset-password", adm, s.resetPassword)
	r.Post("/users/:id/role", adm, s.setUserRole)

	apr := scope(access.ScopeApprovals)
	r.Get("/approvals", apr, s.listApprovals)
	r.Get("/approvals/:id", apr, s.getApproval)
	r.Post("/approvals/:id/approve", apr, s.decideApproval(true))
	r.Post("/approvals/:id/deny", apr, s.decideApproval(false))
	r.Post("/approvals/:id/withdraw", apr, s.withdrawApproval)
	r.Use(func(c *fiber.Ctx) error { return fiber.ErrNotFound })
}

// Problem is an application/problem+json body (RFC 9457).
type Problem struct {
	Type   string                `json:"type"`
	Title  string                `json:"title"`
	Status int                   `json:"status"`
	Detail string                `json:"detail,omitempty"`
	Errors []requests.FieldError `json:"errors,omitempty"`
	// Rule names the request policy's rule that refused a request (403),
	// and Refusals every refusal with its field and rule.
	Rule     string             `json:"rule,omitempty"`
	Refusals []requests.Refusal `json:"refusals,omitempty"`
}

func problem(status int, detail string, fields ...requests.FieldError) *problemError {
	return &problemError{Problem{Type: "about:blank", Title: httpTitle(status), Status: status, Detail: detail, Errors: fields}}
}

type problemError struct{ p Problem }

func (e *problemError) Error() string { return e.p.Detail }

func httpTitle(status int) string {
	switch status {
	case 422:
		return "Invalid input"
	case 409:
		return "Conflict"
	}
	return strings.TrimSpace(fiberStatus(status))
}

func fiberStatus(status int) string { return fiber.NewError(status).Message }

// errorHandler turns every error into problem+json.
func (s *server) errorHandler(c *fiber.Ctx, err error) error {
	var pe *problemError
	if !errors.As(err, &pe) {
		class := httperr.Classify(err)
		switch {
		case class.Internal():
			s.Log.Error("api error", "method", c.Method(), "path", c.Path(), "err", err)
			pe = problem(500, "internal error; the server log has details")
		case class.Fields != nil:
			pe = problem(class.Status, "the input has problems; see errors", class.Fields...)
		default:
			pe = problem(class.Status, class.Message)
		}
		if class.Policy != nil {
			pe.p.Rule, pe.p.Refusals = class.Policy.Refusals[0].Rule, class.Policy.Refusals
		}
		class.SetRetryAfter(c)
	}
	c.Set(fiber.HeaderContentType, "application/problem+json")
	if pe.p.Status == 401 {
		c.Set(fiber.HeaderWWWAuthenticate, `Bearer realm="provisor"`)
	}
	b, _ := json.Marshal(pe.p)
	return c.Status(pe.p.Status).Send(b)
}

// decode reads a JSON body strictly: unknown fields and trailing data are errors.
func decode(c *fiber.Ctx, v any) error {
	ct := string(c.Request().Header.ContentType())
	if !strings.HasPrefix(ct, fiber.MIMEApplicationJSON) {
		return problem(415, "send the body as application/json")
	}
	dec := json.NewDecoder(bytes.NewReader(c.Body()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field == "" {
			return problem(400, "the body must be a JSON object, not "+te.Value)
		}
		if errors.As(err, &te) {
			return problem(422, "invalid JSON field", requests.FieldError{Field: te.Field, Message: "must be " + te.Type.String()})
		}
		if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			if name := strings.Trim(f, `"`); name != "" {
				f = name
			}
			return problem(422, "unknown field", requests.FieldError{Field: f, Message: "unknown field"})
		}
		return problem(400, "the body is not valid JSON: "+err.Error())
	}
	if dec.More() {
		return problem(400, "the body has data after the JSON value")
	}
	return nil
}

// decodeLoose reads a JSON body, allowing unknown fields.
func decodeLoose(c *fiber.Ctx, v any) error {
	return json.Unmarshal(c.Body(), v)
}

// intQuery reads a non-negative integer query parameter.
func intQuery(c *fiber.Ctx, name string, def, max int) (int, error) {
	v := c.Query(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 || (max > 0 && n > max) {
		return 0, problem(422, "invalid query parameter", requests.FieldError{Field: name, Message: fmt.Sprintf("must be a whole number from 0 to %d", max)})
	}
	return n, nil
}

type list[T any] struct {
	Items  []T   `json:"items"`
	Total  int64 `json:"total"`
	Limit  int   `json:"limit"`
	Offset int   `json:"offset"`
}

func paging(c *fiber.Ctx) (limit, offset int, err error) {
	if limit, err = intQuery(c, "limit", 50, 500); err != nil {
		return
	}
	if limit == 0 {
		limit = 50
	}
	offset, err = intQuery(c, "offset", 0, 1<<30)
	return
}

// idempotencyKey reads the Idempotency-Key header of a request that starts
// a run: nil when there is none. The key is the calling client's, and
// stands for the method, the path and the body sent with it.
func idempotencyKey(c *fiber.Ctx) (*requests.IdempotencyKey, error) {
	v := strings.TrimSpace(c.Get(requests.KeyField))
	if v == "" {
		return nil, nil
	}
	if len(v) > 255 || strings.IndexFunc(v, func(r rune) bool { return r < 0x21 || r > 0x7e }) >= 0 {
		return nil, problem(422, "invalid Idempotency-Key header", requests.FieldError{Field: requests.KeyField,
			Message: "at most 255 printable ASCII characters without spaces, such as a UUID"})
	}
	sum := sha256.New()
	sum.Write([]byte(c.Method() + " " + c.Path() + "\n"))
	sum.Write(c.Body())
	return &requests.IdempotencyKey{Actor: "api:" + principal(c).ID, Key: strings.Clone(v), Fingerprint: hex.EncodeToString(sum.Sum(nil))}, nil
}

// param returns a path parameter copied out of Fiber's reused buffers.
func param(c *fiber.Ctx, name string) string { return strings.Clone(c.Params(name)) }

func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }
