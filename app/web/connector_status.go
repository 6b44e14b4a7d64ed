package web

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/provisor/provisor/imports"
	"github.com/provisor/provisor/requests"
)

// connectorStatus is the Current status card of a connector's page.
type connectorStatus struct {
	ID     string
	Status *requests.ConnectorStatus
	// LastCycle and LastGood are the last import cycle and the last one
	// that was applied, with their jobs (start and end).
	LastCycle, LastGood *importCycle
	// Running is the import running now, with its estimated end.
	Running *runningImport
	Chart   chart
}

type importCycle struct {
	Job    requests.Job
	Import *imports.Import
	// Changed and Deleted sum the import's counts.
	Changed, Deleted int
}

// runningImport is a running import's progress: the objects it read of
// those the last applied cycle read, and the end its pace makes.
type runningImport struct {
	Job requests.Job
	requests.ImportProgress
}

// chart is the SVG bar chart of the last 24 hours: operations and, over
// them, failures per hour.
type chart struct {
	Width, Height int
	Bars          []chartBar
	Max           int
}

type chartBar struct {
	X, W                 int
	OpsY, OpsH, FY, FH   int
	Label, Title, HourAt string
}

const (
	chartW, chartH, chartBarW = 480, 120, 20
)

func newChart(hours []requests.HourCount) chart {
	c := chart{Width: chartW, Height: chartH + 16}
	for _, h := range hours {
		c.Max = max(c.Max, h.Operations)
	}
	scale := func(n int) int {
		if c.Max == 0 || n == 0 {
			return 0
		}
		return max(1, n*chartH/c.Max)
	}
	for i, h := range hours {
		oh, fh := scale(h.Operations), scale(h.Failures)
		b := chartBar{X: i * chartBarW, W: chartBarW - 4, OpsY: chartH - oh, OpsH: oh, FY: chartH - fh, FH: fh,
			Title: fmt.Sprintf("%s UTC: %d operations, %d failed", h.Hour.Format("15:04"), h.Operations, h.Failures)}
		if i%6 == 0 {
			b.Label = h.Hour.Format("15h")
		}
		c.Bars = append(c.Bars, b)
	}
	return c
}

func (s *Server) connectorStatusOf(c *fiber.Ctx, id string) (*connectorStatus, error) {
	ctx := c.UserContext()
	st, err := s.Requests.ConnectorStatus(ctx, id)
	if err != nil {
		return nil, err
	}
	out := &connectorStatus{ID: id, Status: st, Chart: newChart(st.Hours)}
	ids := make([]string, 0, len(st.Imports))
	for _, j := range st.Imports {
		ids = append(ids, j.ID)
	}
	found, _, err := s.Imports.ListImports(ctx, imports.ImportFilter{ConnectorID: id, JobIDs: ids, Limit: 50})
	if err != nil {
		return nil, err
	}
	byJob := map[string]*imports.Import{}
	for i := range found {
		if found[i].JobID != nil {
			byJob[*found[i].JobID] = &found[i]
		}
	}
	for _, j := range st.Imports {
		cy := &importCycle{Job: j, Import: byJob[j.ID]}
		if imp := cy.Import; imp != nil {
			k := imp.Counts
			cy.Changed = k.AccountsCreated + k.AccountsUpdated + k.AccountsLocked + k.AccountsUnlocked + k.EntitlementsCreated +
				k.EntitlementsUpdated + k.MembershipsAdded + k.MembershipsRemoved
			cy.Deleted = k.AccountsDeleted + k.EntitlementsDeleted
		}
		if out.LastCycle == nil {
			out.LastCycle = cy
		}
		if out.LastGood == nil && j.Status == requests.JobCompleted && cy.Import != nil && cy.Import.Status == imports.ImportApplied {
			out.LastGood = cy
		}
	}
	if g := out.LastGood; g != nil && g.Import != nil {
		st.EstimateImport(time.Now(), g.Import.Counts.AccountsRead+g.Import.Counts.GroupsRead, g.Job.ID)
	} else {
		st.EstimateImport(time.Now(), 0, "")
	}
	if j := st.Importing; j != nil && j.StartedAt != nil && st.Progress != nil {
		out.Running = &runningImport{Job: *j, ImportProgress: *st.Progress}
	}
	return out, nil
}

// connectorSteer pauses, resumes or releases a connector, and goes back
// to its page with what came of it.
func (s *Server) connectorSteer(action requests.ConnectorAction, done string) fiber.Handler {
	return func(c *fiber.Ctx) error {
		id := param(c, "id")
		msg := done
		st, err := s.Requests.SteerConnector(c.UserContext(), id, action, user(c).Username)
		switch {
		case errors.Is(err, requests.ErrConflict):
			msg = strings.TrimPrefix(err.Error(), "conflict: ")
		case err != nil:
			return err
		case action == requests.ActionResume && st.State == requests.StateQuarantined:
			msg = "The probe failed: the connector stays quarantined. " + st.LastError
		}
		s.flash(c, msg)
		return redirect(c, "/connectors/"+id)
	}
}
