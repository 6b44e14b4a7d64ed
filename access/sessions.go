package access

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/provisor/provisor/audit"
	"github.com/provisor/provisor/input"
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

// Slow-down after failed sign-ins. Failures are counted per name and
// address together, and per address alone, never per name alone: someone
// who types wrong passwords for a name elsewhere cannot lock its owner out
// of their own address. After the free failures of a key, the next attempt
// waits firstLockout, and each further failure doubles the wait, up to
// maxLockout. A success clears the count of its name at its address and
// gives its own attempt back to the address; the other failures of the
// address are only forgotten with time, so that signing in to one's own
// account now and then does not reopen guessing at other names.
const (
	// freePairFailures are allowed for one name from one address.
	freePairFailures = 5
	// freeAddrFailures are allowed from one address across every name (an
	// office behind one address mistypes a few times a day).
	freeAddrFailures = 20
	firstLockout     = 30 * time.Second
	maxLockout       = 15 * time.Minute
	// failureMemory forgets failures older than this.
	failureMemory = time.Hour
)

// attemptKey is a counter of failed sign-ins and its free failures.
type attemptKey struct {
	key  string
	free int
}

// attemptKeys are the counters of a sign-in of username from remoteAddr:
// the address alone, and the name from that address.
func attemptKeys(username, remoteAddr string) []attemptKey {
	addr := "addr:" + addressBlock(remoteAddr)
	return []attemptKey{
		{key: addr, free: freeAddrFailures},
		// The address has no space, so the name cannot forge another pair.
		{key: addr + " user:" + strings.ToLower(username), free: freePairFailures},
	}
}

// addressBlock is the unit one party controls: an IPv4 address, or the /64
// of an IPv6 one (a single host is commonly given a whole /64).
func addressBlock(remoteAddr string) string {
	a, err := netip.ParseAddr(remoteAddr)
	if err != nil {
		return remoteAddr
	}
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}

// ErrSlowDown is returned by SignIn while a name or an address must wait.
type ErrSlowDown struct{ Wait time.Duration }

func (e *ErrSlowDown) Error() string {
	return fmt.Sprintf("too many failed sign-ins: try again in %s", e.Wait.Round(time.Second))
}

func lockoutAfter(failures, free int) time.Duration {
	if failures < free {
		return 0
	}
	d := firstLockout << min(failures-free, 10)
	return min(d, maxLockout)
}

// SignIn checks a username and password, with the slow-down after failed
// attempts for that name from the caller's address and for the address,
// and on success opens a session. It returns the session and the cookie
// token.
//
// The attempt is counted before the password is checked (see
// reserveAttempt): parallel attempts for one name cannot all pass the
// slow-down before any of their failures is written.
func (s *Service) SignIn(ctx context.Context, username, password, remoteAddr string) (*Session, string, error) {
	// Control characters and invalid UTF-8 are taken out (no username has
	// them, and PostgreSQL would refuse a NUL where SQLite keeps it), and
	// a name longer than any username is cut, before it is counted.
	username = input.Search(username)
	keys := attemptKeys(username, remoteAddr)
	now := time.Now().UTC().Truncate(time.Microsecond)
	held, err := s.reserveAttempt(ctx, keys, now)
	if err != nil {
		return nil, "", err
	}
	u, err := s.Authenticate(ctx, username, password)
	if errors.Is(err, ErrInvalidCredentials) {
		u, err = s.directorySignIn(ctx, username, password)
	}
	if errors.Is(err, ErrInvalidCredentials) {
		_ = audit.RecordTx(s.db.WithContext(ctx), username, "user.sign_in_failed", "user", "", map[string]any{"address": remoteAddr})
		return nil, "", err
	}
	if errors.Is(err, ErrAccountDisabled) {
		// The password was right: the attempt is not held against the name.
		s.releaseAttempt(ctx, held, now)
		_ = audit.RecordTx(s.db.WithContext(ctx), username, "user.sign_in_refused", "user", "", map[string]any{"address": remoteAddr, "reason": "disabled"})
		return nil, "", err
	}
	if err != nil {
		// The password was not judged (a directory did not answer, the
		// database failed): the attempt is not held against the name.
		s.releaseAttempt(ctx, held, now)
		return nil, "", err
	}
	token := randomString(32)
	sess := &Session{TokenHash: hash(token), UserID: u.ID, CSRFToken: randomString(24), CreatedAt: now,
		ExpiresAt: now.Add(SessionLifetime), LastSeenAt: now, User: u}
	err = s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		// Only the name's count at this address: the address's own count
		// keeps what it saw of other names.
		if err := tx.Where("key = ?", keys[1].key).Delete(&loginFailure{}).Error; err != nil {
			return err
		}
		// The attempt itself is given back to the address: successes are
		// no failures.
		if err := tx.Model(&loginFailure{}).Where("key = ? AND failures > 0", keys[0].key).
			Update("failures", gorm.Expr("failures - 1")).Error; err != nil {
			return err
		}
		if err := tx.Where("expires_at < ?", now).Delete(&Session{}).Error; err != nil {
			return err
		}
		if err := tx.Create(sess).Error; err != nil {
			return err
		}
		if err := tx.Model(&User{}).Where("id = ?", u.ID).Update("last_sign_in_at", now).Error; err != nil {
			return err
		}
		return audit.RecordTx(tx, u.Username, "user.sign_in", "user", u.ID, map[string]any{"address": remoteAddr})
	})
	if err != nil {
		return nil, "", fmt.Errorf("access: open session: %w", err)
	}
	return sess, token, nil
}

