package ldap_test

import (
	"strings"
	"testing"

	"github.com/provisor/provisor/app/apptest"
	"github.com/provisor/provisor/connectors/configured"
	"github.com/provisor/provisor/connectors/ldap/ldaptest"
	"github.com/provisor/provisor/database/dbtest"
	"github.com/provisor/provisor/identities"
	"github.com/provisor/provisor/provlog"
	"github.com/provisor/provisor/requests"
)

// Jobs on slapd leave their provisioning log entries: a grant, the same
// grant again (no change), a grant to someone the directory does not know
// (the lookup fails), and a grant of a group the directory does not have
// (its LDAP code and the advice for it).
func TestProvisioningLogOnSlapd(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect string) {
		t.Parallel()
		s := ldaptest.StartSlapd(t, &ldaptest.SlapdOptions{LDIF: peopleLDIF([]string{"ann"}, map[string][]string{"staff": {}})})
		b := apptest.New(t, dialect, nil)
		rec, err := b.Connectors.Create(b.Ctx, configured.Input{Name: "Corp LDAP", Type: "ldap", Settings: []byte(s.Settings("")),
			Secrets: map[string]string{"bind_password": ldaptest.AdminPassword}})
		if err != nil {
			t.Fatal(err)
		}
		staff, err := b.Identities.CreateEntitlement(b.Ctx, rec.ID, identities.EntitlementInput{Name: "staff", ExternalID: "cn=staff," + ldaptest.GroupsDN})
		if err != nil {
			t.Fatal(err)
		}
		ghost, err := b.Identities.CreateEntitlement(b.Ctx, rec.ID, identities.EntitlementInput{Name: "ghost", ExternalID: "cn=ghost," + ldaptest.GroupsDN})
		if err != nil {
			t.Fatal(err)
		}
		grant := func(who *identities.Identity, ent *identities.Entitlement) provlog.Entry {
			t.Helper()
			inst := b.WaitSettled(t, b.Submit(t, requests.Request{Type: requests.AddEntitlements, BeneficiaryType: "identity",
				BeneficiaryID: who.ID, ConnectorID: rec.ID, Entitlements: []string{ent.ID}}).ID)
			got, _, err := b.Logs.Search(b.Ctx, provlog.Filter{InstanceID: inst.ID})
			if err != nil || len(got) != 1 {
				t.Fatalf("entries of %s: %v %v (%s)", who.Username, got, err, apptest.Describe(inst))
			}
			return got[0]
		}
		ann, zed := b.Identity(t, "ann"), b.Identity(t, "zed")
		for i, want := range []string{provlog.StatusSuccess, provlog.StatusNoChange} {
			e := grant(ann, staff)
			if e.Status != want || e.ConnectorType != "ldap" || e.EntitlementExternalID != "cn=staff,"+ldaptest.GroupsDN || e.ErrorClass != "" {
				t.Errorf("grant %d: %+v", i+1, e)
			}
		}
		e := grant(zed, staff)
		if e.Status != provlog.StatusFailure || e.ErrorClass != provlog.ClassPermanent || !strings.Contains(e.ErrorMessage, "zed") {
			t.Errorf("grant to zed: %+v", e)
		}
		e = grant(ann, ghost)
		if e.Status != provlog.StatusFailure || e.ErrorCode != "LDAP 32" || !strings.Contains(e.Recommendation, "not in the directory") {
			t.Errorf("grant of ghost: %+v", e)
		}
		// The search finds them by the username in another case.
		got, _, err := b.Logs.Search(b.Ctx, provlog.Filter{Query: "ANN", ConnectorID: rec.ID})
		if err != nil || len(got) != 3 {
			t.Errorf("search ANN: %d entries, %v", len(got), err)
		}
	})
}
