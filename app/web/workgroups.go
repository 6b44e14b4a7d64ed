package web

import (
	"errors"

	"github.com/gofiber/fiber/v2"

	"github.com/provisor/provisor/identities"
)

func (s *Server) workgroupsPage(c *fiber.Ctx) error {
	return s.showWorkgroups(c, fiber.StatusOK, nil, nil)
}

func (s *Server) showWorkgroups(c *fiber.Ctx, status int, errs, input map[string]string) error {
	d := listData[identities.Workgroup]{Paging: pagingOf(c), Q: query(c, "q"), Query: currentQuery(c), Errors: errs, Input: input}
	var err error
	d.Items, d.Total, err = s.Identities.ListWorkgroups(c.UserContext(), identities.ListOpts{Query: d.Q, Limit: d.Limit(), Offset: d.Offset()})
	if err != nil {
		return err
	}
	d.counted(d.Total)
	return s.render(c, status, "workgroups", s.newPage(c, "identities", "Workgroups", d))
}

func (s *Server) workgroupCreate(c *fiber.Ctx) error {
	in := identities.WorkgroupInput{Name: form(c, "name"), Description: form(c, "description"), Members: formList(c, "members")}
	wg, err := s.Identities.CreateWorkgroup(c.UserContext(), in)
	if err != nil {
		if problems := fieldMap(err); problems != nil {
			return s.showWorkgroups(c, fiber.StatusUnprocessableEntity, problems, map[string]string{"name": in.Name, "description": in.Description})
		}
		return err
	}
	s.flash(c, "Workgroup "+wg.Name+" created.")
	return redirect(c, "/workgroups/"+wg.ID)
}

type workgroupData struct {
	Workgroup *identities.Workgroup
	Members   []identities.Identity
	Errors    map[string]string
	// Owner is the workgroup's owner, if any; OwnerErrors are the owner
	// form's.
	Owner       *identities.Identity
	OwnerErrors map[string]string
}

func (s *Server) workgroupPage(c *fiber.Ctx) error {
	return s.showWorkgroup(c, fiber.StatusOK, nil)
}

func (s *Server) showWorkgroup(c *fiber.Ctx, status int, errs map[string]string) error {
	return s.showWorkgroupWith(c, status, errs, nil)
}

func (s *Server) showWorkgroupWith(c *fiber.Ctx, status int, errs, ownerErrs map[string]string) error {
	wg, err := s.Identities.GetWorkgroup(c.UserContext(), param(c, "id"))
	if err != nil {
		return err
	}
	members, err := s.Identities.Members(c.UserContext(), nil, wg.ID)
	if err != nil {
		return err
	}
	d := workgroupData{Workgroup: wg, Members: members, Errors: errs, OwnerErrors: ownerErrs}
	if wg.OwnerID != nil {
		if d.Owner, err = s.Identities.GetIdentity(c.UserContext(), *wg.OwnerID); err != nil && !errors.Is(err, identities.ErrNotFound) {
			return err
		}
	}
	return s.render(c, status, "workgroup", s.newPage(c, "identities", wg.Name, d))
}

func (s *Server) workgroupAddMembers(c *fiber.Ctx) error {
	ids := formList(c, "members")
	if len(ids) == 0 {
		return s.showWorkgroup(c, fiber.StatusUnprocessableEntity, map[string]string{"members": "choose at least one identity"})
	}
	if err := s.Identities.AddMembers(c.UserContext(), param(c, "id"), ids); err != nil {
		if problems := fieldMap(err); problems != nil {
			return s.showWorkgroup(c, fiber.StatusUnprocessableEntity, problems)
		}
		return err
	}
	s.flash(c, plural(len(ids), "member")+" added.")
	return redirect(c, "/workgroups/"+param(c, "id"))
}
