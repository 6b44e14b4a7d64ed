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

		// audited checks that the change was audited as the admin client's.
		audited := func(action string) func(testing.TB, *apptest.Response) {
			return func(t testing.TB, _ *apptest.Response) {
				events, _, err := audit.List(h.Ctx, h.DB.Gorm, audit.Filter{Action: action, Limit: 1})
				if err != nil || len(events) == 0 || events[0].Actor != "api:client admin" {
					t.Errorf("audit %s: %+v %v", action, events, err)
				}
			}
		}
		// The scenarios run in order: each sees what the ones before did.
		scenarios := []apptest.Scenario{
			{Name: "read scope cannot list users", Method: "GET", URL: "/api/v1/users", Headers: bearer(reader), ExpectedStatus: 403, ExpectedContent: []string{"admin scope"}},
			{Name: "read scope cannot list clients", Method: "GET", URL: "/api/v1/api-clients", Headers: bearer(reader), ExpectedStatus: 403},
			{Name: "read scope cannot disable", Method: "POST", URL: "/api/v1/users/" + rita.ID + "/disable", Headers: bearer(reader), ExpectedStatus: 403},
			{Name: "no token", Method: "GET", URL: "/api/v1/users", ExpectedStatus: 401},
			{Name: "list users", Method: "GET", URL: "/api/v1/users", Headers: bearer(admin), ExpectedStatus: 200,
				ExpectedContent: []string{`"username":"admin"`, `"username":"rita"`, `"last_sign_in_at":null`}, NotExpectedContent: []string{"password"}},
			{Name: "list clients", Method: "GET", URL: "/api/v1/api-clients", Headers: bearer(admin), ExpectedStatus: 200,
				ExpectedContent: []string{`"name":"victim"`, `"client_id":"` + victim.ClientID, `"revoked_at":null`, `"last_used_at":"`}, NotExpectedContent: []string{"secret"}},
			{Name: "victim's token works", Method: "GET", URL: "/api/v1/tasks", Headers: bearer(victimToken), ExpectedStatus: 200},
			{Name: "revoke by client id", Method: "POST", URL: "/api/v1/api-clients/" + victim.ClientID + "/revoke", Headers: bearer(admin), ExpectedStatus: 200,
				ExpectedContent: []string{`"revoked_at":"`}, AfterFunc: audited("api_client.revoke")},
			{Name: "revoked client's token is refused", Method: "GET", URL: "/api/v1/tasks", Headers: bearer(victimToken), ExpectedStatus: 401},
			{Name: "revoke again", Method: "POST", URL: "/api/v1/api-clients/" + victim.ID + "/revoke", Headers: bearer(admin), ExpectedStatus: 409, ExpectedContent: []string{"revoked already"}},
			{Name: "revoke unknown", Method: "POST", URL: "/api/v1/api-clients/pc_nobody/revoke", Headers: bearer(admin), ExpectedStatus: 404},
			{Name: "disable rita", Method: "POST", URL: "/api/v1/users/" + rita.ID + "/disable", Headers: bearer(admin), ExpectedStatus: 200,
				ExpectedContent: []string{`"disabled":true`}, AfterFunc: audited("user.disable")},
			{Name: "disable rita again", Method: "POST", URL: "/api/v1/users/" + rita.ID + "/disable", Headers: bearer(admin), ExpectedStatus: 409, ExpectedContent: []string{"disabled already"}},
			{Name: "enable rita", Method: "POST", URL: "/api/v1/users/" + rita.ID + "/enable", Headers: bearer(admin), ExpectedStatus: 200,
				ExpectedContent: []string{`"disabled":false`}, AfterFunc: audited("user.enable")},
			{Name: "disable the last admin", Method: "POST", URL: "/api/v1/users/" + adm.ID + "/disable", Headers: bearer(admin), ExpectedStatus: 409, ExpectedContent: []string{"last enabled admin"}},
			{Name: "demote the last admin", Method: "POST", URL: "/api/v1/users/" + adm.ID + "/role", Headers: bearer(admin), Body: `{"role":"requester"}`, ExpectedStatus: 409, ExpectedContent: []string{"last enabled admin"}},
			{Name: "bad role", Method: "POST", URL: "/api/v1/users/" + rita.ID + "/role", Headers: bearer(admin), Body: `{"role":"root"}`, ExpectedStatus: 422, ExpectedContent: []string{`"field":"role"`}},
			{Name: "make rita an admin", Method: "POST", URL: "/api/v1/users/" + rita.ID + "/role", Headers: bearer(admin), Body: `{"role":"admin"}`, ExpectedStatus: 200,
				ExpectedContent: []string{`"role":"admin"`}, AfterFunc: audited("user.role")},
			{Name: "now the first admin can go", Method: "POST", URL: "/api/v1/users/" + adm.ID + "/disable", Headers: bearer(admin), ExpectedStatus: 200, AfterFunc: audited("user.disable")},
			{Name: "reset rita's password", Method: "POST", URL: "/api/v1/users/" + rita.ID + "/reset-password", Headers: bearer(admin), ExpectedStatus: 200,
				ExpectedContent: []string{`"password":"`, `"username":"rita"`}, AfterFunc: audited("user.reset_password")},
			{Name: "unknown user", Method: "POST", URL: "/api/v1/users/00000000-0000-0000-0000-000000000000/enable", Headers: bearer(admin), ExpectedStatus: 404},
			{Name: "malformed user id", Method: "POST", URL: "/api/v1/users/nope/reset-password", Headers: bearer(admin), ExpectedStatus: 404},
		}
		for i, s := range scenarios {
			if strings.HasSuffix(s.URL, "/reset-password") && s.ExpectedStatus == 200 {
				scenarios[i].ExpectedHeaders = map[string]string{"Cache-Control": "no-store"}
				scenarios[i].AfterFunc = chain(s.AfterFunc, func(t testing.TB, res *apptest.Response) {
					var out struct{ Password string }
					_ = json.Unmarshal([]byte(res.Body), &out)
					if _, err := h.Access.Authenticate(h.Ctx, "rita", out.Password); err != nil {
						t.Errorf("the new password does not sign in: %v", err)
					}
					events, _, _ := audit.List(h.Ctx, h.DB.Gorm, audit.Filter{Action: "user.reset_password"})
					for _, e := range events {
						if strings.Contains(e.Details, out.Password) {
							t.Error("the new password is in the audit trail")
						}
					}
				})
			}
		}
		apptest.RunScenarios(t, h.Bundle, scenarios)
	})
}
