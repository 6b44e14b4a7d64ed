// Package fuzz_test sends generated input to every route of Provisor's HTTP
// server, the JSON API and the portal's forms alike, on SQLite and on
// PostgreSQL, and fails on any answer 5xx, any panic in the server log, a
// 422 of the API that names no field, and any change to the stored data
// after a request that was refused (4xx).
//
// The routes are read from the Fiber app's route table, so a new route is
// fuzzed without a change here: with a body made for it when its path is
// known below, with bodies of every known field otherwise. Values come
// from the seed corpus first (testdata/values.txt: each value to every
// other route, in one place of it, the next value in the next place) and
// then from a random source seeded by PROVISOR_FUZZ_SEED (default fixed),
// for PROVISOR_FUZZ_N requests per database (default 600, or fewer if 15
// seconds run out first; all of them when it is set). A failure
// prints the request, to keep as a seed.
package fuzz_test

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"

	"github.com/provisor/provisor/access"
	"github.com/provisor/provisor/app/apptest"
	"github.com/provisor/provisor/database/dbtest"
	"github.com/provisor/provisor/identities"
	"github.com/provisor/provisor/requests"
	"github.com/provisor/provisor/tasks"
)

// lockedBuffer is the server log, written by the server's goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// world is a Provisor with some of everything, an API token with every
// scope and a signed-in admin's session.
type world struct {
	*apptest.Bundle
	log   *lockedBuffer
	token string
	// cookie and csrf are the admin's session; loginCookie and loginCSRF
	// the sign-in form's.
	cookie, csrf           string
	loginCookie, loginCSRF string
	// ids by kind: the ids of what exists, for paths and bodies.
	ids map[string][]string
	// snapQuery reads the tables a refusal must leave alone.
	snapQuery string
}

func setup(t *testing.T, dialect string) *world {
	log := &lockedBuffer{}
	b := apptest.New(t, dialect, &apptest.Options{NoStart: true, Log: log})
	w := &world{Bundle: b, log: log, ids: map[string][]string{}}
	add := func(kind, id string) { w.ids[kind] = append(w.ids[kind], id) }
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}

	pw := access.GeneratePassword()
	admin, err := b.Access.CreateUser(b.Ctx, access.UserInput{Username: "admin", Email: "admin@example.test", Password: pw, Role: access.RoleAdmin}, "t")
	must(err)
	// The users and the client the fuzzer may disable, reset and revoke
	// are not the ones it works as.
	victim, err := b.Access.CreateUser(b.Ctx, access.UserInput{Username: "victim", Email: "v@example.test", Password: access.GeneratePassword(), Role: access.RoleRequester}, "t")
	must(err)
	add("user", victim.ID)
	vc, _, err := b.Access.CreateClient(b.Ctx, "victim client", []string{access.ScopeRead}, "t")
	must(err)
	add("client", vc.ID)
	add("client", vc.ClientID)

	dir, ents := b.Directory(t, "Corp Directory", "VPN", "Wiki", "Admins")
	add("connector", dir.ID)
	for _, g := range []string{"VPN", "Wiki", "Admins"} {
		add("entitlement", ents[g].ID)
	}
	alice, bob, carol := b.Identity(t, "alice"), b.Identity(t, "bob"), b.Identity(t, "carol")
	for _, id := range []*identities.Identity{alice, bob, carol} {
		add("identity", id.ID)
	}
	wg := b.Workgroup(t, "Finance", alice, bob)
	add("workgroup", wg.ID)

	name, cron, tz := "Alice VPN", "0 22 * * *", "Europe/Paris"
	task, err := b.Tasks.Create(b.Ctx, tasks.Input{Name: &name, Cron: &cron, Timezone: &tz, Request: &requests.Request{Type: requests.AddEntitlements,
		BeneficiaryType: "identity", BeneficiaryID: alice.ID, ConnectorID: dir.ID, Entitlements: []string{ents["VPN"].ID}, Justification: "x"}}, "admin")
	must(err)
	add("task", task.ID)
	inst, err := b.Tasks.Trigger(b.Ctx, task.ID, requests.TriggerManual, "admin")
	must(err)
	add("instance", inst.ID)
	for _, j := range inst.Jobs {
		add("job", j.ID)
	}
	inst2 := b.Submit(t, requests.Request{Type: requests.AddEntitlements, BeneficiaryType: "workgroup", BeneficiaryID: wg.ID,
		ConnectorID: dir.ID, Entitlements: []string{ents["Wiki"].ID}, Duration: "8h"})
	add("instance", inst2.ID)
	for _, j := range inst2.Jobs {
		add("job", j.ID)
	}
	for range 3 {
		d, err := b.Requests.NewDraft(b.Ctx, admin.ID, requests.AddEntitlements)
		must(err)
		add("draft", d.ID)
	}
	// Another user's draft: discarding it is refused (404), and it stays.
	d, err := b.Requests.NewDraft(b.Ctx, victim.ID, requests.LockAccount)
	must(err)
	add("draft", d.ID)

	// A request of the victim's that waits for an admin's approval.
	victimID := b.Identity(t, "victim")
	approval := identities.ApprovalAdmin
	_, err = b.Identities.SetPolicy(b.Ctx, ents["Admins"].ID, identities.PolicyInput{Approval: &approval}, "t")
	must(err)
	asked, err := b.Requests.Submit(b.Ctx, requests.Request{Type: requests.CreateAccount, BeneficiaryType: "identity", BeneficiaryID: victimID.ID,
		ConnectorID: dir.ID, Entitlements: []string{ents["Admins"].ID}, Justification: "x"},
		requests.StartOpts{Trigger: requests.TriggerSubmission, Actor: "victim", By: &requests.Requester{Username: "victim"}})
	must(err)
	add("approval", *asked.ApprovalID)

	c, secret, err := b.Access.CreateClient(b.Ctx, "fuzzer", access.AllScopes, "t")
	must(err)
	w.token = w.apiToken(t, c.ClientID, secret)

	sess, token, err := b.Access.SignIn(b.Ctx, "admin", pw, "192.0.2.1")
	must(err)
	w.cookie, w.csrf = token, sess.CSRFToken
	w.signInForm(t)
	return w
}

