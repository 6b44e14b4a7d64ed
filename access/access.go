// Package access keeps who may use Provisor: portal users with a role
// (requester or admin), API clients with scopes, and the bearer tokens they
// get with the OAuth2 client-credentials grant. Passwords are hashed with
// bcrypt; client secrets and tokens are random and stored as SHA-256 hashes.
package access

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/mail"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"golang.org/x/crypto/bcrypt"
	"gorm.io/gorm"

	"github.com/provisor/provisor/audit"
	"github.com/provisor/provisor/input"
)

// Roles.
const (
	RoleRequester = "requester"
	// RoleHelpdesk may ask for access for anyone, within the policy of
	// each entitlement; it has no admin pages.
	RoleHelpdesk = "helpdesk"
	RoleAdmin    = "admin"
)

// Roles lists the roles of portal users.
var Roles = []string{RoleRequester, RoleHelpdesk, RoleAdmin}

// Scopes an API client can hold.
const (
	// ScopeRead reads everything the API lists, but users and API clients.
	ScopeRead = "read"
	// ScopeRequests submits requests.
	ScopeRequests = "requests"
	// ScopeTasks creates, changes and deletes tasks.
	ScopeTasks = "tasks"
	// ScopeTrigger triggers tasks.
	ScopeTrigger = "trigger"
	// ScopeJobs cancels, retries and force-ends runs.
	ScopeJobs = "jobs"
	// ScopeDirectory creates identities, workgroups, connectors and entitlements.
	ScopeDirectory = "directory"
	// ScopeAdmin lists, disables and resets portal users and lists and
	// revokes API clients: what an admin does on the Users and API clients
	// page. No other scope reads them.
	ScopeAdmin = "admin"
	// ScopeApprovals lists and decides the approvals of the user the
	// client acts for, and withdraws that user's requests; a client that
	// acts as a service of its own lists every approval and decides none.
	ScopeApprovals = "approvals"
)

// AllScopes lists every scope.
var AllScopes = []string{ScopeRead, ScopeRequests, ScopeTasks, ScopeTrigger, ScopeJobs, ScopeDirectory, ScopeAdmin, ScopeApprovals}

// ErrInvalidCredentials is returned for a wrong client id, secret, username
// or password, without saying which.
var ErrInvalidCredentials = errors.New("invalid credentials")

// User is a person who signs in to the portal.
type User struct {
	ID           string    `gorm:"primaryKey" json:"id"`
	Username     string    `json:"username"`
	Email        string    `json:"email"`
	DisplayName  string    `json:"display_name"`
	PasswordHash string    `json:"-"`
	Role         string    `json:"role"`
	IdentityID   *string   `json:"identity_id"`
	Disabled     bool      `json:"disabled"`
	CreatedAt    time.Time `json:"created_at"`
	UpdatedAt    time.Time `json:"updated_at"`
	// LastSignInAt is nil for a user who never signed in (or did so only
	// before the time was kept and left no audit entry).
	LastSignInAt *time.Time `json:"last_sign_in_at"`
}

// TableName is the users table.
func (User) TableName() string { return "users" }

// Client is an API client.
type Client struct {
	ID         string     `gorm:"primaryKey" json:"id"`
	ClientID   string     `json:"client_id"`
	Name       string     `json:"name"`
	SecretHash string     `json:"-"`
	Scopes     string     `json:"scopes"`
	CreatedBy  string     `json:"created_by"`
	CreatedAt  time.Time  `json:"created_at"`
	RevokedAt  *time.Time `json:"revoked_at"`
	// LastUsedAt is when the client last got or used a token, to the
	// minute; nil if never.
	LastUsedAt *time.Time `json:"last_used_at"`
	// UserID, if set, is the portal user the client acts for: its requests
	// and tasks are checked as that user's.
	UserID *string `json:"user_id"`
}

// TableName is the API clients table.
func (Client) TableName() string { return "api_clients" }

type token struct {
	TokenHash string `gorm:"primaryKey"`
	ClientID  string
	Scopes    string
	ExpiresAt time.Time
	CreatedAt time.Time
}

func (token) TableName() string { return "api_tokens" }

// Principal is who is calling: a user or an API client.
type Principal struct {
	// ID is the API client's id, which stays when the client is renamed.
	ID     string
	Name   string
	Role   string
	Scopes []string
	// User is the portal user an API client acts for, or nil for a client
	// that acts as a service of its own.
	User *User
}

// Has reports whether the principal holds scope.
func (p *Principal) Has(scope string) bool { return slices.Contains(p.Scopes, scope) }

// Service manages users, clients and tokens.
type Service struct {
	db       *gorm.DB
	tokenTTL time.Duration
	opts     Options
}

