package access

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/provisor/provisor/audit"
)

// Session is a signed-in portal user. The cookie holds a random token; only
// its hash is stored, with the token forms must echo against CSRF.
type Session struct {
	TokenHash  string `gorm:"primaryKey"`
	UserID     string
	CSRFToken  string `gorm:"column:csrf_token"`
	CreatedAt  time.Time
	ExpiresAt  time.Time
	LastSeenAt time.Time

	User *User `gorm:"-"`
}

// TableName is the sessions table.
func (Session) TableName() string { return "web_sessions" }

type loginFailure struct {
	Key          string `gorm:"primaryKey"`
	Failures     int
	LastFailedAt time.Time
}

func (loginFailure) TableName() string { return "login_failures" }

// Session lifetimes.
const (
	// SessionLifetime is the longest a session lasts.
	SessionLifetime = 12 * time.Hour
	// SessionIdle ends a session nobody used for this long.
	SessionIdle = 2 * time.Hour
)

// Slow-down after failed sign-ins: after freeFailures failures for one
// name (or one address), the next attempt waits firstLockout, and each
// further failure doubles the wait, up to maxLockout. A success clears the
// count.
const (
	freeFailures = 5
	firstLockout = 30 * time.Second
	maxLockout   = 15 * time.Minute
	// failureMemory forgets failures older than this.
	failureMemory = time.Hour
)

// ErrSlowDown is returned by SignIn while a name or an address must wait.
type ErrSlowDown struct{ Wait time.Duration }

func (e *ErrSlowDown) Error() string {
	return fmt.Sprintf("too many failed sign-ins: try again in %s", e.Wait.Round(time.Second))
}

func lockoutAfter(failures int) time.Duration {
	if failures < freeFailures {
		return 0
	}
	d := firstLockout << min(failures-freeFailures, 10)
	return min(d, maxLockout)
}

// SignIn checks a username and password, with the slow-down after failed
// attempts for that name and for the caller's address, and on success
// opens a session. It returns the session and the cookie token.
func (s *Service) SignIn(ctx context.Context, username, password, remoteAddr string) (*Session, string, error) {
	username = strings.TrimSpace(username)
	keys := []string{"user:" + strings.ToLower(username), "addr:" + remoteAddr}
	now := time.Now().UTC()
	for _, k := range keys {
		var f loginFailure
		err := s.db.WithContext(ctx).Where("key = ?", k).Take(&f).Error
		if errors.Is(err, gorm.ErrRecordNotFound) {
			continue
		}
		if err != nil {
			return nil, "", err
		}
		if now.Sub(f.LastFailedAt) > failureMemory {
			continue
		}
		if until := f.LastFailedAt.Add(lockoutAfter(f.Failures)); now.Before(until) {
			return nil, "", &ErrSlowDown{Wait: until.Sub(now)}
		}
	}
	u, err := s.Authenticate(ctx, username, password)
	if errors.Is(err, ErrInvalidCredentials) {
		u, err = s.directorySignIn(ctx, username, password)
	}
	if errors.Is(err, ErrInvalidCredentials) {
		for _, k := range keys {
			if ferr := s.recordFailure(ctx, k, now); ferr != nil {
				return nil, "", ferr
			}
		}
		_ = audit.RecordTx(s.db.WithContext(ctx), username, "user.sign_in_failed", "user", "", map[string]any{"address": remoteAddr})
		return nil, "", err
	}
	if err != nil {
		return nil, "", err
	}
	token := randomString(32)
	sess := &Session{TokenHash: hash(token), UserID: u.ID, CSRFToken: randomString(24), CreatedAt: now,
		ExpiresAt: now.Add(SessionLifetime), LastSeenAt: now, User: u}
	err = s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Where("key IN ?", keys).Delete(&loginFailure{}).Error; err != nil {
			return err
		}
		if err := tx.Where("expires_at < ?", now).Delete(&Session{}).Error; err != nil {
			return err
		}
		if err := tx.Create(sess).Error; err != nil {
			return err
		}
		return audit.RecordTx(tx, u.Username, "user.sign_in", "user", u.ID, map[string]any{"address": remoteAddr})
	})
	if err != nil {
		return nil, "", fmt.Errorf("access: open session: %w", err)
	}
	return sess, token, nil
}

func (s *Service) recordFailure(ctx context.Context, key string, now time.Time) error {
	var f loginFailure
	err := s.db.WithContext(ctx).Where("key = ?", key).Take(&f).Error
	if err != nil && !errors.Is(err, gorm.ErrRecordNotFound) {
		return err
	}
	n := 1
	if err == nil && now.Sub(f.LastFailedAt) <= failureMemory {
		n = f.Failures + 1
	}
	return s.db.WithContext(ctx).Clauses(clause.OnConflict{
		Columns:   []clause.Column{{Name: "key"}},
		DoUpdates: clause.AssignmentColumns([]string{"failures", "last_failed_at"}),
	}).Create(&loginFailure{Key: key, Failures: n, LastFailedAt: now}).Error
}

// ErrNoSession is returned for a missing, expired or ended session.
var ErrNoSession = errors.New("no session")

// SessionByToken returns the live session of a cookie token with its user,
// and keeps it alive.
func (s *Service) SessionByToken(ctx context.Context, token string) (*Session, error) {
	if token == "" {
		return nil, ErrNoSession
	}
	now := time.Now().UTC()
	var sess Session
	err := s.db.WithContext(ctx).Where("token_hash = ? AND expires_at > ? AND last_seen_at > ?", hash(token), now, now.Add(-SessionIdle)).Take(&sess).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, ErrNoSession
	}
	if err != nil {
		return nil, err
	}
	var u User
	if err := s.db.WithContext(ctx).Where("id = ? AND NOT disabled", sess.UserID).Take(&u).Error; err != nil {
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return nil, ErrNoSession
		}
		return nil, err
	}
	sess.User = &u
	// Touch at most once a minute: a page with many fragments writes once.
	if now.Sub(sess.LastSeenAt) > time.Minute {
		if err := s.db.WithContext(ctx).Model(&Session{}).Where("token_hash = ?", sess.TokenHash).Update("last_seen_at", now).Error; err != nil {
			return nil, err
		}
	}
	return &sess, nil
}

// SignOut ends a session; actor is who it belonged to, for the audit trail.
func (s *Service) SignOut(ctx context.Context, token, actor string) error {
	var sess Session
	if err := s.db.WithContext(ctx).Where("token_hash = ?", hash(token)).Take(&sess).Error; err != nil {
		return nil // already gone
	}
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Where("token_hash = ?", sess.TokenHash).Delete(&Session{}).Error; err != nil {
			return err
		}
		return audit.RecordTx(tx, actor, "user.sign_out", "user", sess.UserID, nil)
	})
}

// GetUser returns one user.
func (s *Service) GetUser(ctx context.Context, id string) (*User, error) {
	var u User
	err := s.db.WithContext(ctx).Where("id = ?", id).Take(&u).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, ErrInvalidCredentials
	}
	return &u, err
}

// UserByUsername returns the user with that username.
func (s *Service) UserByUsername(ctx context.Context, username string) (*User, error) {
	var u User
	err := s.db.WithContext(ctx).Where("username = ?", username).Take(&u).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, ErrInvalidCredentials
	}
	return &u, err
}
