// Package scimtest serves a SCIM 2.0 server for tests on a loopback port:
// github.com/elimity-com/scim, an implementation independent of Provisor
// (it parses filters and PATCH requests and validates resources against
// the RFC 7643 schemas itself), around an in-memory store of Users and
// Groups with members. The store answers filters on userName, id,
// displayName, externalId and members.value (eq) and on meta.lastModified
// (gt, ge), and pages with startIndex and count. Switches make it behave
// like quirky targets: PATCH answered 204 always, 429 or 503 with
// Retry-After, 401 or 403 to everything, answers a fixed time later (a
// target across a network); a duplicate userName is refused with 409 uniqueness
// as RFC 7644 says.
package scimtest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	scimsrv "github.com/elimity-com/scim"
	scimerr "github.com/elimity-com/scim/errors"
	"github.com/elimity-com/scim/optional"
	"github.com/elimity-com/scim/schema"
	filter "github.com/scim2/filter-parser/v2"
)

// Credentials the server accepts.
const (
	Token        = "scimtest-token"
	ClientID     = "scimtest-client"
	ClientSecret = "scimtest-secret"
	BasicUser    = "scimtest"
	BasicPass    = "scimtest-password"
)

// Options adjust New; nil means defaults.
type Options struct {
	// MaxResults caps a page's count (ServiceProviderConfig). Default 100.
	MaxResults int
	// NoFilter makes /ServiceProviderConfig say filters are not supported.
	NoFilter bool
}

// Request is one request the server got.
type Request struct {
	Method, Path, Query string
	Body                []byte
	Status              int
}

// Server is a running SCIM server.
type Server struct {
	URL string
	// TokenURL issues tokens by OAuth2 client credentials.
	TokenURL string

	http *httptest.Server

	mu        sync.Mutex
	users     map[string]*resource
	groups    map[string]*resource
	seq       int
	clock     time.Time
	noContent bool
	throttle  int
	busyCode  int
	retry     string
	refuse    bool
	forbid    bool
	log       []Request
	record    bool
	patches   int
	first     time.Time
	last      time.Time
	inflight  int
	most      int
	busy      time.Duration
	latency   time.Duration
}

type resource struct {
	id       string
	seq      int
	attrs    scimsrv.ResourceAttributes
	created  time.Time
	modified time.Time
}

var stringValues sync.Once

