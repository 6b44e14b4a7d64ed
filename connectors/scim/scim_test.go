package scim_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/provisor/provisor/connectors"
	"github.com/provisor/provisor/connectors/scim"
	"github.com/provisor/provisor/connectors/scim/scimtest"
)

func open(t *testing.T, srv *scimtest.Server, extra string) *scim.Target {
	t.Helper()
	settings := fmt.Sprintf(`{"base_url":%q%s}`, srv.URL, extra)
	d, err := scim.OpenWith(connectors.Config{ID: "c1", Name: "Test SCIM", Settings: json.RawMessage(settings), Secrets: scimtest.Secrets()},
		&scim.Options{Backoff: time.Millisecond})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return d
}

// mustOf returns a check that fails t on an operation's error.
func mustOf(t *testing.T) func(connectors.Result, error) connectors.Result {
	return func(r connectors.Result, err error) connectors.Result {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
}

func active(t *testing.T, srv *scimtest.Server, id string) bool {
	t.Helper()
	u := srv.User(id)
	if u == nil {
		t.Fatalf("no user %s", id)
	}
	switch v := u["active"].(type) {
	case bool:
		return v
	case string:
		return strings.EqualFold(v, "true")
	}
	return true
}

func TestOperationsAndRepeats(t *testing.T) {
	t.Parallel()
	must := mustOf(t)
	ctx := context.Background()
	srv := scimtest.New(t, nil)
	group := srv.AddGroup("Sales")
	d := open(t, srv, "")
	acct := connectors.Account{Username: "ada", DisplayName: "Ada Lovelace", GivenName: "Ada", Surname: "Lovelace", Email: "ada@example.test",
		Attributes: map[string]string{connectors.AttributeIdentityID: "identity-1"}}

	r := must(d.CreateAccount(ctx, acct))
	if !r.Changed || r.ExternalID == "" || srv.UserID("ada") != r.ExternalID {
		t.Fatalf("create: %+v", r)
	}
	id := r.ExternalID
	u := srv.User(id)
	if u["externalId"] != nil {
		// The library keeps externalId beside the attributes; read it back.
		t.Logf("externalId kept in attributes: %v", u["externalId"])
	}
	if name, _ := u["name"].(map[string]any); name["givenName"] != "Ada" || name["familyName"] != "Lovelace" {
		t.Errorf("name: %v", u["name"])
	}
	if emails, _ := u["emails"].([]any); len(emails) != 1 || emails[0].(map[string]any)["type"] != "work" {
		t.Errorf("emails: %v", u["emails"])
	}
	// A second create meets 409 uniqueness and adopts the user.
	r = must(d.CreateAccount(ctx, acct))
	if r.Changed || r.ExternalID != id || !strings.Contains(r.Message, "adopted") {
		t.Fatalf("repeated create: %+v", r)
	}

	acct.ExternalID = id
	if r = must(d.DisableAccount(ctx, acct)); !r.Changed || active(t, srv, id) {
		t.Fatalf("disable: %+v", r)
	}
	if r = must(d.DisableAccount(ctx, acct)); r.Changed {
		t.Fatalf("repeated disable: %+v", r)
	}
	if r = must(d.EnableAccount(ctx, acct)); !r.Changed || !active(t, srv, id) {
		t.Fatalf("enable: %+v", r)
	}
	if r = must(d.EnableAccount(ctx, acct)); r.Changed {
		t.Fatalf("repeated enable: %+v", r)
	}

	ent := connectors.Entitlement{ExternalID: group, Name: "Sales", Kind: "group"}
	// By userName only: the connector finds the id with a filter.
	byName := connectors.Account{Username: "ada"}
	if r = must(d.Grant(ctx, byName, ent)); !r.Changed || fmt.Sprint(srv.Members(group)) != "["+id+"]" {
		t.Fatalf("grant: %+v, members %v", r, srv.Members(group))
	}
	if r = must(d.Grant(ctx, acct, ent)); r.Changed || !strings.Contains(r.Message, "already") {
		t.Fatalf("repeated grant: %+v", r)
	}
	if r = must(d.Revoke(ctx, acct, ent)); !r.Changed || len(srv.Members(group)) != 0 {
		t.Fatalf("revoke: %+v, members %v", r, srv.Members(group))
	}
	if r = must(d.Revoke(ctx, acct, ent)); r.Changed {
		t.Fatalf("repeated revoke: %+v", r)
	}
	if _, err := d.Grant(ctx, acct, connectors.Entitlement{ExternalID: "g-missing", Name: "Gone"}); !connectors.IsPermanent(err) {
		t.Fatalf("grant of a missing group: %v", err)
	}

	if r = must(d.DeleteAccount(ctx, acct)); !r.Changed || srv.User(id) != nil {
		t.Fatalf("delete: %+v", r)
	}
	// 404 on delete is no change; so is a name the target does not know.
	if r = must(d.DeleteAccount(ctx, acct)); r.Changed {
		t.Fatalf("repeated delete: %+v", r)
	}
	if r = must(d.DeleteAccount(ctx, connectors.Account{Username: "nobody"})); r.Changed {
		t.Fatalf("delete of an unknown name: %+v", r)
	}
	if _, err := d.EnableAccount(ctx, acct); !connectors.IsPermanent(err) {
		t.Fatalf("enable of a deleted user: %v", err)
	}
}

func TestBatchGrantsAndRevokes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := scimtest.New(t, nil)
	var ids []string
	for i := range 5 {
		ids = append(ids, srv.AddUser(fmt.Sprintf("u%d", i), fmt.Sprintf("User %d", i), true))
	}
	g := srv.AddGroup("Ops", ids[0])
	d := open(t, srv, "")
	ent := connectors.Entitlement{ExternalID: g, Name: "Ops"}
	var ms []connectors.Membership
	for _, id := range ids {
		ms = append(ms, connectors.Membership{Account: connectors.Account{Username: "x", ExternalID: id}, Entitlement: ent})
	}
	srv.Requests()
	rs, errs := d.GrantAll(ctx, ms)
	for i := range ms {
		if errs[i] != nil || rs[i].Changed != (i > 0) {
			t.Fatalf("grant %d: %+v %v", i, rs[i], errs[i])
		}
	}
	reqs := srv.Requests()
	// One read of the group, one PATCH per member missing.
	if len(reqs) != 5 || reqs[0].Method != http.MethodGet {
		t.Fatalf("requests: %+v", reqs)
	}
	if got := srv.Members(g); len(got) != 5 {
		t.Fatalf("members %v", got)
	}
	rs, errs = d.RevokeAll(ctx, ms[:3])
	for i := range 3 {
		if errs[i] != nil || !rs[i].Changed {
			t.Fatalf("revoke %d: %+v %v", i, rs[i], errs[i])
		}
	}
	rs, _ = d.RevokeAll(ctx, ms[:3])
	if rs[0].Changed || len(srv.Members(g)) != 2 {
		t.Fatalf("repeated revoke %+v, members %v", rs[0], srv.Members(g))
	}
}

