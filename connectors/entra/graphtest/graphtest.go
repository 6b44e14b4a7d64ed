// Package graphtest is a Microsoft Graph v1.0 contract server for tests:
// the OAuth2 token endpoint (client credentials), users, groups and their
// $ref members, directory role assignments, app role assignments, $batch,
// and users/groups delta with next links, delta links, @removed and
// members@delta, as the published v1.0 contract states them for these
// calls. Faults are given on demand (429 with Retry-After, 503, a
// replication-lag 404, an expired delta token), and a write budget (a
// token bucket) answers 429 when it is spent, as Graph throttles writes
// per app and tenant.
package graphtest

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Tenant, client and secret the server accepts.
const (
	TenantID     = "11111111-2222-3333-4444-555555555555"
	ClientID     = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
	ClientSecret = "graph-test-client-secret-8f3a"
)

// DuplicateMemberMessage is Graph's message for adding a member twice.
const DuplicateMemberMessage = "One or more added object references already exist for the following modified properties: 'members'."

// User is a user object.
type User struct {
	ID                string `json:"id"`
	UserPrincipalName string `json:"userPrincipalName"`
	DisplayName       string `json:"displayName"`
	GivenName         string `json:"givenName,omitempty"`
	Surname           string `json:"surname,omitempty"`
	Mail              string `json:"mail,omitempty"`
	MailNickname      string `json:"mailNickname,omitempty"`
	AccountEnabled    bool   `json:"accountEnabled"`
	UsageLocation     string `json:"usageLocation,omitempty"`
	// Password is what the create set; tests read it, Graph never returns it.
	Password string `json:"-"`
	// ForceChange is passwordProfile.forceChangePasswordNextSignIn.
	ForceChange bool `json:"-"`
}

// Group is a group object.
type Group struct {
	ID          string `json:"id"`
	DisplayName string `json:"displayName"`
	members     map[string]bool
}

// RoleAssignment is a unifiedRoleAssignment.
type RoleAssignment struct {
	ID               string `json:"id"`
	PrincipalID      string `json:"principalId"`
	RoleDefinitionID string `json:"roleDefinitionId"`
	DirectoryScopeID string `json:"directoryScopeId"`
}

// AppRoleAssignment is an appRoleAssignment.
type AppRoleAssignment struct {
	ID          string `json:"id"`
	PrincipalID string `json:"principalId"`
	ResourceID  string `json:"resourceId"`
	AppRoleID   string `json:"appRoleId"`
}

// RoleDefinition is a unifiedRoleDefinition (a directory role).
type RoleDefinition struct {
	ID          string `json:"id"`
	DisplayName string `json:"displayName"`
	Description string `json:"description,omitempty"`
	IsEnabled   bool   `json:"isEnabled"`
	IsBuiltIn   bool   `json:"isBuiltIn"`
}

// ServicePrincipal is a servicePrincipal with the app roles it defines.
type ServicePrincipal struct {
	ID          string    `json:"id"`
	DisplayName string    `json:"displayName"`
	AppRoles    []AppRole `json:"appRoles"`
}

// AppRole is an appRole of a service principal.
type AppRole struct {
	ID                 string   `json:"id"`
	DisplayName        string   `json:"displayName"`
	Description        string   `json:"description,omitempty"`
	Value              string   `json:"value,omitempty"`
	IsEnabled          bool     `json:"isEnabled"`
	AllowedMemberTypes []string `json:"allowedMemberTypes"`
}

// Fault answers matching requests with an error, Times times.
type Fault struct {
	// Method and Path match a request ("" any); Path matches as a prefix
	// of the path after /v1.0 (a $batch's inner requests match too).
	Method, Path string
	Status       int
	// RetryAfter is sent as Retry-After, in seconds, when positive.
	RetryAfter int
	Code       string
	Times      int
}

// Stats count what the server answered.
type Stats struct {
	HTTPRequests  int // every HTTP request to Graph (a $batch is one)
	Batches       int
	Writes        int // write requests, inner ones included
	WritesOK      int
	Throttled     int // write requests answered 429, inner ones included
	TokenRequests int
	// FirstWrite and LastWrite are when the first and the last write
	// taken arrived; MaxGap is the longest time between two writes taken.
	FirstWrite, LastWrite time.Time
	MaxGap                time.Duration
	// Others counts the HTTP requests that are not $batch, by method and
	// first path segment ("GET /users").
	Others map[string]int
}

