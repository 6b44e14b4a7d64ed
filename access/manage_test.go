package access_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/provisor/provisor/access"
	"github.com/provisor/provisor/audit"
	"github.com/provisor/provisor/database/dbtest"
)

func mustUser(t *testing.T, s *access.Service, name, role string) (*access.User, string) {
	t.Helper()
	pw := access.GeneratePassword()
	u, err := s.CreateUser(t.Context(), access.UserInput{Username: name, Email: name + "@example.test", Password: pw, Role: role}, "cli")
	if err != nil {
		t.Fatal(err)
	}
	return u, pw
}

// Disabling a user ends their sessions at once and refuses sign-in with
// its own error; enabling lets them in again; the last enabled admin is
// never disabled nor demoted.
func TestDisableEnableAndLastAdmin(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect string) {
		t.Parallel()
		db := dbtest.Open(t, dialect)
		s := access.New(db.Gorm, nil)
		ctx := t.Context()
		adm, _ := mustUser(t, s, "admin", access.RoleAdmin)
		rita, pw := mustUser(t, s, "rita", access.RoleRequester)

		_, cookie, err := s.SignIn(ctx, "rita", pw, "192.0.2.1")
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := s.GetUser(ctx, rita.ID); got.LastSignInAt == nil {
			t.Error("no last sign-in time after a sign-in")
		}
		if _, err := s.SessionByToken(ctx, cookie); err != nil {
			t.Fatal(err)
		}
		u, err := s.SetDisabled(ctx, rita.ID, true, "admin")
		if err != nil || !u.Disabled {
			t.Fatalf("disable: %+v %v", u, err)
		}
		if _, err := s.SessionByToken(ctx, cookie); !errors.Is(err, access.ErrNoSession) {
			t.Errorf("the session of a disabled user: %v", err)
		}
		var sessions int64
		db.Gorm.Table("web_sessions").Where("user_id = ?", rita.ID).Count(&sessions)
		if sessions != 0 {
			t.Errorf("%d sessions left after disable", sessions)
		}
		if _, _, err := s.SignIn(ctx, "rita", pw, "192.0.2.1"); !errors.Is(err, access.ErrAccountDisabled) {
			t.Errorf("sign-in of a disabled user with the right password: %v", err)
		}
		if _, _, err := s.SignIn(ctx, "rita", pw+"x", "192.0.2.1"); !errors.Is(err, access.ErrInvalidCredentials) {
			t.Errorf("sign-in of a disabled user with a wrong password: %v (must not say disabled)", err)
		}
		if _, err := s.SetDisabled(ctx, rita.ID, true, "admin"); !errors.Is(err, access.ErrConflict) {
			t.Errorf("disable twice: %v", err)
		}
		if _, err := s.SetDisabled(ctx, rita.ID, false, "admin"); err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.SignIn(ctx, "rita", pw, "192.0.2.1"); err != nil {
			t.Errorf("sign-in after enable: %v", err)
		}

		// The only admin.
		if _, err := s.SetDisabled(ctx, adm.ID, true, "admin"); !errors.Is(err, access.ErrConflict) || !strings.Contains(err.Error(), "last enabled admin") {
			t.Errorf("disable the last admin: %v", err)
		}
		if _, err := s.SetRole(ctx, adm.ID, access.RoleRequester, "admin"); !errors.Is(err, access.ErrConflict) || !strings.Contains(err.Error(), "last enabled admin") {
			t.Errorf("demote the last admin: %v", err)
		}
		// With a second admin, one can go; a disabled admin does not count.
		if _, err := s.SetRole(ctx, rita.ID, access.RoleAdmin, "admin"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.SetDisabled(ctx, adm.ID, true, "rita"); err != nil {
			t.Fatalf("disable one of two admins: %v", err)
		}
		if _, err := s.SetRole(ctx, rita.ID, access.RoleRequester, "rita"); !errors.Is(err, access.ErrConflict) {
			t.Errorf("demote the last enabled admin while a disabled one exists: %v", err)
		}
		if _, err := s.SetDisabled(ctx, "00000000-0000-0000-0000-000000000000", true, "admin"); !errors.Is(err, access.ErrNotFound) {
			t.Errorf("unknown user: %v", err)
		}
		if _, err := s.SetDisabled(ctx, "not-an-id", true, "admin"); !errors.Is(err, access.ErrNotFound) {
			t.Errorf("malformed id: %v", err)
		}

		events, _, err := audit.List(ctx, db.Gorm, audit.Filter{})
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]int{}
		for _, e := range events {
			seen[e.Action]++
		}
		for _, a := range []string{"user.disable", "user.enable", "user.role", "user.sign_in_refused"} {
			if seen[a] == 0 {
				t.Errorf("no %s in the audit trail: %v", a, seen)
			}
		}
	})
}

// Two admins disabling each other at once: one wins, the other is refused,
// and an admin stays enabled.
func TestLastAdminUnderParallelDisables(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect string) {
		t.Parallel()
		db := dbtest.Open(t, dialect)
		s := access.New(db.Gorm, nil)
		a, _ := mustUser(t, s, "ann", access.RoleAdmin)
		b, _ := mustUser(t, s, "bob", access.RoleAdmin)
		errs := make([]error, 2)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i, u := range []*access.User{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				_, errs[i] = s.SetDisabled(context.Background(), u.ID, true, "test")
			}()
		}
		close(start)
		wg.Wait()
		ok := 0
		for _, err := range errs {
			switch {
			case err == nil:
				ok++
			case !errors.Is(err, access.ErrConflict):
				t.Errorf("unexpected error: %v", err)
			}
		}
		var enabled int64
		db.Gorm.Table("users").Where("role = 'admin' AND NOT disabled").Count(&enabled)
		if ok != 1 || enabled != 1 {
			t.Errorf("%d disables passed, %d admins enabled; want 1 and 1 (%v)", ok, enabled, errs)
		}
	})
}

