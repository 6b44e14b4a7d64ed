package identities_test

import (
	"sort"
	"strings"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/provisor/provisor/app/apptest"
	"github.com/provisor/provisor/connectors"
	"github.com/provisor/provisor/database/dbtest"
	"github.com/provisor/provisor/identities"
)

// What completed jobs changed is recorded once: the account made on the
// first grant, memberships held with the same expiry left alone, a new
// expiry (or none) written, and a mix of operations applied in order.
func TestApplyRecordsGrantsOnceWithTheirExpiry(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect string) {
		t.Parallel()
		b := apptest.New(t, dialect, &apptest.Options{NoStart: true})
		dir, ents := b.Directory(t, "Dir", "VPN", "Wiki", "Mail")
		alice := b.Identity(t, "alice")
		apply := func(changes ...identities.Change) {
			t.Helper()
			if err := b.DB.InTx(b.Ctx, func(tx *gorm.DB) error { return b.Identities.ApplyTx(b.Ctx, tx, changes...) }); err != nil {
				t.Fatal(err)
			}
		}
		grant := func(ent string, exp *time.Time) identities.Change {
			return identities.Change{Operation: connectors.OpGrant, ConnectorID: dir.ID, IdentityID: alice.ID, Username: "alice",
				EntitlementID: ents[ent].ID, ExpiresAt: exp}
		}
		held := func() string {
			t.Helper()
			var rows []struct {
				Name      string
				ExpiresAt *time.Time
			}
			if err := b.DB.Gorm.Table("memberships m").Select("e.name, m.expires_at").Joins("JOIN entitlements e ON e.id = m.entitlement_id").
				Joins("JOIN accounts a ON a.id = m.account_id").Where("a.connector_id = ? AND a.username = ?", dir.ID, "alice").Scan(&rows).Error; err != nil {
				t.Fatal(err)
			}
			var out []string
			for _, r := range rows {
				exp := "forever"
				if r.ExpiresAt != nil {
					exp = r.ExpiresAt.UTC().Format("15:04")
				}
				out = append(out, r.Name+" "+exp)
			}
			sort.Strings(out)
			return strings.Join(out, ", ")
		}
		check := func(when, want string) {
			t.Helper()
			if got := held(); got != want {
				t.Errorf("%s: alice holds %q, want %q", when, got, want)
			}
		}
		at := func(h int) *time.Time {
			v := time.Date(2030, 1, 2, h, 0, 0, 0, time.UTC)
			return &v
		}

		apply(grant("VPN", nil), grant("Wiki", at(9)))
		check("first grants, the account made with them", "VPN forever, Wiki 09:00")
		var n int64
		b.DB.Gorm.Table("accounts").Where("connector_id = ? AND username = ?", dir.ID, "alice").Count(&n)
		if n != 1 {
			t.Fatalf("%d accounts for alice, want 1", n)
		}
		apply(grant("VPN", nil), grant("Wiki", at(9)), grant("Mail", at(10)))
		check("again, and one more", "Mail 10:00, VPN forever, Wiki 09:00")
		apply(grant("Wiki", nil), grant("VPN", at(11)))
		check("new expiries", "Mail 10:00, VPN 11:00, Wiki forever")
		apply(identities.Change{Operation: connectors.OpRevoke, ConnectorID: dir.ID, Username: "alice", EntitlementID: ents["Mail"].ID},
			grant("Mail", at(12)), identities.Change{Operation: connectors.OpDisableAccount, ConnectorID: dir.ID, Username: "alice"})
		check("revoke, grant again, lock", "Mail 12:00, VPN 11:00, Wiki forever")
		acct, err := b.Identities.AccountOf(b.Ctx, nil, dir.ID, alice.ID)
		if err != nil || acct.Status != "locked" {
			t.Errorf("account after lock: %v %v", acct, err)
		}
	})
}
