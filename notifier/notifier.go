package notifier

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"net/mail"
	"net/url"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/provisor/provisor/database"
	"github.com/provisor/provisor/identities"
	"github.com/provisor/provisor/tasks"
)

// Options configure the Service. A nil *Options means defaults.
type Options struct {
	// SMTP is the mail server; nil holds every message in the outbox.
	SMTP *SMTP
	// SMTPName is the server's address for logs, without the password.
	SMTPName string
	// RetryFor is how long a message is retried after transient failures,
	// counted from when it was queued (default 24h).
	RetryFor time.Duration
	// BaseURL is the portal's address; links in emails start with it.
	BaseURL string
	// MaxConns bounds the SMTP connections this process keeps open (default 4).
	MaxConns int
	// AttemptBound bounds one attempt of a delivery job (default 5m, the
	// queue's rescue delay): a job stops sending in time and goes on in a
	// new attempt, so a job whose process died is taken over that long
	// after, and a job never runs into its bound mid-message.
	AttemptBound time.Duration
	// Directory answers who the recipients are and where to write to
	// them; the services that own tasks, users and identities answer.
	// Without it, no email is written for runs and approvals.
	Directory Directory
	// Templates replace views.Email(), for tests.
	Templates fs.FS
	Logger    *slog.Logger
	// NowFunc is the clock the retry period is measured by (default
	// time.Now); tests move it to end a period without waiting for it.
	NowFunc func() time.Time
}

// Service writes completion emails to the outbox, delivers them, and lists
// and resends them for the API and the portal.
type Service struct {
	db       *database.DB
	queue    *database.Queue
	log      *slog.Logger
	render   *renderer
	mailer   *mailer
	retry    backoff
	from     string
	msgHost  string
	smtpName string
	conns    int // MaxConns
	bound    time.Duration
	now      func() time.Time
	// sent records deliveries of concurrent jobs in shared statements.
	sent *group[string, struct{}]
	dir  Directory
}

// Directory answers the notifier's questions about tasks and people, in
// the transaction that writes the emails.
type Directory interface {
	// TaskNotifyTx returns a task's notification settings, or nil when
	// the task is gone.
	TaskNotifyTx(ctx context.Context, tx *gorm.DB, taskID string) (*tasks.Notify, error)
	// UserMailboxTx returns the enabled portal user called username with
	// where to write to them (the user's email, or else that of the
	// identity they are linked to), or nil.
	UserMailboxTx(ctx context.Context, tx *gorm.DB, username string) (*Mailbox, error)
	// IdentityTx returns an identity, or nil.
	IdentityTx(ctx context.Context, tx *gorm.DB, id string) (*identities.Identity, error)
	// MembersTx returns a workgroup's members that are not deleted.
	MembersTx(ctx context.Context, tx *gorm.DB, workgroupID string) ([]identities.Identity, error)
	// AdminMailboxesTx returns the enabled portal admins with where to
	// write to them.
	AdminMailboxesTx(ctx context.Context, tx *gorm.DB) ([]Mailbox, error)
}

// Mailbox is a person's name and address ("" when they have none).
type Mailbox struct {
	Name, Address string
}

// New returns the service; its deliveries go to queue. Its hooks are
// requests.Options' SettledFuncs (InstanceSettledTx) and ApprovalFuncs
// (ApprovalTx).
func New(db *database.DB, queue *database.Queue, opts *Options) (*Service, error) {
	o := Options{RetryFor: 24 * time.Hour, MaxConns: 4, BaseURL: "http://localhost", Logger: slog.New(slog.DiscardHandler)}
	if opts != nil {
		o.SMTP, o.SMTPName, o.Templates = opts.SMTP, opts.SMTPName, opts.Templates
		if opts.RetryFor > 0 {
			o.RetryFor = opts.RetryFor
		}
		if opts.MaxConns > 0 {
			o.MaxConns = opts.MaxConns
		}
		o.AttemptBound = opts.AttemptBound
		o.Directory = opts.Directory
		o.NowFunc = opts.NowFunc
		if opts.BaseURL != "" {
			o.BaseURL = opts.BaseURL
		}
		if opts.Logger != nil {
			o.Logger = opts.Logger
		}
	}
	r, err := newRenderer(o.Templates, o.BaseURL)
	if err != nil {
		return nil, err
	}
	s := &Service{db: db, queue: queue, log: o.Logger, render: r, retry: newBackoff(o.RetryFor), smtpName: o.SMTPName, msgHost: hostOf(o.BaseURL), conns: o.MaxConns,
		bound: o.AttemptBound, dir: o.Directory, now: o.NowFunc}
	if s.now == nil {
		s.now = time.Now
	}
	if s.bound <= 0 {
		s.bound = 5 * time.Minute
	}
	s.sent = &group[string, struct{}]{max: 500, linger: sentLinger, run: s.sentBatch}
	if o.SMTP != nil {
		from, err := mail.ParseAddress(o.SMTP.From)
		if err != nil {
			return nil, fmt.Errorf("notifier: sender address %q: %w", o.SMTP.From, err)
		}
		s.from = from.String()
		if _, domain, ok := strings.Cut(from.Address, "@"); ok && domain != "" {
			s.msgHost = domain
		}
		if s.mailer, err = newMailer(o.SMTP, o.MaxConns); err != nil {
			return nil, err
		}
		if s.smtpName == "" {
			s.smtpName = fmt.Sprintf("%s:%d", o.SMTP.Host, o.SMTP.Port)
		}
		s.log.Info("completion emails go through SMTP", "smtp", s.smtpName, "from", s.from, "retry_for", o.RetryFor)
		if o.SMTP.InsecureSkipVerify {
			s.log.Warn("the SMTP server's certificate is not verified (PROVISOR_SMTP_INSECURE_SKIP_VERIFY): anyone on the network path can read completion emails and the SMTP password", "smtp", s.smtpName)
		}
	}
	if s.mailer == nil {
		s.log.Info("no SMTP server configured (PROVISOR_SMTP_URL): completion emails are held in the outbox")
	}
	return s, nil
}

// Configured reports whether an SMTP server is configured; without one,
// messages are held.
func (s *Service) Configured() bool { return s.mailer != nil }

// Close closes the idle SMTP connections.
func (s *Service) Close(ctx context.Context) error {
	if s.mailer == nil {
		return nil
	}
	return s.mailer.close(ctx)
}

func hostOf(base string) string {
	if u, err := url.Parse(base); err == nil && u.Hostname() != "" {
		return u.Hostname()
	}
	return "provisor.invalid"
}
