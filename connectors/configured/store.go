package configured

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"github.com/provisor/provisor/connectors"
	"github.com/provisor/provisor/connectors/secrets"
	"github.com/provisor/provisor/database"
	"github.com/provisor/provisor/input"
)

// Record is a configured connector as stored. Secrets are sealed; they are
// never returned to a client.
type Record struct {
	ID            string `gorm:"primaryKey"`
	Name          string
	Type          string
	Description   string
	Settings      string
	Secrets       []byte
	Enabled       bool
	Health        string
	HealthMessage string
	HealthAt      *time.Time
	ImportCookie  string
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

// TableName is the table of connector records.
func (Record) TableName() string { return "connectors" }

// Input is what a client sends to create or change a connector. Secrets
// left out of an update keep their stored value.
type Input struct {
	Name        string            `json:"name"`
	Type        string            `json:"type"`
	Description string            `json:"description"`
	Settings    json.RawMessage   `json:"settings"`
	Secrets     map[string]string `json:"secrets"`
	Enabled     *bool             `json:"enabled"`
}

// Store keeps connector records and builds live connectors from them.
type Store struct {
	db       *gorm.DB
	registry *connectors.Registry
	sealer   *secrets.Sealer

	mu    sync.Mutex
	cache map[string]cached

	opts StoreOptions
}

// StoreOptions configure a Store. A nil *StoreOptions means defaults.
type StoreOptions struct {
	// SavedFunc, if set, is called after a connector was created or
	// changed (the app gives directories their data import tasks).
	SavedFunc func(ctx context.Context, r *Record)
}

type cached struct {
	updatedAt time.Time
	conn      connectors.Connector
}

// NewStore returns a store over db.
func NewStore(db *gorm.DB, registry *connectors.Registry, sealer *secrets.Sealer, opts *StoreOptions) *Store {
	s := &Store{db: db, registry: registry, sealer: sealer, cache: map[string]cached{}}
	if opts != nil {
		s.opts = *opts
	}
	return s
}

// Registry returns the connector types the store knows.
func (s *Store) Registry() *connectors.Registry { return s.registry }

var namePattern = regexp.MustCompile(`^[\p{L}\p{N}][\p{L}\p{N} ._()-]{0,99}$`)

func (s *Store) validate(in *Input, creating bool) connectors.FieldErrors {
	problems := connectors.FieldErrors{}
	in.Name = strings.TrimSpace(in.Name)
	if !namePattern.MatchString(in.Name) {
		problems["name"] = "required: 1 to 100 letters, digits, spaces or . _ ( ) -, starting with a letter or digit"
	}
	t, ok := s.registry.Lookup(in.Type)
	if !ok {
		if creating {
			problems["type"] = fmt.Sprintf("unknown connector type %q; known: %s", in.Type, strings.Join(s.registry.Names(), ", "))
		}
		return problems
	}
	if len(in.Settings) == 0 || string(in.Settings) == "null" {
		in.Settings = json.RawMessage(`{}`)
	}
	if t.ValidateSettings != nil {
		for k, v := range t.ValidateSettings(in.Settings, in.Secrets) {
			problems[k] = v
		}
	}
	if p := input.Text(in.Description, 2000); p != "" {
		problems["description"] = p
	}
	if path, p := input.JSON(in.Settings); p != "" {
		problems[strings.TrimSuffix("settings."+path, ".")] = p
	}
	for k, v := range in.Secrets {
		if p := input.Text(v, 10000); p != "" {
			problems["secrets."+k] = p
		} else if p := input.Line(k, 100); p != "" {
			problems["secrets"] = "a name " + p
		}
	}
	return problems
}

// Create validates and stores a new connector.
func (s *Store) Create(ctx context.Context, in Input) (*Record, error) {
	if problems := s.validate(&in, true); len(problems) > 0 {
		return nil, problems
	}
	sealed, err := s.sealer.Seal(in.Secrets)
	if err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	r := &Record{
		ID: uuid.NewString(), Name: in.Name, Type: in.Type, Description: in.Description,
		Settings: string(in.Settings), Secrets: sealed, Enabled: in.Enabled == nil || *in.Enabled,
		Health: "unknown", CreatedAt: now, UpdatedAt: now,
	}
	if err := s.db.WithContext(ctx).Create(r).Error; err != nil {
		if database.IsUniqueViolation(err) {
			return nil, connectors.FieldErrors{"name": "a connector called " + in.Name + " already exists"}
		}
		return nil, fmt.Errorf("connectors: create %s: %w", in.Name, err)
	}
	if s.opts.SavedFunc != nil {
		s.opts.SavedFunc(ctx, r)
	}
	return r, nil
}

// Update changes a connector. Type cannot change.
func (s *Store) Update(ctx context.Context, id string, in Input) (*Record, error) {
	r, err := s.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if in.Type != "" && in.Type != r.Type {
		return nil, connectors.FieldErrors{"type": "the type of a connector cannot change"}
	}
	in.Type = r.Type
	if err := s.keepSecrets(r, &in); err != nil {
		return nil, err
	}
	sealed, err := s.sealer.Seal(in.Secrets)
	if err != nil {
		return nil, err
	}
	enabled := r.Enabled
	if in.Enabled != nil {
		enabled = *in.Enabled
	}
	res := s.db.WithContext(ctx).Model(r).Updates(map[string]any{
		"name": in.Name, "description": in.Description, "settings": string(in.Settings),
		"secrets": sealed, "enabled": enabled, "updated_at": time.Now().UTC(),
	})
	if res.Error != nil {
		if database.IsUniqueViolation(res.Error) {
			return nil, connectors.FieldErrors{"name": "a connector called " + in.Name + " already exists"}
		}
		return nil, fmt.Errorf("connectors: update %s: %w", id, res.Error)
	}
	r, err = s.Get(ctx, id)
	if err == nil && s.opts.SavedFunc != nil {
		s.opts.SavedFunc(ctx, r)
	}
	return r, err
}

// keepSecrets completes in, a change of r, with the stored secrets it does
// not give, and validates it. When in changes a setting the secrets are
// bound to (Type.SecretBound), every stored secret must be given again: the
// answer names each one left out, so a stored secret never goes to a server
// other than the one it was entered for.
func (s *Store) keepSecrets(r *Record, in *Input) error {
	stored, err := s.sealer.Open(r.Secrets)
	if err != nil {
		return err
	}
	var missing connectors.FieldErrors
	if t, ok := s.registry.Lookup(r.Type); ok && t.SecretBound != nil && len(stored) > 0 {
		if changed := t.SecretBound.Changed(json.RawMessage(r.Settings), in.Settings); len(changed) > 0 {
			missing = connectors.FieldErrors{}
			for k := range stored {
				if in.Secrets[k] != "" {
					continue
				}
				label := t.SecretBound.Labels[k]
				if label == "" {
					label = k
				}
				reason := t.SecretBound.Reason
				if reason == "" {
					reason = "the settings it is sent with changed"
				}
				missing["secrets."+k] = fmt.Sprintf("enter %s again: %s (%s)", label, reason, strings.Join(changed, ", "))
			}
		}
	}
	merged := make(map[string]string, len(stored)+len(in.Secrets))
	maps.Copy(merged, stored)
	maps.Copy(merged, in.Secrets)
	in.Secrets = merged
	problems := s.validate(in, false)
	maps.Copy(problems, missing)
	if len(problems) > 0 {
		return problems
	}
	return nil
}

// CheckInput tests the connection a connector would have with the changes
// of in, without saving them or recording the connector's health. The
// stored secrets are completed as Update completes them: they are used with
// a changed server only when given again.
func (s *Store) CheckInput(ctx context.Context, id string, in Input) (connectors.Health, error) {
	r, err := s.Get(ctx, id)
	if err != nil {
		return connectors.Health{}, err
	}
	if in.Type != "" && in.Type != r.Type {
		return connectors.Health{}, connectors.FieldErrors{"type": "the type of a connector cannot change"}
	}
	in.Type = r.Type
	if in.Name == "" {
		in.Name = r.Name
	}
	if in.Settings == nil {
		in.Settings = json.RawMessage(r.Settings)
	}
	if err := s.keepSecrets(r, &in); err != nil {
		return connectors.Health{}, err
	}
	t, _ := s.registry.Lookup(r.Type)
	conn, err := t.New(connectors.Config{ID: r.ID, Name: in.Name, Settings: in.Settings, Secrets: in.Secrets})
	if err != nil {
		return connectors.Health{Message: err.Error()}, nil
	}
	defer closeConnector(conn)
	return connectors.CheckHealth(ctx, conn), nil
}

// Get returns one connector.
func (s *Store) Get(ctx context.Context, id string) (*Record, error) {
	return s.GetTx(ctx, s.db, id)
}

// GetTx is Get read in tx.
func (s *Store) GetTx(ctx context.Context, tx *gorm.DB, id string) (*Record, error) {
	if !input.ID(id) {
		return nil, connectors.ErrNotFound
	}
	var r Record
	err := tx.WithContext(ctx).Where("id = ?", id).Take(&r).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, connectors.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("connectors: get %s: %w", id, err)
	}
	return &r, nil
}

