package ldap_test

import (
	"fmt"
	"slices"
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

// Jobs on slapd leave their provisioning log entries, each with its steps
// and the properties it changed: a grant, the same grant again (no
// change), a grant to someone the directory does not know (the lookup
// fails), a grant of a group the directory does not have (its LDAP code and
// the advice for it), a lock, the lock again and an unlock
// (pwdAccountLockedTime old and new), and a create the directory refuses
// with the grant that needed it skipped.
func TestProvisioningLogOnSlapd(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect string) {
		t.Parallel()
		s := ldaptest.StartSlapd(t, &ldaptest.SlapdOptions{LDIF: peopleLDIF([]string{"ann"}, map[string][]string{"staff": {}})})
		b := apptest.New(t, dialect, nil)
		// New accounts go under an OU the directory does not have.
		rec, err := b.Connectors.Create(b.Ctx, configured.Input{Name: "Corp LDAP", Type: "ldap",
			Settings: []byte(s.Settings(`"user_dn_pattern":"uid={username},ou=gone,` + ldaptest.PeopleDN + `"`)),
			Secrets:  map[string]string{"bind_password": ldaptest.AdminPassword}})
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
		run := func(r requests.Request, want int) []provlog.Entry {
			t.Helper()
			r.BeneficiaryType, r.ConnectorID = "identity", rec.ID
			inst := b.WaitSettled(t, b.Submit(t, r).ID)
			got, _, err := b.Logs.Search(b.Ctx, provlog.Filter{InstanceID: inst.ID})
			if err != nil || len(got) != want {
				t.Fatalf("entries of %s: %v %v (%s)", r.Type, got, err, apptest.Describe(inst))
			}
			// Newest first: in the order of the jobs.
			slices.Reverse(got)
			return got
		}
		grant := func(who *identities.Identity, ent *identities.Entitlement) provlog.Entry {
			t.Helper()
			return run(requests.Request{Type: requests.AddEntitlements, BeneficiaryID: who.ID, Entitlements: []string{ent.ID}}, 1)[0]
		}
		annDN := "uid=ann," + ldaptest.PeopleDN
		ann, zed := b.Identity(t, "ann"), b.Identity(t, "zed")

		e := grant(ann, staff)
		if e.Status != provlog.StatusSuccess || e.ConnectorType != "ldap" || e.EntitlementExternalID != "cn=staff,"+ldaptest.GroupsDN || e.ErrorClass != "" {
			t.Errorf("grant: %+v", e)
		}
		checkSteps(t, "grant", e, "lookup modify", "")
		checkChanges(t, "grant", e, "member of cn=staff,"+ldaptest.GroupsDN+": '' -> '"+annDN+"'")

		e = grant(ann, staff)
		if e.Status != provlog.StatusNoChange {
			t.Errorf("grant again: %+v", e)
		}
		checkSteps(t, "grant again", e, "lookup modify", "")
		checkChanges(t, "grant again", e, "")

		e = grant(zed, staff)
		if e.Status != provlog.StatusFailure || e.ErrorClass != provlog.ClassPermanent || !strings.Contains(e.ErrorMessage, "zed") {
			t.Errorf("grant to zed: %+v", e)
		}
		checkSteps(t, "grant to zed", e, "lookup", "lookup")

		e = grant(ann, ghost)
		if e.Status != provlog.StatusFailure || e.ErrorCode != "LDAP 32" || !strings.Contains(e.Recommendation, "not in the directory") {
			t.Errorf("grant of ghost: %+v", e)
		}
		checkSteps(t, "grant of ghost", e, "lookup modify", "modify")

		lock := func(name string, typ requests.Type, status, changes string) {
			t.Helper()
			e := run(requests.Request{Type: typ, BeneficiaryID: ann.ID}, 1)[0]
			if e.Status != status {
				t.Errorf("%s: %+v", name, e)
			}
			if status == provlog.StatusNoChange {
				checkSteps(t, name, e, "lookup", "")
			} else {
				checkSteps(t, name, e, "lookup modify", "")
			}
			checkChanges(t, name, e, changes)
		}
		lock("lock", requests.LockAccount, provlog.StatusSuccess, "pwdAccountLockedTime: '' -> '000001010000Z'")
		lock("lock again", requests.LockAccount, provlog.StatusNoChange, "")
		lock("unlock", requests.UnlockAccount, provlog.StatusSuccess, "pwdAccountLockedTime: '000001010000Z' -> ''")

		kim := b.Identity(t, "kim")
		es := run(requests.Request{Type: requests.CreateAccount, BeneficiaryID: kim.ID, Entitlements: []string{staff.ID}}, 2)
		if es[0].Status != provlog.StatusFailure || es[0].ErrorCode != "LDAP 32" || es[1].Status != provlog.StatusSkipped || es[1].Attempt != 0 {
			t.Errorf("create kim: %+v\n%+v", es[0], es[1])
		}
		checkSteps(t, "create kim", es[0], "lookup modify", "modify")
		checkSteps(t, "grant to kim", es[1], "", "")

		// The search finds them by the username in another case.
		got, _, err := b.Logs.Search(b.Ctx, provlog.Filter{Query: "ANN", ConnectorID: rec.ID})
		if err != nil || len(got) != 6 {
			t.Errorf("search ANN: %d entries, %v", len(got), err)
		}
	})
}

// checkSteps compares the names of an entry's steps, and of those that
// failed, with want and failed (space-separated).
func checkSteps(t *testing.T, what string, e provlog.Entry, want, failed string) {
	t.Helper()
	var names, bad []string
	for _, s := range e.Steps {
		names = append(names, s.Name)
		if s.Failed {
			bad = append(bad, s.Name)
		}
		if s.Duration <= 0 || s.Detail == "" {
			t.Errorf("%s: step %+v has no duration or detail", what, s)
		}
	}
	if strings.Join(names, " ") != want || strings.Join(bad, " ") != failed {
		t.Errorf("%s: steps %v (failed %v), want %q (failed %q)", what, names, bad, want, failed)
	}
}

// checkChanges compares an entry's modified properties with want ("name:
// 'old' -> 'new'", one a line).
func checkChanges(t *testing.T, what string, e provlog.Entry, want string) {
	t.Helper()
	var got []string
	for _, c := range e.Changes {
		got = append(got, fmt.Sprintf("%s: '%s' -> '%s'", c.Name, c.Old, c.New))
	}
	if strings.Join(got, "\n") != want {
		t.Errorf("%s: modified properties\n%s\nwant\n%s", what, strings.Join(got, "\n"), want)
	}
}
