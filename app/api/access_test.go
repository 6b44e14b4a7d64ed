package api_test

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"

	"github.com/provisor/provisor/access"
	"github.com/provisor/provisor/app/apptest"
	"github.com/provisor/provisor/audit"
	"github.com/provisor/provisor/database/dbtest"
)

// The users and API clients routes: admin scope only, every change
// audited, a revoked client's token refused at once, the last enabled
// admin kept.
func TestUsersAndClientsAPI(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect string) {
		t.Parallel()
		h := harness{apptest.New(t, dialect, &apptest.Options{NoStart: true}), t}
		adm, err := h.Access.CreateUser(h.Ctx, access.UserInput{Username: "admin", Password: access.GeneratePassword(), Role: access.RoleAdmin}, "test")
		if err != nil {
			t.Fatal(err)
		}
		rita, err := h.Access.CreateUser(h.Ctx, access.UserInput{Username: "rita", Password: access.GeneratePassword(), Role: access.RoleRequester}, "test")
		if err != nil {
			t.Fatal(err)
		}
		admin := h.token(access.ScopeAdmin)
		reader := h.token(access.ScopeRead, access.ScopeDirectory, access.ScopeJobs)
		victim, victimSecret, err := h.Access.CreateClient(h.Ctx, "victim", []string{access.ScopeRead}, "test")
		if err != nil {
			t.Fatal(err)
		}
		form := url.Values{"grant_type": {"client_credentials"}, "client_id": {victim.ClientID}, "client_secret": {victimSecret}}
		_, _, body := h.do("POST", "/api/v1/token", "", "application/x-www-form-urlencoded", form.Encode())
		var tok struct {
			AccessToken string `json:"access_token"`
		}
		_ = json.Unmarshal([]byte(body), &tok)
		victimToken := tok.AccessToken

		// The cases run in order: each sees what the ones before did.
		for _, c := range []struct {
			name, method, path, token, body string
			status                          int
			has, lacks                      []string
			action                          string // audited as
		}{
			{name: "read scope cannot list users", method: "GET", path: "/api/v1/users", token: reader, status: 403, has: []string{"admin scope"}},
			{name: "read scope cannot list clients", method: "GET", path: "/api/v1/api-clients", token: reader, status: 403},
			{name: "read scope cannot disable", method: "POST", path: "/api/v1/users/" + rita.ID + "/disable", token: reader, status: 403},
			{name: "no token", method: "GET", path: "/api/v1/users", status: 401},
			{name: "list users", method: "GET", path: "/api/v1/users", token: admin, status: 200,
				has: []string{`"username":"admin"`, `"username":"rita"`, `"last_sign_in_at":null`}, lacks: []string{"password"}},
			{name: "list clients", method: "GET", path: "/api/v1/api-clients", token: admin, status: 200,
				has: []string{`"name":"victim"`, `"client_id":"` + victim.ClientID, `"revoked_at":null`, `"last_used_at":"`}, lacks: []string{"secret"}},
			{name: "victim's token works", method: "GET", path: "/api/v1/tasks", token: victimToken, status: 200},
			{name: "revoke by client id", method: "POST", path: "/api/v1/api-clients/" + victim.ClientID + "/revoke", token: admin, status: 200,
				has: []string{`"revoked_at":"`}, action: "api_client.revoke"},
			{name: "revoked client's token is refused", method: "GET", path: "/api/v1/tasks", token: victimToken, status: 401},
			{name: "revoke again", method: "POST", path: "/api/v1/api-clients/" + victim.ID + "/revoke", token: admin, status: 409, has: []string{"revoked already"}},
			{name: "revoke unknown", method: "POST", path: "/api/v1/api-clients/pc_nobody/revoke", token: admin, status: 404},
			{name: "disable rita", method: "POST", path: "/api/v1/users/" + rita.ID + "/disable", token: admin, status: 200,
				has: []string{`"disabled":true`}, action: "user.disable"},
			{name: "disable rita again", method: "POST", path: "/api/v1/users/" + rita.ID + "/disable", token: admin, status: 409, has: []string{"disabled already"}},
			{name: "enable rita", method: "POST", path: "/api/v1/users/" + rita.ID + "/enable", token: admin, status: 200,
				has: []string{`"disabled":false`}, action: "user.enable"},
			{name: "disable the last admin", method: "POST", path: "/api/v1/users/" + adm.ID + "/disable", token: admin, status: 409, has: []string{"last enabled admin"}},
			{name: "demote the last admin", method: "POST", path: "/api/v1/users/" + adm.ID + "/role", token: admin, body: `{"role":"requester"}`, status: 409, has: []string{"last enabled admin"}},
			{name: "bad role", method: "POST", path: "/api/v1/users/" + rita.ID + "/role", token: admin, body: `{"role":"root"}`, status: 422, has: []string{`"field":"role"`}},
			{name: "make rita an admin", method: "POST", path: "/api/v1/users/" + rita.ID + "/role", token: admin, body: `{"role":"admin"}`, status: 200,
				has: []string{`"role":"admin"`}, action: "user.role"},
			{name: "now the first admin can go", method: "POST", path: "/api/v1/users/" + adm.ID + "/disable", token: admin, status: 200, action: "user.disable"},
			{name: "reset rita's password", method: "POST", path: "/api/v1/users/" + rita.ID + "/reset-password", token: admin, status: 200,
				has: []string{`"password":"`, `"username":"rita"`}, action: "user.reset_password"},
			{name: "unknown user", method: "POST", path: "/api/v1/users/00000000-0000-0000-0000-000000000000/enable", token: admin, status: 404},
			{name: "malformed user id", method: "POST", path: "/api/v1/users/nope/reset-password", token: admin, status: 404},
		} {
			ct := ""
			if c.body != "" {
				ct = "application/json"
			}
			status, hdr, body := h.do(c.method, c.path, c.token, ct, c.body)
			if status != c.status {
				t.Errorf("%s: %s %s = %d, want %d: %s", c.name, c.method, c.path, status, c.status, body)
				continue
			}
			for _, w := range c.has {
				if !strings.Contains(body, w) {
					t.Errorf("%s: body lacks %s: %s", c.name, w, body)
				}
			}
			for _, w := range c.lacks {
				if strings.Contains(strings.ToLower(body), w) {
					t.Errorf("%s: body has %s: %s", c.name, w, body)
				}
			}
			if c.action != "" {
				events, _, err := audit.List(h.Ctx, h.DB.Gorm, audit.Filter{Action: c.action, Limit: 1})
				if err != nil || len(events) == 0 || events[0].Actor != "api:client admin" {
					t.Errorf("%s: audit %s: %+v %v", c.name, c.action, events, err)
				}
			}
			if strings.HasSuffix(c.path, "/reset-password") && status == 200 {
				if hdr.Get("Cache-Control") != "no-store" {
					t.Errorf("reset answer is cacheable: %q", hdr.Get("Cache-Control"))
				}
				var out struct{ Password string }
				_ = json.Unmarshal([]byte(body), &out)
				if _, err := h.Access.Authenticate(h.Ctx, "rita", out.Password); err != nil {
					t.Errorf("the new password does not sign in: %v", err)
				}
				events, _, _ := audit.List(h.Ctx, h.DB.Gorm, audit.Filter{Action: "user.reset_password"})
				for _, e := range events {
					if strings.Contains(e.Details, out.Password) {
						t.Error("the new password is in the audit trail")
					}
				}
			}
		}
	})
}
