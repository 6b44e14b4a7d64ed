package app

import (
	"regexp"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/provisor/provisor/input"
)

// idParams are the path parameters that hold ids: every route of the API
// and of the portal with one of them answers 404 to a value that is no id
// before any handler (and so any query) sees it. PostgreSQL would refuse a
// malformed UUID with an error, SQLite find nothing: both answer 404 so.
var idParams = map[string]bool{"id": true, "job": true}

// clientRef is what the API client routes take besides the client's id:
// its pc_… client id.
var clientRef = regexp.MustCompile(`^pc_[A-Za-z0-9_-]{1,64}$`)

// guardIDs puts the id check in front of the last handler of every route
// of app with an id in its path (after the routes' scope and role
// checks, so a caller who may not use the route is told that first). It
// reads the route table, so routes added later are checked too; it is
// called once all routes are mounted.
func guardIDs(app *fiber.App) {
	for _, routes := range app.Stack() {
		for _, r := range routes {
			var names []string
			for _, p := range r.Params {
				if idParams[p] {
					names = append(names, p)
				}
			}
			if len(names) == 0 || len(r.Handlers) == 0 {
				continue
			}
			clients := strings.Contains(r.Path, "/api-clients/")
			check := func(c *fiber.Ctx) error {
				for _, n := range names {
					v := c.Params(n)
					if !input.ID(v) && !(clients && n == "id" && clientRef.MatchString(v)) {
						return input.ErrNotFound
					}
				}
				return c.Next()
			}
			last := len(r.Handlers) - 1
			r.Handlers = append(r.Handlers[:last:last], check, r.Handlers[last])
		}
	}
}
