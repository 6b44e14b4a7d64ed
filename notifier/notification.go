package notifier

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/riverqueue/river"
	"gorm.io/gorm"

	"github.com/provisor/provisor/audit"
	"github.com/provisor/provisor/database"
	"github.com/provisor/provisor/input"
	"github.com/provisor/provisor/requests"
)

// Statuses of a notification. A message being sent now is queued: nothing
// is written before an attempt.
const (
	StatusHeld   = "held"
	StatusQueued = "queued"
	StatusSent   = "sent"
	StatusFailed = "failed"
)

// Statuses lists the statuses a listing can be filtered by; queued
// includes the messages being sent.
var Statuses = []string{StatusQueued, StatusSent, StatusFailed, StatusHeld}

// Recipient types: who a recipient was on the task.
const (
	RecipientIdentity    = "identity"
	RecipientRequester   = "requester"
	RecipientBeneficiary = "beneficiary"
	// RecipientApprover is asked to decide an approval.
	RecipientApprover = "approver"
)

// unsent is the condition of the index on status (notifications_unsent).
const unsent = "status <> '" + StatusSent + "'"

// heldReason is the last error of a message held because no SMTP server is configured.
const heldReason = "not sent: no SMTP configured"

// Errors a caller can act on; they wrap the requests package's, which the
// API maps to 404 and 409.
var (
	ErrNotFound = fmt.Errorf("notification %w", requests.ErrNotFound)
	ErrConflict = requests.ErrConflict
)

// Notification is one email in the outbox: one recipient of one run.
type Notification struct {
	ID string `gorm:"primaryKey" json:"id"`
	// InstanceID is the run the message is about; nil for the approval
	// emails of a task's request.
	InstanceID *string `json:"instance_id"`
	// ApprovalID is the approval an approval email is about.
	ApprovalID *string `json:"approval_id,omitempty"`
	// ConnectorID is the connector an email to the admins is about (its
	// quarantine).
	ConnectorID *string `json:"connector_id,omitempty"`
	// OnceKey makes writing the message idempotent: "<run> <address>" for
	// a run's email, "ask <step> <address>" for a request to decide,
	// "decision <approval> <address>" for a task approval's outcome.
	OnceKey       string `json:"-"`
	RecipientType string `json:"recipient_type"`
	Recipient     string `json:"recipient"`
	Address       string `json:"address"`
	Subject       string `json:"subject"`
	// BodyText and BodyHTML are the rendered parts, kept in
	// notification_bodies; Get fills them, List does not.
	BodyText string `gorm:"-" json:"body_text,omitempty"`
	BodyHTML string `gorm:"-" json:"body_html,omitempty"`
	// BodyID names the message whose body row this one shares (the first
	// message of its run); nil means a body row of its own. EnqueueTx sets it.
	BodyID        *string    `json:"-"`
	MessageID     string     `json:"message_id"`
	Status        string     `json:"status"`
	Attempts      int        `json:"attempts"`
	ClaimedBy     *int64     `json:"-"`
	LastError     string     `json:"last_error"`
	CreatedAt     time.Time  `json:"created_at"`
	QueuedAt      time.Time  `json:"queued_at"`
	NextAttemptAt *time.Time `json:"next_attempt_at"`
	LastAttemptAt *time.Time `json:"last_attempt_at"`
	SentAt        *time.Time `json:"sent_at"`
	UpdatedAt     time.Time  `json:"updated_at"`

	body *body // the row BodyText and BodyHTML were read from
}

// TableName is the outbox table.
func (Notification) TableName() string { return "notifications" }

// body is the rendered parts of a message, apart from its row, whose
// status changes with every attempt. The messages of a run share one.
type body struct {
	NotificationID string `gorm:"primaryKey"`
	BodyText       string
	BodyHTML       string `gorm:"column:body_html"`
	// text and html are the parts as go-mail writes them, made once for
	// the messages that share them.
	text, html []byte
}

func (body) TableName() string { return "notification_bodies" }

// bodyKey is the notification_bodies row that holds a message's body.
func (n *Notification) bodyKey() string {
	if n.BodyID != nil {
		return *n.BodyID
	}
	return n.ID
}

// withBodies fills the bodies of messages, reading each body row once.
// bodies, if not nil, are rows read before, and get those read now.
func withBodies(db *gorm.DB, msgs []*Notification, bodies map[string]*body) error {
	if bodies == nil {
		bodies = map[string]*body{}
	}
	var keys []string
	for _, n := range msgs {
		if k := n.bodyKey(); bodies[k] == nil && !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
	}
	if len(keys) > 0 {
		var rows []body
		if err := db.Where("notification_id IN ?", keys).Find(&rows).Error; err != nil {
			return fmt.Errorf("notifier: bodies: %w", err)
		}
		for i := range rows {
			b := &rows[i]
			b.text, b.html = []byte(b.BodyText), []byte(b.BodyHTML)
			bodies[b.NotificationID] = b
		}
	}
	for _, n := range msgs {
		if b := bodies[n.bodyKey()]; b != nil {
			n.BodyText, n.BodyHTML, n.body = b.BodyText, b.BodyHTML, b
		}
	}
	return nil
}

// ListOpts filter and page the outbox. Zero values mean everything, first page.
type ListOpts struct {
	// Status is queued (with the messages being sent), sent, failed or held.
	Status     string
	InstanceID string
	Limit      int
	Offset     int
}

