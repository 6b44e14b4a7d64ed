package web_test

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/provisor/provisor/access"
	"github.com/provisor/provisor/audit"
)

// The Users and API clients page: htmx actions swap the row they changed,
// a disabled user's open session is refused at once and their sign-in
// says why, a revoked client's token stops working, a reset shows the new
// password once, and the last enabled admin is kept.
func TestUsersAndClientsPage(t *testing.T) {
	t.Parallel()
	w := setup(t)
	adm := newBrowser(t, w.Bundle)
	adm.login("admin", w.adminPW)
	rita := newBrowser(t, w.Bundle)
	rita.login("rita", w.requesterPW)
	ritaUser, _ := w.Access.UserByUsername(w.Ctx, "rita")
	admUser, _ := w.Access.UserByUsername(w.Ctx, "admin")
	client, secret, err := w.Access.CreateClient(w.Ctx, "Nightly jobs", []string{access.ScopeRead}, "cli")
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := w.Access.IssueToken(w.Ctx, client.ClientID, secret, nil)
	if err != nil {
		t.Fatal(err)
	}
	htmx := func(br *browser, path string) response {
		t.Helper()
		return br.do("POST", path, url.Values{}, "X-CSRF-Token", br.csrf, "HX-Request", "true")
	}

	page := adm.get("/users")
	for _, want := range []string{"Users and API clients", `id="user-` + ritaUser.ID + `"`, "Nightly jobs", client.ClientID,
		`hx-post="/users/` + ritaUser.ID + `/disable"`, `hx-confirm="Disable rita?`, `hx-post="/api-clients/` + client.ID + `/revoke"`,
		`name="_csrf" value="` + adm.csrf + `"`, `aria-current="page">Users and API clients`, "(you)"} {
		if !strings.Contains(page.body, want) {
			t.Errorf("page lacks %s", want)
		}
	}
	if body := rita.get("/requests").body; strings.Contains(body, `href="/users"`) {
		t.Error("a requester's navigation links to Users and API clients")
	}
	if r := rita.post("/users/"+ritaUser.ID+"/enable", nil); r.status != http.StatusForbidden {
		t.Errorf("requester POST: %d", r.status)
	}
	if r := adm.do("POST", "/users/"+ritaUser.ID+"/disable", url.Values{}); r.status != http.StatusForbidden {
		t.Errorf("POST without CSRF token: %d", r.status)
	}

	// Disable rita: her row turns Disabled, her open session ends at once.
	r := htmx(adm, "/users/"+ritaUser.ID+"/disable")
	if r.status != 200 || !strings.HasPrefix(strings.TrimSpace(r.body), `<tr id="user-`+ritaUser.ID+`"`) ||
		!strings.Contains(r.body, "badge-disabled") || !strings.Contains(r.body, `/enable"`) {
		t.Errorf("htmx disable: %d %s", r.status, r.body)
	}
	if r := rita.get("/requests"); r.status != http.StatusSeeOther || !strings.HasPrefix(r.header.Get("Location"), "/login") {
		t.Errorf("disabled user's open session: %d %s", r.status, r.header.Get("Location"))
	}
	if r := newBrowser(t, w.Bundle).login("rita", w.requesterPW); r.status != http.StatusForbidden || !strings.Contains(r.body, "This account is disabled") {
		t.Errorf("disabled user's sign-in: %d", r.status)
	}
	if r := htmx(adm, "/users/"+ritaUser.ID+"/enable"); r.status != 200 || !strings.Contains(r.body, "badge-enabled") {
		t.Errorf("htmx enable: %d %s", r.status, r.body)
	}

	// The last enabled admin: refused, the reason shown in the flash.
	r = htmx(adm, "/users/"+admUser.ID+"/disable")
	if r.status != http.StatusConflict || r.header.Get("HX-Retarget") != "#flash" || !strings.Contains(r.body, "last enabled admin") {
		t.Errorf("disable the last admin: %d %s", r.status, r.body)
	}
	if r := adm.post("/users/"+admUser.ID+"/disable", nil); r.status != http.StatusSeeOther {
		t.Errorf("disable the last admin without htmx: %d", r.status)
	} else if body := adm.get("/users").body; !strings.Contains(body, "last enabled admin") {
		t.Error("no flash after the refusal")
	}

	// A reset shows the new password once, in the row; it signs in.
	r = htmx(adm, "/users/"+ritaUser.ID+"/reset-password")
	m := regexp.MustCompile(`shown once: <code>([^<]+)</code>`).FindStringSubmatch(r.body)
	if r.status != 200 || m == nil || r.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("htmx reset: %d %s", r.status, r.body)
	}
	if r := newBrowser(t, w.Bundle).login("rita", m[1]); r.status != http.StatusSeeOther {
		t.Errorf("sign-in with the new password: %d", r.status)
	}
	if body := adm.get("/users").body; strings.Contains(body, m[1]) {
		t.Error("the new password is shown again")
	}
	// Without htmx, the page itself shows it (no redirect carries it).
	r = adm.post("/users/"+ritaUser.ID+"/reset-password", nil)
	if r.status != 200 || !strings.Contains(r.body, "New password of <strong>rita</strong>, shown once") {
		t.Errorf("reset without htmx: %d", r.status)
	}

	// Revoke: the row says Revoked, the token is refused by the API.
	if p, err := w.Access.Principal(w.Ctx, tok); err != nil || p == nil {
		t.Fatalf("token before the revocation: %v", err)
	}
	r = htmx(adm, "/api-clients/"+client.ID+"/revoke")
	if r.status != 200 || !strings.Contains(r.body, "badge-revoked") || strings.Contains(r.body, "hx-post") {
		t.Errorf("htmx revoke: %d %s", r.status, r.body)
	}
	req, _ := http.NewRequest("GET", "/api/v1/tasks", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	if resp, err := w.HTTP.Test(req); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("revoked client's token: %v %v", resp.StatusCode, err)
	}
	if r := htmx(adm, "/api-clients/"+client.ID+"/revoke"); r.status != http.StatusConflict || !strings.Contains(r.body, "revoked already") {
		t.Errorf("revoke twice: %d %s", r.status, r.body)
	}

	for _, action := range []string{"user.disable", "user.enable", "user.reset_password", "api_client.revoke"} {
		events, _, err := audit.List(w.Ctx, w.DB.Gorm, audit.Filter{Action: action, Actor: "admin"})
		if err != nil || len(events) == 0 {
			t.Errorf("no %s by admin in the audit trail: %v", action, err)
		}
	}
}
