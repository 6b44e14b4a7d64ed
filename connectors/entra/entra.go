package entra

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/provisor/provisor/connectors"
)

// TypeName is the connector type of Entra ID.
const TypeName = "entra"

// Type returns the "entra" connector type.
func Type() connectors.Type {
	return connectors.Type{
		Name:  TypeName,
		Label: "Microsoft Entra ID",
		New: func(cfg connectors.Config) (connectors.Connector, error) {
			return Open(cfg)
		},
		ValidateSettings: func(settings json.RawMessage, secrets map[string]string) map[string]string {
			_, problems := parse(settings, secrets)
			return problems
		},
		SecretBound: &connectors.SecretBinding{
			Settings: boundSettings,
			Labels:   map[string]string{SecretClientSecret: "the client secret"},
			Reason:   "the connector's tenant, app or Graph address changed",
		},
	}
}

// Options of Open beyond the connector's configuration.
type Options struct {
	// Log gets the REST client's debug lines (never secrets).
	Log *slog.Logger
	// Backoff is the REST client's first backoff (tests make it short).
	Backoff time.Duration
	// LagRetries and LagWait bound the retries of a 404 just after a
	// create (replication lag). Defaults 5 and 500 ms.
	LagRetries int
	LagWait    time.Duration
}

// Directory is one Entra ID connector.
type Directory struct {
	cfg   *config
	name  string
	rest  *connectors.RESTClient
	pacer *connectors.Pacer
	opts  Options

	mu  sync.Mutex
	ids map[string]string // UPN (lower case) -> object id
	// fresh holds users created a moment ago, for which a 404 is lag.
	fresh map[string]time.Time
}

// Open builds a connector from its configuration.
func Open(cc connectors.Config) (*Directory, error) { return OpenWith(cc, nil) }

// OpenWith is Open with options.
func OpenWith(cc connectors.Config, opts *Options) (*Directory, error) {
	cfg, problems := parse(cc.Settings, cc.Secrets)
	if len(problems) > 0 {
		return nil, connectors.FieldErrors(problems)
	}
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.LagRetries == 0 {
		o.LagRetries = 5
	}
	if o.LagWait <= 0 {
		o.LagWait = 500 * time.Millisecond
	}
	// The token is fetched by client credentials and kept in memory only,
	// reused until it expires.
	cc2 := clientcredentials.Config{
		ClientID:     cfg.ClientID,
		ClientSecret: cfg.secret,
		TokenURL:     cfg.LoginURL + "/" + url.PathEscape(cfg.TenantID) + "/oauth2/v2.0/token",
		Scopes:       []string{scopeOf(cfg.GraphURL)},
	}
	base := &http.Client{Timeout: cfg.timeout}
	httpClient := cc2.Client(context.WithValue(context.Background(), oauth2.HTTPClient, base))
	// Graph counts writes per app and tenant: every connector of one app in
	// one tenant (two connector records, or the instance built after a
	// settings change) shares one pacer and what it learnt.
	pacer := connectors.SharedPacer(cfg.GraphURL + "|" + strings.ToLower(cfg.TenantID) + "|" + strings.ToLower(cfg.ClientID))
	rest, err := connectors.NewRESTClient(connectors.RESTOptions{
		BaseURL: cfg.GraphURL, HTTPClient: httpClient, Timeout: cfg.timeout, Backoff: o.Backoff,
		RequestIDHeaders: []string{"request-id", "client-request-id"}, ErrorFunc: graphErrorOf, Pacer: pacer, Log: o.Log,
	})
	if err != nil {
		return nil, connectors.FieldErrors{"settings.graph_url": err.Error()}
	}
	return &Directory{cfg: cfg, name: cc.Name, rest: rest, pacer: pacer, opts: o, ids: map[string]string{}, fresh: map[string]time.Time{}}, nil
}