// List returns every connector by name.
func (s *Store) List(ctx context.Context) ([]Record, error) {
	var out []Record
	if err := s.db.WithContext(ctx).Order("name").Find(&out).Error; err != nil {
		return nil, fmt.Errorf("connectors: list: %w", err)
	}
	return out, nil
}

// Open returns the live connector for a record, reusing one built before
// unless the record changed since.
func (s *Store) Open(ctx context.Context, r *Record) (connectors.Connector, error) {
	s.mu.Lock()
	c, ok := s.cache[r.ID]
	s.mu.Unlock()
	if ok && c.updatedAt.Equal(r.UpdatedAt) {
		return c.conn, nil
	}
	t, ok := s.registry.Lookup(r.Type)
	if !ok {
		return nil, connectors.Permanent(fmt.Errorf("connector type %q is not available in this build", r.Type))
	}
	secrets, err := s.sealer.Open(r.Secrets)
	if err != nil {
		return nil, connectors.Permanent(err)
	}
	conn, err := t.New(connectors.Config{ID: r.ID, Name: r.Name, Settings: json.RawMessage(r.Settings), Secrets: secrets})
	if err != nil {
		return nil, connectors.Permanent(fmt.Errorf("connector %s: %w", r.Name, err))
	}
	s.mu.Lock()
	old, replaced := s.cache[r.ID]
	if replaced && !old.updatedAt.Before(r.UpdatedAt) {
		// Built meanwhile by another caller, or from newer settings: use
		// that one, and let go of this one, which nobody has used.
		s.mu.Unlock()
		closeConnector(conn)
		return old.conn, nil
	}
	s.cache[r.ID] = cached{updatedAt: r.UpdatedAt, conn: conn}
	s.mu.Unlock()
	// A connector built from older settings lets go of its connections
	// (operations under way finish first).
	if replaced {
		closeConnector(old.conn)
	}
	return conn, nil
}

