package migrations_test

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/provisor/provisor/database"
	"github.com/provisor/provisor/database/dbtest"
	"github.com/provisor/provisor/migrations"
)

func tables(t *testing.T, db *database.DB) int {
	t.Helper()
	var n int
	q := `SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public' AND table_name IN ('tasks', 'connector_jobs', 'audit_events')`
	if db.Dialect == database.SQLite {
		q = `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN ('tasks', 'connector_jobs', 'audit_events')`
	}
	if err := db.SQL.QueryRow(q).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// downBefore reverses every migration from version on, leaving db as the
// one before version made it.
func downBefore(t *testing.T, db *database.DB, dialect string, version int) {
	t.Helper()
	all, err := migrations.List(dialect)
	if err != nil {
		t.Fatal(err)
	}
	steps := 0
	for _, m := range all {
		if m.Version >= version {
			steps++
		}
	}
	if ran, err := migrations.Down(context.Background(), db.SQL, dialect, steps); err != nil || len(ran) != steps || ran[steps-1] != version {
		t.Fatalf("down to before %03d: %v %v", version, ran, err)
	}
}

// Up, down and up again leave the same schema; status lists what ran.
func TestUpDownUp(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect string) {
		t.Parallel()
		ctx := context.Background()
		dbURL, path := dbtest.Location(t, dialect)
		db, err := database.Open(ctx, dbURL, path, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		all, err := migrations.List(dialect)
		if err != nil || len(all) == 0 {
			t.Fatalf("list: %v %v", all, err)
		}
		ran, err := migrations.Up(ctx, db.SQL, dialect)
		if err != nil || len(ran) != len(all) || tables(t, db) != 3 {
			t.Fatalf("up: %v %v", ran, err)
		}
		if ran, err := migrations.Up(ctx, db.SQL, dialect); err != nil || len(ran) != 0 {
			t.Fatalf("second up: %v %v", ran, err)
		}
		st, _ := migrations.Status(ctx, db.SQL)
		if len(st) != len(all) || st[0].AppliedAt.IsZero() {
			t.Errorf("status: %+v", st)
		}
		if _, err := migrations.Down(ctx, db.SQL, dialect, len(all)); err != nil || tables(t, db) != 0 {
			t.Fatalf("down: %v, %d tables left", err, tables(t, db))
		}
		if _, err := migrations.Up(ctx, db.SQL, dialect); err != nil || tables(t, db) != 3 {
			t.Fatalf("up again: %v", err)
		}
		// The audit trail refuses changes.
		if _, err := db.SQL.Exec(`INSERT INTO audit_events (at, actor, action, details) VALUES ('2026-01-01T00:00:00Z', 'a', 'b', '{}')`); err != nil {
			t.Fatal(err)
		}
		if _, err := db.SQL.Exec(`UPDATE audit_events SET actor = 'x'`); err == nil {
			t.Error("audit_events accepted an update")
		}
		if _, err := db.SQL.Exec(`DELETE FROM audit_events`); err == nil {
			t.Error("audit_events accepted a delete")
		}
	})
}

