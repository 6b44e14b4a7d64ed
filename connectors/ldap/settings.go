package ldap

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/url"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	ldapv3 "github.com/go-ldap/ldap/v3"

	"github.com/provisor/provisor/connectors"
)

// Settings are a directory connector's settings as stored (JSON). Secrets
// are apart: the bind password is the secret "bind_password". The settings
// tagged secret:"bound" decide where the password is sent (see
// connectors.SecretBinding): changing one needs the password again.
type Settings struct {
	// URLs are tried in order: ldap://host:389 or ldaps://host:636.
	URLs []string `json:"urls" secret:"bound"`
	// StartTLS upgrades ldap:// connections to TLS before the bind.
	StartTLS bool `json:"start_tls,omitempty" secret:"bound"`
	// CACert is the PEM certificate (or bundle) that signs the servers'
	// certificates; empty trusts the system's roots.
	CACert string `json:"ca_cert,omitempty" secret:"bound"`
	// InsecureSkipVerify accepts any server certificate. For tests only:
	// every connection check warns about it.
	InsecureSkipVerify bool `json:"insecure_skip_verify,omitempty" secret:"bound"`
	// TLSServerName is the name the certificate must carry, when it is not
	// the host of the URL.
	TLSServerName string `json:"tls_server_name,omitempty" secret:"bound"`

	// BindDN is the service account; empty binds anonymously.
	BindDN string `json:"bind_dn,omitempty" secret:"bound"`

	UserBaseDN  string `json:"user_base_dn"`
	UserFilter  string `json:"user_filter,omitempty"`
	GroupBaseDN string `json:"group_base_dn"`
	GroupFilter string `json:"group_filter,omitempty"`

	// UserDNPattern builds the DN of a new account, such as
	// "uid={username},ou=people,dc=example,dc=test". Placeholders:
	// {username}, {display_name}, {email}; their values are escaped.
	UserDNPattern string `json:"user_dn_pattern,omitempty"`
	// UserObjectClasses of a new account.
	UserObjectClasses []string `json:"user_object_classes,omitempty"`
	// UserAttributes are the initial attributes of a new account, with the
	// placeholders of UserDNPattern; attributes that come out empty are left out.
	UserAttributes map[string]string `json:"user_attributes,omitempty"`
	// GroupMemberAttribute is changed by grants and revocations: member
	// (groupOfNames, AD groups) or uniqueMember (groupOfUniqueNames).
	GroupMemberAttribute string `json:"group_member_attribute,omitempty"`

	// Attributes map the portal's fields to the directory's attributes.
	Attributes AttributeMap `json:"attributes"`

	// InitialPassword of a new account: "generate" (random, never shown or
	// stored; it lets the account be created enabled under a password
	// policy) or "none".
	InitialPassword string `json:"initial_password,omitempty"`
	// PasswordLength of generated passwords.
	PasswordLength int `json:"password_length,omitempty"`
	// UPNSuffix makes userPrincipalName (username@suffix) on AD; by default
	// the DNS name of the user base's dc= parts.
	UPNSuffix string `json:"upn_suffix,omitempty"`

	// ConnectTimeout bounds dialling one URL, RequestTimeout one operation.
	ConnectTimeout string `json:"connect_timeout,omitempty"`
	RequestTimeout string `json:"request_timeout,omitempty"`
	// PageSize of paged searches.
	PageSize int `json:"page_size,omitempty"`
	// PoolSize is how many connections a connector keeps at most.
	PoolSize int `json:"pool_size,omitempty"`
	// DeltaOverlap is read again at the start of every LDAP delta import,
	// to cover a clock difference between Provisor and the servers.
	DeltaOverlap string `json:"delta_overlap,omitempty"`
	// DeletionThresholdPercent stops an import that would delete or lock
	// more than this share of the connector's accounts until an admin
	// approves it. Default 10; 100 never stops.
	DeletionThresholdPercent *float64 `json:"deletion_threshold_percent,omitempty"`

	// LoginEnabled lets people sign in to the portal with their directory
	// password; members of AdminGroupDN sign in as admins.
	LoginEnabled bool   `json:"login_enabled,omitempty"`
	AdminGroupDN string `json:"admin_group_dn,omitempty"`
}