func closeConnector(c connectors.Connector) {
	if closer, ok := c.(io.Closer); ok {
		_ = closer.Close()
	}
}

// SaveImportCookieTx stores where the next delta import of a connector
// starts. It leaves updated_at alone: the live connector stays cached.
func (s *Store) SaveImportCookieTx(tx *gorm.DB, id, cookie string) error {
	if err := tx.Model(&Record{}).Where("id = ?", id).UpdateColumn("import_cookie", cookie).Error; err != nil {
		return fmt.Errorf("connectors: save import cookie of %s: %w", id, err)
	}
	return nil
}

// OpenByID is Get then Open.
func (s *Store) OpenByID(ctx context.Context, id string) (*Record, connectors.Connector, error) {
	r, err := s.Get(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	c, err := s.Open(ctx, r)
	return r, c, err
}

// RecordHealth stores the outcome of a connection check.
func (s *Store) RecordHealth(ctx context.Context, id string, h connectors.Health) error {
	status := "healthy"
	if !h.OK {
		status = "unhealthy"
	}
	now := time.Now().UTC()
	return s.db.WithContext(ctx).Model(&Record{}).Where("id = ?", id).
		Updates(map[string]any{"health": status, "health_message": h.Message, "health_at": now}).Error
}

// SecretNames lists the names of a connector's stored secrets, never their values.
func (s *Store) SecretNames(r *Record) ([]string, error) {
	m, err := s.sealer.Open(r.Secrets)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out, nil
}
