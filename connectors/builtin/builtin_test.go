package builtin_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/provisor/provisor/app/apptest"
	"github.com/provisor/provisor/connectors"
	"github.com/provisor/provisor/connectors/builtin"
	"github.com/provisor/provisor/connectors/configured"
	"github.com/provisor/provisor/database/dbtest"
)

type sink struct {
	accounts []connectors.ImportedAccount
	ents     []connectors.Entitlement
}

func (s *sink) Account(_ context.Context, a connectors.ImportedAccount) error {
	s.accounts = append(s.accounts, a)
	return nil
}
func (s *sink) Entitlement(_ context.Context, e connectors.Entitlement) error {
	s.ents = append(s.ents, e)
	return nil
}
func (s *sink) Deleted(context.Context, string) error { return nil }

func TestOperationsAreIdempotentAndErrorsClassified(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect string) {
		t.Parallel()
		b := apptest.New(t, dialect, &apptest.Options{NoStart: true})
		rec, _ := b.Directory(t, "Dir", "VPN")
		_, opened, err := b.Connectors.OpenByID(b.Ctx, rec.ID)
		if err != nil {
			t.Fatal(err)
		}
		c := opened.(*builtin.Directory)
		ctx := b.Ctx
		alice := connectors.Account{Username: "alice", DisplayName: "Alice", Email: "alice@example.test"}
		vpn := connectors.Entitlement{ExternalID: "VPN", Name: "VPN"}
		steps := []struct {
			name    string
			do      func() (connectors.Result, error)
			changed bool
			perm    string
		}{
			{"grant before create", func() (connectors.Result, error) { return c.Grant(ctx, alice, vpn) }, false, "no such account: alice"},
			{"lock before create", func() (connectors.Result, error) { return c.DisableAccount(ctx, alice) }, false, "no such account: alice"},
			{"create", func() (connectors.Result, error) { return c.CreateAccount(ctx, alice) }, true, ""},
			{"create again", func() (connectors.Result, error) { return c.CreateAccount(ctx, alice) }, false, ""},
			{"grant", func() (connectors.Result, error) { return c.Grant(ctx, alice, vpn) }, true, ""},
			{"grant again", func() (connectors.Result, error) { return c.Grant(ctx, alice, vpn) }, false, ""},
			{"grant missing group", func() (connectors.Result, error) {
				return c.Grant(ctx, alice, connectors.Entitlement{ExternalID: "Nope"})
			}, false, "no such group: Nope"},
			{"lock", func() (connectors.Result, error) { return c.DisableAccount(ctx, alice) }, true, ""},
			{"lock again", func() (connectors.Result, error) { return c.DisableAccount(ctx, alice) }, false, ""},
			{"unlock", func() (connectors.Result, error) { return c.EnableAccount(ctx, alice) }, true, ""},
			{"revoke", func() (connectors.Result, error) { return c.Revoke(ctx, alice, vpn) }, true, ""},
			{"revoke again", func() (connectors.Result, error) { return c.Revoke(ctx, alice, vpn) }, false, ""},
			{"delete", func() (connectors.Result, error) { return c.DeleteAccount(ctx, alice) }, true, ""},
			{"delete again", func() (connectors.Result, error) { return c.DeleteAccount(ctx, alice) }, false, ""},
			{"create empty", func() (connectors.Result, error) { return c.CreateAccount(ctx, connectors.Account{}) }, false, "username is empty"},
		}
		for _, s := range steps {
			res, err := s.do()
			switch {
			case s.perm != "":
				if err == nil || !connectors.IsPermanent(err) || !strings.Contains(err.Error(), s.perm) {
					t.Errorf("%s: err %v, want permanent %q", s.name, err, s.perm)
				}
			case err != nil:
				t.Errorf("%s: %v", s.name, err)
			case res.Changed != s.changed || res.Message == "":
				t.Errorf("%s: %+v, want changed=%v", s.name, res, s.changed)
			}
		}
		if h := c.Check(ctx); !h.OK {
			t.Errorf("check: %+v", h)
		}
		if _, err := connectors.Do(ctx, c, "account.teleport", alice, vpn); !connectors.IsPermanent(err) {
			t.Errorf("unknown operation: %v", err)
		}
		if connectors.IsPermanent(errors.New("network down")) {
			t.Error("an unclassified error is permanent")
		}

		// Import reads accounts with their groups and lock state.
		for _, u := range []string{"bob", "carol"} {
			if _, err := c.CreateAccount(ctx, connectors.Account{Username: u}); err != nil {
				t.Fatal(err)
			}
		}
		c.Grant(ctx, connectors.Account{Username: "bob"}, vpn)
		c.DisableAccount(ctx, connectors.Account{Username: "carol"})
		var s sink
		cookie, err := c.Import(ctx, connectors.ImportFull, "", &s)
		if err != nil || cookie == "" {
			t.Fatalf("import: %q %v", cookie, err)
		}
		if len(s.ents) != 1 || len(s.accounts) != 2 || s.accounts[0].Username != "bob" || len(s.accounts[0].Entitlements) != 1 || !s.accounts[1].Locked {
			t.Errorf("imported %+v %+v", s.ents, s.accounts)
		}
	})
}