// New starts a server, stopped when the test ends.
func New(t testing.TB, opts *Options) *Server {
	t.Helper()
	if opts == nil {
		opts = &Options{}
	}
	if opts.MaxResults <= 0 {
		opts.MaxResults = 100
	}
	// Targets written for Entra ID take "True"/"False": the server reads
	// string booleans as booleans (the library's switch is process-wide).
	stringValues.Do(func() { schema.SetAllowStringValues(true) })
	s := &Server{users: map[string]*resource{}, groups: map[string]*resource{}, record: true}
	cfg := &scimsrv.ServiceProviderConfig{
		MaxResults: opts.MaxResults, SupportFiltering: !opts.NoFilter, SupportPatch: true,
		AuthenticationSchemes: []scimsrv.AuthenticationScheme{{Type: scimsrv.AuthenticationTypeOauthBearerToken,
			Name: "OAuth Bearer Token", Description: "Authentication with a bearer token", Primary: true}},
	}
	srv, err := scimsrv.NewServer(&scimsrv.ServerArgs{
		ServiceProviderConfig: cfg,
		ResourceTypes: []scimsrv.ResourceType{
			{ID: optional.NewString("User"), Name: "User", Endpoint: "/Users", Description: optional.NewString("User Account"),
				Schema: schema.CoreUserSchema(), SchemaExtensions: []scimsrv.SchemaExtension{{Schema: schema.ExtensionEnterpriseUser()}},
				Handler: &handler{s: s, group: false}},
			{ID: optional.NewString("Group"), Name: "Group", Endpoint: "/Groups", Description: optional.NewString("Group"),
				Schema: schema.CoreGroupSchema(), Handler: &handler{s: s, group: true}},
		},
	})
	if err != nil {
		t.Fatalf("scimtest: %v", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /oauth2/token", s.token)
	mux.Handle("/scim/v2/", http.StripPrefix("/scim", s.guard(srv)))
	s.http = httptest.NewServer(mux)
	s.URL = s.http.URL + "/scim/v2"
	s.TokenURL = s.http.URL + "/oauth2/token"
	t.Cleanup(s.http.Close)
	return s
}

// Client is an HTTP client of the server's transport (benchmarks' plain
// loops).
func (s *Server) Client() *http.Client { return s.http.Client() }

// Settings are connector settings for the server with a bearer token.
func (s *Server) Settings() json.RawMessage {
	return json.RawMessage(fmt.Sprintf(`{"base_url":%q}`, s.URL))
}

// Secrets are the connector secrets of Settings.
func Secrets() map[string]string { return map[string]string{"token": Token} }

func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	id, secret, ok := r.BasicAuth()
	if !ok {
		id, secret = r.FormValue("client_id"), r.FormValue("client_secret")
	}
	if id != ClientID || secret != ClientSecret || r.FormValue("grant_type") != "client_credentials" {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, `{"error":"invalid_client"}`)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, `{"access_token":"`+Token+`","token_type":"Bearer","expires_in":3600}`)
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func scimError(w http.ResponseWriter, status int, scimType, detail string) {
	w.Header().Set("Content-Type", "application/scim+json")
	w.WriteHeader(status)
	b, _ := json.Marshal(map[string]any{"schemas": []string{"urn:ietf:params:scim:api:messages:2.0:Error"},
		"status": strconv.Itoa(status), "scimType": scimType, "detail": detail})
	_, _ = w.Write(b)
}

// guard checks the credentials, applies the switches and records the
// request.
func (s *Server) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		sw := &statusWriter{ResponseWriter: w}
		began := time.Now()
		defer func() {
			s.mu.Lock()
			s.busy += time.Since(began)
			if s.record {
				s.log = append(s.log, Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Body: body, Status: sw.status})
			}
			if r.Method == http.MethodPatch {
				s.patches++
				s.last = time.Now()
				s.inflight--
			}
			s.mu.Unlock()
		}()
		if r.Method == http.MethodPatch {
			s.mu.Lock()
			if s.first.IsZero() {
				s.first = time.Now()
			}
			s.inflight++
			s.most = max(s.most, s.inflight)
			s.mu.Unlock()
		}
		s.mu.Lock()
		refuse, forbid, throttled, retry, code, latency := s.refuse, s.forbid, s.throttle > 0, s.retry, s.busyCode, s.latency
		if throttled {
			s.throttle--
		}
		s.mu.Unlock()
		if latency > 0 {
			// Waiting, not working: a target across a network keeps the
			// request as long without using this machine's CPU.
			time.Sleep(latency)
		}
		user, pass, basic := r.BasicAuth()
		authorized := r.Header.Get("Authorization") == "Bearer "+Token || (basic && user == BasicUser && pass == BasicPass)
		switch {
		case refuse || !authorized:
			scimError(sw, http.StatusUnauthorized, "", "Authorization failure. The authorization header is invalid or missing.")
		case forbid:
			scimError(sw, http.StatusForbidden, "", "The token is not allowed to change this resource.")
		case throttled:
			sw.Header().Set("Retry-After", retry)
			scimError(sw, code, "", http.StatusText(code))
		default:
			next.ServeHTTP(sw, r)
		}
	})
}

// Latency makes every answer come d later, as from a target across a
// network (0: at once).
func (s *Server) Latency(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latency = d
}

// AnswerPatchNoContent makes every successful PATCH answer 204 without a
// body (else a change answers 200 with the resource, no change 204).
func (s *Server) AnswerPatchNoContent(on bool) {
	s.mu.Lock()
	s.noContent = on
	s.mu.Unlock()
}

// Throttle answers the next n requests 429 with Retry-After retryAfter.
func (s *Server) Throttle(n int, retryAfter string) {
	s.mu.Lock()
	s.throttle, s.retry, s.busyCode = n, retryAfter, http.StatusTooManyRequests
	s.mu.Unlock()
}

