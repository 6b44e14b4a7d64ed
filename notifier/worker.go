package notifier

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/riverqueue/river"
	"github.com/wneessen/go-mail"
	"gorm.io/gorm"
)

// DeliveryArgs is the queue entry that delivers outbox messages: those
// written together (one run's recipients, or held messages released
// together), at most maxPerJob. The rows are the source of truth; the
// entry only says which rows to send.
type DeliveryArgs struct {
	NotificationIDs []string `json:"notification_ids"`
}

// Kind is the queue's name for deliveries.
func (DeliveryArgs) Kind() string { return "notification" }

// maxPerJob bounds the messages of one delivery job.
const maxPerJob = 50

// Worker delivers outbox messages. It is safe to run twice for one job: a
// message that was sent or failed is left alone, and one another job is
// sending is not touched.
type Worker struct {
	river.WorkerDefaults[DeliveryArgs]
	s *Service
}

// NewWorker returns the worker of s's deliveries.
func NewWorker(s *Service) *Worker { return &Worker{s: s} }

// Work delivers the job's messages that are due, over one pooled SMTP
// connection, and snoozes until the next retry of those that are not.
//
// Retries are not River's: River's policy (attempt^4 seconds, MaxAttempts)
// does not say "for 24 hours". The attempt count and the retry period live
// on each row; after a transient failure the worker records the error and
// the time of the next try, and snoozes the job (which River does not count
// as an attempt) until the earliest one. A message fails once the retry
// period since it was queued is over, or at once on a permanent error.
func (w *Worker) Work(ctx context.Context, job *river.Job[DeliveryArgs]) error {
	s := w.s
	ids := job.Args.NotificationIDs
	if s.mailer == nil {
		return s.db.Gorm.WithContext(ctx).Model(&Notification{}).Where("id IN ? AND status IN ?", ids, []string{StatusQueued, StatusSending}).
			Updates(map[string]any{"status": StatusHeld, "last_error": heldReason, "next_attempt_at": nil, "updated_at": time.Now().UTC()}).Error
	}
	for pass := 0; ; pass++ {
		if err := s.deliver(ctx, job.ID, ids); err != nil {
			return err
		}
		next, err := s.nextAttempt(ctx, ids)
		if err != nil || next == nil {
			return err
		}
		wait := time.Until(*next)
		if wait > 0 || pass >= 3 || ctx.Err() != nil {
			return river.JobSnooze(max(wait, 0))
		}
	}
}

// deliver claims the due messages of a job and sends them.
func (s *Service) deliver(ctx context.Context, jobID int64, ids []string) error {
	// Wait for a connection first: messages are marked when they are about
	// to go, and at most one claim per connection runs at a time.
	l, err := s.mailer.lease(ctx)
	if err != nil {
		return err
	}
	// Mark before sending: a crash from here on leaves "sending" behind, and
	// the job, run again, sends those again.
	msgs, err := s.claim(jobID, ids)
	if err != nil || len(msgs) == 0 {
		l.release()
		return err
	}
	released := false
	release := func() {
		if !released {
			released = true
			l.release()
		}
	}
	defer release()
	var (
		pending []<-chan error
		broken  error // the connection failed: the rest of this pass would too
	)
	for i, n := range msgs {
		if ctx.Err() != nil {
			return errors.Join(ctx.Err(), s.unclaim(msgs[i:]), wait(pending))
		}
		if n.LastError == interrupted {
			s.log.Warn("notification: the previous attempt ended without a result; sending again with the same Message-ID",
				"notification", n.ID, "message_id", n.MessageID, "address", n.Address)
		}
		sendErr := broken
		if sendErr == nil {
			sendErr = l.send(ctx, s.message(n))
			if sendErr != nil && !replied(sendErr) {
				broken = sendErr
			}
		}
		if sendErr == nil {
			// Recorded with the sends of other jobs in one statement; the
			// next message goes out meanwhile, and the job waits for every
			// record before it ends.
			done := make(chan error, 1)
			go func(id string) { _, err := s.sent.do(id); done <- err }(n.ID)
			pending = append(pending, done)
			continue
		}
		if err := s.failed(jobID, n, sendErr); err != nil {
			return errors.Join(err, wait(pending))
		}
	}
	release() // the connection serves other jobs while the records commit
	return wait(pending)
}

func wait(pending []<-chan error) error {
	var errs []error
	for _, c := range pending {
		errs = append(errs, <-c)
	}
	return errors.Join(errs...)
}