// AttributeMap names the directory attributes behind the portal's fields.
type AttributeMap struct {
	Username    string `json:"username,omitempty"`
	DisplayName string `json:"display_name,omitempty"`
	Email       string `json:"email,omitempty"`
	// Correlation links an imported account to an identity: its value is
	// matched with identities imported from this connector, then with
	// usernames and emails. Default: the username attribute.
	Correlation string `json:"correlation,omitempty"`
	// Manager holds the DN of the account's manager (default manager, on
	// LDAP and AD alike). Imports make the identity of the account at that
	// DN the manager of the account's identity; "none" reads no manager.
	Manager string `json:"manager,omitempty"`
}

// NoManager is the Manager attribute setting that reads no manager.
const NoManager = "none"

// SecretBindPassword is the secret holding the bind DN's password.
const SecretBindPassword = "bind_password"

// config is Settings with defaults applied and values parsed.
type config struct {
	Settings
	bindPassword   string
	connectTimeout time.Duration
	requestTimeout time.Duration
	deltaOverlap   time.Duration
	threshold      float64
	roots          *x509.CertPool
}

// flavor is what differs between the ldap and ad types.
type flavor struct {
	name          string
	label         string
	kindPrefix    string
	userFilter    string
	groupFilter   string
	objectClasses []string
	attributes    AttributeMap
	userAttrs     map[string]string
	rdnAttr       string
	password      string
	// watermark is the attribute of delta imports.
	watermark string

	// The ways Active Directory differs from other directories, one field
	// each, so that the code says which one it relies on.

	// nestedAdminGroup: the admin group check follows nested groups
	// (LDAP_MATCHING_RULE_IN_CHAIN) instead of reading member and
	// uniqueMember.
	nestedAdminGroup bool
	// accountControl: an account is created, enabled, disabled and unlocked
	// through userAccountControl (and lockoutTime), and read as locked when
	// disabled; a lockout is apart from being disabled. Otherwise
	// pwdAccountLockedTime locks an account.
	accountControl bool
	// samAccountName: usernames are sAMAccountNames (at most 20
	// characters) and get a userPrincipalName when a UPN suffix is set.
	samAccountName bool
	// singleValuedCN: cn is single-valued, so the RDN alone gives it.
	singleValuedCN bool
	// unicodePwd: a password is written to unicodePwd, which the server
	// takes only over TLS; otherwise userPassword (SSHA) on create and the
	// password modify operation after.
	unicodePwd bool
	// linkedMembers: the server removes a deleted entry from its groups.
	linkedMembers bool
	// usnWatermark: delta imports start from the domain controller's
	// update sequence number, not from a time.
	usnWatermark bool
}

// stateAttrs are the attributes that tell whether an account is enabled
// or locked.
func (f flavor) stateAttrs() []string {
	if f.accountControl {
		return []string{"userAccountControl", "lockoutTime"}
	}
	return []string{"pwdAccountLockedTime"}
}

// locked reads whether the account of e is locked (on AD: disabled).
func (f flavor) locked(e *ldapv3.Entry) bool {
	if f.accountControl {
		uac, _ := strconv.ParseInt(e.GetEqualFoldAttributeValue("userAccountControl"), 10, 64)
		return uac&uacDisabled != 0
	}
	return e.GetEqualFoldAttributeValue("pwdAccountLockedTime") != ""
}

// adminFilter finds the admin group when it has the entry dn (escaped)
// as a member.
func (f flavor) adminFilter(esc string) string {
	if f.nestedAdminGroup {
		// LDAP_MATCHING_RULE_IN_CHAIN follows nested groups.
		return "(member:1.2.840.113556.1.4.1941:=" + esc + ")"
	}
	return "(|(member=" + esc + ")(uniqueMember=" + esc + "))"
}