// Unavailable answers the next n requests 503 with Retry-After retryAfter.
func (s *Server) Unavailable(n int, retryAfter string) {
	s.mu.Lock()
	s.throttle, s.retry, s.busyCode = n, retryAfter, http.StatusServiceUnavailable
	s.mu.Unlock()
}

// RefuseAll answers every request 401 while on.
func (s *Server) RefuseAll(on bool) {
	s.mu.Lock()
	s.refuse = on
	s.mu.Unlock()
}

// ForbidAll makes the server answer 403 to every request with valid
// credentials, as a target does to a token without the rights asked for.
func (s *Server) ForbidAll(on bool) {
	s.mu.Lock()
	s.forbid = on
	s.mu.Unlock()
}

// Requests returns the requests received so far and forgets them.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.log
	s.log = nil
	return out
}

// Record turns keeping the requests on or off (benchmarks turn it off).
func (s *Server) Record(on bool) {
	s.mu.Lock()
	s.record, s.log = on, nil
	s.mu.Unlock()
}

// PatchStats are the times of the first and the last PATCH since the
// last ResetPatchStats, and the most PATCH requests in flight at once.
func (s *Server) PatchStats() (first, last time.Time, most int, busy time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.first, s.last, s.most, s.busy
}

// ResetPatchStats forgets the PATCH times and the most in flight.
func (s *Server) ResetPatchStats() {
	s.mu.Lock()
	s.first, s.last, s.most, s.busy = time.Time{}, time.Time{}, 0, 0
	s.mu.Unlock()
}

// Patches counts the PATCH requests received.
func (s *Server) Patches() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.patches
}

// now is the store's clock: it advances at least a second per change, so
// that meta.lastModified (whole seconds) orders the changes.
func (s *Server) now() time.Time {
	t := time.Now().UTC().Truncate(time.Second)
	if !t.After(s.clock) {
		t = s.clock.Add(time.Second)
	}
	s.clock = t
	return t
}

func (s *Server) store(group bool) map[string]*resource {
	if group {
		return s.groups
	}
	return s.users
}

func (s *Server) add(group bool, attrs scimsrv.ResourceAttributes) *resource {
	s.seq++
	prefix := map[bool]string{false: "u", true: "g"}[group]
	now := s.now()
	r := &resource{id: fmt.Sprintf("%s%06d", prefix, s.seq), seq: s.seq, attrs: attrs, created: now, modified: now}
	s.store(group)[r.id] = r
	return r
}

// AddUser stores a user and returns its id.
func (s *Server) AddUser(userName, displayName string, active bool) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.add(false, scimsrv.ResourceAttributes{"userName": userName, "displayName": displayName, "active": active,
		"emails": []any{map[string]any{"value": userName + "@example.test", "type": "work", "primary": true}}}).id
}

// AddGroup stores a group with members and returns its id.
func (s *Server) AddGroup(displayName string, memberIDs ...string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var members []any
	for _, m := range memberIDs {
		members = append(members, map[string]any{"value": m})
	}
	return s.add(true, scimsrv.ResourceAttributes{"displayName": displayName, "members": members}).id
}

// SetMembers replaces a group's members (a change made on the target).
func (s *Server) SetMembers(groupID string, memberIDs ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.groups[groupID]
	var members []any
	for _, m := range memberIDs {
		members = append(members, map[string]any{"value": m})
	}
	g.attrs["members"] = members
	g.modified = s.now()
}

// DeleteUser removes a user (and its memberships) as the target's admin
// would.
func (s *Server) DeleteUser(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deleteUser(id)
}

func (s *Server) deleteUser(id string) {
	delete(s.users, id)
	for _, g := range s.groups {
		if removeMember(g, id) {
			g.modified = s.now()
		}
	}
}

// User returns a copy of a user's attributes, nil when there is none.
func (s *Server) User(id string) map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.users[id]
	if u == nil {
		return nil
	}
	b, _ := json.Marshal(u.attrs)
	var out map[string]any
	_ = json.Unmarshal(b, &out)
	return out
}

