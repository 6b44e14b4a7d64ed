package ldap

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	ldapv3 "github.com/go-ldap/ldap/v3"

	"github.com/provisor/provisor/connectors"
)

// The connector types of this package.
const (
	TypeLDAP = "ldap"
	TypeAD   = "ad"
)

// Type returns the "ldap" connector type (OpenLDAP, 389 DS and alike).
func Type() connectors.Type { return ldapFlavor.connectorType() }

// ADType returns the "ad" connector type (Active Directory, Samba AD).
func ADType() connectors.Type { return adFlavor.connectorType() }

func (f flavor) connectorType() connectors.Type {
	return connectors.Type{
		Name:  f.name,
		Label: f.label,
		New: func(cfg connectors.Config) (connectors.Connector, error) {
			return f.open(cfg)
		},
		ValidateSettings: func(settings json.RawMessage, secrets map[string]string) map[string]string {
			_, problems := f.parse(settings, secrets)
			return problems
		},
		SecretBound: &secretBinding,
		Fields:      connectors.FieldsOf(Settings{}, settingsHelp),
	}
}

// secretBinding binds the bind password to the servers, to how their
// certificates are checked and to the account it is the password of (the
// settings tagged secret:"bound").
var secretBinding = connectors.SecretBinding{
	Settings: boundSettings,
	Labels:   map[string]string{SecretBindPassword: "the bind password"},
	Reason:   "the connector's server or bind DN changed",
}

// Open builds the directory connector of type typeName ("ldap" or "ad").
func Open(typeName string, cfg connectors.Config) (*Directory, error) {
	switch typeName {
	case TypeLDAP:
		return ldapFlavor.open(cfg)
	case TypeAD:
		return adFlavor.open(cfg)
	}
	return nil, fmt.Errorf("ldap: unknown connector type %q", typeName)
}

func (f flavor) open(cc connectors.Config) (*Directory, error) {
	cfg, problems := f.parse(cc.Settings, cc.Secrets)
	if len(problems) > 0 {
		return nil, connectors.FieldErrors(problems)
	}
	return &Directory{flavor: f, cfg: cfg, name: cc.Name, pool: newPool(cfg)}, nil
}

// Directory is one LDAP or Active Directory connector.
type Directory struct {
	flavor flavor
	cfg    *config
	name   string
	pool   *pool
}

// Close lets go of the pooled connections.
func (d *Directory) Close() error { return d.pool.Close() }

// DeletionThreshold is the share of accounts (percent) an import may delete
// or lock without an admin's approval.
func (d *Directory) DeletionThreshold() float64 { return d.cfg.threshold }

// Kind names the job kind of op as an admin reads it.
func (d *Directory) Kind(op connectors.Operation) string {
	p := d.flavor.kindPrefix
	switch op {
	case connectors.OpCreateAccount:
		return p + " CreateUser"
	case connectors.OpDeleteAccount:
		return p + " DeleteUser"
	case connectors.OpEnableAccount:
		return "Account.Enable"
	case connectors.OpDisableAccount:
		return "Account.Disable"
	case connectors.OpGrant:
		return p + " AddToGroup"
	case connectors.OpRevoke:
		return p + " RemoveFromGroup"
	case connectors.OpImport:
		return "Import"
	}
	return ""
}

// do runs fn on a pooled connection. A connection that was idle in the
// pool may have been cut (server restarted, idle timeout): when it fails as
// a connection, fn runs once more on a fresh one. The operations are
// idempotent, so a repeat after a lost answer does no harm. ctx cancels fn
// by closing its connection. The error is fn's, unclassified.
func (d *Directory) do(ctx context.Context, fn func(c *ldapv3.Conn) error) error {
	for attempt := 0; ; attempt++ {
		c, reused, err := d.pool.get(ctx)
		if err != nil {
			return err
		}
		stop := context.AfterFunc(ctx, func() { _ = c.Close() })
		err = fn(c)
		cut := !stop()
		broken := cut || isConnectionError(err)
		d.pool.put(c, broken)
		if cut || ctx.Err() != nil {
			return transient(fmt.Errorf("canceled: %w", context.Cause(ctx)))
		}
		if broken && reused && attempt == 0 {
			continue
		}
		return err
	}
}

