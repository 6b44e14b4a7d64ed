package api

import (
	"net/http/httptest"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/gofiber/fiber/v2"
	fiberrecover "github.com/gofiber/fiber/v2/middleware/recover"

	"github.com/provisor/provisor/access"
)

const apiPrefix = "/api/v1"

// specOp is one operation of openapi.yaml: its scope from the oauth2
// security requirement, or public when the operation says `security: []`.
type specOp struct {
	scopes []string
	public bool
}

var (
	specPath     = regexp.MustCompile(`^  (/[^\s:]*):$`)
	specMethod   = regexp.MustCompile(`^    (get|put|post|delete|patch|head|options|trace):$`)
	specPathItem = regexp.MustCompile(`^    (summary|description|servers|parameters):`)
	specPublic   = regexp.MustCompile(`^      security: \[\]$`)
	specOAuth2   = regexp.MustCompile(`^        - oauth2: \[([a-z, ]*)\]$`)
	fiberParam   = regexp.MustCompile(`:(\w+)`)
)

// specOperations reads the paths section of openapi.yaml. The file keeps a
// fixed layout so that this needs no YAML library: paths indented by two
// spaces, methods by four, and each operation's security as
// "      security:" then "        - oauth2: [scope]", or "      security: []".
// Lines that break the layout fail the test rather than being skipped.
func specOperations(t *testing.T, src string) map[string]*specOp {
	t.Helper()
	ops := map[string]*specOp{}
	paths := map[string]bool{}
	var path string
	var op *specOp
	inPaths := false
	for n, line := range strings.Split(src, "\n") {
		line = strings.TrimRight(line, " \r")
		switch {
		case line == "paths:":
			inPaths = true
			continue
		case !inPaths || line == "" || strings.HasPrefix(strings.TrimSpace(line), "#"):
			continue
		case line[0] != ' ':
			inPaths = false
			continue
		}
		if m := specPath.FindStringSubmatch(line); m != nil {
			path, op = m[1], nil
			if paths[path] {
				t.Errorf("openapi.yaml:%d: path %s is listed twice", n+1, path)
			}
			paths[path] = true
			continue
		}
		if strings.HasPrefix(line, "  ") && line[2] != ' ' {
			t.Fatalf("openapi.yaml:%d: %q is not a path such as \"  /tasks/{id}:\"", n+1, line)
		}
		if m := specMethod.FindStringSubmatch(line); m != nil {
			key := strings.ToUpper(m[1]) + " " + apiPrefix + path
			if ops[key] != nil {
				t.Errorf("openapi.yaml:%d: %s is listed twice", n+1, key)
			}
			op = &specOp{}
			ops[key] = op
			continue
		}
		if strings.HasPrefix(line, "    ") && line[4] != ' ' && !specPathItem.MatchString(line) {
			t.Fatalf("openapi.yaml:%d: %q is not a lower-case HTTP method or a path item field", n+1, line)
		}
		if op == nil {
			continue
		}
		if specPublic.MatchString(line) {
			op.public = true
		} else if m := specOAuth2.FindStringSubmatch(line); m != nil {
			op.scopes = append(op.scopes, strings.FieldsFunc(m[1], func(r rune) bool { return r == ',' || r == ' ' })...)
		}
	}
	if len(ops) == 0 {
		t.Fatal("openapi.yaml has no operations under paths:")
	}
	return ops
}

// routeScope finds which scope a route's scope(...) middleware asks for by
// running its first handler once per scope, as a principal holding only that
// scope, in a throwaway app. Routes with a single handler have no scope
// check: the public ones, registered before authenticate.
func routeScope(r fiber.Route) (scope string, public bool, ok bool) {
	if len(r.Handlers) < 2 {
		return "", true, true
	}
	probe := fiber.New()
	probe.Use(fiberrecover.New())
	probe.Get("/", func(c *fiber.Ctx) error {
		c.Locals(principalKey, &access.Principal{Name: "api:probe", Scopes: []string{c.Get("X-Scope")}})
		return c.Next()
	}, r.Handlers[0], func(c *fiber.Ctx) error { return c.SendStatus(fiber.StatusNoContent) })
	var held []string
	for _, s := range access.AllScopes {
		req := httptest.NewRequest(fiber.MethodGet, "/", nil)
		req.Header.Set("X-Scope", s)
		resp, err := probe.Test(req, -1)
		if err != nil {
			return "", false, false
		}
		if resp.StatusCode == fiber.StatusNoContent {
			held = append(held, s)
		}
	}
	if len(held) != 1 {
		return "", false, false
	}
	return held[0], false, true
}

