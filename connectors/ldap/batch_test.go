package ldap_test

import (
	"context"
	"strings"
	"testing"

	ldapv3 "github.com/go-ldap/ldap/v3"

	"github.com/provisor/provisor/connectors"
	"github.com/provisor/provisor/connectors/ldap/ldaptest"
)

// describe sums up the answers of a batch, one per membership: the message
// with " *" when it changed something, or the error.
func describe(rs []connectors.Result, errs []error) string {
	var parts []string
	for i := range rs {
		switch {
		case errs[i] != nil && connectors.IsPermanent(errs[i]):
			parts = append(parts, "permanent: "+errs[i].Error())
		case errs[i] != nil:
			parts = append(parts, "transient: "+errs[i].Error())
		case rs[i].Changed:
			parts = append(parts, rs[i].Message+" *")
		default:
			parts = append(parts, rs[i].Message)
		}
	}
	return strings.Join(parts, "\n")
}

// Batches of grants and revokes answer each membership as one by one
// would: new members in one modify per group, and one by one when a group
// refuses the modify.
func TestLDAPBatches(t *testing.T) {
	t.Parallel()
	s := ldaptest.StartSlapd(t, nil)
	admin := s.Conn(t)
	staff, ops := addGroup(t, admin, "staff"), addGroup(t, admin, "ops")
	d := openSlapd(t, s, "")
	ctx := context.Background()
	for _, u := range []string{"alice", "bob", "carol", "Dave", "dup"} {
		if _, err := d.CreateAccount(ctx, connectors.Account{Username: u}); err != nil {
			t.Fatal(err)
		}
	}
	// A second entry named dup, elsewhere under the user base.
	ou := ldapv3.NewAddRequest("ou=more,"+ldaptest.PeopleDN, nil)
	ou.Attribute("objectClass", []string{"organizationalUnit"})
	dup := ldapv3.NewAddRequest("uid=dup,ou=more,"+ldaptest.PeopleDN, nil)
	dup.Attribute("objectClass", []string{"inetOrgPerson"})
	dup.Attribute("cn", []string{"dup"})
	dup.Attribute("sn", []string{"dup"})
	for _, req := range []*ldapv3.AddRequest{ou, dup} {
		if err := admin.Add(req); err != nil {
			t.Fatal(err)
		}
	}
	// A group whose only member is alice.
	solo := "cn=solo," + ldaptest.GroupsDN
	add := ldapv3.NewAddRequest(solo, nil)
	add.Attribute("objectClass", []string{"groupOfNames"})
	add.Attribute("member", []string{"uid=alice," + ldaptest.PeopleDN})
	if err := admin.Add(add); err != nil {
		t.Fatal(err)
	}
	group := func(dn, name string) connectors.Entitlement {
		return connectors.Entitlement{ExternalID: dn, Name: name}
	}
	of := func(e connectors.Entitlement, users ...string) []connectors.Membership {
		var out []connectors.Membership
		for _, u := range users {
			out = append(out, connectors.Membership{Account: connectors.Account{Username: u}, Entitlement: e})
		}
		return out
	}
	check := func(what string, rs []connectors.Result, errs []error, want ...string) {
		t.Helper()
		if got := describe(rs, errs); got != strings.Join(want, "\n") {
			t.Errorf("%s:\n got:\n%s\nwant:\n%s", what, got, strings.Join(want, "\n"))
		}
	}

	var batch []connectors.Membership
	batch = append(batch, of(group(staff, "staff"), "alice", "bob", "ghost", "*)(uid=*", "dave", "dup")...)
	batch = append(batch, of(group(ops, "ops"), "alice")...)
	batch = append(batch, of(group("cn=nope,"+ldaptest.GroupsDN, "nope"), "alice")...)
	batch = append(batch, of(group("not a dn", "bad"), "alice")...)
	rs, errs := d.GrantAll(ctx, batch)
	check("grants", rs, errs,
		"alice added to staff *", "bob added to staff *",
		"permanent: add ghost to staff: no such account: ghost",
		"permanent: add *)(uid=* to staff: no such account: *)(uid=*",
		"dave added to staff *",
		"permanent: add dup to staff: more than one account is called dup under "+ldaptest.PeopleDN,
		"alice added to ops *",
		"permanent: add alice to nope: no such group: cn=nope,"+ldaptest.GroupsDN+": LDAP Result Code 32 \"No Such Object\": ",
		`permanent: entitlement bad: "not a dn" is not a valid DN: DN ended with incomplete type, value pair`)
	if got := members(t, admin, staff); strings.Join(got, " ") != "uid=alice,"+strings.ToLower(ldaptest.PeopleDN)+" uid=bob,"+strings.ToLower(ldaptest.PeopleDN)+" uid=dave,"+strings.ToLower(ldaptest.PeopleDN) {
		t.Errorf("staff members: %v", got)
	}
	if mo := entry(t, admin, "uid=bob,"+ldaptest.PeopleDN, "memberOf").GetAttributeValues("memberOf"); len(mo) != 1 {
		t.Errorf("bob's memberOf: %v", mo)
	}

	// Members there already: the group refuses the modify, so one by one.
	rs, errs = d.GrantAll(ctx, of(group(staff, "staff"), "alice", "carol", "bob"))
	check("grants again", rs, errs, "alice was already a member of staff", "carol added to staff *", "bob was already a member of staff")

	rs, errs = d.RevokeAll(ctx, of(group(staff, "staff"), "alice", "bob"))
	check("revokes", rs, errs, "alice removed from staff *", "bob removed from staff *")
	rs, errs = d.RevokeAll(ctx, of(group(staff, "staff"), "alice", "ghost", "carol"))
	check("revokes of members gone", rs, errs, "alice was not a member of staff", "ghost was not a member of staff", "carol removed from staff *")
	rs, errs = d.RevokeAll(ctx, append(of(group(solo, "solo"), "alice"), of(group(ops, "ops"), "alice")...))
	if !strings.Contains(describe(rs, errs), "permanent: remove alice from solo: alice is the last member of solo, and its object class needs one") ||
		!strings.HasSuffix(describe(rs, errs), "alice removed from ops *") {
		t.Errorf("revoke of the last member:\n%s", describe(rs, errs))
	}
	if got := members(t, admin, staff); strings.Join(got, " ") != "uid=dave,"+strings.ToLower(ldaptest.PeopleDN) {
		t.Errorf("staff members: %v", got)
	}
}
