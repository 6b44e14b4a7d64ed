package api_test

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/provisor/provisor/access"
	"github.com/provisor/provisor/app/apptest"
	"github.com/provisor/provisor/database/dbtest"
	"github.com/provisor/provisor/identities"
)

// tokenFor creates a client that acts for the portal user username and
// returns a bearer token for it.
func (h harness) tokenFor(username string, scopes ...string) string {
	h.t.Helper()
	c, secret, err := h.Access.CreateClientFor(h.Ctx, "for "+username, scopes, username, "test")
	if err != nil {
		h.t.Fatal(err)
	}
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {c.ClientID}, "client_secret": {secret}}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	status, _, body := h.do("POST", "/api/v1/token", "", "application/x-www-form-urlencoded", form.Encode())
	if status != 200 || json.Unmarshal([]byte(body), &tok) != nil {
		h.t.Fatalf("token for %s: %d %s", username, status, body)
	}
	return tok.AccessToken
}

func (h harness) user(username, role string) {
	h.t.Helper()
	if _, err := h.Access.CreateUser(h.Ctx, access.UserInput{Username: username, Password: access.GeneratePassword(), Role: role}, "test"); err != nil {
		h.t.Fatal(err)
	}
}

func (h harness) runs() int64 {
	h.t.Helper()
	var n int64
	if err := h.DB.Gorm.Table("request_instances").Count(&n).Error; err != nil {
		h.t.Fatal(err)
	}
	return n
}

