package api_test

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/provisor/provisor/access"
	"github.com/provisor/provisor/app/apptest"
	"github.com/provisor/provisor/connectors/ldap/ldaptest"
	"github.com/provisor/provisor/database/dbtest"
)

// A client that may change connectors cannot read a stored bind password
// out by pointing the connector at a listener of its own and testing the
// connection: the change is refused without the password, and the
// password it enters instead is all the listener gets.
func TestConnectorSecretStaysWithItsServer(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect string) {
		t.Parallel()
		h := harness{apptest.New(t, dialect, &apptest.Options{NoStart: true}), t}
		tok := h.token(access.ScopeRead, access.ScopeDirectory)
		home, evil := ldaptest.StartRecorder(t), ldaptest.StartRecorder(t)
		settings := func(url string) string {
			return fmt.Sprintf(`{"urls":[%q],"bind_dn":"cn=svc,dc=example,dc=test","user_base_dn":"ou=people,dc=example,dc=test",
				"group_base_dn":"ou=groups,dc=example,dc=test","connect_timeout":"500ms","request_timeout":"300ms"}`, url)
		}
		const stored, again = "stored-pw-9d41e2", "typed-again-3c07aa"
		var conn struct{ ID string }
		h.json("POST", "/api/v1/connectors", tok, `{"name":"Corp LDAP","type":"ldap","settings":`+settings(home.URL)+
			`,"secrets":{"bind_password":"`+stored+`"}}`, 201, &conn)

		var p problem
		h.json("PATCH", "/api/v1/connectors/"+conn.ID, tok, `{"settings":`+settings(evil.URL)+`}`, 422, &p)
		if p.fields() != "secrets.bind_password" || !strings.Contains(p.Errors[0].Message, "enter the bind password again") {
			t.Errorf("change of the server without the password: %+v", p)
		}
		h.json("POST", "/api/v1/connectors/"+conn.ID+"/check", tok, `{"settings":`+settings(evil.URL)+`}`, 422, &p)
		if p.fields() != "secrets.bind_password" {
			t.Errorf("check of unsaved settings on another server: %+v", p)
		}
		var check struct {
			OK      bool
			Message string
		}
		h.json("POST", "/api/v1/connectors/"+conn.ID+"/check", tok, "", 200, &check)
		if check.OK || !strings.Contains(check.Message, home.URL) {
			t.Errorf("check of the saved connector: %+v", check)
		}
		if got := evil.Received(); len(got) != 0 {
			t.Fatalf("the listener got %q", got)
		}
		if got := home.Received(); !bytes.Contains(got, []byte(stored)) {
			t.Fatalf("the connector's own server did not get its password: %q", got)
		}

		// With the password entered again, the change is accepted, and the
		// listener gets that password only.
		h.json("POST", "/api/v1/connectors/"+conn.ID+"/check", tok, `{"settings":`+settings(evil.URL)+
			`,"secrets":{"bind_password":"`+again+`"}}`, 200, &check)
		h.json("PATCH", "/api/v1/connectors/"+conn.ID, tok, `{"settings":`+settings(evil.URL)+
			`,"secrets":{"bind_password":"`+again+`"}}`, 200, nil)
		h.json("POST", "/api/v1/connectors/"+conn.ID+"/check", tok, "", 200, &check)
		if check.OK || !strings.Contains(check.Message, evil.URL) {
			t.Errorf("check after the change: %+v", check)
		}
		got := evil.Received()
		if bytes.Contains(got, []byte(stored)) || !bytes.Contains(got, []byte(again)) {
			t.Fatalf("the listener got %q; want the password entered again, never the stored one", got)
		}
	})
}
