package scim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/provisor/provisor/connectors"
)

// Settings are a SCIM connector's settings as stored (JSON). The secrets
// are apart: "token" (bearer), "client_secret" (OAuth2 client
// credentials) or "password" (basic). The settings tagged secret:"bound"
// decide where a secret is sent and for which account it counts: changing
// one needs the secret again.
type Settings struct {
	// BaseURL is the SCIM service's base, such as
	// https://app.example.com/scim/v2 (it has /Users and /Groups).
	BaseURL string `json:"base_url" secret:"bound"`
	// Auth is bearer (a long-lived token, the default), oauth2 (client
	// credentials at TokenURL) or basic.
	Auth string `json:"auth,omitempty" secret:"bound"`
	// TokenURL, ClientID and Scope are those of OAuth2 client credentials.
	TokenURL string `json:"token_url,omitempty" secret:"bound"`
	ClientID string `json:"client_id,omitempty" secret:"bound"`
	Scope    string `json:"scope,omitempty"`
	// Username is the basic authentication's user.
	Username string `json:"username,omitempty" secret:"bound"`
	// UserName is where a new account's userName comes from: the portal's
	// username (default) or the identity's email.
	UserName string `json:"user_name,omitempty"`
	// PageSize is the count of a page of a list (startIndex/count), 1 to
	// 1000. Default 100.
	PageSize int `json:"page_size,omitempty"`
	// PatchOpCase is how PATCH ops are written: lower ("add", RFC 7644,
	// the default) or capitalized ("Add", as Entra ID writes them).
	PatchOpCase string `json:"patch_op_case,omitempty"`
	// PatchResponse is what the target answers a PATCH with: body (200
	// with the resource, RFC 7644's first choice and the default; the
	// answer is checked) or no_content (204).
	PatchResponse string `json:"patch_response,omitempty"`
	// StringBooleans sends booleans as the strings "True" and "False"
	// (targets written for Entra ID's older client); default JSON booleans.
	StringBooleans bool `json:"string_booleans,omitempty"`
	// MemberRemoval is how a member is removed: path (remove with path
	// members[value eq "…"], RFC 7644, the default) or value (remove at
	// path members with the member in a value list).
	MemberRemoval string `json:"member_removal,omitempty"`
	// DeltaImport is auto (a delta import filters meta.lastModified gt
	// when /ServiceProviderConfig says filters work, the default) or off
	// (every import is full).
	DeltaImport string `json:"delta_import,omitempty"`
	// RequestTimeout bounds one HTTP request. Default 30s.
	RequestTimeout string `json:"request_timeout,omitempty"`
	// DeletionThresholdPercent stops an import that would delete or lock
	// more than this share of the connector's accounts until an admin
	// approves it. Default 10; 100 never stops.
	DeletionThresholdPercent *float64 `json:"deletion_threshold_percent,omitempty"`
}

// The secrets of the three ways to authenticate.
const (
	SecretToken        = "token"
	SecretClientSecret = "client_secret"
	SecretPassword     = "password"
)

// Ways to authenticate.
const (
	AuthBearer = "bearer"
	AuthOAuth2 = "oauth2"
	AuthBasic  = "basic"
)

// settingsHelp labels and explains the settings in the portal's form.
var settingsHelp = map[string]connectors.FieldHelp{
	"base_url": {Label: "SCIM base URL", Help: "The service's base, with /Users and /Groups under it.",
		Placeholder: "https://app.example.com/scim/v2", Required: true},
	"auth": {Label: "Authentication", Help: "bearer (the secret token), oauth2 (client credentials: token URL, client ID, the secret client_secret) or basic (username, the secret password).",
		Placeholder: AuthBearer},
	"token_url": {Label: "OAuth2 token URL", Help: "With oauth2: where the client credentials get a token."},
	"client_id": {Label: "OAuth2 client ID", Help: "With oauth2."},
	"scope":     {Label: "OAuth2 scope", Help: "With oauth2, when the token needs one."},
	"username":  {Label: "Basic username", Help: "With basic; the password is the secret password."},
	"user_name": {Label: "userName from", Help: "username (the portal's username, default) or email (the identity's email).", Placeholder: "username"},
	"page_size": {Help: "Resources a page of a list (count), 1 to 1000. Default 100."},
	"patch_op_case": {Label: "PATCH op case", Help: "lower (add, replace, remove: RFC 7644, default) or capitalized (Add, Replace, Remove).",
		Placeholder: "lower"},
	"patch_response":  {Label: "PATCH answer", Help: "body (200 with the resource, which is checked; default) or no_content (204).", Placeholder: "body"},
	"string_booleans": {Label: "Booleans as strings", Help: `Send active as "True"/"False" instead of true/false.`},
	"member_removal": {Label: "Member removal", Help: `path (remove at members[value eq "id"], default) or value (remove at members with a value list).`,
		Placeholder: "path"},
	"delta_import":               {Help: "auto (filter meta.lastModified gt when the target supports filters, default) or off (always full)."},
	"request_timeout":            {Help: "One HTTP request, such as 30s."},
	"deletion_threshold_percent": {Label: "Deletion threshold (%)", Help: "An import that would delete or lock more than this share of accounts waits for approval. Default 10; 100 never stops."},
}