// reserveAttempt counts a sign-in attempt as a failure of each key before
// its password is checked, in one transaction that holds the keys' rows
// (taken in one order, so two attempts never wait for each other's second
// row), so that the next attempt sees it whatever this one's outcome. It
// refuses with *ErrSlowDown when a key must wait; a refused attempt is
// counted too, so each try during a wait makes the next wait longer. A
// success clears the count of its name and address; an attempt whose password could not be judged
// is given back by releaseAttempt. It returns the rows as they were before
// the attempt.
func (s *Service) reserveAttempt(ctx context.Context, keys []attemptKey, now time.Time) ([]loginFailure, error) {
	keys = slices.Clone(keys)
	slices.SortFunc(keys, func(a, b attemptKey) int { return strings.Compare(a.key, b.key) })
	keys = slices.CompactFunc(keys, func(a, b attemptKey) bool { return a.key == b.key })
	var before []loginFailure
	var wait time.Duration
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		before = before[:0]
		wait = 0
		for _, k := range keys {
			if err := tx.Clauses(clause.OnConflict{DoNothing: true}).
				Create(&loginFailure{Key: k.key, Failures: 0, LastFailedAt: now}).Error; err != nil {
				return err
			}
			var f loginFailure
			if err := tx.Clauses(clause.Locking{Strength: clause.LockingStrengthUpdate}).
				Where("key = ?", k.key).Take(&f).Error; err != nil {
				return err
			}
			if now.Sub(f.LastFailedAt) > failureMemory {
				f.Failures = 0
			}
			if until := f.LastFailedAt.Add(lockoutAfter(f.Failures, k.free)); now.Before(until) {
				wait = max(wait, until.Sub(now))
			}
			before = append(before, f)
		}
		for _, f := range before {
			last := now
			if wait > 0 && f.Failures > 0 {
				// A refused attempt leaves the time of the last checked
				// failure, from which the (longer) wait is counted.
				last = f.LastFailedAt
			}
			if err := tx.Model(&loginFailure{}).Where("key = ?", f.Key).
				Updates(map[string]any{"failures": f.Failures + 1, "last_failed_at": last}).Error; err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("access: count sign-in attempt: %w", err)
	}
	if wait > 0 {
		return nil, &ErrSlowDown{Wait: wait}
	}
	return before, nil
}

// releaseAttempt gives back an attempt reserveAttempt counted at now, for
// the keys no other attempt counted since. It is best effort: failing, the
// attempt stays counted.
func (s *Service) releaseAttempt(ctx context.Context, before []loginFailure, now time.Time) {
	for _, f := range before {
		s.db.WithContext(ctx).Model(&loginFailure{}).
			Where("key = ? AND failures = ? AND last_failed_at = ?", f.Key, f.Failures+1, now).
			Updates(map[string]any{"failures": f.Failures, "last_failed_at": f.LastFailedAt})
	}
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
