package web

import (
	"net/url"

	"github.com/gofiber/fiber/v2"

	"github.com/provisor/provisor/identities"
	"github.com/provisor/provisor/provlog"
)

type listData[T any] struct {
	Items []T
	Paging
	Q      string
	Query  url.Values
	Errors map[string]string
	Input  map[string]string
}

func (s *Server) identitiesPage(c *fiber.Ctx) error {
	return s.showIdentities(c, fiber.StatusOK, nil, nil)
}

func (s *Server) showIdentities(c *fiber.Ctx, status int, errs, input map[string]string) error {
	d := listData[identities.Identity]{Paging: pagingOf(c), Q: query(c, "q"), Query: currentQuery(c), Errors: errs, Input: input}
	var err error
	d.Items, d.Total, err = s.Identities.ListIdentities(c.UserContext(), identities.ListOpts{Query: d.Q, Limit: d.Limit(), Offset: d.Offset()})
	if err != nil {
		return err
	}
	d.counted(d.Total)
	return s.render(c, status, "identities", s.newPage(c, "identities", "Identities", d))
}

func (s *Server) identityCreate(c *fiber.Ctx) error {
	in := identities.IdentityInput{Username: form(c, "username"), DisplayName: form(c, "display_name"), Email: form(c, "email")}
	id, err := s.Identities.CreateIdentity(c.UserContext(), in)
	if err != nil {
		if problems := fieldMap(err); problems != nil {
			return s.showIdentities(c, fiber.StatusUnprocessableEntity, problems,
				map[string]string{"username": in.Username, "display_name": in.DisplayName, "email": in.Email})
		}
		return err
	}
	s.flash(c, "Identity "+id.Username+" created.")
	return redirect(c, "/identities/"+id.ID)
}

type identityData struct {
	Identity *identities.Identity
	Accounts []accountView
	// Timeline is the provisioning log of the identity, newest first.
	Timeline []provlog.Entry
	managerData
}

type accountView struct {
	identities.Account
	Connector    string
	Entitlements []identities.Entitlement
}

func (s *Server) identityPage(c *fiber.Ctx) error {
	return s.showIdentity(c, fiber.StatusOK, nil)
}

func (s *Server) showIdentity(c *fiber.Ctx, status int, errs map[string]string) error {
	ctx := c.UserContext()
	id, err := s.Identities.GetIdentity(ctx, param(c, "id"))
	if err != nil {
		return err
	}
	accts, err := s.Identities.Accounts(ctx, id.ID)
	if err != nil {
		return err
	}
	d := identityData{Identity: id}
	if d.managerData, err = s.managerData(c, id, errs); err != nil {
		return err
	}
	for _, a := range accts {
		v := accountView{Account: a}
		if rec, err := s.Connectors.Get(ctx, a.ConnectorID); err == nil {
			v.Connector = rec.Name
		}
		v.Entitlements, _ = s.Identities.EntitlementsOf(ctx, a.ConnectorID, id.ID)
		d.Accounts = append(d.Accounts, v)
	}
	if d.Timeline, err = s.timelineOf(ctx, id.ID); err != nil {
		return err
	}
	return s.render(c, status, "identity", s.newPage(c, "identities", id.DisplayName, d))
}