// config is Settings checked, with defaults.
type config struct {
	Settings
	secret    string
	timeout   time.Duration
	threshold float64
}

var boundSettings = connectors.BoundSettings(Settings{})

func oneOf(problems map[string]string, field string, v *string, def string, allowed ...string) {
	*v = strings.ToLower(strings.TrimSpace(*v))
	if *v == "" {
		*v = def
		return
	}
	for _, a := range allowed {
		if *v == a {
			return
		}
	}
	problems["settings."+field] = fmt.Sprintf("must be %s (got %q)", strings.Join(allowed, " or "), *v)
}

// parse reads and checks settings and secrets; problems are keyed by field
// ("settings.base_url", "secrets.token").
func parse(raw json.RawMessage, secrets map[string]string) (*config, map[string]string) {
	problems := map[string]string{}
	var s Settings
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		problems["settings"] = "must be a JSON object of the SCIM settings: " + err.Error()
		return nil, problems
	}
	c := &config{Settings: s, timeout: 30 * time.Second, threshold: 10}
	c.BaseURL = strings.TrimSpace(c.BaseURL)
	if c.BaseURL == "" {
		problems["settings.base_url"] = "required: the SCIM base URL, such as https://app.example.com/scim/v2"
	} else if msg := checkURL(c.BaseURL); msg != "" {
		problems["settings.base_url"] = msg
	}
	c.BaseURL = strings.TrimRight(c.BaseURL, "/")
	oneOf(problems, "auth", &c.Auth, AuthBearer, AuthBearer, AuthOAuth2, AuthBasic)
	oneOf(problems, "user_name", &c.UserName, "username", "username", "email")
	oneOf(problems, "patch_op_case", &c.PatchOpCase, "lower", "lower", "capitalized")
	oneOf(problems, "patch_response", &c.PatchResponse, "body", "body", "no_content")
	oneOf(problems, "member_removal", &c.MemberRemoval, "path", "path", "value")
	oneOf(problems, "delta_import", &c.DeltaImport, "auto", "auto", "off")
	want := map[string]string{AuthBearer: SecretToken, AuthOAuth2: SecretClientSecret, AuthBasic: SecretPassword}[c.Auth]
	switch c.Auth {
	case AuthOAuth2:
		c.TokenURL = strings.TrimSpace(c.TokenURL)
		if c.TokenURL == "" {
			problems["settings.token_url"] = "required with oauth2: the token endpoint of the client credentials"
		} else if msg := checkURL(c.TokenURL); msg != "" {
			problems["settings.token_url"] = msg
		}
		if c.ClientID = strings.TrimSpace(c.ClientID); c.ClientID == "" {
			problems["settings.client_id"] = "required with oauth2"
		}
	case AuthBasic:
		if c.Username = strings.TrimSpace(c.Username); c.Username == "" {
			problems["settings.username"] = "required with basic"
		} else if strings.Contains(c.Username, ":") {
			problems["settings.username"] = "must not contain a colon (basic authentication cannot carry one)"
		}
	}
	switch {
	case c.PageSize == 0:
		c.PageSize = 100
	case c.PageSize < 1 || c.PageSize > 1000:
		problems["settings.page_size"] = "must be between 1 and 1000"
	}
	if c.RequestTimeout != "" {
		d, err := time.ParseDuration(c.RequestTimeout)
		if err != nil || d <= 0 || d > 10*time.Minute {
			problems["settings.request_timeout"] = "must be a duration such as 30s, at most 10m"
		}
		c.timeout = d
	}
	if p := c.DeletionThresholdPercent; p != nil {
		if *p < 0 || *p > 100 {
			problems["settings.deletion_threshold_percent"] = "must be between 0 and 100"
		}
		c.threshold = *p
	}
	for k := range secrets {
		if k != SecretToken && k != SecretClientSecret && k != SecretPassword {
			problems["secrets."+k] = "unknown secret; the SCIM connector takes token, client_secret or password"
		} else if want != "" && k != want && secrets[k] != "" {
			problems["secrets."+k] = fmt.Sprintf("not used with auth %s, which takes %s", c.Auth, want)
		}
	}
	if want != "" {
		c.secret = secrets[want]
		if c.secret == "" {
			problems["secrets."+want] = map[string]string{
				SecretToken:        "required with bearer: the token the target issued",
				SecretClientSecret: "required with oauth2: the client secret",
				SecretPassword:     "required with basic: the password",
			}[want]
		}
	}
	if len(problems) > 0 {
		return nil, problems
	}
	return c, nil
}

// checkURL allows https, and http to a loopback address only (tests),
// without a query or a fragment (the paths are added to it).
func checkURL(raw string) string {
	if u, err := url.Parse(raw); err == nil && u.Host != "" && (u.RawQuery != "" || u.Fragment != "") {
		return "must not have a query or a fragment"
	}
	return connectors.CheckEndpointURL(raw, "https://app.example.com/scim/v2", "the token or password travels with it")
}