// scopeOf is the .default scope of the Graph at base (its origin).
func scopeOf(base string) string {
	u, err := url.Parse(base)
	if err != nil || u.Host == "" {
		return "https://graph.microsoft.com/.default"
	}
	if strings.HasPrefix(u.Host, "127.0.0.1") || strings.HasPrefix(u.Host, "localhost") {
		// A test server stands for the global cloud.
		return "https://graph.microsoft.com/.default"
	}
	return u.Scheme + "://" + u.Host + "/.default"
}

// graphErrorOf reads Graph's {"error":{"code","message"}} answer.
func graphErrorOf(_ int, body []byte) (string, string) {
	var e struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &e) == nil && (e.Error.Code != "" || e.Error.Message != "") {
		return e.Error.Code, e.Error.Message
	}
	return "", strings.TrimSpace(string(body))
}

// Pacer is the connector's write pacer (benchmarks read its rate).
func (d *Directory) Pacer() *connectors.Pacer { return d.pacer }

// DeletionThreshold is the share of accounts (percent) an import may delete
// or lock without an admin's approval.
func (d *Directory) DeletionThreshold() float64 { return d.cfg.threshold }

// Kind names the job kind of op as the admins of Entra read it.
func (d *Directory) Kind(op connectors.Operation) string {
	switch op {
	case connectors.OpCreateAccount:
		return "EntraID Create"
	case connectors.OpDeleteAccount:
		return "EntraID Delete"
	case connectors.OpEnableAccount:
		return "EntraID Enable"
	case connectors.OpDisableAccount:
		return "EntraID Disable"
	case connectors.OpGrant:
		return "EntraID AddToGroup"
	case connectors.OpRevoke:
		return "EntraID RemoveFromGroup"
	case connectors.OpImport:
		return "Import"
	}
	return ""
}

// KindOf names a grant or revoke by its entitlement: roles are assigned.
func (d *Directory) KindOf(op connectors.Operation, e connectors.Entitlement) string {
	if k, _, _ := entitlementOf(e); k != kindGroup {
		switch op {
		case connectors.OpGrant:
			return "EntraID AssignRole"
		case connectors.OpRevoke:
			return "EntraID RemoveRole"
		}
	}
	return d.Kind(op)
}

// Entitlement kinds, told by the external id: a group's object id,
// "role:{roleDefinitionId}" for a directory role, and
// "approle:{servicePrincipalId}:{appRoleId}" for an app role.
const (
	kindGroup   = "group"
	kindDirRole = "directory_role"
	kindAppRole = "app_role"
)

func entitlementOf(e connectors.Entitlement) (kind, a, b string) {
	switch {
	case strings.HasPrefix(e.ExternalID, "role:"):
		return kindDirRole, strings.TrimPrefix(e.ExternalID, "role:"), ""
	case strings.HasPrefix(e.ExternalID, "approle:"):
		sp, role, _ := strings.Cut(strings.TrimPrefix(e.ExternalID, "approle:"), ":")
		return kindAppRole, sp, role
	}
	return kindGroup, e.ExternalID, ""
}

// EntitlementKinds are the kinds of Entra entitlements.
func (d *Directory) EntitlementKinds() []string { return []string{kindGroup, kindDirRole, kindAppRole} }

// DirectoryRole and AppRole are the external ids of role entitlements.
func DirectoryRole(roleDefinitionID string) string { return "role:" + roleDefinitionID }

// AppRole is the external id of an app role of a service principal.
func AppRole(servicePrincipalID, appRoleID string) string {
	return "approle:" + servicePrincipalID + ":" + appRoleID
}

// upnOf is the user principal name of an account.
func (d *Directory) upnOf(a connectors.Account) string {
	if strings.Contains(a.Username, "@") || d.cfg.UPNDomain == "" {
		return a.Username
	}
	return a.Username + "@" + d.cfg.UPNDomain
}

var nicknameUnsafe = regexp.MustCompile(`[^A-Za-z0-9._-]`)

type graphUser struct {
	ID                string `json:"id"`
	UserPrincipalName string `json:"userPrincipalName"`
	DisplayName       string `json:"displayName"`
	GivenName         string `json:"givenName"`
	Surname           string `json:"surname"`
	Mail              string `json:"mail"`
	AccountEnabled    *bool  `json:"accountEnabled"`
	Removed           *struct {
		Reason string `json:"reason"`
	} `json:"@removed"`
}

