package api_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/provisor/provisor/access"
	"github.com/provisor/provisor/app/apptest"
	"github.com/provisor/provisor/database/dbtest"
	"github.com/provisor/provisor/requests"
)

type harness struct {
	*apptest.Bundle
	t *testing.T
}

// do sends a request through the Fiber app and returns status and body.
func (h harness) do(method, path, token, contentType, body string) (int, http.Header, string) {
	h.t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, path, r)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := h.HTTP.Test(req, 10000)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

func (h harness) json(method, path, token, body string, want int, out any) {
	h.t.Helper()
	ct := ""
	if body != "" {
		ct = "application/json"
	}
	status, _, got := h.do(method, path, token, ct, body)
	if status != want {
		h.t.Fatalf("%s %s = %d, want %d: %s", method, path, status, want, got)
	}
	if out != nil {
		if err := json.Unmarshal([]byte(got), out); err != nil {
			h.t.Fatalf("%s %s: decode %q: %v", method, path, got, err)
		}
	}
}

// token creates a client with scopes and returns a bearer token for it.
func (h harness) token(scopes ...string) string {
	h.t.Helper()
	c, secret, err := h.Access.CreateClient(h.Ctx, "client "+strings.Join(scopes, "+"), scopes, "test")
	if err != nil {
		h.t.Fatal(err)
	}
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {c.ClientID}, "client_secret": {secret}}
	status, hdr, body := h.do("POST", "/api/v1/token", "", "application/x-www-form-urlencoded", form.Encode())
	if status != 200 || hdr.Get("Cache-Control") != "no-store" {
		h.t.Fatalf("token: %d %s", status, body)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
		ExpiresIn   int    `json:"expires_in"`
		Scope       string `json:"scope"`
	}
	_ = json.Unmarshal([]byte(body), &tok)
	if tok.TokenType != "Bearer" || tok.ExpiresIn != 3600 || tok.Scope != strings.Join(scopes, " ") {
		h.t.Fatalf("token answer %s", body)
	}
	return tok.AccessToken
}

