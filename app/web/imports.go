package web

import (
	"errors"
	"net/url"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/provisor/provisor/identities"
	"github.com/provisor/provisor/requests"
)

type importsData struct {
	Items    []identities.Import
	Total    int64
	Page     int
	Pages    int
	Status   string
	Statuses []string
	Query    url.Values
}

// importsPage lists directory imports; those over the deletion threshold
// wait here for an admin.
func (s *Server) importsPage(c *fiber.Ctx) error {
	d := importsData{Page: pageNumber(c), Status: queryIn(c, "status", identities.ImportStatuses), Statuses: identities.ImportStatuses, Query: currentQuery(c)}
	items, total, err := s.Imports.ListImports(c.UserContext(), identities.ImportFilter{Status: d.Status, Limit: gridPageSize, Offset: (d.Page - 1) * gridPageSize})
	if err != nil {
		return err
	}
	d.Items, d.Total, d.Pages = items, total, pages(total, gridPageSize)
	return s.render(c, fiber.StatusOK, "imports", s.newPage(c, "imports", "Imports", d))
}

// importPage shows an import with every change it made or would make.
func (s *Server) importPage(c *fiber.Ctx) error {
	imp, err := s.Imports.GetImport(c.UserContext(), param(c, "id"))
	if err != nil {
		return err
	}
	return s.render(c, fiber.StatusOK, "import", s.newPage(c, "imports", "Import of "+imp.ConnectorName, imp))
}

func (s *Server) importDecide(c *fiber.Ctx) error {
	approve := form(c, "decision") == "approve"
	var err error
	if approve {
		_, err = s.Imports.Approve(c.UserContext(), param(c, "id"), user(c).Username)
	} else {
		_, err = s.Imports.Reject(c.UserContext(), param(c, "id"), user(c).Username)
	}
	switch {
	case errors.Is(err, requests.ErrConflict), errors.Is(err, identities.ErrConflict):
		s.flash(c, strings.TrimPrefix(err.Error(), "conflict: "))
	case err != nil:
		return err
	case approve:
		s.flash(c, "Import approved: its changes are applied.")
	default:
		s.flash(c, "Import rejected: nothing was changed.")
	}
	return redirect(c, "/imports/"+param(c, "id"))
}
