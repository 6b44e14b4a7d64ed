package requests

import (
	"time"
)

// Job statuses.
const (
	JobPending   = "pending"
	JobScheduled = "scheduled"
	JobRunning   = "running"
	JobCompleted = "completed"
	JobFailed    = "failed"
	JobCanceled  = "canceled"
)

// JobNoChange is the outcome of a completed job that found the system
// already as asked. It is no status of its own (the job is completed), but
// it is shown, counted and filtered apart.
const JobNoChange = "no_change"

// JobStatuses lists the job statuses in the order a filter offers them.
var JobStatuses = []string{JobPending, JobRunning, JobCompleted, JobFailed, JobCanceled, JobScheduled}

// Instance statuses. Pending and running are busy; the others are settled.
// Active means every job ran and revocations wait for the expiry. A run
// awaiting approval has no jobs yet; it ends denied, withdrawn or expired
// when its approval does, and goes on as pending when it is approved.
const (
	InstancePending          = "pending"
	InstanceRunning          = "running"
	InstanceActive           = "active"
	InstanceCompleted        = "completed"
	InstanceFailed           = "failed"
	InstanceCanceled         = "canceled"
	InstanceAwaitingApproval = "awaiting_approval"
	InstanceDenied           = "denied"
	InstanceWithdrawn        = "withdrawn"
	InstanceExpired          = "expired"
)

// InstanceStatuses lists the instance statuses in the order a filter offers them.
var InstanceStatuses = []string{InstanceAwaitingApproval, InstancePending, InstanceRunning, InstanceActive, InstanceCompleted,
	InstanceFailed, InstanceCanceled, InstanceDenied, InstanceWithdrawn, InstanceExpired}

// Busy reports whether an instance status means work is under way.
func Busy(status string) bool { return status == InstancePending || status == InstanceRunning }

// Final reports whether an instance status will not change by itself.
func Final(status string) bool {
	switch status {
	case InstanceCompleted, InstanceFailed, InstanceCanceled, InstanceDenied, InstanceWithdrawn, InstanceExpired:
		return true
	}
	return false
}

// Unapproved reports whether a run ended because its approval did not come through.
func Unapproved(status string) bool {
	return status == InstanceDenied || status == InstanceWithdrawn || status == InstanceExpired
}

// Triggers: how an instance was started.
const (
	TriggerSubmission = "submission"
	TriggerManual     = "manual"
	TriggerSchedule   = "schedule"
	TriggerAPI        = "api"
	TriggerCLI        = "cli"
)

// Instance is one run of a request or task.
type Instance struct {
	ID              string     `gorm:"primaryKey" json:"id"`
	TaskID          *string    `json:"task_id"`
	TaskName        string     `json:"task_name,omitempty"`
	Request         string     `json:"-"`
	Type            Type       `json:"type"`
	BeneficiaryType string     `json:"beneficiary_type"`
	BeneficiaryID   string     `json:"beneficiary_id"`
	BeneficiaryName string     `json:"beneficiary_name"`
	ConnectorID     string     `json:"connector_id"`
	Trigger         string     `json:"trigger"`
	TriggeredBy     string     `json:"triggered_by"`
	Priority        Priority   `json:"priority"`
	Status          string     `json:"status"`
	JobsTotal       int        `json:"jobs_total"`
	JobsDone        int        `json:"jobs_done"`
	ExpiresAt       *time.Time `json:"expires_at,omitempty"`
	CreatedAt       time.Time  `json:"created_at"`
	UpdatedAt       time.Time  `json:"updated_at"`
	EndedAt         *time.Time `json:"ended_at,omitempty"`
	// ApprovalID is the approval the run waits for or went ahead under
	// (its own, or its task's).
	ApprovalID *string `json:"approval_id,omitempty"`
	// Jobs by status, kept by the roll-up with every status change: the
	// Connector Jobs page filters and counts runs by them.
	JobsPending   int `json:"-"`
	JobsScheduled int `json:"-"`
	JobsRunning   int `json:"-"`
	JobsCompleted int `json:"-"`
	JobsFailed    int `json:"-"`
	JobsCanceled  int `json:"-"`
	// JobsUnchanged counts the completed jobs that changed nothing (see
	// Job.Unchanged), kept by the roll-up beside the counters by status.
	JobsUnchanged int `json:"jobs_unchanged"`

	Jobs []Job `gorm:"-" json:"jobs,omitempty"`
}

