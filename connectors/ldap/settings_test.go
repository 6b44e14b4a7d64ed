package ldap

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"unicode"

	ldapv3 "github.com/go-ldap/ldap/v3"

	"github.com/provisor/provisor/connectors"
)

func TestValidateSettings(t *testing.T) {
	t.Parallel()
	base := `"bind_dn":"cn=admin,dc=example,dc=test","user_base_dn":"ou=people,dc=example,dc=test","group_base_dn":"ou=groups,dc=example,dc=test"`
	pw := map[string]string{"bind_password": "pw"}
	cases := []struct {
		name     string
		flavor   flavor
		settings string
		secrets  map[string]string
		want     map[string]string // field -> part of the message; nil means valid
	}{
		{"minimal", ldapFlavor, `{"urls":["ldap://127.0.0.1:389"],` + base + `}`, pw, nil},
		{"failover", ldapFlavor, `{"urls":["ldaps://a:636","ldaps://b:636"],` + base + `,"page_size":100,"pool_size":2,"request_timeout":"5s"}`, pw, nil},
		{"empty", ldapFlavor, `{}`, nil, map[string]string{"settings.urls": "required", "settings.user_base_dn": "required", "settings.group_base_dn": "required"}},
		{"not an object", ldapFlavor, `[1]`, nil, map[string]string{"settings": "JSON object"}},
		{"unknown setting and secret", ldapFlavor, `{"urls":["ldap://a"],` + base + `,"colour":"red"}`, map[string]string{"bind_password": "x", "token": "y"},
			map[string]string{"settings.colour": "unknown setting", "secrets.token": "unknown secret"}},
		{"bad URLs", ldapFlavor, `{"urls":["http://a","ldap://","ldap://a/dc=x"],` + base + `}`, pw,
			map[string]string{"settings.urls[0]": "ldap:// or ldaps://", "settings.urls[1]": "not a URL", "settings.urls[2]": "server only"}},
		{"starttls on ldaps", ldapFlavor, `{"urls":["ldaps://a"],"start_tls":true,` + base + `}`, pw, map[string]string{"settings.urls[0]": "start_tls"}},
		{"AD in clear", adFlavor, `{"urls":["ldap://dc1:389"],` + base + `}`, pw, map[string]string{"settings.urls[0]": "only over TLS"}},
		{"AD with StartTLS", adFlavor, `{"urls":["ldap://dc1:389"],"start_tls":true,` + base + `}`, pw, nil},
		{"no password", ldapFlavor, `{"urls":["ldap://a"],` + base + `}`, nil, map[string]string{"secrets.bind_password": "required"}},
		{"bad CA", ldapFlavor, `{"urls":["ldaps://a"],"ca_cert":"hello",` + base + `}`, pw, map[string]string{"settings.ca_cert": "PEM"}},
		{"bad DNs and filters", ldapFlavor, `{"urls":["ldap://a"],"bind_dn":"admin","user_base_dn":"people","group_base_dn":"ou=g,dc=x","user_filter":"uid=x","group_filter":"(cn=*"}`, pw,
			map[string]string{"settings.bind_dn": "DN", "settings.user_base_dn": "DN", "settings.user_filter": "filter", "settings.group_filter": "filter"}},
		{"pattern outside the base", ldapFlavor, `{"urls":["ldap://a"],` + base + `,"user_dn_pattern":"uid={username},ou=elsewhere,dc=example,dc=test"}`, pw,
			map[string]string{"settings.user_dn_pattern": "outside user_base_dn"}},
		{"pattern without a name", ldapFlavor, `{"urls":["ldap://a"],` + base + `,"user_dn_pattern":"uid=fixed,ou=people,dc=example,dc=test"}`, pw,
			map[string]string{"settings.user_dn_pattern": "{username}"}},
		{"pattern with a placeholder further up", ldapFlavor, `{"urls":["ldap://a"],` + base + `,"user_dn_pattern":"uid={username},ou={email},ou=people,dc=example,dc=test"}`, pw,
			map[string]string{"settings.user_dn_pattern": "first part"}},
		{"unknown placeholder", ldapFlavor, `{"urls":["ldap://a"],` + base + `,"user_attributes":{"sn":"{surname}"}}`, pw,
			map[string]string{"settings.user_attributes.sn": "unknown placeholder"}},
		{"numbers", ldapFlavor, `{"urls":["ldap://a"],` + base + `,"page_size":-1,"pool_size":100,"deletion_threshold_percent":150,"connect_timeout":"forever","password_length":4}`, pw,
			map[string]string{"settings.page_size": "from 1", "settings.pool_size": "from 1", "settings.deletion_threshold_percent": "from 0",
				"settings.connect_timeout": "duration", "settings.password_length": "from 8"}},
		{"member attribute", ldapFlavor, `{"urls":["ldap://a"],` + base + `,"group_member_attribute":"memberUid"}`, pw,
			map[string]string{"settings.group_member_attribute": "member or uniqueMember"}},
		{"manager attribute", ldapFlavor, `{"urls":["ldap://a"],` + base + `,"attributes":{"manager":"the boss"}}`, pw,
			map[string]string{"settings.attributes.manager": "not an attribute name"}},
		{"no manager", ldapFlavor, `{"urls":["ldap://a"],` + base + `,"attributes":{"manager":"none"}}`, pw, nil},
		{"wrong type", ldapFlavor, `{"urls":"ldap://a",` + base + `}`, pw, map[string]string{"settings.urls": "must be"}},
		{"login needs a bind DN", ldapFlavor, `{"urls":["ldap://a"],"user_base_dn":"ou=p,dc=x","group_base_dn":"ou=g,dc=x","login_enabled":true}`, nil,
			map[string]string{"settings.login_enabled": "bind_dn"}},
		{"CA and skip-verify", ldapFlavor, `{"urls":["ldaps://a"],"insecure_skip_verify":true,"ca_cert":"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----",` + base + `}`, pw,
			map[string]string{"settings.ca_cert": "PEM"}},
	}
	for _, c := range cases {
		_, got := c.flavor.parse([]byte(c.settings), c.secrets)
		if c.want == nil {
			if len(got) > 0 {
				t.Errorf("%s: %v", c.name, got)
			}
			continue
		}
		for field, part := range c.want {
			if !strings.Contains(got[field], part) {
				t.Errorf("%s: %s = %q, want %q (all: %v)", c.name, field, got[field], part, got)
			}
		}
	}
	// Through the connector type, as the store calls it.
	if p := Type().ValidateSettings([]byte(`{}`), nil); p["settings.urls"] == "" {
		t.Errorf("Type().ValidateSettings: %v", p)
	}
	if _, err := Open(TypeLDAP, connectors.Config{Settings: []byte(`{}`)}); err == nil {
		t.Error("Open with invalid settings")
	}
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	c, p := adFlavor.parse([]byte(`{"urls":["ldaps://dc1"],"bind_dn":"CN=a,DC=corp,DC=example","user_base_dn":"OU=Staff,DC=corp,DC=example","group_base_dn":"DC=corp,DC=example"}`),
		map[string]string{"bind_password": "x"})
	if len(p) > 0 {
		t.Fatal(p)
	}
	if c.UPNSuffix != "corp.example" || c.UserDNPattern != "CN={username},OU=Staff,DC=corp,DC=example" || c.Attributes.Correlation != "sAMAccountName" ||
		c.InitialPassword != "generate" || c.threshold != 10 || c.PoolSize != 4 || c.PageSize != 500 || c.Attributes.Manager != "manager" {
		t.Errorf("AD defaults: %+v", c)
	}
	c, _ = ldapFlavor.parse([]byte(`{"urls":["ldap://a"],"user_base_dn":"ou=p,dc=x","group_base_dn":"ou=g,dc=x","attributes":{"username":"cn"},"deletion_threshold_percent":0}`), nil)
	if c.UserDNPattern != "cn={username},ou=p,dc=x" || c.InitialPassword != "none" || c.threshold != 0 || c.Attributes.Correlation != "cn" ||
		c.Attributes.Manager != "manager" {
		t.Errorf("LDAP defaults: %+v", c)
	}
}

