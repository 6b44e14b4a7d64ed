package notifier_test

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/wneessen/go-mail"
	"gorm.io/gorm"

	"github.com/provisor/provisor/access"
	"github.com/provisor/provisor/app/apptest"
	"github.com/provisor/provisor/database/dbtest"
	"github.com/provisor/provisor/internal/testwait"
	"github.com/provisor/provisor/notifier"
	"github.com/provisor/provisor/notifier/smtptest"
	"github.com/provisor/provisor/requests"
)

// benchMessages is how many messages one round delivers.
const benchMessages = 1000

// BenchmarkOutbox delivers 1,000 completion emails to an in-process SMTP
// sink that discards them, through the outbox (rows and queue jobs written
// in one transaction, the app's workers delivering), and, in the same run,
// with go-mail sending the same messages directly over one reused
// connection. It reports the direct rate, the outbox's delivery rate (from
// the commit of the rows to every message recorded as sent), the rate with
// the enqueueing transaction included, and outbox/direct, which should be
// at least 0.8. Run it with
//
//	go test -run XXX -bench Outbox -benchtime 3x ./notifier/
func BenchmarkOutbox(b *testing.B) {
	for _, dialect := range dbtest.Dialects {
		b.Run(dialect, func(b *testing.B) {
			sink := smtptest.Start(b, &smtptest.Options{NoTLS: true, Discard: true})
			app := apptest.New(b, dialect, &apptest.Options{Args: sink.Args()})
			f := &fixture{Bundle: app}
			f.dir, _ = app.Directory(b, "Dir")
			f.alice = app.Identity(b, "alice")
			if _, err := app.Access.CreateUser(app.Ctx, access.UserInput{Username: "ada", Email: "ada@example.test", Password: "correct horse battery", Role: access.RoleAdmin}, "bench"); err != nil {
				b.Fatal(err)
			}
			inst, err := app.Requests.Submit(app.Ctx, requests.Request{Type: requests.CreateAccount, BeneficiaryType: "identity",
				BeneficiaryID: f.alice.ID, ConnectorID: f.dir.ID, Justification: "bench"}, requests.StartOpts{Trigger: requests.TriggerSubmission, Actor: "ada"})
			if err != nil {
				b.Fatal(err)
			}
			app.WaitSettled(b, inst.ID)
			// A real email to send a thousand times: the one this run sent ada.
			content := sampleContent(b, f, inst.ID)

			var direct, outbox, total time.Duration
			for i := 0; b.Loop(); i++ {
				rows := make([]notifier.Notification, benchMessages)
				now := time.Now().UTC()
				for k := range rows {
					id := uuid.NewString()
					addr := fmt.Sprintf("user%d-%d@example.test", i, k)
					rows[k] = notifier.Notification{ID: id, InstanceID: &inst.ID, OnceKey: inst.ID + " " + addr, RecipientType: notifier.RecipientIdentity,
						Recipient: "User " + strconv.Itoa(k), Address: addr,
						Subject: content.Subject, BodyText: content.BodyText, BodyHTML: content.BodyHTML, MessageID: id + "@example.test",
						Status: notifier.StatusQueued, CreatedAt: now, QueuedAt: now, UpdatedAt: now}
				}
				direct += sendDirect(b, sink, rows)
				d, t := sendOutbox(b, f, sink, rows)
				outbox += d
				total += t
			}
			msgs := float64(b.N * benchMessages)
			directRate, outboxRate, totalRate := msgs/direct.Seconds(), msgs/outbox.Seconds(), msgs/total.Seconds()
			b.ReportMetric(directRate, "direct-msgs/s")
			b.ReportMetric(outboxRate, "outbox-msgs/s")
			b.ReportMetric(totalRate, "outbox+enqueue-msgs/s")
			b.ReportMetric(outboxRate/directRate, "outbox/direct")

		})
	}
}

