package entra

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/provisor/provisor/connectors"
)

// cookie is where the next delta import starts: the delta links of users
// and of groups.
type cookie struct {
	Users  string `json:"users"`
	Groups string `json:"groups"`
}

// deltaExpiredNote is the note of a delta import that fell back to a full
// one.
const deltaExpiredNote = "the delta token expired (Graph asked for a new sync): imported in full"

// Import reads users, groups and their members. A full import reads
// /users/delta and /groups/delta from the start, which pages through every
// user and group with its whole member list and ends in the delta links
// kept as the cookie; a delta import follows those links: changed users,
// users @removed (deleted or soft-deleted), groups with members@delta. An
// expired delta token (syncStateNotFound, resyncRequired) falls back to a
// full import, and the sink is told when it takes notes (connectors.Noter).
func (d *Directory) Import(ctx context.Context, mode connectors.ImportMode, ck string, sink connectors.ImportSink) (string, error) {
	ds, ok := sink.(connectors.MemberChangeSink)
	if !ok {
		return "", connectors.Permanent(fmt.Errorf("the Entra connector imports into a sink that takes membership changes only"))
	}
	var from cookie
	if mode == connectors.ImportDelta && ck != "" {
		if err := json.Unmarshal([]byte(ck), &from); err != nil {
			from = cookie{}
		}
	}
	next, err := d.importFrom(ctx, from, ds)
	if err != nil && from.Users != "" && isExpiredDelta(err) {
		if n, ok := sink.(connectors.Noter); ok {
			n.Note(deltaExpiredNote)
		}
		next, err = d.importFrom(ctx, cookie{}, &fullSink{ds})
	}
	if err != nil {
		return "", err
	}
	b, _ := json.Marshal(next)
	return string(b), nil
}

// fullSink marks an import that fell back to full: the sink hears it as
// a full one would be heard (Present lists everything).
type fullSink struct{ connectors.MemberChangeSink }

func isExpiredDelta(err error) bool {
	h := connectors.HTTPErrorOf(err)
	return h != nil && (h.Status == http.StatusGone || h.Status == http.StatusBadRequest) &&
		(strings.EqualFold(h.Code, "syncStateNotFound") || strings.EqualFold(h.Code, "resyncRequired"))
}

type deltaPage[T any] struct {
	Value     []T    `json:"value"`
	NextLink  string `json:"@odata.nextLink"`
	DeltaLink string `json:"@odata.deltaLink"`
}

type deltaGroup struct {
	ID           string `json:"id"`
	DisplayName  string `json:"displayName"`
	MembersDelta []struct {
		Type    string `json:"@odata.type"`
		ID      string `json:"id"`
		Removed *struct {
			Reason string `json:"reason"`
		} `json:"@removed"`
	} `json:"members@delta"`
	Removed *struct {
		Reason string `json:"reason"`
	} `json:"@removed"`
}