func (w *world) apiToken(t *testing.T, id, secret string) string {
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {id}, "client_secret": {secret}}
	req, _ := http.NewRequest("POST", "/api/v1/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := w.HTTP.Test(req, 20000)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || tok.AccessToken == "" {
		t.Fatalf("token: %d %v", resp.StatusCode, err)
	}
	return tok.AccessToken
}

var csrfField = regexp.MustCompile(`name="_csrf" value="([^"]+)"`)

// signInForm reads the sign-in form's CSRF cookie and field.
func (w *world) signInForm(t *testing.T) {
	req, _ := http.NewRequest("GET", "/login", nil)
	resp, err := w.HTTP.Test(req, 20000)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, c := range resp.Cookies() {
		if c.Name == "provisor_login_csrf" {
			w.loginCookie = c.Value
		}
	}
	if m := csrfField.FindSubmatch(body); m != nil {
		w.loginCSRF = string(m[1])
	}
	if w.loginCookie == "" || w.loginCSRF == "" {
		t.Fatalf("no sign-in CSRF: %d", resp.StatusCode)
	}
}

// everywhere is how many values of the corpus, its first ones, go to every
// place of every route; perSlot how many of the others go to each.
const everywhere, perSlot = 3, 5

// corpus reads testdata/values.txt.
func corpus(t *testing.T) []string {
	f, err := os.Open("testdata/values.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		v, err := strconv.Unquote(line)
		if err != nil {
			t.Fatalf("testdata/values.txt:%d: not a Go string literal: %v", n, err)
		}
		out = append(out, v)
	}
	// Long values, too long for any field, built rather than stored.
	out = append(out, strings.Repeat("€", 2000), strings.Repeat("€", 2001), strings.Repeat("x", 4001), strings.Repeat("a\x00", 600))
	return out
}

// skipped are routes the fuzzer leaves alone: signing out would end the
// session it works with.
var skipped = map[string]bool{"POST /logout": true}

// route is one entry of the route table.
type route struct{ method, path string }

func routes(app *fiber.App) []route {
	seen := map[route]bool{}
	var out []route
	for _, r := range app.GetRoutes(true) {
		k := route{r.Method, r.Path}
		if seen[k] || skipped[r.Method+" "+r.Path] || r.Method == "HEAD" {
			continue
		}
		seen[k] = true
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].method+out[i].path < out[j].method+out[j].path })
	return out
}

// gen makes values: from the corpus, or random.
type gen struct {
	r      *rand.Rand
	corpus []string
	w      *world
	// fixed, when set, is the value the slot gets (corpus phase): the
	// path's ids ("path"), the query's parameters ("query") or one field
	// of the body (its name, "request.justification" inside a request);
	// the rest is valid.
	fixed *string
	slot  string
	n     int
}

// at reports whether the value being made is the corpus value's slot.
func (g *gen) at(slot string) bool { return g.fixed != nil && g.slot == slot }