// GrantEach and RevokeEach tell of each membership once, as it is known:
// a member already there, a user the target does not have, and the ones
// added, from two batches at once on the connector's shared streams.
func TestBatchesReportEachMembership(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := scimtest.New(t, nil)
	var ids []string
	for i := range 40 {
		ids = append(ids, srv.AddUser(fmt.Sprintf("u%d", i), fmt.Sprintf("User %d", i), true))
	}
	g := srv.AddGroup("Ops", ids[0])
	d := open(t, srv, "")
	ent := connectors.Entitlement{ExternalID: g, Name: "Ops"}
	batch := func(from, to int) []connectors.Membership {
		var ms []connectors.Membership
		for _, id := range ids[from:to] {
			ms = append(ms, connectors.Membership{Account: connectors.Account{Username: "x", ExternalID: id}, Entitlement: ent})
		}
		return ms
	}
	first := append(batch(0, 20), connectors.Membership{Account: connectors.Account{Username: "ghost"}, Entitlement: ent})
	second := batch(20, 40)
	type report struct {
		n       int
		changed bool
		err     error
	}
	var mu sync.Mutex
	got := map[string]*report{}
	reporter := func(name string, ms []connectors.Membership) connectors.ReportFunc {
		return func(i int, r connectors.Result, err error) {
			mu.Lock()
			defer mu.Unlock()
			k := fmt.Sprintf("%s %s%s", name, ms[i].Account.ExternalID, ms[i].Account.Username)
			if got[k] == nil {
				got[k] = &report{}
			}
			got[k].n++
			got[k].changed, got[k].err = r.Changed, err
		}
	}
	var wg sync.WaitGroup
	wg.Go(func() { d.GrantEach(ctx, first, reporter("first", first)) })
	wg.Go(func() { d.GrantEach(ctx, second, reporter("second", second)) })
	wg.Wait()
	if len(got) != 41 {
		t.Fatalf("%d memberships reported, want 41", len(got))
	}
	for k, r := range got {
		want := report{n: 1, changed: !strings.HasSuffix(k, ids[0]+"x") && !strings.HasSuffix(k, "ghost")}
		if r.n != want.n || r.changed != want.changed || (r.err != nil) != strings.HasSuffix(k, "ghost") {
			t.Errorf("%s: reported %d times, changed %v, error %v", k, r.n, r.changed, r.err)
		}
	}
	if m := srv.Members(g); len(m) != 40 {
		t.Errorf("%d members, want 40", len(m))
	}
	if _, _, most, _ := srv.PatchStats(); most > scim.PatchStreams {
		t.Errorf("%d PATCH requests in flight at once, more than the connector's %d streams", most, scim.PatchStreams)
	}
	clear(got)
	d.RevokeEach(ctx, first, reporter("revoke", first))
	if len(got) != 21 || got["revoke ghost"].err != nil || got["revoke "+ids[1]+"x"].n != 1 || !got["revoke "+ids[1]+"x"].changed {
		t.Errorf("revokes reported: %d, ghost %+v", len(got), got["revoke ghost"])
	}
	if m := srv.Members(g); len(m) != 20 {
		t.Errorf("%d members after the revokes, want 20", len(m))
	}
}