// TestBuildDN: every value is escaped, and the DN keeps the pattern's shape.
func TestBuildDN(t *testing.T) {
	t.Parallel()
	pattern := "uid={username},ou=people,dc=example,dc=test"
	for _, u := range []string{"alice", "*)(uid=*", "admin)(|(objectClass=*", "a,ou=evil", "x+cn=y", "#hash", " lead", "trail ",
		`back\slash`, `quo"te`, "semi;colon", "<angle>", "nul\x00byte", "Jürgen", "=eq"} {
		dn, err := buildDN(pattern, values{Username: u})
		if err != nil {
			t.Errorf("%q: %v", u, err)
			continue
		}
		parsed, err := ldapv3.ParseDN(dn)
		if err != nil || len(parsed.RDNs) != 4 || len(parsed.RDNs[0].Attributes) != 1 || parsed.RDNs[0].Attributes[0].Value != u ||
			parsed.RDNs[1].String() != "ou=people" {
			t.Errorf("%q: DN %q parses as %v (%v)", u, dn, parsed, err)
		}
	}
	if _, err := buildDN(pattern, values{Username: "  "}); err == nil {
		t.Error("empty username accepted")
	}
	dn, err := buildDN("cn={display_name},ou=people,dc=example,dc=test", values{Username: "bob", DisplayName: "Smith, Bob"})
	if err != nil || dn != `cn=Smith\, Bob,ou=people,dc=example,dc=test` {
		t.Errorf("display name: %q %v", dn, err)
	}
}

