package notifier

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/riverqueue/river"
	"github.com/wneessen/go-mail"
	"gorm.io/gorm"
)

// DeliveryArgs is the queue entry that delivers outbox messages: those
// written together (one run's recipients, or held messages released
// together), or a share of them (see jobParts). The rows are the source of
// truth; the entry only says which rows to send.
type DeliveryArgs struct {
	NotificationIDs []string `json:"notification_ids"`
}

// Kind is the queue's name for deliveries.
func (DeliveryArgs) Kind() string { return "notification" }

// maxPerJob bounds the messages of one delivery job: with the default four
// connections, a run of a thousand recipients has one job per connection.
// A job reads its messages a part at a time (readParts), so its size does
// not delay its first message.
const maxPerJob = 250

// Worker delivers outbox messages. It is safe to run twice for one job: a
// message that was sent or failed is left alone, and one that belongs to
// another job is not touched.
type Worker struct {
	river.WorkerDefaults[DeliveryArgs]
	s *Service
}

// NewWorker returns the worker of s's deliveries.
func NewWorker(s *Service) *Worker { return &Worker{s: s} }

// Timeout bounds one attempt of a delivery job by the service's attempt
// bound, not the connector jobs' timeout: the job stops taking messages
// halfway through it (see errTimeUp) and goes on in a new attempt.
func (w *Worker) Timeout(*river.Job[DeliveryArgs]) time.Duration { return w.s.bound }

// errTimeUp ends an attempt whose time for sending is over: the job goes
// on at once in a new attempt, which spends none of its attempts, with
// the messages it has not sent still its own.
var errTimeUp = errors.New("notifier: the attempt's time is up")

// snoozeAfterWait is how long a job waits before it asks again for a
// connection it could not get within its attempt.
const snoozeAfterWait = time.Second

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
		return s.db.Gorm.WithContext(ctx).Model(&Notification{}).Where("id IN @ids AND "+ownedByJob, map[string]any{"ids": ids, "job": job.ID}).
			Updates(map[string]any{"status": StatusHeld, "last_error": heldReason, "next_attempt_at": nil, "updated_at": time.Now().UTC()}).Error
	}
	if len(job.Errors) > 0 {
		// The run before this one failed or was cut short, perhaps after
		// the server accepted a message and before it was recorded.
		s.log.Warn("notification: a previous run of this delivery did not finish; messages still queued go out again with the same Message-ID",
			"job", job.ID, "messages", len(ids))
	}
	until := time.Now().Add(s.bound / 2)
	for pass := 0; ; pass++ {
		settled, err := s.deliver(ctx, job.ID, ids, until)
		if errors.Is(err, errTimeUp) {
			return river.JobSnooze(0)
		}
		if errors.Is(err, errNoConnection) {
			return river.JobSnooze(snoozeAfterWait)
		}
		if err != nil || settled {
			return err
		}
		next, err := s.nextAttempt(ctx, job.ID, ids)
		if err != nil || next == nil {
			return err
		}
		wait := next.Sub(s.now())
		if wait > 0 || pass >= 3 || ctx.Err() != nil {
			return river.JobSnooze(max(wait, 0))
		}
	}
}

// deliver sends the due messages of a job. It reports whether every
// message of the job was settled by this pass (sent, or failed for good),
// so that none can be waiting for a later attempt.
//
// It stops sending at until (errTimeUp), and waits for a connection until
// then at most (errNoConnection).
func (s *Service) deliver(ctx context.Context, jobID int64, ids []string, until time.Time) (settled bool, err error) {
	// Read the messages while the connections send those of the jobs
	// before this one, so that a connection never waits for a read; one
	// job per connection reads ahead, so few reads run at once. The job
	// reads a few messages first and the rest while it sends them.
	if len(ids) == 0 {
		return true, nil
	}
	waitCtx, cancel := context.WithDeadline(ctx, until)
	defer cancel()
	l, err := s.mailer.queue(waitCtx)
	if err != nil {
		return false, waited(ctx, err)
	}
	defer l.release()
	parts := readParts(ids)
	bodies := map[string]*body{}
	next := s.dueAsync(jobID, parts[0], bodies)
	settled = true
	var (
		pending []*groupCall[string, struct{}]
		broken  error // the connection failed: the rest of this pass would too
	)
	for i, part := range parts {
		r := <-next
		if r.err != nil {
			return false, errors.Join(r.err, wait(pending))
		}
		if i+1 < len(parts) {
			next = s.dueAsync(jobID, parts[i+1], bodies)
		}
		settled = settled && len(r.msgs) == len(part)
		if len(r.msgs) > 0 {
			if err := l.start(waitCtx); err != nil {
				return false, errors.Join(waited(ctx, err), wait(pending))
			}
		}
		for _, n := range r.msgs {
			if ctx.Err() != nil {
				// The rest stay queued, still this job's.
				return false, errors.Join(ctx.Err(), wait(pending))
			}
			if time.Now().After(until) {
				return false, errors.Join(errTimeUp, wait(pending))
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
				pending = append(pending, s.sent.add(n.ID))
				continue
			}
			again, err := s.failed(jobID, n, sendErr)
			if err != nil {
				return false, errors.Join(err, wait(pending))
			}
			settled = settled && !again
		}
	}
	l.release() // the connection serves other jobs while the records commit
	return settled, wait(pending)
}