func TestQuirkSwitches(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, c := range []struct {
		name, settings string
		noContent      bool
		opWord         string // the op of the PATCH as sent
		activeValue    string // active's value as sent
		removalPath    string
	}{
		{"defaults", "", false, `"op":"replace"`, `"value":false`, `"path":"members[value eq \"`},
		{"capitalized ops", `,"patch_op_case":"capitalized"`, false, `"op":"Replace"`, `"value":false`, `"op":"Remove"`},
		{"string booleans", `,"string_booleans":true`, false, `"op":"replace"`, `"value":"False"`, `members[value eq`},
		{"no content", `,"patch_response":"no_content"`, true, `"op":"replace"`, `"value":false`, `members[value eq`},
		{"removal by value", `,"member_removal":"value"`, false, `"op":"replace"`, `"value":false`, `"path":"members","value":[{"value":"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			must := mustOf(t)
			srv := scimtest.New(t, nil)
			srv.AnswerPatchNoContent(c.noContent)
			uid := srv.AddUser("grace", "Grace Hopper", true)
			g := srv.AddGroup("Navy", uid)
			d := open(t, srv, c.settings)
			acct := connectors.Account{Username: "grace", ExternalID: uid}
			srv.Requests()
			if r := must(d.DisableAccount(ctx, acct)); !r.Changed || active(t, srv, uid) {
				t.Fatalf("disable: %+v", r)
			}
			var patch scimtest.Request
			for _, r := range srv.Requests() {
				if r.Method == http.MethodPatch {
					patch = r
				}
			}
			want := map[bool]int{true: http.StatusNoContent, false: http.StatusOK}[c.noContent]
			if patch.Status != want || !strings.Contains(string(patch.Body), c.opWord) || !strings.Contains(string(patch.Body), c.activeValue) {
				t.Fatalf("PATCH answered %d: %s", patch.Status, patch.Body)
			}
			if r := must(d.Revoke(ctx, acct, connectors.Entitlement{ExternalID: g})); !r.Changed || len(srv.Members(g)) != 0 {
				t.Fatalf("revoke: %+v", r)
			}
			for _, r := range srv.Requests() {
				if r.Method == http.MethodPatch && !strings.Contains(string(r.Body), c.removalPath) {
					t.Fatalf("removal PATCH: %s", r.Body)
				}
			}
			if r := must(d.EnableAccount(ctx, acct)); !r.Changed || !active(t, srv, uid) {
				t.Fatalf("enable: %+v", r)
			}
		})
	}
}

// With user_name email, the identity's email is the userName, also when
// the account is looked up.
func TestUserNameFromEmail(t *testing.T) {
	t.Parallel()
	must := mustOf(t)
	ctx := context.Background()
	srv := scimtest.New(t, nil)
	g := srv.AddGroup("G")
	d := open(t, srv, `,"user_name":"email"`)
	acct := connectors.Account{Username: "ada", Email: "ada@example.test"}
	r := must(d.CreateAccount(ctx, acct))
	if srv.UserID("ada@example.test") != r.ExternalID || srv.UserID("ada") != "" {
		t.Fatalf("created %+v", r)
	}
	if r := must(open(t, srv, `,"user_name":"email"`).Grant(ctx, acct, connectors.Entitlement{ExternalID: g})); !r.Changed {
		t.Fatalf("grant by email: %+v", r)
	}
}

func TestPagingAcrossPages(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := scimtest.New(t, &scimtest.Options{MaxResults: 7})
	for i := range 23 {
		srv.AddUser(fmt.Sprintf("p%02d", i), "", i%5 != 0)
	}
	srv.AddGroup("A")
	d := open(t, srv, `,"page_size":5`)
	sink := newSink()
	if _, err := d.Import(ctx, connectors.ImportFull, "", sink); err != nil {
		t.Fatal(err)
	}
	if len(sink.accounts) != 23 || len(sink.ents) != 1 {
		t.Fatalf("%d accounts, %d entitlements", len(sink.accounts), len(sink.ents))
	}
	if !sink.accounts["p05"].Locked || sink.accounts["p06"].Locked {
		t.Fatalf("locked: %+v %+v", sink.accounts["p05"], sink.accounts["p06"])
	}
	gets := 0
	for _, r := range srv.Requests() {
		if r.Path == "/v2/Users" {
			gets++
			if !strings.Contains(r.Query, "count=5") {
				t.Fatalf("query %s", r.Query)
			}
		}
	}
	if gets != 5 {
		t.Fatalf("%d pages of users, want 5", gets)
	}
}

func TestHostileNames(t *testing.T) {
	t.Parallel()
	must := mustOf(t)
	ctx := context.Background()
	srv := scimtest.New(t, nil)
	d := open(t, srv, "")
	g := srv.AddGroup("G")
	// Each name would, unescaped, end the string and widen the filter to
	// every user ("or userName pr").
	decoy := srv.AddUser("decoy", "Decoy", true)
	for _, name := range []string{`o"brien`, `back\slash`, `x" or userName pr or userName eq "y`, `trail\`, `a\"b`, "tab\tname"} {
		r := must(d.CreateAccount(ctx, connectors.Account{Username: name}))
		if srv.UserID(name) != r.ExternalID {
			t.Fatalf("%q: created %s, server has %s", name, r.ExternalID, srv.UserID(name))
		}
		fresh := open(t, srv, "") // no remembered ids: looks the name up
		if r := must(fresh.Grant(ctx, connectors.Account{Username: name}, connectors.Entitlement{ExternalID: g})); !r.Changed {
			t.Fatalf("%q: grant %+v", name, r)
		}
		if r := must(fresh.Revoke(ctx, connectors.Account{Username: name}, connectors.Entitlement{ExternalID: g})); !r.Changed {
			t.Fatalf("%q: revoke %+v", name, r)
		}
		if r := must(open(t, srv, "").DeleteAccount(ctx, connectors.Account{Username: name})); !r.Changed || srv.UserID(name) != "" {
			t.Fatalf("%q: delete %+v", name, r)
		}
	}
	if srv.User(decoy) == nil || len(srv.Members(g)) != 0 {
		t.Fatalf("decoy deleted or members left: %v", srv.Members(g))
	}
	if got := scim.Quote(`a"b\c`); got != `"a\"b\\c"` {
		t.Fatalf("Quote: %s", got)
	}
}

func TestErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	t.Run("429 with Retry-After is waited for", func(t *testing.T) {
		t.Parallel()
		must := mustOf(t)
		srv := scimtest.New(t, nil)
		uid := srv.AddUser("lin", "Lin", true)
		d := open(t, srv, "")
		srv.Throttle(2, "0.01")
		r := must(d.DisableAccount(ctx, connectors.Account{ExternalID: uid}))
		if !r.Changed || r.RateLimitWaits == 0 {
			t.Fatalf("%+v", r)
		}
	})
	t.Run("503 with Retry-After is waited for", func(t *testing.T) {
		t.Parallel()
		must := mustOf(t)
		srv := scimtest.New(t, nil)
		d := open(t, srv, "")
		srv.Unavailable(2, "0.01")
		r := must(d.CreateAccount(ctx, connectors.Account{Username: "late"}))
		if !r.Changed || srv.UserID("late") != r.ExternalID {
			t.Fatalf("%+v", r)
		}
	})
	t.Run("a long Retry-After goes back to the queue", func(t *testing.T) {
		t.Parallel()
		srv := scimtest.New(t, nil)
		uid := srv.AddUser("lin", "Lin", true)
		d := open(t, srv, "")
		srv.Throttle(1, "120")
		_, err := d.DisableAccount(ctx, connectors.Account{ExternalID: uid})
		if wait, ok := connectors.RetryAfterOf(err); !ok || wait < 100*time.Second {
			t.Fatalf("err %v, wait %v", err, wait)
		}
	})
	t.Run("401 is permanent with advice", func(t *testing.T) {
		t.Parallel()
		srv := scimtest.New(t, nil)
		d := open(t, srv, "")
		srv.RefuseAll(true)
		_, err := d.CreateAccount(ctx, connectors.Account{Username: "x"})
		if !connectors.IsPermanent(err) || !strings.Contains(err.Error(), "check the connector's token") || connectors.StatusOf(err) != 401 {
			t.Fatalf("%v", err)
		}
		if h := d.Check(ctx); h.OK || !strings.Contains(h.Message, "401") {
			t.Fatalf("check: %+v", h)
		}
	})
	t.Run("403 is permanent with advice", func(t *testing.T) {
		t.Parallel()
		srv := scimtest.New(t, nil)
		uid := srv.AddUser("max", "Max", true)
		d := open(t, srv, "")
		srv.ForbidAll(true)
		_, err := d.DisableAccount(ctx, connectors.Account{ExternalID: uid})
		if !connectors.IsPermanent(err) || !strings.Contains(err.Error(), "check the token's permissions") ||
			!strings.Contains(err.Error(), "not allowed to change this resource") || connectors.StatusOf(err) != 403 {
			t.Fatalf("%v", err)
		}
	})
	t.Run("SCIM error bodies reach the message", func(t *testing.T) {
		t.Parallel()
		srv := scimtest.New(t, nil)
		d := open(t, srv, "")
		// A filter the server cannot parse: 400 invalidFilter with detail.
		_, err := d.Grant(ctx, connectors.Account{Username: "x", ExternalID: "u1"}, connectors.Entitlement{ExternalID: "nope"})
		if err == nil {
			t.Fatal("grant to a missing group succeeded")
		}
		srv2 := scimtest.New(t, nil)
		srv2.AddUser("dup", "Dup", true)
		d2 := open(t, srv2, "")
		_, err = d2.CreateAccount(ctx, connectors.Account{Username: ""})
		if !connectors.IsPermanent(err) {
			t.Fatalf("empty userName: %v", err)
		}
	})
}