// user is an account entry as the operations read it.
type user struct {
	DN          string
	Locked      string // pwdAccountLockedTime
	UAC         int64  // userAccountControl
	LockoutTime string
}

func (d *Directory) userAttrs() []string { return d.flavor.stateAttrs() }

// userFilter finds the accounts called by one of usernames, each escaped
// into the filter.
func (d *Directory) userFilter(usernames ...string) string {
	var b strings.Builder
	b.WriteString("(&" + d.cfg.UserFilter)
	if len(usernames) > 1 {
		b.WriteString("(|")
	}
	for _, n := range usernames {
		b.WriteString("(" + d.cfg.Attributes.Username + "=" + ldapv3.EscapeFilter(n) + ")")
	}
	if len(usernames) > 1 {
		b.WriteString(")")
	}
	b.WriteString(")")
	return b.String()
}

// ambiguous is the error of a username that more than one account has.
func (d *Directory) ambiguous(username string) error {
	return permanent(fmt.Errorf("more than one account is called %s under %s", username, d.cfg.UserBaseDN))
}

// findUser looks the account up by username (escaped into the filter), or
// by its DN when known. It returns nil when there is none.
func (d *Directory) findUser(c *ldapv3.Conn, a connectors.Account) (*user, error) {
	if strings.TrimSpace(a.Username) == "" && a.ExternalID == "" {
		return nil, permanent(errors.New("username is empty"))
	}
	var res *ldapv3.SearchResult
	var err error
	if a.ExternalID != "" {
		res, err = c.Search(ldapv3.NewSearchRequest(a.ExternalID, ldapv3.ScopeBaseObject, ldapv3.NeverDerefAliases, 1, 0, false,
			d.cfg.UserFilter, d.userAttrs(), nil))
		if resultCode(err) == ldapv3.LDAPResultNoSuchObject || (err == nil && len(res.Entries) == 0 && a.Username != "") {
			return d.findUser(c, connectors.Account{Username: a.Username})
		}
	} else {
		res, err = c.Search(ldapv3.NewSearchRequest(d.cfg.UserBaseDN, ldapv3.ScopeWholeSubtree, ldapv3.NeverDerefAliases, 2, 0, false,
			d.userFilter(a.Username), d.userAttrs(), nil))
	}
	if err != nil {
		if resultCode(err) == ldapv3.LDAPResultSizeLimitExceeded {
			return nil, d.ambiguous(a.Username)
		}
		return nil, err
	}
	switch len(res.Entries) {
	case 0:
		return nil, nil
	case 1:
	default:
		return nil, d.ambiguous(a.Username)
	}
	e := res.Entries[0]
	u := &user{DN: e.DN, Locked: e.GetEqualFoldAttributeValue("pwdAccountLockedTime"), LockoutTime: e.GetEqualFoldAttributeValue("lockoutTime")}
	if v := e.GetEqualFoldAttributeValue("userAccountControl"); v != "" {
		u.UAC, _ = strconv.ParseInt(v, 10, 64)
	}
	return u, nil
}

func noAccount(a connectors.Account) error {
	return permanent(fmt.Errorf("no such account: %s", a.Username))
}

// onAccount runs fn on a connection with the account's entry, which must
// exist; what names the operation in the error.
// The steps of an operation start at the lookup and go on on the same
// connection; fn records its own (modify) on t.
func (d *Directory) onAccount(ctx context.Context, a connectors.Account, what string, fn func(c *ldapv3.Conn, u *user, t *connectors.Timer) (connectors.Result, error)) (connectors.Result, error) {
	var res connectors.Result
	var t *connectors.Timer
	err := d.do(ctx, func(c *ldapv3.Conn) error {
		t = connectors.NewTimer()
		u, err := d.findUser(c, a)
		if err == nil && u == nil {
			err = noAccount(a)
		}
		t.Step("lookup", lookupDetail(a, u), err)
		if err != nil {
			return err
		}
		res, err = fn(c, u, t)
		return err
	})
	if t != nil {
		res.Steps = t.Steps
	}
	if err != nil {
		return connectors.Result{Steps: res.Steps}, classify(what, err)
	}
	return res, nil
}

