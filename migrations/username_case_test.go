package migrations_test

import (
	"context"
	"testing"

	"github.com/provisor/provisor/database/dbtest"
	"github.com/provisor/provisor/migrations"
)

// Up to 015 keeps the oldest of the users (and identities) whose names
// differ only by case, renames the others aside to NAME:dup:ID (disabled,
// or inactive), and from then on refuses a name that differs only by case.
func TestUsernameCaseUp(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect string) {
		t.Parallel()
		ctx := context.Background()
		db := dbtest.Open(t, dialect)
		downBefore(t, db, dialect, 15)
		const u1, u2, u3 = "15a0c0de-0000-4000-8000-000000000001", "15a0c0de-0000-4000-8000-000000000002", "15a0c0de-0000-4000-8000-000000000003"
		const i1, i2, i3 = "15a0c0de-0000-4000-8000-000000000004", "15a0c0de-0000-4000-8000-000000000005", "15a0c0de-0000-4000-8000-000000000006"
		for _, q := range []struct {
			sql  string
			args []any
		}{
			{`INSERT INTO users (id, username, password_hash, role, created_at, updated_at) VALUES
				($1, 'alice', 'x', 'requester', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z'),
				($2, 'ALICE', 'x', 'requester', '2026-01-02T00:00:00Z', '2026-01-02T00:00:00Z'),
				($3, 'bob', 'x', 'requester', '2026-01-03T00:00:00Z', '2026-01-03T00:00:00Z')`, []any{u1, u2, u3}},
			// The deleted identity is older, but the active one keeps the name.
			{`INSERT INTO identities (id, username, status, created_at, updated_at) VALUES
				($1, 'Carol', 'deleted', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z'),
				($2, 'carol', 'active', '2026-01-02T00:00:00Z', '2026-01-02T00:00:00Z'),
				($3, 'CAROL', 'active', '2026-01-03T00:00:00Z', '2026-01-03T00:00:00Z')`, []any{i1, i2, i3}},
		} {
			if _, err := db.SQL.ExecContext(ctx, q.sql, q.args...); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := migrations.Up(ctx, db.SQL, dialect); err != nil {
			t.Fatalf("up: %v", err)
		}
		check := func(query, id, want string) {
			t.Helper()
			var got string
			if err := db.SQL.QueryRowContext(ctx, query, id).Scan(&got); err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Errorf("%s of %s = %q, want %q", query, id, got, want)
			}
		}
		const user, identity = `SELECT username || ' ' || CAST(disabled AS text) FROM users WHERE id = $1`, `SELECT username || ' ' || status FROM identities WHERE id = $1`
		f, tr := "false", "true"
		if dialect == "sqlite" {
			f, tr = "0", "1"
		}
		check(user, u1, "alice "+f)
		check(user, u2, "ALICE:dup:"+u2+" "+tr)
		check(user, u3, "bob "+f)
		check(identity, i1, "Carol:dup:"+i1+" deleted")
		check(identity, i2, "carol active")
		check(identity, i3, "CAROL:dup:"+i3+" inactive")
		if _, err := db.SQL.ExecContext(ctx, `INSERT INTO users (id, username, password_hash, role, created_at, updated_at) VALUES
			('15a0c0de-0000-4000-8000-000000000007', 'Bob', 'x', 'requester', '2026-01-04T00:00:00Z', '2026-01-04T00:00:00Z')`); err == nil {
			t.Error("Bob beside bob was stored")
		}
		downBefore(t, db, dialect, 15)
	})
}
