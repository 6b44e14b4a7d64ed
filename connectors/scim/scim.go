package scim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/provisor/provisor/connectors"
)

// TypeName is the connector type of SCIM 2.0 targets.
const TypeName = "scim"

// Schema and message URNs of RFC 7643 and 7644.
const (
	schemaUser    = "urn:ietf:params:scim:schemas:core:2.0:User"
	schemaPatchOp = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
)

// Type returns the "scim" connector type.
func Type() connectors.Type { return TypeWith(nil) }

// TypeWith is the "scim" connector type whose connectors are opened with
// opts (benchmarks give them their transport).
func TypeWith(opts *Options) connectors.Type {
	// The PATCH streams of each connector outlive its instances: the
	// portal opens a connector anew while the sets of an older instance
	// still run, and they share the same streams.
	var mu sync.Mutex
	pools := map[string]*streams{}
	return connectors.Type{
		Name:  TypeName,
		Label: "SCIM 2.0",
		New: func(cfg connectors.Config) (connectors.Connector, error) {
			t, err := OpenWith(cfg, opts)
			if err != nil {
				return nil, err
			}
			if cfg.ID == "" {
				return t, nil
			}
			mu.Lock()
			defer mu.Unlock()
			if pools[cfg.ID] == nil {
				pools[cfg.ID] = t.streams
			}
			t.streams = pools[cfg.ID]
			return t, nil
		},
		ValidateSettings: func(settings json.RawMessage, secrets map[string]string) map[string]string {
			_, problems := parse(settings, secrets)
			return problems
		},
		SecretBound: &connectors.SecretBinding{
			Settings: boundSettings,
			Labels:   map[string]string{SecretToken: "the token", SecretClientSecret: "the client secret", SecretPassword: "the password"},
			Reason:   "the connector's SCIM address, authentication or account changed",
		},
		Fields: connectors.FieldsOf(Settings{}, settingsHelp),
	}
}

// Options of OpenWith beyond the connector's configuration.
type Options struct {
	// Log gets the REST client's debug lines (never secrets).
	Log *slog.Logger
	// Backoff is the REST client's first backoff (tests make it short).
	Backoff time.Duration
	// MaxWait is the longest Retry-After waited for in the connector;
	// longer ones go back to the queue. Default 10 s.
	MaxWait time.Duration
	// Transport, when set, carries the requests (benchmarks share one
	// with their baseline).
	Transport http.RoundTripper
}

// sharedTransport carries the requests of every SCIM connector of the
// process, as http.DefaultTransport would, but keeps more idle connections
// to one host (workers send to a target in parallel, and the worker opens
// a connector instance per job set): the instances reuse each other's
// connections instead of each leaving its own open.
var sharedTransport = func() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 64
	return t
}()

// Target is one SCIM connector.
type Target struct {
	cfg  *config
	name string
	rest *connectors.RESTClient

	mu  sync.Mutex
	ids map[string]string // userName (lower case) -> id
	// noMemberFilter is set once the target refused the filter of a
	// membership check: it is then read from the group.
	noMemberFilter atomic.Bool
	// streams carry the PATCH requests of the connector's batches.
	streams *streams
}

// Open builds a connector from its configuration.
func Open(cc connectors.Config) (*Target, error) { return OpenWith(cc, nil) }

// OpenWith is Open with options.
func OpenWith(cc connectors.Config, opts *Options) (*Target, error) {
	cfg, problems := parse(cc.Settings, cc.Secrets)
	if len(problems) > 0 {
		return nil, connectors.FieldErrors(problems)
	}
	var o Options
	if opts != nil {
		o = *opts
	}
	transport := o.Transport
	if transport == nil {
		transport = sharedTransport
	}
	var httpClient *http.Client
	switch cfg.Auth {
	case AuthOAuth2:
		cc2 := clientcredentials.Config{ClientID: cfg.ClientID, ClientSecret: cfg.secret, TokenURL: cfg.TokenURL}
		if cfg.Scope != "" {
			cc2.Scopes = strings.Fields(cfg.Scope)
		}
		base := &http.Client{Timeout: cfg.timeout, Transport: transport}
		httpClient = cc2.Client(context.WithValue(context.Background(), oauth2.HTTPClient, base))
	case AuthBasic:
		httpClient = &http.Client{Transport: &basicAuth{next: transport, user: cfg.Username, password: cfg.secret}}
	default:
		httpClient = &http.Client{Transport: &bearer{next: transport, token: cfg.secret}}
	}
	rest, err := connectors.NewRESTClient(connectors.RESTOptions{
		BaseURL: cfg.BaseURL, HTTPClient: httpClient, Timeout: cfg.timeout, Backoff: o.Backoff, MaxWait: o.MaxWait,
		RequestIDHeaders: []string{"x-request-id", "request-id"}, ErrorFunc: errorOf, Log: o.Log,
	})
	if err != nil {
		return nil, connectors.FieldErrors{"settings.base_url": err.Error()}
	}
	return &Target{cfg: cfg, name: cc.Name, rest: rest, ids: map[string]string{}, streams: &streams{}}, nil
}