// failed records an attempt that did not deliver: failed at once on a
// permanent error or at the end of the retry period, queued for a later
// try otherwise.
func (s *Service) failed(jobID int64, n *Notification, sendErr error) error {
	now := time.Now().UTC()
	if permanent(sendErr) {
		s.log.Warn("notification refused by the SMTP server", "notification", n.ID, "address", n.Address, "err", sendErr)
		return s.record(jobID, n.ID, map[string]any{"status": StatusFailed, "last_error": sendErr.Error()})
	}
	deadline := n.QueuedAt.Add(s.retry.period)
	if !now.Before(deadline) {
		msg := fmt.Sprintf("gave up after %d attempts over %s: %v", n.Attempts, s.retry.period, sendErr)
		s.log.Warn("notification failed", "notification", n.ID, "address", n.Address, "err", msg)
		return s.record(jobID, n.ID, map[string]any{"status": StatusFailed, "last_error": msg})
	}
	wait := min(s.retry.wait(n.Attempts), deadline.Sub(now))
	s.log.Info("notification not sent, will retry", "notification", n.ID, "address", n.Address, "attempt", n.Attempts,
		"retry_in", wait.Round(time.Millisecond), "err", sendErr)
	return s.record(jobID, n.ID, map[string]any{"status": StatusQueued, "last_error": sendErr.Error(), "next_attempt_at": now.Add(wait)})
}

// interrupted is the last error a claim leaves on a message found
// "sending": the attempt before was cut short.
const interrupted = "the previous attempt ended without a result (the process stopped); sending again with the same Message-ID"

// claim marks a job's due messages "sending" in one statement, counts the
// attempt, and returns them in the job's order. A message already
// "sending" is claimed again only by the job that marked it: that job was
// cut short and River runs it again.
func (s *Service) claim(jobID int64, ids []string) ([]*Notification, error) {
	now := time.Now().UTC()
	var rows []Notification
	err := s.retryDB(func(db *gorm.DB) error {
		rows = rows[:0]
		return db.Raw(`UPDATE notifications SET status = ?, claimed_by = ?, attempts = attempts + 1, last_attempt_at = ?,
				next_attempt_at = NULL, updated_at = ?, last_error = CASE WHEN status = ? THEN ? ELSE last_error END
			WHERE id IN ? AND ((status = ? AND (next_attempt_at IS NULL OR next_attempt_at <= ?)) OR (status = ? AND claimed_by = ?))
			RETURNING *`,
			StatusSending, jobID, now, now, StatusSending, interrupted,
			ids, StatusQueued, now.Add(50*time.Millisecond), StatusSending, jobID).Scan(&rows).Error
	})
	if err != nil {
		return nil, fmt.Errorf("notifier: claim: %w", err)
	}
	byID := make(map[string]*Notification, len(rows))
	for i := range rows {
		byID[rows[i].ID] = &rows[i]
	}
	out := make([]*Notification, 0, len(rows))
	for _, id := range ids {
		if n := byID[id]; n != nil {
			out = append(out, n)
			delete(byID, id)
		}
	}
	if err := s.retryDB(func(db *gorm.DB) error { return withBodies(db, out) }); err != nil {
		return nil, err
	}
	return out, nil
}

// unclaim puts messages that were claimed but not tried back in the queue.
func (s *Service) unclaim(msgs []*Notification) error {
	if len(msgs) == 0 {
		return nil
	}
	ids := make([]string, len(msgs))
	for i, n := range msgs {
		ids[i] = n.ID
	}
	return s.retryDB(func(db *gorm.DB) error {
		return db.Model(&Notification{}).Where("id IN ? AND status = ?", ids, StatusSending).
			Updates(map[string]any{"status": StatusQueued, "attempts": gorm.Expr("attempts - 1"), "updated_at": time.Now().UTC()}).Error
	})
}

// sentBatch records messages of several jobs as sent in one statement.
func (s *Service) sentBatch(ids []string) ([]struct{}, error) {
	now := time.Now().UTC()
	err := s.retryDB(func(db *gorm.DB) error {
		return db.Model(&Notification{}).Where("id IN ? AND status = ?", ids, StatusSending).
			Updates(map[string]any{"status": StatusSent, "sent_at": now, "last_error": "", "updated_at": now}).Error
	})
	if err != nil {
		return nil, fmt.Errorf("notifier: record sent messages: %w", err)
	}
	return make([]struct{}, len(ids)), nil
}

