package scim

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/provisor/provisor/connectors"
)

// cookie is where the next delta import starts: what is newer than Since
// is read. Since is by the target's clock, a second before the newest
// meta.lastModified read (a change in that second after the read is not
// lost), or, from a target that states none, the start of the import less
// deltaOverlap by the connector's clock.
type cookie struct {
	Since time.Time `json:"since"`
}

// deltaOverlap is read again at every delta import of a target without
// meta.lastModified, for the difference of the clocks.
const deltaOverlap = time.Minute

// newest keeps the latest meta.lastModified an import read.
type newest struct{ t time.Time }

func (n *newest) see(m Meta) {
	if t, err := time.Parse(time.RFC3339, m.LastModified); err == nil && t.After(n.t) {
		n.t = t
	}
}

// Import reads users, groups and their members. A full import pages
// /Users and /Groups (startIndex, count). A delta import reads the users
// and groups with filter=meta.lastModified gt the last import's start, and
// the ids of all of them to tell deletions; a target whose
// /ServiceProviderConfig says it does not filter (or delta_import off)
// gets a full import instead, which the sink is told of and which the
// deletion threshold guards as every import.
func (d *Target) Import(ctx context.Context, mode connectors.ImportMode, ck string, sink connectors.ImportSink) (string, error) {
	ds, ok := sink.(connectors.DirectorySink)
	if !ok {
		return "", connectors.Permanent(fmt.Errorf("the SCIM connector imports into a sink that takes member lists only"))
	}
	start := time.Now().UTC()
	var from cookie
	if mode == connectors.ImportDelta && ck != "" {
		if err := json.Unmarshal([]byte(ck), &from); err != nil {
			from = cookie{}
		}
	}
	delta := mode == connectors.ImportDelta && !from.Since.IsZero()
	if delta {
		switch f, err := d.features(ctx); {
		case connectors.StatusOf(err) == http.StatusNotFound:
			note(sink, "the target has no /ServiceProviderConfig to say whether it filters: imported in full")
			delta = false
		case err != nil:
			return "", err
		case d.cfg.DeltaImport == "off":
			note(sink, "delta imports are off for this connector: imported in full")
			delta = false
		case !f.Filter:
			note(sink, "the target does not support filters (ServiceProviderConfig): imported in full")
			delta = false
		}
	}
	var since string
	if delta {
		since = from.Since.UTC().Format(time.RFC3339)
	}
	seen := &newest{}
	users, err := d.readUsers(ctx, since, ds, seen)
	if err != nil {
		return "", err
	}
	groups, err := d.readGroups(ctx, since, ds, seen)
	if err != nil {
		return "", err
	}
	if mode == connectors.ImportDelta {
		// What the round does not list is gone: every id when the delta
		// filtered, or what a full round read.
		present := append(users, groups...)
		if delta {
			if present, err = d.allIDs(ctx); err != nil {
				return "", err
			}
		}
		if err := ds.Present(ctx, present); err != nil {
			return "", err
		}
	}
	next := cookie{Since: start.Add(-deltaOverlap)}
	switch {
	case !seen.t.IsZero():
		next.Since = seen.t.Add(-time.Second)
	case delta:
		next.Since = from.Since // nothing changed
	}
	b, _ := json.Marshal(next)
	return string(b), nil
}

func note(sink connectors.ImportSink, msg string) {
	if n, ok := sink.(connectors.Noter); ok {
		n.Note(msg)
	}
}

// pages reads a list at path page after page into fn.
func pages[T any](ctx context.Context, d *Target, path string, q url.Values, fn func(T) error) error {
	return d.rest.IndexPages(ctx, func(start int) connectors.Request {
		qq := url.Values{}
		for k, v := range q {
			qq[k] = v
		}
		qq.Set("startIndex", strconv.Itoa(start))
		qq.Set("count", strconv.Itoa(d.cfg.PageSize))
		return connectors.Request{Method: http.MethodGet, Path: path, Query: qq}
	}, func(body []byte) (int, int, error) {
		var p ListResponse[T]
		if err := json.Unmarshal(body, &p); err != nil {
			return 0, 0, connectors.Transient(fmt.Errorf("GET %s: unreadable page: %w", path, err))
		}
		for _, r := range p.Resources {
			if err := fn(r); err != nil {
				return 0, 0, err
			}
		}
		return len(p.Resources), p.TotalResults, nil
	})
}

func sinceFilter(q url.Values, since string) url.Values {
	if since != "" {
		q.Set("filter", "meta.lastModified gt "+Quote(since))
	}
	return q
}

func (d *Target) readUsers(ctx context.Context, since string, sink connectors.DirectorySink, seen *newest) ([]string, error) {
	var ids []string
	err := pages(ctx, d, "/Users", sinceFilter(url.Values{}, since), func(u User) error {
		if u.ID == "" || u.UserName == "" {
			return nil
		}
		seen.see(u.Meta)
		a := connectors.ImportedAccount{Account: connectors.Account{Username: u.UserName, ExternalID: u.ID, DisplayName: u.DisplayName,
			GivenName: u.Name.GivenName, Surname: u.Name.FamilyName, Email: u.email()}}
		a.Locked = u.Active.Set && !u.Active.Value
		ids = append(ids, u.ID)
		d.remember(u.UserName, u.ID)
		return sink.Account(ctx, a)
	})
	return ids, advise(err)
}

func (d *Target) readGroups(ctx context.Context, since string, sink connectors.DirectorySink, seen *newest) ([]string, error) {
	var ids []string
	err := pages(ctx, d, "/Groups", sinceFilter(url.Values{}, since), func(g Group) error {
		if g.ID == "" {
			return nil
		}
		seen.see(g.Meta)
		name := g.DisplayName
		if name == "" {
			name = g.ID
		}
		if err := sink.Entitlement(ctx, connectors.Entitlement{ExternalID: g.ID, Name: name, Kind: "group"}); err != nil {
			return err
		}
		members := make([]string, 0, len(g.Members))
		for _, m := range g.Members {
			if m.Type == "" || m.Type == "User" {
				members = append(members, m.Value)
			}
		}
		ids = append(ids, g.ID)
		return sink.Members(ctx, g.ID, members)
	})
	return ids, advise(err)
}

// allIDs lists the ids of every user and group, without their attributes.
func (d *Target) allIDs(ctx context.Context) ([]string, error) {
	var ids []string
	for _, path := range []string{"/Users", "/Groups"} {
		err := pages(ctx, d, path, url.Values{"attributes": {"id"}}, func(r struct {
			ID string `json:"id"`
		}) error {
			ids = append(ids, r.ID)
			return nil
		})
		if err != nil {
			return nil, advise(err)
		}
	}
	return ids, nil
}
