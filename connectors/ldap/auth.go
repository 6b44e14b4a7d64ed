package ldap

import (
	"context"
	"errors"
	"fmt"
	"strings"

	ldapv3 "github.com/go-ldap/ldap/v3"

	"github.com/provisor/provisor/connectors"
)

// DirectoryUser is a person who signed in with the directory. IsAdmin says
// the user is a member of the connector's admin_group_dn (on AD also
// through nested groups).
type DirectoryUser = connectors.SignInUser

// Sign-in errors. Transient errors (directory unreachable) are none of
// these: the caller should say "try again later", not "wrong password".
var (
	// ErrInvalidCredentials covers an unknown username, a wrong password,
	// and an account that is locked or disabled: the directory refuses the
	// bind in each case, and telling them apart would help an attacker.
	ErrInvalidCredentials = connectors.ErrInvalidCredentials
	// ErrLoginDisabled means the connector's login_enabled setting is off.
	ErrLoginDisabled = connectors.ErrLoginDisabled
)

// Authenticate checks a password against the directory: it finds the user
// by the username attribute (escaped into the filter) with the service
// account, binds as the user's DN on a connection of its own (never a
// pooled one, so the pool keeps the service identity), and reads whether
// the user is a member of admin_group_dn.
func (d *Directory) Authenticate(ctx context.Context, username, password string) (*DirectoryUser, error) {
	if !d.cfg.LoginEnabled {
		return nil, ErrLoginDisabled
	}
	// An empty password would make a simple bind "unauthenticated", which
	// many servers accept as anonymous: never let it through.
	if strings.TrimSpace(username) == "" || password == "" {
		return nil, ErrInvalidCredentials
	}
	var out *DirectoryUser
	a := d.cfg.Attributes
	err := d.do(ctx, func(c *ldapv3.Conn) error {
		res, err := c.Search(ldapv3.NewSearchRequest(d.cfg.UserBaseDN, ldapv3.ScopeWholeSubtree, ldapv3.NeverDerefAliases, 2, 0, false,
			d.userFilter(username), []string{a.Username, a.DisplayName, a.Email}, nil))
		if resultCode(err) == ldapv3.LDAPResultSizeLimitExceeded || (err == nil && len(res.Entries) > 1) {
			return ErrInvalidCredentials // ambiguous: refuse rather than guess
		}
		if err != nil {
			return err
		}
		if len(res.Entries) == 0 {
			return ErrInvalidCredentials
		}
		e := res.Entries[0]
		out = &DirectoryUser{DN: e.DN, Username: e.GetEqualFoldAttributeValue(a.Username),
			DisplayName: e.GetEqualFoldAttributeValue(a.DisplayName), Email: e.GetEqualFoldAttributeValue(a.Email)}
		return nil
	})
	if err != nil {
		if errors.Is(err, ErrInvalidCredentials) {
			return nil, err
		}
		return nil, classify("sign-in of "+username, err)
	}
	uc, _, err := dial(ctx, d.cfg, "", "")
	if err != nil {
		return nil, err
	}
	defer uc.Close()
	if err := uc.Bind(out.DN, password); err != nil {
		if resultCode(err) == ldapv3.LDAPResultInvalidCredentials {
			return nil, ErrInvalidCredentials
		}
		return nil, classify("sign-in of "+username, err)
	}
	if d.cfg.AdminGroupDN != "" {
		err := d.do(ctx, func(c *ldapv3.Conn) error {
			esc := ldapv3.EscapeFilter(out.DN)
			filter := d.flavor.adminFilter(esc)
			res, err := c.Search(ldapv3.NewSearchRequest(d.cfg.AdminGroupDN, ldapv3.ScopeBaseObject, ldapv3.NeverDerefAliases, 1, 0, false,
				filter, []string{"1.1"}, nil))
			if resultCode(err) == ldapv3.LDAPResultNoSuchObject {
				return nil // no admin group: nobody is admin
			}
			if err != nil {
				return err
			}
			out.IsAdmin = len(res.Entries) == 1
			return nil
		})
		if err != nil {
			return nil, classify(fmt.Sprintf("read membership of %s in %s", username, d.cfg.AdminGroupDN), err)
		}
	}
	return out, nil
}

var _ connectors.Connector = (*Directory)(nil)
