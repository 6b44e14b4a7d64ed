package ldap

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	ldapv3 "github.com/go-ldap/ldap/v3"

	"github.com/provisor/provisor/connectors"
)

// Import reads users, groups and memberships with paged searches. A full
// import reads everything. A delta import reads what changed since the
// cookie's watermark (modifyTimestamp on LDAP, uSNChanged of the same
// domain controller on AD); memberships come with the groups, whose
// watermark moves when a member is added or removed. Deleted entries leave
// no trace a delta can read without a change log, so a delta import also
// lists every user and group DN in scope (names only) through
// connectors.DirectorySink.Present, and the importer deletes what is no
// longer listed. A delta without a usable cookie reads everything.
//
// Every DN handed out is in the form of normDN, so that member lists and
// account DNs compare as strings.
func (d *Directory) Import(ctx context.Context, mode connectors.ImportMode, cookie string, sink connectors.ImportSink) (string, error) {
	ds, _ := sink.(connectors.DirectorySink)
	next := cookie
	err := d.do(ctx, func(c *ldapv3.Conn) error {
		var err error
		next, err = d.importOn(ctx, c, mode, cookie, sink, ds)
		return err
	})
	if err != nil {
		return cookie, classify("import from "+d.name, err)
	}
	return next, nil
}

func (d *Directory) importOn(ctx context.Context, c *ldapv3.Conn, mode connectors.ImportMode, cookie string, sink connectors.ImportSink, ds connectors.DirectorySink) (string, error) {
	next, since, err := d.watermarks(c, cookie)
	if err != nil {
		return "", err
	}
	r := &importRun{d: d, ctx: ctx, c: c, sink: sink, ds: ds, since: since,
		delta: mode == connectors.ImportDelta && since != "", groupsOf: map[string][]string{}}
	// Groups first: accounts of a full import carry their groups.
	if err := r.groups(); err != nil {
		return "", err
	}
	if err := r.users(); err != nil {
		return "", err
	}
	if mode == connectors.ImportDelta && ds != nil {
		if err := r.present(); err != nil {
			return "", err
		}
	}
	return next, nil
}

// watermarks gives the cookie of the next import and where a delta import
// after cookie starts ("" when cookie gives none this directory can use).
// The watermark of the next import is taken before reading, so that what
// changes while this one reads is read again next time.
func (d *Directory) watermarks(c *ldapv3.Conn, cookie string) (next, since string, err error) {
	start := time.Now().UTC()
	if d.flavor.usnWatermark {
		dc, usn, err := d.domainControllerUSN(c)
		if err != nil {
			return "", "", err
		}
		next = "usn:" + strconv.FormatInt(usn, 10) + ":" + dc
		if prevUSN, prevDC, ok := parseUSNCookie(cookie); ok && prevDC == dc {
			since = strconv.FormatInt(prevUSN+1, 10)
		}
		return next, since, nil
	}
	next = "ts:" + start.Add(-d.cfg.deltaOverlap).Format(generalizedTime)
	if ts, ok := strings.CutPrefix(cookie, "ts:"); ok {
		if _, err := time.Parse(generalizedTime, ts); err == nil {
			since = ts
		}
	}
	return next, since, nil
}

// importRun is one import's reading of the directory on one connection.
type importRun struct {
	d     *Directory
	ctx   context.Context
	c     *ldapv3.Conn
	sink  connectors.ImportSink
	ds    connectors.DirectorySink
	since string
	// delta reads only what changed since the watermark.
	delta bool
	// groupsOf holds the groups of each account DN (full imports only).
	groupsOf map[string][]string
}

// filter is base, limited to what changed since the watermark on a delta.
func (r *importRun) filter(base string) string {
	if !r.delta {
		return base
	}
	return "(&" + base + "(" + r.d.flavor.watermark + ">=" + ldapv3.EscapeFilter(r.since) + "))"
}

