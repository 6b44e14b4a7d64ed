package configured_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/provisor/provisor/connectors"
	"github.com/provisor/provisor/connectors/configured"
	"github.com/provisor/provisor/connectors/ldap"
	"github.com/provisor/provisor/connectors/ldap/ldaptest"
	"github.com/provisor/provisor/connectors/secrets"
	"github.com/provisor/provisor/database/dbtest"
)

func newStore(t *testing.T, dialect string) *configured.Store {
	t.Helper()
	db := dbtest.Open(t, dialect)
	sealer, err := secrets.NewSealer(strings.Repeat("k", 32))
	if err != nil {
		t.Fatal(err)
	}
	return configured.NewStore(db.Gorm, connectors.NewRegistry(ldap.Type(), ldap.ADType()), sealer, nil)
}

// ldapSettings are valid settings of an ldap connector on url, with extra
// JSON members after them.
func ldapSettings(url, extra string) json.RawMessage {
	return json.RawMessage(fmt.Sprintf(`{"urls":[%q],"bind_dn":"cn=svc,dc=example,dc=test","user_base_dn":"ou=people,dc=example,dc=test",
		"group_base_dn":"ou=groups,dc=example,dc=test","connect_timeout":"500ms","request_timeout":"300ms"%s}`, url, extra))
}

// A stored bind password goes only to the server it was entered for: a
// change of the server, of how its certificate is checked or of the bind
// DN is refused unless the password comes again, and neither a refused
// change nor a check of unsaved settings sends it anywhere else.
func TestStoredSecretStaysWithItsServer(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect string) {
		t.Parallel()
		ctx := context.Background()
		s := newStore(t, dialect)
		home, evil := ldaptest.StartRecorder(t), ldaptest.StartRecorder(t)
		const stored = "stored-pw-1f0c9a"
		rec, err := s.Create(ctx, configured.Input{Name: "Corp LDAP", Type: ldap.TypeLDAP,
			Settings: ldapSettings(home.URL, ""), Secrets: map[string]string{"bind_password": stored}})
		if err != nil {
			t.Fatal(err)
		}

		for _, c := range []struct{ name, settings string }{
			{"urls", string(ldapSettings(evil.URL, ""))},
			{"start_tls", string(ldapSettings(home.URL, `,"start_tls":true`))},
			{"insecure_skip_verify", strings.Replace(string(ldapSettings(home.URL, `,"insecure_skip_verify":true`)), "ldap://", "ldaps://", 1)},
			{"tls_server_name", string(ldapSettings(home.URL, `,"tls_server_name":"evil.example"`))},
			{"bind_dn", strings.Replace(string(ldapSettings(home.URL, "")), "cn=svc", "cn=other", 1)},
		} {
			in := configured.Input{Name: rec.Name, Settings: json.RawMessage(c.settings)}
			_, err := s.Update(ctx, rec.ID, in)
			var fe connectors.FieldErrors
			if !errors.As(err, &fe) || !strings.Contains(fe["secrets.bind_password"], "enter the bind password again") ||
				!strings.Contains(fe["secrets.bind_password"], c.name) {
				t.Errorf("%s changed without the password: %v", c.name, err)
			}
			// An empty value is no password either.
			in.Secrets = map[string]string{"bind_password": ""}
			if _, err := s.Update(ctx, rec.ID, in); !errors.As(err, &fe) || fe["secrets.bind_password"] == "" {
				t.Errorf("%s changed with an empty password: %v", c.name, err)
			}
		}
		h, err := s.CheckInput(ctx, rec.ID, configured.Input{Settings: ldapSettings(evil.URL, "")})
		var fe connectors.FieldErrors
		if !errors.As(err, &fe) || fe["secrets.bind_password"] == "" || h.OK {
			t.Errorf("check of another server with the stored password: %+v %v", h, err)
		}
		if got := evil.Received(); len(got) != 0 {
			t.Fatalf("the other server got %q", got)
		}

		// Changes that keep the server keep the password.
		same := configured.Input{Name: "Corp LDAP (main)", Settings: ldapSettings(home.URL, `,"page_size":100`)}
		if _, err := s.Update(ctx, rec.ID, same); err != nil {
			t.Fatalf("change of the page size: %v", err)
		}
		reordered := json.RawMessage(`{"request_timeout":"300ms","connect_timeout":"500ms","start_tls":false,"urls":["` + home.URL + `"],` +
			`"group_base_dn":"ou=groups,dc=example,dc=test","user_base_dn":"ou=people,dc=example,dc=test","bind_dn":"cn=svc,dc=example,dc=test"}`)
		if _, err := s.Update(ctx, rec.ID, configured.Input{Name: "Corp LDAP", Settings: reordered}); err != nil {
			t.Fatalf("the same settings in another order: %v", err)
		}
		h, err = s.CheckInput(ctx, rec.ID, configured.Input{Settings: ldapSettings(home.URL, `,"page_size":10`)})
		if err != nil || h.OK {
			t.Fatalf("check of unsaved settings on the same server: %+v %v", h, err)
		}
		if got := home.Received(); !bytes.Contains(got, []byte(stored)) {
			t.Fatalf("the connector's own server did not get the stored password: %q", got)
		}

		// The password given again goes with the new server.
		const again = "typed-again-77b2"
		h, err = s.CheckInput(ctx, rec.ID, configured.Input{Settings: ldapSettings(evil.URL, ""), Secrets: map[string]string{"bind_password": again}})
		if err != nil || h.OK {
			t.Fatalf("check of another server with the password given: %+v %v", h, err)
		}
		moved, err := s.Update(ctx, rec.ID, configured.Input{Name: "Corp LDAP", Settings: ldapSettings(evil.URL, ""),
			Secrets: map[string]string{"bind_password": again}})
		if err != nil {
			t.Fatalf("change of the server with the password: %v", err)
		}
		_, conn, err := s.OpenByID(ctx, moved.ID)
		if err != nil {
			t.Fatal(err)
		}
		if h := connectors.CheckHealth(ctx, conn); h.OK {
			t.Fatalf("check of a server that answers nothing: %+v", h)
		}
		got := evil.Received()
		if bytes.Contains(got, []byte(stored)) || !bytes.Contains(got, []byte(again)) {
			t.Fatalf("the new server got %q; want the password given again and never the stored one", got)
		}
	})
}