func TestCheckReportsWhatTheTargetSupports(t *testing.T) {
	t.Parallel()
	srv := scimtest.New(t, nil)
	srv.AddUser("a", "A", true)
	h := open(t, srv, "").Check(context.Background())
	if !h.OK || !strings.Contains(h.Message, "patch: yes, filter: yes, bulk: no, etag: no") || !strings.Contains(h.Message, "1 users") {
		t.Fatalf("%+v", h)
	}
	nf := scimtest.New(t, &scimtest.Options{NoFilter: true})
	if h := open(t, nf, "").Check(context.Background()); !h.OK || !strings.Contains(h.Message, "filter: no") {
		t.Fatalf("%+v", h)
	}
}

func TestAuthentications(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := scimtest.New(t, nil)
	for _, c := range []struct {
		settings string
		secrets  map[string]string
	}{
		{fmt.Sprintf(`{"base_url":%q,"auth":"oauth2","token_url":%q,"client_id":%q}`, srv.URL, srv.TokenURL, scimtest.ClientID),
			map[string]string{scim.SecretClientSecret: scimtest.ClientSecret}},
		{fmt.Sprintf(`{"base_url":%q,"auth":"basic","username":%q}`, srv.URL, scimtest.BasicUser),
			map[string]string{scim.SecretPassword: scimtest.BasicPass}},
	} {
		d, err := scim.Open(connectors.Config{Settings: json.RawMessage(c.settings), Secrets: c.secrets})
		if err != nil {
			t.Fatal(err)
		}
		if h := d.Check(ctx); !h.OK {
			t.Fatalf("%s: %+v", c.settings, h)
		}
	}
	d, _ := scim.Open(connectors.Config{Settings: srv.Settings(), Secrets: map[string]string{scim.SecretToken: "wrong"}})
	if h := d.Check(ctx); h.OK || !strings.Contains(h.Message, "check the connector's token") {
		t.Fatalf("wrong token: %+v", h)
	}
}

