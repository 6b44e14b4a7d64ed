package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/provisor/provisor/app"
	"github.com/provisor/provisor/audit"
	"github.com/provisor/provisor/connectors"
	"github.com/provisor/provisor/connectors/builtin"
	"github.com/provisor/provisor/connectors/configured"
	"github.com/provisor/provisor/identities"
	"github.com/provisor/provisor/requests"
	"github.com/provisor/provisor/tasks"
)

// Job status codes of the seed plan; jobStatusNames maps them to the
// database's names.
const (
	sCompleted uint8 = iota
	sFailed
	sCanceled
	sScheduled
	sRunning
	sPending
)

var jobStatusNames = [...]string{requests.JobCompleted, requests.JobFailed, requests.JobCanceled,
	requests.JobScheduled, requests.JobRunning, requests.JobPending}

// seedTarget is one connector the seeded runs went to.
type seedTarget struct {
	rec   *configured.Record
	kinds map[connectors.Operation]string
	ents  []*identities.Entitlement
}

// seedWorld is what the seeded rows point at: real connectors,
// entitlements, identities and workgroups made through the services.
type seedWorld struct {
	targets []seedTarget
	people  []*identities.Identity
	groups  []*identities.Workgroup
}

// instPlan is one seeded request instance, small enough that 100,000 of
// them stay in memory; its jobs are drawn again from seed when copied.
type instPlan struct {
	id        uuid.UUID
	seed      uint64
	typ       requests.Type
	target    uint8
	person    int32 // index into people, or -1 for a workgroup run
	group     int16
	trigger   string
	priority  requests.Priority
	statuses  []uint8 // one per job, in seq order
	created   time.Time
	updated   time.Time
	expiresAt *time.Time
	timeBound bool
}

// instance statuses as rolled up from job status counts (the rule of
// requests.Service's roll-up).
func rollUp(c *[6]int) string {
	done := c[sCompleted] + c[sFailed] + c[sCanceled]
	switch {
	case c[sRunning] > 0 || (c[sPending] > 0 && done > 0):
		return requests.InstanceRunning
	case c[sPending] > 0:
		return requests.InstancePending
	case c[sFailed] > 0:
		return requests.InstanceFailed
	case c[sScheduled] > 0:
		return requests.InstanceActive
	case c[sCanceled] > 0:
		return requests.InstanceCanceled
	}
	return requests.InstanceCompleted
}

func (p *instPlan) counts() [6]int {
	var c [6]int
	for _, s := range p.statuses {
		c[s]++
	}
	return c
}

// seedPortal fills the database of a with the portal bench's data: a few
// connectors, identities and workgroups through the services, then
// instances request instances, jobs connector jobs and nTasks tasks
// written directly with COPY, and finally VACUUM ANALYZE.
func seedPortal(ctx context.Context, a *app.App, instances, jobs, nTasks int, progress func(string, ...any)) error {
	w, err := seedServices(ctx, a)
	if err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(20261123, 1))
	plans := planInstances(rng, w, instances, jobs)
	pool := a.DB.Pool
	if pool == nil {
		return fmt.Errorf("seed: the portal bench needs PostgreSQL")
	}
	counters, err := hasCounterColumns(ctx, pool)
	if err != nil {
		return err
	}
	start := time.Now()
	n, err := pool.CopyFrom(ctx, pgx.Identifier{"request_instances"}, instanceColumns(counters), instanceRows(w, plans, counters))
	if err != nil {
		return fmt.Errorf("seed: copy request_instances: %w", err)
	}
	progress("copied %d request instances in %s", n, time.Since(start).Round(time.Millisecond))
	start = time.Now()
	// Two COPY streams, one per core, each with half of the instances.
	half := len(plans) / 2
	errc := make(chan error, 2)
	var copied [2]int64
	for i, part := range [][]instPlan{plans[:half], plans[half:]} {
		go func() {
			var err error
			copied[i], err = pool.CopyFrom(ctx, pgx.Identifier{"connector_jobs"}, jobColumns, jobRows(w, part))
			errc <- err
		}()
	}
	for range 2 {
		if e := <-errc; e != nil && err == nil {
			err = fmt.Errorf("seed: copy connector_jobs: %w", e)
		}
	}
	if err != nil {
		return err
	}
	progress("copied %d connector jobs in %s", copied[0]+copied[1], time.Since(start).Round(time.Millisecond))
	start = time.Now()
	if n, err = pool.CopyFrom(ctx, pgx.Identifier{"tasks"}, taskColumns, taskRows(rng, w, plans, nTasks)); err != nil {
		return fmt.Errorf("seed: copy tasks: %w", err)
	}
	progress("copied %d tasks in %s", n, time.Since(start).Round(time.Millisecond))
	start = time.Now()
	// What autovacuum would have done to tables this old: statistics for
	// the planner and the visibility map that index-only scans rely on.
	for _, t := range []string{"request_instances", "connector_jobs", "tasks"} {
		if _, err := pool.Exec(ctx, "VACUUM (ANALYZE) "+t); err != nil {
			return fmt.Errorf("seed: vacuum analyze %s: %w", t, err)
		}
	}
	progress("vacuum analyze in %s", time.Since(start).Round(time.Millisecond))
	return nil
}