// slots are the places of a route that a corpus value goes to in turn.
func slots(r route) []string {
	var out []string
	if strings.Contains(r.path, ":") {
		out = append(out, "path")
	}
	out = append(out, "query")
	fs, ok := bodies[r.method+" "+r.path]
	if r.method == "GET" || !ok {
		return out
	}
	names := make([]string, 0, len(fs))
	for k, f := range fs {
		if f.kind == fRequest {
			for sub := range requestFields {
				names = append(names, k+"."+sub)
			}
			continue
		}
		names = append(names, k)
	}
	sort.Strings(names)
	return append(out, names...)
}

func (g *gen) pick(s []string) string { return s[g.r.Intn(len(s))] }

// text is a value for a text field.
func (g *gen) text() string {
	switch g.r.Intn(10) {
	case 0, 1, 2, 3:
		return g.pick(g.corpus)
	case 4:
		b := make([]byte, g.r.Intn(20))
		g.r.Read(b)
		return string(b)
	case 5:
		var sb strings.Builder
		for range g.r.Intn(12) {
			sb.WriteRune(g.rune())
		}
		return sb.String()
	case 6:
		return strings.Repeat(g.pick([]string{"x", "€", "ab ", "\x00"}), g.r.Intn(5000))
	}
	g.n++
	return fmt.Sprintf("Fuzz %d", g.n)
}

var runes = []rune("a€😀\u0000\u0001\n\r\t \u00e9\u200b\u2028\ufeffZ9-_.@:/%'\"<>\\")

func (g *gen) rune() rune { return runes[g.r.Intn(len(runes))] }

// id is a value for an id of kind: mostly one that exists.
func (g *gen) id(kind string) string {
	if g.fixed != nil {
		if g.slot == "path" {
			return *g.fixed
		}
		return g.pick(append(g.w.ids[kind], uuid.NewString()))
	}
	if g.r.Intn(10) < 7 {
		if ids := g.w.ids[kind]; len(ids) > 0 {
			return g.pick(ids)
		}
	}
	switch g.r.Intn(4) {
	case 0:
		return uuid.NewString()
	case 1:
		kinds := make([]string, 0, len(g.w.ids))
		for k := range g.w.ids {
			kinds = append(kinds, k)
		}
		sort.Strings(kinds)
		return g.pick(g.w.ids[g.pick(kinds)]) // an id of another kind
	}
	return g.text()
}

// kindOf guesses the kind of an id from the field or path segment naming it.
func kindOf(name string) string {
	switch {
	case strings.Contains(name, "identit"), strings.Contains(name, "member"), strings.Contains(name, "manager"),
		strings.Contains(name, "owner"), strings.Contains(name, "beneficiary"), strings.Contains(name, "recipient"):
		return "identity"
	case strings.Contains(name, "workgroup"):
		return "workgroup"
	case strings.Contains(name, "connector"):
		return "connector"
	case strings.Contains(name, "entitlement"):
		return "entitlement"
	case strings.Contains(name, "task"):
		return "task"
	case strings.Contains(name, "request-instance"), strings.Contains(name, "instance"), name == "jobs", name == "requests":
		return "instance"
	case name == "job", strings.Contains(name, "connector-job"):
		return "job"
	case strings.Contains(name, "draft"):
		return "draft"
	case strings.Contains(name, "user"):
		return "user"
	case strings.Contains(name, "api-client"):
		return "client"
	case strings.Contains(name, "approval"):
		return "approval"
	}
	return ""
}

// path fills a route's parameters.
func (g *gen) path(p string) string {
	segs := strings.Split(p, "/")
	for i, s := range segs {
		if !strings.HasPrefix(s, ":") {
			continue
		}
		name := strings.TrimSuffix(strings.TrimPrefix(s, ":"), "?")
		var v string
		switch {
		case name == "step":
			v = g.pick([]string{"beneficiary", "connector", "access", "details", "review"})
			if g.at("path") {
				v = *g.fixed
			} else if g.fixed == nil && g.r.Intn(3) == 0 {
				v = g.text()
			}
		case name == "job":
			v = g.id("job")
		default:
			v = g.id(kindOf(segs[i-1]))
		}
		segs[i] = url.PathEscape(short(v))
	}
	return strings.Join(segs, "/")
}

// short cuts a value for a URL: a request line longer than the server's
// read buffer (4 KB) is refused before Provisor sees it.
func short(v string) string {
	if r := []rune(v); len(r) > 100 {
		return string(r[:100])
	}
	return v
}

// queryNames are the query parameters the routes read.
var queryNames = []string{"q", "name", "status", "limit", "offset", "page", "page_size", "size", "task_id", "instance_id", "connector_id",
	"actor", "action", "since", "until", "cron", "timezone", "connector", "next", "open", "type", "tz"}