// errNoConnection ends an attempt that got no SMTP connection in time:
// the job asks again after snoozeAfterWait, spending no attempt.
var errNoConnection = errors.New("notifier: no SMTP connection free within the attempt")

// waited says why a wait for a connection ended: the job's own end, or
// the attempt's time.
func waited(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return err
	}
	return errNoConnection
}

// firstRead is how many messages a job reads before it sends: the next
// reads double, up to the rest of the job.
const firstRead = 25

// readParts splits a job's messages into the parts it reads one after the
// other.
func readParts(ids []string) [][]string {
	var out [][]string
	for size := firstRead; len(ids) > 0; size *= 2 {
		n := min(size, len(ids))
		out = append(out, ids[:n])
		ids = ids[n:]
	}
	return out
}

type dueResult struct {
	msgs []*Notification
	err  error
}

// dueAsync reads the due messages of part in the background. bodies are
// those read so far, for this read to add to: the reads of a job run one
// after the other.
func (s *Service) dueAsync(jobID int64, part []string, bodies map[string]*body) <-chan dueResult {
	c := make(chan dueResult, 1)
	go func() {
		msgs, err := s.due(jobID, part, bodies)
		c <- dueResult{msgs, err}
	}()
	return c
}

func wait(pending []*groupCall[string, struct{}]) error {
	var errs []error
	for _, c := range pending {
		if _, err := c.wait(); err != nil && !slices.Contains(errs, err) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// failed records an attempt that did not deliver: failed at once on a
// permanent error or at the end of the retry period, queued for a later
// try otherwise (again).
func (s *Service) failed(jobID int64, n *Notification, sendErr error) (again bool, err error) {
	now := s.now().UTC()
	if permanent(sendErr) {
		s.log.Warn("notification refused by the SMTP server", "notification", n.ID, "address", n.Address, "err", sendErr)
		return false, s.record(jobID, n.ID, map[string]any{"status": StatusFailed, "last_error": sendErr.Error()})
	}
	deadline := n.QueuedAt.Add(s.retry.period)
	if !now.Before(deadline) {
		msg := fmt.Sprintf("gave up after %d attempts over %s: %v", n.Attempts, s.retry.period, sendErr)
		s.log.Warn("notification failed", "notification", n.ID, "address", n.Address, "err", msg)
		return false, s.record(jobID, n.ID, map[string]any{"status": StatusFailed, "last_error": msg})
	}
	wait := min(s.retry.wait(n.Attempts), deadline.Sub(now))
	s.log.Info("notification not sent, will retry", "notification", n.ID, "address", n.Address, "attempt", n.Attempts,
		"retry_in", wait.Round(time.Millisecond), "err", sendErr)
	return true, s.record(jobID, n.ID, map[string]any{"status": StatusQueued, "last_error": sendErr.Error(), "next_attempt_at": now.Add(wait)})
}

// ownedByJob is the condition on the messages a job may send: queued ones
// that belong to it (claimed_by names the job that queued a message again;
// a message written with its job names none).
const ownedByJob = `(status = '` + StatusQueued + `' AND (claimed_by IS NULL OR claimed_by = @job))`

// sendColumns are what sending a message and recording its outcome read.
const sendColumns = "id, recipient, address, subject, body_id, message_id, status, attempts, created_at, queued_at"

// due reads the messages of a job that are due, in the job's order, with
// this attempt counted in Attempts. Nothing is written: a message belongs
// to one job, so no other sends it meanwhile, and a crash before its
// record leaves it queued for the job's next run.
func (s *Service) due(jobID int64, ids []string, bodies map[string]*body) ([]*Notification, error) {
	var rows []Notification
	err := s.retryDB(func(db *gorm.DB) error {
		rows = rows[:0]
		return db.Select(sendColumns).Where("id IN @ids AND "+ownedByJob+" AND (next_attempt_at IS NULL OR next_attempt_at <= @due)",
			map[string]any{"ids": ids, "job": jobID, "due": s.now().UTC().Add(50 * time.Millisecond)}).Find(&rows).Error
	})
	if err != nil {
		return nil, fmt.Errorf("notifier: read messages to send: %w", err)
	}
	byID := make(map[string]*Notification, len(rows))
	for i := range rows {
		rows[i].Attempts++
		byID[rows[i].ID] = &rows[i]
	}
	out := make([]*Notification, 0, len(rows))
	for _, id := range ids {
		if n := byID[id]; n != nil {
			out = append(out, n)
			delete(byID, id)
		}
	}
	if err := s.retryDB(func(db *gorm.DB) error { return withBodies(db, out, bodies) }); err != nil {
		return nil, err
	}
	return out, nil
}

// sentLinger is how long a "sent" record waits for others to share its
// statement. Every statement is a commit (a WAL flush on PostgreSQL, the
// write lock on SQLite); a few milliseconds turn the records of four busy
// connections from hundreds of statements per thousand messages into a
// few dozen. It is also how much longer a crash right after a message was
// accepted makes the job send it again.
const sentLinger = 5 * time.Millisecond

// sentBatch records messages of several jobs as sent in one statement.
// Each was due for its job, which alone sends it, so the id is enough.
func (s *Service) sentBatch(ids []string) ([]struct{}, error) {
	now := s.now().UTC()
	err := s.retryDB(func(db *gorm.DB) error {
		return db.Model(&Notification{}).Where("id IN ? AND status = ?", ids, StatusQueued).
			Updates(map[string]any{"status": StatusSent, "attempts": gorm.Expr("attempts + 1"), "last_attempt_at": now, "sent_at": now,
				"next_attempt_at": nil, "last_error": "", "updated_at": now}).Error
	})
	if err != nil {
		return nil, fmt.Errorf("notifier: record sent messages: %w", err)
	}
	return make([]struct{}, len(ids)), nil
}

// nextAttempt returns when the job's earliest waiting message is due, or
// nil when none waits.
func (s *Service) nextAttempt(ctx context.Context, jobID int64, ids []string) (*time.Time, error) {
	var waiting []Notification
	if err := s.db.Gorm.WithContext(ctx).Select("next_attempt_at").Where("id IN @ids AND status = @queued AND "+ownedByJob,
		map[string]any{"ids": ids, "queued": StatusQueued, "job": jobID}).Find(&waiting).Error; err != nil {
		return nil, fmt.Errorf("notifier: next attempt: %w", err)
	}
	var next *time.Time
	for _, n := range waiting {
		at := s.now()
		if n.NextAttemptAt != nil {
			at = *n.NextAttemptAt
		}
		if next == nil || at.Before(*next) {
			next = &at
		}
	}
	return next, nil
}

// record writes the outcome of an attempt that did not deliver; the
// message stays the job's.
func (s *Service) record(jobID int64, id string, updates map[string]any) error {
	now := s.now().UTC()
	updates["attempts"] = gorm.Expr("attempts + 1")
	updates["last_attempt_at"] = now
	updates["claimed_by"] = jobID
	updates["updated_at"] = now
	if updates["status"] != StatusQueued {
		updates["next_attempt_at"] = nil
	}
	err := s.retryDB(func(db *gorm.DB) error {
		return db.Model(&Notification{}).Where("id = @id AND "+ownedByJob, map[string]any{"id": id, "job": jobID}).Updates(updates).Error
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
	if n.body == nil {
		n.body = &body{text: []byte(n.BodyText), html: []byte(n.BodyHTML)}
	}
	m.SetBodyWriter(mail.TypeTextPlain, writeBytes(n.body.text))
	m.AddAlternativeWriter(mail.TypeTextHTML, writeBytes(n.body.html))
	return m
}

// writeBytes writes a part that messages share; go-mail's SetBodyString
// would copy it for each message.
func writeBytes(b []byte) func(io.Writer) (int64, error) {
	return func(w io.Writer) (int64, error) {
		n, err := w.Write(b)
		return int64(n), err
	}
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