// Server is a running contract server.
type Server struct {
	*httptest.Server
	mu         sync.Mutex
	users      map[string]*User
	groups     map[string]*Group
	roles      map[string]*RoleAssignment
	appRoles   map[string]map[string]*AppRoleAssignment // service principal -> assignments
	roleDefs   map[string]*RoleDefinition
	sps        map[string]*ServicePrincipal
	faults     []*Fault
	lag        map[string]int // user id -> 404s left (replication lag)
	lagNext    int
	seq        int
	changes    []change
	expired    bool
	pageSize   int
	budget     *bucket
	stats      Stats
	deletedBad []string // users deleted by a members DELETE without $ref
	shuffle    bool
}

type change struct {
	seq     int
	kind    string // user, group, member
	id      string
	member  string
	removed bool
	reason  string
}

// Options configure New.
type Options struct {
	// PageSize of collections and deltas (default 100).
	PageSize int
	// WriteBudget, when positive, is the writes per second the server
	// takes; the bucket holds WriteBurst (default one second's worth) and
	// starts full.
	WriteBudget float64
	WriteBurst  int
}

// New starts a server, stopped when t ends.
func New(t testing.TB, opts *Options) *Server {
	if opts == nil {
		opts = &Options{}
	}
	s := &Server{users: map[string]*User{}, groups: map[string]*Group{}, roles: map[string]*RoleAssignment{},
		appRoles: map[string]map[string]*AppRoleAssignment{}, roleDefs: map[string]*RoleDefinition{}, sps: map[string]*ServicePrincipal{}, lag: map[string]int{}, pageSize: opts.PageSize, shuffle: true}
	if s.pageSize <= 0 {
		s.pageSize = 100
	}
	if opts.WriteBudget > 0 {
		burst := opts.WriteBurst
		if burst <= 0 {
			burst = int(math.Ceil(opts.WriteBudget))
		}
		s.budget = &bucket{rate: opts.WriteBudget, cap: float64(burst), tokens: float64(burst), at: time.Now()}
	}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

// GraphURL is the Graph base URL to set on a connector.
func (s *Server) GraphURL() string { return s.URL + "/v1.0" }

// LoginURL is the login base URL to set on a connector.
func (s *Server) LoginURL() string { return s.URL }

// Settings returns connector settings for this server, with extra JSON
// fields appended (such as `"upn_domain":"x.test"`).
func (s *Server) Settings(extra ...string) []byte {
	fields := append([]string{fmt.Sprintf(`"tenant_id":%q,"client_id":%q,"graph_url":%q,"login_url":%q,"upn_domain":"contoso.test"`,
		TenantID, ClientID, s.GraphURL(), s.LoginURL())}, extra...)
	return []byte("{" + strings.Join(fields, ",") + "}")
}

// bucket is a token bucket of writes.
type bucket struct {
	rate, cap, tokens float64
	at                time.Time
}

// take spends one token, or says how long until one is there.
func (b *bucket) take(now time.Time) (bool, time.Duration) {
	b.tokens = math.Min(b.cap, b.tokens+now.Sub(b.at).Seconds()*b.rate)
	b.at = now
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, time.Duration((1 - b.tokens) / b.rate * float64(time.Second))
}

func newID() string {
	return fmt.Sprintf("%08x-%04x-%04x-%04x-%012x", rand.Uint32(), rand.N(1<<16), rand.N(1<<16), rand.N(1<<16), rand.Uint64()&(1<<48-1))
}

// AddUser stores a user (as made outside Provisor) and returns it.
func (s *Server) AddUser(upn, display string, enabled bool) *User {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := &User{ID: newID(), UserPrincipalName: upn, DisplayName: display, AccountEnabled: enabled, MailNickname: strings.Split(upn, "@")[0]}
	s.users[u.ID] = u
	s.note(change{kind: "user", id: u.ID})
	return u
}

// AddGroup stores a group with members (user ids).
func (s *Server) AddGroup(name string, members ...string) *Group {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := &Group{ID: newID(), DisplayName: name, members: map[string]bool{}}
	s.groups[g.ID] = g
	s.note(change{kind: "group", id: g.ID})
	for _, m := range members {
		g.members[m] = true
		s.note(change{kind: "member", id: g.ID, member: m})
	}
	return g
}

// AddServicePrincipal makes a service principal that takes app role
// assignments, and returns its id.
func (s *Server) AddServicePrincipal() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := newID()
	s.appRoles[id] = map[string]*AppRoleAssignment{}
	return id
}

// AddRoleDefinition stores a directory role definition and returns its id.
func (s *Server) AddRoleDefinition(name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := newID()
	s.roleDefs[id] = &RoleDefinition{ID: id, DisplayName: name, IsEnabled: true, IsBuiltIn: true}
	return id
}