func result(changed bool, msg string, resp *connectors.Response) connectors.Result {
	r := connectors.Result{Changed: changed, Message: msg}
	if resp != nil {
		r.RequestID, r.RateLimitWaits = resp.RequestID, resp.Waits
	}
	return r
}

// CreateAccount creates the user (POST /users), enabled, with a random
// password it never keeps. A user already there with the same UPN is
// adopted: the result names it and says no change.
func (d *Directory) CreateAccount(ctx context.Context, a connectors.Account) (connectors.Result, error) {
	upn := d.upnOf(a)
	if !strings.Contains(upn, "@") {
		return connectors.Result{}, connectors.Permanent(fmt.Errorf("user principal name %q has no domain: set upn_domain or give the username with one", upn))
	}
	if u, resp, err := d.getUser(ctx, upn); err == nil {
		d.remember(upn, u.ID)
		r := result(false, "adopted the existing user "+upn, resp)
		r.ExternalID = u.ID
		return r, nil
	} else if connectors.StatusOf(err) != http.StatusNotFound {
		return connectors.Result{}, err
	}
	password, err := newPassword()
	if err != nil {
		return connectors.Result{}, err
	}
	display := a.DisplayName
	if display == "" {
		display = a.Username
	}
	body := map[string]any{
		"accountEnabled":    true,
		"displayName":       display,
		"mailNickname":      nicknameUnsafe.ReplaceAllString(strings.Split(upn, "@")[0], ""),
		"userPrincipalName": upn,
		"passwordProfile":   map[string]any{"password": password, "forceChangePasswordNextSignIn": d.cfg.forceChange},
	}
	for k, v := range map[string]string{"givenName": a.GivenName, "surname": a.Surname, "mail": a.Email, "usageLocation": d.cfg.UsageLocation} {
		if v != "" {
			body[k] = v
		}
	}
	var u graphUser
	resp, err := d.rest.Do(ctx, connectors.Request{Method: http.MethodPost, Path: "/users", Body: body, Weight: 1}, &u)
	if err != nil {
		if h := connectors.HTTPErrorOf(err); h != nil && h.Status == http.StatusBadRequest && strings.Contains(h.Message, "already exists") {
			// Made meanwhile (a retry after a lost answer): adopt it.
			if got, resp, gerr := d.getUser(ctx, upn); gerr == nil {
				r := result(false, "adopted the existing user "+upn, resp)
				r.ExternalID = got.ID
				return r, nil
			}
		}
		return connectors.Result{}, err
	}
	d.remember(upn, u.ID)
	d.mu.Lock()
	d.fresh[u.ID] = time.Now()
	d.mu.Unlock()
	r := result(true, "created "+upn, resp)
	r.ExternalID = u.ID
	return r, nil
}

func (d *Directory) remember(upn, id string) {
	d.mu.Lock()
	d.ids[strings.ToLower(upn)] = id
	d.mu.Unlock()
}

func (d *Directory) getUser(ctx context.Context, idOrUPN string) (*graphUser, *connectors.Response, error) {
	var u graphUser
	resp, err := d.rest.Do(ctx, connectors.Request{Method: http.MethodGet, Path: "/users/" + url.PathEscape(idOrUPN),
		Query: url.Values{"$select": {"id,userPrincipalName,displayName,accountEnabled"}}}, &u)
	if err != nil {
		return nil, resp, err
	}
	return &u, resp, nil
}

// userID is the object id of an account: its external id, or the id of
// its UPN, looked up once.
func (d *Directory) userID(ctx context.Context, a connectors.Account) (string, error) {
	if a.ExternalID != "" {
		return a.ExternalID, nil
	}
	upn := d.upnOf(a)
	d.mu.Lock()
	id, ok := d.ids[strings.ToLower(upn)]
	d.mu.Unlock()
	if ok {
		return id, nil
	}
	u, _, err := d.lagged(ctx, "", func() (*graphUser, *connectors.Response, error) { return d.getUser(ctx, upn) })
	if err != nil {
		if connectors.StatusOf(err) == http.StatusNotFound {
			return "", connectors.Permanent(fmt.Errorf("no such user: %s", upn))
		}
		return "", err
	}
	d.remember(upn, u.ID)
	return u.ID, nil
}

