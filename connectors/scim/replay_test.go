package scim_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/provisor/provisor/connectors"
	"github.com/provisor/provisor/connectors/scim"
	"github.com/provisor/provisor/connectors/scim/scimtest"
)

// send makes a request to the test server the way another SCIM client
// would.
func send(t *testing.T, srv *scimtest.Server, method, path, body string) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, bytes.NewReader([]byte(body)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+scimtest.Token)
	req.Header.Set("Content-Type", "application/scim+json")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode >= 300 {
		t.Fatalf("%s %s: %d", method, path, resp.StatusCode)
	}
}

// Targets built for Entra ID's provisioning client are changed by it with
// PATCH requests of its own shape: capitalised ops ("Replace", "Add",
// "Remove"), "$ref": null in members, and booleans as the strings "True"
// and "False". What such a target then answers is what the connector
// reads: these replay Entra's requests and check the connector's reading.
func TestEntraRequestShapesReadBack(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := scimtest.New(t, nil)
	uid := srv.AddUser("Test_User_ab6490ee", "Test User", true)
	other := srv.AddUser("other", "Other", true)
	g := srv.AddGroup("displayName")
	// Entra's user update (its documented request, with active as the
	// string its older client sends).
	send(t, srv, http.MethodPatch, "/Users/"+uid, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[
		{"op":"Replace","path":"emails[type eq \"work\"].value","value":"updatedEmail@microsoft.com"},
		{"op":"Replace","path":"name.familyName","value":"updatedFamilyName"},
		{"op":"Replace","path":"active","value":"False"}]}`)
	// Entra's group update: capitalised Add, members with "$ref": null.
	send(t, srv, http.MethodPatch, "/Groups/"+g, fmt.Sprintf(`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[
		{"op":"Replace","path":"displayName","value":"Renamed"},
		{"op":"Add","path":"members","value":[{"$ref":null,"value":%q},{"$ref":null,"value":%q}]},
		{"op":"Remove","path":"members","value":[{"$ref":null,"value":%q}]}]}`, uid, other, other))

	d := open(t, srv, "")
	acct := connectors.Account{Username: "Test_User_ab6490ee", ExternalID: uid}
	if r, err := d.DisableAccount(ctx, acct); err != nil || r.Changed {
		t.Fatalf("disable after Entra's \"False\": %+v %v", r, err)
	}
	if r, err := d.Grant(ctx, acct, connectors.Entitlement{ExternalID: g}); err != nil || r.Changed {
		t.Fatalf("grant after Entra's Add: %+v %v", r, err)
	}
	if r, err := d.Revoke(ctx, connectors.Account{ExternalID: other}, connectors.Entitlement{ExternalID: g}); err != nil || r.Changed {
		t.Fatalf("revoke after Entra's Remove: %+v %v", r, err)
	}
	s := newSink()
	if _, err := d.Import(ctx, connectors.ImportFull, "", s); err != nil {
		t.Fatal(err)
	}
	a := s.accounts["Test_User_ab6490ee"]
	if !a.Locked || a.Surname != "updatedFamilyName" || a.Email != "updatedEmail@microsoft.com" {
		t.Fatalf("imported %+v", a)
	}
	if s.ents[g].Name != "Renamed" || fmt.Sprint(s.members[g]) != "["+uid+"]" {
		t.Fatalf("group %+v members %v", s.ents[g], s.members[g])
	}
}

// The connector's parser reads the answers of targets that echo Entra's
// shapes: string booleans in any case, a lower-case "resources".
func TestParserReadsEntraShapedAnswers(t *testing.T) {
	t.Parallel()
	for raw, want := range map[string]scim.Bool{`true`: {Set: true, Value: true}, `"False"`: {Set: true, Value: false},
		`"True"`: {Set: true, Value: true}, `"false"`: {Set: true, Value: false}, `null`: {}} {
		var b scim.Bool
		if err := json.Unmarshal([]byte(raw), &b); err != nil || b != want {
			t.Errorf("%s: %+v %v", raw, b, err)
		}
	}
	var b scim.Bool
	if err := json.Unmarshal([]byte(`"maybe"`), &b); err == nil {
		t.Errorf(`"maybe" read as %+v`, b)
	}
	var page scim.ListResponse[scim.User]
	body := `{"schemas":["urn:ietf:params:scim:api:messages:2.0:ListResponse"],"totalResults":1,"startIndex":1,"itemsPerPage":20,
		"resources":[{"id":"5d48","userName":"u","active":"False","emails":[{"value":"x@y","type":"work","primary":"True"}],
		"name":{"givenName":"G","familyName":"F"}}]}`
	if err := json.Unmarshal([]byte(body), &page); err != nil || len(page.Resources) != 1 {
		t.Fatalf("%v %+v", err, page)
	}
	u := page.Resources[0]
	if !u.Active.Set || u.Active.Value || !u.Emails[0].Primary.Value || u.Name.FamilyName != "F" {
		t.Fatalf("%+v", u)
	}
}

// A delta import filters on meta.lastModified and lists every id to tell
// deletions; a target without filters, or delta_import off, gets a full
// import, and the sink is told.
func TestDeltaImport(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, c := range []struct {
		name     string
		opts     *scimtest.Options
		settings string
		note     string
	}{
		{"filtered", nil, "", ""},
		{"no filter support", &scimtest.Options{NoFilter: true}, "", "does not support filters"},
		{"delta off", nil, `,"delta_import":"off"`, "delta imports are off"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			srv := scimtest.New(t, c.opts)
			a, b, x := srv.AddUser("a", "A", true), srv.AddUser("b", "B", true), srv.AddUser("x", "X", true)
			untouched := srv.AddGroup("H", b)
			g := srv.AddGroup("G", a, x)
			d := open(t, srv, c.settings)
			full := newSink()
			ck, err := d.Import(ctx, connectors.ImportFull, "", full)
			if err != nil || len(full.accounts) != 3 {
				t.Fatalf("full: %v %d", err, len(full.accounts))
			}
			srv.DeleteUser(x)
			srv.SetMembers(g, a, b)
			delta := newSink()
			if _, err := d.Import(ctx, connectors.ImportDelta, ck, delta); err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(delta.members[g]) != fmt.Sprint([]string{a, b}) {
				t.Fatalf("members of the changed group: %v", delta.members[g])
			}
			present := strings.Join(delta.present, ",")
			if strings.Contains(present, x) || !strings.Contains(present, a) || !strings.Contains(present, untouched) {
				t.Fatalf("present %v", delta.present)
			}
			if c.note == "" {
				if _, read := delta.members[untouched]; read || len(delta.accounts) != 0 {
					t.Fatalf("the filtered delta read unchanged things: accounts %v, groups %v", delta.accounts, delta.members)
				}
				return
			}
			if len(delta.notes) != 1 || !strings.Contains(delta.notes[0], c.note) || len(delta.accounts) != 2 {
				t.Fatalf("notes %v, %d accounts", delta.notes, len(delta.accounts))
			}
		})
	}
}
