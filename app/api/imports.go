package api

import (
	"slices"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/provisor/provisor/imports"
	"github.com/provisor/provisor/input"
	"github.com/provisor/provisor/requests"
)

func (s *server) listImports(c *fiber.Ctx) error {
	limit, offset, err := paging(c)
	if err != nil {
		return err
	}
	f := imports.ImportFilter{ConnectorID: c.Query("connector_id"), Status: c.Query("status"), Limit: limit, Offset: offset}
	if f.ConnectorID != "" {
		if !input.ID(f.ConnectorID) {
			return problem(422, "invalid query parameter", requests.FieldError{Field: "connector_id", Message: "must be a connector id (UUID)"})
		}
	}
	if f.Status != "" && !slices.Contains(imports.ImportStatuses, f.Status) {
		return problem(422, "invalid query parameter", requests.FieldError{Field: "status", Message: "must be one of " + strings.Join(imports.ImportStatuses, ", ")})
	}
	items, total, err := s.Imports.ListImports(c.UserContext(), f)
	if err != nil {
		return err
	}
	return c.JSON(list[imports.Import]{Items: items, Total: total, Limit: limit, Offset: offset})
}

func (s *server) getImport(c *fiber.Ctx) error {
	imp, err := s.Imports.GetImport(c.UserContext(), param(c, "id"))
	if err != nil {
		return err
	}
	return c.JSON(imp)
}

func (s *server) approveImport(c *fiber.Ctx) error {
	imp, err := s.Imports.Approve(c.UserContext(), param(c, "id"), principal(c).Name)
	if err != nil {
		return err
	}
	return c.JSON(imp)
}

func (s *server) rejectImport(c *fiber.Ctx) error {
	imp, err := s.Imports.Reject(c.UserContext(), param(c, "id"), principal(c).Name)
	if err != nil {
		return err
	}
	return c.JSON(imp)
}