// hasCounterColumns reports whether request_instances keeps per-status job
// counters (migration 005), which the seed then fills.
func hasCounterColumns(ctx context.Context, pool *pgxpool.Pool) (bool, error) {
	var n int
	err := pool.QueryRow(ctx, `SELECT count(*) FROM information_schema.columns
		WHERE table_schema = current_schema() AND table_name = 'request_instances' AND column_name = 'jobs_pending'`).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("seed: look for job counters: %w", err)
	}
	return n == 1, nil
}

// seedServices makes the connectors, entitlements, identities and
// workgroups the seeded rows refer to, as an admin would.
func seedServices(ctx context.Context, a *app.App) (*seedWorld, error) {
	w := &seedWorld{}
	for _, name := range []string{"Corp Directory", "Partner Directory"} {
		rec, err := a.Connectors.Create(ctx, configured.Input{Name: name, Type: builtin.TypeName, Description: "Seeded by the portal bench"})
		if err != nil {
			return nil, fmt.Errorf("seed: connector: %w", err)
		}
		conn, err := a.Connectors.Open(ctx, rec)
		if err != nil {
			return nil, fmt.Errorf("seed: open connector: %w", err)
		}
		t := seedTarget{rec: rec, kinds: map[connectors.Operation]string{}}
		for _, op := range []connectors.Operation{connectors.OpCreateAccount, connectors.OpDeleteAccount, connectors.OpEnableAccount,
			connectors.OpDisableAccount, connectors.OpGrant, connectors.OpRevoke} {
			t.kinds[op] = conn.Kind(op)
		}
		for i := range 20 {
			kind := "group"
			if i%5 == 4 {
				kind = "role"
			}
			e, err := a.Identities.CreateEntitlement(ctx, rec.ID, identities.EntitlementInput{Name: fmt.Sprintf("%s %02d", groupNames[i%len(groupNames)], i+1), Kind: kind})
			if err != nil {
				return nil, fmt.Errorf("seed: entitlement: %w", err)
			}
			t.ents = append(t.ents, e)
		}
		w.targets = append(w.targets, t)
	}
	for i := range 200 {
		first, last := firstNames[i%len(firstNames)], lastNames[(i/len(firstNames)+i)%len(lastNames)]
		user := fmt.Sprintf("%s.%s%d", strings.ToLower(first), strings.ToLower(last), i)
		id, err := a.Identities.CreateIdentity(ctx, identities.IdentityInput{Username: user, DisplayName: first + " " + last, Email: user + "@example.test"})
		if err != nil {
			return nil, fmt.Errorf("seed: identity: %w", err)
		}
		w.people = append(w.people, id)
	}
	for i, name := range []string{"Finance", "Contractors", "Engineering", "Sales", "Support", "Legal", "Marketing", "Interns"} {
		var members []string
		for k := i; k < len(w.people); k += 16 {
			members = append(members, w.people[k].ID)
		}
		wg, err := a.Identities.CreateWorkgroup(ctx, identities.WorkgroupInput{Name: name, Members: members})
		if err != nil {
			return nil, fmt.Errorf("seed: workgroup: %w", err)
		}
		w.groups = append(w.groups, wg)
	}
	return w, nil
}

var (
	groupNames = []string{"VPN", "Wiki", "Finance Reports", "Payroll", "CRM", "Jira", "Git", "Build", "HR Portal", "Travel"}
	firstNames = []string{"Alice", "Bob", "Carol", "Dan", "Erin", "Frank", "Grace", "Heidi", "Ivan", "Judy", "Mallory", "Niaj", "Olivia", "Peggy", "Rupert", "Sybil"}
	lastNames  = []string{"Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand", "Leroy", "Moreau", "Simon", "Laurent", "Lefebvre"}
)