// isFresh reports whether a user was created a moment ago (a 404 about it
// is replication lag).
func (d *Directory) isFresh(id string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	at, ok := d.fresh[id]
	if ok && time.Since(at) > 5*time.Minute {
		delete(d.fresh, id)
		return false
	}
	return ok
}

// lagged runs fn again while it answers 404 about a user created a moment
// ago (id; "" is any): Graph's replicas take a few seconds to know it.
func lagged[T any](d *Directory, ctx context.Context, id string, fn func() (T, *connectors.Response, error)) (T, *connectors.Response, error) {
	for i := 0; ; i++ {
		v, resp, err := fn()
		if connectors.StatusOf(err) != http.StatusNotFound || i >= d.opts.LagRetries || (id != "" && !d.isFresh(id)) || (id == "" && !d.anyFresh()) {
			return v, resp, err
		}
		t := time.NewTimer(d.opts.LagWait)
		select {
		case <-ctx.Done():
			t.Stop()
			return v, resp, err
		case <-t.C:
		}
	}
}

func (d *Directory) lagged(ctx context.Context, id string, fn func() (*graphUser, *connectors.Response, error)) (*graphUser, *connectors.Response, error) {
	return lagged(d, ctx, id, fn)
}

func (d *Directory) anyFresh() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	for id, at := range d.fresh {
		if time.Since(at) < time.Minute {
			return true
		}
		delete(d.fresh, id)
	}
	return false
}

func (d *Directory) write(ctx context.Context, id string, req connectors.Request) (*connectors.Response, error) {
	req.Weight = 1
	_, resp, err := lagged(d, ctx, id, func() (struct{}, *connectors.Response, error) {
		resp, err := d.rest.Do(ctx, req, nil)
		return struct{}{}, resp, err
	})
	return resp, err
}

// DeleteAccount deletes the user (to the deleted items, restorable for 30
// days); a user already gone is no change.
func (d *Directory) DeleteAccount(ctx context.Context, a connectors.Account) (connectors.Result, error) {
	id, err := d.userID(ctx, a)
	if err != nil {
		if connectors.IsPermanent(err) && strings.HasPrefix(err.Error(), "no such user") {
			return connectors.Result{Message: "no such user"}, nil
		}
		return connectors.Result{}, err
	}
	resp, err := d.write(ctx, "", connectors.Request{Method: http.MethodDelete, Path: "/users/" + url.PathEscape(id)})
	if connectors.StatusOf(err) == http.StatusNotFound {
		return result(false, "already deleted", resp), nil
	}
	if err != nil {
		return connectors.Result{}, err
	}
	return result(true, "deleted "+id, resp), nil
}

// EnableAccount sets accountEnabled true.
func (d *Directory) EnableAccount(ctx context.Context, a connectors.Account) (connectors.Result, error) {
	return d.setEnabled(ctx, a, true)
}

// DisableAccount sets accountEnabled false.
func (d *Directory) DisableAccount(ctx context.Context, a connectors.Account) (connectors.Result, error) {
	return d.setEnabled(ctx, a, false)
}

func (d *Directory) setEnabled(ctx context.Context, a connectors.Account, on bool) (connectors.Result, error) {
	id, err := d.userID(ctx, a)
	if err != nil {
		return connectors.Result{}, err
	}
	u, _, err := d.lagged(ctx, id, func() (*graphUser, *connectors.Response, error) { return d.getUser(ctx, id) })
	if err != nil {
		if connectors.StatusOf(err) == http.StatusNotFound {
			return connectors.Result{}, connectors.Permanent(fmt.Errorf("no such user: %s", id))
		}
		return connectors.Result{}, err
	}
	word := map[bool]string{true: "enabled", false: "disabled"}[on]
	if u.AccountEnabled != nil && *u.AccountEnabled == on {
		return connectors.Result{Message: "already " + word}, nil
	}
	resp, err := d.write(ctx, id, connectors.Request{Method: http.MethodPatch, Path: "/users/" + url.PathEscape(id), Body: map[string]any{"accountEnabled": on}})
	if err != nil {
		return connectors.Result{}, err
	}
	return result(true, word, resp), nil
}

