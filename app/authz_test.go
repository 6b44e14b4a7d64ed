package app_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"golang.org/x/crypto/bcrypt"

	"github.com/provisor/provisor/access"
	"github.com/provisor/provisor/app/apptest"
	"github.com/provisor/provisor/database/dbtest"
	"github.com/provisor/provisor/identities"
	"github.com/provisor/provisor/requests"
	"github.com/provisor/provisor/tasks"
)

// authzMatrix says, for every route of the HTTP server (the portal, its
// htmx fragments, the JSON API, health checks and static files), what each
// kind of caller gets. TestAuthorizationMatrix reads the routes from the
// Fiber app's route stack, so a route added without a line here fails the
// test, and so does a line whose route is gone.
//
// How to add an entry: copy the line of a route like yours and change it.
// The columns are
//
//	METHOD PATH   the route exactly as registered (app.Get("/tasks/:id") is
//	              GET /tasks/:id); USE is a middleware mount (app.Use), and
//	              its PARAMS column is then the path to request under it.
//	PARAMS        the values of the route's parameters, in order, comma
//	              separated: {name} is a fixture of the test (see fixtures
//	              below), anything else is sent as written; - sends a random
//	              UUID for each parameter, which no row of the database has.
//	              A query string may follow, as in -?connector={connector}.
//	anon          no cookie, no token.
//	req help      a portal session of a user with the role requester,
//	              helpdesk.
//	appr          a portal session of a requester who owns an entitlement and
//	              a workgroup and manages someone: the approver of the
//	              {approval} fixture.
//	admin         a portal session of an admin.
//	read … apr    a bearer token of an API client (acting as a service, for
//	              no user) holding that one scope: read, requests, tasks,
//	              trigger, jobs, directory, admin, approvals. A scope
//	              without a column fails the test.
//
// and each cell is what that caller gets:
//
//	ok     served: a 2xx answer, or a redirect elsewhere than the sign-in page.
//	pass   let through by authentication and authorization: anything but
//	       401, 403 and the sign-in page; the handler may still answer 404,
//	       409, 415 or 422 for the fake id or the empty body the test sends.
//	hide   404: nothing there for this caller: the object in PARAMS exists
//	       but is not the caller's (a draft, run or task of someone else),
//	       or there is no such page.
//	login  sent to the sign-in page: a redirect to /login?next=<the page>
//	       (for htmx, 204 with HX-Redirect).
//	401    refused for want of a session (portal) or a bearer token (API).
//	403    refused for the caller's role or scope.
//
// Every portal request that changes something is sent with the session's
// CSRF token, so that a 403 is the role's; each portal request is sent
// twice, as a browser does (form field) and as htmx does (HX-Request and
// the X-CSRF-Token header). TestAuthorizationMatrix checks besides that
// every such route refuses a request without the token, or with a wrong
// one, before anything else. A 5xx answer always fails.
const authzMatrix = `
METHOD PATH                                     PARAMS                   anon  req   help  appr  admin read  reqs  tasks trig  jobs  dir   adm   apr

# Health checks and static files: public.
GET    /healthz                                 -                        ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok
GET    /readyz                                  -                        ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok
USE    /static                                  /static/app.css          ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok
GET    /favicon.ico                             -                        ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok

# Portal: sign-in is open; every other page needs a session (a bearer
# token is no session), and admin pages the admin role.
GET    /login                                   -                        ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok
POST   /login                                   -                        ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok
POST   /logout                                  -                        401   ok    ok    ok    ok    401   401   401   401   401   401   401   401
USE    /                                        /no-such-page            login hide  hide  hide  hide  login login login login login login login login
GET    /                                        -                        login ok    ok    ok    ok    login login login login login login login login

# Requests and the wizard: every role, each their own drafts and runs.
GET    /requests                                -                        login ok    ok    ok    ok    login login login login login login login login
GET    /requests/new                            -                        login ok    ok    ok    ok    login login login login login login login login
POST   /requests/new                            -                        401   pass  pass  pass  pass  401   401   401   401   401   401   401   401
GET    /requests/drafts/:id/:step               {draft},beneficiary      login hide  hide  hide  ok    login login login login login login login login
POST   /requests/drafts/:id/:step               {draft},beneficiary      401   hide  hide  hide  pass  401   401   401   401   401   401   401   401
POST   /requests/drafts/:id                     {spare-draft}            401   hide  hide  hide  pass  401   401   401   401   401   401   401   401
GET    /requests/:id                            {run}                    login hide  hide  hide  ok    login login login login login login login login
GET    /lookup/identities                       -                        login ok    ok    ok    ok    login login login login login login login login
GET    /lookup/workgroups                       -                        login ok    ok    ok    ok    login login login login login login login login
GET    /lookup/entitlements                     -?connector={connector}  login ok    ok    ok    ok    login login login login login login login login

# Tasks: every role, each their own; scheduling, triggering and enabling
# are the admin's.
GET    /tasks                                   -                        login ok    ok    ok    ok    login login login login login login login login
GET    /tasks/schedule-preview                  -                        login ok    ok    ok    ok    login login login login login login login login
GET    /tasks/:id                               {task}                   login hide  hide  hide  ok    login login login login login login login login
GET    /tasks/:id/row                           {task}                   login hide  hide  hide  ok    login login login login login login login login
GET    /tasks/:id/history                       {task}                   login hide  hide  hide  ok    login login login login login login login login
POST   /tasks/:id                               {task}                   401   hide  hide  hide  pass  401   401   401   401   401   401   401   401
POST   /tasks/:id/notify                        {task}                   401   hide  hide  hide  pass  401   401   401   401   401   401   401   401
POST   /tasks/:id/delete                        {spare-task}             401   hide  hide  hide  pass  401   401   401   401   401   401   401   401
POST   /tasks/:id/schedule                      {task}                   401   403   403   403   pass  401   401   401   401   401   401   401   401
POST   /tasks/:id/trigger                       -                        401   403   403   403   pass  401   401   401   401   401   401   401   401
POST   /tasks/:id/enable                        -                        401   403   403   403   pass  401   401   401   401   401   401   401   401

# Admin pages.
GET    /jobs                                    -                        login 403   403   403   ok    login login login login login login login login
GET    /jobs/:id                                {run}                    login 403   403   403   ok    login login login login login login login login
POST   /jobs/:id/cancel                         -                        401   403   403   403   pass  401   401   401   401   401   401   401   401
POST   /jobs/:id/force-end                      -                        401   403   403   403   pass  401   401   401   401   401   401   401   401
POST   /jobs/:id/jobs/:job/cancel               {run},{job}              401   403   403   403   pass  401   401   401   401   401   401   401   401
POST   /jobs/:id/jobs/:job/retry                -                        401   403   403   403   pass  401   401   401   401   401   401   401   401
GET    /connectors                              -                        login 403   403   403   ok    login login login login login login login login
GET    /connectors/new                          -                        login 403   403   403   ok    login login login login login login login login
POST   /connectors/new                          -                        401   403   403   403   pass  401   401   401   401   401   401   401   401
GET    /connectors/:id                          {connector}              login 403   403   403   ok    login login login login login login login login
POST   /connectors/:id                          -                        401   403   403   403   pass  401   401   401   401   401   401   401   401
POST   /connectors/:id/check                    -                        401   403   403   403   pass  401   401   401   401   401   401   401   401
POST   /connectors/:id/pause                    -                        401   403   403   403   pass  401   401   401   401   401   401   401   401
POST   /connectors/:id/resume                   -                        401   403   403   403   pass  401   401   401   401   401   401   401   401
POST   /connectors/:id/release                  -                        401   403   403   403   pass  401   401   401   401   401   401   401   401
POST   /connectors/:id/entitlements             -                        401   403   403   403   pass  401   401   401   401   401   401   401   401
GET    /entitlements/:id                        {entitlement}            login 403   403   403   ok    login login login login login login login login
POST   /entitlements/:id                        -                        401   403   403   403   pass  401   401   401   401   401   401   401   401
GET    /identities                              -                        login 403   403   403   ok    login login login login login login login login
POST   /identities                              -                        401   403   403   403   pass  401   401   401   401   401   401   401   401
GET    /identities/:id                          {identity}               login 403   403   403   ok    login login login login login login login login
GET    /workgroups                              -                        login 403   403   403   ok    login login login login login login login login
POST   /workgroups                              -                        401   403   403   403   pass  401   401   401   401   401   401   401   401
GET    /workgroups/:id                          {workgroup}              login 403   403   403   ok    login login login login login login login login
POST   /workgroups/:id/members                  -                        401   403   403   403   pass  401   401   401   401   401   401   401   401
GET    /audit                                   -                        login 403   403   403   ok    login login login login login login login login
GET    /provisioning-logs                       -                        login 403   403   403   ok    login login login login login login login login
GET    /provisioning-logs/download              -                        login 403   403   403   ok    login login login login login login login login
GET    /provisioning-logs/:id                   -                        login 403   403   403   pass  login login login login login login login login
GET    /imports                                 -                        login 403   403   403   ok    login login login login login login login login
POST   /imports/run                             -                        401   403   403   403   pass  401   401   401   401   401   401   401   401
GET    /imports/:id                             -                        login 403   403   403   pass  login login login login login login login login
POST   /imports/:id/decide                      -                        401   403   403   403   pass  401   401   401   401   401   401   401   401
GET    /outbox                                  -                        login 403   403   403   ok    login login login login login login login login
GET    /outbox/:id                              -                        login 403   403   403   pass  login login login login login login login login
GET    /outbox/:id/html                         -                        login 403   403   403   pass  login login login login login login login login
POST   /outbox/:id/resend                       -                        401   403   403   403   pass  401   401   401   401   401   401   401   401
GET    /users                                   -                        login 403   403   403   ok    login login login login login login login login
POST   /users/:id/disable                       -                        401   403   403   403   pass  401   401   401   401   401   401   401   401
POST   /users/:id/enable                        -                        401   403   403   403   pass  401   401   401   401   401   401   401   401
POST   /users/:id/reset-password                -                        401   403   403   403   pass  401   401   401   401   401   401   401   401
POST   /api-clients/:id/revoke                  -                        401   403   403   403   pass  401   401   401   401   401   401   401   401


# Approvals: every signed-in user has My approvals; an approval is shown
# to its requester, whoever may decide it, admins and the helpdesk (the
# fixture is a request of another requester's that the approver decides),
# and is not there for anyone else. Deciding and withdrawing are checked
# by the approval flow itself (app/api and app/web approval tests).
GET    /approvals                               -                        login ok    ok    ok    ok    login login login login login login login login
GET    /approvals/:id                           {approval}               login hide  ok    ok    ok    login login login login login login login login
POST   /approvals/:id/approve                   -                        401   hide  hide  hide  hide  401   401   401   401   401   401   401   401
POST   /approvals/:id/deny                      -                        401   hide  hide  hide  hide  401   401   401   401   401   401   401   401
POST   /approvals/:id/withdraw                  -                        401   hide  hide  hide  hide  401   401   401   401   401   401   401   401
POST   /identities/:id/manager                  -                        401   403   403   403   pass  401   401   401   401   401   401   401   401
POST   /workgroups/:id/owner                    -                        401   403   403   403   pass  401   401   401   401   401   401   401   401
# API: the description and the token endpoint are open; everything else
# needs a bearer token (a portal session is none) with the route's scope.
GET    /api/v1/openapi.yaml                     -                        ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok
POST   /api/v1/token                            -                        pass  pass  pass  pass  pass  pass  pass  pass  pass  pass  pass  pass  pass
USE    /api/v1                                  /api/v1/no-such          401   401   401   401   401   hide  hide  hide  hide  hide  hide  hide  hide
GET    /api/v1/identities                       -                        401   401   401   401   401   ok    403   403   403   403   403   403   403
POST   /api/v1/identities                       -                        401   401   401   401   401   403   403   403   403   403   pass  403   403
GET    /api/v1/identities/:id                   {identity}               401   401   401   401   401   ok    403   403   403   403   403   403   403
PATCH  /api/v1/identities/:id                   -                        401   401   401   401   401   403   403   403   403   403   pass  403   403
GET    /api/v1/workgroups                       -                        401   401   401   401   401   ok    403   403   403   403   403   403   403
POST   /api/v1/workgroups                       -                        401   401   401   401   401   403   403   403   403   403   pass  403   403
GET    /api/v1/workgroups/:id                   {workgroup}              401   401   401   401   401   ok    403   403   403   403   403   403   403
PATCH  /api/v1/workgroups/:id                   -                        401   401   401   401   401   403   403   403   403   403   pass  403   403
POST   /api/v1/workgroups/:id/members           -                        401   401   401   401   401   403   403   403   403   403   pass  403   403
GET    /api/v1/connectors                       -                        401   401   401   401   401   ok    403   403   403   403   403   403   403
POST   /api/v1/connectors                       -                        401   401   401   401   401   403   403   403   403   403   pass  403   403
GET    /api/v1/connectors/:id                   {connector}              401   401   401   401   401   ok    403   403   403   403   403   403   403
PATCH  /api/v1/connectors/:id                   -                        401   401   401   401   401   403   403   403   403   403   pass  403   403
POST   /api/v1/connectors/:id/check             -                        401   401   401   401   401   403   403   403   403   403   pass  403   403
GET    /api/v1/connectors/:id/status            {connector}              401   401   401   401   401   ok    403   403   403   403   403   403   403
POST   /api/v1/connectors/:id/pause             -                        401   401   401   401   401   403   403   403   403   403   pass  403   403
POST   /api/v1/connectors/:id/resume            -                        401   401   401   401   401   403   403   403   403   403   pass  403   403
POST   /api/v1/connectors/:id/release           -                        401   401   401   401   401   403   403   403   403   403   pass  403   403
GET    /api/v1/connectors/:id/entitlements      {connector}              401   401   401   401   401   ok    403   403   403   403   403   403   403
POST   /api/v1/connectors/:id/entitlements      -                        401   401   401   401   401   403   403   403   403   403   pass  403   403
GET    /api/v1/entitlements/:id                 {entitlement}            401   401   401   401   401   ok    403   403   403   403   403   403   403
PATCH  /api/v1/entitlements/:id                 -                        401   401   401   401   401   403   403   403   403   403   pass  403   403
POST   /api/v1/requests                         -                        401   401   401   401   401   403   pass  403   403   403   403   403   403
POST   /api/v1/requests/preview                 -                        401   401   401   401   401   403   pass  403   403   403   403   403   403
GET    /api/v1/request-instances                -                        401   401   401   401   401   ok    403   403   403   403   403   403   403
GET    /api/v1/request-instances/:id            {run}                    401   401   401   401   401   ok    403   403   403   403   403   403   403
POST   /api/v1/request-instances/:id/cancel     -                        401   401   401   401   401   403   403   403   403   pass  403   403   403
POST   /api/v1/request-instances/:id/force-end  -                        401   401   401   401   401   403   403   403   403   pass  403   403   403
GET    /api/v1/connector-jobs                   -                        401   401   401   401   401   ok    403   403   403   403   403   403   403
POST   /api/v1/connector-jobs/:id/cancel        -                        401   401   401   401   401   403   403   403   403   pass  403   403   403
POST   /api/v1/connector-jobs/:id/retry         -                        401   401   401   401   401   403   403   403   403   pass  403   403   403
GET    /api/v1/tasks                            -                        401   401   401   401   401   ok    403   403   403   403   403   403   403
POST   /api/v1/tasks                            -                        401   401   401   401   401   403   403   pass  403   403   403   403   403
GET    /api/v1/tasks/:id                        {task}                   401   401   401   401   401   ok    403   403   403   403   403   403   403
PATCH  /api/v1/tasks/:id                        -                        401   401   401   401   401   403   403   pass  403   403   403   403   403
DELETE /api/v1/tasks/:id                        -                        401   401   401   401   401   403   403   pass  403   403   403   403   403
POST   /api/v1/tasks/:id/trigger                -                        401   401   401   401   401   403   403   403   pass  403   403   403   403
GET    /api/v1/tasks/:id/history                {task}                   401   401   401   401   401   ok    403   403   403   403   403   403   403
GET    /api/v1/tasks/:id/preview                {task}                   401   401   401   401   401   ok    403   403   403   403   403   403   403
GET    /api/v1/audit                            -                        401   401   401   401   401   ok    403   403   403   403   403   403   403
GET    /api/v1/provisioning-logs                -                        401   401   401   401   401   ok    403   403   403   403   403   403   403
GET    /api/v1/imports                          -                        401   401   401   401   401   ok    403   403   403   403   403   403   403
GET    /api/v1/imports/:id                      -                        401   401   401   401   401   pass  403   403   403   403   403   403   403
POST   /api/v1/imports/:id/approve              -                        401   401   401   401   401   403   403   403   403   403   pass  403   403
POST   /api/v1/imports/:id/reject               -                        401   401   401   401   401   403   403   403   403   403   pass  403   403
GET    /api/v1/notifications                    -                        401   401   401   401   401   ok    403   403   403   403   403   403   403
GET    /api/v1/notifications/:id                -                        401   401   401   401   401   pass  403   403   403   403   403   403   403
POST   /api/v1/notifications/:id/resend         -                        401   401   401   401   401   403   403   403   403   pass  403   403   403
GET    /api/v1/api-clients                      -                        401   401   401   401   401   403   403   403   403   403   403   ok    403
POST   /api/v1/api-clients/:id/revoke           -                        401   401   401   401   401   403   403   403   403   403   403   pass  403
GET    /api/v1/users                            -                        401   401   401   401   401   403   403   403   403   403   403   ok    403
POST   /api/v1/users/:id/disable                -                        401   401   401   401   401   403   403   403   403   403   403   pass  403
POST   /api/v1/users/:id/enable                 -                        401   401   401   401   401   403   403   403   403   403   403   pass  403
POST   /api/v1/users/:id/reset-password         -                        401   401   401   401   401   403   403   403   403   403   403   pass  403
POST   /api/v1/users/:id/role                   -                        401   401   401   401   401   403   403   403   403   403   403   pass  403
GET    /api/v1/approvals                        -                        401   401   401   401   401   403   403   403   403   403   403   403   pass
GET    /api/v1/approvals/:id                    {approval}               401   401   401   401   401   403   403   403   403   403   403   403   ok
POST   /api/v1/approvals/:id/approve            -                        401   401   401   401   401   403   403   403   403   403   403   403   403
POST   /api/v1/approvals/:id/deny               -                        401   401   401   401   401   403   403   403   403   403   403   403   403
POST   /api/v1/approvals/:id/withdraw           -                        401   401   401   401   401   403   403   403   403   403   403   403   403
`

