package web_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/provisor/provisor/access"
	"github.com/provisor/provisor/app/apptest"
	"github.com/provisor/provisor/connectors/configured"
	"github.com/provisor/provisor/connectors/ldap/ldaptest"
)

// The connector form asks for the bind password again when the server
// changes, so Test connection never sends the stored one elsewhere.
func TestConnectorFormAsksForTheSecretAgain(t *testing.T) {
	t.Parallel()
	b := apptest.New(t, "sqlite", &apptest.Options{NoStart: true})
	pw := access.GeneratePassword()
	if _, err := b.Access.CreateUser(b.Ctx, access.UserInput{Username: "admin", Email: "admin@example.test", Password: pw, Role: access.RoleAdmin}, "t"); err != nil {
		t.Fatal(err)
	}
	home, evil := ldaptest.StartRecorder(t), ldaptest.StartRecorder(t)
	settings := func(url string) string {
		return fmt.Sprintf(`{"urls":[%q],"bind_dn":"cn=svc,dc=example,dc=test","user_base_dn":"ou=people,dc=example,dc=test",`+
			`"group_base_dn":"ou=groups,dc=example,dc=test","connect_timeout":"500ms","request_timeout":"300ms"}`, url)
	}
	const stored, again = "stored-pw-5be1d0", "typed-again-e4a913"
	rec, err := b.Connectors.Create(b.Ctx, configured.Input{Name: "Corp LDAP", Type: "ldap", Settings: json.RawMessage(settings(home.URL)),
		Secrets: map[string]string{"bind_password": stored}})
	if err != nil {
		t.Fatal(err)
	}
	adm := newBrowser(t, b)
	adm.login("admin", pw)
	page := "/connectors/" + rec.ID
	form := func(secret string) url.Values {
		return url.Values{"name": {"Corp LDAP"}, "settings": {settings(evil.URL)}, "enabled": {"on"},
			"secret_name": {"bind_password", ""}, "secret_value": {secret, ""}}
	}
	r := adm.post(page, form(""))
	if r.status != 422 || !strings.Contains(r.body, "secrets.bind_password: enter the bind password again") || strings.Contains(r.body, stored) {
		t.Fatalf("save of another server without the password: %d %s", r.status, r.body)
	}
	check := func() string {
		t.Helper()
		r := adm.do("POST", page+"/check", nil, "HX-Request", "true", "X-CSRF-Token", adm.csrf)
		if r.status != 200 {
			t.Fatalf("check: %d %s", r.status, r.body)
		}
		return r.body
	}
	if body := check(); !strings.Contains(body, home.URL) {
		t.Errorf("check after the refused change: %s", body)
	}
	if got := evil.Received(); len(got) != 0 {
		t.Fatalf("the listener got %q", got)
	}
	if r := adm.post(page, form(again)); r.status != 303 {
		t.Fatalf("save of another server with the password: %d %s", r.status, r.body)
	}
	if body := check(); !strings.Contains(body, evil.URL) {
		t.Errorf("check after the change: %s", body)
	}
	if got := evil.Received(); bytes.Contains(got, []byte(stored)) || !bytes.Contains(got, []byte(again)) {
		t.Fatalf("the listener got %q; want the password entered again, never the stored one", got)
	}
}
