package access_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/provisor/provisor/access"
	"github.com/provisor/provisor/database/dbtest"
)

func TestUsersAndTokens(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect string) {
		t.Parallel()
		db := dbtest.Open(t, dialect)
		s := access.New(db.Gorm, nil)
		ctx := t.Context()
		if _, err := s.CreateUser(ctx, access.UserInput{Username: "-x", Email: "bad", Password: "short", Role: "root"}, "cli"); err == nil ||
			!strings.Contains(err.Error(), "username") || !strings.Contains(err.Error(), "email") ||
			!strings.Contains(err.Error(), "password") || !strings.Contains(err.Error(), "role") {
			t.Errorf("invalid user: %v", err)
		}
		pw := access.GeneratePassword()
		u, err := s.CreateUser(ctx, access.UserInput{Username: "admin", Email: "admin@example.test", Password: pw, Role: access.RoleAdmin}, "cli")
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(u.PasswordHash, pw) || !strings.HasPrefix(u.PasswordHash, "$2") {
			t.Errorf("password hash %q", u.PasswordHash)
		}
		if _, err := s.CreateUser(ctx, access.UserInput{Username: "admin", Password: pw, Role: access.RoleAdmin}, "cli"); err == nil || !strings.Contains(err.Error(), "taken") {
			t.Errorf("duplicate user: %v", err)
		}
		if got, err := s.Authenticate(ctx, "admin", pw); err != nil || got.ID != u.ID {
			t.Errorf("authenticate: %v", err)
		}
		for _, c := range [][2]string{{"admin", pw + "x"}, {"nobody", pw}} {
			if _, err := s.Authenticate(ctx, c[0], c[1]); !errors.Is(err, access.ErrInvalidCredentials) {
				t.Errorf("authenticate %s: %v", c[0], err)
			}
		}
		if _, err := access.ParseScopes("read,bogus"); err == nil {
			t.Error("unknown scope accepted")
		}
		if all, _ := access.ParseScopes("all"); len(all) != len(access.AllScopes) {
			t.Error("all is not every scope")
		}
		c, secret, err := s.CreateClient(ctx, "ci", []string{access.ScopeRead}, "cli")
		if err != nil {
			t.Fatal(err)
		}
		tok, scopes, err := s.IssueToken(ctx, c.ClientID, secret, nil)
		if err != nil || len(scopes) != 1 {
			t.Fatal(err)
		}
		p, err := s.Principal(ctx, tok)
		if err != nil || p.Name != "api:ci" || !p.Has(access.ScopeRead) || p.Has(access.ScopeJobs) {
			t.Errorf("principal %+v %v", p, err)
		}
		var stored int64
		db.Gorm.Table("api_tokens").Where("token_hash = ?", tok).Count(&stored)
		if stored != 0 {
			t.Error("token stored in clear")
		}
		if _, _, err := s.IssueToken(ctx, c.ClientID, "wrong", nil); !errors.Is(err, access.ErrInvalidCredentials) {
			t.Errorf("wrong secret: %v", err)
		}
	})
}

// TestSignInSlowDownUnderParallelAttempts sends many wrong passwords at
// once, for one name from one address, and for many names from one address:
// every attempt is counted, and only the free ones reach the password check.
func TestSignInSlowDownUnderParallelAttempts(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect string) {
		t.Parallel()
		db := dbtest.Open(t, dialect)
		s := access.New(db.Gorm, nil)
		ctx := t.Context()
		pw := access.GeneratePassword()
		if _, err := s.CreateUser(ctx, access.UserInput{Username: "rita", Password: pw, Role: access.RoleRequester}, "cli"); err != nil {
			t.Fatal(err)
		}
		const attempts = 40
		for _, c := range []struct {
			name string
			user func(i int) string
			addr string
			// README: five failed sign-ins for a name from an address, twenty
			// from an address.
			free int
			key  string
		}{
			{"one name", func(i int) string { return "Rita" }, "192.0.2.1", 5, "addr:192.0.2.1 user:rita"},
			{"many names", func(i int) string { return fmt.Sprintf("user%d", i) }, "192.0.2.2", 20, "addr:192.0.2.2"},
		} {
			errs := make([]error, attempts)
			start := make(chan struct{})
			var wg sync.WaitGroup
			for i := range attempts {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					_, _, errs[i] = s.SignIn(ctx, c.user(i), fmt.Sprintf("wrong-%d", i), c.addr)
				}()
			}
			close(start)
			wg.Wait()
			checked := 0
			for i, err := range errs {
				var slow *access.ErrSlowDown
				switch {
				case errors.Is(err, access.ErrInvalidCredentials):
					checked++
				case errors.As(err, &slow) && slow.Wait > 0:
				default:
					t.Errorf("%s: attempt %d: %v", c.name, i, err)
				}
			}
			if checked > c.free {
				t.Errorf("%s: %d attempts reached the password check, want at most %d", c.name, checked, c.free)
			}
			var failures int
			if err := db.Gorm.Table("login_failures").Where("key = ?", c.key).Select("failures").Scan(&failures).Error; err != nil {
				t.Fatal(err)
			}
			if failures != attempts {
				t.Errorf("%s: %d failures counted for %s, want %d", c.name, failures, c.key, attempts)
			}
			var slow *access.ErrSlowDown
			if _, _, err := s.SignIn(ctx, "rita", pw, c.addr); !errors.As(err, &slow) {
				t.Errorf("%s: right password during the wait: %v", c.name, err)
			}
		}
	})
}