var ldapFlavor = flavor{
	name: TypeLDAP, label: "LDAP directory (OpenLDAP, 389 DS)", kindPrefix: "LDAP",
	userFilter:    "(objectClass=inetOrgPerson)",
	groupFilter:   "(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames))",
	objectClasses: []string{"top", "person", "organizationalPerson", "inetOrgPerson"},
	attributes:    AttributeMap{Username: "uid", DisplayName: "cn", Email: "mail"},
	userAttrs:     map[string]string{"cn": "{display_name}", "sn": "{display_name}", "displayName": "{display_name}", "mail": "{email}"},
	rdnAttr:       "uid", password: "none", watermark: "modifyTimestamp",
}

var adFlavor = flavor{
	name: TypeAD, label: "Active Directory", kindPrefix: "AD",
	userFilter:    "(&(objectCategory=person)(objectClass=user))",
	groupFilter:   "(objectClass=group)",
	objectClasses: []string{"top", "person", "organizationalPerson", "user"},
	attributes:    AttributeMap{Username: "sAMAccountName", DisplayName: "displayName", Email: "mail"},
	userAttrs:     map[string]string{"displayName": "{display_name}", "mail": "{email}"},
	rdnAttr:       "CN", password: "generate", watermark: "uSNChanged",
	nestedAdminGroup: true, accountControl: true, samAccountName: true, singleValuedCN: true,
	unicodePwd: true, linkedMembers: true, usnWatermark: true,
}

// knownSettings are the JSON names of Settings, for rejecting unknown ones.
var knownSettings = func() map[string]bool {
	m := map[string]bool{}
	t := reflect.TypeOf(Settings{})
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		m[name] = true
	}
	return m
}()

// boundSettings are the JSON names of the settings tagged secret:"bound".
var boundSettings = connectors.BoundSettings(Settings{})

// parse reads and checks settings and secrets. Problems are keyed by field
// ("settings.urls", "secrets.bind_password"); cfg is nil when there are any.
func (f flavor) parse(raw json.RawMessage, secrets map[string]string) (*config, map[string]string) {
	problems := map[string]string{}
	s, ok := decodeSettings(raw, problems)
	if !ok {
		return nil, problems
	}
	for k := range secrets {
		if k != SecretBindPassword {
			problems["secrets."+k] = "unknown secret; the only one is " + SecretBindPassword
		}
	}
	c := &config{Settings: s, bindPassword: secrets[SecretBindPassword]}
	f.defaults(c)
	f.checkServers(c, problems)
	checkDirectory(c, problems)
	checkAccounts(c, problems)
	checkLimits(c, problems)
	if c.LoginEnabled && len(c.URLs) > 0 && c.BindDN == "" {
		problems["settings.login_enabled"] = "sign-in needs a bind_dn to find people by username"
	}
	if len(problems) > 0 {
		return nil, problems
	}
	return c, nil
}

// decodeSettings reads raw (empty is {}) into Settings, noting settings of
// no known name; ok is false when raw cannot be read at all.
func decodeSettings(raw json.RawMessage, problems map[string]string) (s Settings, ok bool) {
	var loose map[string]json.RawMessage
	if len(bytes.TrimSpace(raw)) == 0 {
		raw = json.RawMessage(`{}`)
	}
	if err := json.Unmarshal(raw, &loose); err != nil {
		problems["settings"] = "must be a JSON object"
		return s, false
	}
	for k := range loose {
		if !knownSettings[k] {
			problems["settings."+k] = "unknown setting; known: " + strings.Join(sortedKeys(knownSettings), ", ")
		}
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		if te, ok := err.(*json.UnmarshalTypeError); ok {
			problems["settings."+te.Field] = "must be " + te.Type.String()
		} else {
			problems["settings"] = err.Error()
		}
		return s, false
	}
	return s, true
}

