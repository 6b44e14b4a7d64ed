package migrations_test

import (
	"context"
	"database/sql"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/provisor/provisor/access"
	"github.com/provisor/provisor/app/apptest"
	"github.com/provisor/provisor/audit"
	"github.com/provisor/provisor/database/dbtest"
	"github.com/provisor/provisor/requests"
)

// The frozen databases in testdata were made by the first version's
// migrations (001) and hold a little of everything that version kept: two
// users, an API client, identities (one imported), a workgroup, a built-in
// directory with an entitlement, an account with its membership, a
// scheduled task made by the demo data, a completed run of it started by
// the scheduler with its job and history, an audit event. They are dumps
// (pg_dump --inserts, sqlite3 .dump), kept as they were made: the test
// upgrades what an installation of that version holds, not a database
// today's migration files rebuild.
const frozenRun = "80000000-0000-4000-8000-000000000001"

func loadFrozen(t *testing.T, dialect, databaseURL, sqlitePath string) {
	t.Helper()
	dump, err := os.ReadFile("testdata/frozen-001." + dialect + ".sql")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if dialect == "postgres" {
		// A connection of its own: the dump empties its search_path.
		c, err := pgx.Connect(ctx, databaseURL)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, string(dump)); err != nil {
			t.Fatalf("load the frozen database: %v", err)
		}
		return
	}
	db, err := sql.Open("sqlite", sqlitePath)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, string(dump)); err != nil {
		t.Fatalf("load the frozen database: %v", err)
	}
}

// A database of the first version upgrades to this one with everything it
// held, read back through the services, and the upgraded installation
// runs its task again.
func TestFrozenDatabaseUpgrades(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect string) {
		t.Parallel()
		b := apptest.New(t, dialect, &apptest.Options{Prepare: func(url, path string) { loadFrozen(t, dialect, url, path) }})
		ctx := b.Ctx

		task, err := b.Tasks.ByName(ctx, "Onboard Alice")
		if err != nil {
			t.Fatalf("the task after the upgrade: %v", err)
		}
		if task.CreatedBy != audit.ActorDemo || task.Cron != "0 22 * * *" || task.Timezone != "Europe/Paris" || !task.ScheduleEnabled ||
			len(task.Request.Entitlements) != 1 || task.Request.Justification != "New hire" || !task.Notify.Enabled || task.ApprovalID != nil {
			t.Errorf("task after the upgrade: %+v", task)
		}
		run, err := b.Requests.GetInstance(ctx, frozenRun)
		if err != nil {
			t.Fatal(err)
		}
		if run.Status != requests.InstanceCompleted || run.TriggeredBy != audit.ActorScheduler || len(run.Jobs) != 1 ||
			len(run.Jobs[0].Events) != 3 || run.JobsCompleted != 1 {
			t.Errorf("run after the upgrade: %s, by %s, %d completed", apptest.Describe(run), run.TriggeredBy, run.JobsCompleted)
		}
		for name, role := range map[string]string{"admin": access.RoleAdmin, "alice": access.RoleRequester} {
			u, err := b.Access.UserByUsername(ctx, name)
			if err != nil || u.Role != role || u.Disabled {
				t.Errorf("user %s after the upgrade: %+v %v", name, u, err)
			}
		}
		bob, err := b.Identities.IdentityByUsername(ctx, "bob")
		if err != nil || bob.SourceConnectorID == nil || *bob.SourceConnectorID != task.ConnectorID {
			t.Errorf("an imported identity keeps its connector: %+v %v", bob, err)
		}
		clients, err := b.Access.ListClients(ctx)
		if err != nil || len(clients) != 1 || clients[0].CreatedBy != audit.ActorDemo {
			t.Errorf("API clients after the upgrade: %+v %v", clients, err)
		}

		// The upgraded installation works: the task runs again (the
		// membership is there already).
		again, err := b.Tasks.Trigger(ctx, task.ID, requests.TriggerManual, "admin")
		if err != nil {
			t.Fatal(err)
		}
		if done := b.Wait(t, again.ID, 30*time.Second, func(i *requests.Instance) bool { return requests.Final(i.Status) }); done.Status != requests.InstanceCompleted {
			t.Errorf("a run after the upgrade: %s", apptest.Describe(done))
		}
	})
}