func (d *Directory) importFrom(ctx context.Context, from cookie, sink connectors.MemberChangeSink) (cookie, error) {
	_, full := sink.(*fullSink)
	full = full || from.Users == ""
	var next cookie
	var present []string
	userReq := connectors.Request{Method: http.MethodGet, Path: "/users/delta",
		Query:  url.Values{"$select": {"id,userPrincipalName,displayName,givenName,surname,mail,accountEnabled"}},
		Header: http.Header{"Prefer": {fmt.Sprintf("odata.maxpagesize=%d", d.cfg.PageSize)}}}
	if from.Users != "" && !full {
		userReq = connectors.Request{Method: http.MethodGet, Path: from.Users, Header: userReq.Header}
	}
	err := d.rest.NextLinks(ctx, userReq, func(body []byte) (string, error) {
		var p deltaPage[graphUser]
		if err := json.Unmarshal(body, &p); err != nil {
			return "", connectors.Transient(fmt.Errorf("users delta: %w", err))
		}
		for _, u := range p.Value {
			if u.Removed != nil {
				if err := sink.Deleted(ctx, u.ID); err != nil {
					return "", err
				}
				continue
			}
			if u.UserPrincipalName == "" {
				continue // a change of a property not selected
			}
			a := connectors.ImportedAccount{Account: connectors.Account{Username: u.UserPrincipalName, ExternalID: u.ID,
				DisplayName: u.DisplayName, GivenName: u.GivenName, Surname: u.Surname, Email: u.Mail}}
			a.Locked = u.AccountEnabled != nil && !*u.AccountEnabled
			if err := sink.Account(ctx, a); err != nil {
				return "", err
			}
			present = append(present, u.ID)
		}
		next.Users = p.DeltaLink
		return p.NextLink, nil
	})
	if err != nil {
		return next, err
	}
	groupReq := connectors.Request{Method: http.MethodGet, Path: "/groups/delta",
		Query:  url.Values{"$select": {"id,displayName,members"}},
		Header: userReq.Header}
	if from.Groups != "" && !full {
		groupReq = connectors.Request{Method: http.MethodGet, Path: from.Groups, Header: userReq.Header}
	}
	members := map[string][]string{}
	var groups []string
	err = d.rest.NextLinks(ctx, groupReq, func(body []byte) (string, error) {
		var p deltaPage[deltaGroup]
		if err := json.Unmarshal(body, &p); err != nil {
			return "", connectors.Transient(fmt.Errorf("groups delta: %w", err))
		}
		for _, g := range p.Value {
			if g.Removed != nil {
				if err := sink.Deleted(ctx, g.ID); err != nil {
					return "", err
				}
				continue
			}
			if g.DisplayName != "" {
				if err := sink.Entitlement(ctx, connectors.Entitlement{ExternalID: g.ID, Name: g.DisplayName, Kind: "group"}); err != nil {
					return "", err
				}
			}
			if _, seen := members[g.ID]; !seen {
				groups = append(groups, g.ID)
				members[g.ID] = []string{}
			}
			var added, removed []string
			for _, m := range g.MembersDelta {
				if m.Type != "" && m.Type != "#microsoft.graph.user" {
					continue
				}
				if m.Removed != nil {
					removed = append(removed, m.ID)
				} else {
					added = append(added, m.ID)
				}
			}
			if full {
				// A group's members may come over several pages.
				members[g.ID] = append(members[g.ID], added...)
			} else if len(added)+len(removed) > 0 {
				if err := sink.MemberChanges(ctx, g.ID, added, removed); err != nil {
					return "", err
				}
			}
		}
		next.Groups = p.DeltaLink
		return p.NextLink, nil
	})
	if err != nil {
		return next, err
	}
	// Directory roles and app roles have no delta: they are read whole
	// on every import, with their assignments as complete member lists.
	roles, err := d.importRoles(ctx, sink)
	if err != nil {
		return next, err
	}
	if full {
		for _, g := range groups {
			if err := sink.Members(ctx, g, members[g]); err != nil {
				return next, err
			}
		}
		groups = append(groups, roles...)
		if _, fallback := sink.(*fullSink); fallback {
			// The import is a delta that became full: what the round does
			// not list is gone.
			if err := sink.Present(ctx, append(present, groups...)); err != nil {
				return next, err
			}
		}
	}
	return next, nil
}

type roleDefinition struct {
	ID          string `json:"id"`
	DisplayName string `json:"displayName"`
	Description string `json:"description"`
	IsEnabled   *bool  `json:"isEnabled"`
}

type servicePrincipal struct {
	ID          string `json:"id"`
	DisplayName string `json:"displayName"`
	AppRoles    []struct {
		ID                 string   `json:"id"`
		DisplayName        string   `json:"displayName"`
		Description        string   `json:"description"`
		IsEnabled          *bool    `json:"isEnabled"`
		AllowedMemberTypes []string `json:"allowedMemberTypes"`
	} `json:"appRoles"`
}

type appRoleAssignment struct {
	PrincipalID   string `json:"principalId"`
	PrincipalType string `json:"principalType"`
	AppRoleID     string `json:"appRoleId"`
}

// collect pages a Graph collection into out.
func collect[T any](ctx context.Context, d *Directory, req connectors.Request, out *[]T) error {
	return d.rest.NextLinks(ctx, req, func(body []byte) (string, error) {
		var p deltaPage[T]
		if err := json.Unmarshal(body, &p); err != nil {
			return "", connectors.Transient(fmt.Errorf("%s: %w", req.Path, err))
		}
		*out = append(*out, p.Value...)
		return p.NextLink, nil
	})
}