// lookupDetail says what the lookup of a looked for and found.
func lookupDetail(a connectors.Account, u *user) string {
	what := "find the account " + a.Username
	if a.ExternalID != "" {
		what = "read " + a.ExternalID
	}
	if u == nil {
		return what + ": none"
	}
	return what + ": " + u.DN
}

// CreateAccount adds the account, or links to the one that exists.
func (d *Directory) CreateAccount(ctx context.Context, a connectors.Account) (connectors.Result, error) {
	var res connectors.Result
	var t *connectors.Timer
	err := d.do(ctx, func(c *ldapv3.Conn) error {
		t = connectors.NewTimer()
		u, err := d.findUser(c, connectors.Account{Username: a.Username})
		t.Step("lookup", lookupDetail(connectors.Account{Username: a.Username}, u), err)
		if err != nil {
			return err
		}
		if u != nil {
			t.Step("claim", "link the existing entry "+u.DN, nil)
			res = connectors.Result{ExternalID: normDN(u.DN), Message: "account " + a.Username + " already exists (" + u.DN + ")"}
			return nil
		}
		dn, req, err := d.addRequest(a)
		if err != nil {
			return permanent(err)
		}
		err = c.Add(req)
		if resultCode(err) == ldapv3.LDAPResultEntryAlreadyExists {
			t.Step("modify", "add "+dn+": it exists", nil)
			// Added by an earlier attempt whose answer was lost, or an entry
			// at that DN that is not this account.
			if u, ferr := d.findUser(c, connectors.Account{Username: a.Username}); ferr == nil && u != nil {
				t.Step("claim", "link the existing entry "+u.DN, nil)
				res = connectors.Result{ExternalID: normDN(u.DN), Message: "account " + a.Username + " already exists (" + u.DN + ")"}
				return nil
			}
			t.Step("lookup", "find the account "+a.Username+" at "+dn, err)
			return fmt.Errorf("%s exists but is not the account %s: %w", dn, a.Username, err)
		}
		t.Step("modify", "add "+dn, err)
		if err != nil {
			return err
		}
		res = connectors.Result{Changed: true, ExternalID: normDN(dn), Message: "account " + a.Username + " created (" + dn + ")",
			Changes: addedProperties(dn, req)}
		return nil
	})
	if t != nil {
		res.Steps = t.Steps
	}
	return res, classify("create "+a.Username, err)
}

// secretAttributes are never shown among an entry's modified properties.
var secretAttributes = map[string]bool{"userpassword": true, "unicodepwd": true}

// addedProperties are the attributes of a new entry, as modified
// properties (nothing before), its passwords left out.
func addedProperties(dn string, req *ldapv3.AddRequest) []connectors.PropertyChange {
	out := []connectors.PropertyChange{{Name: "dn", New: dn}}
	for _, attr := range req.Attributes {
		if secretAttributes[strings.ToLower(attr.Type)] {
			out = append(out, connectors.PropertyChange{Name: attr.Type, New: "(set)"})
			continue
		}
		out = append(out, connectors.PropertyChange{Name: attr.Type, New: strings.Join(attr.Vals, "; ")})
	}
	return out
}