func (g *gen) query() string {
	v := url.Values{}
	n := g.r.Intn(4)
	if g.fixed != nil {
		if g.slot != "query" {
			return ""
		}
		for i := range 3 {
			v.Set(queryNames[(g.n+i)%len(queryNames)], short(*g.fixed))
		}
		g.n++
		return "?" + v.Encode()
	}
	for range n {
		name := g.pick(queryNames)
		if strings.HasSuffix(name, "_id") || name == "connector" {
			v.Set(name, short(g.id(kindOf(name))))
		} else {
			v.Set(name, short(g.text()))
		}
	}
	if len(v) == 0 {
		return ""
	}
	return "?" + v.Encode()
}

// field kinds of bodies.
const (
	fText = iota
	fID
	fIDs
	fBool
	fEnum
	fRequest
	fNotify
	fObject
)

type field struct {
	kind int
	id   string   // the kind of id, for fID and fIDs
	enum []string // valid values, for fEnum
}

func txt() field             { return field{kind: fText} }
func id(kind string) field   { return field{kind: fID, id: kind} }
func ids(kind string) field  { return field{kind: fIDs, id: kind} }
func enum(v ...string) field { return field{kind: fEnum, enum: v} }
func boolean() field         { return field{kind: fBool} }
func object() field          { return field{kind: fObject} }
func fields(kv ...any) map[string]field {
	m := map[string]field{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i].(string)] = kv[i+1].(field)
	}
	return m
}

var requestFields = fields("type", enum("add_entitlements", "remove_entitlements", "create_account", "lock_account", "unlock_account", "delete_account", "data_import"),
	"beneficiary_type", enum("identity", "workgroup"), "beneficiary_id", id("identity"), "connector_id", id("connector"),
	"entitlements", ids("entitlement"), "justification", txt(), "priority", enum("low", "normal", "high", "critical"),
	"duration", enum("8h", "30d", "2w", ""), "import_mode", enum("", "full", "delta"))

var taskFields = fields("name", txt(), "description", txt(), "request", field{kind: fRequest}, "cron", enum("0 22 * * *", "*/15 * * * *", ""),
	"timezone", enum("UTC", "Europe/Paris", ""), "schedule_enabled", boolean(), "notify", field{kind: fNotify}, "enabled", boolean())

