package identities

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/provisor/provisor/connectors"
)

// Change is what a completed connector job changed, recorded into the
// portal's view of accounts and memberships.
type Change struct {
	Operation     connectors.Operation
	ConnectorID   string
	IdentityID    string
	Username      string
	ExternalID    string
	EntitlementID string
	ExpiresAt     *time.Time
}

// ApplyTx records completed operations in tx, in order. Consecutive grants
// are recorded together, whichever accounts they are for: one read of the
// accounts with the memberships they name, and one write of those that are
// new or change their expiry. Consecutive revokes are one read of the
// accounts and one delete.
func (s *Service) ApplyTx(ctx context.Context, tx *gorm.DB, changes ...Change) error {
	accounts := map[[2]string]*Account{} // by connector and username
	for i := 0; i < len(changes); {
		op, n := changes[i].Operation, i+1
		if op == connectors.OpGrant || op == connectors.OpRevoke {
			for n < len(changes) && changes[n].Operation == op {
				n++
			}
		}
		var err error
		switch op {
		case connectors.OpGrant:
			err = grantsTx(tx, changes[i:n], accounts)
		case connectors.OpRevoke:
			err = revokesTx(tx, changes[i:n], accounts)
		default:
			err = applyTx(tx, changes[i], accounts)
		}
		if err != nil {
			return err
		}
		i = n
	}
	return nil
}