func TestSettingsErrorsNameTheField(t *testing.T) {
	t.Parallel()
	typ := scim.Type()
	for _, c := range []struct {
		settings string
		secrets  map[string]string
		field    string
	}{
		{`{}`, scimtest.Secrets(), "settings.base_url"},
		{`{"base_url":"http://example.com/scim"}`, scimtest.Secrets(), "settings.base_url"},
		{`{"base_url":"https://x.test","auth":"magic"}`, scimtest.Secrets(), "settings.auth"},
		{`{"base_url":"https://x.test"}`, nil, "secrets.token"},
		{`{"base_url":"https://x.test","auth":"oauth2"}`, map[string]string{"client_secret": "s"}, "settings.token_url"},
		{`{"base_url":"https://x.test","auth":"oauth2","token_url":"https://x.test/t"}`, map[string]string{"client_secret": "s"}, "settings.client_id"},
		{`{"base_url":"https://x.test","auth":"basic"}`, map[string]string{"password": "p"}, "settings.username"},
		{`{"base_url":"https://x.test","page_size":5000}`, scimtest.Secrets(), "settings.page_size"},
		{`{"base_url":"https://x.test","patch_op_case":"UPPER"}`, scimtest.Secrets(), "settings.patch_op_case"},
		{`{"base_url":"https://x.test","patch_response":"201"}`, scimtest.Secrets(), "settings.patch_response"},
		{`{"base_url":"https://x.test","member_removal":"all"}`, scimtest.Secrets(), "settings.member_removal"},
		{`{"base_url":"https://x.test","user_name":"upn"}`, scimtest.Secrets(), "settings.user_name"},
		{`{"base_url":"https://x.test","deletion_threshold_percent":101}`, scimtest.Secrets(), "settings.deletion_threshold_percent"},
		{`{"base_url":"https://x.test","request_timeout":"soon"}`, scimtest.Secrets(), "settings.request_timeout"},
		{`{"base_url":"https://x.test"}`, map[string]string{"token": "t", "apikey": "k"}, "secrets.apikey"},
		{`{"base_url":"https://x.test","colour":"red"}`, scimtest.Secrets(), "settings"},
	} {
		problems := typ.ValidateSettings(json.RawMessage(c.settings), c.secrets)
		if problems[c.field] == "" {
			t.Errorf("%s %v: no problem with %s: %v", c.settings, c.secrets, c.field, problems)
		}
	}
	if p := typ.ValidateSettings(json.RawMessage(`{"base_url":"https://x.test/scim/v2"}`), scimtest.Secrets()); len(p) != 0 {
		t.Fatalf("good settings: %v", p)
	}
	var names []string
	for _, f := range typ.Fields {
		names = append(names, f.Name)
	}
	if !strings.Contains(strings.Join(names, ","), "base_url,auth") {
		t.Fatalf("fields %v", names)
	}
	_, err := scim.Open(connectors.Config{Settings: json.RawMessage(`{}`)})
	var fe connectors.FieldErrors
	if !errors.As(err, &fe) {
		t.Fatalf("open with bad settings: %v", err)
	}
}

// sink collects an import.
type sink struct {
	accounts map[string]connectors.ImportedAccount
	ents     map[string]connectors.Entitlement
	members  map[string][]string
	deleted  []string
	present  []string
	notes    []string
}

func newSink() *sink {
	return &sink{accounts: map[string]connectors.ImportedAccount{}, ents: map[string]connectors.Entitlement{}, members: map[string][]string{}}
}

func (s *sink) Account(_ context.Context, a connectors.ImportedAccount) error {
	s.accounts[a.Username] = a
	return nil
}
func (s *sink) Entitlement(_ context.Context, e connectors.Entitlement) error {
	s.ents[e.ExternalID] = e
	return nil
}
func (s *sink) Deleted(_ context.Context, id string) error {
	s.deleted = append(s.deleted, id)
	return nil
}
func (s *sink) Members(_ context.Context, g string, m []string) error {
	s.members[g] = m
	return nil
}
func (s *sink) Present(_ context.Context, ids []string) error { s.present = ids; return nil }
func (s *sink) Note(msg string)                               { s.notes = append(s.notes, msg) }