// addRequest builds the entry of a new account.
func (d *Directory) addRequest(a connectors.Account) (string, *ldapv3.AddRequest, error) {
	v := values{Username: a.Username, DisplayName: a.DisplayName, Email: a.Email}
	if v.DisplayName == "" {
		v.DisplayName = v.Username
	}
	dn, err := buildDN(d.cfg.UserDNPattern, v)
	if err != nil {
		return "", nil, err
	}
	rdn, err := rdnOf(dn)
	if err != nil {
		return "", nil, err
	}
	var names []string
	attrs := map[string][]string{}
	set := func(name string, vals ...string) {
		key := strings.ToLower(name)
		if _, ok := attrs[key]; !ok {
			names = append(names, name)
		}
		for _, val := range vals {
			dup := false
			for _, have := range attrs[key] {
				dup = dup || have == val
			}
			if !dup && val != "" {
				attrs[key] = append(attrs[key], val)
			}
		}
	}
	set("objectClass", d.cfg.UserObjectClasses...)
	set(d.cfg.Attributes.Username, a.Username)
	for _, av := range rdn {
		set(av.Type, av.Value)
	}
	for name, tmpl := range d.cfg.UserAttributes {
		// AD's cn is single-valued: the RDN gave it already.
		if d.flavor.singleValuedCN && strings.EqualFold(name, "cn") && len(attrs["cn"]) > 0 {
			continue
		}
		set(name, render(tmpl, v, nil))
	}
	var password string
	if d.cfg.InitialPassword == "generate" {
		if password, err = generatePassword(d.cfg.PasswordLength); err != nil {
			return "", nil, err
		}
	}
	if d.flavor.samAccountName {
		if len(a.Username) > 20 {
			return "", nil, fmt.Errorf("sAMAccountName %q is longer than 20 characters", a.Username)
		}
		if d.cfg.UPNSuffix != "" {
			set("userPrincipalName", a.Username+"@"+d.cfg.UPNSuffix)
		}
	}
	switch {
	case password != "" && d.flavor.unicodePwd:
		set("unicodePwd", unicodePwd(password))
	case password != "":
		h, err := ssha(password)
		if err != nil {
			return "", nil, err
		}
		set("userPassword", h)
	}
	if d.flavor.accountControl {
		// Without a password the account starts disabled.
		if password != "" {
			set("userAccountControl", strconv.Itoa(uacNormal))
		} else {
			set("userAccountControl", strconv.Itoa(uacNormal|uacDisabled))
		}
	}
	req := ldapv3.NewAddRequest(dn, nil)
	for _, n := range names {
		if vals := attrs[strings.ToLower(n)]; len(vals) > 0 {
			req.Attribute(n, vals)
		}
	}
	return dn, req, nil
}

// DeleteAccount deletes the account; a missing one is no error.
//
// On LDAP the account first leaves the groups under the group base that
// list it (leaveGroups): a directory without a referential integrity
// overlay keeps a deleted entry's DN in its groups, where an account made
// later at that DN would inherit its memberships, and slapd's
// memberof-refint cannot take the last member out of a groupOfNames. When
// the account is the last member of a group whose object class needs one,
// it is not deleted: the permanent error names the group. Active
// Directory drops the links of a deleted object itself.
func (d *Directory) DeleteAccount(ctx context.Context, a connectors.Account) (connectors.Result, error) {
	var res connectors.Result
	var t *connectors.Timer
	err := d.do(ctx, func(c *ldapv3.Conn) error {
		t = connectors.NewTimer()
		u, err := d.findUser(c, a)
		t.Step("lookup", lookupDetail(a, u), err)
		if err != nil {
			return err
		}
		if u == nil {
			res = connectors.Result{Message: "account " + a.Username + " does not exist"}
			if a.ExternalID == "" || d.flavor.linkedMembers {
				return nil
			}
			// An entry deleted before may still be listed where nothing
			// removed it.
			left, stuck, err := d.leaveGroups(c, a.ExternalID)
			t.Step("modify", "remove "+a.ExternalID+" from its groups", err)
			if err != nil {
				return err
			}
			if len(left) > 0 {
				res.Changed, res.Message = true, res.Message+"; its DN was "+leftGroups(left)
			}
			if len(stuck) > 0 {
				res.Message += "; its DN is still the last member of " + strings.Join(stuck, "; ") +
					", whose object class needs one: give the group another member or delete it"
			}
			return nil
		}
		var left, stuck []string
		if !d.flavor.linkedMembers {
			left, stuck, err = d.leaveGroups(c, u.DN)
			t.Step("modify", "remove "+u.DN+" from its groups", err)
			if err != nil {
				return err
			}
			if len(stuck) > 0 {
				msg := fmt.Sprintf("%s is the last member of %s, whose object class needs one: give the group another member "+
					"or delete it, then retry; the account was not deleted", a.Username, strings.Join(stuck, "; "))
				if len(left) > 0 {
					msg += " (it was " + leftGroups(left) + ")"
				}
				return permanent(errors.New(msg))
			}
		}
		res = connectors.Result{Changed: true, Message: "account " + a.Username + " deleted (" + u.DN + ")",
			Changes: []connectors.PropertyChange{{Name: "dn", Old: u.DN}}}
		err = c.Del(ldapv3.NewDelRequest(u.DN, nil))
		t.Step("modify", "delete "+u.DN, err)
		if resultCode(err) == ldapv3.LDAPResultNoSuchObject {
			res = connectors.Result{Changed: len(left) > 0, Message: "account " + a.Username + " does not exist"}
		} else if err != nil {
			return err
		}
		if len(left) > 0 {
			res.Message += "; " + leftGroups(left)
		}
		return nil
	})
	if t != nil {
		res.Steps = t.Steps
	}
	return res, classify("delete "+a.Username, err)
}

