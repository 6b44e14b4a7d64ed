package access_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/provisor/provisor/access"
	"github.com/provisor/provisor/app/database/dbtest"
)

func TestUsersAndTokens(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect string) {
		t.Parallel()
		db := dbtest.Open(t, dialect)
		s := access.New(db.Gorm)
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

// TestSignInSlowDownUnderParallelAttempts sends many wrong passwords for one
// name at once, each from its own address: every attempt is counted, and
// only the free ones reach the password check.
func TestSignInSlowDownUnderParallelAttempts(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect string) {
		t.Parallel()
		db := dbtest.Open(t, dialect)
		s := access.New(db.Gorm)
		ctx := t.Context()
		pw := access.GeneratePassword()
		if _, err := s.CreateUser(ctx, access.UserInput{Username: "rita", Password: pw, Role: access.RoleRequester}, "cli"); err != nil {
			t.Fatal(err)
		}
		const attempts, free = 40, 5 // README: after five failed sign-ins each further try waits
		errs := make([]error, attempts)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range attempts {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				_, _, errs[i] = s.SignIn(ctx, "Rita", fmt.Sprintf("wrong-%d", i), fmt.Sprintf("192.0.2.%d", i+1))
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
				t.Errorf("attempt %d: %v", i, err)
			}
		}
		if checked > free {
			t.Errorf("%d attempts reached the password check, want at most %d", checked, free)
		}
		var failures int
		if err := db.Gorm.Table("login_failures").Where("key = ?", "user:rita").Select("failures").Scan(&failures).Error; err != nil {
			t.Fatal(err)
		}
		if failures != attempts {
			t.Errorf("%d failures counted for the name, want %d", failures, attempts)
		}
		var slow *access.ErrSlowDown
		if _, _, err := s.SignIn(ctx, "rita", pw, "198.51.100.1"); !errors.As(err, &slow) {
			t.Errorf("right password during the wait: %v", err)
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
		s := access.New(db.Gorm)
		s.DirectoryFunc = func(context.Context, string, string) (*access.DirectoryIdentity, error) {
			return nil, access.ErrDirectoryUnavailable
		}
		for i := range 8 {
			if _, _, err := s.SignIn(t.Context(), "dora", "pw", "192.0.2.1"); !errors.Is(err, access.ErrDirectoryUnavailable) {
				t.Fatalf("attempt %d: %v", i, err)
			}
		}
	})
}