func TestNormDN(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"UID=Alice, OU=People,DC=Example,DC=Test":    "uid=alice,ou=people,dc=example,dc=test",
		`cn=Smith\, Bob,ou=people,dc=x`:              `cn=smith\, bob,ou=people,dc=x`,
		`cn=Smith\2C Bob,ou=people,dc=x`:             `cn=smith\, bob,ou=people,dc=x`,
		"cn=Jürgen,dc=x":                             "cn=jürgen,dc=x",
		"cn=x+uid=y,dc=z":                            "cn=x+uid=y,dc=z",
		"not a dn":                                   "not a dn",
		"uid=a,ou=people,dc=example,dc=test#'0101'B": "uid=a,ou=people,dc=example,dc=test#'0101'b",
	} {
		if got := normDN(in); got != want {
			t.Errorf("normDN(%q) = %q, want %q", in, got, want)
		}
	}
	if got := uniqueMemberDN("uid=a,dc=x#'0101'B"); got != "uid=a,dc=x" {
		t.Errorf("uniqueMemberDN: %q", got)
	}
}

func TestRanges(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{"member;range=0-1499": "1500 true", "member;range=1500-*": "0 false", "member;range=x": "0 false"} {
		n, more := nextRange(in)
		if got := fmt.Sprintf("%d %v", n, more); got != want {
			t.Errorf("nextRange(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestPasswords(t *testing.T) {
	t.Parallel()
	for range 50 {
		p, err := generatePassword(12)
		if err != nil || len(p) != 12 {
			t.Fatalf("%q %v", p, err)
		}
		var lo, up, dg, sy bool
		for _, r := range p {
			switch {
			case unicode.IsLower(r):
				lo = true
			case unicode.IsUpper(r):
				up = true
			case unicode.IsDigit(r):
				dg = true
			default:
				sy = true
			}
		}
		if !lo || !up || !dg || !sy {
			t.Errorf("%q lacks a class", p)
		}
	}
	if got := unicodePwd("ab"); got != "\"\x00a\x00b\x00\"\x00" {
		t.Errorf("unicodePwd: %q", got)
	}
	if h, err := ssha("x"); err != nil || !strings.HasPrefix(h, "{SSHA}") || len(h) != 6+40 {
		t.Errorf("ssha: %q %v", h, err)
	}
}

func TestClassify(t *testing.T) {
	t.Parallel()
	for code, permanent := range map[uint16]bool{
		ldapv3.LDAPResultNoSuchObject: true, ldapv3.LDAPResultInsufficientAccessRights: true, ldapv3.LDAPResultConstraintViolation: true,
		ldapv3.LDAPResultObjectClassViolation: true, ldapv3.LDAPResultInvalidAttributeSyntax: true, ldapv3.LDAPResultInvalidDNSyntax: true,
		ldapv3.LDAPResultInvalidCredentials: true, ldapv3.LDAPResultBusy: false, ldapv3.LDAPResultUnavailable: false,
		ldapv3.LDAPResultTimeLimitExceeded: false, ldapv3.ErrorNetwork: false, ldapv3.LDAPResultServerDown: false, ldapv3.LDAPResultOther: false,
	} {
		err := classify("op", ldapv3.NewError(code, errors.New("the server's words")))
		if connectors.IsPermanent(err) != permanent || !strings.Contains(err.Error(), "the server's words") || !strings.HasPrefix(err.Error(), "op: ") {
			t.Errorf("code %d: %v (permanent %v)", code, err, connectors.IsPermanent(err))
		}
	}
	if classify("x", nil) != nil {
		t.Error("nil error classified")
	}
}

// The settings that decide where the bind password is sent are the ones
// tagged secret:"bound".
func TestSecretBoundSettings(t *testing.T) {
	t.Parallel()
	want := "urls start_tls ca_cert insecure_skip_verify tls_server_name bind_dn"
	for _, typ := range []connectors.Type{Type(), ADType()} {
		if typ.SecretBound == nil || strings.Join(typ.SecretBound.Settings, " ") != want || typ.SecretBound.Labels[SecretBindPassword] == "" {
			t.Errorf("%s: secret-bound settings %+v, want %s", typ.Name, typ.SecretBound, want)
		}
	}
}