// The callers, in the order of the matrix's columns.
var authzCallers = []string{"anon", "req", "help", "appr", "admin", "read", "reqs", "tasks", "trig", "jobs", "dir", "adm", "apr"}

// authzScopes are the scopes of the bearer columns.
var authzScopes = map[string]string{"read": access.ScopeRead, "reqs": access.ScopeRequests, "tasks": access.ScopeTasks,
	"trig": access.ScopeTrigger, "jobs": access.ScopeJobs, "dir": access.ScopeDirectory, "adm": access.ScopeAdmin,
	"apr": access.ScopeApprovals}

var authzWants = []string{"ok", "pass", "hide", "login", "401", "403"}

// endsSession lists the routes that end the session they are sent with:
// each request to one gets a session of its own.
var endsSession = map[string]bool{"POST /logout": true}

type authzEntry struct {
	line         int
	method, path string
	params       string
	want         []string
}

func (e authzEntry) key() string { return e.method + " " + e.path }

func parseAuthzMatrix(t *testing.T) []authzEntry {
	t.Helper()
	// Lines are counted in this file, for the messages.
	first := 0
	if _, file, _, ok := runtime.Caller(0); ok {
		if src, err := os.ReadFile(file); err == nil {
			if before, _, ok := strings.Cut(string(src), "const authzMatrix = `"); ok {
				first = strings.Count(before, "\n") + 1
			}
		}
	}
	var out []authzEntry
	header := false
	for i, line := range strings.Split(authzMatrix, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		if !header {
			if want := append([]string{"METHOD", "PATH", "PARAMS"}, authzCallers...); !slices.Equal(f, want) {
				t.Fatalf("authzMatrix: the header is %q, want %q", f, want)
			}
			header = true
			continue
		}
		if len(f) != 3+len(authzCallers) {
			t.Fatalf("app/authz_test.go:%d: %d columns, want %d: %q", i, len(f), 3+len(authzCallers), line)
		}
		e := authzEntry{line: first + i, method: f[0], path: f[1], params: f[2], want: f[3:]}
		for _, w := range e.want {
			if !slices.Contains(authzWants, w) {
				t.Fatalf("app/authz_test.go:%d: cell %q is none of %v", i, w, authzWants)
			}
		}
		out = append(out, e)
	}
	return out
}

