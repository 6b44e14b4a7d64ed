package requests

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/provisor/provisor/database"
)

// GroupFilter selects a page of connector jobs grouped by request instance.
type GroupFilter struct {
	// Status keeps the groups with at least one job in that status (or,
	// for JobNoChange, with a completed job that changed nothing); empty
	// or "all" keeps every group.
	Status   string
	Page     int // from 1
	PageSize int // 10, 25 or 50
	// Sort is one of GroupSorts: a column, "-" first for descending.
	// Empty is "-updated", the most recently updated first.
	Sort string
}

// GroupSorts are the orders ListGroups knows.
var GroupSorts = []string{"-updated", "updated", "user", "-user", "status", "-status"}

// statusRank orders runs by how much they need an eye: failed first,
// then work under way, then what ended.
const statusRank = "CASE status WHEN 'failed' THEN 0 WHEN 'running' THEN 1 WHEN 'pending' THEN 2 WHEN 'active' THEN 3 " +
	"WHEN 'awaiting_approval' THEN 4 WHEN 'completed' THEN 5 WHEN 'canceled' THEN 6 ELSE 7 END"

// groupOrder is the ORDER BY of a sort of GroupSorts; ties go newest first.
func groupOrder(sort string) string {
	switch sort {
	case "updated":
		return "updated_at ASC, id"
	case "user":
		return "beneficiary_name ASC, updated_at DESC, id"
	case "-user":
		return "beneficiary_name DESC, updated_at DESC, id"
	case "status":
		return statusRank + " ASC, updated_at DESC, id"
	case "-status":
		return statusRank + " DESC, updated_at DESC, id"
	}
	return "updated_at DESC, id"
}

// Group is one request instance ("activation") and its jobs.
type Group struct {
	InstanceID      string    `json:"activation_id"`
	BeneficiaryName string    `json:"user"`
	TriggeredBy     string    `json:"requested_by"`
	Trigger         string    `json:"trigger"`
	Kind            string    `json:"kind"`
	Connectors      string    `json:"connector"`
	Type            Type      `json:"type"`
	Status          string    `json:"status"`
	Priority        Priority  `json:"priority"`
	UpdatedAt       time.Time `json:"updated_at"`
	JobCount        int       `json:"job_count"`
	Jobs            []Job     `json:"jobs"`
}

// GroupPage is one page of groups with the counters a page shows.
type GroupPage struct {
	Groups      []Group `json:"groups"`
	TotalGroups int64   `json:"total_groups"`
	TotalJobs   int64   `json:"total_jobs"`
	Page        int     `json:"page"`
	PageSize    int     `json:"page_size"`
	Pages       int     `json:"pages"`
}

// StatusFilters lists the filters of ListGroups in the order a page offers
// them: the job statuses, with "no change" after completed.
var StatusFilters = []string{JobPending, JobRunning, JobCompleted, JobNoChange, JobFailed, JobCanceled, JobScheduled}

// ValidStatusFilter reports whether s is a status filter ListGroups accepts:
// a job status, or JobNoChange for the completed jobs that changed nothing.
func ValidStatusFilter(s string) bool {
	if s == "" || s == "all" || s == JobNoChange {
		return true
	}
	for _, k := range JobStatuses {
		if k == s {
			return true
		}
	}
	return false
}