// bodies are the fields each route takes, by method and path: JSON for the
// API, a form for the portal. A route not named here gets a few of every
// field.
var bodies = map[string]map[string]field{
	"POST /api/v1/identities":                  fields("username", txt(), "display_name", txt(), "email", enum("fuzz@example.test", "", "x"), "manager_id", id("identity")),
	"PATCH /api/v1/identities/:id":             fields("manager_id", id("identity")),
	"POST /api/v1/workgroups":                  fields("name", txt(), "description", txt(), "members", ids("identity"), "owner_id", id("identity")),
	"PATCH /api/v1/workgroups/:id":             fields("owner_id", id("identity")),
	"POST /api/v1/workgroups/:id/members":      fields("members", ids("identity")),
	"POST /api/v1/connectors":                  fields("name", txt(), "type", enum("internal", "ldap", "ad"), "description", txt(), "settings", object(), "secrets", object(), "enabled", boolean()),
	"PATCH /api/v1/connectors/:id":             fields("name", txt(), "description", txt(), "settings", object(), "enabled", boolean()),
	"POST /api/v1/connectors/:id/check":        fields("name", txt(), "type", enum("internal", "ldap"), "settings", object()),
	"POST /api/v1/connectors/:id/entitlements": fields("name", txt(), "external_id", txt(), "kind", enum("group", "role"), "description", txt()),
	"PATCH /api/v1/entitlements/:id":           fields("owner_identity_id", id("identity"), "owner_workgroup_id", id("workgroup"), "sensitivity", enum("normal", "privileged"), "approval", enum("none", "owner", "admin", "owner_then_admin"), "max_duration", enum("8h", "30d", ""), "requestable", boolean()),
	"POST /api/v1/requests":                    requestFields,
	"POST /api/v1/tasks":                       taskFields,
	"PATCH /api/v1/tasks/:id":                  taskFields,
	"POST /api/v1/tasks/:id/trigger":           fields("source", enum("api", "cli")),
	"POST /api/v1/users/:id/role":              fields("role", enum("requester", "helpdesk", "admin")),
	"POST /login":                              fields("username", enum("admin", "victim"), "password", txt(), "next", enum("/requests", "/tasks")),
	"POST /requests/new":                       fields("type", enum("add_entitlements", "create_account", "lock_account")),
	"POST /requests/drafts/:id/:step":          fields("beneficiary_type", enum("identity", "workgroup"), "beneficiary_id", id("identity"), "connector_id", id("connector"), "entitlements", ids("entitlement"), "justification", txt(), "priority", enum("low", "normal", "high"), "duration", enum("8h", "30d", ""), "task_name", txt(), "description", txt(), "action", enum("next", "back", "search", "submit", "task"), "q", txt()),
	"POST /tasks/:id":                          fields("name", txt(), "description", txt()),
	"POST /tasks/:id/notify":                   fields("enabled", enum("on", ""), "recipients", ids("identity"), "when", enum("always", "failure", "success")),
	"POST /tasks/:id/schedule":                 fields("cron", enum("0 22 * * *", "*/5 * * * *", ""), "timezone", enum("UTC", "Europe/Paris"), "schedule_enabled", enum("on", "")),
	"POST /connectors/new":                     fields("name", txt(), "type", enum("internal"), "description", txt(), "settings", txt(), "enabled", enum("on", "")),
	"POST /connectors/:id":                     fields("name", txt(), "description", txt(), "settings", txt(), "enabled", enum("on", "")),
	"POST /connectors/:id/entitlements":        fields("ent_name", txt(), "ent_external_id", txt(), "ent_kind", enum("group", "role"), "ent_description", txt()),
	"POST /entitlements/:id":                   fields("owner", id("identity"), "sensitivity", enum("normal", "privileged"), "approval", enum("none", "admin"), "max_duration", enum("8h", ""), "requestable", enum("on", "")),
	"POST /identities":                         fields("username", txt(), "display_name", txt(), "email", enum("fuzz@example.test", "", "x")),
	"POST /workgroups":                         fields("name", txt(), "description", txt(), "members", ids("identity")),
	"POST /workgroups/:id/members":             fields("members", ids("identity")),
	"POST /imports/:id/decide":                 fields("decision", enum("approve", "reject")),
	"POST /api/v1/approvals/:id/approve":       fields("comment", txt()),
	"POST /api/v1/approvals/:id/deny":          fields("comment", txt()),
	"POST /api/v1/approvals/:id/withdraw":      fields("comment", txt()),
	"POST /approvals/:id/approve":              fields("comment", txt()),
	"POST /approvals/:id/deny":                 fields("comment", txt()),
	"POST /approvals/:id/withdraw":             fields("comment", txt()),
	"POST /identities/:id/manager":             fields("action", enum("set", "clear"), "manager_id", id("identity")),
	"POST /workgroups/:id/owner":               fields("action", enum("set", "clear"), "owner_id", id("identity")),
}

// everyField is what a route not in bodies gets a few of.
var everyField = func() map[string]field {
	m := map[string]field{}
	for _, b := range bodies {
		for k, f := range b {
			m[k] = f
		}
	}
	return m
}()

// value makes a field's value: valid mostly, unless mutate.
func (g *gen) value(f field, mutate bool) any {
	if !mutate && (g.fixed != nil || g.r.Intn(2) == 0) {
		return g.good(f)
	}
	if mutate && g.r.Intn(4) == 0 {
		// The wrong type.
		return g.pick2([]any{nil, 42, -1.5, true, []any{g.text()}, map[string]any{"x": g.text()}, g.text(), strings.Repeat("[", 100)})
	}
	switch f.kind {
	case fText:
		if mutate {
			return g.text()
		}
		g.n++
		return fmt.Sprintf("Fuzz %d", g.n)
	case fID:
		if mutate {
			return g.id(f.id)
		}
		return g.pick(append(g.w.ids[f.id], ""))
	case fIDs:
		var out []any
		for range g.r.Intn(3) + 1 {
			if mutate {
				out = append(out, g.id(f.id))
			} else if ids := g.w.ids[f.id]; len(ids) > 0 {
				out = append(out, g.pick(ids))
			}
		}
		return out
	case fBool:
		return g.r.Intn(2) == 0
	case fEnum:
		if mutate {
			return g.text()
		}
		return g.pick(f.enum)
	case fRequest:
		return g.object(requestFields, mutate, "request.")
	case fNotify:
		return map[string]any{"enabled": g.r.Intn(2) == 0, "recipients": g.value(ids("identity"), mutate), "when": g.value(enum("always", "failure", "success"), mutate)}
	case fObject:
		m := map[string]any{}
		for range g.r.Intn(3) {
			k := g.pick([]string{"base_dn", "url", "bind_dn", "host", "admin_group_dn", "x"})
			if mutate && g.r.Intn(3) == 0 {
				k = g.text()
			}
			m[k] = g.text()
		}
		return m
	}
	return nil
}