// UserID is the id of the user called userName, "" when there is none.
func (s *Server) UserID(userName string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u := s.byUserName(userName); u != nil {
		return u.id
	}
	return ""
}

func (s *Server) byUserName(name string) *resource {
	for _, u := range s.users {
		if n, _ := u.attrs["userName"].(string); strings.EqualFold(n, name) {
			return u
		}
	}
	return nil
}

// Members lists a group's member ids, sorted.
func (s *Server) Members(groupID string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.groups[groupID]
	if g == nil {
		return nil
	}
	out := memberIDs(g)
	sort.Strings(out)
	return out
}

func memberIDs(g *resource) []string {
	list, _ := g.attrs["members"].([]any)
	out := make([]string, 0, len(list))
	for _, m := range list {
		if mm, ok := m.(map[string]any); ok {
			if v, ok := mm["value"].(string); ok {
				out = append(out, v)
			}
		}
	}
	return out
}

func hasMember(g *resource, id string) bool {
	for _, m := range memberIDs(g) {
		if m == id {
			return true
		}
	}
	return false
}

func removeMember(g *resource, id string) bool {
	list, _ := g.attrs["members"].([]any)
	out := list[:0:0]
	removed := false
	for _, m := range list {
		if mm, ok := m.(map[string]any); ok && mm["value"] == id {
			removed = true
			continue
		}
		out = append(out, m)
	}
	g.attrs["members"] = out
	return removed
}

// handler is the store behind one resource type.
type handler struct {
	s     *Server
	group bool
}

func (h *handler) resource(r *resource, req *http.Request) scimsrv.Resource {
	attrs := make(scimsrv.ResourceAttributes, len(r.attrs))
	for k, v := range r.attrs {
		attrs[k] = v
	}
	if req != nil && strings.Contains(req.URL.Query().Get("excludedAttributes"), "members") {
		delete(attrs, "members")
	}
	var ext optional.String
	if e, ok := attrs["externalId"].(string); ok {
		ext = optional.NewString(e)
		delete(attrs, "externalId")
	}
	created, modified := r.created, r.modified
	return scimsrv.Resource{ID: r.id, ExternalID: ext, Attributes: attrs,
		Meta: scimsrv.Meta{Created: &created, LastModified: &modified, Version: fmt.Sprintf(`W/"%d"`, modified.Unix())}}
}

func (h *handler) Create(r *http.Request, attrs scimsrv.ResourceAttributes) (scimsrv.Resource, error) {
	h.s.mu.Lock()
	defer h.s.mu.Unlock()
	delete(attrs, "id")
	delete(attrs, "meta")
	if !h.group {
		name, _ := attrs["userName"].(string)
		if h.s.byUserName(name) != nil {
			return scimsrv.Resource{}, scimerr.ScimErrorUniqueness
		}
	}
	return h.resource(h.s.add(h.group, attrs), r), nil
}

func (h *handler) Get(r *http.Request, id string) (scimsrv.Resource, error) {
	h.s.mu.Lock()
	defer h.s.mu.Unlock()
	res := h.s.store(h.group)[id]
	if res == nil {
		return scimsrv.Resource{}, scimerr.ScimErrorResourceNotFound(id)
	}
	return h.resource(res, r), nil
}

func (h *handler) GetAll(r *http.Request, p scimsrv.ListRequestParams) (scimsrv.Page, error) {
	h.s.mu.Lock()
	defer h.s.mu.Unlock()
	all := make([]*resource, 0, len(h.s.store(h.group)))
	for _, res := range h.s.store(h.group) {
		if p.FilterValidator != nil {
			ok, err := matches(p.FilterValidator.GetFilter(), res)
			if err != nil {
				return scimsrv.Page{}, scimerr.ScimErrorInvalidFilter
			}
			if !ok {
				continue
			}
		}
		all = append(all, res)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].seq < all[j].seq })
	page := scimsrv.Page{TotalResults: len(all), Resources: []scimsrv.Resource{}}
	for i := p.StartIndex - 1; i >= 0 && i < len(all) && len(page.Resources) < p.Count; i++ {
		page.Resources = append(page.Resources, h.resource(all[i], r))
	}
	return page, nil
}