// leftGroups says which groups an account was removed from.
func leftGroups(groups []string) string {
	const shown = 10
	msg := fmt.Sprintf("removed from %d group(s): %s", len(groups), strings.Join(groups[:min(len(groups), shown)], "; "))
	if len(groups) > shown {
		msg += fmt.Sprintf(" and %d more", len(groups)-shown)
	}
	return msg
}

// leaveGroups removes memberDN from every group under the group base that
// lists it as member or uniqueMember (the DN escaped into the filter). It
// returns the groups it left, and those that refused because memberDN is
// their last member and their object class needs one. The error is the
// directory's, for anything else.
func (d *Directory) leaveGroups(c *ldapv3.Conn, memberDN string) (left, stuck []string, err error) {
	esc := ldapv3.EscapeFilter(memberDN)
	for _, attr := range []string{"member", "uniqueMember"} {
		found, err := c.SearchWithPaging(ldapv3.NewSearchRequest(d.cfg.GroupBaseDN, ldapv3.ScopeWholeSubtree, ldapv3.NeverDerefAliases,
			0, 0, false, "("+attr+"="+esc+")", []string{"1.1"}, nil), uint32(d.cfg.PageSize))
		if err != nil {
			return left, stuck, fmt.Errorf("find the groups of %s: %w", memberDN, err)
		}
		for _, g := range found.Entries {
			req := ldapv3.NewModifyRequest(g.DN, nil)
			req.Delete(attr, []string{memberDN})
			err := c.Modify(req)
			switch {
			case err == nil:
				left = append(left, g.DN)
			case resultCode(err) == ldapv3.LDAPResultNoSuchAttribute, resultCode(err) == ldapv3.LDAPResultNoSuchObject:
				// Gone meanwhile.
			case resultCode(err) == ldapv3.LDAPResultObjectClassViolation:
				stuck = append(stuck, g.DN)
			default:
				return left, stuck, fmt.Errorf("remove %s from %s: %w", memberDN, g.DN, err)
			}
		}
	}
	return left, stuck, nil
}

// userAccountControl flags.
const (
	uacDisabled = 0x2
	uacNormal   = 0x200
)

// lockedForever is the pwdAccountLockedTime that locks until an admin unlocks.
const lockedForever = "000001010000Z"

// EnableAccount unlocks the account: on LDAP it removes
// pwdAccountLockedTime; on AD it clears ACCOUNTDISABLE in
// userAccountControl (other flags kept) and a lockout (lockoutTime 0).
func (d *Directory) EnableAccount(ctx context.Context, a connectors.Account) (connectors.Result, error) {
	return d.setEnabled(ctx, a, true, "enable")
}

// DisableAccount locks the account: on LDAP with pwdAccountLockedTime
// 000001010000Z (password policy overlay), on AD by setting ACCOUNTDISABLE.
func (d *Directory) DisableAccount(ctx context.Context, a connectors.Account) (connectors.Result, error) {
	return d.setEnabled(ctx, a, false, "disable")
}

// Unlock clears an AD lockout (lockoutTime 0) or an LDAP lock, leaving an
// AD account's enabled state alone.
func (d *Directory) Unlock(ctx context.Context, a connectors.Account) (connectors.Result, error) {
	if !d.flavor.accountControl {
		return d.EnableAccount(ctx, a)
	}
	return d.setEnabled(ctx, a, true, "unlock")
}

