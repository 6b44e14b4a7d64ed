package requests

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"github.com/provisor/provisor/input"
)

// Draft is a request being filled in by a wizard: kept in the database
// so that Back, Next and a reload lose nothing.
type Draft struct {
	ID     string `json:"-"`
	UserID string `json:"-"`
	Request
	// BeneficiaryName is shown while the draft is filled in.
	BeneficiaryName string `json:"beneficiary_name,omitempty"`
	// TaskName is the name a task made from the draft gets.
	TaskName    string    `json:"task_name,omitempty"`
	Description string    `json:"description,omitempty"`
	UpdatedAt   time.Time `json:"-"`
}

type draftRow struct {
	ID        string `gorm:"primaryKey"`
	UserID    string
	Data      string
	CreatedAt time.Time
	UpdatedAt time.Time
}

func (draftRow) TableName() string { return "request_drafts" }

// Drafts older than this are removed when a new one is made.
const draftLifetime = 30 * 24 * time.Hour

// NewDraft starts a draft of type t for a user.
func (s *Service) NewDraft(ctx context.Context, userID string, t Type) (*Draft, error) {
	if !t.valid() {
		return nil, &ValidationError{Fields: []FieldError{{Field: "type", Message: "choose what the request does"}}}
	}
	d := &Draft{ID: uuid.NewString(), UserID: userID, Request: Request{Type: t, Priority: Normal}}
	now := time.Now().UTC()
	b, _ := json.Marshal(d)
	err := s.db.Gorm.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Where("updated_at < ?", now.Add(-draftLifetime)).Delete(&draftRow{}).Error; err != nil {
			return err
		}
		return tx.Create(&draftRow{ID: d.ID, UserID: userID, Data: string(b), CreatedAt: now, UpdatedAt: now}).Error
	})
	if err != nil {
		return nil, fmt.Errorf("requests: new draft: %w", err)
	}
	d.UpdatedAt = now
	return d, nil
}

// GetDraft returns a user's draft.
func (s *Service) GetDraft(ctx context.Context, userID, id string) (*Draft, error) {
	if !input.ID(id) {
		return nil, ErrNotFound
	}
	var row draftRow
	err := s.db.Gorm.WithContext(ctx).Where("id = ? AND user_id = ?", id, userID).Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	d := &Draft{}
	if err := json.Unmarshal([]byte(row.Data), d); err != nil {
		return nil, fmt.Errorf("requests: draft %s: %w", id, err)
	}
	d.ID, d.UserID, d.UpdatedAt = row.ID, row.UserID, row.UpdatedAt
	return d, nil
}

// SaveDraft stores a draft's current content. Its text is checked first
// (a *ValidationError names the fields): the rest of the request is
// checked by the wizard's steps, but what is kept must be text both
// databases store alike.
func (s *Service) SaveDraft(ctx context.Context, d *Draft) error {
	if err := d.checkText().orNil(); err != nil {
		return err
	}
	b, err := json.Marshal(d)
	if err != nil {
		return err
	}
	res := s.db.Gorm.WithContext(ctx).Model(&draftRow{}).Where("id = ? AND user_id = ?", d.ID, d.UserID).
		Updates(map[string]any{"data": string(b), "updated_at": time.Now().UTC()})
	if res.Error != nil {
		return fmt.Errorf("requests: save draft: %w", res.Error)
	}
	if res.RowsAffected == 0 {
		return ErrNotFound
	}
	return nil
}

// DeleteDraft removes a draft of the user's: ErrNotFound when they have
// none with that id (another user's draft is not theirs to discard).
func (s *Service) DeleteDraft(ctx context.Context, userID, id string) error {
	if !input.ID(id) {
		return ErrNotFound
	}
	r := s.db.Gorm.WithContext(ctx).Where("id = ? AND user_id = ?", id, userID).Delete(&draftRow{})
	if r.Error != nil {
		return r.Error
	}
	if r.RowsAffected == 0 {
		// Another user's draft, or one that is gone: there is nothing of
		// the caller's here.
		return ErrNotFound
	}
	return nil
}

// CheckFields validates r and returns the problems whose field starts
// with one of prefixes (all of them when none is given), by field.
func (s *Service) CheckFields(ctx context.Context, r Request, prefixes ...string) (map[string]string, error) {
	err := s.Validate(ctx, &r)
	var ve *ValidationError
	if err == nil {
		return nil, nil
	}
	if !errors.As(err, &ve) {
		return nil, err
	}
	out := map[string]string{}
	for _, f := range ve.Fields {
		if len(prefixes) == 0 {
			out[f.Field] = f.Message
			continue
		}
		for _, p := range prefixes {
			if f.Field == p || (len(f.Field) > len(p) && f.Field[:len(p)] == p && f.Field[len(p)] == '[') {
				out[f.Field] = f.Message
			}
		}
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

// checkText checks that every value of a draft is text that can be kept.
func (d *Draft) checkText() *ValidationError {
	v := &ValidationError{}
	line := func(field, s string, max int) {
		if p := input.Line(s, max); p != "" {
			v.add(field, "%s", p)
		}
	}
	line("type", string(d.Type), 100)
	line("beneficiary_type", d.BeneficiaryType, 100)
	line("beneficiary_id", d.BeneficiaryID, 100)
	line("connector_id", d.ConnectorID, 100)
	for i, e := range d.Entitlements {
		line(fmt.Sprintf("entitlements[%d]", i), e, 100)
	}
	if p := input.Text(d.Justification, 2000); p != "" {
		v.add("justification", "%s", p)
	}
	line("priority", string(d.Priority), 100)
	line("duration", d.Duration, 100)
	line("import_mode", d.ImportMode, 100)
	line("task_name", d.TaskName, 200)
	if p := input.Text(d.Description, 4000); p != "" {
		v.add("description", "%s", p)
	}
	return v
}

// ListDrafts returns a user's drafts, the most recently changed first.
func (s *Service) ListDrafts(ctx context.Context, userID string) ([]Draft, error) {
	var rows []draftRow
	if err := s.db.Gorm.WithContext(ctx).Where("user_id = ? AND updated_at >= ?", userID, time.Now().UTC().Add(-draftLifetime)).
		Order("updated_at DESC, id").Limit(50).Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("requests: list drafts: %w", err)
	}
	out := make([]Draft, 0, len(rows))
	for _, row := range rows {
		d := Draft{}
		if err := json.Unmarshal([]byte(row.Data), &d); err != nil {
			continue // a draft that cannot be read is not offered
		}
		d.ID, d.UserID, d.UpdatedAt = row.ID, row.UserID, row.UpdatedAt
		out = append(out, d)
	}
	return out, nil
}

// ChangeType gives a draft another request type and keeps what still
// applies: the beneficiary and connector always, the entitlements when the
// new type takes entitlements, the duration when it is time-bound.
func (d *Draft) ChangeType(t Type) error {
	if !t.valid() || t == DataImport {
		return &ValidationError{Fields: []FieldError{{Field: "type", Message: "choose what the request does"}}}
	}
	d.Type = t
	switch t {
	case CreateAccount, AddEntitlements, RemoveEntitlements:
	default:
		d.Entitlements = nil
	}
	if t != CreateAccount && t != AddEntitlements {
		d.Duration = ""
	}
	return nil
}