// AddApplication makes a service principal named name with app roles of
// the given names (assignable to users; a name starting with "app:" is
// for applications only), and returns its id and its app role ids.
func (s *Server) AddApplication(name string, roles ...string) (string, []string) {
	sp := s.AddServicePrincipal()
	s.mu.Lock()
	defer s.mu.Unlock()
	p := &ServicePrincipal{ID: sp, DisplayName: name, AppRoles: []AppRole{}}
	var ids []string
	for _, r := range roles {
		ar := AppRole{ID: newID(), DisplayName: r, Value: strings.ReplaceAll(r, " ", "."), IsEnabled: true, AllowedMemberTypes: []string{"User"}}
		if rest, ok := strings.CutPrefix(r, "app:"); ok {
			ar.DisplayName, ar.AllowedMemberTypes = rest, []string{"Application"}
		}
		p.AppRoles = append(p.AppRoles, ar)
		ids = append(ids, ar.ID)
	}
	s.sps[sp] = p
	return sp, ids
}

// AssignRole gives a user a directory role (scope "/").
func (s *Server) AssignRole(user, roleDefinition string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := newID()
	s.roles[id] = &RoleAssignment{ID: id, PrincipalID: user, RoleDefinitionID: roleDefinition, DirectoryScopeID: "/"}
}

// AssignAppRole gives a user an app role of a service principal.
func (s *Server) AssignAppRole(user, sp, appRole string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := newID()
	s.appRoles[sp][id] = &AppRoleAssignment{ID: id, PrincipalID: user, ResourceID: sp, AppRoleID: appRole}
}

// User returns a copy of the user with id or UPN, or nil.
func (s *Server) User(idOrUPN string) *User {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u := s.findUser(idOrUPN); u != nil {
		c := *u
		return &c
	}
	return nil
}

// Members returns a group's member ids, sorted.
func (s *Server) Members(group string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	if g := s.groups[group]; g != nil {
		for m := range g.members {
			out = append(out, m)
		}
	}
	sort.Strings(out)
	return out
}

// RoleAssignments returns the directory role assignments.
func (s *Server) RoleAssignments() []RoleAssignment {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []RoleAssignment
	for _, r := range s.roles {
		out = append(out, *r)
	}
	return out
}

// AppRoleAssignments returns a service principal's app role assignments.
func (s *Server) AppRoleAssignments(sp string) []AppRoleAssignment {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []AppRoleAssignment
	for _, a := range s.appRoles[sp] {
		out = append(out, *a)
	}
	return out
}

// DeleteUser deletes a user (outside Provisor); soft says it went to the
// deleted items (@removed reason "changed") rather than for good.
func (s *Server) DeleteUser(id string, soft bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deleteUser(id, soft)
}

func (s *Server) deleteUser(id string, soft bool) {
	delete(s.users, id)
	reason := "deleted"
	if soft {
		reason = "changed"
	}
	for _, g := range s.groups {
		if g.members[id] {
			delete(g.members, id)
			s.note(change{kind: "member", id: g.ID, member: id, removed: true})
		}
	}
	s.note(change{kind: "user", id: id, removed: true, reason: reason})
}

// RemoveMember removes a member (outside Provisor).
func (s *Server) RemoveMember(group, user string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if g := s.groups[group]; g != nil && g.members[user] {
		delete(g.members, user)
		s.note(change{kind: "member", id: group, member: user, removed: true})
	}
}

// SetDisplayName changes a user (outside Provisor).
func (s *Server) SetDisplayName(id, name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u := s.users[id]; u != nil {
		u.DisplayName = name
		s.note(change{kind: "user", id: id})
	}
}

// Fail adds a fault.
func (s *Server) Fail(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f.Times <= 0 {
		f.Times = 1
	}
	s.faults = append(s.faults, &f)
}

// LagAfterCreate makes the next user created unknown to the next n
// requests that name it (404), as a replica that has not caught up.
func (s *Server) LagAfterCreate(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lagNext = n
}

// ExpireDeltaTokens makes every delta token given so far answer 410
// syncStateNotFound.
func (s *Server) ExpireDeltaTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expired = true
	s.seq += 1000 // tokens given before are older than this
}

// Stats returns the counts so far.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.Others = map[string]int{}
	for k, v := range s.stats.Others {
		st.Others[k] = v
	}
	return st
}

// ResetStats sets the counts to zero.
func (s *Server) ResetStats() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats = Stats{}
}

// DeletedThroughMembers lists the users deleted by a DELETE of
// /groups/{id}/members/{id} without /$ref.
func (s *Server) DeletedThroughMembers() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.deletedBad...)
}

func (s *Server) note(c change) {
	s.seq++
	c.seq = s.seq
	s.changes = append(s.changes, c)
}

// answer is one response, of HTTP or inside a $batch.
type answer struct {
	status int
	header map[string]string
	body   any
}