// good is a value of f that goes with the good values of the other fields
// of its body: the first of an enum, the first id of a kind, a fresh name.
func (g *gen) good(f field) any {
	switch f.kind {
	case fText:
		g.n++
		return fmt.Sprintf("fuzz%d", g.n)
	case fID:
		return g.w.ids[f.id][0]
	case fIDs:
		return []any{g.w.ids[f.id][0]}
	case fBool:
		return true
	case fEnum:
		return f.enum[0]
	case fRequest:
		return g.object(requestFields, false, "request.")
	case fNotify:
		return map[string]any{"enabled": true, "recipients": []any{g.w.ids["identity"][0]}, "when": "always"}
	case fObject:
		return map[string]any{}
	}
	return nil
}

func (g *gen) pick2(s []any) any { return s[g.r.Intn(len(s))] }

// object makes a body of fs: every field valid, or some of them mutated,
// dropped or unknown.
func (g *gen) object(fs map[string]field, mutate bool, prefix string) map[string]any {
	names := make([]string, 0, len(fs))
	for k := range fs {
		names = append(names, k)
	}
	sort.Strings(names)
	out := map[string]any{}
	for _, k := range names {
		if g.fixed != nil {
			switch {
			case !g.at(prefix + k):
				out[k] = g.value(fs[k], false)
			case fs[k].kind == fIDs:
				out[k] = []any{*g.fixed}
			default:
				out[k] = *g.fixed
			}
			continue
		}
		if mutate && g.r.Intn(5) == 0 {
			continue
		}
		out[k] = g.value(fs[k], mutate && g.r.Intn(3) == 0)
	}
	if mutate && g.fixed == nil && g.r.Intn(8) == 0 {
		out[g.text()] = g.text()
	}
	return out
}

// probe is one request.
type probe struct {
	method, target, contentType string
	body                        []byte
	headers                     map[string]string
	auth                        string // "token", "session", "none", "bad"
}

func (p probe) String() string {
	return fmt.Sprintf("%s %s (%s, auth %s, headers %v) body %q", p.method, p.target, p.contentType, p.auth, p.headers, p.body)
}

// make builds a probe of r.
func (g *gen) make(r route, mutate bool) probe {
	api := strings.HasPrefix(r.path, "/api/")
	p := probe{method: r.method, target: g.path(r.path), headers: map[string]string{}, auth: "session"}
	if api {
		p.auth = "token"
	}
	if g.fixed == nil && g.r.Intn(30) == 0 {
		p.auth = g.pick([]string{"none", "bad"})
	}
	if r.method == "GET" || g.r.Intn(5) == 0 || g.at("query") {
		p.target += g.query()
	}
	fs, known := bodies[r.method+" "+r.path]
	if !known {
		fs = map[string]field{}
		for range g.r.Intn(4) {
			names := make([]string, 0, len(everyField))
			for k := range everyField {
				names = append(names, k)
			}
			sort.Strings(names)
			k := g.pick(names)
			fs[k] = everyField[k]
		}
	}
	if r.method != "GET" && (known || g.fixed == nil && g.r.Intn(2) == 0) {
		obj := g.object(fs, mutate, "")
		if api {
			p.contentType = "application/json"
			p.body, _ = json.Marshal(obj)
			if mutate && g.fixed == nil {
				switch g.r.Intn(12) {
				case 0:
					p.body = []byte(g.text())
				case 1:
					p.contentType = "text/plain"
				case 2:
					// Raw bytes JSON cannot carry escaped: invalid UTF-8 and
					// NUL as they are, inside a string.
					p.body = []byte(`{"name":"` + "\x00\xff" + `","description":"` + "\xc3" + `"}`)
				case 3:
					p.body = append(p.body, []byte(" {}")...)
				}
			}
		} else {
			p.contentType = "application/x-www-form-urlencoded"
			form := url.Values{}
			for k, v := range obj {
				switch v := v.(type) {
				case []any:
					for _, e := range v {
						form.Add(k, fmt.Sprint(e))
					}
				case string:
					form.Set(k, v)
				case bool:
					if v {
						form.Set(k, "on")
					}
				case nil:
				default:
					b, _ := json.Marshal(v)
					form.Set(k, string(b))
				}
			}
			if r.path == "/login" {
				form.Set("_csrf", g.w.loginCSRF)
			}
			p.body = []byte(form.Encode())
		}
	}
	if g.fixed == nil && g.r.Intn(6) == 0 {
		p.headers["HX-Request"] = "true"
	}
	if g.fixed == nil && g.r.Intn(8) == 0 {
		p.headers["Idempotency-Key"] = g.pick([]string{uuid.NewString(), "key with spaces", strings.Repeat("k", 300), "\x01"})
	}
	return p
}