// authzCaller is one column: what it sends with every request.
type authzCaller struct {
	name   string
	user   string // the portal user of a session column
	cookie string // session cookie token
	csrf   string
	bearer string
}

type authzWorld struct {
	*apptest.Bundle
	password string
	fixtures map[string]string
	callers  []*authzCaller
}

// authzUser stores a portal user with a cheap password hash: bcrypt at its
// default cost takes a second per hash under the race detector.
func authzUser(t *testing.T, b *apptest.Bundle, username, role, password string) *access.User {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	u := &access.User{ID: uuid.NewString(), Username: username, Email: username + "@example.test", DisplayName: username,
		PasswordHash: string(h), Role: role, CreatedAt: now, UpdatedAt: now}
	if err := b.DB.Gorm.Create(u).Error; err != nil {
		t.Fatalf("user %s: %v", username, err)
	}
	return u
}

func (w *authzWorld) signIn(t *testing.T, username string) (cookie, csrf string) {
	t.Helper()
	sess, token, err := w.Access.SignIn(w.Ctx, username, w.password, "192.0.2.10")
	if err != nil {
		t.Fatalf("sign in %s: %v", username, err)
	}
	return token, sess.CSRFToken
}

// freshSession is another session of c's user, for a request that ends
// the session it is sent with.
func (w *authzWorld) freshSession(t *testing.T, c *authzCaller) *authzCaller {
	t.Helper()
	cookie, csrf := w.signIn(t, c.user)
	return &authzCaller{name: c.name, user: c.user, cookie: cookie, csrf: csrf}
}