// List returns messages newest first, without their bodies, and how many match.
func (s *Service) List(ctx context.Context, o ListOpts) ([]Notification, int64, error) {
	q := s.db.Gorm.WithContext(ctx).Model(&Notification{})
	switch o.Status {
	case "":
	case StatusSent:
		q = q.Where("status = ?", StatusSent)
	default:
		if !slices.Contains(Statuses, o.Status) {
			return nil, 0, fmt.Errorf("notifier: unknown status %q; use one of %s", o.Status, strings.Join(Statuses, ", "))
		}
		// Only messages not yet sent are indexed by status: SQLite uses
		// that index when the query states its condition.
		q = q.Where("status = ? AND "+unsent, o.Status)
	}
	if o.InstanceID != "" {
		q = q.Where("instance_id = ?", o.InstanceID)
	}
	out, total, err := database.FindPage[Notification](q, "created_at DESC, id DESC", database.PageLimit(o.Limit, 50), o.Offset, nil)
	if err != nil {
		return nil, 0, fmt.Errorf("notifier: list: %w", err)
	}
	return out, total, nil
}

// Get returns one message with its rendered bodies.
func (s *Service) Get(ctx context.Context, id string) (*Notification, error) {
	db := s.db.Gorm.WithContext(ctx)
	n, err := s.get(db, id)
	if err != nil {
		return nil, err
	}
	return n, withBodies(db, []*Notification{n}, nil)
}

func (s *Service) get(db *gorm.DB, id string) (*Notification, error) {
	if !input.ID(id) {
		return nil, ErrNotFound
	}
	var n Notification
	if err := db.Where("id = ?", id).Take(&n).Error; err != nil {
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return nil, ErrNotFound
		}
		return nil, fmt.Errorf("notifier: get %s: %w", id, err)
	}
	return &n, nil
}

// Resend queues a failed or held message again, with a fresh retry period
// and the same Message-ID, and records who asked in the audit trail.
// Messages in any other status, or any message while no SMTP server is
// configured, give ErrConflict.
func (s *Service) Resend(ctx context.Context, id, actor string) (*Notification, error) {
	if !input.ID(id) {
		return nil, ErrNotFound
	}
	err := s.db.InTx(ctx, func(tx *gorm.DB) error {
		n, err := s.get(tx, id)
		if err != nil {
			return err
		}
		if n.Status != StatusFailed && n.Status != StatusHeld {
			return fmt.Errorf("%w: the message to %s is %s; only failed or held messages can be resent", ErrConflict, n.Address, n.Status)
		}
		if s.mailer == nil {
			return fmt.Errorf("%w: no SMTP server is configured (PROVISOR_SMTP_URL); held messages are sent once one is", ErrConflict)
		}
		jobs, err := s.queue.InsertTx(ctx, tx, []river.InsertManyParams{deliveryParams(DeliveryArgs{NotificationIDs: []string{id}})})
		if err != nil {
			return err
		}
		// The message is the new job's: the job that failed it, if still
		// running, leaves it alone.
		now := s.now().UTC()
		res := tx.Model(&Notification{}).Where("id = ? AND status = ?", id, n.Status).Updates(map[string]any{
			"status": StatusQueued, "claimed_by": jobs[0], "attempts": 0, "queued_at": now, "next_attempt_at": nil, "updated_at": now,
		})
		if res.Error != nil {
			return fmt.Errorf("notifier: resend %s: %w", id, res.Error)
		}
		if res.RowsAffected == 0 {
			return fmt.Errorf("%w: the message to %s changed meanwhile; try again", ErrConflict, n.Address)
		}
		return audit.RecordTx(tx, actor, "notification.resend", "notification", id, map[string]any{
			"address": n.Address, "subject": n.Subject, "instance": n.InstanceID, "approval": n.ApprovalID, "previous_status": n.Status,
		})
	})
	if err != nil {
		return nil, err
	}
	return s.Get(ctx, id)
}

// ReleaseHeld queues every held message, in one transaction, when an SMTP
// server is configured; it returns how many it queued. App.Start calls it,
// so messages written while no server was configured go out once one is.
func (s *Service) ReleaseHeld(ctx context.Context) (int, error) {
	if s.mailer == nil || s.queue == nil {
		return 0, nil
	}
	var ids []string
	err := s.db.InTx(ctx, func(tx *gorm.DB) error {
		now := s.now().UTC()
		// RETURNING gives the rows this transaction moved, so processes
		// starting together queue each message once.
		if err := tx.Raw(`UPDATE notifications SET status = ?, queued_at = ?, next_attempt_at = NULL, last_error = '', updated_at = ?
			WHERE status = ? AND `+unsent+` RETURNING id`, StatusQueued, now, now, StatusHeld).Scan(&ids).Error; err != nil {
			return fmt.Errorf("notifier: release held messages: %w", err)
		}
		parts := s.jobParts(ids)
		jobs, err := s.queue.InsertTx(ctx, tx, deliveryJobs(parts))
		if err != nil {
			return err
		}
		// Each message is its new job's, whichever job held it.
		for i, part := range parts {
			if err := tx.Model(&Notification{}).Where("id IN ?", part).Update("claimed_by", jobs[i]).Error; err != nil {
				return fmt.Errorf("notifier: release held messages: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	if len(ids) > 0 {
		s.log.Info("queued held notifications now that SMTP is configured", "count", len(ids), "smtp", s.smtpName)
	}
	return len(ids), nil
}