func (d *Directory) setEnabled(ctx context.Context, a connectors.Account, enable bool, action string) (connectors.Result, error) {
	return d.onAccount(ctx, a, action+" "+a.Username, func(c *ldapv3.Conn, u *user, t *connectors.Timer) (connectors.Result, error) {
		req := ldapv3.NewModifyRequest(u.DN, nil)
		var did []string
		var props []connectors.PropertyChange
		if d.flavor.accountControl {
			uac := u.UAC
			switch action {
			case "enable":
				uac &^= uacDisabled
			case "disable":
				uac |= uacDisabled
			}
			if uac != u.UAC {
				req.Replace("userAccountControl", []string{strconv.FormatInt(uac, 10)})
				did = append(did, map[bool]string{true: "enabled", false: "disabled"}[enable])
				props = append(props, connectors.PropertyChange{Name: "userAccountControl", Old: strconv.FormatInt(u.UAC, 10), New: strconv.FormatInt(uac, 10)})
			}
			if enable && u.LockoutTime != "" && u.LockoutTime != "0" {
				req.Replace("lockoutTime", []string{"0"})
				did = append(did, "unlocked")
				props = append(props, connectors.PropertyChange{Name: "lockoutTime", Old: u.LockoutTime, New: "0"})
			}
		} else if enable && u.Locked != "" {
			req.Delete("pwdAccountLockedTime", nil)
			did = append(did, "unlocked")
			props = append(props, connectors.PropertyChange{Name: "pwdAccountLockedTime", Old: u.Locked})
		} else if !enable && u.Locked != lockedForever {
			req.Replace("pwdAccountLockedTime", []string{lockedForever})
			did = append(did, "locked")
			props = append(props, connectors.PropertyChange{Name: "pwdAccountLockedTime", Old: u.Locked, New: lockedForever})
		}
		if len(did) == 0 {
			word := map[bool]string{true: "enabled", false: "disabled"}[enable]
			if !d.flavor.accountControl {
				word = map[bool]string{true: "unlocked", false: "locked"}[enable]
			}
			return connectors.Result{Message: "account " + a.Username + " was already " + word}, nil
		}
		err := c.Modify(req)
		t.Step("modify", strings.Join(did, " and ")+" "+u.DN, err)
		if resultCode(err) == ldapv3.LDAPResultNoSuchAttribute && enable {
			return connectors.Result{Message: "account " + a.Username + " was already unlocked"}, nil
		}
		if err != nil {
			return connectors.Result{}, err
		}
		return connectors.Result{Changed: true, Message: "account " + a.Username + " " + strings.Join(did, " and "), Changes: props}, nil
	})
}

func checkGroupDN(e connectors.Entitlement) error {
	if e.ExternalID == "" {
		return permanent(fmt.Errorf("entitlement %s has no DN", e.Name))
	}
	if _, err := ldapv3.ParseDN(e.ExternalID); err != nil {
		return permanent(fmt.Errorf("entitlement %s: %q is not a valid DN: %v", e.Name, e.ExternalID, err))
	}
	return nil
}

func groupName(e connectors.Entitlement) string {
	if e.Name != "" {
		return e.Name
	}
	return e.ExternalID
}

// Grant adds the account to the group (member or uniqueMember); an
// existing membership is no error.
func (d *Directory) Grant(ctx context.Context, a connectors.Account, e connectors.Entitlement) (connectors.Result, error) {
	if err := checkGroupDN(e); err != nil {
		return connectors.Result{}, err
	}
	return d.onAccount(ctx, a, "add "+a.Username+" to "+groupName(e), func(c *ldapv3.Conn, u *user, t *connectors.Timer) (connectors.Result, error) {
		r, err := d.addMember(c, a, e, u.DN)
		t.Step("modify", "add "+u.DN+" to "+e.ExternalID, err)
		return r, err
	})
}

// addMember adds memberDN, the entry of a, to the group e.
func (d *Directory) addMember(c *ldapv3.Conn, a connectors.Account, e connectors.Entitlement, memberDN string) (connectors.Result, error) {
	req := ldapv3.NewModifyRequest(e.ExternalID, nil)
	req.Add(d.cfg.GroupMemberAttribute, []string{memberDN})
	err := c.Modify(req)
	switch resultCode(err) {
	case ldapv3.LDAPResultAttributeOrValueExists, ldapv3.LDAPResultEntryAlreadyExists:
		// AD answers 68 for a member that is there already.
		return connectors.Result{Message: a.Username + " was already a member of " + groupName(e)}, nil
	case ldapv3.LDAPResultNoSuchObject:
		return connectors.Result{}, noGroup(e, err)
	}
	if err != nil {
		return connectors.Result{}, err
	}
	return d.changed(a, e, memberDN, true), nil
}