func TestTokenGrant(t *testing.T) {
	t.Parallel()
	h := harness{apptest.New(t, "sqlite", &apptest.Options{NoStart: true}), t}
	c, secret, err := h.Access.CreateClient(h.Ctx, "ci", []string{access.ScopeRead, access.ScopeTrigger}, "test")
	if err != nil {
		t.Fatal(err)
	}
	var stored string
	h.DB.Gorm.Table("api_clients").Select("secret_hash").Where("id = ?", c.ID).Scan(&stored)
	if stored == "" || strings.Contains(stored, secret) {
		t.Errorf("secret stored as %q", stored)
	}
	basic := func(id, pw string) string {
		req := httptest.NewRequest("POST", "/api/v1/token", strings.NewReader("grant_type=client_credentials"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(pw))
		resp, err := h.HTTP.Test(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		return fmt.Sprintf("%d %s", resp.StatusCode, b)
	}
	if got := basic(c.ClientID, secret); !strings.HasPrefix(got, "200 ") {
		t.Errorf("basic auth: %s", got)
	}
	if got := basic(c.ClientID, secret+"x"); !strings.HasPrefix(got, "401 ") || !strings.Contains(got, "invalid_client") {
		t.Errorf("wrong secret: %s", got)
	}
	for _, c := range []struct{ body, want string }{
		{"grant_type=password&client_id=" + c.ClientID + "&client_secret=" + secret, "400 unsupported_grant_type"},
		{"grant_type=client_credentials", "401 invalid_client"},
		{"grant_type=client_credentials&client_id=" + c.ClientID + "&client_secret=" + secret + "&scope=jobs", "400 invalid_scope"},
		{"grant_type=client_credentials&client_id=" + c.ClientID + "&client_secret=" + secret + "&scope=read", "200 "},
	} {
		status, _, body := h.do("POST", "/api/v1/token", "", "application/x-www-form-urlencoded", c.body)
		var e struct {
			Error string `json:"error"`
		}
		_ = json.Unmarshal([]byte(body), &e)
		if got := fmt.Sprintf("%d %s", status, e.Error); got != c.want {
			t.Errorf("%s: %s (%s), want %s", c.body, got, body, c.want)
		}
	}
	// A revoked client's tokens stop working.
	tok := h.token(access.ScopeRead)
	h.json("GET", "/api/v1/tasks", tok, "", 200, nil)
	h.DB.Gorm.Exec("UPDATE api_clients SET revoked_at = CURRENT_TIMESTAMP")
	h.json("GET", "/api/v1/tasks", tok, "", 401, nil)
}

// Every route answers anonymous callers 401, callers without the scope
// 403, and callers with it something else.
func TestEveryRouteChecksTokenAndScope(t *testing.T) {
	t.Parallel()
	h := harness{apptest.New(t, "sqlite", &apptest.Options{NoStart: true}), t}
	none := h.token(access.ScopeRequests) // a scope that opens only POST /requests
	all := h.token(access.AllScopes...)
	id := "00000000-0000-4000-8000-000000000000"
	routes := []struct {
		method, path, scope string
	}{
		{"GET", "/api/v1/identities", "read"}, {"POST", "/api/v1/identities", "directory"}, {"GET", "/api/v1/identities/" + id, "read"},
		{"GET", "/api/v1/workgroups", "read"}, {"POST", "/api/v1/workgroups", "directory"}, {"GET", "/api/v1/workgroups/" + id, "read"},
		{"POST", "/api/v1/workgroups/" + id + "/members", "directory"},
		{"GET", "/api/v1/connectors", "read"}, {"POST", "/api/v1/connectors", "directory"}, {"GET", "/api/v1/connectors/" + id, "read"},
		{"PATCH", "/api/v1/connectors/" + id, "directory"}, {"POST", "/api/v1/connectors/" + id + "/check", "directory"},
		{"GET", "/api/v1/connectors/" + id + "/entitlements", "read"}, {"POST", "/api/v1/connectors/" + id + "/entitlements", "directory"},
		{"GET", "/api/v1/request-instances", "read"}, {"GET", "/api/v1/request-instances/" + id, "read"},
		{"POST", "/api/v1/request-instances/" + id + "/cancel", "jobs"}, {"POST", "/api/v1/request-instances/" + id + "/force-end", "jobs"},
		{"GET", "/api/v1/connector-jobs", "read"}, {"POST", "/api/v1/connector-jobs/" + id + "/cancel", "jobs"},
		{"POST", "/api/v1/connector-jobs/" + id + "/retry", "jobs"},
		{"GET", "/api/v1/tasks", "read"}, {"POST", "/api/v1/tasks", "tasks"}, {"GET", "/api/v1/tasks/" + id, "read"},
		{"PATCH", "/api/v1/tasks/" + id, "tasks"}, {"DELETE", "/api/v1/tasks/" + id, "tasks"},
		{"POST", "/api/v1/tasks/" + id + "/trigger", "trigger"}, {"GET", "/api/v1/tasks/" + id + "/history", "read"},
		{"GET", "/api/v1/audit", "read"},
	}
	var scenarios []apptest.Scenario
	for _, r := range routes {
		name := r.method + " " + r.path
		scenarios = append(scenarios,
			apptest.Scenario{Name: "anonymous " + name, Method: r.method, URL: r.path, ExpectedStatus: 401,
				ExpectedHeaders: map[string]string{"Content-Type": "application/problem+json"},
				AfterFunc: func(t testing.TB, res *apptest.Response) {
					if !strings.Contains(res.Header.Get("WWW-Authenticate"), "Bearer") {
						t.Errorf("anonymous %s: WWW-Authenticate %q", name, res.Header.Get("WWW-Authenticate"))
					}
				}},
			apptest.Scenario{Name: "bad token " + name, Method: r.method, URL: r.path, Headers: bearer("not-a-token"), ExpectedStatus: 401},
			apptest.Scenario{Name: "without scope " + name, Method: r.method, URL: r.path, Headers: bearer(none), ExpectedStatus: 403,
				ExpectedContent: []string{"needs the " + r.scope + " scope"}},
			apptest.Scenario{Name: "with every scope " + name, Method: r.method, URL: r.path, Headers: bearer(all),
				AfterFunc: func(t testing.TB, res *apptest.Response) {
					if res.Status == 401 || res.Status == 403 || res.Status >= 500 {
						t.Errorf("with every scope %s = %d %s", name, res.Status, res.Body)
					}
				}})
	}
	apptest.RunScenarios(t, h.Bundle, scenarios)
	for _, open := range []string{"/healthz", "/readyz", "/api/v1/openapi.yaml"} {
		if status, _, _ := h.do("GET", open, "", "", ""); status != 200 {
			t.Errorf("GET %s = %d", open, status)
		}
	}
	if status, _, _ := h.do("GET", "/api/v1/nothing-here", all, "", ""); status != 404 {
		t.Errorf("unknown route = %d", status)
	}
	// Routes match whatever the case; the answer is the API's.
	if status, hdr, _ := h.do("GET", "/API/V1/users", "", "", ""); status != 401 || hdr.Get("Content-Type") != "application/problem+json" {
		t.Errorf("GET /API/V1/users without a token = %d %s", status, hdr.Get("Content-Type"))
	}
}

type problem struct {
	Status int    `json:"status"`
	Title  string `json:"title"`
	Detail string `json:"detail"`
	Errors []struct {
		Field   string `json:"field"`
		Message string `json:"message"`
	} `json:"errors"`
}

func (p problem) fields() string {
	var f []string
	for _, e := range p.Errors {
		f = append(f, e.Field)
	}
	return strings.Join(f, ",")
}

// The scenario a script runs: build the directory, submit, make a task,
// trigger it, follow the run and steer it; with the errors in between.
func TestScriptScenario(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect string) {
		t.Parallel()
		h := harness{apptest.New(t, dialect, nil), t}
		tok := h.token(access.AllScopes...)

		var alice, bob struct{ ID string }
		h.json("POST", "/api/v1/identities", tok, `{"username":"alice","display_name":"Alice Martin","email":"alice@example.test"}`, 201, &alice)
		h.json("POST", "/api/v1/identities", tok, `{"username":"bob"}`, 201, &bob)
		var p problem
		h.json("POST", "/api/v1/identities", tok, `{"username":"alice","email":"nope"}`, 422, &p)
		if p.fields() != "email" {
			t.Errorf("bad email: %+v", p)
		}
		h.json("POST", "/api/v1/identities", tok, `{"username":"carol","colour":"red"}`, 422, &p)
		if p.fields() != "colour" {
			t.Errorf("unknown field: %+v", p)
		}
		if status, _, _ := h.do("POST", "/api/v1/identities", tok, "text/plain", `{"username":"x"}`); status != 415 {
			t.Errorf("text/plain body = %d", status)
		}
		if status, _, _ := h.do("POST", "/api/v1/identities", tok, "application/json", `{"username":`); status != 400 {
			t.Errorf("broken JSON = %d", status)
		}
		var wg struct{ ID string }
		h.json("POST", "/api/v1/workgroups", tok, fmt.Sprintf(`{"name":"Team","members":[%q,%q]}`, alice.ID, bob.ID), 201, &wg)
		var ids struct {
			Items []struct{ Username string }
			Total int
		}
		h.json("GET", "/api/v1/identities?q=ALI", tok, "", 200, &ids)
		if ids.Total != 1 || ids.Items[0].Username != "alice" {
			t.Errorf("search: %+v", ids)
		}

		var conn struct {
			ID      string
			Secrets []string
		}
		h.json("POST", "/api/v1/connectors", tok, `{"name":"Corp Directory","type":"internal"}`, 201, &conn)
		h.json("POST", "/api/v1/connectors", tok, `{"name":"X","type":"mainframe"}`, 422, &p)
		if p.fields() != "type" || !strings.Contains(p.Errors[0].Message, "internal") {
			t.Errorf("unknown type: %+v", p)
		}
		h.json("POST", "/api/v1/connectors", tok, `{"name":"Corp Directory","type":"internal"}`, 422, &p)
		var vpn, wiki struct{ ID string }
		h.json("POST", "/api/v1/connectors/"+conn.ID+"/entitlements", tok, `{"name":"VPN"}`, 201, &vpn)
		h.json("POST", "/api/v1/connectors/"+conn.ID+"/entitlements", tok, `{"name":"Wiki","kind":"role"}`, 201, &wiki)
		var check struct{ OK bool }
		h.json("POST", "/api/v1/connectors/"+conn.ID+"/check", tok, "", 200, &check)
		if !check.OK {
			t.Error("check of the built-in directory failed")
		}

		// A direct submission, followed to the end.
		var inst requests.Instance
		h.json("POST", "/api/v1/requests", tok, fmt.Sprintf(`{"type":"create_account","beneficiary_type":"workgroup","beneficiary_id":%q,
			"connector_id":%q,"entitlements":[%q],"justification":"new team","priority":"high"}`, wg.ID, conn.ID, vpn.ID), 201, &inst)
		if inst.Trigger != "api" || len(inst.Jobs) != 4 || inst.TriggeredBy != "api:client "+strings.Join(access.AllScopes, "+") {
			t.Errorf("submitted: %+v", inst)
		}
		h.json("POST", "/api/v1/requests", tok, `{"type":"add_entitlements","justification":""}`, 422, &p)
		if p.fields() != "beneficiary_id,beneficiary_type,connector_id,entitlements,justification" {
			t.Errorf("invalid request fields: %s", p.fields())
		}
		done := h.WaitSettled(t, inst.ID)
		var got requests.Instance
		h.json("GET", "/api/v1/request-instances/"+inst.ID, tok, "", 200, &got)
		if got.Status != "completed" || done.Status != "completed" || len(got.Jobs) != 4 || len(got.Jobs[0].Events) != 3 {
			t.Errorf("instance: %s %s", got.Status, apptest.Describe(&got))
		}

		// A task: create, bad updates, trigger, history.
		var task struct {
			ID       string
			Status   string
			NextRuns []string `json:"next_runs"`
		}
		taskBody := fmt.Sprintf(`{"name":"Wiki for Alice","request":{"type":"add_entitlements","beneficiary_type":"identity",
			"beneficiary_id":%q,"connector_id":%q,"entitlements":[%q],"justification":"docs"},"cron":"0 7 * * 1-5","timezone":"Europe/Berlin"}`,
			alice.ID, conn.ID, wiki.ID)
		h.json("POST", "/api/v1/tasks", tok, taskBody, 201, &task)
		if len(task.NextRuns) != 5 || task.Status != "idle" {
			t.Errorf("task: %+v", task)
		}
		h.json("PATCH", "/api/v1/tasks/"+task.ID, tok, `{"cron":"0 7 * *"}`, 422, &p)
		if p.fields() != "cron" {
			t.Errorf("bad cron: %+v", p)
		}
		h.json("POST", "/api/v1/tasks/"+task.ID+"/trigger", tok, "", 201, &inst)
		if inst.TaskName != "Wiki for Alice" {
			t.Errorf("trigger: %+v", inst)
		}
		h.WaitSettled(t, inst.ID)
		var hist struct {
			Items []requests.Instance
			Total int
		}
		h.json("GET", "/api/v1/tasks/"+task.ID+"/history", tok, "", 200, &hist)
		if hist.Total != 1 || hist.Items[0].ID != inst.ID {
			t.Errorf("history: %+v", hist)
		}
		var byName struct{ Items []struct{ ID string } }
		h.json("GET", "/api/v1/tasks?name="+url.QueryEscape("Wiki for Alice"), tok, "", 200, &byName)
		if len(byName.Items) != 1 || byName.Items[0].ID != task.ID {
			t.Errorf("by name: %+v", byName)
		}
		h.json("PATCH", "/api/v1/tasks/"+task.ID, tok, `{"enabled":false}`, 200, nil)
		h.json("POST", "/api/v1/tasks/"+task.ID+"/trigger", tok, "", 409, &p)
		if !strings.Contains(p.Detail, "disabled") {
			t.Errorf("trigger disabled: %+v", p)
		}

		// Time-bound access: Force End, and what cannot be done, with 409s.
		h.json("POST", "/api/v1/requests", tok, fmt.Sprintf(`{"type":"add_entitlements","beneficiary_type":"identity","beneficiary_id":%q,
			"connector_id":%q,"entitlements":[%q],"justification":"audit","duration":"2h"}`, bob.ID, conn.ID, wiki.ID), 201, &inst)
		active := h.Wait(t, inst.ID, 10*time.Second, func(i *requests.Instance) bool { return i.Status == "active" })
		h.json("POST", "/api/v1/connector-jobs/"+active.Jobs[1].ID+"/cancel", tok, "", 409, &p)
		if !strings.Contains(p.Detail, "scheduled revocation") {
			t.Errorf("cancel revocation: %+v", p)
		}
		h.json("POST", "/api/v1/connector-jobs/"+active.Jobs[0].ID+"/retry", tok, "", 409, nil)
		h.json("POST", "/api/v1/request-instances/"+inst.ID+"/force-end", tok, "", 200, nil)
		ended := h.WaitSettled(t, inst.ID)
		if ended.Status != "completed" {
			t.Errorf("after force end: %s", apptest.Describe(ended))
		}
		h.json("GET", "/api/v1/request-instances/00000000-0000-4000-8000-000000000000", tok, "", 404, &p)
		h.json("GET", "/api/v1/request-instances/not-a-uuid", tok, "", 404, nil)

		// The grouped job listing.
		var page requests.GroupPage
		h.json("GET", "/api/v1/connector-jobs?status=completed&page_size=10", tok, "", 200, &page)
		if page.TotalGroups != 3 || page.PageSize != 10 || page.Groups[0].Status == "" {
			t.Errorf("groups: %d %+v", page.TotalGroups, page)
		}
		h.json("GET", "/api/v1/connector-jobs?page_size=20", tok, "", 422, &p)
		h.json("GET", "/api/v1/connector-jobs?status=done", tok, "", 422, &p)
		var trail struct{ Total int }
		h.json("GET", "/api/v1/audit?action=request.force_end", tok, "", 200, &trail)
		if trail.Total != 1 {
			t.Errorf("audit force_end entries = %d", trail.Total)
		}
		h.json("GET", "/api/v1/audit?since=yesterday", tok, "", 422, nil)
		h.json("DELETE", "/api/v1/tasks/"+task.ID, tok, "", 204, nil)
		h.json("GET", "/api/v1/tasks/"+task.ID, tok, "", 404, nil)
	})
}