func newAuthzWorld(t *testing.T, dialect string) *authzWorld {
	b := apptest.New(t, dialect, &apptest.Options{NoStart: true})
	w := &authzWorld{Bundle: b, password: access.GeneratePassword(), fixtures: map[string]string{}}
	ctx := b.Ctx
	users := map[string]*access.User{}
	for name, role := range map[string]string{"req": access.RoleRequester, "help": access.RoleHelpdesk,
		"appr": access.RoleRequester, "admin": access.RoleAdmin, "probe": access.RoleRequester} {
		users[name] = authzUser(t, b, "authz-"+name, role, w.password)
	}

	// The directory, and what the approver owns and manages.
	dir, ents := b.Directory(t, "Corp Directory", "VPN", "Wiki")
	appr := b.Identity(t, "authz-appr")
	bob := b.Identity(t, "bob")
	if _, err := b.Identities.SetManager(ctx, bob.ID, appr.ID, "test"); err != nil {
		t.Fatal(err)
	}
	team := b.Workgroup(t, "Team", bob)
	if _, err := b.Identities.SetOwner(ctx, team.ID, appr.ID, "test"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Identities.SetPolicy(ctx, ents["VPN"].ID, identities.PolicyInput{OwnerIdentityID: &appr.ID}, "test"); err != nil {
		t.Fatal(err)
	}

	// The admin's task, run and drafts, which no one else may see.
	adminName := users["admin"].Username
	newTask := func(name string) *tasks.Task {
		tk, err := b.Tasks.Create(ctx, tasks.Input{Name: &name, Request: &requests.Request{Type: requests.AddEntitlements,
			BeneficiaryType: "identity", BeneficiaryID: bob.ID, ConnectorID: dir.ID, Entitlements: []string{ents["Wiki"].ID}, Justification: "x"}}, adminName)
		if err != nil {
			t.Fatal(err)
		}
		return tk
	}
	task, spare := newTask("Bob Wiki"), newTask("Bob Wiki again")
	run, err := b.Tasks.Trigger(ctx, task.ID, requests.TriggerManual, adminName)
	if err != nil {
		t.Fatal(err)
	}
	if len(run.Jobs) == 0 {
		t.Fatal("the run has no job")
	}
	newDraft := func() string {
		d, err := b.Requests.NewDraft(ctx, users["admin"].ID, requests.LockAccount)
		if err != nil {
			t.Fatal(err)
		}
		return d.ID
	}
	// A request of another requester's that waits for the approver.
	probe := b.Identity(t, "authz-probe")
	if _, err := b.Identities.SetPolicy(ctx, ents["VPN"].ID, identities.PolicyInput{Approval: ptrTo(identities.ApprovalOwner)}, "test"); err != nil {
		t.Fatal(err)
	}
	asked, err := b.Requests.Submit(ctx, requests.Request{Type: requests.CreateAccount, BeneficiaryType: "identity", BeneficiaryID: probe.ID,
		ConnectorID: dir.ID, Entitlements: []string{ents["VPN"].ID}, Justification: "x"},
		requests.StartOpts{Trigger: requests.TriggerSubmission, Actor: users["probe"].Username, By: &requests.Requester{Username: users["probe"].Username}})
	if err != nil || asked.ApprovalID == nil {
		t.Fatalf("a request that waits for the approver: %v", err)
	}
	w.fixtures = map[string]string{"approval": *asked.ApprovalID, "task": task.ID, "spare-task": spare.ID, "run": run.ID, "job": run.Jobs[0].ID,
		"draft": newDraft(), "spare-draft": newDraft(), "connector": dir.ID, "entitlement": ents["VPN"].ID,
		"identity": bob.ID, "workgroup": team.ID}

	for _, name := range authzCallers {
		c := &authzCaller{name: name}
		switch {
		case name == "anon":
		case authzScopes[name] != "":
			cl, secret, err := b.Access.CreateClient(ctx, "authz "+name, []string{authzScopes[name]}, "test")
			if err != nil {
				t.Fatal(err)
			}
			if c.bearer, _, err = b.Access.IssueToken(ctx, cl.ClientID, secret, nil); err != nil {
				t.Fatal(err)
			}
		default:
			c.user = users[name].Username
			c.cookie, c.csrf = w.signIn(t, c.user)
		}
		w.callers = append(w.callers, c)
	}
	return w
}

// authzRequest is one request a caller sends.
type authzRequest struct {
	method, path string
	htmx         bool
	csrf         string // the session's CSRF token to send; "" for none
	// signIn fills the sign-in form (POST /login) with the probe user's
	// credentials and loginToken as its token, beside the form's cookie.
	signIn     bool
	loginToken string
}

// loginCookie is the sign-in form's double-submit token as its cookie
// holds it.
const loginCookie = "authz-sign-in-form-token-0123456789abcdef"

type authzAnswer struct {
	status int
	header http.Header
	body   string
}

func (w *authzWorld) send(t *testing.T, c *authzCaller, r authzRequest) authzAnswer {
	t.Helper()
	form := url.Values{}
	var body io.Reader
	if r.method != http.MethodGet && r.method != http.MethodHead && !strings.HasPrefix(r.path, "/api/") {
		if r.csrf != "" && !r.htmx {
			form.Set("_csrf", r.csrf)
		}
		if r.signIn {
			form.Set("_csrf", r.loginToken)
			form.Set("username", "authz-probe")
			form.Set("password", w.password)
			form.Set("next", "/requests")
		}
		body = strings.NewReader(form.Encode())
	}
	req := httptest.NewRequest(r.method, r.path, body)
	if body != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if r.htmx {
		req.Header.Set("HX-Request", "true")
		if r.csrf != "" {
			req.Header.Set("X-CSRF-Token", r.csrf)
		}
	}
	if c.cookie != "" {
		req.AddCookie(&http.Cookie{Name: "provisor_session", Value: c.cookie})
	}
	if r.signIn {
		req.AddCookie(&http.Cookie{Name: "provisor_login_csrf", Value: loginCookie})
	}
	if c.bearer != "" {
		req.Header.Set("Authorization", "Bearer "+c.bearer)
	}
	resp, err := w.HTTP.Test(req, 20000)
	if err != nil {
		t.Fatalf("%s %s: %v", r.method, r.path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return authzAnswer{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

var htmlTag = regexp.MustCompile(`<[^>]*>`)

// gist is what a failure message shows of a body: the text of a page's
// main part, or the start of anything else.
func gist(body string) string {
	if _, main, ok := strings.Cut(body, `<main id="main">`); ok {
		main, _, _ = strings.Cut(main, "</main>")
		body = htmlTag.ReplaceAllString(main, " ")
	} else if strings.HasPrefix(body, "<") {
		body = htmlTag.ReplaceAllString(body, " ")
	}
	body = strings.Join(strings.Fields(body), " ")
	if len(body) > 200 {
		body = body[:200] + "…"
	}
	return body
}

// csrfRefused reports whether an answer is the refusal of a missing or
// wrong CSRF token (of a session, or of the sign-in form).
func csrfRefused(a authzAnswer) bool {
	return a.status == http.StatusForbidden &&
		(strings.Contains(a.body, "did not come from this site") || strings.Contains(a.body, "The sign-in form was out of date"))
}

// outcome names an answer with the matrix's words; the sign-in page is
// recognized by the page it is to return to (next).
func outcome(a authzAnswer, path string) string {
	next := "/login?next=" + url.QueryEscape(path)
	switch {
	case (a.status == http.StatusFound || a.status == http.StatusSeeOther) && a.header.Get("Location") == next,
		a.status == http.StatusNoContent && a.header.Get("HX-Redirect") == next:
		return "login"
	case strings.HasPrefix(a.header.Get("Location"), "/login?") || strings.HasPrefix(a.header.Get("HX-Redirect"), "/login?"):
		return "login to " + a.header.Get("Location") + a.header.Get("HX-Redirect")
	case a.status == http.StatusUnauthorized:
		return "401"
	case a.status == http.StatusForbidden:
		return "403"
	case a.status == http.StatusNotFound:
		return "hide"
	case a.status < 400:
		return "ok"
	}
	return fmt.Sprint(a.status)
}

func wantMet(want, got string, status int) bool {
	if status >= 500 {
		return false
	}
	switch want {
	case "pass":
		return got != "401" && got != "403" && !strings.HasPrefix(got, "login")
	default:
		return want == got
	}
}

// requestPath fills a route's parameters with the values of an entry.
func (w *authzWorld) requestPath(t *testing.T, e authzEntry, params []string) string {
	t.Helper()
	if e.method == "USE" {
		return e.params
	}
	list, query, _ := strings.Cut(e.params, "?")
	var values []string
	if list != "-" && list != "" {
		values = strings.Split(list, ",")
		if len(values) != len(params) {
			t.Fatalf("app/authz_test.go:%d: %d values in PARAMS for the route's parameters %v", e.line, len(values), params)
		}
	}
	segs := strings.Split(e.path, "/")
	n := 0
	for i, s := range segs {
		if !strings.HasPrefix(s, ":") && !strings.HasPrefix(s, "*") && !strings.HasPrefix(s, "+") {
			continue
		}
		v := uuid.NewString()
		if values != nil {
			v = values[n]
			if name, ok := strings.CutPrefix(v, "{"); ok {
				name = strings.TrimSuffix(name, "}")
				if v, ok = w.fixtures[name]; !ok {
					t.Fatalf("app/authz_test.go:%d: no fixture {%s}", e.line, name)
				}
			}
		}
		segs[i] = v
		n++
	}
	if query == "" {
		return strings.Join(segs, "/")
	}
	for name, v := range w.fixtures {
		query = strings.ReplaceAll(query, "{"+name+"}", url.QueryEscape(v))
	}
	return strings.Join(segs, "/") + "?" + query
}

// routeKeys reads the server's routes from Fiber's stack: the routes of
// every method, and the paths of the middleware mounts (app.Use). A HEAD
// route that Fiber added beside a GET one is the GET route's.
func routeKeys(w *authzWorld) (map[string][]string, map[string]bool) {
	routes := map[string][]string{}
	count := map[string]int{}
	for _, r := range w.HTTP.GetRoutes(true) {
		k := r.Method + " " + r.Path
		routes[k] = r.Params
		count[k]++
	}
	for k := range routes {
		if p, ok := strings.CutPrefix(k, "HEAD "); ok {
			if _, ok := routes["GET "+p]; ok {
				delete(routes, k)
			}
		}
	}
	// Fiber keeps no public mark of a mount: a mount is a route of the
	// full stack that the stack without mounts does not have.
	mounts := map[string]bool{}
	for _, r := range w.HTTP.GetRoutes(false) {
		k := r.Method + " " + r.Path
		if count[k] > 0 {
			count[k]--
			continue
		}
		mounts["USE "+r.Path] = true
	}
	return routes, mounts
}

// TestAuthorizationMatrix checks authzMatrix: every route of the server
// has an entry, and every caller gets what its column says.
func TestAuthorizationMatrix(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect string) {
		t.Parallel()
		w := newAuthzWorld(t, dialect)
		entries := parseAuthzMatrix(t)
		routes, mounts := routeKeys(w)

		// Every route has an entry, and every entry a route.
		have := map[string]bool{}
		for _, e := range entries {
			k := e.key()
			have[k] = true
			_, isRoute := routes[k]
			if !isRoute && !mounts[k] {
				t.Errorf("app/authz_test.go:%d: %s is no route of the server: remove the line, or fix it", e.line, k)
			}
		}
		var missing []string
		for k := range routes {
			if !have[k] {
				missing = append(missing, k)
			}
		}
		for k := range mounts {
			if !have[k] {
				missing = append(missing, k)
			}
		}
		slices.Sort(missing)
		for _, k := range missing {
			t.Errorf("route %s has no entry in authzMatrix (app/authz_test.go): add a line saying what each caller "+
				"(anonymous, each role, each API scope) gets from it", k)
		}

		for _, e := range entries {
			params, known := routes[e.key()]
			if !known && !mounts[e.key()] {
				continue
			}
			path := w.requestPath(t, e, params)
			method := e.method
			if method == "USE" {
				method = http.MethodGet
			}
			portal := !strings.HasPrefix(path, "/api/")
			changes := method != http.MethodGet && method != http.MethodHead
			variants := []bool{false}
			if portal {
				variants = []bool{false, true}
			}
			for i, c := range w.callers {
				for _, htmx := range variants {
					r := authzRequest{method: method, path: path, htmx: htmx, csrf: c.csrf}
					if e.key() == "POST /login" {
						r.signIn, r.loginToken = true, loginCookie
					}
					sender := c
					if c.cookie != "" && endsSession[e.key()] {
						sender = w.freshSession(t, c)
						r.csrf = sender.csrf
					}
					a := w.send(t, sender, r)
					got := outcome(a, path)
					how := ""
					if htmx {
						how = " (htmx)"
					}
					if !wantMet(e.want[i], got, a.status) {
						t.Errorf("%s %s as %s%s: got %s (%d), want %s (app/authz_test.go:%d): %s",
							method, path, c.name, how, got, a.status, e.want[i], e.line, gist(a.body))
					}
					if portal && changes && csrfRefused(a) {
						t.Errorf("%s %s as %s%s: the CSRF token sent was refused, so the matrix does not check the role", method, path, c.name, how)
					}
				}
			}
		}

		// Every portal route that changes something refuses a request
		// without the CSRF token, or with a wrong one, from every session;
		// the sign-in form from anyone.
		for _, e := range entries {
			params, known := routes[e.key()]
			if !known || e.method == http.MethodGet || e.method == http.MethodHead || strings.HasPrefix(e.path, "/api/") {
				continue
			}
			path := w.requestPath(t, e, params)
			login := e.key() == "POST /login"
			for _, c := range w.callers {
				if c.cookie == "" && !(login && c.bearer == "") {
					continue
				}
				for _, token := range []string{"", "forged-" + c.csrf} {
					for _, htmx := range []bool{false, true} {
						sender := c
						if c.cookie != "" && endsSession[e.key()] {
							sender = w.freshSession(t, c)
						}
						r := authzRequest{method: e.method, path: path, htmx: htmx, csrf: token}
						if login {
							// The sign-in form's token is its own: the form
							// sends none, or one its cookie does not hold.
							r = authzRequest{method: e.method, path: path, htmx: htmx, signIn: true}
							if token != "" {
								r.loginToken = "forged-" + loginCookie
							}
						}
						a := w.send(t, sender, r)
						if !csrfRefused(a) {
							t.Errorf("%s %s as %s (htmx %v) with CSRF token %q: %d, want the CSRF refusal: %s",
								e.method, path, c.name, htmx, token, a.status, gist(a.body))
						}
					}
				}
			}
		}
	})
}

func ptrTo[T any](v T) *T { return &v }

// Every API scope has its column.
func TestAuthorizationMatrixHasEveryScope(t *testing.T) {
	t.Parallel()
	for _, sc := range access.AllScopes {
		found := false
		for _, v := range authzScopes {
			found = found || v == sc
		}
		if !found {
			t.Errorf("scope %s has no column in authzMatrix (app/authz_test.go): add one", sc)
		}
	}
}
