package app

import (
	"fmt"
	"runtime/debug"
	"strings"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/recover"

	"github.com/provisor/provisor/app/api"
	"github.com/provisor/provisor/app/web"
)

// newHTTP builds the HTTP server: the health routes, the API under
// /api/v1 and the portal, with one error handler that answers each surface
// in its own form.
func (a *App) newHTTP(apiServer *api.Server, portal *web.Server) *fiber.App {
	h := fiber.New(fiber.Config{
		ErrorHandler: func(c *fiber.Ctx, err error) error {
			switch {
			case isAPI(c):
				return apiServer.HandleError(c, err)
			case web.IsHTMX(c):
				return portal.ErrorFragment(c, err)
			default:
				return portal.ErrorPage(c, err)
			}
		},
		DisableStartupMessage: true,
		BodyLimit:             1 << 20,
		AppName:               "Provisor",
	})
	// A panic in a handler is logged with its stack and answered 500,
	// instead of ending the process.
	h.Use(recover.New(recover.Config{EnableStackTrace: true, StackTraceHandler: func(c *fiber.Ctx, e any) {
		a.Log.Error("panic", "method", c.Method(), "path", c.Path(), "panic", fmt.Sprint(e), "stack", string(debug.Stack()))
	}}))
	// Every request's duration is measured, by route.
	h.Use(a.Metrics.middleware)
	if a.Config.MetricsToken != "" {
		// /metrics beside the portal, for a scraper holding the token.
		h.Get("/metrics", a.Metrics.tokenHandler(a.Config.MetricsToken))
	}
	h.Get("/healthz", func(c *fiber.Ctx) error { return c.JSON(fiber.Map{"status": "ok"}) })
	h.Get("/readyz", a.ready)
	apiServer.Mount(h.Group("/api/v1"))
	portal.Mount(h)
	guardIDs(h)
	return h
}

// isAPI reports whether c is a request to the API, whose errors are
// application/problem+json (the prefix in any case, as Fiber routes).
func isAPI(c *fiber.Ctx) bool { return strings.HasPrefix(strings.ToLower(c.Path()), "/api/") }

func (a *App) ready(c *fiber.Ctx) error {
	if err := a.DB.SQL.PingContext(c.UserContext()); err != nil {
		return c.Status(fiber.StatusServiceUnavailable).JSON(fiber.Map{"status": "database unreachable"})
	}
	return c.JSON(fiber.Map{"status": "ready"})
}