// A second connector of the same name is refused with a message on the
// name, on both databases (each words its unique violation its own way),
// whether it is created or renamed.
func TestDuplicateNameIsAFieldError(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect string) {
		t.Parallel()
		ctx := context.Background()
		s := newStore(t, dialect)
		settings := ldapSettings("ldap://127.0.0.1:1", "")
		secrets := map[string]string{"bind_password": "pw"}
		if _, err := s.Create(ctx, configured.Input{Name: "Corp LDAP", Type: ldap.TypeLDAP, Settings: settings, Secrets: secrets}); err != nil {
			t.Fatal(err)
		}
		other, err := s.Create(ctx, configured.Input{Name: "Other LDAP", Type: ldap.TypeLDAP, Settings: settings, Secrets: secrets})
		if err != nil {
			t.Fatal(err)
		}
		_, err = s.Create(ctx, configured.Input{Name: "Corp LDAP", Type: ldap.TypeLDAP, Settings: settings, Secrets: secrets})
		var fe connectors.FieldErrors
		if !errors.As(err, &fe) || !strings.Contains(fe["name"], "already exists") {
			t.Fatalf("create: got %v, want a field error on name", err)
		}
		_, err = s.Update(ctx, other.ID, configured.Input{Name: "Corp LDAP", Settings: settings})
		if !errors.As(err, &fe) || !strings.Contains(fe["name"], "already exists") {
			t.Fatalf("rename: got %v, want a field error on name", err)
		}
	})
}