// nextAttempt returns when the job's earliest waiting message is due, or
// nil when none waits.
func (s *Service) nextAttempt(ctx context.Context, ids []string) (*time.Time, error) {
	var waiting []Notification
	if err := s.db.Gorm.WithContext(ctx).Select("next_attempt_at").Where("id IN ? AND status = ?", ids, StatusQueued).
		Find(&waiting).Error; err != nil {
		return nil, fmt.Errorf("notifier: next attempt: %w", err)
	}
	var next *time.Time
	for _, n := range waiting {
		at := time.Now()
		if n.NextAttemptAt != nil {
			at = *n.NextAttemptAt
		}
		if next == nil || at.Before(*next) {
			next = &at
		}
	}
	return next, nil
}

// record writes the outcome of one attempt.
func (s *Service) record(jobID int64, id string, updates map[string]any) error {
	updates["updated_at"] = time.Now().UTC()
	err := s.retryDB(func(db *gorm.DB) error {
		return db.Model(&Notification{}).Where("id = ? AND status = ? AND claimed_by = ?", id, StatusSending, jobID).Updates(updates).Error
	})
	if err != nil {
		return fmt.Errorf("notifier: record the attempt of %s: %w", id, err)
	}
	return nil
}

// retryDB runs fn without the job's context and tries a few times, so that
// a message sent just before a shutdown or a database blip is recorded and
// not sent again.
func (s *Service) retryDB(fn func(db *gorm.DB) error) error {
	var err error
	for i := range 5 {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err = fn(s.db.Gorm.WithContext(ctx))
		cancel()
		if err == nil {
			return nil
		}
		time.Sleep(time.Duration(100<<i) * time.Millisecond)
	}
	return err
}

// message builds the email of an outbox row.
func (s *Service) message(n *Notification) *mail.Msg {
	m := mail.NewMsg(mail.WithNoDefaultUserAgent())
	m.SetAddrHeaderIgnoreInvalid(mail.HeaderFrom, s.from)
	if err := m.AddToFormat(n.Recipient, n.Address); err != nil {
		m.ToIgnoreInvalid(n.Address) // GetRecipients then fails: a permanent error
	}
	m.Subject(n.Subject)
	m.SetMessageIDWithValue(n.MessageID)
	m.SetDateWithValue(n.CreatedAt)
	m.SetGenHeader(mail.Header("Auto-Submitted"), "auto-generated")
	m.SetGenHeader(mail.HeaderXAutoResponseSuppress, "All")
	m.SetBodyString(mail.TypeTextPlain, n.BodyText)
	m.AddAlternativeString(mail.TypeTextHTML, n.BodyHTML)
	return m
}

// replied reports whether a send error is the server's answer to the
// message (so the connection is fine), rather than a failure to connect
// or a dropped connection.
func replied(err error) bool {
	var se *mail.SendError
	return errors.As(err, &se) && se.ErrorCode() != 0
}

// permanent reports whether a send error will not go away by trying again:
// a 5xx reply to the message (MAIL, RCPT, DATA), or an address go-mail
// cannot use. Everything else is transient: refused or dropped
// connections, timeouts, 4xx replies, and TLS or authentication
// problems, which are the server's or the configuration's and are fixed
// without touching the message.
func permanent(err error) bool {
	var se *mail.SendError
	if !errors.As(err, &se) {
		return false
	}
	switch se.Reason {
	case mail.ErrGetSender, mail.ErrGetRcpts, mail.ErrNoUnencoded:
		return true
	case mail.ErrConnCheck:
		return false
	}
	code := se.ErrorCode()
	return code >= 500 && code < 600
}

// backoff is the wait before retry n: it doubles from first up to most,
// with 10% jitter so that messages queued together spread out. The
// defaults for a 24h period are 30 s doubling to 1 h (30 s, 1 m, 2 m, …,
// 32 m, then hourly: about 30 attempts); a shorter period scales them down.
type backoff struct {
	period, first, most time.Duration
}

func newBackoff(period time.Duration) backoff {
	first := min(max(period/2880, 100*time.Millisecond), 30*time.Second)
	most := min(max(period/24, first), time.Hour)
	return backoff{period: period, first: first, most: most}
}

func (b backoff) wait(attempt int) time.Duration {
	d := b.first
	for i := 1; i < attempt && d < b.most; i++ {
		d *= 2
	}
	d = min(d, b.most)
	return d - time.Duration(rand.Int64N(int64(d)/10+1))
}