// changed is the result of a membership of memberDN added (or removed),
// with the group's member attribute as its modified property.
func (d *Directory) changed(a connectors.Account, e connectors.Entitlement, memberDN string, added bool) connectors.Result {
	prop := connectors.PropertyChange{Name: d.cfg.GroupMemberAttribute + " of " + e.ExternalID}
	if added {
		prop.New = memberDN
		return connectors.Result{Changed: true, Message: a.Username + " added to " + groupName(e), Changes: []connectors.PropertyChange{prop}}
	}
	prop.Old = memberDN
	return connectors.Result{Changed: true, Message: a.Username + " removed from " + groupName(e), Changes: []connectors.PropertyChange{prop}}
}

func noGroup(e connectors.Entitlement, err error) error {
	return permanent(fmt.Errorf("no such group: %s: %w", e.ExternalID, err))
}

func notMember(a connectors.Account, e connectors.Entitlement) connectors.Result {
	return connectors.Result{Message: a.Username + " was not a member of " + groupName(e)}
}

// Revoke removes the account from the group; an absent membership or a
// missing account is no error.
func (d *Directory) Revoke(ctx context.Context, a connectors.Account, e connectors.Entitlement) (connectors.Result, error) {
	if err := checkGroupDN(e); err != nil {
		return connectors.Result{}, err
	}
	var res connectors.Result
	var t *connectors.Timer
	err := d.do(ctx, func(c *ldapv3.Conn) error {
		t = connectors.NewTimer()
		u, err := d.findUser(c, a)
		t.Step("lookup", lookupDetail(a, u), err)
		if err != nil {
			return err
		}
		if u == nil {
			res = notMember(a, e)
			return nil
		}
		res, err = d.removeMember(c, a, e, u.DN)
		t.Step("modify", "remove "+u.DN+" from "+e.ExternalID, err)
		return err
	})
	if t != nil {
		res.Steps = t.Steps
	}
	return res, classify("remove "+a.Username+" from "+groupName(e), err)
}

// removeMember removes memberDN, the entry of a, from the group e.
func (d *Directory) removeMember(c *ldapv3.Conn, a connectors.Account, e connectors.Entitlement, memberDN string) (connectors.Result, error) {
	req := ldapv3.NewModifyRequest(e.ExternalID, nil)
	req.Delete(d.cfg.GroupMemberAttribute, []string{memberDN})
	err := c.Modify(req)
	switch resultCode(err) {
	case ldapv3.LDAPResultNoSuchAttribute:
		return notMember(a, e), nil
	case ldapv3.LDAPResultUnwillingToPerform:
		// AD refuses to remove a value that is not there with 53.
		if member, cerr := d.isMember(c, e.ExternalID, memberDN); cerr == nil && !member {
			return notMember(a, e), nil
		}
	case ldapv3.LDAPResultNoSuchObject:
		return connectors.Result{}, noGroup(e, err)
	case ldapv3.LDAPResultObjectClassViolation:
		return connectors.Result{}, permanent(fmt.Errorf("%s is the last member of %s, and its object class needs one: %w", a.Username, groupName(e), err))
	}
	if err != nil {
		return connectors.Result{}, err
	}
	return d.changed(a, e, memberDN, false), nil
}

// isMember reports whether memberDN is a direct member of the group.
func (d *Directory) isMember(c *ldapv3.Conn, groupDN, memberDN string) (bool, error) {
	esc := ldapv3.EscapeFilter(memberDN)
	res, err := c.Search(ldapv3.NewSearchRequest(groupDN, ldapv3.ScopeBaseObject, ldapv3.NeverDerefAliases, 1, 0, false,
		"(|(member="+esc+")(uniqueMember="+esc+"))", []string{"1.1"}, nil))
	if err != nil {
		return false, err
	}
	return len(res.Entries) == 1, nil
}