// memberRefPath is a membership's $ref. Always with /$ref: without it the
// request names the member object itself, and a DELETE would delete the
// user.
func memberRefPath(group, user string) string {
	return "/groups/" + url.PathEscape(group) + "/members/" + url.PathEscape(user) + "/$ref"
}

func (d *Directory) directoryObject(id string) string {
	return d.cfg.GraphURL + "/directoryObjects/" + id
}

// Grant adds the account to a group, or assigns it a directory or app role.
// A membership or assignment already there is no change.
func (d *Directory) Grant(ctx context.Context, a connectors.Account, e connectors.Entitlement) (connectors.Result, error) {
	id, err := d.userID(ctx, a)
	if err != nil {
		return connectors.Result{}, err
	}
	kind, x, y := entitlementOf(e)
	switch kind {
	case kindDirRole:
		return d.assignRole(ctx, id, x)
	case kindAppRole:
		return d.assignAppRole(ctx, id, x, y)
	}
	resp, err := d.write(ctx, id, connectors.Request{Method: http.MethodPost, Path: "/groups/" + url.PathEscape(x) + "/members/$ref",
		Body: map[string]string{"@odata.id": d.directoryObject(id)}})
	if isDuplicateMember(err) {
		return d.checkMember(ctx, x, id, e.Name)
	}
	if connectors.StatusOf(err) == http.StatusNotFound {
		return connectors.Result{}, connectors.Permanent(fmt.Errorf("no such group or user: %w", err))
	}
	if err != nil {
		return connectors.Result{}, err
	}
	return result(true, "added to "+nameOf(e), resp), nil
}

func nameOf(e connectors.Entitlement) string {
	if e.Name != "" {
		return e.Name
	}
	return e.ExternalID
}

func isDuplicateMember(err error) bool {
	h := connectors.HTTPErrorOf(err)
	return h != nil && h.Status == http.StatusBadRequest && strings.Contains(h.Message, "One or more added object references already exist")
}

// checkMember confirms a membership Graph called a duplicate.
func (d *Directory) checkMember(ctx context.Context, group, user, name string) (connectors.Result, error) {
	var page struct {
		Value []struct {
			ID string `json:"id"`
		} `json:"value"`
	}
	resp, err := d.rest.Do(ctx, connectors.Request{Method: http.MethodGet, Path: "/groups/" + url.PathEscape(group) + "/members",
		Query:  url.Values{"$filter": {fmt.Sprintf("id eq '%s'", user)}, "$select": {"id"}, "$count": {"true"}},
		Header: http.Header{"ConsistencyLevel": {"eventual"}}}, &page)
	if err != nil {
		return connectors.Result{}, err
	}
	if len(page.Value) == 0 {
		return connectors.Result{}, connectors.Transient(fmt.Errorf("%s is a member of %s already as Graph says, but Graph does not list it: retrying", user, name))
	}
	return result(false, "already a member of "+name, resp), nil
}

// Revoke removes the account from a group, or a role assignment; one not
// there is no change.
func (d *Directory) Revoke(ctx context.Context, a connectors.Account, e connectors.Entitlement) (connectors.Result, error) {
	id, err := d.userID(ctx, a)
	if err != nil {
		return connectors.Result{}, err
	}
	kind, x, y := entitlementOf(e)
	switch kind {
	case kindDirRole:
		return d.removeRole(ctx, id, x)
	case kindAppRole:
		return d.removeAppRole(ctx, id, x, y)
	}
	resp, err := d.rest.Do(ctx, connectors.Request{Method: http.MethodDelete, Path: memberRefPath(x, id), Weight: 1}, nil)
	if connectors.StatusOf(err) == http.StatusNotFound {
		return result(false, "not a member of "+nameOf(e), resp), nil
	}
	if err != nil {
		return connectors.Result{}, err
	}
	return result(true, "removed from "+nameOf(e), resp), nil
}