type bearer struct {
	next  http.RoundTripper
	token string
}

func (b *bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.next.RoundTrip(r)
}

type basicAuth struct {
	next           http.RoundTripper
	user, password string
}

func (b *basicAuth) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.SetBasicAuth(b.user, b.password)
	return b.next.RoundTrip(r)
}

// errorOf reads a SCIM error answer (RFC 7644 3.12): scimType and detail.
func errorOf(_ int, body []byte) (string, string) {
	var e struct {
		ScimType string `json:"scimType"`
		Detail   string `json:"detail"`
	}
	if json.Unmarshal(body, &e) == nil && (e.ScimType != "" || e.Detail != "") {
		return e.ScimType, e.Detail
	}
	return "", strings.TrimSpace(string(body))
}

// DeletionThreshold is the share of accounts (percent) an import may delete
// or lock without an admin's approval.
func (d *Target) DeletionThreshold() float64 { return d.cfg.threshold }

// Kind names the job kind of op.
func (d *Target) Kind(op connectors.Operation) string {
	switch op {
	case connectors.OpCreateAccount:
		return "SCIM Create"
	case connectors.OpDeleteAccount:
		return "SCIM Delete"
	case connectors.OpEnableAccount:
		return "SCIM Enable"
	case connectors.OpDisableAccount:
		return "SCIM Disable"
	case connectors.OpGrant:
		return "SCIM AddToGroup"
	case connectors.OpRevoke:
		return "SCIM RemoveFromGroup"
	case connectors.OpImport:
		return "Import"
	}
	return ""
}

// Bool is a SCIM boolean as targets send it: true and false, or the
// strings "True" and "False" of targets written for Entra ID's client.
type Bool struct {
	Set, Value bool
}

// UnmarshalJSON reads a JSON boolean, or a string strconv.ParseBool reads.
func (b *Bool) UnmarshalJSON(raw []byte) error {
	s := strings.TrimSpace(string(raw))
	if s == "null" {
		*b = Bool{}
		return nil
	}
	if uq, err := strconv.Unquote(s); err == nil {
		s = uq
	}
	v, err := strconv.ParseBool(strings.TrimSpace(s))
	if err != nil {
		return fmt.Errorf("scim: %s is not a boolean", raw)
	}
	*b = Bool{Set: true, Value: v}
	return nil
}

// User is a SCIM User as the connector reads it.
type User struct {
	ID          string `json:"id"`
	ExternalID  string `json:"externalId"`
	UserName    string `json:"userName"`
	DisplayName string `json:"displayName"`
	Name        struct {
		GivenName  string `json:"givenName"`
		FamilyName string `json:"familyName"`
	} `json:"name"`
	Emails []struct {
		Value   string `json:"value"`
		Type    string `json:"type"`
		Primary Bool   `json:"primary"`
	} `json:"emails"`
	Active Bool `json:"active"`
	Meta   Meta `json:"meta"`
}

// Meta is a resource's metadata.
type Meta struct {
	LastModified string `json:"lastModified"`
}

// email is the work address, else the primary one, else the first.
func (u *User) email() string {
	for _, e := range u.Emails {
		if strings.EqualFold(e.Type, "work") {
			return e.Value
		}
	}
	for _, e := range u.Emails {
		if e.Primary.Value {
			return e.Value
		}
	}
	if len(u.Emails) > 0 {
		return u.Emails[0].Value
	}
	return ""
}

