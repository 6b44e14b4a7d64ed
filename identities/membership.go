package identities

import (
	"context"
	"time"

	"gorm.io/gorm"
)

type Membership struct {
	AccountID     string `gorm:"primaryKey"`
	EntitlementID string `gorm:"primaryKey"`
	GrantedAt     time.Time
	ExpiresAt     *time.Time
}

func (Membership) TableName() string { return "memberships" }

// HeldTx returns which of the entitlements each account holds, as the
// portal last recorded it, by account id and entitlement id, read in tx.
func (s *Service) HeldTx(ctx context.Context, tx *gorm.DB, accountIDs, entitlementIDs []string) (map[[2]string]bool, error) {
	out := map[[2]string]bool{}
	if len(accountIDs) == 0 || len(entitlementIDs) == 0 {
		return out, nil
	}
	for start := 0; start < len(accountIDs); start += 500 {
		var rows []Membership
		if err := tx.WithContext(ctx).Select("account_id, entitlement_id").Where("account_id IN ? AND entitlement_id IN ?",
			accountIDs[start:min(start+500, len(accountIDs))], entitlementIDs).Find(&rows).Error; err != nil {
			return nil, err
		}
		for _, m := range rows {
			out[[2]string{m.AccountID, m.EntitlementID}] = true
		}
	}
	return out, nil
}

// EntitlementsOf lists the entitlements an identity holds on a connector.
func (s *Service) EntitlementsOf(ctx context.Context, connectorID, identityID string) ([]Entitlement, error) {
	var out []Entitlement
	err := s.db.WithContext(ctx).Model(&Entitlement{}).
		Joins("JOIN memberships ms ON ms.entitlement_id = entitlements.id").
		Joins("JOIN accounts a ON a.id = ms.account_id").
		Where("a.connector_id = ? AND a.identity_id = ?", connectorID, identityID).
		Order("entitlements.name").Find(&out).Error
	return out, err
}