func graphError(status int, code, msg string) answer {
	return answer{status: status, body: map[string]any{"error": map[string]any{"code": code, "message": msg,
		"innerError": map[string]any{"request-id": newID(), "date": time.Now().UTC().Format(time.RFC3339)}}}}
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if strings.HasSuffix(r.URL.Path, "/oauth2/v2.0/token") {
		s.token(w, r)
		return
	}
	if !strings.HasPrefix(r.URL.Path, "/v1.0/") {
		http.NotFound(w, r)
		return
	}
	rid := newID()
	w.Header().Set("request-id", rid)
	w.Header().Set("client-request-id", r.Header.Get("client-request-id"))
	if r.Header.Get("Authorization") != "Bearer "+s.accessToken() {
		writeAnswer(w, graphError(401, "InvalidAuthenticationToken", "Access token is empty or invalid."))
		return
	}
	body, _ := io.ReadAll(r.Body)
	path := strings.TrimPrefix(r.URL.Path, "/v1.0")
	s.mu.Lock()
	s.stats.HTTPRequests++
	s.mu.Unlock()
	if path == "/$batch" && r.Method == http.MethodPost {
		s.batch(w, body)
		return
	}
	s.mu.Lock()
	if s.stats.Others == nil {
		s.stats.Others = map[string]int{}
	}
	seg, _, _ := strings.Cut(strings.TrimPrefix(path, "/"), "/")
	s.stats.Others[r.Method+" /"+seg]++
	s.mu.Unlock()
	writeAnswer(w, s.handle(r.Method, path, r.URL.Query(), body))
}

