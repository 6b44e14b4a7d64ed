package access_test

import (
	"errors"
	"strings"
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
