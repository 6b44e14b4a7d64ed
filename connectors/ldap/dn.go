package ldap

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	ldapv3 "github.com/go-ldap/ldap/v3"
)

var (
	attrName    = regexp.MustCompile(`^(?:[A-Za-z][A-Za-z0-9-]{0,63}|[0-9]+(?:\.[0-9]+)+)$`)
	placeholder = regexp.MustCompile(`\{([a-z_]*)\}`)
)

// values fill the placeholders of DN patterns and attribute templates.
type values struct {
	Username, DisplayName, Email string
}

func (v values) lookup(name string) (string, bool) {
	switch name {
	case "username":
		return v.Username, true
	case "display_name":
		return v.DisplayName, true
	case "email":
		return v.Email, true
	}
	return "", false
}

func checkTemplate(t string) error {
	for _, m := range placeholder.FindAllStringSubmatch(t, -1) {
		if _, ok := (values{}).lookup(m[1]); !ok {
			return fmt.Errorf("unknown placeholder {%s}; known: {username}, {display_name}, {email}", m[1])
		}
	}
	return nil
}

// render fills a template's placeholders; escape (nil for none) is applied
// to each value.
func render(t string, v values, escape func(string) string) string {
	return placeholder.ReplaceAllStringFunc(t, func(m string) string {
		val, _ := v.lookup(m[1 : len(m)-1])
		if escape != nil {
			val = escape(val)
		}
		return val
	})
}

// checkPattern validates a DN pattern: known placeholders, only in the first
// RDN, {username} or {display_name} among them, and a DN under the user base.
func checkPattern(pattern, base string) error {
	if err := checkTemplate(pattern); err != nil {
		return err
	}
	if !strings.Contains(pattern, "{username}") && !strings.Contains(pattern, "{display_name}") {
		return errors.New("must name the account with {username} or {display_name}, such as uid={username},ou=people,dc=example,dc=com")
	}
	sample := values{Username: "u", DisplayName: "d", Email: "e@x"}
	dn, err := ldapv3.ParseDN(render(pattern, sample, ldapv3.EscapeDN))
	if err != nil {
		return fmt.Errorf("not a valid DN pattern: %v", err)
	}
	if len(dn.RDNs) < 2 {
		return errors.New("must be a DN under the user base, such as uid={username},ou=people,dc=example,dc=com")
	}
	// Placeholders belong in the first RDN: the rest is a fixed parent.
	rest := strings.Join(splitRDNs(pattern)[1:], ",")
	if placeholder.MatchString(rest) {
		return errors.New("placeholders may only appear in the first part (the RDN), as in uid={username},ou=people,dc=example,dc=com")
	}
	if base != "" {
		b, err := ldapv3.ParseDN(base)
		if err == nil && !b.AncestorOfFold(dn) {
			return fmt.Errorf("makes DNs outside user_base_dn %s", base)
		}
	}
	return nil
}

// splitRDNs splits a DN string at unescaped commas.
func splitRDNs(dn string) []string {
	var out []string
	start, esc := 0, false
	for i := 0; i < len(dn); i++ {
		switch {
		case esc:
			esc = false
		case dn[i] == '\\':
			esc = true
		case dn[i] == ',':
			out = append(out, dn[start:i])
			start = i + 1
		}
	}
	return append(out, dn[start:])
}

// buildDN makes the DN of a new account from the pattern. Every value is
// escaped (RFC 4514), and the result is parsed again and must have the
// pattern's shape: an injection such as "a,ou=evil" or "x+cn=y" cannot add
// an RDN or an attribute.
func buildDN(pattern string, v values) (string, error) {
	if strings.TrimSpace(v.Username) == "" {
		return "", errors.New("username is empty")
	}
	if strings.Contains(pattern, "{display_name}") && v.DisplayName == "" {
		v.DisplayName = v.Username
	}
	dn := render(pattern, v, ldapv3.EscapeDN)
	parsed, err := ldapv3.ParseDN(dn)
	if err != nil {
		return "", fmt.Errorf("DN %q: %v", dn, err)
	}
	shape, err := ldapv3.ParseDN(render(pattern, values{Username: "u", DisplayName: "d", Email: "e@x"}, nil))
	if err != nil {
		return "", fmt.Errorf("DN pattern %q: %v", pattern, err)
	}
	if len(parsed.RDNs) != len(shape.RDNs) || len(parsed.RDNs[0].Attributes) != len(shape.RDNs[0].Attributes) {
		return "", fmt.Errorf("DN %q does not have the shape of the pattern %q", dn, pattern)
	}
	want := render(splitRDNs(pattern)[0], v, nil)
	_, wantValue, _ := strings.Cut(want, "=")
	if len(parsed.RDNs[0].Attributes) == 1 && parsed.RDNs[0].Attributes[0].Value != wantValue {
		return "", fmt.Errorf("DN %q does not keep the value %q", dn, wantValue)
	}
	return dn, nil
}

// rdnOf returns the attributes and values of a DN's first RDN.
func rdnOf(dn string) ([]*ldapv3.AttributeTypeAndValue, error) {
	parsed, err := ldapv3.ParseDN(dn)
	if err != nil {
		return nil, err
	}
	if len(parsed.RDNs) == 0 {
		return nil, errors.New("empty DN")
	}
	return parsed.RDNs[0].Attributes, nil
}

// normDN is the form in which the connector hands out DNs (account and
// group external ids, member lists): attribute types and values in lower
// case, each value escaped as RFC 4514 asks, no spaces around separators.
// Group members are stored as written by whoever added them, so the same
// entry can appear as "UID=Alice, ou=People,..." in a group and as
// "uid=alice,ou=people,..." in a search: one form makes them compare equal.
// The values of the naming attributes of users and groups (uid, cn, ou, dc)
// compare without case in every directory Provisor serves.
func normDN(dn string) string {
	parsed, err := ldapv3.ParseDN(dn)
	if err != nil || len(parsed.RDNs) == 0 {
		return strings.ToLower(strings.TrimSpace(dn))
	}
	var b strings.Builder
	for i, rdn := range parsed.RDNs {
		if i > 0 {
			b.WriteByte(',')
		}
		for j, a := range rdn.Attributes {
			if j > 0 {
				b.WriteByte('+')
			}
			b.WriteString(strings.ToLower(a.Type))
			b.WriteByte('=')
			b.WriteString(ldapv3.EscapeDN(strings.ToLower(a.Value)))
		}
	}
	return b.String()
}

// uniqueMemberDN strips the optional unique identifier ("#'0101'B") of a
// uniqueMember value.
func uniqueMemberDN(v string) string {
	if i := strings.LastIndex(v, "#'"); i > 0 && strings.HasSuffix(v, "'B") {
		return v[:i]
	}
	return v
}
