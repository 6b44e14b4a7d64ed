package ldap

import (
	"context"
	"fmt"
	"strings"

	ldapv3 "github.com/go-ldap/ldap/v3"

	"github.com/provisor/provisor/connectors"
)

// lookupBatch bounds how many usernames go in one search filter.
const lookupBatch = 100

// GrantAll adds accounts to groups: the accounts are looked up together,
// and each group gets its new members in one modify. When a group refuses
// the modify (a member there already, a member it does not take), its
// members are added one by one, so each gets the answer it would have got
// alone.
func (d *Directory) GrantAll(ctx context.Context, ms []connectors.Membership) ([]connectors.Result, []error) {
	return d.changeMembers(ctx, ms, true)
}

// RevokeAll removes accounts from groups the same way: one modify per
// group, one by one when the group refuses it (a member that is not there,
// the last member of a group that needs one).
func (d *Directory) RevokeAll(ctx context.Context, ms []connectors.Membership) ([]connectors.Result, []error) {
	return d.changeMembers(ctx, ms, false)
}

// memberChange is one membership of a batch, with the account's entry.
type memberChange struct {
	i  int // index into the batch
	m  connectors.Membership
	dn string
}

func (d *Directory) changeMembers(ctx context.Context, ms []connectors.Membership, grant bool) ([]connectors.Result, []error) {
	results, errs := make([]connectors.Result, len(ms)), make([]error, len(ms))
	what := func(m connectors.Membership) string {
		if grant {
			return "add " + m.Account.Username + " to " + groupName(m.Entitlement)
		}
		return "remove " + m.Account.Username + " from " + groupName(m.Entitlement)
	}
	var todo []int
	for i, m := range ms {
		if err := checkGroupDN(m.Entitlement); err != nil {
			errs[i] = err
			continue
		}
		todo = append(todo, i)
	}
	if len(todo) == 0 {
		return results, errs
	}
	// One attempt writes its answers here; an attempt on a fresh connection
	// after a cut one starts over (the changes are idempotent).
	var rs []connectors.Result
	var es []error
	// The steps of each membership: the lookup all of them shared, and the
	// modify of its group.
	var steps [][]connectors.Step
	err := d.do(ctx, func(c *ldapv3.Conn) error {
		rs, es, steps = make([]connectors.Result, len(ms)), make([]error, len(ms)), make([][]connectors.Step, len(ms))
		accounts := make([]connectors.Account, len(todo))
		for k, i := range todo {
			accounts[k] = ms[i].Account
		}
		t := connectors.NewTimer()
		dns, lookErrs, err := d.findUsers(c, accounts)
		t.Step("lookup", fmt.Sprintf("find %d account(s) in one search", len(accounts)), err)
		lookup := t.Steps[0]
		for k, i := range todo {
			st := lookup
			switch {
			case err != nil:
			case lookErrs[k] != nil:
				st.Failed, st.Detail = true, st.Detail+": "+lookErrs[k].Error()
			case dns[k] == "":
				st.Detail += ": none for " + ms[i].Account.Username
			default:
				st.Detail += ": " + dns[k]
			}
			steps[i] = []connectors.Step{st}
		}
		if err != nil {
			return err
		}
		var groups []string
		byGroup := map[string][]memberChange{}
		for k, i := range todo {
			m := ms[i]
			switch {
			case lookErrs[k] != nil:
				es[i] = lookErrs[k]
			case dns[k] == "" && grant:
				es[i] = noAccount(m.Account)
			case dns[k] == "":
				rs[i] = notMember(m.Account, m.Entitlement)
			default:
				g := normDN(m.Entitlement.ExternalID)
				if _, ok := byGroup[g]; !ok {
					groups = append(groups, g)
				}
				byGroup[g] = append(byGroup[g], memberChange{i: i, m: m, dn: dns[k]})
			}
		}
		for _, g := range groups {
			t := connectors.NewTimer()
			err := d.changeGroup(c, byGroup[g], grant, rs, es)
			verb := map[bool]string{true: "add %d member(s) to %s", false: "remove %d member(s) from %s"}[grant]
			t.Step("modify", fmt.Sprintf(verb, len(byGroup[g]), byGroup[g][0].m.Entitlement.ExternalID), err)
			for _, ch := range byGroup[g] {
				st := t.Steps[0]
				st.Failed = st.Failed || es[ch.i] != nil
				steps[ch.i] = append(steps[ch.i], st)
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
	for _, i := range todo {
		switch {
		case err != nil:
			errs[i] = classify(what(ms[i]), err)
		case es[i] != nil:
			errs[i] = classify(what(ms[i]), es[i])
		default:
			results[i] = rs[i]
		}
		if steps != nil {
			results[i].Steps = steps[i]
		}
	}
	return results, errs
}

// changeGroup adds (or removes) the members of one group in one modify,
// or one by one when the group refuses it. It returns an error only when
// the connection failed.
func (d *Directory) changeGroup(c *ldapv3.Conn, changes []memberChange, grant bool, rs []connectors.Result, es []error) error {
	e := changes[0].m.Entitlement
	var values []string
	seen := map[string]bool{}
	for _, ch := range changes {
		if k := normDN(ch.dn); !seen[k] {
			seen[k] = true
			values = append(values, ch.dn)
		}
	}
	req := ldapv3.NewModifyRequest(e.ExternalID, nil)
	if grant {
		req.Add(d.cfg.GroupMemberAttribute, values)
	} else {
		req.Delete(d.cfg.GroupMemberAttribute, values)
	}
	err := c.Modify(req)
	switch {
	case err == nil:
		for _, ch := range changes {
			rs[ch.i] = d.changed(ch.m.Account, e, ch.dn, grant)
		}
		return nil
	case isConnectionError(err):
		return err
	case resultCode(err) == ldapv3.LDAPResultNoSuchObject:
		for _, ch := range changes {
			es[ch.i] = noGroup(e, err)
		}
		return nil
	}
	// Say which member the group refused, and change the others.
	for _, ch := range changes {
		var r connectors.Result
		var err error
		if grant {
			r, err = d.addMember(c, ch.m.Account, e, ch.dn)
		} else {
			r, err = d.removeMember(c, ch.m.Account, e, ch.dn)
		}
		if isConnectionError(err) {
			return err
		}
		rs[ch.i], es[ch.i] = r, err
	}
	return nil
}

// findUsers looks accounts up by username, many in one search (escaped
// into the filter), or one by one by DN when it is known. dns[i] is the
// entry of accounts[i], or "" when there is none; errs[i] says why an
// account cannot be used (several entries of one name). The error is the
// connection's.
func (d *Directory) findUsers(c *ldapv3.Conn, accounts []connectors.Account) (dns []string, errs []error, err error) {
	dns, errs = make([]string, len(accounts)), make([]error, len(accounts))
	byName := map[string][]int{}
	var names []string
	for i, a := range accounts {
		if a.ExternalID != "" || strings.TrimSpace(a.Username) == "" {
			u, err := d.findUser(c, a)
			if isConnectionError(err) {
				return nil, nil, err
			}
			if u != nil {
				dns[i] = u.DN
			}
			errs[i] = err
			continue
		}
		k := strings.ToLower(a.Username)
		if _, ok := byName[k]; !ok {
			names = append(names, a.Username)
		}
		byName[k] = append(byName[k], i)
	}
	attr := d.cfg.Attributes.Username
	for start := 0; start < len(names); start += lookupBatch {
		chunk := names[start:min(start+lookupBatch, len(names))]
		res, err := c.Search(ldapv3.NewSearchRequest(d.cfg.UserBaseDN, ldapv3.ScopeWholeSubtree, ldapv3.NeverDerefAliases, 0, 0, false,
			d.userFilter(chunk...), []string{attr}, nil))
		if err != nil {
			if isConnectionError(err) {
				return nil, nil, err
			}
			for _, n := range chunk {
				for _, i := range byName[strings.ToLower(n)] {
					errs[i] = err
				}
			}
			continue
		}
		found := map[string][]string{}
		for _, e := range res.Entries {
			for _, v := range e.GetEqualFoldAttributeValues(attr) {
				found[strings.ToLower(v)] = append(found[strings.ToLower(v)], e.DN)
			}
		}
		for _, n := range chunk {
			k := strings.ToLower(n)
			for _, i := range byName[k] {
				switch len(found[k]) {
				case 0:
				case 1:
					dns[i] = found[k][0]
				default:
					errs[i] = d.ambiguous(n)
				}
			}
		}
	}
	return dns, errs, nil
}