func writeAnswer(w http.ResponseWriter, a answer) {
	for k, v := range a.header {
		w.Header().Set(k, v)
	}
	if a.body == nil {
		w.WriteHeader(a.status)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(a.status)
	_ = json.NewEncoder(w).Encode(a.body)
}

func (s *Server) accessToken() string { return "graphtest-access-token-" + ClientID }

func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	id, secret, ok := r.BasicAuth()
	if !ok {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	s.mu.Lock()
	s.stats.TokenRequests++
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if !strings.Contains(r.URL.Path, "/"+TenantID+"/") {
		w.WriteHeader(400)
		fmt.Fprint(w, `{"error":"invalid_request","error_description":"AADSTS90002: Tenant not found."}`)
		return
	}
	if r.PostForm.Get("grant_type") != "client_credentials" || id != ClientID || secret != ClientSecret {
		w.WriteHeader(401)
		fmt.Fprint(w, `{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided."}`)
		return
	}
	if r.PostForm.Get("scope") != "https://graph.microsoft.com/.default" {
		w.WriteHeader(400)
		fmt.Fprint(w, `{"error":"invalid_scope","error_description":"AADSTS70011: The provided value for scope is not valid."}`)
		return
	}
	fmt.Fprintf(w, `{"token_type":"Bearer","expires_in":3599,"ext_expires_in":3599,"access_token":%q}`, s.accessToken())
}

// batch answers a JSON $batch: at most 20 requests, answered in any order.
func (s *Server) batch(w http.ResponseWriter, body []byte) {
	var in struct {
		Requests []struct {
			ID        string            `json:"id"`
			Method    string            `json:"method"`
			URL       string            `json:"url"`
			Body      json.RawMessage   `json:"body"`
			Headers   map[string]string `json:"headers"`
			DependsOn []string          `json:"dependsOn"`
		} `json:"requests"`
	}
	if err := json.Unmarshal(body, &in); err != nil {
		writeAnswer(w, graphError(400, "BadRequest", "Invalid batch payload."))
		return
	}
	if len(in.Requests) > 20 {
		writeAnswer(w, graphError(400, "BadRequest", "The number of batch requests exceeds the limit of 20."))
		return
	}
	s.mu.Lock()
	s.stats.Batches++
	s.mu.Unlock()
	type resp struct {
		ID      string            `json:"id"`
		Status  int               `json:"status"`
		Headers map[string]string `json:"headers,omitempty"`
		Body    any               `json:"body,omitempty"`
	}
	out := make([]resp, 0, len(in.Requests))
	failed := map[string]bool{}
	for _, q := range in.Requests {
		dep := false
		for _, d := range q.DependsOn {
			dep = dep || failed[d]
		}
		if dep {
			failed[q.ID] = true
			out = append(out, resp{ID: q.ID, Status: 424, Body: graphError(424, "FailedDependency", "The request failed due to a failed dependency.").body})
			continue
		}
		u, err := url.Parse(q.URL)
		if err != nil || !strings.HasPrefix(q.URL, "/") {
			out = append(out, resp{ID: q.ID, Status: 400, Body: graphError(400, "BadRequest", "Invalid request URL.").body})
			continue
		}
		a := s.handle(q.Method, u.Path, u.Query(), q.Body)
		if a.status >= 400 {
			failed[q.ID] = true
		}
		out = append(out, resp{ID: q.ID, Status: a.status, Headers: a.header, Body: a.body})
	}
	if s.shuffle {
		rand.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	}
	writeAnswer(w, answer{status: 200, body: map[string]any{"responses": out}})
}

func isWrite(method string) bool { return method != http.MethodGet }

// handle answers one request (of HTTP or of a batch).
func (s *Server) handle(method, path string, q url.Values, body []byte) answer {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, f := range s.faults {
		if (f.Method == "" || f.Method == method) && strings.HasPrefix(path, f.Path) {
			if f.Times--; f.Times <= 0 {
				s.faults = append(s.faults[:i], s.faults[i+1:]...)
			}
			code := f.Code
			if code == "" {
				code = map[int]string{429: "TooManyRequests", 503: "serviceNotAvailable"}[f.Status]
			}
			a := graphError(f.Status, code, "Injected fault.")
			if f.RetryAfter > 0 {
				a.header = map[string]string{"Retry-After": strconv.Itoa(f.RetryAfter)}
			}
			if isWrite(method) {
				s.stats.Writes++
				if f.Status == 429 {
					s.stats.Throttled++
				}
			}
			return a
		}
	}
	if isWrite(method) {
		s.stats.Writes++
		if s.budget != nil {
			if ok, wait := s.budget.take(time.Now()); !ok {
				s.stats.Throttled++
				a := graphError(429, "TooManyRequests", "Too many requests.")
				a.header = map[string]string{"Retry-After": strconv.Itoa(int(math.Ceil(wait.Seconds())))}
				return a
			}
		}
	}
	a := s.route(method, path, q, body)
	if isWrite(method) && a.status < 300 {
		s.stats.WritesOK++
		now := time.Now()
		if s.stats.FirstWrite.IsZero() {
			s.stats.FirstWrite = now
		} else if gap := now.Sub(s.stats.LastWrite); gap > s.stats.MaxGap {
			s.stats.MaxGap = gap
		}
		s.stats.LastWrite = now
	}
	return a
}

func (s *Server) findUser(idOrUPN string) *User {
	if u := s.users[idOrUPN]; u != nil {
		return u
	}
	for _, u := range s.users {
		if strings.EqualFold(u.UserPrincipalName, idOrUPN) {
			return u
		}
	}
	return nil
}

// lagging reports whether a just-created user is not seen yet.
func (s *Server) lagging(id string) bool {
	if n := s.lag[id]; n > 0 {
		s.lag[id] = n - 1
		return true
	}
	return false
}

func notFound(what string) answer {
	return graphError(404, "Request_ResourceNotFound", fmt.Sprintf("Resource '%s' does not exist or one of its queried reference-property objects are not present.", what))
}

func (s *Server) route(method, path string, q url.Values, body []byte) answer {
	parts := strings.Split(strings.Trim(path, "/"), "/")
	switch {
	case method == "GET" && path == "/organization":
		return answer{status: 200, body: map[string]any{"value": []any{map[string]any{"id": TenantID, "displayName": "Contoso Test"}}}}
	case path == "/users" && method == "GET":
		return s.listUsers(q)
	case path == "/users" && method == "POST":
		return s.createUser(body)
	case path == "/users/delta" && method == "GET":
		return s.delta("user", q)
	case path == "/groups/delta" && method == "GET":
		return s.delta("group", q)
	case len(parts) == 2 && parts[0] == "users":
		u := s.findUser(parts[1])
		if u == nil || s.lagging(u.ID) {
			return notFound(parts[1])
		}
		switch method {
		case "GET":
			return answer{status: 200, body: u}
		case "PATCH":
			var p map[string]any
			if err := json.Unmarshal(body, &p); err != nil {
				return graphError(400, "BadRequest", "Unable to read JSON request payload.")
			}
			if v, ok := p["accountEnabled"].(bool); ok {
				u.AccountEnabled = v
			}
			if v, ok := p["displayName"].(string); ok {
				u.DisplayName = v
			}
			s.note(change{kind: "user", id: u.ID})
			return answer{status: 204}
		case "DELETE":
			s.deleteUser(u.ID, true)
			return answer{status: 204}
		}
	case path == "/groups" && method == "GET":
		return s.listGroups(q)
	case len(parts) == 3 && parts[0] == "groups" && parts[2] == "members" && method == "GET":
		return s.listMembers(parts[1], q)
	case len(parts) == 4 && parts[0] == "groups" && parts[2] == "members" && parts[3] == "$ref" && method == "POST":
		return s.addMember(parts[1], body)
	case len(parts) == 5 && parts[0] == "groups" && parts[2] == "members" && parts[4] == "$ref" && method == "DELETE":
		g := s.groups[parts[1]]
		if g == nil {
			return notFound(parts[1])
		}
		if !g.members[parts[3]] || s.lagging(parts[3]) {
			return notFound(parts[3])
		}
		delete(g.members, parts[3])
		s.note(change{kind: "member", id: g.ID, member: parts[3], removed: true})
		return answer{status: 204}
	case len(parts) == 4 && parts[0] == "groups" && parts[2] == "members" && method == "DELETE":
		// Without /$ref the request names the member object itself.
		if u := s.users[parts[3]]; u != nil {
			s.deletedBad = append(s.deletedBad, u.ID)
			s.deleteUser(u.ID, true)
			return answer{status: 204}
		}
		return notFound(parts[3])
	case path == "/roleManagement/directory/roleDefinitions" && method == "GET":
		ids := make([]string, 0, len(s.roleDefs))
		for id := range s.roleDefs {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		from, to, next := s.page("/roleManagement/directory/roleDefinitions", q, len(ids))
		var out []any
		for _, id := range ids[from:to] {
			out = append(out, s.roleDefs[id])
		}
		return collection(out, next)
	case path == "/servicePrincipals" && method == "GET":
		ids := make([]string, 0, len(s.sps))
		for id := range s.sps {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		from, to, next := s.page("/servicePrincipals", q, len(ids))
		var out []any
		for _, id := range ids[from:to] {
			out = append(out, s.sps[id])
		}
		return collection(out, next)
	case path == "/roleManagement/directory/roleAssignments":
		return s.roleAssignments(method, q, body)
	case len(parts) == 4 && parts[0] == "roleManagement" && parts[3] != "" && method == "DELETE":
		if s.roles[parts[3]] == nil {
			return notFound(parts[3])
		}
		delete(s.roles, parts[3])
		return answer{status: 204}
	case len(parts) >= 3 && parts[0] == "servicePrincipals" && parts[2] == "appRoleAssignedTo":
		return s.appRoleAssignments(method, parts, body)
	}
	return graphError(400, "BadRequest", fmt.Sprintf("Resource not found for the segment '%s'.", path))
}

func (s *Server) createUser(body []byte) answer {
	var in struct {
		User
		PasswordProfile *struct {
			Password    string `json:"password"`
			ForceChange bool   `json:"forceChangePasswordNextSignIn"`
		} `json:"passwordProfile"`
		AccountEnabled *bool `json:"accountEnabled"`
	}
	if err := json.Unmarshal(body, &in); err != nil {
		return graphError(400, "BadRequest", "Unable to read JSON request payload.")
	}
	for name, v := range map[string]string{"displayName": in.DisplayName, "mailNickname": in.MailNickname, "userPrincipalName": in.UserPrincipalName} {
		if v == "" {
			return graphError(400, "Request_BadRequest", fmt.Sprintf("Invalid value specified for property '%s' of resource 'User'.", name))
		}
	}
	if in.AccountEnabled == nil || in.PasswordProfile == nil || in.PasswordProfile.Password == "" {
		return graphError(400, "Request_BadRequest", "Property passwordProfile and accountEnabled are required.")
	}
	if s.findUser(in.UserPrincipalName) != nil {
		return graphError(400, "Request_BadRequest", "Another object with the same value for property userPrincipalName already exists.")
	}
	u := in.User
	u.ID, u.AccountEnabled = newID(), *in.AccountEnabled
	u.Password, u.ForceChange = in.PasswordProfile.Password, in.PasswordProfile.ForceChange
	s.users[u.ID] = &u
	s.note(change{kind: "user", id: u.ID})
	if s.lagNext > 0 {
		s.lag[u.ID], s.lagNext = s.lagNext, 0
	}
	return answer{status: 201, body: u}
}

func (s *Server) addMember(group string, body []byte) answer {
	g := s.groups[group]
	if g == nil {
		return notFound(group)
	}
	var in struct {
		Ref string `json:"@odata.id"`
	}
	if err := json.Unmarshal(body, &in); err != nil || !strings.Contains(in.Ref, "/directoryObjects/") {
		return graphError(400, "Request_BadRequest", "Invalid object identifier '"+in.Ref+"'.")
	}
	id := in.Ref[strings.LastIndex(in.Ref, "/")+1:]
	if s.users[id] == nil || s.lagging(id) {
		return notFound(id)
	}
	if g.members[id] {
		return graphError(400, "Request_BadRequest", DuplicateMemberMessage)
	}
	g.members[id] = true
	s.note(change{kind: "member", id: g.ID, member: id})
	return answer{status: 204}
}

// page cuts a sorted list of ids into pages by $skiptoken (an offset).
func (s *Server) page(base string, q url.Values, n int) (from, to int, next string) {
	from, _ = strconv.Atoi(q.Get("$skiptoken"))
	size := s.pageSize
	if top, err := strconv.Atoi(q.Get("$top")); err == nil && top > 0 && top < size {
		size = top
	}
	to = min(from+size, n)
	if to < n {
		nq := url.Values{}
		for k, v := range q {
			nq[k] = v
		}
		nq.Set("$skiptoken", strconv.Itoa(to))
		next = s.URL + "/v1.0" + base + "?" + nq.Encode()
	}
	return from, min(to, n), next
}

func collection(values []any, next string) answer {
	b := map[string]any{"value": values}
	if next != "" {
		b["@odata.nextLink"] = next
	}
	return answer{status: 200, body: b}
}

func (s *Server) listUsers(q url.Values) answer {
	var ids []string
	for id := range s.users {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	from, to, next := s.page("/users", q, len(ids))
	var out []any
	for _, id := range ids[from:to] {
		out = append(out, s.users[id])
	}
	return collection(out, next)
}

func (s *Server) listGroups(q url.Values) answer {
	var ids []string
	for id := range s.groups {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	from, to, next := s.page("/groups", q, len(ids))
	var out []any
	for _, id := range ids[from:to] {
		out = append(out, map[string]any{"id": id, "displayName": s.groups[id].DisplayName})
	}
	return collection(out, next)
}

func (s *Server) listMembers(group string, q url.Values) answer {
	g := s.groups[group]
	if g == nil {
		return notFound(group)
	}
	var ids []string
	for id := range g.members {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	if f := q.Get("$filter"); f != "" {
		var want string
		if _, err := fmt.Sscanf(f, "id eq %q", &want); err != nil {
			want = strings.Trim(strings.TrimPrefix(f, "id eq "), "'")
		}
		ids = nil
		if g.members[want] {
			ids = []string{want}
		}
	}
	from, to, next := s.page("/groups/"+group+"/members", q, len(ids))
	var out []any
	for _, id := range ids[from:to] {
		out = append(out, map[string]any{"@odata.type": "#microsoft.graph.user", "id": id})
	}
	return collection(out, next)
}

func (s *Server) roleAssignments(method string, q url.Values, body []byte) answer {
	switch method {
	case "GET":
		f := q.Get("$filter")
		var out []any
		ids := make([]string, 0, len(s.roles))
		for id := range s.roles {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		for _, id := range ids {
			r := s.roles[id]
			if f == "" || (strings.Contains(f, "principalId eq '"+r.PrincipalID+"'") &&
				(!strings.Contains(f, "roleDefinitionId") || strings.Contains(f, "roleDefinitionId eq '"+r.RoleDefinitionID+"'"))) {
				out = append(out, r)
			}
		}
		return collection(out, "")
	case "POST":
		var in RoleAssignment
		if err := json.Unmarshal(body, &in); err != nil || in.PrincipalID == "" || in.RoleDefinitionID == "" || in.DirectoryScopeID == "" {
			return graphError(400, "Request_BadRequest", "principalId, roleDefinitionId and directoryScopeId are required.")
		}
		if s.users[in.PrincipalID] == nil {
			return notFound(in.PrincipalID)
		}
		for _, r := range s.roles {
			if r.PrincipalID == in.PrincipalID && r.RoleDefinitionID == in.RoleDefinitionID && r.DirectoryScopeID == in.DirectoryScopeID {
				return graphError(400, "Request_BadRequest", "A conflicting object with one or more of the specified property values is present in the directory.")
			}
		}
		in.ID = newID()
		s.roles[in.ID] = &in
		return answer{status: 201, body: in}
	}
	return graphError(405, "Request_BadRequest", "Method not allowed.")
}

func (s *Server) appRoleAssignments(method string, parts []string, body []byte) answer {
	sp := parts[1]
	as, ok := s.appRoles[sp]
	if !ok {
		return notFound(sp)
	}
	switch {
	case method == "GET" && len(parts) == 3:
		var out []any
		for _, a := range as {
			out = append(out, a)
		}
		return collection(out, "")
	case method == "POST" && len(parts) == 3:
		var in AppRoleAssignment
		if err := json.Unmarshal(body, &in); err != nil || in.PrincipalID == "" || in.AppRoleID == "" || in.ResourceID != sp {
			return graphError(400, "Request_BadRequest", "principalId, resourceId and appRoleId are required.")
		}
		if s.users[in.PrincipalID] == nil {
			return notFound(in.PrincipalID)
		}
		for _, a := range as {
			if a.PrincipalID == in.PrincipalID && a.AppRoleID == in.AppRoleID {
				return graphError(409, "Request_BadRequest", "Permission being assigned already exists on the object")
			}
		}
		in.ID = newID()
		as[in.ID] = &in
		return answer{status: 201, body: in}
	case method == "DELETE" && len(parts) == 4:
		if as[parts[3]] == nil {
			return notFound(parts[3])
		}
		delete(as, parts[3])
		return answer{status: 204}
	}
	return graphError(405, "Request_BadRequest", "Method not allowed.")
}

// delta answers /users/delta or /groups/delta. Tokens are the change
// sequence they start after; a round (a token or none) is paged by
// $skiptoken, an offset into the round's objects, which also holds the
// round's end, so that changes while it is read go to the next round.
func (s *Server) delta(kind string, q url.Values) answer {
	from := 0
	if t := q.Get("$deltatoken"); t != "" {
		n, err := strconv.Atoi(t)
		if err != nil || (s.expired && n < s.seq-999) {
			return graphError(410, "syncStateNotFound", "The delta token is no longer valid; start a new sync.")
		}
		from = n
	}
	offset, upto := 0, s.seq
	if sk := q.Get("$skiptoken"); sk != "" {
		a, b, _ := strings.Cut(sk, ".")
		offset, _ = strconv.Atoi(a)
		upto, _ = strconv.Atoi(b)
		from, _ = strconv.Atoi(q.Get("from"))
	}
	initial := from == 0
	// The objects of the round, in the order of their last change.
	type obj struct {
		id      string
		removed string
		members map[string]bool // members@delta: id -> removed
	}
	var order []string
	objs := map[string]*obj{}
	for _, c := range s.changes {
		if c.seq <= from || c.seq > upto {
			continue
		}
		if (kind == "user" && c.kind != "user") || (kind == "group" && c.kind == "user") {
			continue
		}
		o := objs[c.id]
		if o == nil {
			o = &obj{id: c.id, members: map[string]bool{}}
			objs[c.id] = o
			order = append(order, c.id)
		}
		switch {
		case c.kind == "member":
			o.members[c.member] = c.removed
		case c.removed:
			o.removed = c.reason
		}
	}
	var live []string
	for _, id := range order {
		o := objs[id]
		if initial && (o.removed != "" || (kind == "user" && s.users[id] == nil) || (kind == "group" && s.groups[id] == nil)) {
			continue // an initial round lists what exists
		}
		live = append(live, id)
	}
	size := s.pageSize
	end := min(offset+size, len(live))
	var values []any
	for _, id := range live[offset:end] {
		o := objs[id]
		v := map[string]any{"id": id}
		if o.removed != "" {
			v["@removed"] = map[string]string{"reason": o.removed}
			values = append(values, v)
			continue
		}
		if kind == "user" {
			u := s.users[id]
			if u == nil {
				v["@removed"] = map[string]string{"reason": "deleted"}
			} else {
				v = map[string]any{"id": id, "userPrincipalName": u.UserPrincipalName, "displayName": u.DisplayName,
					"givenName": u.GivenName, "surname": u.Surname, "mail": u.Mail, "accountEnabled": u.AccountEnabled}
			}
			values = append(values, v)
			continue
		}
		g := s.groups[id]
		if g == nil {
			v["@removed"] = map[string]string{"reason": "deleted"}
			values = append(values, v)
			continue
		}
		v["displayName"] = g.DisplayName
		var md []any
		ms := make([]string, 0, len(o.members))
		for m := range o.members {
			ms = append(ms, m)
		}
		sort.Strings(ms)
		for _, m := range ms {
			if initial && (o.members[m] || !g.members[m]) {
				continue
			}
			e := map[string]any{"@odata.type": "#microsoft.graph.user", "id": m}
			if o.members[m] {
				e["@removed"] = map[string]string{"reason": "deleted"}
			}
			md = append(md, e)
		}
		if md != nil {
			v["members@delta"] = md
		}
		values = append(values, v)
	}
	b := map[string]any{"value": values}
	path := "/users/delta"
	if kind == "group" {
		path = "/groups/delta"
	}
	if end < len(live) {
		b["@odata.nextLink"] = fmt.Sprintf("%s/v1.0%s?$skiptoken=%d.%d&from=%d", s.URL, path, end, upto, from)
	} else {
		b["@odata.deltaLink"] = fmt.Sprintf("%s/v1.0%s?$deltatoken=%d", s.URL, path, upto)
	}
	return answer{status: 200, body: b}
}