// unescape reads a filter string as the parser left it (quotes taken off,
// escapes kept) by JSON's rules.
func unescape(v any) (string, bool) {
	raw, ok := v.(string)
	if !ok {
		return "", false
	}
	var s string
	if err := json.Unmarshal([]byte(`"`+raw+`"`), &s); err != nil {
		return "", false
	}
	return s, true
}

// matches evaluates the filters the store answers.
func matches(e filter.Expression, r *resource) (bool, error) {
	switch e := e.(type) {
	case *filter.LogicalExpression:
		l, err := matches(e.Left, r)
		if err != nil {
			return false, err
		}
		rr, err := matches(e.Right, r)
		if err != nil {
			return false, err
		}
		if e.Operator == filter.AND {
			return l && rr, nil
		}
		return l || rr, nil
	case *filter.AttributeExpression:
		name := strings.ToLower(e.AttributePath.AttributeName)
		sub := strings.ToLower(e.AttributePath.SubAttributeName())
		if name == "meta" && sub == "lastmodified" {
			v, ok := e.CompareValue.(string)
			t, err := time.Parse(time.RFC3339, v)
			if !ok || err != nil {
				return false, fmt.Errorf("not a date: %v", e.CompareValue)
			}
			switch e.Operator {
			case filter.GT:
				return r.modified.After(t), nil
			case filter.GE:
				return !r.modified.Before(t), nil
			}
			return false, fmt.Errorf("meta.lastModified takes gt or ge")
		}
		if e.Operator != filter.EQ {
			return false, fmt.Errorf("only eq")
		}
		want, ok := unescape(e.CompareValue)
		if !ok {
			return false, fmt.Errorf("not a string")
		}
		switch {
		case name == "id" && sub == "":
			return r.id == want, nil
		case name == "members" && (sub == "value" || sub == ""):
			return hasMember(r, want), nil
		case (name == "username" || name == "displayname") && sub == "":
			for k, v := range r.attrs {
				if s, ok := v.(string); ok && strings.EqualFold(k, name) {
					return strings.EqualFold(s, want), nil
				}
			}
			return false, nil
		case name == "externalid" && sub == "":
			return r.attrs["externalId"] == want, nil
		}
	}
	return false, fmt.Errorf("filter not supported: %v", e)
}

func (h *handler) Replace(r *http.Request, id string, attrs scimsrv.ResourceAttributes) (scimsrv.Resource, error) {
	h.s.mu.Lock()
	defer h.s.mu.Unlock()
	res := h.s.store(h.group)[id]
	if res == nil {
		return scimsrv.Resource{}, scimerr.ScimErrorResourceNotFound(id)
	}
	res.attrs, res.modified = attrs, h.s.now()
	return h.resource(res, r), nil
}

func (h *handler) Delete(_ *http.Request, id string) error {
	h.s.mu.Lock()
	defer h.s.mu.Unlock()
	if h.s.store(h.group)[id] == nil {
		return scimerr.ScimErrorResourceNotFound(id)
	}
	if h.group {
		delete(h.s.groups, id)
	} else {
		h.s.deleteUser(id)
	}
	return nil
}

func (h *handler) Patch(r *http.Request, id string, ops []scimsrv.PatchOperation) (scimsrv.Resource, error) {
	h.s.mu.Lock()
	defer h.s.mu.Unlock()
	res := h.s.store(h.group)[id]
	if res == nil {
		return scimsrv.Resource{}, scimerr.ScimErrorResourceNotFound(id)
	}
	changed := false
	for _, op := range ops {
		c, err := apply(res, op)
		if err != nil {
			return scimsrv.Resource{}, err
		}
		changed = changed || c
	}
	if changed {
		res.modified = h.s.now()
	}
	if h.s.noContent || !changed {
		return scimsrv.Resource{}, nil // 204
	}
	return h.resource(res, r), nil
}

