package web

import (
	"errors"
	"net/url"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/provisor/provisor/connectors"
	"github.com/provisor/provisor/connectors/configured"
	"github.com/provisor/provisor/identities"
	"github.com/provisor/provisor/imports"
	"github.com/provisor/provisor/requests"
)

type importsData struct {
	Runs []importRun
	Paging
	Status   string
	Statuses []string
	Query    url.Values
	// Waiting are the imports over their threshold that wait for an
	// admin's decision.
	Waiting []imports.Import
	// Sources are the connectors that can be imported now.
	Sources []configured.Record
	Errors  map[string]string
}

// importRun is one run of a data import request: its status, its job (a
// retrying job is pending with attempts and a message) and what the
// import made of it, once it ran.
type importRun struct {
	Inst      requests.Instance
	Mode      string
	Connector string
	Job       *requests.Job
	Import    *imports.Import
}

// importsPage lists every import run, newest first, whatever its status,
// and the imports that wait for approval; each connector that can be
// imported has its Run import now buttons.
func (s *Server) importsPage(c *fiber.Ctx) error {
	return s.showImports(c, fiber.StatusOK, nil)
}

func (s *Server) showImports(c *fiber.Ctx, status int, errs map[string]string) error {
	ctx := c.UserContext()
	d := importsData{Paging: pagingOf(c), Status: queryIn(c, "status", requests.InstanceStatuses), Statuses: requests.InstanceStatuses,
		Query: currentQuery(c), Errors: errs}
	insts, total, err := s.Requests.ListInstances(ctx, requests.InstanceFilter{Type: requests.DataImport, Status: d.Status,
		Limit: d.Limit(), Offset: d.Offset()})
	if err != nil {
		return err
	}
	d.counted(total)
	jobIDs := []string{}
	for _, inst := range insts {
		run := importRun{Inst: inst, Connector: inst.BeneficiaryName}
		if r, err := inst.RequestOf(); err == nil {
			run.Mode = r.ImportMode
		}
		if full, err := s.Requests.GetInstance(ctx, inst.ID); err == nil && len(full.Jobs) > 0 {
			j := full.Jobs[0]
			run.Job = &j
			run.Connector = j.ConnectorName
			jobIDs = append(jobIDs, j.ID)
		}
		d.Runs = append(d.Runs, run)
	}
	if len(jobIDs) > 0 {
		imps, _, err := s.Imports.ListImports(ctx, imports.ImportFilter{JobIDs: jobIDs, Limit: 500})
		if err != nil {
			return err
		}
		byJob := map[string]*imports.Import{}
		for i := range imps {
			if imps[i].JobID != nil {
				byJob[*imps[i].JobID] = &imps[i]
			}
		}
		for i := range d.Runs {
			if j := d.Runs[i].Job; j != nil {
				d.Runs[i].Import = byJob[j.ID]
			}
		}
	}
	if d.Waiting, _, err = s.Imports.ListImports(ctx, imports.ImportFilter{Status: imports.ImportAwaitingApproval, Limit: 50}); err != nil {
		return err
	}
	list, err := s.Connectors.List(ctx)
	if err != nil {
		return err
	}
	for _, rec := range list {
		if !rec.Enabled {
			continue
		}
		if ok, err := s.Requests.ImportSupported(ctx, rec.ID); err == nil && ok {
			d.Sources = append(d.Sources, rec)
		}
	}
	return s.render(c, status, "imports", s.newPage(c, "imports", "Imports", d))
}

// importRunNow starts a data import of a connector now, full or delta, as
// a run like any other (it shows on Requests and Connector Jobs too). The
// button's idempotency key makes a double click one run.
func (s *Server) importRunNow(c *fiber.Ctx) error {
	mode := form(c, "mode")
	if mode != string(connectors.ImportFull) && mode != string(connectors.ImportDelta) {
		return s.showImports(c, fiber.StatusUnprocessableEntity, map[string]string{"mode": "choose a full or a delta import"})
	}
	rec, err := s.Connectors.Get(c.UserContext(), form(c, "connector_id"))
	if err != nil {
		return err
	}
	r := requests.Request{Type: requests.DataImport, ConnectorID: rec.ID, ImportMode: mode, Priority: requests.Normal,
		Justification: "Run import now, from the Imports page"}
	inst, err := s.Requests.Submit(c.UserContext(), r, requests.StartOpts{Trigger: requests.TriggerManual, Actor: user(c).Username, Key: idempotencyKey(c)})
	if errs := requests.FieldMap(err); errs != nil {
		msg := ""
		for _, v := range errs {
			msg = v
		}
		return s.showImports(c, fiber.StatusUnprocessableEntity, map[string]string{"run-" + rec.ID: msg})
	}
	if err != nil {
		return err
	}
	s.flash(c, "A "+mode+" import of "+rec.Name+" is queued: it is listed below with its status.")
	return redirect(c, "/imports#run-"+inst.ID)
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