// accountsTx reads, in one statement, the accounts changes name that
// accounts does not hold yet, with the memberships they hold among ents
// (none when ents is empty), and keeps them in accounts. It returns the
// expiry of each membership found.
func accountsTx(tx *gorm.DB, changes []Change, accounts map[[2]string]*Account, ents []string) (map[[2]string]*time.Time, error) {
	have := map[[2]string]*time.Time{}
	conns, users := map[string]bool{}, map[string]bool{}
	for _, c := range changes {
		if _, ok := accounts[[2]string{c.ConnectorID, c.Username}]; !ok || len(ents) > 0 {
			conns[c.ConnectorID], users[c.Username] = true, true
		}
	}
	if len(users) == 0 {
		return have, nil
	}
	var rows []struct {
		Account
		HeldEntitlement *string
		HeldExpires     *time.Time
	}
	q := tx.Table("accounts")
	if len(ents) > 0 {
		q = q.Select("accounts.*, m.entitlement_id AS held_entitlement, m.expires_at AS held_expires").
			Joins("LEFT JOIN memberships m ON m.account_id = accounts.id AND m.entitlement_id IN ?", ents)
	} else {
		q = q.Select("accounts.*")
	}
	if err := q.Where("accounts.connector_id IN ? AND accounts.username IN ?", keys(conns), keys(users)).Scan(&rows).Error; err != nil {
		return nil, err
	}
	for i := range rows {
		r := &rows[i]
		key := [2]string{r.ConnectorID, r.Username}
		if _, ok := accounts[key]; !ok {
			a := r.Account
			accounts[key] = &a
		}
		if r.HeldEntitlement != nil {
			have[[2]string{r.ID, *r.HeldEntitlement}] = r.HeldExpires
		}
	}
	return have, nil
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// grantsTx records grants. A membership held already with the same expiry
// is left as it is, unlocked: runs that grant the same access again do not
// wait for each other on its row. An account not recorded yet is made.
func grantsTx(tx *gorm.DB, changes []Change, accounts map[[2]string]*Account) error {
	ents := map[string]bool{}
	for _, c := range changes {
		ents[c.EntitlementID] = true
	}
	have, err := accountsTx(tx, changes, accounts, keys(ents))
	if err != nil {
		return err
	}
	grants := make([]Membership, len(changes))
	for i, c := range changes {
		a, err := accountTx(tx, c, accounts, true)
		if err != nil {
			return err
		}
		grants[i] = Membership{AccountID: a.ID, EntitlementID: c.EntitlementID, GrantedAt: time.Now().UTC(), ExpiresAt: c.ExpiresAt}
	}
	return writeGrantsTx(tx, grants, have)
}

// revokesTx records revokes in one delete; a revoke of an account not
// recorded changes nothing.
func revokesTx(tx *gorm.DB, changes []Change, accounts map[[2]string]*Account) error {
	if _, err := accountsTx(tx, changes, accounts, nil); err != nil {
		return err
	}
	var where strings.Builder
	var args []any
	for _, c := range changes {
		a, ok := accounts[[2]string{c.ConnectorID, c.Username}]
		if !ok {
			continue
		}
		if where.Len() > 0 {
			where.WriteString(" OR ")
		}
		where.WriteString("(account_id = ? AND entitlement_id = ?)")
		args = append(args, a.ID, c.EntitlementID)
	}
	if len(args) == 0 {
		return nil
	}
	return tx.Where(where.String(), args...).Delete(&Membership{}).Error
}

// writeGrantsTx writes the grants that are new or change their
// membership's expiry; have holds the expiry of each membership held.
func writeGrantsTx(tx *gorm.DB, grants []Membership, have map[[2]string]*time.Time) error {
	var write []Membership
	seen := map[[2]string]int{}
	for _, g := range grants {
		k := [2]string{g.AccountID, g.EntitlementID}
		if exp, ok := have[k]; ok && sameTime(exp, g.ExpiresAt) {
			continue
		}
		if i, ok := seen[k]; ok {
			write[i] = g // the later grant of the same membership wins
			continue
		}
		seen[k] = len(write)
		write = append(write, g)
	}
	if len(write) == 0 {
		return nil
	}
	return tx.Clauses(clause.OnConflict{
		Columns:   []clause.Column{{Name: "account_id"}, {Name: "entitlement_id"}},
		DoUpdates: clause.AssignmentColumns([]string{"expires_at"}),
	}).Create(&write).Error
}

// accountTx returns the account a change is about, from accounts or the
// database, made when create is set and it does not exist.
func accountTx(tx *gorm.DB, c Change, accounts map[[2]string]*Account, create bool) (*Account, error) {
	key := [2]string{c.ConnectorID, c.Username}
	if a, ok := accounts[key]; ok {
		return a, nil
	}
	var a Account
	err := tx.Where("connector_id = ? AND username = ?", c.ConnectorID, c.Username).Take(&a).Error
	if err == nil {
		accounts[key] = &a
		return &a, nil
	}
	if !errors.Is(err, gorm.ErrRecordNotFound) || !create {
		return nil, err
	}
	now := time.Now().UTC()
	a = Account{ID: uuid.NewString(), ConnectorID: c.ConnectorID, Username: c.Username, ExternalID: c.ExternalID,
		Status: "enabled", CreatedAt: now, UpdatedAt: now}
	if c.IdentityID != "" {
		a.IdentityID = &c.IdentityID
	}
	if err := tx.Create(&a).Error; err != nil {
		return nil, err
	}
	accounts[key] = &a
	return &a, nil
}

func sameTime(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(*b)
}

// applyTx records one operation other than a grant or a revoke (ApplyTx
// records those together); accounts keeps the accounts read or made so far.
func applyTx(tx *gorm.DB, c Change, accounts map[[2]string]*Account) error {
	now := time.Now().UTC()
	acct := func(create bool) (*Account, error) { return accountTx(tx, c, accounts, create) }
	setStatus := func(status string) error {
		return tx.Model(&Account{}).Where("connector_id = ? AND username = ?", c.ConnectorID, c.Username).
			Updates(map[string]any{"status": status, "updated_at": now}).Error
	}
	switch c.Operation {
	case connectors.OpCreateAccount:
		a, err := acct(true)
		if err != nil {
			return err
		}
		return tx.Model(a).Updates(map[string]any{"status": "enabled", "external_id": c.ExternalID, "updated_at": now}).Error
	case connectors.OpDeleteAccount:
		a, err := acct(false)
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := tx.Where("account_id = ?", a.ID).Delete(&Membership{}).Error; err != nil {
			return err
		}
		return setStatus("deleted")
	case connectors.OpEnableAccount:
		return setStatus("enabled")
	case connectors.OpDisableAccount:
		return setStatus("locked")
	}
	return fmt.Errorf("identities: unknown operation %q", c.Operation)
}