// planInstances draws n instances with jobs connector jobs in all: 1 to 30
// per instance (10 on average), most runs completed, some failed, canceled,
// time-bound (active), and the most recent ones still pending or running;
// created over the last six months.
func planInstances(rng *rand.Rand, w *seedWorld, n, jobs int) []instPlan {
	sizes := make([]int, n)
	sum := 0
	for i := range sizes {
		switch r := rng.Float64(); {
		case r < 0.25:
			sizes[i] = 1
		case r < 0.95:
			sizes[i] = 2 + rng.IntN(20)
		default:
			sizes[i] = 22 + rng.IntN(9)
		}
		sum += sizes[i]
	}
	for sum < jobs { // exactly jobs in all, each size within 1..30
		if i := rng.IntN(n); sizes[i] < 30 {
			sizes[i]++
			sum++
		}
	}
	for sum > jobs {
		if i := rng.IntN(n); sizes[i] > 1 {
			sizes[i]--
			sum--
		}
	}
	now := time.Now().UTC()
	const span = 180 * 24 * time.Hour
	plans := make([]instPlan, n)
	triggers := []string{requests.TriggerSubmission, requests.TriggerManual, requests.TriggerManual, requests.TriggerSchedule,
		requests.TriggerSchedule, requests.TriggerSchedule, requests.TriggerAPI, requests.TriggerCLI}
	priorities := []requests.Priority{requests.Low, requests.Normal, requests.Normal, requests.Normal, requests.High, requests.Critical}
	for i := range plans {
		p := &plans[i]
		size := sizes[i]
		p.id = uuid.New()
		p.seed = rng.Uint64()
		p.target = uint8(rng.IntN(len(w.targets)))
		p.trigger = triggers[rng.IntN(len(triggers))]
		p.priority = priorities[rng.IntN(len(priorities))]
		p.person, p.group = int32(rng.IntN(len(w.people))), -1
		switch {
		case size == 1:
			p.typ = []requests.Type{requests.LockAccount, requests.UnlockAccount, requests.DeleteAccount, requests.AddEntitlements, requests.RemoveEntitlements}[rng.IntN(5)]
		case size > 12:
			p.typ = requests.AddEntitlements // a workgroup's members each get the groups
			p.person, p.group = -1, int16(rng.IntN(len(w.groups)))
		case rng.IntN(3) == 0:
			p.typ = requests.CreateAccount
		default:
			p.typ = []requests.Type{requests.AddEntitlements, requests.AddEntitlements, requests.RemoveEntitlements}[rng.IntN(3)]
		}
		p.timeBound = size >= 2 && p.typ == requests.AddEntitlements && rng.IntN(5) == 0
		p.statuses = make([]uint8, size)
		age := time.Duration(rng.Int64N(int64(span)))
		outcome := rng.Float64()
		switch {
		case outcome < 0.01: // pending: the last hours
			age = time.Duration(rng.Int64N(int64(3 * time.Hour)))
			for k := range p.statuses {
				p.statuses[k] = sPending
			}
		case outcome < 0.02: // running
			age = time.Duration(rng.Int64N(int64(3 * time.Hour)))
			cut := rng.IntN(size)
			for k := range p.statuses {
				switch {
				case k < cut:
					p.statuses[k] = sCompleted
				case k == cut:
					p.statuses[k] = sRunning
				default:
					p.statuses[k] = sPending
				}
			}
		case outcome < 0.08: // failed: one job, and maybe the ones after it were not run
			at := rng.IntN(size)
			dependents := rng.IntN(2) == 0
			for k := range p.statuses {
				switch {
				case k == at:
					p.statuses[k] = sFailed
				case k > at && dependents:
					p.statuses[k] = sCanceled
				}
			}
		case outcome < 0.11: // canceled by an admin before the last jobs ran
			cut := rng.IntN(size)
			for k := cut; k < size; k++ {
				p.statuses[k] = sCanceled
			}
		}
		if p.timeBound {
			// The second half of a time-bound run are its revocations:
			// scheduled while the access lasts, run once it expired.
			exp := now.Add(-age).Add(time.Duration(1+rng.IntN(60)) * 24 * time.Hour)
			p.expiresAt = &exp
			for k := size / 2; k < size; k++ {
				if exp.After(now) && p.statuses[k] == sCompleted {
					p.statuses[k] = sScheduled
				}
			}
		}
		p.created = now.Add(-age)
		p.updated = p.created.Add(time.Duration(1+rng.IntN(600)) * time.Second)
		if p.updated.After(now) {
			p.updated = now
		}
		if p.expiresAt != nil && p.expiresAt.Before(now) {
			p.updated = *p.expiresAt
		}
	}
	return plans
}