// Group is a SCIM Group as the connector reads it.
type Group struct {
	ID          string `json:"id"`
	DisplayName string `json:"displayName"`
	Members     []struct {
		Value string `json:"value"`
		Type  string `json:"type"`
	} `json:"members"`
	Meta Meta `json:"meta"`
}

// ListResponse is a page of a SCIM list (RFC 7644 3.4.2).
type ListResponse[T any] struct {
	TotalResults int `json:"totalResults"`
	StartIndex   int `json:"startIndex"`
	ItemsPerPage int `json:"itemsPerPage"`
	Resources    []T `json:"Resources"`
}

// Quote writes s as a SCIM filter string (RFC 7644 3.4.2.2, JSON string
// rules): a quote or a backslash in s is escaped, and so are control
// characters, so that nothing in s can end the string.
func Quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\u%04X`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

func result(changed bool, msg string, resp *connectors.Response) connectors.Result {
	r := connectors.Result{Changed: changed, Message: msg}
	if resp != nil {
		r.RequestID, r.RateLimitWaits = resp.RequestID, resp.Waits
	}
	return r
}

// do sends req; refused credentials get advice.
func (d *Target) do(ctx context.Context, req connectors.Request, out any) (*connectors.Response, error) {
	resp, err := d.rest.Do(ctx, req, out)
	return resp, advise(err)
}

// advise adds what to check to a 401 or 403, which stay permanent.
func advise(err error) error {
	switch connectors.StatusOf(err) {
	case http.StatusUnauthorized:
		return connectors.Permanent(fmt.Errorf("%w: the target refused the credentials; check the connector's token (or client secret, or password)", err))
	case http.StatusForbidden:
		return connectors.Permanent(fmt.Errorf("%w: the credentials lack the right to do this; check the token's permissions on the target", err))
	}
	return err
}

// op is a PATCH op name in the case the target wants.
func (d *Target) op(name string) string {
	if d.cfg.PatchOpCase == "capitalized" {
		return strings.ToUpper(name[:1]) + name[1:]
	}
	return name
}

// boolean is a boolean as the target wants it.
func (d *Target) boolean(v bool) any {
	if d.cfg.StringBooleans {
		return map[bool]string{true: "True", false: "False"}[v]
	}
	return v
}

type patchOp struct {
	Op    string `json:"op"`
	Path  string `json:"path,omitempty"`
	Value any    `json:"value,omitempty"`
}

func (d *Target) patch(ctx context.Context, path string, ops ...patchOp) (*connectors.Response, error) {
	return d.send(ctx, path, false, ops...)
}

// patchMembers is patch for a membership change, whose answer (the
// group, with all its members, at some targets) is not read.
func (d *Target) patchMembers(ctx context.Context, path string, ops ...patchOp) (*connectors.Response, error) {
	return d.send(ctx, path, true, ops...)
}

// patchBody is a PATCH request's body (RFC 7644 3.5.2).
type patchBody struct {
	Schemas    []string  `json:"schemas"`
	Operations []patchOp `json:"Operations"`
}

func (d *Target) send(ctx context.Context, path string, skipBody bool, ops ...patchOp) (*connectors.Response, error) {
	return d.do(ctx, connectors.Request{Method: http.MethodPatch, Path: path,
		Body: patchBody{Schemas: []string{schemaPatchOp}, Operations: ops}, Weight: 1, SkipBody: skipBody}, nil)
}

// userNameOf is the userName of an account.
func (d *Target) userNameOf(a connectors.Account) string {
	if d.cfg.UserName == "email" && a.Email != "" {
		return a.Email
	}
	return a.Username
}

func (d *Target) remember(userName, id string) {
	d.mu.Lock()
	d.ids[strings.ToLower(userName)] = id
	d.mu.Unlock()
}

func (d *Target) forget(id string) {
	d.mu.Lock()
	for k, v := range d.ids {
		if v == id {
			delete(d.ids, k)
		}
	}
	d.mu.Unlock()
}

// errNoUser is a user the target does not have.
var errNoUser = errors.New("no such user")

// findUser looks a user up by userName, escaped in the filter.
func (d *Target) findUser(ctx context.Context, userName string) (*User, *connectors.Response, error) {
	var page ListResponse[User]
	resp, err := d.do(ctx, connectors.Request{Method: http.MethodGet, Path: "/Users",
		Query: url.Values{"filter": {"userName eq " + Quote(userName)}, "count": {"2"}}}, &page)
	if err != nil {
		return nil, resp, err
	}
	for i := range page.Resources {
		// A target that ignores the filter lists others too.
		if strings.EqualFold(page.Resources[i].UserName, userName) {
			return &page.Resources[i], resp, nil
		}
	}
	return nil, resp, connectors.Permanent(fmt.Errorf("%w: %s", errNoUser, userName))
}

// userID is the SCIM id of an account: its external id, or the id of its
// userName, looked up once.
func (d *Target) userID(ctx context.Context, a connectors.Account) (string, error) {
	if a.ExternalID != "" {
		return a.ExternalID, nil
	}
	name := d.userNameOf(a)
	d.mu.Lock()
	id, ok := d.ids[strings.ToLower(name)]
	d.mu.Unlock()
	if ok {
		return id, nil
	}
	u, _, err := d.findUser(ctx, name)
	if err != nil {
		return "", err
	}
	d.remember(name, u.ID)
	return u.ID, nil
}

// CreateAccount creates the user (POST /Users), active. A user already
// there with the same userName (409 uniqueness) is adopted: the result
// names it and says no change.
func (d *Target) CreateAccount(ctx context.Context, a connectors.Account) (connectors.Result, error) {
	name := d.userNameOf(a)
	if strings.TrimSpace(name) == "" {
		return connectors.Result{}, connectors.Permanent(errors.New("the account has no userName (set user_name to username, or give the identity an email)"))
	}
	display := a.DisplayName
	if display == "" {
		display = a.Username
	}
	body := map[string]any{
		"schemas":     []string{schemaUser},
		"userName":    name,
		"displayName": display,
		"active":      d.boolean(true),
	}
	if a.GivenName != "" || a.Surname != "" {
		n := map[string]string{"formatted": strings.TrimSpace(a.GivenName + " " + a.Surname)}
		if a.GivenName != "" {
			n["givenName"] = a.GivenName
		}
		if a.Surname != "" {
			n["familyName"] = a.Surname
		}
		body["name"] = n
	}
	if a.Email != "" {
		body["emails"] = []map[string]any{{"value": a.Email, "type": "work", "primary": d.boolean(true)}}
	}
	if id := a.Attributes[connectors.AttributeIdentityID]; id != "" {
		body["externalId"] = id
	}
	var u User
	resp, err := d.do(ctx, connectors.Request{Method: http.MethodPost, Path: "/Users", Body: body, Weight: 1}, &u)
	if connectors.StatusOf(err) == http.StatusConflict {
		got, resp2, ferr := d.findUser(ctx, name)
		if ferr != nil {
			return connectors.Result{}, fmt.Errorf("%w; and the user it conflicts with: %w", err, ferr)
		}
		d.remember(name, got.ID)
		r := result(false, "adopted the existing user "+name, resp2)
		r.ExternalID = got.ID
		return r, nil
	}
	if err != nil {
		return connectors.Result{}, err
	}
	if u.ID == "" {
		return connectors.Result{}, connectors.Transient(connectors.MessageErr(errors.New("POST /Users: the answer has no id"), resp.RequestID))
	}
	d.remember(name, u.ID)
	r := result(true, "created "+name, resp)
	r.ExternalID = u.ID
	return r, nil
}

// DeleteAccount deletes the user; a user already gone (404, or no user of
// the name) is no change.
func (d *Target) DeleteAccount(ctx context.Context, a connectors.Account) (connectors.Result, error) {
	id, err := d.userID(ctx, a)
	if errors.Is(err, errNoUser) {
		return connectors.Result{Message: "no such user"}, nil
	}
	if err != nil {
		return connectors.Result{}, err
	}
	resp, err := d.do(ctx, connectors.Request{Method: http.MethodDelete, Path: "/Users/" + url.PathEscape(id), Weight: 1}, nil)
	d.forget(id)
	if connectors.StatusOf(err) == http.StatusNotFound {
		return result(false, "already deleted", resp), nil
	}
	if err != nil {
		return connectors.Result{}, err
	}
	return result(true, "deleted "+id, resp), nil
}

// EnableAccount sets active true.
func (d *Target) EnableAccount(ctx context.Context, a connectors.Account) (connectors.Result, error) {
	return d.setActive(ctx, a, true)
}

// DisableAccount sets active false.
func (d *Target) DisableAccount(ctx context.Context, a connectors.Account) (connectors.Result, error) {
	return d.setActive(ctx, a, false)
}

func (d *Target) setActive(ctx context.Context, a connectors.Account, on bool) (connectors.Result, error) {
	id, err := d.userID(ctx, a)
	if err != nil {
		return connectors.Result{}, err
	}
	var u User
	path := "/Users/" + url.PathEscape(id)
	got, err := d.do(ctx, connectors.Request{Method: http.MethodGet, Path: path}, &u)
	if err != nil {
		if connectors.StatusOf(err) == http.StatusNotFound {
			return connectors.Result{}, connectors.Permanent(fmt.Errorf("%w: %s", errNoUser, id))
		}
		return connectors.Result{}, err
	}
	word := map[bool]string{true: "enabled", false: "disabled"}[on]
	// A user without active is active (RFC 7643 leaves it to the target;
	// targets treat a missing one as true).
	if active := !u.Active.Set || u.Active.Value; active == on {
		return connectors.Result{Message: "already " + word}, nil
	}
	resp, err := d.patch(ctx, path, patchOp{Op: d.op("replace"), Path: "active", Value: d.boolean(on)})
	if err != nil {
		return connectors.Result{}, err
	}
	if d.cfg.PatchResponse == "body" && resp.Status == http.StatusOK && len(resp.Body) > 0 {
		var after User
		if err := json.Unmarshal(resp.Body, &after); err != nil {
			return connectors.Result{}, connectors.Transient(connectors.MessageErr(fmt.Errorf("PATCH %s: unreadable answer: %w", path, err), resp.RequestID))
		}
		if after.Active.Set && after.Active.Value != on {
			return connectors.Result{}, connectors.Transient(connectors.MessageErr(fmt.Errorf("PATCH %s answered 200 but the user is still not %s", path, word), resp.RequestID))
		}
	}
	r := result(true, word, resp)
	r.RateLimitWaits += got.Waits
	return r, nil
}

func nameOf(e connectors.Entitlement) string {
	if e.Name != "" {
		return e.Name
	}
	return e.ExternalID
}

// isMember asks the target whether user is a member of group: a filter
// on the group (id eq and members.value eq, without the member list),
// or, when the target refuses that filter, the group's member list.
func (d *Target) isMember(ctx context.Context, group, user string) (bool, error) {
	if !d.noMemberFilter.Load() {
		var page ListResponse[struct {
			ID string `json:"id"`
		}]
		_, err := d.do(ctx, connectors.Request{Method: http.MethodGet, Path: "/Groups", Query: url.Values{
			"filter":             {"id eq " + Quote(group) + " and members.value eq " + Quote(user)},
			"excludedAttributes": {"members"}}}, &page)
		if err == nil {
			return page.TotalResults > 0 || len(page.Resources) > 0, nil
		}
		if connectors.StatusOf(err) != http.StatusBadRequest {
			return false, err
		}
		d.noMemberFilter.Store(true)
	}
	members, err := d.members(ctx, group)
	if err != nil {
		return false, err
	}
	return members[user], nil
}

// members reads a group's member list.
func (d *Target) members(ctx context.Context, group string) (map[string]bool, error) {
	var g Group
	_, err := d.do(ctx, connectors.Request{Method: http.MethodGet, Path: "/Groups/" + url.PathEscape(group),
		Query: url.Values{"attributes": {"members"}}}, &g)
	if err != nil {
		if connectors.StatusOf(err) == http.StatusNotFound {
			return nil, connectors.Permanent(fmt.Errorf("no such group: %s", group))
		}
		return nil, err
	}
	out := make(map[string]bool, len(g.Members))
	for _, m := range g.Members {
		out[m.Value] = true
	}
	return out, nil
}

// Grant adds the account to the group (PATCH add members); a member
// already there is no change.
func (d *Target) Grant(ctx context.Context, a connectors.Account, e connectors.Entitlement) (connectors.Result, error) {
	id, err := d.userID(ctx, a)
	if err != nil {
		return connectors.Result{}, err
	}
	there, err := d.isMember(ctx, e.ExternalID, id)
	if err != nil {
		return connectors.Result{}, err
	}
	if there {
		return connectors.Result{Message: "already a member of " + nameOf(e)}, nil
	}
	return d.addMember(ctx, id, e)
}

func (d *Target) addMember(ctx context.Context, id string, e connectors.Entitlement) (connectors.Result, error) {
	resp, err := d.patchMembers(ctx, "/Groups/"+url.PathEscape(e.ExternalID),
		patchOp{Op: d.op("add"), Path: "members", Value: []map[string]string{{"value": id}}})
	if err != nil {
		return connectors.Result{}, d.groupErr(err, e)
	}
	return result(true, "added to "+nameOf(e), resp), nil
}

func (d *Target) groupErr(err error, e connectors.Entitlement) error {
	if connectors.StatusOf(err) == http.StatusNotFound {
		return connectors.Permanent(fmt.Errorf("no such group %s: %w", nameOf(e), err))
	}
	return err
}

// Revoke removes the account from the group; a member already gone is no
// change.
func (d *Target) Revoke(ctx context.Context, a connectors.Account, e connectors.Entitlement) (connectors.Result, error) {
	id, err := d.userID(ctx, a)
	if errors.Is(err, errNoUser) {
		return connectors.Result{Message: "no such user: not a member of " + nameOf(e)}, nil
	}
	if err != nil {
		return connectors.Result{}, err
	}
	there, err := d.isMember(ctx, e.ExternalID, id)
	if err != nil {
		return connectors.Result{}, err
	}
	if !there {
		return connectors.Result{Message: "not a member of " + nameOf(e)}, nil
	}
	return d.removeMember(ctx, id, e)
}

func (d *Target) removeMember(ctx context.Context, id string, e connectors.Entitlement) (connectors.Result, error) {
	op := patchOp{Op: d.op("remove"), Path: "members[value eq " + Quote(id) + "]"}
	if d.cfg.MemberRemoval == "value" {
		op = patchOp{Op: d.op("remove"), Path: "members", Value: []map[string]string{{"value": id}}}
	}
	resp, err := d.patchMembers(ctx, "/Groups/"+url.PathEscape(e.ExternalID), op)
	if err != nil {
		return connectors.Result{}, d.groupErr(err, e)
	}
	return result(true, "removed from "+nameOf(e), resp), nil
}

// GrantAll adds several memberships: each group's member list is read
// once, and only the members missing are added, one PATCH each (a failed
// PATCH fails its membership alone), on the connector's PATCH streams.
func (d *Target) GrantAll(ctx context.Context, ms []connectors.Membership) ([]connectors.Result, []error) {
	return collect(ms, func(report connectors.ReportFunc) { d.each(ctx, ms, true, report) })
}

// RevokeAll removes several memberships, reading each group's member list
// once.
func (d *Target) RevokeAll(ctx context.Context, ms []connectors.Membership) ([]connectors.Result, []error) {
	return collect(ms, func(report connectors.ReportFunc) { d.each(ctx, ms, false, report) })
}

// GrantEach is GrantAll that reports each membership's result as soon as
// it has it.
func (d *Target) GrantEach(ctx context.Context, ms []connectors.Membership, report connectors.ReportFunc) {
	d.each(ctx, ms, true, report)
}

// RevokeEach is RevokeAll that reports each membership's result as soon as
// it has it.
func (d *Target) RevokeEach(ctx context.Context, ms []connectors.Membership, report connectors.ReportFunc) {
	d.each(ctx, ms, false, report)
}

// collect gathers what run reports into results by membership.
func collect(ms []connectors.Membership, run func(connectors.ReportFunc)) ([]connectors.Result, []error) {
	results, errs := make([]connectors.Result, len(ms)), make([]error, len(ms))
	run(func(i int, r connectors.Result, err error) { results[i], errs[i] = r, err })
	return results, errs
}

func (d *Target) each(ctx context.Context, ms []connectors.Membership, grant bool, report connectors.ReportFunc) {
	lists := map[string]map[string]bool{}
	listErr := map[string]error{}
	ids := make([]string, len(ms))
	var todo []int
	for i, m := range ms {
		id, err := d.userID(ctx, m.Account)
		if err != nil {
			if !grant && errors.Is(err, errNoUser) {
				report(i, connectors.Result{Message: "no such user: not a member of " + nameOf(m.Entitlement)}, nil)
				continue
			}
			report(i, connectors.Result{}, err)
			continue
		}
		g := m.Entitlement.ExternalID
		if _, ok := lists[g]; !ok && listErr[g] == nil {
			list, err := d.members(ctx, g)
			if err != nil {
				listErr[g] = err
			} else {
				lists[g] = list
			}
		}
		if err := listErr[g]; err != nil {
			report(i, connectors.Result{}, err)
			continue
		}
		there := lists[g][id]
		switch {
		case grant && there:
			report(i, connectors.Result{Message: "already a member of " + nameOf(m.Entitlement)}, nil)
		case !grant && !there:
			report(i, connectors.Result{Message: "not a member of " + nameOf(m.Entitlement)}, nil)
		default:
			// Marked now, so that the same membership twice in a batch is
			// sent once.
			if grant {
				lists[g][id] = true
			} else {
				delete(lists[g], id)
			}
			ids[i] = id
			todo = append(todo, i)
		}
	}
	sends := make([]func(), len(todo))
	for k, i := range todo {
		sends[k] = func() {
			var r connectors.Result
			var err error
			if grant {
				r, err = d.addMember(ctx, ids[i], ms[i].Entitlement)
			} else {
				r, err = d.removeMember(ctx, ids[i], ms[i].Entitlement)
			}
			report(i, r, err)
		}
	}
	d.streams.run(sends)
}

// Features is what /ServiceProviderConfig says the target supports.
type Features struct {
	Patch, Filter, Bulk, ETag, Sort bool
	MaxResults                      int
}

func (d *Target) features(ctx context.Context) (Features, error) {
	var spc struct {
		Patch, Bulk, ETag, Sort struct {
			Supported Bool `json:"supported"`
		}
		Filter struct {
			Supported  Bool `json:"supported"`
			MaxResults int  `json:"maxResults"`
		} `json:"filter"`
	}
	if _, err := d.do(ctx, connectors.Request{Method: http.MethodGet, Path: "/ServiceProviderConfig"}, &spc); err != nil {
		return Features{}, err
	}
	return Features{Patch: spc.Patch.Supported.Value, Filter: spc.Filter.Supported.Value, Bulk: spc.Bulk.Supported.Value,
		ETag: spc.ETag.Supported.Value, Sort: spc.Sort.Supported.Value, MaxResults: spc.Filter.MaxResults}, nil
}

// Check reads /ServiceProviderConfig and one user, and says what the
// target supports.
func (d *Target) Check(ctx context.Context) connectors.Health {
	start := time.Now()
	f, err := d.features(ctx)
	if err != nil {
		return connectors.Health{Message: "read /ServiceProviderConfig: " + err.Error(), Latency: time.Since(start)}
	}
	var page ListResponse[User]
	if _, err := d.do(ctx, connectors.Request{Method: http.MethodGet, Path: "/Users", Query: url.Values{"count": {"1"}}}, &page); err != nil {
		return connectors.Health{Message: "read a user: " + err.Error(), Latency: time.Since(start)}
	}
	yes := map[bool]string{true: "yes", false: "no"}
	msg := fmt.Sprintf("SCIM target answers; supports patch: %s, filter: %s, bulk: %s, etag: %s, sort: %s; %d users; took %d ms",
		yes[f.Patch], yes[f.Filter], yes[f.Bulk], yes[f.ETag], yes[f.Sort], page.TotalResults, time.Since(start).Milliseconds())
	if !f.Patch {
		msg += "; without PATCH the target cannot be provisioned by this connector"
		return connectors.Health{Message: msg, Latency: time.Since(start)}
	}
	return connectors.Health{OK: true, Message: msg, Latency: time.Since(start)}
}