// A database migrated by a newer Provisor is refused.
func TestNewerDatabaseRefused(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := dbtest.Open(t, database.SQLite)
	if _, err := db.SQL.Exec(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (999, 'future', '2030-01-01T00:00:00Z')`); err != nil {
		t.Fatal(err)
	}
	if _, err := migrations.Up(ctx, db.SQL, database.SQLite); err == nil {
		t.Fatal("a newer database was accepted")
	}
}

// Processes that start together on one PostgreSQL migrate once.
func TestConcurrentStartsMigrateOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := dbtest.NewPostgres(t)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			db, err := database.Open(ctx, url, "", nil)
			if err != nil {
				errs[i] = err
				return
			}
			defer db.Close()
			errs[i] = db.Migrate(ctx)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("process %d: %v", i, err)
		}
	}
}

// Down from 007 gives every message that shares its run's body a copy of
// it, as 002 keeps them.
func TestSharedBodiesDown(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect string) {
		t.Parallel()
		ctx := context.Background()
		db := dbtest.Open(t, dialect)
		const inst, first, second = "7b0e3c1a-0000-4000-8000-000000000001", "7b0e3c1a-0000-4000-8000-000000000002", "7b0e3c1a-0000-4000-8000-000000000003"
		now := "2026-11-24T00:00:00Z"
		all, err := migrations.List(dialect)
		if err != nil {
			t.Fatal(err)
		}
		// The rows are written as 012 keeps them (013 gave the outbox a key
		// of its own).
		later, steps := 0, 0
		for _, m := range all {
			if m.Version > 12 {
				later++
			}
			if m.Version >= 7 && m.Version <= 12 {
				steps++
			}
		}
		if _, err := migrations.Down(ctx, db.SQL, dialect, later); err != nil {
			t.Fatalf("down to 012: %v", err)
		}
		for _, q := range []struct {
			sql  string
			args []any
		}{
			{`INSERT INTO request_instances (id, request, type, beneficiary_type, beneficiary_id, beneficiary_name, connector_id, trigger, priority,
				status, created_at, updated_at) VALUES ($1, '{}', 'lock_account', 'identity', $1, 'Alice', $1, 'manual', 'normal', 'completed', $2, $2)`, []any{inst, now}},
			{`INSERT INTO notifications (id, instance_id, recipient_type, recipient, address, subject, message_id, status, created_at, queued_at, updated_at, body_id)
				VALUES ($1, $2, 'identity', 'A', 'a@example.test', 's', 'm1', 'sent', $3, $3, $3, NULL),
				       ($4, $2, 'identity', 'B', 'b@example.test', 's', 'm2', 'sent', $3, $3, $3, $1)`, []any{first, inst, now, second}},
			{`INSERT INTO notification_bodies (notification_id, body_text, body_html) VALUES ($1, 'text', '<p>html</p>')`, []any{first}},
		} {
			if _, err := db.SQL.ExecContext(ctx, q.sql, q.args...); err != nil {
				t.Fatal(err)
			}
		}
		if ran, err := migrations.Down(ctx, db.SQL, dialect, steps); err != nil || len(ran) != steps || ran[steps-1] != 7 {
			t.Fatalf("down: %v %v", ran, err)
		}
		var n int
		if err := db.SQL.QueryRowContext(ctx, `SELECT count(*) FROM notification_bodies WHERE notification_id IN ($1, $2) AND body_text = 'text'`, first, second).Scan(&n); err != nil || n != 2 {
			t.Errorf("%d bodies after down (%v), want 2", n, err)
		}
		if _, err := migrations.Up(ctx, db.SQL, dialect); err != nil {
			t.Fatalf("up again: %v", err)
		}
	})
}

// Up to 009 gives the identities a connector imported that connector's id,
// found by its name, and leaves local ones without.
func TestIdentitySourceUp(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect string) {
		t.Parallel()
		ctx := context.Background()
		db := dbtest.Open(t, dialect)
		downBefore(t, db, dialect, 9)
		const conn, imported, local, gone = "9c1d0e2f-0000-4000-8000-000000000001", "9c1d0e2f-0000-4000-8000-000000000002",
			"9c1d0e2f-0000-4000-8000-000000000003", "9c1d0e2f-0000-4000-8000-000000000004"
		now := "2026-11-24T00:00:00Z"
		for _, q := range []struct {
			sql  string
			args []any
		}{
			{`INSERT INTO connectors (id, name, type, created_at, updated_at) VALUES ($1, 'Corp', 'ldap', $2, $2)`, []any{conn, now}},
			{`INSERT INTO identities (id, username, source, external_id, created_at, updated_at) VALUES
				($1, 'alice', 'Corp', 'E100', $4, $4), ($2, 'bob', 'local', '', $4, $4), ($3, 'carol', 'Old', 'E102', $4, $4)`,
				[]any{imported, local, gone, now}},
		} {
			if _, err := db.SQL.ExecContext(ctx, q.sql, q.args...); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := migrations.Up(ctx, db.SQL, dialect); err != nil {
			t.Fatalf("up: %v", err)
		}
		want := map[string]string{imported: conn, local: "", gone: ""}
		for id, w := range want {
			var got *string
			if err := db.SQL.QueryRowContext(ctx, `SELECT source_connector_id FROM identities WHERE id = $1`, id).Scan(&got); err != nil {
				t.Fatal(err)
			}
			if (got == nil) != (w == "") || (got != nil && *got != w) {
				t.Errorf("identity %s: source_connector_id %v, want %q", id, got, w)
			}
		}
	})
}

// Up to 010 takes each user's last sign-in from the audit trail, and
// leaves users who never signed in without one.
func TestAccessActivityUp(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect string) {
		t.Parallel()
		ctx := context.Background()
		db := dbtest.Open(t, dialect)
		downBefore(t, db, dialect, 10)
		const signedIn, never = "a0c1d0e2-0000-4000-8000-000000000001", "a0c1d0e2-0000-4000-8000-000000000002"
		now := "2026-11-24T00:00:00Z"
		for _, q := range []struct {
			sql  string
			args []any
		}{
			{`INSERT INTO users (id, username, password_hash, role, created_at, updated_at) VALUES
				($1, 'rita', 'x', 'requester', $3, $3), ($2, 'nina', 'x', 'requester', $3, $3)`, []any{signedIn, never, now}},
			{`INSERT INTO audit_events (at, actor, action, target_type, target_id, details) VALUES
				('2026-11-20T08:00:00Z', 'rita', 'user.sign_in', 'user', $1, '{}'),
				('2026-11-22T09:30:00Z', 'rita', 'user.sign_in', 'user', $1, '{}'),
				('2026-11-23T10:00:00Z', 'nina', 'user.sign_in_failed', 'user', $2, '{}')`, []any{signedIn, never}},
		} {
			if _, err := db.SQL.ExecContext(ctx, q.sql, q.args...); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := migrations.Up(ctx, db.SQL, dialect); err != nil {
			t.Fatalf("up: %v", err)
		}
		for id, want := range map[string]string{signedIn: "2026-11-22", never: ""} {
			var got *string
			q := `SELECT CAST(last_sign_in_at AS text) FROM users WHERE id = $1`
			if err := db.SQL.QueryRowContext(ctx, q, id).Scan(&got); err != nil {
				t.Fatal(err)
			}
			if (got == nil) != (want == "") || (got != nil && !strings.HasPrefix(*got, want)) {
				t.Errorf("user %s: last_sign_in_at %v, want %q", id, got, want)
			}
		}
	})
}

// Up to 012 moves the rows of internal actors to forms no username can
// take, leaves a real user's rows alone, and disables users whose name has
// a colon; down gives the old names back.
func TestInternalActorsUp(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect string) {
		t.Parallel()
		ctx := context.Background()
		db := dbtest.Open(t, dialect)
		downBefore(t, db, dialect, 12)
		const conn, importTask, userTask, scheduled, manual = "12a0c0de-0000-4000-8000-000000000001", "12a0c0de-0000-4000-8000-000000000002",
			"12a0c0de-0000-4000-8000-000000000003", "12a0c0de-0000-4000-8000-000000000004", "12a0c0de-0000-4000-8000-000000000005"
		const sysUser, colonUser = "12a0c0de-0000-4000-8000-000000000006", "12a0c0de-0000-4000-8000-000000000007"
		now := "2026-11-24T00:00:00Z"
		for _, q := range []struct {
			sql  string
			args []any
		}{
			{`INSERT INTO connectors (id, name, type, created_at, updated_at) VALUES ($1, 'Corp', 'ldap', $2, $2)`, []any{conn, now}},
			// A directory person called system signed in, and one whose name has a colon.
			{`INSERT INTO users (id, username, email, display_name, password_hash, role, created_at, updated_at) VALUES
				($1, 'system', '', 'System', '!directory:Corp', 'requester', $3, $3), ($2, 'api:Demo', '', 'X', '!directory:Corp', 'requester', $3, $3)`,
				[]any{sysUser, colonUser, now}},
			{`INSERT INTO tasks (id, name, request, type, beneficiary_type, beneficiary_id, beneficiary_name, connector_id, status, created_by, created_at, updated_at)
				VALUES ($1, 'Data Import (full) — Corp', '{}', 'data_import', 'connector', $3, 'Corp', $3, 'idle', 'system', $4, $4),
				       ($2, 'Mine', '{}', 'lock_account', 'identity', $3, 'Alice', $3, 'idle', 'system', $4, $4)`,
				[]any{importTask, userTask, conn, now}},
			{`INSERT INTO request_instances (id, request, type, beneficiary_type, beneficiary_id, beneficiary_name, connector_id, trigger, triggered_by, priority,
				status, created_at, updated_at) VALUES ($1, '{}', 'lock_account', 'identity', $3, 'Alice', $3, 'schedule', 'scheduler', 'normal', 'completed', $4, $4),
				($2, '{}', 'lock_account', 'identity', $3, 'Alice', $3, 'manual', 'system', 'normal', 'completed', $4, $4)`,
				[]any{scheduled, manual, conn, now}},
		} {
			if _, err := db.SQL.ExecContext(ctx, q.sql, q.args...); err != nil {
				t.Fatal(err)
			}
		}
		check := func(when, query, id, want string) {
			t.Helper()
			var got string
			if err := db.SQL.QueryRowContext(ctx, query, id).Scan(&got); err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Errorf("%s: %s of %s = %q, want %q", when, query, id, got, want)
			}
		}
		const taskBy, runBy = `SELECT created_by FROM tasks WHERE id = $1`, `SELECT triggered_by FROM request_instances WHERE id = $1`
		if _, err := migrations.Up(ctx, db.SQL, dialect); err != nil {
			t.Fatalf("up: %v", err)
		}
		check("up", taskBy, importTask, "system:provisor")
		check("up", taskBy, userTask, "system") // the user system's own task
		check("up", runBy, scheduled, "system:scheduler")
		check("up", runBy, manual, "system")
		for id, want := range map[string]bool{sysUser: false, colonUser: true} {
			var disabled bool
			if err := db.SQL.QueryRowContext(ctx, `SELECT disabled FROM users WHERE id = $1`, id).Scan(&disabled); err != nil {
				t.Fatal(err)
			}
			if disabled != want {
				t.Errorf("user %s disabled %v, want %v", id, disabled, want)
			}
		}
		downBefore(t, db, dialect, 12)
		check("down", taskBy, importTask, "system")
		check("down", runBy, scheduled, "scheduler")
	})
}

// Up to 017 marks the completed jobs whose message said "(no change)" as
// unchanged, and counts them on their runs; other jobs stay changed.
func TestJobOutcomesUp(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect string) {
		t.Parallel()
		ctx := context.Background()
		db := dbtest.Open(t, dialect)
		downBefore(t, db, dialect, 17)
		const run = "b0c1d0e2-0000-4000-8000-000000000001"
		const ben = "b0c1d0e2-0000-4000-8000-0000000000aa"
		now := "2026-11-24T00:00:00Z"
		if _, err := db.SQL.ExecContext(ctx, `INSERT INTO request_instances (id, request, type, beneficiary_type, beneficiary_id,
			beneficiary_name, connector_id, trigger, priority, status, created_at, updated_at)
			VALUES ($1, '{}', 'add_entitlements', 'identity', $2, 'Alice', $2, 'api', 'normal', 'completed', $3, $3)`, run, ben, now); err != nil {
			t.Fatal(err)
		}
		for i, j := range []struct{ status, message string }{
			{"completed", "alice was already a member of VPN (no change)"},
			{"completed", "alice added to Wiki"},
			{"failed", "no such group: (no change)"},
			{"completed", "account alice already exists (no change)"},
		} {
			if _, err := db.SQL.ExecContext(ctx, `INSERT INTO connector_jobs (id, instance_id, seq, connector_id, connector_name,
				connector_type, username, operation, kind, status, priority, message, created_at, updated_at)
				VALUES ($1, $2, $3, $4, 'Dir', 'internal', 'alice', 'entitlement.grant', 'Directory.AddToGroup', $5, 'normal', $6, $7, $7)`,
				"b0c1d0e2-0000-4000-8000-00000000001"+string(rune('0'+i)), run, i+1, ben, j.status, j.message, now); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := migrations.Up(ctx, db.SQL, dialect); err != nil {
			t.Fatalf("up: %v", err)
		}
		var n int
		if err := db.SQL.QueryRowContext(ctx, `SELECT jobs_unchanged FROM request_instances WHERE id = $1`, run).Scan(&n); err != nil || n != 2 {
			t.Errorf("jobs_unchanged = %d (%v), want 2", n, err)
		}
		rows, err := db.SQL.QueryContext(ctx, `SELECT seq FROM connector_jobs WHERE unchanged ORDER BY seq`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var seqs []int
		for rows.Next() {
			var s int
			if err := rows.Scan(&s); err != nil {
				t.Fatal(err)
			}
			seqs = append(seqs, s)
		}
		if len(seqs) != 2 || seqs[0] != 1 || seqs[1] != 4 {
			t.Errorf("unchanged jobs %v, want 1 and 4", seqs)
		}
	})
}

// Up to 018 gives the roles of Entra connectors, stored as kind 'role'
// with "role:" and "approle:" external ids, the kinds directory_role and
// app_role; the roles of other connectors stay 'role'. The new kinds pass
// the check, others do not; down makes them 'role' again.
func TestEntitlementKindsUp(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect string) {
		t.Parallel()
		ctx := context.Background()
		db := dbtest.Open(t, dialect)
		downBefore(t, db, dialect, 18)
		now := "2026-12-03T00:00:00Z"
		const entraID, ldapID = "c0c1d0e2-0000-4000-8000-000000000001", "c0c1d0e2-0000-4000-8000-000000000002"
		for id, ty := range map[string]string{entraID: "entra", ldapID: "ldap"} {
			if _, err := db.SQL.ExecContext(ctx, `INSERT INTO connectors (id, name, type, created_at, updated_at) VALUES ($1, $2, $3, $4, $4)`,
				id, "C "+ty, ty, now); err != nil {
				t.Fatal(err)
			}
		}
		ents := []struct{ id, conn, ext, kind, want string }{
			{"e0c1d0e2-0000-4000-8000-000000000001", entraID, "role:62e90394-69f5-4237-9190-012177145e10", "role", "directory_role"},
			{"e0c1d0e2-0000-4000-8000-000000000002", entraID, "approle:sp1:ar1", "role", "app_role"},
			{"e0c1d0e2-0000-4000-8000-000000000003", entraID, "0a1b", "group", "group"},
			{"e0c1d0e2-0000-4000-8000-000000000004", ldapID, "role:cn=x", "role", "role"},
		}
		for _, e := range ents {
			if _, err := db.SQL.ExecContext(ctx, `INSERT INTO entitlements (id, connector_id, external_id, name, kind, created_at, updated_at)
				VALUES ($1, $2, $3, $3, $4, $5, $5)`, e.id, e.conn, e.ext, e.kind, now); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := db.SQL.ExecContext(ctx, `INSERT INTO entitlements (id, connector_id, external_id, name, kind, created_at, updated_at)
			VALUES ('e0c1d0e2-0000-4000-8000-000000000009', $1, 'x', 'x', 'app_role', $2, $2)`, entraID, now); err == nil {
			t.Fatal("app_role accepted before 018")
		}
		if _, err := migrations.Up(ctx, db.SQL, dialect); err != nil {
			t.Fatalf("up: %v", err)
		}
		kindOf := func(id string) string {
			var k string
			if err := db.SQL.QueryRowContext(ctx, `SELECT kind FROM entitlements WHERE id = $1`, id).Scan(&k); err != nil {
				t.Fatal(err)
			}
			return k
		}
		for _, e := range ents {
			if got := kindOf(e.id); got != e.want {
				t.Errorf("%s: kind %s, want %s", e.ext, got, e.want)
			}
		}
		if _, err := db.SQL.ExecContext(ctx, `INSERT INTO entitlements (id, connector_id, external_id, name, kind, created_at, updated_at)
			VALUES ('e0c1d0e2-0000-4000-8000-000000000009', $1, 'x', 'x', 'app_role', $2, $2)`, entraID, now); err != nil {
			t.Fatalf("app_role refused after 018: %v", err)
		}
		if _, err := db.SQL.ExecContext(ctx, `INSERT INTO entitlements (id, connector_id, external_id, name, kind, created_at, updated_at)
			VALUES ('e0c1d0e2-0000-4000-8000-00000000000a', $1, 'y', 'y', 'bogus', $2, $2)`, entraID, now); err == nil {
			t.Fatal("kind bogus accepted")
		}
		downBefore(t, db, dialect, 18)
		if got := kindOf(ents[0].id); got != "role" {
			t.Errorf("after down: %s", got)
		}
	})
}
