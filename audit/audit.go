// Package audit is Provisor's append-only audit trail: who did what, to
// what, when. Rows are written in the same transaction as the change they
// describe, and the database refuses to update or delete them.
package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/provisor/provisor/database"
	"github.com/provisor/provisor/input"
)

// Event is one entry of the trail.
type Event struct {
	ID         int64     `gorm:"primaryKey" json:"id"`
	At         time.Time `json:"at"`
	Actor      string    `json:"actor"`
	Action     string    `json:"action"`
	TargetType string    `json:"target_type"`
	TargetID   string    `json:"target_id"`
	Details    string    `json:"-"`
	// DetailsJSON is Details decoded, for the API.
	DetailsJSON map[string]any `gorm:"-" json:"details"`
}

// TableName is the audit table.
func (Event) TableName() string { return "audit_events" }

// RecordTx appends an event in tx.
func RecordTx(tx *gorm.DB, actor, action, targetType, targetID string, details map[string]any) error {
	if details == nil {
		details = map[string]any{}
	}
	b, err := json.Marshal(details)
	if err != nil {
		return err
	}
	e := &Event{At: time.Now().UTC(), Actor: actor, Action: action, TargetType: targetType, TargetID: targetID, Details: string(b)}
	if err := tx.Create(e).Error; err != nil {
		return fmt.Errorf("audit: record %s: %w", action, err)
	}
	return nil
}

// Filter narrows a listing. Zero values match everything.
type Filter struct {
	Actor  string
	Action string
	Since  time.Time
	Until  time.Time
	Limit  int
	Offset int
}

// List returns events newest first, and how many match.
func List(ctx context.Context, db *gorm.DB, f Filter) ([]Event, int64, error) {
	q := db.WithContext(ctx).Model(&Event{})
	f.Actor, f.Action = input.Search(f.Actor), input.Search(f.Action)
	if f.Actor != "" {
		q = q.Where("actor = ?", f.Actor)
	}
	if f.Action != "" {
		q = q.Where("action = ?", f.Action)
	}
	if !f.Since.IsZero() {
		q = q.Where("at >= ?", f.Since.UTC())
	}
	if !f.Until.IsZero() {
		q = q.Where("at < ?", f.Until.UTC())
	}
	out, total, err := database.FindPage[Event](q, "id DESC", database.PageLimit(f.Limit, 100), f.Offset, nil)
	if err != nil {
		return nil, 0, err
	}
	for i := range out {
		_ = json.Unmarshal([]byte(out[i].Details), &out[i].DetailsJSON)
	}
	return out, total, nil
}
