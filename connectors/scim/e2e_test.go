package scim_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/provisor/provisor/app/apptest"
	"github.com/provisor/provisor/connectors"
	"github.com/provisor/provisor/connectors/configured"
	"github.com/provisor/provisor/connectors/scim"
	"github.com/provisor/provisor/connectors/scim/scimtest"
	"github.com/provisor/provisor/database/dbtest"
	"github.com/provisor/provisor/identities"
	"github.com/provisor/provisor/imports"
	"github.com/provisor/provisor/provlog"
	"github.com/provisor/provisor/requests"
)

// Through the whole of Provisor: an import from the SCIM target, a
// workgroup request granting a SCIM group to several identities (one of
// them a member already), a create with the identity's id as externalId,
// and a delta import that sees a deleted user and a changed group.
func TestThroughProvisor(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect string) {
		t.Parallel()
		srv := scimtest.New(t, &scimtest.Options{MaxResults: 3})
		var uids []string
		for i := range 4 {
			uids = append(uids, srv.AddUser(fmt.Sprintf("p%d", i), fmt.Sprintf("Person %d", i), true))
		}
		g := srv.AddGroup("Sales", uids[0])
		b := apptest.New(t, dialect, nil)
		rec, err := b.Connectors.Create(b.Ctx, configured.Input{Name: "Acme SCIM", Type: scim.TypeName,
			Settings: []byte(fmt.Sprintf(`{"base_url":%q,"page_size":3}`, srv.URL)), Secrets: scimtest.Secrets()})
		if err != nil {
			t.Fatal(err)
		}
		imp, err := b.Importer.Run(b.Ctx, rec.ID, connectors.ImportFull, "")
		if err != nil || imp.Status != imports.ImportApplied || imp.Counts.AccountsRead != 4 || imp.Counts.GroupsRead != 1 {
			t.Fatalf("full import: %v %+v", err, imp)
		}
		ids, _, err := b.Identities.ListIdentities(b.Ctx, identities.ListOpts{Limit: 10})
		if err != nil || len(ids) != 4 {
			t.Fatalf("identities %v %v", ids, err)
		}
		ents, _, _ := b.Identities.ListEntitlements(b.Ctx, rec.ID, identities.ListOpts{Query: "Sales"})
		if len(ents) != 1 || ents[0].ExternalID != g {
			t.Fatalf("entitlements %+v", ents)
		}
		var people []*identities.Identity
		for i := range ids {
			people = append(people, &ids[i])
		}
		wg := b.Workgroup(t, "Everyone", people...)
		inst := b.Submit(t, requests.Request{Type: requests.AddEntitlements, BeneficiaryType: requests.BeneficiaryWorkgroup, BeneficiaryID: wg.ID,
			ConnectorID: rec.ID, Entitlements: []string{ents[0].ID}})
		inst = b.WaitSettled(t, inst.ID)
		if inst.Status != requests.InstanceCompleted || len(inst.Jobs) != 4 {
			t.Fatalf("grant run %s: %s", inst.Status, apptest.Describe(inst))
		}
		unchanged := 0
		for _, j := range inst.Jobs {
			if j.Kind != "SCIM AddToGroup" || j.Status != requests.JobCompleted {
				t.Fatalf("job %+v", j)
			}
			if j.Unchanged {
				unchanged++
			}
		}
		if unchanged != 1 || len(srv.Members(g)) != 4 {
			t.Fatalf("%d unchanged, members %v", unchanged, srv.Members(g))
		}
		logs, _, err := b.Logs.Search(b.Ctx, provlog.Filter{ConnectorID: rec.ID, InstanceID: inst.ID, Limit: 50})
		if err != nil || len(logs) != 4 {
			t.Fatalf("provisioning log: %v %d entries", err, len(logs))
		}
		for _, e := range logs {
			if e.Kind != "SCIM AddToGroup" || e.ConnectorType != scim.TypeName || e.EntitlementExternalID != g || e.TargetExternalID == "" {
				t.Fatalf("log entry %+v", e)
			}
		}

		// A create: the identity's id goes as externalId.
		newbie := b.Identity(t, "newbie")
		inst = b.WaitSettled(t, b.Submit(t, requests.Request{Type: requests.CreateAccount, BeneficiaryType: requests.BeneficiaryIdentity,
			BeneficiaryID: newbie.ID, ConnectorID: rec.ID}).ID)
		if inst.Status != requests.InstanceCompleted || inst.Jobs[0].Kind != "SCIM Create" {
			t.Fatalf("create run: %s", apptest.Describe(inst))
		}
		nid := srv.UserID("newbie")
		if nid == "" || srv.User(nid)["externalId"] != newbie.ID {
			t.Fatalf("created user %v", srv.User(nid))
		}

		// On the target: p3 deleted, Sales down to p0 and p1. The default
		// threshold (10%) holds a delta that deletes one of five accounts.
		srv.DeleteUser(uids[3])
		srv.SetMembers(g, uids[0], uids[1])
		srv.Requests()
		imp, err = b.Importer.Run(b.Ctx, rec.ID, connectors.ImportDelta, "")
		filtered := false
		for _, r := range srv.Requests() {
			filtered = filtered || strings.Contains(r.Query, "filter=meta.lastModified+gt+")
		}
		if !filtered {
			t.Errorf("the delta import did not filter on meta.lastModified")
		}
		if err != nil || imp.Status != imports.ImportAwaitingApproval || imp.Counts.AccountsDeleted != 1 {
			t.Fatalf("delta import: %v %+v", err, imp)
		}
		imp, err = b.Importer.Approve(b.Ctx, imp.ID, "tester")
		if err != nil || imp.Status != imports.ImportApplied || imp.Counts.MembershipsRemoved < 1 {
			t.Fatalf("approved delta: %v %+v", err, imp)
		}
		deleted := 0
		for _, id := range ids {
			accts, err := b.Identities.Accounts(b.Ctx, id.ID)
			if err != nil {
				t.Fatal(err)
			}
			for _, a := range accts {
				if a.ConnectorID == rec.ID && a.Status == "deleted" {
					if a.ExternalID != uids[3] {
						t.Errorf("deleted %s, want %s", a.ExternalID, uids[3])
					}
					deleted++
				}
			}
		}
		if deleted != 1 {
			t.Fatalf("%d deleted accounts", deleted)
		}
	})
}
