package requests

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/provisor/provisor/database"
)

// KeyLifetime is how long an idempotency key names the run it started.
const KeyLifetime = 24 * time.Hour

// KeyField names the idempotency key in errors: the HTTP header it comes in.
const KeyField = "Idempotency-Key"

// IdempotencyKey is a client's name for one attempt at starting a run: a
// start sent again with the same key (a double click, a retry after a lost
// answer) gives the run the first one started instead of a new one.
type IdempotencyKey struct {
	// Actor is who sent the key: the keys of two actors never meet.
	Actor string
	// Key is the client's value.
	Key string
	// Fingerprint sums up what was asked with the key (the route and the
	// body): the same key with another request is refused.
	Fingerprint string
}

// expiredPerClaim bounds how many expired keys a claim deletes: as many
// keys expire as are written, so a few per claim keep the table to about
// a lifetime's keys.
const expiredPerClaim = 100

// ClaimKeyTx records in tx that k starts the run instanceID, and returns
// "". When k already started a run within its lifetime it returns that
// run's id and records nothing; when it was used for another request it
// returns a ValidationError naming KeyField. Two transactions that claim one
// key at once agree: on PostgreSQL the second waits for the first to end.
func (s *Service) ClaimKeyTx(ctx context.Context, tx *gorm.DB, k *IdempotencyKey, instanceID string) (string, error) {
	now := time.Now().UTC()
	if err := tx.Exec("DELETE FROM idempotency_keys WHERE actor = ? AND idem_key = ? AND expires_at <= ?", k.Actor, k.Key, now).Error; err != nil {
		return "", fmt.Errorf("requests: idempotency key: %w", err)
	}
	// Another claim deleting the same keys is not waited for.
	expired := "SELECT actor, idem_key FROM idempotency_keys WHERE expires_at <= ? LIMIT ?" + database.SkipLocked(tx)
	if err := tx.Exec("DELETE FROM idempotency_keys WHERE (actor, idem_key) IN ("+expired+")", now, expiredPerClaim).Error; err != nil {
		return "", fmt.Errorf("requests: delete expired idempotency keys: %w", err)
	}
	res := tx.Exec(`INSERT INTO idempotency_keys (actor, idem_key, fingerprint, instance_id, created_at, expires_at)
		VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`, k.Actor, k.Key, k.Fingerprint, instanceID, now, now.Add(KeyLifetime))
	if res.Error != nil {
		return "", fmt.Errorf("requests: idempotency key: %w", res.Error)
	}
	if res.RowsAffected == 1 {
		return "", nil
	}
	var prior struct {
		Fingerprint string
		InstanceID  string
	}
	if err := tx.Raw("SELECT fingerprint, instance_id FROM idempotency_keys WHERE actor = ? AND idem_key = ?", k.Actor, k.Key).
		Scan(&prior).Error; err != nil {
		return "", fmt.Errorf("requests: idempotency key: %w", err)
	}
	if prior.Fingerprint != k.Fingerprint {
		return "", keyReused()
	}
	return prior.InstanceID, nil
}

func keyReused() error {
	return &ValidationError{Fields: []FieldError{{Field: KeyField,
		Message: "this key was already sent with another request; send a new key for a new request"}}}
}

// KeyedRun returns the run k started within its lifetime, or "" when it
// started none.
func (s *Service) KeyedRun(ctx context.Context, k *IdempotencyKey) (string, error) {
	var prior struct {
		Fingerprint string
		InstanceID  string
	}
	err := s.db.Gorm.WithContext(ctx).Raw("SELECT fingerprint, instance_id FROM idempotency_keys WHERE actor = ? AND idem_key = ? AND expires_at > ?",
		k.Actor, k.Key, time.Now().UTC()).Scan(&prior).Error
	switch {
	case err != nil:
		return "", fmt.Errorf("requests: idempotency key: %w", err)
	case prior.InstanceID == "":
		return "", nil
	case prior.Fingerprint != k.Fingerprint:
		return "", keyReused()
	}
	return prior.InstanceID, nil
}