type roleAssignment struct {
	ID               string `json:"id"`
	PrincipalID      string `json:"principalId"`
	RoleDefinitionID string `json:"roleDefinitionId"`
	DirectoryScopeID string `json:"directoryScopeId,omitempty"`
	ResourceID       string `json:"resourceId,omitempty"`
	AppRoleID        string `json:"appRoleId,omitempty"`
}

func (d *Directory) roleAssignments(ctx context.Context, user, role string) ([]roleAssignment, error) {
	var out []roleAssignment
	err := d.rest.NextLinks(ctx, connectors.Request{Method: http.MethodGet, Path: "/roleManagement/directory/roleAssignments",
		Query: url.Values{"$filter": {fmt.Sprintf("principalId eq '%s' and roleDefinitionId eq '%s'", user, role)}}},
		func(body []byte) (string, error) {
			var p struct {
				Value []roleAssignment `json:"value"`
				Next  string           `json:"@odata.nextLink"`
			}
			err := json.Unmarshal(body, &p)
			out = append(out, p.Value...)
			return p.Next, err
		})
	return out, err
}

func (d *Directory) assignRole(ctx context.Context, user, role string) (connectors.Result, error) {
	have, err := d.roleAssignments(ctx, user, role)
	if err != nil {
		return connectors.Result{}, err
	}
	for _, r := range have {
		if r.DirectoryScopeID == "/" {
			return connectors.Result{Message: "role already assigned"}, nil
		}
	}
	resp, err := d.write(ctx, user, connectors.Request{Method: http.MethodPost, Path: "/roleManagement/directory/roleAssignments",
		Body: roleAssignment{PrincipalID: user, RoleDefinitionID: role, DirectoryScopeID: "/"}})
	if h := connectors.HTTPErrorOf(err); h != nil && h.Status == http.StatusBadRequest && strings.Contains(h.Message, "conflicting object") {
		return result(false, "role already assigned", resp), nil
	}
	if err != nil {
		return connectors.Result{}, err
	}
	return result(true, "role assigned", resp), nil
}

func (d *Directory) removeRole(ctx context.Context, user, role string) (connectors.Result, error) {
	have, err := d.roleAssignments(ctx, user, role)
	if err != nil {
		return connectors.Result{}, err
	}
	res := connectors.Result{Message: "role not assigned"}
	for _, r := range have {
		resp, err := d.rest.Do(ctx, connectors.Request{Method: http.MethodDelete, Path: "/roleManagement/directory/roleAssignments/" + url.PathEscape(r.ID), Weight: 1}, nil)
		if err != nil && connectors.StatusOf(err) != http.StatusNotFound {
			return connectors.Result{}, err
		}
		if err == nil {
			res = result(true, "role assignment removed", resp)
		}
	}
	return res, nil
}

func (d *Directory) appRoleAssignments(ctx context.Context, sp string) ([]roleAssignment, error) {
	var out []roleAssignment
	err := d.rest.NextLinks(ctx, connectors.Request{Method: http.MethodGet, Path: "/servicePrincipals/" + url.PathEscape(sp) + "/appRoleAssignedTo"},
		func(body []byte) (string, error) {
			var p struct {
				Value []roleAssignment `json:"value"`
				Next  string           `json:"@odata.nextLink"`
			}
			err := json.Unmarshal(body, &p)
			out = append(out, p.Value...)
			return p.Next, err
		})
	return out, err
}

func (d *Directory) assignAppRole(ctx context.Context, user, sp, role string) (connectors.Result, error) {
	resp, err := d.write(ctx, user, connectors.Request{Method: http.MethodPost, Path: "/servicePrincipals/" + url.PathEscape(sp) + "/appRoleAssignedTo",
		Body: roleAssignment{PrincipalID: user, ResourceID: sp, AppRoleID: role}})
	if h := connectors.HTTPErrorOf(err); h != nil && (h.Status == http.StatusConflict || h.Status == http.StatusBadRequest) &&
		strings.Contains(h.Message, "already exists") {
		return result(false, "app role already assigned", resp), nil
	}
	if err != nil {
		return connectors.Result{}, err
	}
	return result(true, "app role assigned", resp), nil
}