// ListGroups returns connector jobs grouped by request instance, newest
// first unless f.Sort says otherwise.
func (s *Service) ListGroups(ctx context.Context, f GroupFilter) (*GroupPage, error) {
	if !ValidStatusFilter(f.Status) {
		return nil, &ValidationError{Fields: []FieldError{{Field: "status", Message: "must be all, " + strings.Join(StatusFilters, ", ")}}}
	}
	if f.PageSize != 10 && f.PageSize != 25 && f.PageSize != 50 {
		f.PageSize = 25
	}
	if f.Page < 1 {
		f.Page = 1
	}
	db := s.db.Gorm.WithContext(ctx)
	// The per-status job counters of each instance (kept by the roll-up)
	// answer both the filter and the totals, each from a partial index
	// that holds the counter: no connector job is read but the page's own.
	filter, total := "1 = 1", "jobs_total"
	switch f.Status {
	case "", "all":
	case JobNoChange:
		total, filter = "jobs_unchanged", "jobs_unchanged > 0"
	default:
		total = "jobs_" + f.Status // a status of JobStatuses: a column name
		filter = total + " > 0"
	}
	page := &GroupPage{Page: f.Page, PageSize: f.PageSize}
	var totals struct{ Runs, Jobs int64 }
	if err := db.Model(&Instance{}).Select("count(*) AS runs, COALESCE(sum(" + total + "), 0) AS jobs").
		Where(filter).Scan(&totals).Error; err != nil {
		return nil, fmt.Errorf("requests: count groups: %w", err)
	}
	page.TotalGroups, page.TotalJobs = totals.Runs, totals.Jobs
	page.Pages = int((page.TotalGroups + int64(f.PageSize) - 1) / int64(f.PageSize))
	// The page's ids come from the index alone, however deep the offset;
	// only the page's rows are read from the table.
	order := groupOrder(f.Sort)
	ids := db.Model(&Instance{}).Select("id").Where(filter).Order(order).
		Limit(f.PageSize).Offset((f.Page - 1) * f.PageSize)
	var insts []Instance
	if err := db.Where("id IN (?)", ids).Order(order).Find(&insts).Error; err != nil {
		return nil, fmt.Errorf("requests: list groups: %w", err)
	}
	page.Groups = make([]Group, len(insts))
	if len(insts) == 0 {
		return page, nil
	}
	pageIDs := make([]string, len(insts))
	index := map[string]int{}
	for i, inst := range insts {
		pageIDs[i] = inst.ID
		index[inst.ID] = i
		page.Groups[i] = Group{
			InstanceID: inst.ID, BeneficiaryName: inst.BeneficiaryName, TriggeredBy: inst.TriggeredBy, Trigger: inst.Trigger,
			Type: inst.Type, Status: inst.Status, Priority: inst.Priority, UpdatedAt: inst.UpdatedAt,
		}
	}
	var all []Job
	if err := db.Where("instance_id IN ?", pageIDs).Order("instance_id, seq").Find(&all).Error; err != nil {
		return nil, fmt.Errorf("requests: list group jobs: %w", err)
	}
	for _, j := range all {
		g := &page.Groups[index[j.InstanceID]]
		g.Jobs = append(g.Jobs, j)
	}
	for i := range page.Groups {
		g := &page.Groups[i]
		g.JobCount = len(g.Jobs)
		names := map[string]bool{}
		for _, j := range g.Jobs {
			names[j.ConnectorName] = true
		}
		list := make([]string, 0, len(names))
		for n := range names {
			list = append(list, n)
		}
		sort.Strings(list)
		g.Connectors = strings.Join(list, ", ")
		if g.JobCount == 1 {
			g.Kind = g.Jobs[0].Kind
		} else {
			g.Kind = fmt.Sprintf("%d jobs", g.JobCount)
		}
	}
	return page, nil
}

// setJobCounts records an instance's jobs by status (c, from the roll-up)
// on inst and in the columns of updates.
func (inst *Instance) setJobCounts(c map[string]int, updates map[string]any) {
	inst.JobsPending, inst.JobsScheduled, inst.JobsRunning = c[JobPending], c[JobScheduled], c[JobRunning]
	inst.JobsCompleted, inst.JobsFailed, inst.JobsCanceled = c[JobCompleted], c[JobFailed], c[JobCanceled]
	for _, st := range JobStatuses {
		updates["jobs_"+st] = c[st]
	}
}

// InstanceFilter selects request instances.
type InstanceFilter struct {
	TaskID      string
	TriggeredBy string
	Status      string
	// Type keeps the runs of one request type (data_import for the
	// Imports page).
	Type   Type
	Limit  int
	Offset int
}

// ListInstances returns instances newest first, and how many match.
func (s *Service) ListInstances(ctx context.Context, f InstanceFilter) ([]Instance, int64, error) {
	q := s.db.Gorm.WithContext(ctx).Model(&Instance{})
	if f.TaskID != "" {
		q = q.Where("task_id = ?", f.TaskID)
	}
	if f.TriggeredBy != "" {
		q = q.Where("triggered_by = ?", f.TriggeredBy)
	}
	if f.Status != "" {
		q = q.Where("status = ?", f.Status)
	}
	if f.Type != "" {
		q = q.Where("type = ?", f.Type)
	}
	return database.FindPage[Instance](q, "created_at DESC, id", database.PageLimit(f.Limit, 50), f.Offset, nil)
}