// Options configure the Service. A nil *Options means defaults.
type Options struct {
	// DirectoryFunc, if set, signs in people a directory knows and who
	// have no local password (see directorySignIn).
	DirectoryFunc DirectorySignInFunc
}

// New returns the service.
func New(db *gorm.DB, opts *Options) *Service {
	s := &Service{db: db, tokenTTL: time.Hour}
	if opts != nil {
		s.opts = *opts
	}
	return s
}

// TokenTTL is how long an access token lives.
func (s *Service) TokenTTL() time.Duration { return s.tokenTTL }

func randomString(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// GeneratePassword returns a random password people can type.
func GeneratePassword() string { return randomString(12) }

func hash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// usernamePattern is what a portal username may be. It has no colon, which
// every internal actor has (audit.IsInternal), so no user can pass for one.
var usernamePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$`)

// UserInput creates a user.
type UserInput struct {
	Username    string
	Email       string
	DisplayName string
	Password    string
	Role        string
}

// CreateUser validates and stores a user.
func (s *Service) CreateUser(ctx context.Context, in UserInput, actor string) (*User, error) {
	var problems []string
	if !usernamePattern.MatchString(in.Username) {
		problems = append(problems, "username: 1 to 64 letters, digits or . _ @ -, starting with a letter or digit")
	}
	if in.Email != "" {
		if a, err := mail.ParseAddress(in.Email); err != nil || a.Address != in.Email {
			problems = append(problems, "email: not a valid email address")
		}
	}
	if p := input.Line(in.DisplayName, 200); p != "" {
		problems = append(problems, "display_name: "+p)
	}
	if len(in.Password) < 12 {
		problems = append(problems, "password: at least 12 characters")
	}
	if len(in.Password) > 72 {
		problems = append(problems, "password: at most 72 bytes")
	}
	if !slices.Contains(Roles, in.Role) {
		problems = append(problems, "role: requester, helpdesk or admin")
	}
	if len(problems) > 0 {
		return nil, errors.New(strings.Join(problems, "; "))
	}
	h, err := bcrypt.GenerateFromPassword([]byte(in.Password), bcrypt.DefaultCost)
	if err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	u := &User{ID: uuid.NewString(), Username: in.Username, Email: in.Email, DisplayName: in.DisplayName,
		PasswordHash: string(h), Role: in.Role, CreatedAt: now, UpdatedAt: now}
	if u.DisplayName == "" {
		u.DisplayName = u.Username
	}
	err = s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Create(u).Error; err != nil {
			return err
		}
		return audit.RecordTx(tx, actor, "user.create", "user", u.ID, map[string]any{"username": u.Username, "role": u.Role})
	})
	if err != nil {
		if errors.Is(err, gorm.ErrDuplicatedKey) || strings.Contains(err.Error(), "UNIQUE") || strings.Contains(err.Error(), "23505") {
			return nil, fmt.Errorf("username: %s is taken", in.Username)
		}
		return nil, fmt.Errorf("access: create user: %w", err)
	}
	return u, nil
}

// Authenticate checks a username and password. A disabled user with the
// right password gets ErrAccountDisabled: only who knows the password
// learns that the account exists and is disabled.
func (s *Service) Authenticate(ctx context.Context, username, password string) (*User, error) {
	var u User
	err := s.db.WithContext(ctx).Where("username = ?", username).Take(&u).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		// Spend the same time as a real check so timing does not reveal names.
		_ = bcrypt.CompareHashAndPassword([]byte("$2a$10$7EqJtq98hPqEX7fNZaFWoOhi5BWX4Z3/ZSX5.PXxG6VoZQ3fu4zjW"), []byte(password))
		return nil, ErrInvalidCredentials
	}
	if err != nil {
		return nil, err
	}
	if bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), []byte(password)) != nil {
		return nil, ErrInvalidCredentials
	}
	if u.Disabled {
		return nil, ErrAccountDisabled
	}
	return &u, nil
}

// ParseScopes reads a comma- or space-separated scope list; "all" means every scope.
func ParseScopes(s string) ([]string, error) {
	var out []string
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' }) {
		if f == "all" {
			return slices.Clone(AllScopes), nil
		}
		if !slices.Contains(AllScopes, f) {
			return nil, fmt.Errorf("unknown scope %q; scopes are %s, or all", f, strings.Join(AllScopes, ", "))
		}
		if !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no scope given; scopes are %s, or all", strings.Join(AllScopes, ", "))
	}
	return out, nil
}

// CreateClient stores a new API client and returns it with its secret,
// which is not stored and cannot be shown again.
func (s *Service) CreateClient(ctx context.Context, name string, scopes []string, actor string) (*Client, string, error) {
	return s.CreateClientFor(ctx, name, scopes, "", actor)
}

// CreateClientFor is CreateClient for a client that acts for the portal
// user named username (none when empty).
func (s *Service) CreateClientFor(ctx context.Context, name string, scopes []string, username, actor string) (*Client, string, error) {
	var forUser *User
	if username != "" {
		u, err := s.UserByUsername(ctx, username)
		if err != nil {
			return nil, "", fmt.Errorf("user: no portal user %s", username)
		}
		forUser = u
	}
	name = strings.TrimSpace(name)
	if name == "" {
		return nil, "", errors.New("name: required, at most 100 characters")
	}
	if p := input.Line(name, 100); p != "" {
		return nil, "", errors.New("name: " + p)
	}
	if len(scopes) == 0 {
		return nil, "", errors.New("scopes: at least one")
	}
	secret := randomString(32)
	c := &Client{ID: uuid.NewString(), ClientID: "pc_" + randomString(12), Name: name, SecretHash: hash(secret),
		Scopes: strings.Join(scopes, " "), CreatedBy: actor, CreatedAt: time.Now().UTC()}
	details := map[string]any{"name": name, "scopes": c.Scopes}
	if forUser != nil {
		c.UserID = &forUser.ID
		details["acts_for"] = forUser.Username
	}
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Create(c).Error; err != nil {
			return err
		}
		return audit.RecordTx(tx, actor, "api_client.create", "api_client", c.ID, details)
	})
	if err != nil {
		return nil, "", fmt.Errorf("access: create client: %w", err)
	}
	return c, secret, nil
}

// IssueToken exchanges client credentials for a bearer token. requested,
// if not empty, narrows the scopes to those asked for.
func (s *Service) IssueToken(ctx context.Context, clientID, secret string, requested []string) (string, []string, error) {
	var c Client
	err := s.db.WithContext(ctx).Where("client_id = ? AND revoked_at IS NULL", clientID).Take(&c).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return "", nil, ErrInvalidCredentials
	}
	if err != nil {
		return "", nil, err
	}
	if subtle.ConstantTimeCompare([]byte(hash(secret)), []byte(c.SecretHash)) != 1 {
		return "", nil, ErrInvalidCredentials
	}
	scopes := strings.Fields(c.Scopes)
	if len(requested) > 0 {
		for _, r := range requested {
			if !slices.Contains(scopes, r) {
				return "", nil, fmt.Errorf("scope %q is not granted to this client", r)
			}
		}
		scopes = requested
	}
	tok := "pt_" + randomString(32)
	now := time.Now().UTC()
	if err := s.db.WithContext(ctx).Create(&token{TokenHash: hash(tok), ClientID: c.ID, Scopes: strings.Join(scopes, " "),
		ExpiresAt: now.Add(s.tokenTTL), CreatedAt: now}).Error; err != nil {
		return "", nil, err
	}
	s.touchClient(ctx, c.ID, c.LastUsedAt, now)
	// Expired tokens are of no use; drop them now and then.
	s.db.WithContext(ctx).Where("expires_at < ?", now.Add(-time.Hour)).Delete(&token{})
	return tok, scopes, nil
}

// Principal returns who holds a bearer token.
func (s *Service) Principal(ctx context.Context, bearer string) (*Principal, error) {
	var row struct {
		Scopes     string
		ID         string
		Name       string
		LastUsedAt *time.Time
		UserID     *string
	}
	now := time.Now().UTC()
	err := s.db.WithContext(ctx).Table("api_tokens t").Select("t.scopes, c.id, c.name, c.last_used_at, c.user_id").
		Joins("JOIN api_clients c ON c.id = t.client_id").
		Where("t.token_hash = ? AND t.expires_at > ? AND c.revoked_at IS NULL", hash(bearer), now).
		Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, ErrInvalidCredentials
	}
	if err != nil {
		return nil, err
	}
	s.touchClient(ctx, row.ID, row.LastUsedAt, now)
	p := &Principal{ID: row.ID, Name: "api:" + row.Name, Scopes: strings.Fields(row.Scopes)}
	if row.UserID != nil {
		// A client acting for a user who was disabled acts for nobody.
		u, err := s.GetUser(ctx, *row.UserID)
		if errors.Is(err, ErrInvalidCredentials) || (err == nil && u.Disabled) {
			return nil, ErrInvalidCredentials
		}
		if err != nil {
			return nil, err
		}
		p.User, p.Role = u, u.Role
	}
	return p, nil
}

// CountUsers returns how many users exist.
func (s *Service) CountUsers(ctx context.Context) (int64, error) {
	var n int64
	err := s.db.WithContext(ctx).Model(&User{}).Count(&n).Error
	return n, err
}