func (d *Directory) removeAppRole(ctx context.Context, user, sp, role string) (connectors.Result, error) {
	have, err := d.appRoleAssignments(ctx, sp)
	if err != nil {
		return connectors.Result{}, err
	}
	res := connectors.Result{Message: "app role not assigned"}
	for _, r := range have {
		if r.PrincipalID != user || r.AppRoleID != role {
			continue
		}
		resp, err := d.rest.Do(ctx, connectors.Request{Method: http.MethodDelete,
			Path: "/servicePrincipals/" + url.PathEscape(sp) + "/appRoleAssignedTo/" + url.PathEscape(r.ID), Weight: 1}, nil)
		if err != nil && connectors.StatusOf(err) != http.StatusNotFound {
			return connectors.Result{}, err
		}
		if err == nil {
			res = result(true, "app role assignment removed", resp)
		}
	}
	return res, nil
}

// Check gets a token, reads the organization and one user, and names the
// permission missing when Graph refuses.
func (d *Directory) Check(ctx context.Context) connectors.Health {
	start := time.Now()
	var org struct {
		Value []struct {
			ID          string `json:"id"`
			DisplayName string `json:"displayName"`
		} `json:"value"`
	}
	fail := func(what, permission string, err error) connectors.Health {
		msg := fmt.Sprintf("%s: %v", what, err)
		if connectors.StatusOf(err) == http.StatusForbidden {
			msg = fmt.Sprintf("%s: the app lacks the application permission %s (grant it with admin consent): %v", what, permission, err)
		}
		var re *url.Error
		if errors.As(err, &re) && strings.Contains(re.Error(), "oauth2") {
			msg = "no token from " + d.cfg.LoginURL + ": " + re.Err.Error()
		}
		return connectors.Health{Message: msg, Latency: time.Since(start)}
	}
	if _, err := d.rest.Do(ctx, connectors.Request{Method: http.MethodGet, Path: "/organization", Query: url.Values{"$select": {"id,displayName"}}}, &org); err != nil {
		return fail("read the organization", "Organization.Read.All", err)
	}
	var users struct {
		Value []graphUser `json:"value"`
	}
	if _, err := d.rest.Do(ctx, connectors.Request{Method: http.MethodGet, Path: "/users", Query: url.Values{"$top": {"1"}, "$select": {"id"}}}, &users); err != nil {
		return fail("read a user", "User.Read.All", err)
	}
	name := d.cfg.TenantID
	if len(org.Value) > 0 && org.Value[0].DisplayName != "" {
		name = org.Value[0].DisplayName
	}
	return connectors.Health{OK: true, Latency: time.Since(start),
		Message: fmt.Sprintf("token for app %s; tenant %s; users readable; took %d ms", d.cfg.ClientID, name, time.Since(start).Milliseconds())}
}

// newPassword makes a random password meeting Entra's complexity rules.
func newPassword() (string, error) {
	const sets = "ABCDEFGHJKLMNPQRSTUVWXYZ" + "abcdefghijkmnopqrstuvwxyz" + "23456789" + "!#%+-=?@"
	groups := []string{"ABCDEFGHJKLMNPQRSTUVWXYZ", "abcdefghijkmnopqrstuvwxyz", "23456789", "!#%+-=?@"}
	var b strings.Builder
	pick := func(from string) error {
		n, err := rand.Int(rand.Reader, big.NewInt(int64(len(from))))
		if err != nil {
			return err
		}
		b.WriteByte(from[n.Int64()])
		return nil
	}
	for _, g := range groups {
		if err := pick(g); err != nil {
			return "", err
		}
	}
	for range 20 {
		if err := pick(sets); err != nil {
			return "", err
		}
	}
	return b.String(), nil
}