func instanceColumns(counters bool) []string {
	cols := []string{"id", "task_id", "task_name", "request", "type", "beneficiary_type", "beneficiary_id", "beneficiary_name",
		"connector_id", "trigger", "triggered_by", "priority", "status", "jobs_total", "jobs_done", "expires_at",
		"created_at", "updated_at", "ended_at"}
	if counters {
		for _, s := range jobStatusNames {
			cols = append(cols, "jobs_"+s)
		}
	}
	return cols
}

// beneficiary returns a plan's beneficiary type, id and name.
func (w *seedWorld) beneficiary(p *instPlan) (string, string, string) {
	if p.group >= 0 {
		g := w.groups[p.group]
		return requests.BeneficiaryWorkgroup, g.ID, g.Name
	}
	id := w.people[p.person]
	return requests.BeneficiaryIdentity, id.ID, id.DisplayName
}

func instanceRows(w *seedWorld, plans []instPlan, counters bool) pgx.CopyFromSource {
	i := -1
	return pgx.CopyFromFunc(func() ([]any, error) {
		i++
		if i >= len(plans) {
			return nil, nil
		}
		p := &plans[i]
		t := w.targets[p.target]
		bt, bid, bname := w.beneficiary(p)
		r := requests.Request{Type: p.typ, BeneficiaryType: bt, BeneficiaryID: bid, ConnectorID: t.rec.ID,
			Justification: "Access needed for the quarterly close", Priority: p.priority}
		if p.typ == requests.AddEntitlements || p.typ == requests.RemoveEntitlements || p.typ == requests.CreateAccount {
			for k := 0; k < min(len(p.statuses), 3); k++ {
				r.Entitlements = append(r.Entitlements, t.ents[k].ID)
			}
		}
		if p.timeBound {
			r.Duration = "30d"
		}
		req, err := json.Marshal(r)
		if err != nil {
			return nil, err
		}
		c := p.counts()
		status := rollUp(&c)
		var ended *time.Time
		if requests.Final(status) {
			ended = &p.updated
		}
		by := "admin"
		if p.trigger == requests.TriggerSchedule {
			by = audit.ActorScheduler
		} else if p.trigger == requests.TriggerSubmission {
			by = w.people[(int(p.seed)&0xffff)%len(w.people)].Username
		}
		row := []any{p.id, nil, "", string(req), string(p.typ), bt, bid, bname, t.rec.ID, p.trigger, by, string(p.priority),
			status, len(p.statuses), c[sCompleted] + c[sFailed] + c[sCanceled], p.expiresAt, p.created, p.updated, ended}
		if counters {
			for _, s := range []uint8{sCompleted, sFailed, sCanceled, sScheduled, sRunning, sPending} {
				row = append(row, c[s])
			}
		}
		return row, nil
	})
}

var jobColumns = []string{"id", "instance_id", "seq", "connector_id", "connector_name", "connector_type", "identity_id",
	"username", "entitlement_id", "entitlement_name", "operation", "kind", "status", "priority", "depends_on",
	"revocation", "run_at", "attempts", "queue_job_id", "message", "created_at", "started_at", "ended_at", "updated_at"}