// forbidden reports a 403: the app lacks a permission, which the import
// notes and goes on without what it would read.
func forbidden(err error) bool {
	h := connectors.HTTPErrorOf(err)
	return h != nil && h.Status == http.StatusForbidden
}

func note(sink connectors.ImportSink, msg string) {
	if n, ok := sink.(connectors.Noter); ok {
		n.Note(msg)
	}
}

// importRoles reads the directory role definitions (enabled ones) with
// their directory-wide assignments, and the app roles users may hold of
// every service principal with their assignments, as entitlements of the
// kinds directory_role and app_role; it returns their external ids. A
// missing permission (RoleManagement.Read.Directory, Application.Read.All)
// leaves that part out and says so.
func (d *Directory) importRoles(ctx context.Context, sink connectors.MemberChangeSink) ([]string, error) {
	var ids []string
	var defs []roleDefinition
	err := collect(ctx, d, connectors.Request{Method: http.MethodGet, Path: "/roleManagement/directory/roleDefinitions",
		Query: url.Values{"$select": {"id,displayName,description,isEnabled"}}}, &defs)
	switch {
	case forbidden(err):
		note(sink, "directory roles not imported: the app lacks the permission RoleManagement.Read.Directory")
	case err != nil:
		return nil, err
	default:
		var as []roleAssignment
		if err := collect(ctx, d, connectors.Request{Method: http.MethodGet, Path: "/roleManagement/directory/roleAssignments",
			Query: url.Values{"$select": {"principalId,roleDefinitionId,directoryScopeId"}}}, &as); err != nil {
			return nil, err
		}
		holders := map[string][]string{}
		for _, a := range as {
			if a.DirectoryScopeID == "/" || a.DirectoryScopeID == "" {
				holders[a.RoleDefinitionID] = append(holders[a.RoleDefinitionID], a.PrincipalID)
			}
		}
		for _, r := range defs {
			if r.IsEnabled != nil && !*r.IsEnabled {
				continue
			}
			ext := DirectoryRole(r.ID)
			if err := sink.Entitlement(ctx, connectors.Entitlement{ExternalID: ext, Name: r.DisplayName, Kind: kindDirRole}); err != nil {
				return nil, err
			}
			if err := sink.Members(ctx, ext, append([]string{}, holders[r.ID]...)); err != nil {
				return nil, err
			}
			ids = append(ids, ext)
		}
	}
	var sps []servicePrincipal
	err = collect(ctx, d, connectors.Request{Method: http.MethodGet, Path: "/servicePrincipals",
		Query: url.Values{"$select": {"id,displayName,appRoles"}}}, &sps)
	switch {
	case forbidden(err):
		note(sink, "app roles not imported: the app lacks the permission Application.Read.All")
		return ids, nil
	case err != nil:
		return nil, err
	}
	for _, sp := range sps {
		var roles []string
		for _, r := range sp.AppRoles {
			if (r.IsEnabled == nil || *r.IsEnabled) && slicesContains(r.AllowedMemberTypes, "User") {
				roles = append(roles, r.ID)
			}
		}
		if len(roles) == 0 {
			continue // nothing a user can hold: no need to read its assignments
		}
		var as []appRoleAssignment
		if err := collect(ctx, d, connectors.Request{Method: http.MethodGet, Path: "/servicePrincipals/" + url.PathEscape(sp.ID) + "/appRoleAssignedTo",
			Query: url.Values{"$select": {"principalId,principalType,appRoleId"}}}, &as); err != nil {
			return nil, err
		}
		holders := map[string][]string{}
		for _, a := range as {
			if a.PrincipalType == "" || a.PrincipalType == "User" {
				holders[a.AppRoleID] = append(holders[a.AppRoleID], a.PrincipalID)
			}
		}
		for _, r := range sp.AppRoles {
			if !slicesContains(roles, r.ID) {
				continue
			}
			ext := AppRole(sp.ID, r.ID)
			if err := sink.Entitlement(ctx, connectors.Entitlement{ExternalID: ext, Name: sp.DisplayName + ": " + r.DisplayName, Kind: kindAppRole}); err != nil {
				return nil, err
			}
			if err := sink.Members(ctx, ext, append([]string{}, holders[r.ID]...)); err != nil {
				return nil, err
			}
			ids = append(ids, ext)
		}
	}
	return ids, nil
}

func slicesContains(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}