// TableName is the table of request instances.
func (Instance) TableName() string { return "request_instances" }

// Job is one operation on one connector for one account.
type Job struct {
	ID              string     `gorm:"primaryKey" json:"id"`
	InstanceID      string     `json:"instance_id"`
	Seq             int        `json:"number"`
	ConnectorID     string     `json:"connector_id"`
	ConnectorName   string     `json:"connector_name"`
	ConnectorType   string     `json:"connector_type"`
	IdentityID      *string    `json:"identity_id"`
	Username        string     `json:"username"`
	EntitlementID   *string    `json:"entitlement_id,omitempty"`
	EntitlementName string     `json:"entitlement_name,omitempty"`
	Operation       string     `json:"operation"`
	Kind            string     `json:"kind"`
	Status          string     `json:"status"`
	Priority        Priority   `json:"priority"`
	DependsOn       *string    `json:"depends_on,omitempty"`
	Revocation      bool       `json:"revocation"`
	RunAt           *time.Time `json:"run_at,omitempty"`
	Attempts        int        `json:"attempts"`
	// RateLimitWaits counts the waits its system asked for (they spend no
	// attempt).
	RateLimitWaits int    `json:"rate_limit_waits"`
	QueueJobID     *int64 `json:"-"`
	Message        string `json:"message"`
	// Unchanged says a completed job's connector found the system already
	// as asked: the job's outcome is "no change".
	Unchanged bool       `json:"unchanged"`
	CreatedAt time.Time  `json:"created_at"`
	StartedAt *time.Time `json:"started_at,omitempty"`
	EndedAt   *time.Time `json:"ended_at,omitempty"`
	UpdatedAt time.Time  `json:"updated_at"`

	Events []Event `gorm:"-" json:"history,omitempty"`
}

// TableName is the table of connector jobs.
func (Job) TableName() string { return "connector_jobs" }

// NoChange reports whether the job completed without changing anything.
// (A value receiver, so that templates call it on the jobs they range over.)
func (j Job) NoChange() bool { return j.Status == JobCompleted && j.Unchanged }

// Outcome is the job's status, or JobNoChange for a completed job that
// changed nothing.
func (j Job) Outcome() string {
	if j.NoChange() {
		return JobNoChange
	}
	return j.Status
}

// Terminal reports whether the job will not run again by itself.
func (j *Job) Terminal() bool {
	return j.Status == JobCompleted || j.Status == JobFailed || j.Status == JobCanceled
}

// Event is one status change of a job: its execution history.
type Event struct {
	ID      int64     `gorm:"primaryKey" json:"-"`
	JobID   string    `json:"-"`
	At      time.Time `json:"at"`
	Status  string    `json:"status"`
	Attempt int       `json:"attempt"`
	Message string    `json:"message"`
}

// TableName is the table of job events.
func (Event) TableName() string { return "job_events" }

// OutcomeCount is how many jobs of a run have one outcome (a status, or
// JobNoChange).
type OutcomeCount struct {
	Outcome string
	N       int
}

// outcomeOrder is the order a run's summary counts its jobs in.
var outcomeOrder = []string{JobCompleted, JobNoChange, JobFailed, JobCanceled, JobScheduled, JobPending, JobRunning}

// CountOutcomes counts jobs by outcome: the completed ones that changed
// something apart from those that changed nothing, then the other
// statuses; outcomes without jobs are left out.
func CountOutcomes(jobs []Job) []OutcomeCount {
	n := map[string]int{}
	for i := range jobs {
		n[jobs[i].Outcome()]++
	}
	var out []OutcomeCount
	for _, o := range outcomeOrder {
		if n[o] > 0 {
			out = append(out, OutcomeCount{Outcome: o, N: n[o]})
		}
	}
	return out
}