// checkServers checks the URLs of the servers and how their certificates
// are checked, and reads the CA certificate.
func (f flavor) checkServers(c *config, problems map[string]string) {
	if len(c.URLs) == 0 {
		problems["settings.urls"] = "required: one or more URLs such as ldaps://dc1.example.com:636, tried in order"
	}
	for i, u := range c.URLs {
		field := fmt.Sprintf("settings.urls[%d]", i)
		pu, err := url.Parse(u)
		switch {
		case err != nil || pu.Host == "":
			problems[field] = "not a URL such as ldaps://dc1.example.com:636"
		case pu.Scheme != "ldap" && pu.Scheme != "ldaps":
			problems[field] = "the scheme must be ldap:// or ldaps://"
		case pu.Scheme == "ldaps" && c.StartTLS:
			problems[field] = "start_tls applies to ldap:// URLs; ldaps:// is TLS already"
		case f.unicodePwd && pu.Scheme == "ldap" && !c.StartTLS:
			problems[field] = "Active Directory sets passwords only over TLS: use ldaps:// or start_tls"
		case pu.Path != "" && pu.Path != "/":
			problems[field] = "give the server only; base DNs are settings of their own"
		}
	}
	if c.CACert != "" {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM([]byte(c.CACert)) {
			problems["settings.ca_cert"] = "not a PEM certificate (-----BEGIN CERTIFICATE-----)"
		} else if block, _ := pem.Decode([]byte(c.CACert)); block == nil || block.Type != "CERTIFICATE" {
			problems["settings.ca_cert"] = "not a PEM certificate (-----BEGIN CERTIFICATE-----)"
		}
		c.roots = pool
	}
	if c.CACert != "" && c.InsecureSkipVerify {
		problems["settings.insecure_skip_verify"] = "give a CA certificate or skip verification, not both"
	}
}

// checkDirectory checks where and how the directory is read: the DNs, the
// bind, the filters and the attributes.
func checkDirectory(c *config, problems map[string]string) {
	checkDN := func(field, dn string, required bool) {
		if dn == "" {
			if required {
				problems["settings."+field] = "required: a DN such as ou=people,dc=example,dc=com"
			}
			return
		}
		if _, err := ldapv3.ParseDN(dn); err != nil {
			problems["settings."+field] = "not a valid DN: " + err.Error()
		}
	}
	checkDN("bind_dn", c.BindDN, false)
	checkDN("user_base_dn", c.UserBaseDN, true)
	checkDN("group_base_dn", c.GroupBaseDN, true)
	checkDN("admin_group_dn", c.AdminGroupDN, false)
	if c.BindDN != "" && c.bindPassword == "" {
		problems["secrets.bind_password"] = "required with bind_dn"
	}
	for field, flt := range map[string]string{"user_filter": c.UserFilter, "group_filter": c.GroupFilter} {
		if _, err := ldapv3.CompileFilter(flt); err != nil {
			problems["settings."+field] = "not a valid LDAP filter: " + err.Error()
		}
	}
	if c.UserDNPattern != "" {
		if err := checkPattern(c.UserDNPattern, c.UserBaseDN); err != nil {
			problems["settings.user_dn_pattern"] = err.Error()
		}
	}
	if len(c.UserObjectClasses) == 0 {
		problems["settings.user_object_classes"] = "give at least one object class"
	}
	for name, tmpl := range c.UserAttributes {
		if !attrName.MatchString(name) {
			problems["settings.user_attributes."+name] = "not an attribute name"
		} else if err := checkTemplate(tmpl); err != nil {
			problems["settings.user_attributes."+name] = err.Error()
		}
	}
	switch strings.ToLower(c.GroupMemberAttribute) {
	case "member", "uniquemember":
	default:
		problems["settings.group_member_attribute"] = "must be member or uniqueMember"
	}
	for field, a := range map[string]string{"username": c.Attributes.Username, "display_name": c.Attributes.DisplayName,
		"email": c.Attributes.Email, "correlation": c.Attributes.Correlation, "manager": c.Attributes.Manager} {
		if field == "manager" && a == NoManager {
			continue
		}
		if !attrName.MatchString(a) {
			problems["settings.attributes."+field] = "not an attribute name"
		}
	}
}