func sampleContent(b *testing.B, f *fixture, instanceID string) *notifier.Notification {
	b.Helper()
	rows := testwait.For(b, 10*time.Second, func() ([]notifier.Notification, error) {
		rows, _, err := f.Notifier.List(f.Ctx, notifier.ListOpts{InstanceID: instanceID, Status: notifier.StatusSent})
		if err != nil {
			b.Fatal(err)
		}
		if len(rows) != 1 {
			return nil, fmt.Errorf("the run's own email was not sent: %s", describe(rows))
		}
		return rows, nil
	})
	n, err := f.Notifier.Get(f.Ctx, rows[0].ID)
	if err != nil {
		b.Fatal(err)
	}
	return n
}

// sendDirect sends the messages with go-mail over one connection, without
// go-mail's NOOP before each message (the outbox skips it on a connection
// that has just delivered one, so both sides make the same round trips).
func sendDirect(b *testing.B, sink *smtptest.Server, rows []notifier.Notification) time.Duration {
	b.Helper()
	before := sink.Accepted()
	start := time.Now()
	c, err := mail.NewClient("127.0.0.1", mail.WithPort(sink.Port), mail.WithTLSPolicy(mail.NoTLS), mail.WithTimeout(10*time.Second),
		mail.WithoutNoop())
	if err != nil {
		b.Fatal(err)
	}
	if err := c.DialWithContext(context.Background()); err != nil {
		b.Fatal(err)
	}
	for i := range rows {
		m := mail.NewMsg(mail.WithNoDefaultUserAgent())
		if err := m.From("Provisor <provisor@example.test>"); err != nil {
			b.Fatal(err)
		}
		if err := m.AddToFormat(rows[i].Recipient, rows[i].Address); err != nil {
			b.Fatal(err)
		}
		m.Subject(rows[i].Subject)
		m.SetMessageIDWithValue("direct-" + rows[i].MessageID)
		m.SetDateWithValue(rows[i].CreatedAt)
		m.SetGenHeader(mail.Header("Auto-Submitted"), "auto-generated")
		m.SetGenHeader(mail.HeaderXAutoResponseSuppress, "All")
		m.SetBodyString(mail.TypeTextPlain, rows[i].BodyText)
		m.AddAlternativeString(mail.TypeTextHTML, rows[i].BodyHTML)
		if err := c.Send(m); err != nil {
			b.Fatal(err)
		}
	}
	if err := c.Close(); err != nil {
		b.Fatal(err)
	}
	d := time.Since(start)
	if got := sink.Accepted() - before; got != len(rows) {
		b.Fatalf("direct: the sink got %d messages, want %d", got, len(rows))
	}
	return d
}

// sendOutbox writes the rows and their jobs in one transaction and waits
// until every message is recorded as sent. It returns the time from the
// commit (the messages are in the outbox) and the time including the
// enqueueing transaction.
func sendOutbox(b *testing.B, f *fixture, sink *smtptest.Server, rows []notifier.Notification) (delivery, total time.Duration) {
	b.Helper()
	before := sink.Accepted()
	start := time.Now()
	if err := f.DB.InTx(f.Ctx, func(tx *gorm.DB) error {
		n, err := f.Notifier.EnqueueTx(f.Ctx, tx, rows)
		if err == nil && n != len(rows) {
			err = fmt.Errorf("wrote %d rows of %d", n, len(rows))
		}
		return err
	}); err != nil {
		b.Fatal(err)
	}
	committed := time.Now()
	deadline := time.Now().Add(2 * time.Minute)
	for sink.Accepted()-before < len(rows) {
		if time.Now().After(deadline) {
			b.Fatalf("outbox: %d of %d messages after 2 minutes", sink.Accepted()-before, len(rows))
		}
		time.Sleep(time.Millisecond)
	}
	// Sent means recorded as sent, not only accepted by the server.
	for {
		var left int64
		if err := f.DB.Gorm.Model(&notifier.Notification{}).Where("status <> ?", notifier.StatusSent).Count(&left).Error; err != nil {
			b.Fatal(err)
		}
		if left == 0 {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("outbox: %d messages not recorded as sent", left)
		}
		time.Sleep(time.Millisecond)
	}
	end := time.Now()
	if got := sink.Accepted() - before; got != len(rows) {
		b.Fatalf("outbox: the sink got %d messages, want %d (a duplicate?)", got, len(rows))
	}
	return end.Sub(committed), end.Sub(start)
}
