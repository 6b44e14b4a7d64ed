package fuzz_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/provisor/provisor/database/dbtest"
)

// The inputs a fuzz loop of the API found before these checks, each answered the same on
// both databases: 422 naming the field, or 404.
func TestBadInputsAreRefusedAlike(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect string) {
		t.Parallel()
		w := setup(t, dialect)
		alice, dir, vpn, task := w.ids["identity"][0], w.ids["connector"][0], w.ids["entitlement"][0], w.ids["task"][0]
		api := func(method, path string, body any) (int, string) {
			t.Helper()
			p := probe{method: method, target: path, auth: "token"}
			if body != nil {
				p.contentType = "application/json"
				p.body, _ = json.Marshal(body)
			}
			return w.send(t, p)
		}
		// wantField checks a 422 that names field with a message holding want.
		wantField := func(what string, status int, body, field, want string) {
			t.Helper()
			var pr struct {
				Errors []struct{ Field, Message string } `json:"errors"`
			}
			_ = json.Unmarshal([]byte(body), &pr)
			for _, e := range pr.Errors {
				if e.Field == field && strings.Contains(e.Message, want) {
					if status != 422 {
						t.Errorf("%s: %d, want 422: %s", what, status, body)
					}
					return
				}
			}
			t.Errorf("%s: %d %s; want 422 naming %s with %q", what, status, body, field, want)
		}
		req := func(justification, duration string) map[string]any {
			return map[string]any{"type": "add_entitlements", "beneficiary_type": "identity", "beneficiary_id": alice,
				"connector_id": dir, "entitlements": []string{vpn}, "justification": justification, "duration": duration}
		}

		// 1. NUL and other control characters, named by field.
		s, b := api("POST", "/api/v1/requests", req("why\x00", ""))
		wantField("NUL in justification", s, b, "justification", "control characters")
		s, b = api("POST", "/api/v1/identities", map[string]any{"username": "nul", "display_name": "N\x00L"})
		wantField("NUL in display name", s, b, "display_name", "control characters")
		s, b = api("POST", "/api/v1/workgroups", map[string]any{"name": "W\x00G"})
		wantField("NUL in workgroup name", s, b, "name", "control characters")
		s, b = api("POST", "/api/v1/connectors/"+dir+"/entitlements", map[string]any{"name": "E\x00"})
		wantField("NUL in entitlement name", s, b, "name", "control characters")
		s, b = api("POST", "/api/v1/connectors", map[string]any{"name": "LDAP", "type": "internal", "settings": map[string]any{"x": "a\x00"}})
		wantField("NUL in connector settings", s, b, "settings.x", "NUL")
		// Search parameters are cleaned, not refused.
		for _, path := range []string{"/api/v1/tasks?q=%00", "/api/v1/tasks?name=a%00", "/api/v1/identities?q=%00%FF", "/api/v1/audit?actor=%00"} {
			if s, b := api("GET", path, nil); s != 200 {
				t.Errorf("GET %s: %d %s", path, s, b)
			}
		}

		// 2. Ids that are no UUID: 404 on every route that takes one.
		for _, path := range []string{"/api/v1/request-instances/abc/cancel", "/api/v1/request-instances/abc/force-end",
			"/api/v1/connector-jobs/abc/retry", "/api/v1/users/abc/disable", "/api/v1/api-clients/abc/revoke",
			"/api/v1/tasks/" + strings.ToUpper(task) + "/trigger", "/api/v1/tasks/%7B" + task + "%7D/trigger"} {
			if s, b := api("POST", path, nil); s != 404 {
				t.Errorf("POST %s: %d %s, want 404", path, s, b)
			}
		}

		// 3. Durations are checked before they are multiplied.
		for _, d := range []string{"213504d", "213505d", "30501w", "367d", "9223372036854775807d"} {
			s, b := api("POST", "/api/v1/requests", req("x", d))
			wantField("duration "+d, s, b, "duration", "366 days")
		}

		// 4. A schedule that never fires.
		for _, cron := range []string{"0 0 31 2 *", "0 0 30 2 *"} {
			s, b := api("PATCH", "/api/v1/tasks/"+task, map[string]any{"cron": cron})
			wantField("cron "+cron, s, b, "cron", "never fires")
		}
		if s, b := api("PATCH", "/api/v1/tasks/"+task, map[string]any{"cron": "0 0 29 2 *"}); s != 200 {
			t.Errorf("29 February: %d %s", s, b)
		}

		// 5. A time zone is checked when there is no schedule too.
		name := "No schedule"
		s, b = api("POST", "/api/v1/tasks", map[string]any{"name": name, "timezone": "<script>alert(1)</script>", "request": req("x", "")})
		wantField("time zone without cron", s, b, "timezone", "IANA")

		// 6. Lengths are characters.
		if s, b := api("POST", "/api/v1/requests", req(strings.Repeat("€", 2000), "")); s != 201 {
			t.Errorf("2000 × €: %d %s", s, b)
		}
		s, b = api("POST", "/api/v1/requests", req(strings.Repeat("€", 2001), ""))
		wantField("2001 × €", s, b, "justification", "at most 2000 characters")

		// 7. Names are one line.
		s, b = api("PATCH", "/api/v1/tasks/"+task, map[string]any{"name": "Task\r\nBcc: evil@example.test"})
		wantField("CR LF in task name", s, b, "name", "one line")
		s, b = api("POST", "/api/v1/workgroups", map[string]any{"name": "Two\nlines"})
		wantField("LF in workgroup name", s, b, "name", "one line")

		// 8. Every text field is bounded; usernames are unique whatever their case.
		s, b = api("POST", "/api/v1/connectors/"+dir+"/entitlements", map[string]any{"name": "Big", "description": strings.Repeat("x", 900_000)})
		wantField("900 KB description", s, b, "description", "at most 2000 characters")
		s, b = api("POST", "/api/v1/identities", map[string]any{"username": "ALICE"})
		wantField("ALICE beside alice", s, b, "username", "already exists")

		// 9. Another user's draft is not the caller's to discard.
		other := w.ids["draft"][len(w.ids["draft"])-1]
		p := probe{method: "POST", target: "/requests/drafts/" + other, auth: "session", contentType: "application/x-www-form-urlencoded",
			body: []byte(url.Values{"_csrf": {w.csrf}}.Encode())}
		if s, b := w.send(t, p); s != http.StatusNotFound {
			t.Errorf("discard another user's draft: %d %.200s", s, b)
		}
		var n int
		if err := w.DB.SQL.QueryRowContext(w.Ctx, "SELECT count(*) FROM request_drafts WHERE user_id <> (SELECT id FROM users WHERE username = 'admin')").Scan(&n); err != nil || n != 1 {
			t.Errorf("the other user's draft: %d left (%v)", n, err)
		}

		// The portal's forms and sign-in: 422 or a refused sign-in, never 500.
		p = probe{method: "POST", target: "/login", auth: "none", contentType: "application/x-www-form-urlencoded",
			body: []byte(url.Values{"_csrf": {w.loginCSRF}, "username": {"adm\x00in"}, "password": {"x"}}.Encode())}
		if s, b := w.send(t, p); s != http.StatusUnauthorized {
			t.Errorf("sign-in with NUL: %d %.200s", s, b)
		}
		p = probe{method: "POST", target: "/identities", auth: "session", contentType: "application/x-www-form-urlencoded",
			body: []byte(url.Values{"username": {"formuser"}, "display_name": {"F\x00"}}.Encode())}
		if s, b := w.send(t, p); s != 422 || !strings.Contains(b, "control characters") {
			t.Errorf("portal identity with NUL: %d %.300s", s, b)
		}
		for _, path := range []string{"/tasks?q=%00", "/lookup/identities?q=%00%FF", "/lookup/entitlements?connector=abc"} {
			if s, b := w.send(t, probe{method: "GET", target: path, auth: "session"}); s != 200 {
				t.Errorf("GET %s: %d %.200s", path, s, b)
			}
		}
	})
}