// TestOpenAPIMatchesRoutes fails when openapi.yaml and the routes drift
// apart: every /api/v1 route is described with its method and scope, and
// every operation described is a route.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	t.Parallel()
	spec := specOperations(t, string(openapi))

	app := fiber.New()
	New(Deps{}).Mount(app.Group(apiPrefix))
	routes := map[string]fiber.Route{}
	for _, r := range app.GetRoutes(true) { // true leaves out Use handlers
		if strings.HasPrefix(r.Path, apiPrefix+"/") {
			routes[r.Method+" "+fiberParam.ReplaceAllString(r.Path, "{$1}")] = r
		}
	}
	for key := range routes {
		// Fiber adds a HEAD route for every GET one.
		if path, ok := strings.CutPrefix(key, fiber.MethodHead+" "); ok {
			if _, hasGet := routes[fiber.MethodGet+" "+path]; hasGet {
				delete(routes, key)
			}
		}
	}
	if len(routes) == 0 {
		t.Fatal("the API has no routes under " + apiPrefix)
	}

	keys := make([]string, 0, len(routes))
	for k := range routes {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, key := range keys {
		op, ok := spec[key]
		if !ok {
			t.Errorf("route %s is not in openapi.yaml", key)
			continue
		}
		scope, public, ok := routeScope(routes[key])
		switch {
		case !ok:
			t.Errorf("route %s: its first handler is not scope(...) of one scope", key)
		case public && (!op.public || len(op.scopes) > 0):
			t.Errorf("route %s has no scope(...) middleware: either it lacks one, or openapi.yaml should say \"security: []\"", key)
		case !public && (op.public || len(op.scopes) != 1 || op.scopes[0] != scope):
			t.Errorf("route %s needs scope %q; openapi.yaml has oauth2 scopes %v (public: %v)", key, scope, op.scopes, op.public)
		}
	}

	var extra []string
	for key := range spec {
		if _, ok := routes[key]; !ok {
			extra = append(extra, key)
		}
	}
	sort.Strings(extra)
	for _, key := range extra {
		t.Errorf("openapi.yaml describes %s, which is not a route", key)
	}
}

// TestOpenAPIRefs fails when openapi.yaml refers to a component it does not
// define, which a YAML-free check of the paths would not notice.
func TestOpenAPIRefs(t *testing.T) {
	t.Parallel()
	src := string(openapi)
	defined := map[string]bool{}
	kind := ""
	inComponents := false
	for _, line := range strings.Split(src, "\n") {
		line = strings.TrimRight(line, " \r")
		switch {
		case line == "components:":
			inComponents = true
		case line == "" || !inComponents:
		case line[0] != ' ':
			inComponents = false
		case strings.HasPrefix(line, "  ") && line[2] != ' ':
			kind = strings.TrimSuffix(strings.TrimSpace(line), ":")
		case strings.HasPrefix(line, "    ") && line[4] != ' ' && strings.HasSuffix(line, ":"):
			defined["#/components/"+kind+"/"+strings.TrimSuffix(strings.TrimSpace(line), ":")] = true
		}
	}
	if len(defined) == 0 {
		t.Fatal("openapi.yaml defines no components")
	}
	for _, m := range regexp.MustCompile(`\$ref:\s*(\S+)`).FindAllStringSubmatch(src, -1) {
		if ref := strings.Trim(m[1], `"'`); !defined[ref] {
			t.Errorf("openapi.yaml refers to %s, which it does not define", ref)
		}
	}
}