// send sends a probe through the Fiber app.
func (w *world) send(t *testing.T, p probe) (int, string) {
	u, err := url.Parse(p.target)
	if err != nil {
		t.Fatalf("fuzz: target %.300q: %v", p.target, err)
	}
	req := &http.Request{Method: p.method, URL: u, Host: "example.com", Header: http.Header{}, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1}
	if p.body != nil {
		req.Body = io.NopCloser(bytes.NewReader(p.body))
		req.ContentLength = int64(len(p.body))
	}
	if p.contentType != "" {
		req.Header.Set("Content-Type", p.contentType)
	}
	for k, v := range p.headers {
		req.Header[k] = []string{v}
	}
	switch p.auth {
	case "token":
		req.Header.Set("Authorization", "Bearer "+w.token)
	case "bad":
		req.Header.Set("Authorization", "Bearer nope")
		req.AddCookie(&http.Cookie{Name: "provisor_session", Value: "nope"})
	case "session":
		req.AddCookie(&http.Cookie{Name: "provisor_session", Value: w.cookie})
		req.Header.Set("X-CSRF-Token", w.csrf)
	}
	if p.target == "/login" || strings.HasPrefix(p.target, "/login?") {
		req.AddCookie(&http.Cookie{Name: "provisor_login_csrf", Value: w.loginCookie})
	}
	resp, err := w.HTTP.Test(req, 30000)
	if err != nil {
		t.Fatalf("fuzz: %s: %v", p, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// tables are what a refused request must leave as it is; volatile are
// columns that change without a change of data.
var (
	tables = []string{"accounts", "api_clients", "audit_events", "connector_jobs", "connectors", "directory_accounts", "directory_groups",
		"directory_members", "entitlements", "idempotency_keys", "identities", "imports", "job_events", "memberships", "notifications",
		"request_drafts", "request_instances", "tasks", "users", "workgroup_members", "workgroups"}
	volatile = map[string]bool{"last_used_at": true, "last_sign_in_at": true}
)

// snapshotQuery reads every row of tables in one statement: a digest of
// each table's rows on PostgreSQL, their text on SQLite.
func (w *world) snapshotQuery(t *testing.T) string {
	var parts []string
	for _, tbl := range tables {
		if w.Dialect == "postgres" {
			row := `(to_jsonb(t) - 'last_used_at' - 'last_sign_in_at')::text`
			parts = append(parts, fmt.Sprintf(`SELECT '%s', count(*), md5(coalesce(string_agg(%s, E'\n' ORDER BY %s), '')) FROM %s t`, tbl, row, row, tbl))
			continue
		}
		rows, err := w.DB.SQL.QueryContext(w.Ctx, "SELECT name FROM pragma_table_info('"+tbl+"')")
		if err != nil {
			t.Fatalf("fuzz: columns of %s: %v", tbl, err)
		}
		var cols []string
		for rows.Next() {
			var c string
			_ = rows.Scan(&c)
			if !volatile[c] {
				cols = append(cols, "quote("+c+")")
			}
		}
		rows.Close()
		parts = append(parts, fmt.Sprintf(`SELECT '%s', (SELECT count(*) FROM %s), coalesce((SELECT group_concat(r, char(10)) FROM (SELECT %s AS r FROM %s ORDER BY 1)), '')`,
			tbl, tbl, strings.Join(cols, "||'|'||"), tbl))
	}
	return strings.Join(parts, " UNION ALL ")
}

// snapshot returns every row of tables, by table: a digest of each.
func (w *world) snapshot(t *testing.T) map[string]string {
	out := map[string]string{}
	if w.snapQuery == "" {
		w.snapQuery = w.snapshotQuery(t)
	}
	rows, err := w.DB.SQL.QueryContext(w.Ctx, w.snapQuery)
	if err != nil {
		t.Fatalf("fuzz: snapshot: %v", err)
	}
	defer rows.Close()
	for rows.Next() {
		var tbl, sum string
		var n int
		if err := rows.Scan(&tbl, &n, &sum); err != nil {
			t.Fatalf("fuzz: snapshot: %v", err)
		}
		d := sha256.Sum256([]byte(sum))
		out[tbl] = fmt.Sprintf("%d rows %s", n, hex.EncodeToString(d[:8]))
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("fuzz: snapshot: %v", err)
	}
	return out
}

// refusalWrites are the routes whose refusals write on purpose, and the
// tables they write: a failed sign-in is audited, and so is a request the
// request policy refuses (request.refused); a wizard step keeps what its
// form held in the draft, also when it shows the form's problems.
var refusalWrites = map[string][]string{
	"POST /login":                     {"audit_events"},
	"POST /requests/drafts/:id/:step": {"request_drafts", "audit_events"},
	"POST /api/v1/requests":           {"audit_events"},
	"POST /api/v1/tasks":              {"audit_events"},
	"PATCH /api/v1/tasks/:id":         {"audit_events"},
}

func fuzzSeed() int64 {
	if s, err := strconv.ParseInt(os.Getenv("PROVISOR_FUZZ_SEED"), 10, 64); err == nil {
		return s
	}
	return 20260113
}

func fuzzN() int {
	if n, err := strconv.Atoi(os.Getenv("PROVISOR_FUZZ_N")); err == nil && n >= 0 {
		return n
	}
	return 600
}

// TestFuzzEveryRoute is the fuzz suite: the corpus in every field of every
// route, then random requests, on both databases.
func TestFuzzEveryRoute(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect string) {
		t.Parallel()
		w := setup(t, dialect)
		all := routes(w.HTTP)
		if len(all) < 50 {
			t.Fatalf("fuzz: %d routes in the route table; want the API's and the portal's", len(all))
		}
		seed := fuzzSeed()
		g := &gen{r: rand.New(rand.NewSource(seed)), corpus: corpus(t), w: w}
		snap := w.snapshot(t)
		failures, logSeen := 0, 0
		sent := map[string]int{}
		check := func(r route, p probe) {
			t.Helper()
			status, body := w.send(t, p)
			sent[fmt.Sprint(status/100)+"xx"]++
			fail := func(format string, a ...any) {
				t.Helper()
				failures++
				t.Errorf("fuzz (seed %d) %s: %s", seed, p, fmt.Sprintf(format, a...))
				if failures > 20 {
					t.FailNow()
				}
			}
			log := w.log.String()
			logged := log[logSeen:]
			logSeen = len(log)
			if status >= 500 {
				fail("answered %d: %.200s\nserver log: %.1000s", status, body, logged)
			}
			if strings.Contains(logged, "panic") {
				fail("panic in the server log:\n%s", logged)
			}
			if status == 422 && strings.HasPrefix(p.target, "/api/") {
				var pr struct {
					Errors []requests.FieldError `json:"errors"`
				}
				if json.Unmarshal([]byte(body), &pr) != nil || len(pr.Errors) == 0 || pr.Errors[0].Field == "" {
					fail("422 names no field: %.300s", body)
				}
			}
			if r.method == "GET" && status < 400 {
				return // reads change nothing: the snapshot stands
			}
			now := w.snapshot(t)
			if status >= 400 && status < 500 {
				var changed []string
				for _, tbl := range tables {
					if now[tbl] != snap[tbl] && !slices.Contains(refusalWrites[r.method+" "+r.path], tbl) {
						changed = append(changed, tbl+" "+snap[tbl]+" -> "+now[tbl])
					}
				}
				if len(changed) > 0 {
					fail("refused with %d, but changed %s: %.300s", status, strings.Join(changed, ", "), body)
				}
			}
			snap = now
		}

		// The corpus, one place of a route at a time (the path's ids, the
		// query, one field of the body) with the rest valid: a field whose
		// check is missing is found even when every other field has its
		// own. The first values of the corpus go to every place of every
		// route, the others in turn, a few to each place.
		k, pairs := 0, 0
		for _, r := range all {
			for _, s := range slots(r) {
				pairs++
				vals := slices.Clone(g.corpus[:everywhere])
				for range perSlot {
					vals = append(vals, g.corpus[everywhere+k%(len(g.corpus)-everywhere)])
					k++
				}
				for _, v := range vals {
					g.fixed, g.slot = &v, s
					check(r, g.make(r, true))
				}
			}
		}
		g.fixed = nil

		// Random requests: half of them valid bodies with random paths
		// and parameters, half mutated.
		deadline := time.Now().Add(15 * time.Second)
		if os.Getenv("PROVISOR_FUZZ_N") != "" {
			deadline = time.Now().Add(time.Hour) // as many as asked for
		}
		n := fuzzN()
		for i := 0; i < n && time.Now().Before(deadline); i++ {
			r := all[g.r.Intn(len(all))]
			check(r, g.make(r, g.r.Intn(2) == 0))
		}
		t.Logf("fuzz %s: seed %d, %d routes, %d places, %d corpus values; answers %v", dialect, seed, len(all), pairs, len(g.corpus), sent)
		if !slices.ContainsFunc(all, func(r route) bool { return r.path == "/api/v1/request-instances/:id/cancel" }) {
			t.Errorf("fuzz: the route table lacks /api/v1/request-instances/:id/cancel")
		}
	})
}
