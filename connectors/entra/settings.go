package entra

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strings"
	"time"

	"github.com/provisor/provisor/connectors"
)

// Settings are an Entra connector's settings as stored (JSON). The client
// secret is apart, the secret "client_secret". The settings tagged
// secret:"bound" decide where the secret is sent and for which app it
// counts: changing one needs the secret again.
type Settings struct {
	// TenantID is the directory (tenant) id or its domain name.
	TenantID string `json:"tenant_id" secret:"bound"`
	// ClientID is the application (client) id of the app registration.
	ClientID string `json:"client_id" secret:"bound"`
	// GraphURL is Microsoft Graph's base, default the global cloud's
	// https://graph.microsoft.com/v1.0 (national clouds have their own).
	GraphURL string `json:"graph_url,omitempty" secret:"bound"`
	// LoginURL is the identity platform's base, default
	// https://login.microsoftonline.com.
	LoginURL string `json:"login_url,omitempty" secret:"bound"`
	// UPNDomain completes the user principal name of a new user whose
	// username has no domain (username@domain).
	UPNDomain string `json:"upn_domain,omitempty"`
	// UsageLocation of new users (two letters, such as "DE"); needed for
	// licences.
	UsageLocation string `json:"usage_location,omitempty"`
	// ForceChangePassword makes new users change their password at first
	// sign-in (default true).
	ForceChangePassword *bool `json:"force_change_password,omitempty"`
	// PageSize of reads ($top), at most 999. Default 999.
	PageSize int `json:"page_size,omitempty"`
	// RequestTimeout bounds one HTTP request. Default 30s.
	RequestTimeout string `json:"request_timeout,omitempty"`
	// DeletionThresholdPercent stops an import that would delete or lock
	// more than this share of the connector's accounts until an admin
	// approves it. Default 10; 100 never stops.
	DeletionThresholdPercent *float64 `json:"deletion_threshold_percent,omitempty"`
}

// SecretClientSecret is the secret holding the app's client secret.
const SecretClientSecret = "client_secret"

// Defaults of the global cloud.
const (
	DefaultGraphURL = "https://graph.microsoft.com/v1.0"
	DefaultLoginURL = "https://login.microsoftonline.com"
)

var (
	guidPattern   = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
	domainPattern = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,62}\.)+[A-Za-z]{2,63}$`)
)

// config is Settings checked, with defaults.
type config struct {
	Settings
	secret      string
	forceChange bool
	timeout     time.Duration
	threshold   float64
}

var boundSettings = connectors.BoundSettings(Settings{})

// parse reads and checks settings and secrets; problems are keyed by field
// ("settings.tenant_id", "secrets.client_secret").
func parse(raw json.RawMessage, secrets map[string]string) (*config, map[string]string) {
	problems := map[string]string{}
	var s Settings
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		problems["settings"] = "must be a JSON object of the Entra settings: " + err.Error()
		return nil, problems
	}
	c := &config{Settings: s, forceChange: true, timeout: 30 * time.Second, threshold: 10}
	c.TenantID = strings.TrimSpace(c.TenantID)
	switch {
	case c.TenantID == "":
		problems["settings.tenant_id"] = "required: the directory (tenant) id, such as 72f988bf-86f1-41af-91ab-2d7cd011db47, or its domain"
	case !guidPattern.MatchString(c.TenantID) && !domainPattern.MatchString(c.TenantID):
		problems["settings.tenant_id"] = "must be a GUID or a domain name such as contoso.onmicrosoft.com"
	}
	c.ClientID = strings.TrimSpace(c.ClientID)
	if !guidPattern.MatchString(c.ClientID) {
		problems["settings.client_id"] = "required: the application (client) id, a GUID"
	}
	if c.GraphURL == "" {
		c.GraphURL = DefaultGraphURL
	}
	if msg := checkURL(c.GraphURL); msg != "" {
		problems["settings.graph_url"] = msg
	}
	c.GraphURL = strings.TrimRight(c.GraphURL, "/")
	if c.LoginURL == "" {
		c.LoginURL = DefaultLoginURL
	}
	if msg := checkURL(c.LoginURL); msg != "" {
		problems["settings.login_url"] = msg
	}
	c.LoginURL = strings.TrimRight(c.LoginURL, "/")
	c.UPNDomain = strings.TrimPrefix(strings.TrimSpace(c.UPNDomain), "@")
	if c.UPNDomain != "" && !domainPattern.MatchString(c.UPNDomain) {
		problems["settings.upn_domain"] = "must be a domain name such as contoso.com"
	}
	if c.UsageLocation != "" && !regexp.MustCompile(`^[A-Z]{2}$`).MatchString(c.UsageLocation) {
		problems["settings.usage_location"] = "must be two capital letters (ISO 3166-1), such as DE"
	}
	if c.ForceChangePassword != nil {
		c.forceChange = *c.ForceChangePassword
	}
	switch {
	case c.PageSize == 0:
		c.PageSize = 999
	case c.PageSize < 1 || c.PageSize > 999:
		problems["settings.page_size"] = "must be between 1 and 999"
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
		if k != SecretClientSecret {
			problems["secrets."+k] = "unknown secret; the Entra connector takes client_secret"
		}
	}
	c.secret = secrets[SecretClientSecret]
	if c.secret == "" {
		problems["secrets."+SecretClientSecret] = "required: a client secret of the app registration"
	}
	if len(problems) > 0 {
		return nil, problems
	}
	return c, nil
}

// checkURL allows https, and http to a loopback address only (tests).
func checkURL(raw string) string {
	return connectors.CheckEndpointURL(raw, "https://graph.microsoft.com/v1.0", "the client secret and tokens travel with it")
}