// Check binds to every configured URL and reads both bases. It reports
// what it found, how long it took, and warns when TLS is off or not verified.
func (d *Directory) Check(ctx context.Context) connectors.Health {
	start := time.Now()
	var parts, warnings []string
	var conn *ldapv3.Conn
	var reached string
	for _, u := range d.cfg.URLs {
		one := *d.cfg
		one.URLs = []string{u}
		t := time.Now()
		c, _, err := dial(ctx, &one, d.cfg.BindDN, d.cfg.bindPassword)
		if err != nil {
			msg := err.Error()
			msg = strings.TrimPrefix(msg, "no directory server answered: ")
			parts = append(parts, "FAILED "+msg)
			continue
		}
		parts = append(parts, fmt.Sprintf("%s answered (%d ms)", u, time.Since(t).Milliseconds()))
		if conn == nil {
			conn, reached = c, u
		} else {
			_ = c.Close()
		}
	}
	if conn == nil {
		return connectors.Health{Message: "no server answered: " + strings.Join(parts, "; "), Latency: time.Since(start)}
	}
	defer conn.Close()
	if reached != d.cfg.URLs[0] {
		warnings = append(warnings, "WARNING: the first URL did not answer; working on "+reached)
	}
	count := func(base, filter string) (int, error) {
		res, err := conn.SearchWithPaging(ldapv3.NewSearchRequest(base, ldapv3.ScopeWholeSubtree, ldapv3.NeverDerefAliases, 0, 0, false,
			filter, []string{"1.1"}, nil), uint32(d.cfg.PageSize))
		if err != nil {
			return 0, classify("search "+base, err)
		}
		return len(res.Entries), nil
	}
	users, err := count(d.cfg.UserBaseDN, d.cfg.UserFilter)
	if err != nil {
		return connectors.Health{Message: strings.Join(parts, "; ") + "; " + err.Error(), Latency: time.Since(start)}
	}
	groups, err := count(d.cfg.GroupBaseDN, d.cfg.GroupFilter)
	if err != nil {
		return connectors.Health{Message: strings.Join(parts, "; ") + "; " + err.Error(), Latency: time.Since(start)}
	}
	who := d.cfg.BindDN
	if who == "" {
		who = "anonymous"
	}
	took := time.Since(start)
	msg := fmt.Sprintf("bound as %s; %d users under %s, %d groups under %s; %s; took %d ms",
		who, users, d.cfg.UserBaseDN, groups, d.cfg.GroupBaseDN, strings.Join(parts, "; "), took.Milliseconds())
	if d.cfg.InsecureSkipVerify {
		warnings = append(warnings, "WARNING: TLS certificate verification is off (insecure_skip_verify): anyone on the network path can pose as the directory; give ca_cert instead")
	}
	for _, u := range d.cfg.URLs {
		if pu, err := url.Parse(u); err == nil && pu.Scheme == "ldap" && !d.cfg.StartTLS {
			warnings = append(warnings, "WARNING: "+u+" is not encrypted (no LDAPS or StartTLS): the bind password crosses the network in clear")
		}
	}
	if len(warnings) > 0 {
		msg += "; " + strings.Join(warnings, "; ")
	}
	return connectors.Health{OK: true, Message: msg, Latency: took}
}

// SetPassword sets an account's password: on AD as unicodePwd (over TLS),
// on LDAP through the password modify extended operation, so the server
// hashes it as its policy says. A password the directory's policy refuses
// is a permanent error with the directory's message.
func (d *Directory) SetPassword(ctx context.Context, a connectors.Account, password string) (connectors.Result, error) {
	return d.onAccount(ctx, a, "set the password of "+a.Username, func(c *ldapv3.Conn, u *user, t *connectors.Timer) (connectors.Result, error) {
		var err error
		if d.flavor.unicodePwd {
			req := ldapv3.NewModifyRequest(u.DN, nil)
			req.Replace("unicodePwd", []string{unicodePwd(password)})
			err = c.Modify(req)
		} else {
			_, err = c.PasswordModify(ldapv3.NewPasswordModifyRequest(u.DN, "", password))
		}
		t.Step("modify", "set the password of "+u.DN, err)
		if err != nil {
			return connectors.Result{}, err
		}
		return connectors.Result{Changed: true, Message: "password of " + a.Username + " set"}, nil
	})
}