// TestSignInFailuresElsewhereDoNotLockOut: wrong passwords for admin from
// one address do not keep admin out at another; an address that tries many
// names is slowed down, whatever the names; a success does not clear the
// address's count.
func TestSignInFailuresElsewhereDoNotLockOut(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect string) {
		t.Parallel()
		db := dbtest.Open(t, dialect)
		s := access.New(db.Gorm, nil)
		ctx := t.Context()
		pw, mallory := access.GeneratePassword(), access.GeneratePassword()
		for u, p := range map[string]string{"admin": pw, "mallory": mallory} {
			if _, err := s.CreateUser(ctx, access.UserInput{Username: u, Password: p, Role: access.RoleRequester}, "cli"); err != nil {
				t.Fatal(err)
			}
		}
		const a, b = "203.0.113.7", "198.51.100.20"
		for i := range 12 {
			if _, _, err := s.SignIn(ctx, "admin", "guess", a); err == nil {
				t.Fatalf("attempt %d signed in", i)
			}
		}
		var slow *access.ErrSlowDown
		if _, _, err := s.SignIn(ctx, "admin", pw, a); !errors.As(err, &slow) {
			t.Errorf("admin at the guessing address: %v, want a wait", err)
		}
		if _, _, err := s.SignIn(ctx, "admin", pw, b); err != nil {
			t.Errorf("admin at their own address: %v", err)
		}
		// Fewer than five tries per name, twenty in all: the address waits.
		c := "203.0.113.8"
		if _, _, err := s.SignIn(ctx, "mallory", mallory, c); err != nil {
			t.Fatal(err)
		}
		for i := range 20 {
			if _, _, err := s.SignIn(ctx, fmt.Sprintf("name%d", i/4), "guess", c); errors.As(err, &slow) {
				t.Fatalf("attempt %d waits already: %v", i, err)
			}
			if i == 10 {
				// Signing in to one's own account keeps the count.
				if _, _, err := s.SignIn(ctx, "mallory", mallory, c); err != nil {
					t.Fatal(err)
				}
			}
		}
		if _, _, err := s.SignIn(ctx, "admin", pw, c); !errors.As(err, &slow) {
			t.Errorf("admin from the address that tried many names: %v, want a wait", err)
		}
		// An IPv6 host has its /64: other addresses in it are the same party.
		for i := range 25 {
			s.SignIn(ctx, fmt.Sprintf("v6name%d", i/4), "guess", fmt.Sprintf("2001:db8:1:2::%x", i+1))
		}
		if _, _, err := s.SignIn(ctx, "admin", pw, "2001:db8:1:2:ffff::1"); !errors.As(err, &slow) {
			t.Errorf("admin from the same /64: %v, want a wait", err)
		}
		if _, _, err := s.SignIn(ctx, "admin", pw, "2001:db8:1:3::1"); err != nil {
			t.Errorf("admin from another /64: %v", err)
		}
	})
}

// TestSignInUnjudgedAttemptsAreNotHeld: attempts whose password no
// directory could check do not count towards the slow-down.
func TestSignInUnjudgedAttemptsAreNotHeld(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect string) {
		t.Parallel()
		db := dbtest.Open(t, dialect)
		s := access.New(db.Gorm, &access.Options{DirectoryFunc: func(context.Context, string, string) (*access.DirectoryIdentity, error) {
			return nil, access.ErrDirectoryUnavailable
		}})
		for i := range 8 {
			if _, _, err := s.SignIn(t.Context(), "dora", "pw", "192.0.2.1"); !errors.Is(err, access.ErrDirectoryUnavailable) {
				t.Fatalf("attempt %d: %v", i, err)
			}
		}
	})
}