// A reset password works at once, the old one no longer, and the user's
// sessions end; a directory user's password cannot be reset.
func TestResetPassword(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect string) {
		t.Parallel()
		db := dbtest.Open(t, dialect)
		s := access.New(db.Gorm, nil)
		ctx := t.Context()
		rita, old := mustUser(t, s, "rita", access.RoleRequester)
		_, cookie, err := s.SignIn(ctx, "rita", old, "192.0.2.1")
		if err != nil {
			t.Fatal(err)
		}
		u, pw, err := s.ResetPassword(ctx, rita.ID, "admin")
		if err != nil || len(pw) < 12 || pw == old || strings.Contains(u.PasswordHash, pw) {
			t.Fatalf("reset: %q %v", pw, err)
		}
		if _, err := s.SessionByToken(ctx, cookie); !errors.Is(err, access.ErrNoSession) {
			t.Errorf("session after a reset: %v", err)
		}
		if _, err := s.Authenticate(ctx, "rita", old); !errors.Is(err, access.ErrInvalidCredentials) {
			t.Errorf("old password: %v", err)
		}
		if _, err := s.Authenticate(ctx, "rita", pw); err != nil {
			t.Errorf("new password: %v", err)
		}

		s = access.New(db.Gorm, &access.Options{DirectoryFunc: func(context.Context, string, string) (*access.DirectoryIdentity, error) {
			return &access.DirectoryIdentity{Source: "Corp AD", Username: "dora"}, nil
		}})
		if _, _, err := s.SignIn(ctx, "dora", "directory-pw", "192.0.2.2"); err != nil {
			t.Fatal(err)
		}
		dora, err := s.FindUser(ctx, "dora")
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.ResetPassword(ctx, dora.ID, "admin"); !errors.Is(err, access.ErrConflict) || !strings.Contains(err.Error(), "Corp AD") {
			t.Errorf("reset of a directory user: %v", err)
		}
		// A disabled directory user is refused even though the directory accepts.
		if _, err := s.SetDisabled(ctx, dora.ID, true, "admin"); err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.SignIn(ctx, "dora", "directory-pw", "192.0.2.2"); !errors.Is(err, access.ErrAccountDisabled) {
			t.Errorf("disabled directory user: %v", err)
		}
	})
}

// A revoked client's tokens stop working at once and are deleted; it gets
// no new ones; lists show the last use and the revocation.
func TestRevokeClient(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect string) {
		t.Parallel()
		db := dbtest.Open(t, dialect)
		s := access.New(db.Gorm, nil)
		ctx := t.Context()
		c, secret, err := s.CreateClient(ctx, "nightly", []string{access.ScopeRead}, "cli")
		if err != nil {
			t.Fatal(err)
		}
		other, otherSecret, err := s.CreateClient(ctx, "other", []string{access.ScopeRead}, "cli")
		if err != nil {
			t.Fatal(err)
		}
		tok, _, err := s.IssueToken(ctx, c.ClientID, secret, nil)
		if err != nil {
			t.Fatal(err)
		}
		otherTok, _, err := s.IssueToken(ctx, other.ClientID, otherSecret, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Principal(ctx, tok); err != nil {
			t.Fatal(err)
		}
		list, err := s.ListClients(ctx)
		if err != nil || len(list) != 2 || list[0].Name != "nightly" || list[0].LastUsedAt == nil {
			t.Fatalf("list: %+v %v", list, err)
		}
		got, err := s.RevokeClient(ctx, c.ClientID, "admin")
		if err != nil || got.RevokedAt == nil {
			t.Fatalf("revoke: %+v %v", got, err)
		}
		if _, err := s.Principal(ctx, tok); !errors.Is(err, access.ErrInvalidCredentials) {
			t.Errorf("token of a revoked client: %v", err)
		}
		if _, _, err := s.IssueToken(ctx, c.ClientID, secret, nil); !errors.Is(err, access.ErrInvalidCredentials) {
			t.Errorf("new token for a revoked client: %v", err)
		}
		if _, err := s.Principal(ctx, otherTok); err != nil {
			t.Errorf("another client's token: %v", err)
		}
		var left int64
		db.Gorm.Table("api_tokens").Where("client_id = ?", c.ID).Count(&left)
		if left != 0 {
			t.Errorf("%d tokens kept for a revoked client", left)
		}
		if _, err := s.RevokeClient(ctx, c.ID, "admin"); !errors.Is(err, access.ErrConflict) {
			t.Errorf("revoke twice (by id): %v", err)
		}
		if _, err := s.RevokeClient(ctx, "pc_nobody", "admin"); !errors.Is(err, access.ErrNotFound) {
			t.Errorf("unknown client: %v", err)
		}
		events, _, _ := audit.List(ctx, db.Gorm, audit.Filter{Action: "api_client.revoke"})
		if len(events) != 1 || events[0].TargetID != c.ID || events[0].Actor != "admin" {
			t.Errorf("audit: %+v", events)
		}
	})
}
