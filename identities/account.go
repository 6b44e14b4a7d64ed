package identities

import (
	"context"
	"errors"
	"time"

	"gorm.io/gorm"
)

// Account is an identity's account on a connector, as last seen by Provisor.
type Account struct {
	ID          string  `gorm:"primaryKey" json:"id"`
	ConnectorID string  `json:"connector_id"`
	IdentityID  *string `json:"identity_id"`
	Username    string  `json:"username"`
	ExternalID  string  `json:"external_id"`
	Status      string  `json:"status"`
	// ManagerExternalID is the external id of the account's manager as the
	// system last stated it ("" for none), kept so that a manager imported
	// after its reports is found by a later import.
	ManagerExternalID string    `json:"manager_external_id,omitempty"`
	CreatedAt         time.Time `json:"created_at"`
	UpdatedAt         time.Time `json:"updated_at"`
}

// TableName is the table of accounts.
func (Account) TableName() string { return "accounts" }

// AccountOf returns the identity's account on a connector, or ErrNotFound.
func (s *Service) AccountOf(ctx context.Context, tx *gorm.DB, connectorID, identityID string) (*Account, error) {
	if tx == nil {
		tx = s.db.WithContext(ctx)
	}
	var a Account
	err := tx.Where("connector_id = ? AND identity_id = ?", connectorID, identityID).Take(&a).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	return &a, nil
}

// AccountsOfTx returns the accounts that identities have on a connector,
// by identity id, read in tx.
func (s *Service) AccountsOfTx(ctx context.Context, tx *gorm.DB, connectorID string, identityIDs []string) (map[string]*Account, error) {
	out := make(map[string]*Account, len(identityIDs))
	for start := 0; start < len(identityIDs); start += 500 {
		var rows []Account
		if err := tx.WithContext(ctx).Where("connector_id = ? AND identity_id IN ?", connectorID,
			identityIDs[start:min(start+500, len(identityIDs))]).Find(&rows).Error; err != nil {
			return nil, err
		}
		for i := range rows {
			if rows[i].IdentityID != nil {
				out[*rows[i].IdentityID] = &rows[i]
			}
		}
	}
	return out, nil
}

// Accounts lists an identity's accounts.
func (s *Service) Accounts(ctx context.Context, identityID string) ([]Account, error) {
	var out []Account
	err := s.db.WithContext(ctx).Where("identity_id = ?", identityID).Order("connector_id").Find(&out).Error
	return out, err
}