// jobRows draws the jobs of plans again from each plan's seed.
func jobRows(w *seedWorld, plans []instPlan) pgx.CopyFromSource {
	i, k := 0, 0
	var rng *rand.Rand
	var first uuid.UUID
	return pgx.CopyFromFunc(func() ([]any, error) {
		for i < len(plans) && k >= len(plans[i].statuses) {
			i, k = i+1, 0
		}
		if i >= len(plans) {
			return nil, nil
		}
		p := &plans[i]
		if k == 0 {
			rng = rand.New(rand.NewPCG(p.seed, 2))
		}
		t := w.targets[p.target]
		size := len(p.statuses)
		status := p.statuses[k]
		// Who: the identity, or the members of the workgroup in turn.
		var person *identities.Identity
		if p.group >= 0 {
			person = w.people[(int(p.group)+16*(k%13))%len(w.people)]
		} else {
			person = w.people[p.person]
		}
		op := connectors.OpGrant
		var ent *identities.Entitlement
		var dependsOn any
		revocation := false
		var runAt *time.Time
		switch p.typ {
		case requests.LockAccount:
			op = connectors.OpDisableAccount
		case requests.UnlockAccount:
			op = connectors.OpEnableAccount
		case requests.DeleteAccount:
			op = connectors.OpDeleteAccount
		case requests.RemoveEntitlements:
			op, ent = connectors.OpRevoke, t.ents[rng.IntN(len(t.ents))]
		case requests.CreateAccount:
			if k == 0 {
				op = connectors.OpCreateAccount
			} else {
				ent, dependsOn = t.ents[rng.IntN(len(t.ents))], first
			}
		default:
			ent = t.ents[rng.IntN(len(t.ents))]
			if p.timeBound && k >= size/2 {
				op, revocation, runAt = connectors.OpRevoke, true, p.expiresAt
			}
		}
		id := uuid.New()
		if k == 0 {
			first = id
		}
		at := p.created.Add(time.Duration(k) * 150 * time.Millisecond)
		var started, ended *time.Time
		attempts := 0
		message := "queued"
		switch status {
		case sCompleted, sFailed:
			s, e := at.Add(20*time.Millisecond), at.Add(time.Duration(40+rng.IntN(400))*time.Millisecond)
			started, ended, attempts = &s, &e, 1
			message = "done"
			if status == sFailed {
				attempts = 1 + rng.IntN(3)
				message = "insufficient rights on the target group"
			}
		case sCanceled:
			e := at.Add(time.Second)
			ended = &e
			message = "canceled by admin"
		case sRunning:
			s := at.Add(time.Second)
			started, attempts, message = &s, 1, "running"
		case sScheduled:
			message = "revocation scheduled for " + runAt.Format(time.RFC3339)
		}
		if revocation && status == sCompleted {
			s, e := runAt.Add(time.Second), runAt.Add(2*time.Second)
			started, ended = &s, &e
		}
		updated := at
		if ended != nil {
			updated = *ended
		}
		var entID any
		entName := ""
		if ent != nil {
			entID, entName = ent.ID, ent.Name
		}
		row := []any{id, p.id, k + 1, t.rec.ID, t.rec.Name, t.rec.Type, person.ID, person.Username, entID, entName,
			string(op), t.kinds[op], jobStatusNames[status], string(p.priority), dependsOn, revocation, runAt, attempts, nil,
			message, at, started, ended, updated}
		k++
		return row, nil
	})
}

var taskColumns = []string{"id", "name", "description", "request", "type", "beneficiary_type", "beneficiary_id",
	"beneficiary_name", "connector_id", "status", "cron", "timezone", "schedule_enabled", "notify", "last_result",
	"last_run_at", "last_instance_id", "created_by", "created_at", "updated_at"}

// taskRows draws n tasks: mostly idle, some disabled, a few triggered, some
// on a schedule (whose scheduler is not running here), each pointing at a
// seeded run as its last one.
func taskRows(rng *rand.Rand, w *seedWorld, plans []instPlan, n int) pgx.CopyFromSource {
	verbs := []string{"Onboard", "Offboard", "Grant", "Quarterly access", "Lock", "Renew", "Audit", "Finance reports for"}
	i := -1
	notify := `{"enabled":true,"recipients":["requester"],"when":"failure"}`
	return pgx.CopyFromFunc(func() ([]any, error) {
		i++
		if i >= n {
			return nil, nil
		}
		p := &plans[rng.IntN(len(plans))]
		t := w.targets[p.target]
		bt, bid, bname := w.beneficiary(p)
		r := requests.Request{Type: p.typ, BeneficiaryType: bt, BeneficiaryID: bid, ConnectorID: t.rec.ID,
			Justification: "Standing task", Priority: p.priority}
		if slices.Contains([]requests.Type{requests.AddEntitlements, requests.RemoveEntitlements, requests.CreateAccount}, p.typ) {
			r.Entitlements = []string{t.ents[rng.IntN(len(t.ents))].ID}
		}
		req, err := json.Marshal(r)
		if err != nil {
			return nil, err
		}
		status, cron, scheduled := tasks.StatusIdle, "", false
		switch x := rng.IntN(100); {
		case x < 2:
			status = tasks.StatusTriggered
		case x < 15:
			status = tasks.StatusDisabled
		case x < 20:
			cron, scheduled = fmt.Sprintf("%d %d * * *", rng.IntN(60), rng.IntN(24)), true
		}
		c := p.counts()
		result := rollUp(&c)
		created := p.created.Add(-time.Duration(rng.IntN(90*24)) * time.Hour)
		id := p.id
		return []any{uuid.New(), fmt.Sprintf("%s %s %05d", verbs[i%len(verbs)], bname, i+1), "Seeded by the portal bench", string(req),
			string(p.typ), bt, bid, bname, t.rec.ID, status, cron, "Europe/Paris", scheduled, notify, result, p.updated, id,
			"admin", created, p.updated}, nil
	})
}