func TestSettingsValidation(t *testing.T) {
	t.Parallel()
	b := apptest.New(t, "sqlite", &apptest.Options{NoStart: true})
	_, err := b.Connectors.Create(b.Ctx, configured.Input{Name: "D", Type: "internal", Settings: []byte(`{"host":"x"}`),
		Secrets: map[string]string{"password": "p"}})
	var fe connectors.FieldErrors
	if !errors.As(err, &fe) || fe["settings.host"] == "" || fe["secrets.password"] == "" {
		t.Errorf("unknown settings: %v", err)
	}
	if _, err := b.Connectors.Create(b.Ctx, configured.Input{Name: "", Type: "internal"}); !errors.As(err, &fe) || fe["name"] == "" {
		t.Errorf("empty name: %v", err)
	}
}

// Grants and revokes of several groups in one statement answer per group as
// one by one would, including for a group that does not exist.
func TestBatchedGrantsAndRevokes(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect string) {
		t.Parallel()
		b := apptest.New(t, dialect, &apptest.Options{NoStart: true})
		rec, _ := b.Directory(t, "Dir", "VPN", "Wiki", "Mail")
		_, opened, err := b.Connectors.OpenByID(b.Ctx, rec.ID)
		if err != nil {
			t.Fatal(err)
		}
		c := opened.(*builtin.Directory)
		batch, ok := opened.(connectors.Batcher)
		if !ok {
			t.Fatal("the built-in directory takes no batches")
		}
		ctx := b.Ctx
		alice := connectors.Account{Username: "alice"}
		ent := func(names ...string) []connectors.Membership {
			var out []connectors.Membership
			for _, n := range names {
				out = append(out, connectors.Membership{Account: alice, Entitlement: connectors.Entitlement{ExternalID: n, Name: n}})
			}
			return out
		}
		// of is one group's memberships of several accounts.
		of := func(group string, users ...string) []connectors.Membership {
			var out []connectors.Membership
			for _, u := range users {
				out = append(out, connectors.Membership{Account: connectors.Account{Username: u}, Entitlement: connectors.Entitlement{ExternalID: group, Name: group}})
			}
			return out
		}
		describe := func(rs []connectors.Result, errs []error) string {
			var parts []string
			for i := range rs {
				if errs[i] != nil {
					parts = append(parts, "error: "+errs[i].Error()+map[bool]string{true: " (permanent)"}[connectors.IsPermanent(errs[i])])
				} else {
					parts = append(parts, rs[i].Message+map[bool]string{true: " *"}[rs[i].Changed])
				}
			}
			return strings.Join(parts, "; ")
		}
		check := func(what string, rs []connectors.Result, errs []error, want string) {
			t.Helper()
			if got := describe(rs, errs); got != want {
				t.Errorf("%s:\n got %s\nwant %s", what, got, want)
			}
		}
		rs, errs := batch.GrantAll(ctx, ent("VPN", "Wiki"))
		check("grant before the account exists", rs, errs, "error: no such account: alice (permanent); error: no such account: alice (permanent)")
		if _, err := c.CreateAccount(ctx, alice); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Grant(ctx, alice, ent("VPN")[0].Entitlement); err != nil {
			t.Fatal(err)
		}
		rs, errs = batch.GrantAll(ctx, ent("VPN", "Wiki", "Mail"))
		check("grant", rs, errs, "alice was already a member of VPN; alice added to Wiki *; alice added to Mail *")
		rs, errs = batch.GrantAll(ctx, ent("Wiki", "Nope"))
		check("grant with a missing group", rs, errs, "alice was already a member of Wiki; error: no such group: Nope (permanent)")
		rs, errs = batch.RevokeAll(ctx, ent("Wiki", "Nope", "Mail"))
		check("revoke", rs, errs, "alice removed from Wiki *; error: no such group: Nope (permanent); alice removed from Mail *")
		rs, errs = batch.RevokeAll(ctx, ent("Wiki", "VPN"))
		check("revoke again", rs, errs, "alice was not a member of Wiki; alice removed from VPN *")

		// One group for several accounts, one of them missing.
		for _, u := range []string{"bob", "carol"} {
			if _, err := c.CreateAccount(ctx, connectors.Account{Username: u}); err != nil {
				t.Fatal(err)
			}
		}
		rs, errs = batch.GrantAll(ctx, of("Mail", "bob", "carol"))
		check("one group for two accounts", rs, errs, "bob added to Mail *; carol added to Mail *")
		rs, errs = batch.GrantAll(ctx, of("Mail", "alice", "bob", "dave"))
		check("one group with a missing account", rs, errs, "alice added to Mail *; bob was already a member of Mail; error: no such account: dave (permanent)")
		rs, errs = batch.RevokeAll(ctx, of("Mail", "carol", "dave", "alice"))
		check("revoke one group from several", rs, errs, "carol removed from Mail *; dave was not a member of Mail; alice removed from Mail *")
	})
}