// groups reads the groups and their members.
func (r *importRun) groups() error {
	d, ctx, c := r.d, r.ctx, r.c
	groupReq := ldapv3.NewSearchRequest(d.cfg.GroupBaseDN, ldapv3.ScopeWholeSubtree, ldapv3.NeverDerefAliases, 0, 0, false,
		r.filter(d.cfg.GroupFilter), []string{"cn", "member", "uniqueMember"}, nil)
	err := d.pagedSearch(ctx, c, groupReq, func(e *ldapv3.Entry) error {
		dn := normDN(e.DN)
		name := e.GetEqualFoldAttributeValue("cn")
		if name == "" {
			name = e.DN
		}
		if err := r.sink.Entitlement(ctx, connectors.Entitlement{ExternalID: dn, Name: name, Kind: "group"}); err != nil {
			return err
		}
		raw, err := d.members(c, e)
		if err != nil {
			return err
		}
		members := make([]string, len(raw))
		for i, m := range raw {
			members[i] = normDN(m)
			if !r.delta {
				r.groupsOf[members[i]] = append(r.groupsOf[members[i]], dn)
			}
		}
		if r.ds != nil {
			return r.ds.Members(ctx, dn, members)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("read groups under %s: %w", d.cfg.GroupBaseDN, err)
	}
	return nil
}

// users reads the accounts.
func (r *importRun) users() error {
	d, ctx, c := r.d, r.ctx, r.c
	a := d.cfg.Attributes
	attrs := append([]string{a.Username, a.DisplayName, a.Email, a.Correlation}, d.userAttrs()...)
	if d.ReadsManagers() {
		attrs = append(attrs, a.Manager)
	}
	userReq := ldapv3.NewSearchRequest(d.cfg.UserBaseDN, ldapv3.ScopeWholeSubtree, ldapv3.NeverDerefAliases, 0, 0, false,
		r.filter(d.cfg.UserFilter), attrs, nil)
	err := d.pagedSearch(ctx, c, userReq, func(e *ldapv3.Entry) error {
		username := e.GetEqualFoldAttributeValue(a.Username)
		if username == "" {
			return nil // not an account the connector can address
		}
		dn := normDN(e.DN)
		acct := connectors.ImportedAccount{
			Account: connectors.Account{Username: username, ExternalID: dn,
				DisplayName: e.GetEqualFoldAttributeValue(a.DisplayName), Email: e.GetEqualFoldAttributeValue(a.Email)},
			Correlation: e.GetEqualFoldAttributeValue(a.Correlation),
		}
		if d.ReadsManagers() {
			if m := e.GetEqualFoldAttributeValue(a.Manager); m != "" {
				acct.Manager = normDN(m)
			}
		}
		acct.Locked = d.flavor.locked(e)
		if !r.delta {
			acct.Entitlements = r.groupsOf[dn]
			if acct.Entitlements == nil {
				acct.Entitlements = []string{}
			}
		}
		return r.sink.Account(ctx, acct)
	})
	if err != nil {
		return fmt.Errorf("read users under %s: %w", d.cfg.UserBaseDN, err)
	}
	return nil
}

// present tells the sink of a delta import every account and group that
// is still there, so that it finds those deleted.
func (r *importRun) present() error {
	d := r.d
	var present []string
	for _, q := range []struct{ base, filter string }{{d.cfg.UserBaseDN, d.cfg.UserFilter}, {d.cfg.GroupBaseDN, d.cfg.GroupFilter}} {
		req := ldapv3.NewSearchRequest(q.base, ldapv3.ScopeWholeSubtree, ldapv3.NeverDerefAliases, 0, 0, false,
			q.filter, []string{"1.1"}, nil)
		if err := d.pagedSearch(r.ctx, r.c, req, func(e *ldapv3.Entry) error {
			present = append(present, normDN(e.DN))
			return nil
		}); err != nil {
			return fmt.Errorf("list entries under %s: %w", q.base, err)
		}
	}
	return r.ds.Present(r.ctx, present)
}

const generalizedTime = "20060102150405Z"

// ReadsManagers reports whether imports read the manager attribute
// (connectors.ManagerReader). The manager's DN is handed out in the form of
// normDN, like the account DNs it names.
func (d *Directory) ReadsManagers() bool { return d.cfg.Attributes.Manager != NoManager }

func parseUSNCookie(cookie string) (usn int64, dc string, ok bool) {
	rest, ok := strings.CutPrefix(cookie, "usn:")
	if !ok {
		return 0, "", false
	}
	num, dc, ok := strings.Cut(rest, ":")
	if !ok {
		return 0, "", false
	}
	usn, err := strconv.ParseInt(num, 10, 64)
	return usn, dc, err == nil && dc != ""
}

// domainControllerUSN reads which domain controller answers and its
// highest committed USN: update sequence numbers count per controller, so
// a watermark is only good on the controller that gave it.
func (d *Directory) domainControllerUSN(c *ldapv3.Conn) (string, int64, error) {
	res, err := c.Search(ldapv3.NewSearchRequest("", ldapv3.ScopeBaseObject, ldapv3.NeverDerefAliases, 1, 0, false,
		"(objectClass=*)", []string{"highestCommittedUSN", "dsServiceName"}, nil))
	if err != nil {
		return "", 0, fmt.Errorf("read the root DSE: %w", err)
	}
	if len(res.Entries) != 1 {
		return "", 0, errors.New("read the root DSE: no entry")
	}
	e := res.Entries[0]
	usn, err := strconv.ParseInt(e.GetEqualFoldAttributeValue("highestCommittedUSN"), 10, 64)
	if err != nil {
		return "", 0, permanent(errors.New("the root DSE has no highestCommittedUSN: is this Active Directory?"))
	}
	return e.GetEqualFoldAttributeValue("dsServiceName"), usn, nil
}

// pagedSearch runs a search page by page (simple paged results control)
// and hands each entry to fn as its page arrives.
func (d *Directory) pagedSearch(ctx context.Context, c *ldapv3.Conn, req *ldapv3.SearchRequest, fn func(*ldapv3.Entry) error) error {
	paging := ldapv3.NewControlPaging(uint32(d.cfg.PageSize))
	req.Controls = append(req.Controls, paging)
	seen := 0
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		res, err := c.Search(req)
		if resultCode(err) == ldapv3.LDAPResultSizeLimitExceeded {
			if res != nil {
				seen += len(res.Entries)
			}
			// A search cut short is never taken for the whole directory.
			return permanent(fmt.Errorf("the directory stopped the search under %s after %d entries (size limit): "+
				"give the service account a limit that covers the whole base (slapd: limits dn.exact=\"%s\" size.prtotal=unlimited): %w",
				req.BaseDN, seen, d.cfg.BindDN, err))
		}
		if err != nil {
			return err
		}
		seen += len(res.Entries)
		for _, e := range res.Entries {
			if err := fn(e); err != nil {
				d.abandon(c, req, paging)
				return err
			}
		}
		ctrl, ok := ldapv3.FindControl(res.Controls, ldapv3.ControlTypePaging).(*ldapv3.ControlPaging)
		if !ok || len(ctrl.Cookie) == 0 {
			return nil
		}
		paging.SetCookie(ctrl.Cookie)
	}
}

// abandon ends a paged search early (a page size of 0 with the cookie).
func (d *Directory) abandon(c *ldapv3.Conn, req *ldapv3.SearchRequest, paging *ldapv3.ControlPaging) {
	if len(paging.Cookie) == 0 {
		return
	}
	paging.PagingSize = 0
	_, _ = c.Search(req)
}

// members returns a group's member DNs: member and uniqueMember values, and
// the ranges Active Directory splits large groups into ("member;range=0-1499").
func (d *Directory) members(c *ldapv3.Conn, e *ldapv3.Entry) ([]string, error) {
	var out []string
	for _, a := range e.Attributes {
		name := strings.ToLower(a.Name)
		switch {
		case name == "member":
			out = append(out, a.Values...)
		case name == "uniquemember":
			for _, v := range a.Values {
				out = append(out, uniqueMemberDN(v))
			}
		case strings.HasPrefix(name, "member;range="):
			out = append(out, a.Values...)
			if next, more := nextRange(name); more {
				rest, err := d.rangedMembers(c, e.DN, next)
				if err != nil {
					return nil, err
				}
				out = append(out, rest...)
			}
		}
	}
	return out, nil
}

// nextRange reads "member;range=0-1499" and returns where the next range
// starts, or false after the last one ("member;range=1500-*").
func nextRange(attr string) (int, bool) {
	_, rng, _ := strings.Cut(attr, "=")
	_, hi, _ := strings.Cut(rng, "-")
	if hi == "*" {
		return 0, false
	}
	n, err := strconv.Atoi(hi)
	if err != nil {
		return 0, false
	}
	return n + 1, true
}

func (d *Directory) rangedMembers(c *ldapv3.Conn, dn string, from int) ([]string, error) {
	var out []string
	for {
		res, err := c.Search(ldapv3.NewSearchRequest(dn, ldapv3.ScopeBaseObject, ldapv3.NeverDerefAliases, 1, 0, false,
			"(objectClass=*)", []string{fmt.Sprintf("member;range=%d-*", from)}, nil))
		if err != nil {
			return nil, fmt.Errorf("read members of %s from %d: %w", dn, from, err)
		}
		if len(res.Entries) == 0 {
			return out, nil
		}
		more := false
		for _, a := range res.Entries[0].Attributes {
			if name := strings.ToLower(a.Name); strings.HasPrefix(name, "member;range=") {
				out = append(out, a.Values...)
				from, more = nextRange(name)
			}
		}
		if !more {
			return out, nil
		}
	}
}