// checkAccounts checks how new accounts get their passwords.
func checkAccounts(c *config, problems map[string]string) {
	switch c.InitialPassword {
	case "generate", "none":
	default:
		problems["settings.initial_password"] = "must be generate or none"
	}
	if c.PasswordLength < 8 || c.PasswordLength > 256 {
		problems["settings.password_length"] = "from 8 to 256"
	}
}

// checkLimits reads the timeouts and checks the sizes and the deletion
// threshold.
func checkLimits(c *config, problems map[string]string) {
	dur := func(field, v string, def, lo, hi time.Duration) time.Duration {
		if v == "" {
			return def
		}
		d, err := time.ParseDuration(v)
		if err != nil || d < lo || d > hi {
			problems["settings."+field] = fmt.Sprintf("a duration from %s to %s, such as %s", lo, hi, def)
		}
		return d
	}
	c.connectTimeout = dur("connect_timeout", c.ConnectTimeout, 5*time.Second, 100*time.Millisecond, time.Minute)
	c.requestTimeout = dur("request_timeout", c.RequestTimeout, 30*time.Second, 100*time.Millisecond, 10*time.Minute)
	c.deltaOverlap = dur("delta_overlap", c.DeltaOverlap, 5*time.Minute, 0, 24*time.Hour)
	if c.PageSize < 1 || c.PageSize > 10000 {
		problems["settings.page_size"] = "from 1 to 10000"
	}
	if c.PoolSize < 1 || c.PoolSize > 64 {
		problems["settings.pool_size"] = "from 1 to 64"
	}
	c.threshold = 10
	if c.DeletionThresholdPercent != nil {
		c.threshold = *c.DeletionThresholdPercent
		if c.threshold < 0 || c.threshold > 100 {
			problems["settings.deletion_threshold_percent"] = "from 0 to 100"
		}
	}
}

// defaults fills what the flavor decides when the settings leave it out.
func (f flavor) defaults(c *config) {
	if c.UserFilter == "" {
		c.UserFilter = f.userFilter
	}
	if c.GroupFilter == "" {
		c.GroupFilter = f.groupFilter
	}
	if len(c.UserObjectClasses) == 0 {
		c.UserObjectClasses = f.objectClasses
	}
	if c.UserAttributes == nil {
		c.UserAttributes = f.userAttrs
	}
	if c.GroupMemberAttribute == "" {
		c.GroupMemberAttribute = "member"
	}
	if c.Attributes.Username == "" {
		c.Attributes.Username = f.attributes.Username
	}
	if c.Attributes.DisplayName == "" {
		c.Attributes.DisplayName = f.attributes.DisplayName
	}
	if c.Attributes.Email == "" {
		c.Attributes.Email = f.attributes.Email
	}
	if c.Attributes.Correlation == "" {
		c.Attributes.Correlation = c.Attributes.Username
	}
	if c.Attributes.Manager == "" {
		c.Attributes.Manager = "manager"
	}
	if c.UserDNPattern == "" && c.UserBaseDN != "" {
		attr := f.rdnAttr
		if f.name == TypeLDAP {
			attr = c.Attributes.Username
		}
		c.UserDNPattern = attr + "={username}," + c.UserBaseDN
	}
	if c.InitialPassword == "" {
		c.InitialPassword = f.password
	}
	if c.PasswordLength == 0 {
		c.PasswordLength = 24
	}
	if c.PageSize == 0 {
		c.PageSize = 500
	}
	if c.PoolSize == 0 {
		c.PoolSize = 4
	}
	if c.UPNSuffix == "" && c.UserBaseDN != "" {
		c.UPNSuffix = dnsNameOf(c.UserBaseDN)
	}
}

// dnsNameOf turns the dc= parts of a DN into a DNS name.
func dnsNameOf(dn string) string {
	parsed, err := ldapv3.ParseDN(dn)
	if err != nil {
		return ""
	}
	var parts []string
	for _, rdn := range parsed.RDNs {
		for _, a := range rdn.Attributes {
			if strings.EqualFold(a.Type, "dc") {
				parts = append(parts, a.Value)
			}
		}
	}
	return strings.Join(parts, ".")
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