// apply runs one PATCH operation on r and says whether it changed it.
func apply(r *resource, op scimsrv.PatchOperation) (bool, error) {
	if op.Path == nil {
		m, ok := op.Value.(map[string]any)
		if !ok || op.Op == scimsrv.PatchOperationRemove {
			return false, scimerr.ScimErrorNoTarget
		}
		changed := false
		for k, v := range m {
			c, err := apply(r, scimsrv.PatchOperation{Op: op.Op, Path: &filter.Path{AttributePath: filter.AttributePath{AttributeName: k}}, Value: v})
			if err != nil {
				return false, err
			}
			changed = changed || c
		}
		return changed, nil
	}
	name := op.Path.AttributePath.AttributeName
	if strings.EqualFold(name, "members") {
		return patchMembers(r, op)
	}
	if op.Path.ValueExpression != nil {
		// emails[type eq "work"].value: the first value of the list.
		list, _ := r.attrs[name].([]any)
		sub := op.Path.SubAttributeName()
		if len(list) == 0 || sub == "" {
			r.attrs[name] = []any{map[string]any{"type": "work", sub: op.Value}}
			return true, nil
		}
		first, _ := list[0].(map[string]any)
		if first == nil || first[sub] == op.Value {
			return false, nil
		}
		first[sub] = op.Value
		return true, nil
	}
	if sub := op.Path.AttributePath.SubAttributeName(); sub != "" {
		m, _ := r.attrs[name].(map[string]any)
		if m == nil {
			m = map[string]any{}
			r.attrs[name] = m
		}
		if op.Op == scimsrv.PatchOperationRemove {
			_, had := m[sub]
			delete(m, sub)
			return had, nil
		}
		if m[sub] == op.Value {
			return false, nil
		}
		m[sub] = op.Value
		return true, nil
	}
	if op.Op == scimsrv.PatchOperationRemove {
		_, had := r.attrs[name]
		delete(r.attrs, name)
		return had, nil
	}
	if fmt.Sprint(r.attrs[name]) == fmt.Sprint(op.Value) {
		return false, nil
	}
	r.attrs[name] = op.Value
	return true, nil
}

func valuesOf(v any) []string {
	var out []string
	list, ok := v.([]any)
	if !ok {
		list = []any{v}
	}
	for _, m := range list {
		if mm, ok := m.(map[string]any); ok {
			if s, ok := mm["value"].(string); ok {
				out = append(out, s)
			}
		}
	}
	return out
}

func patchMembers(r *resource, op scimsrv.PatchOperation) (bool, error) {
	changed := false
	switch op.Op {
	case scimsrv.PatchOperationAdd:
		for _, v := range valuesOf(op.Value) {
			if !hasMember(r, v) {
				list, _ := r.attrs["members"].([]any)
				r.attrs["members"] = append(list, map[string]any{"value": v})
				changed = true
			}
		}
	case scimsrv.PatchOperationReplace:
		before := fmt.Sprint(memberIDs(r))
		r.attrs["members"] = []any{}
		for _, v := range valuesOf(op.Value) {
			list, _ := r.attrs["members"].([]any)
			r.attrs["members"] = append(list, map[string]any{"value": v})
		}
		changed = before != fmt.Sprint(memberIDs(r))
	case scimsrv.PatchOperationRemove:
		var ids []string
		if ae, ok := op.Path.ValueExpression.(*filter.AttributeExpression); ok && strings.EqualFold(ae.AttributePath.AttributeName, "value") {
			id, ok := unescape(ae.CompareValue)
			if !ok {
				return false, scimerr.ScimErrorInvalidFilter
			}
			ids = []string{id}
		} else if op.Path.ValueExpression != nil {
			return false, scimerr.ScimErrorInvalidFilter
		} else if op.Value == nil {
			// Remove at "members" without a value: all of them.
			ids = memberIDs(r)
		} else {
			ids = valuesOf(op.Value)
		}
		for _, id := range ids {
			changed = removeMember(r, id) || changed
		}
	}
	return changed, nil
}