// Each rule of the request policy, through POST /api/v1/requests and
// POST /api/v1/tasks: who may ask for whom, and for what.
func TestRequestPolicy(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect string) {
		t.Parallel()
		h := harness{apptest.New(t, dialect, nil), t}
		dir, ents := h.Directory(t, "Corp", "VPN", "Secret", "Finance", "Root")
		rita, alice, bob, carol := h.Identity(t, "rita"), h.Identity(t, "alice"), h.Identity(t, "bob"), h.Identity(t, "carol")
		team, other := h.Workgroup(t, "Team", bob), h.Workgroup(t, "Other", carol)
		dirTok := h.token(access.ScopeDirectory)
		h.json("PATCH", "/api/v1/identities/"+alice.ID, dirTok, `{"manager_id":"`+rita.ID+`"}`, 200, nil)
		h.json("PATCH", "/api/v1/workgroups/"+team.ID, dirTok, `{"owner_id":"`+rita.ID+`"}`, 200, nil)
		h.json("PATCH", "/api/v1/entitlements/"+ents["Secret"].ID, dirTok, `{"requestable":false}`, 200, nil)
		h.json("PATCH", "/api/v1/entitlements/"+ents["Finance"].ID, dirTok, `{"approval":"owner"}`, 422, nil) // no owner yet
		h.json("PATCH", "/api/v1/entitlements/"+ents["Finance"].ID, dirTok, `{"approval":"owner","owner_workgroup_id":"`+team.ID+`"}`, 200, nil)
		var root identities.Entitlement
		h.json("PATCH", "/api/v1/entitlements/"+ents["Root"].ID, dirTok, `{"sensitivity":"privileged"}`, 200, &root)
		if root.Sensitivity != "privileged" || root.Approval != "none" || !root.Requestable || root.PolicyUpdatedAt == nil {
			t.Errorf("policy after PATCH: %+v", root.Policy)
		}
		if n := h.audits(t, "entitlement.policy"); n != 3 {
			t.Errorf("%d entitlement.policy audit events, want 3 (one PATCH was refused)", n)
		}

		h.user("rita", access.RoleRequester)
		h.user("helen", access.RoleHelpdesk)
		h.user("root", access.RoleAdmin)
		tok := map[string]string{"rita": h.tokenFor("rita", access.ScopeRequests, access.ScopeTasks),
			"helen": h.tokenFor("helen", access.ScopeRequests), "root": h.tokenFor("root", access.ScopeRequests),
			"service": h.token(access.ScopeRequests)}

		body := func(typ, benType, benID string, ent, duration string) string {
			r := map[string]any{"type": typ, "beneficiary_type": benType, "beneficiary_id": benID, "connector_id": dir.ID, "justification": "policy test"}
			if ent != "" {
				r["entitlements"] = []string{ents[ent].ID}
			}
			if duration != "" {
				r["duration"] = duration
			}
			b, _ := json.Marshal(r)
			return string(b)
		}
		person := func(p *identities.Identity) (string, string) { return "identity", p.ID }
		group := func(w *identities.Workgroup) (string, string) { return "workgroup", w.ID }
		type ben = func() (string, string)
		for _, c := range []struct {
			name, who, typ string
			ben            ben
			ent, duration  string
			want           int
			rule, detail   string
			wantDuration   string
		}{
			{"self", "rita", "add_entitlements", func() (string, string) { return person(rita) }, "VPN", "", 201, "", "", ""},
			{"direct report", "rita", "add_entitlements", func() (string, string) { return person(alice) }, "VPN", "", 201, "", "", ""},
			{"member of an owned workgroup", "rita", "add_entitlements", func() (string, string) { return person(bob) }, "VPN", "", 201, "", "", ""},
			{"an owned workgroup", "rita", "add_entitlements", func() (string, string) { return group(team) }, "VPN", "", 201, "", "", ""},
			{"someone else", "rita", "add_entitlements", func() (string, string) { return person(carol) }, "VPN", "", 403, "beneficiary", "carol is not someone you may ask for", ""},
			{"lock someone else", "rita", "lock_account", func() (string, string) { return person(carol) }, "", "", 403, "beneficiary", "", ""},
			{"delete someone else", "rita", "delete_account", func() (string, string) { return person(carol) }, "", "", 403, "beneficiary", "", ""},
			{"create for someone else", "rita", "create_account", func() (string, string) { return person(carol) }, "", "", 403, "beneficiary", "", ""},
			{"a workgroup of someone else", "rita", "add_entitlements", func() (string, string) { return group(other) }, "VPN", "", 403, "beneficiary", "workgroup Other is not yours", ""},
			{"lock a direct report", "rita", "lock_account", func() (string, string) { return person(alice) }, "", "", 201, "", "", ""},
			{"helpdesk for anyone", "helen", "add_entitlements", func() (string, string) { return person(carol) }, "VPN", "", 201, "", "", ""},
			{"helpdesk for a workgroup", "helen", "unlock_account", func() (string, string) { return group(other) }, "", "", 201, "", "", ""},
			{"helpdesk, not requestable", "helen", "add_entitlements", func() (string, string) { return person(carol) }, "Secret", "", 403, "not_requestable", "entitlement Secret is not requestable", ""},
			{"not requestable", "rita", "add_entitlements", func() (string, string) { return person(rita) }, "Secret", "", 403, "not_requestable", "", ""},
			{"admin, not requestable", "root", "add_entitlements", func() (string, string) { return person(carol) }, "Secret", "", 201, "", "", ""},
			{"service, not requestable", "service", "add_entitlements", func() (string, string) { return person(carol) }, "Secret", "", 201, "", "", ""},
			{"needs an approval", "rita", "add_entitlements", func() (string, string) { return person(rita) }, "Finance", "", 201, "awaiting", "", ""},
			{"admin, needs an approval", "root", "add_entitlements", func() (string, string) { return person(rita) }, "Finance", "", 201, "", "", ""},
			{"privileged without a duration gets the max", "rita", "add_entitlements", func() (string, string) { return person(rita) }, "Root", "", 201, "", "", "8h"},
			{"privileged within the max", "rita", "add_entitlements", func() (string, string) { return person(rita) }, "Root", "2h", 201, "", "", "2h"},
			{"privileged longer than the max", "rita", "add_entitlements", func() (string, string) { return person(rita) }, "Root", "2d", 403, "max_duration", "at most 8h", ""},
			{"admin, privileged longer than the max", "root", "add_entitlements", func() (string, string) { return person(rita) }, "Root", "2d", 403, "max_duration", "", ""},
			{"removing needs no approval", "rita", "remove_entitlements", func() (string, string) { return person(rita) }, "Finance", "", 201, "", "", ""},
			{"data import", "rita", "data_import", func() (string, string) { return "connector", dir.ID }, "", "", 403, "admin_only", "", ""},
		} {
			t.Run(c.name, func(t *testing.T) {
				kind, id := c.ben()
				b := body(c.typ, kind, id, c.ent, c.duration)
				if c.typ == "data_import" {
					b = `{"type":"data_import","beneficiary_type":"connector","beneficiary_id":"` + dir.ID + `","connector_id":"` + dir.ID + `","import_mode":"full"}`
				}
				before := h.runs()
				status, hdr, got := h.do("POST", "/api/v1/requests", tok[c.who], "application/json", b)
				if status != c.want {
					t.Fatalf("%d, want %d: %s", status, c.want, got)
				}
				if c.want == 403 {
					var p struct {
						Detail   string `json:"detail"`
						Rule     string `json:"rule"`
						Refusals []struct{ Rule, Field, Message string }
					}
					_ = json.Unmarshal([]byte(got), &p)
					if hdr.Get("Content-Type") != "application/problem+json" || p.Rule != c.rule || len(p.Refusals) == 0 || !strings.Contains(p.Detail, c.detail) {
						t.Errorf("refusal %s: %s", hdr.Get("Content-Type"), got)
					}
					if n := h.runs(); n != before {
						t.Errorf("a refused request started a run (%d runs, were %d)", n, before)
					}
					return
				}
				var inst struct {
					ID        string  `json:"id"`
					Status    string  `json:"status"`
					ExpiresAt *string `json:"expires_at"`
				}
				_ = json.Unmarshal([]byte(got), &inst)
				if want := map[bool]string{true: "awaiting_approval"}[c.rule == "awaiting"]; (want != "") != (inst.Status == "awaiting_approval") {
					t.Errorf("status %s, want awaiting_approval only when the request needs an approval", inst.Status)
				}
				if c.wantDuration != "" {
					stored, err := h.Requests.GetInstance(h.Ctx, inst.ID)
					if err != nil {
						t.Fatal(err)
					}
					r, _ := stored.RequestOf()
					if r.Duration != c.wantDuration || inst.ExpiresAt == nil {
						t.Errorf("duration %q, expires %v; want %s", r.Duration, inst.ExpiresAt, c.wantDuration)
					}
				}
			})
		}

		// Tasks saved by a requester are checked when saved; a trigger by an
		// admin is not checked again.
		task := func(ben *identities.Identity, ent string) string {
			return fmt.Sprintf(`{"name":"VPN for %s","request":%s}`, ben.Username, body("add_entitlements", "identity", ben.ID, ent, ""))
		}
		if status, _, got := h.do("POST", "/api/v1/tasks", tok["rita"], "application/json", task(carol, "VPN")); status != 403 || !strings.Contains(got, `"rule":"beneficiary"`) {
			t.Errorf("task for someone else: %d %s", status, got)
		}
		var created struct {
			ID      string `json:"id"`
			Request struct {
				Duration string `json:"duration"`
			} `json:"request"`
		}
		h.json("POST", "/api/v1/tasks", tok["rita"], task(alice, "Root"), 201, &created)
		if created.Request.Duration != "8h" {
			t.Errorf("task of a privileged grant: duration %q", created.Request.Duration)
		}
		if status, _, got := h.do("PATCH", "/api/v1/tasks/"+created.ID, tok["rita"], "application/json",
			`{"request":`+body("add_entitlements", "identity", carol.ID, "VPN", "")+`}`); status != 403 {
			t.Errorf("task changed to someone else: %d %s", status, got)
		}
		h.json("POST", "/api/v1/tasks/"+created.ID+"/trigger", h.token(access.ScopeTrigger), "", 201, nil)

		// A client that acts for a requester changes and deletes only her
		// own tasks, as the portal lets her; others are not there for it.
		var others struct{ ID string }
		h.json("POST", "/api/v1/tasks", h.token(access.ScopeTasks), task(carol, "VPN"), 201, &others)
		h.json("PATCH", "/api/v1/tasks/"+others.ID, tok["rita"], `{"name":"mine now"}`, 404, nil)
		h.json("DELETE", "/api/v1/tasks/"+others.ID, tok["rita"], "", 404, nil)
		h.json("PATCH", "/api/v1/tasks/"+created.ID, tok["rita"], `{"name":"VPN for alice, renamed"}`, 200, nil)
		h.json("DELETE", "/api/v1/tasks/"+created.ID, tok["rita"], "", 204, nil)
	})
}

func (h harness) audits(t *testing.T, action string) int64 {
	t.Helper()
	var n int64
	if err := h.DB.Gorm.Table("audit_events").Where("action = ?", action).Count(&n).Error; err != nil {
		t.Fatal(err)
	}
	return n
}
