package notifier_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/provisor/provisor/access"
	"github.com/provisor/provisor/app"
	"github.com/provisor/provisor/app/apptest"
	"github.com/provisor/provisor/app/config"
	"github.com/provisor/provisor/connectors"
	"github.com/provisor/provisor/connectors/configured"
	"github.com/provisor/provisor/database/dbtest"
	"github.com/provisor/provisor/identities"
	"github.com/provisor/provisor/internal/testwait"
	"github.com/provisor/provisor/notifier"
	"github.com/provisor/provisor/notifier/smtptest"
	"github.com/provisor/provisor/requests"
	"github.com/provisor/provisor/tasks"
)

func str(s string) *string { return &s }

// fixture is a running Provisor with a directory, people and a portal user.
type fixture struct {
	*apptest.Bundle
	dir   *configured.Record
	ents  map[string]*identities.Entitlement
	alice *identities.Identity
	carol *identities.Identity
}

func setup(t *testing.T, dialect string, opts *apptest.Options) *fixture {
	t.Helper()
	b := apptest.New(t, dialect, opts)
	f := &fixture{Bundle: b}
	f.dir, f.ents = b.Directory(t, "Corp Dir", "VPN", "Wiki")
	alice, err := b.Identities.CreateIdentity(b.Ctx, identities.IdentityInput{Username: "alice", DisplayName: "Alice Doe", Email: "alice@example.test"})
	if err != nil {
		t.Fatal(err)
	}
	f.alice = alice
	f.carol = b.Identity(t, "carol")
	if _, err := b.Access.CreateUser(b.Ctx, access.UserInput{Username: "admin", Email: "admin@example.test", DisplayName: "Ada Admin",
		Password: "correct horse battery", Role: access.RoleAdmin}, "test"); err != nil {
		t.Fatal(err)
	}
	return f
}

// task creates a task for alice that notifies recipients.
func (f *fixture) task(t *testing.T, name string, typ requests.Type, recipients ...string) *tasks.Task {
	t.Helper()
	req := &requests.Request{Type: typ, BeneficiaryType: "identity", BeneficiaryID: f.alice.ID, ConnectorID: f.dir.ID, Justification: "test"}
	if typ == requests.CreateAccount || typ == requests.AddEntitlements {
		req.Entitlements = []string{f.ents["VPN"].ID}
	}
	task, err := f.Tasks.Create(f.Ctx, tasks.Input{Name: str(name), Request: req,
		Notify: &tasks.Notify{Enabled: true, Recipients: recipients, When: "always"}}, "admin")
	if err != nil {
		t.Fatal(err)
	}
	return task
}

// run triggers a task as the portal user admin and waits for the run to end.
func (f *fixture) run(t *testing.T, task *tasks.Task) *requests.Instance {
	t.Helper()
	inst, err := f.Tasks.Trigger(f.Ctx, task.ID, requests.TriggerManual, "admin")
	if err != nil {
		t.Fatal(err)
	}
	return f.WaitSettled(t, inst.ID)
}

// outbox waits until the instance's messages number n and satisfy cond.
func (f *fixture) outbox(t *testing.T, instanceID string, n int, timeout time.Duration, cond func(notifier.Notification) bool) []notifier.Notification {
	t.Helper()
	return testwait.For(t, timeout, func() ([]notifier.Notification, error) {
		items, _, err := f.Notifier.List(f.Ctx, notifier.ListOpts{InstanceID: instanceID, Limit: 500})
		if err != nil {
			t.Fatal(err)
		}
		ok := len(items) == n
		for _, it := range items {
			ok = ok && cond(it)
		}
		if !ok {
			return nil, fmt.Errorf("outbox of %s: %s", instanceID, describe(items))
		}
		return items, nil
	})
}

// deliveriesDone waits until no delivery job is left to run: from then on
// nothing sends a message again, so a duplicate would have arrived.
func (f *fixture) deliveriesDone(t *testing.T) {
	t.Helper()
	testwait.Until(t, 30*time.Second, func() error {
		live, err := f.Queue.LiveEntries(f.Ctx, notifier.DeliveryArgs{}.Kind())
		if err != nil {
			t.Fatal(err)
		}
		if len(live) > 0 {
			return fmt.Errorf("%d delivery jobs not finished: %+v", len(live), live)
		}
		return nil
	})
}

func describe(items []notifier.Notification) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d messages", len(items))
	for _, n := range items {
		fmt.Fprintf(&b, "\n  %s %s attempts=%d error=%q", n.Address, n.Status, n.Attempts, n.LastError)
	}
	return b.String()
}

func status(s string) func(notifier.Notification) bool {
	return func(n notifier.Notification) bool { return n.Status == s }
}

func TestDeliversEveryPartAndHeader(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect string) {
		t.Parallel()
		srv := smtptest.Start(t, nil)
		f := setup(t, dialect, &apptest.Options{Args: append(srv.Args(), "--base-url", "https://idm.example.test/")})
		task := f.task(t, "Onboard Alice", requests.CreateAccount, f.carol.ID, "requester", "beneficiary")
		inst := f.run(t, task)
		if inst.Status != requests.InstanceCompleted {
			t.Fatalf("run: %s", apptest.Describe(inst))
		}
		rows := f.outbox(t, inst.ID, 3, 20*time.Second, status(notifier.StatusSent))
		msgs := srv.Wait(t, 3, 10*time.Second)
		byAddr := map[string]smtptest.Message{}
		for _, m := range msgs {
			if len(m.To) != 1 {
				t.Fatalf("envelope recipients %v: one message per recipient", m.To)
			}
			byAddr[m.To[0]] = m
		}
		wantRecipients := map[string]string{"carol@example.test": notifier.RecipientIdentity, "admin@example.test": notifier.RecipientRequester, "alice@example.test": notifier.RecipientBeneficiary}
		for _, row := range rows {
			if wantRecipients[row.Address] != row.RecipientType || row.Attempts != 1 || row.SentAt == nil || row.LastError != "" {
				t.Errorf("row %+v", row)
			}
			m, ok := byAddr[row.Address]
			if !ok {
				t.Fatalf("no message to %s; got %v", row.Address, byAddr)
			}
			if m.From != "provisor@example.test" {
				t.Errorf("envelope sender %q", m.From)
			}
			from, err := mail.ParseAddress(m.Header.Get("From"))
			if err != nil || from.Name != "Provisor" || from.Address != "provisor@example.test" {
				t.Errorf("From %q", m.Header.Get("From"))
			}
			to, err := mail.ParseAddress(m.Header.Get("To"))
			if err != nil || to.Address != row.Address || to.Name != row.Recipient {
				t.Errorf("To %q, want %s <%s>", m.Header.Get("To"), row.Recipient, row.Address)
			}
			subject, _ := new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
			if subject != "[Provisor] Onboard Alice: completed for Alice Doe" || subject != row.Subject {
				t.Errorf("Subject %q (row %q)", subject, row.Subject)
			}
			if got := m.Header.Get("Message-Id"); got != "<"+row.MessageID+">" || !strings.HasSuffix(row.MessageID, "@example.test") {
				t.Errorf("Message-ID %q, row %q", got, row.MessageID)
			}
			if d, err := m.Header.Date(); err != nil || d.Unix() != row.CreatedAt.Unix() {
				t.Errorf("Date %q (%v), want the row's creation %s", m.Header.Get("Date"), err, row.CreatedAt)
			}
			if m.Header.Get("Auto-Submitted") != "auto-generated" {
				t.Errorf("Auto-Submitted %q", m.Header.Get("Auto-Submitted"))
			}
			if ct := m.Header.Get("Content-Type"); !strings.HasPrefix(ct, "multipart/alternative;") {
				t.Errorf("Content-Type %q", ct)
			}
			parts, err := m.Parts()
			if err != nil || len(parts) != 2 {
				t.Fatalf("parts %v %v", keys(parts), err)
			}
			text, html := parts["text/plain"], parts["text/html"]
			link := "https://idm.example.test/requests/" + inst.ID
			for _, want := range []string{"Onboard Alice completed for Alice Doe.", "Name:        Onboard Alice", "Type:        Create account",
				"Beneficiary: Alice Doe (identity)", "Instance:    " + inst.ID, "Trigger:     manual", "Started by:  admin", "Duration:", link} {
				if !strings.Contains(text, want) {
					t.Errorf("text part lacks %q:\n%s", want, text)
				}
			}
			if !strings.Contains(html, `<a href="`+link+`"`) || !strings.Contains(html, "<table") || !strings.Contains(html, "Corp Dir") {
				t.Errorf("html part lacks the link or the jobs table:\n%s", html)
			}
			for _, j := range inst.Jobs {
				row := fmt.Sprintf("  %d  %s", j.Seq, j.Kind)
				if !strings.Contains(text, row) || !strings.Contains(html, ">"+j.Kind+"<") {
					t.Errorf("job #%d %s missing from the jobs tables:\n%s", j.Seq, j.Kind, text)
				}
			}
			if strings.Contains(html, "http://") && !strings.Contains(html, "https://idm.example.test") || strings.Contains(html, "<link") || strings.Contains(html, "<img") {
				t.Errorf("html part refers to external assets")
			}
		}
		// The same body as sent is in the outbox.
		full, err := f.Notifier.Get(f.Ctx, rows[0].ID)
		if err != nil || !strings.Contains(full.BodyText, inst.ID) || !strings.Contains(full.BodyHTML, "<table") {
			t.Errorf("get: %v %+v", err, full)
		}

		// A direct submission tells its requester when that is a portal user,
		// and nobody when it is an API client.
		req := requests.Request{Type: requests.LockAccount, BeneficiaryType: "identity", BeneficiaryID: f.alice.ID, ConnectorID: f.dir.ID, Justification: "x"}
		byUser, err := f.Requests.Submit(f.Ctx, req, requests.StartOpts{Trigger: requests.TriggerSubmission, Actor: "admin"})
		if err != nil {
			t.Fatal(err)
		}
		byAPI, err := f.Requests.Submit(f.Ctx, req, requests.StartOpts{Trigger: requests.TriggerAPI, Actor: "api:nightly"})
		if err != nil {
			t.Fatal(err)
		}
		f.WaitSettled(t, byAPI.ID)
		f.WaitSettled(t, byUser.ID)
		direct := f.outbox(t, byUser.ID, 1, 10*time.Second, status(notifier.StatusSent))
		if direct[0].Address != "admin@example.test" || direct[0].Subject != "[Provisor] Lock account: completed for Alice Doe" {
			t.Errorf("direct submission: %+v", direct[0])
		}
		if items, _, _ := f.Notifier.List(f.Ctx, notifier.ListOpts{InstanceID: byAPI.ID}); len(items) != 0 {
			t.Errorf("an API client's run was mailed: %s", describe(items))
		}
		// Connections are kept between messages: the later message went
		// over one opened for the first run (concurrent deliveries may
		// have opened more than one).
		if conns, accepted := srv.Connections(), srv.Accepted(); accepted != 4 || conns >= accepted {
			t.Errorf("%d SMTP connections for %d messages; want connections reused", conns, accepted)
		}
	})
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// "when" picks the runs that are mailed: failure covers failed runs,
// success completed ones; a disabled setting mails nothing.
func TestWhenAndDisabled(t *testing.T) {
	t.Parallel()
	srv := smtptest.Start(t, nil)
	f := setup(t, "sqlite", &apptest.Options{Args: srv.Args()})
	notify := func(task *tasks.Task, enabled bool, when string) {
		t.Helper()
		if _, err := f.Tasks.Update(f.Ctx, task.ID, tasks.Input{Notify: &tasks.Notify{Enabled: enabled, Recipients: []string{"beneficiary"}, When: when}}, "admin"); err != nil {
			t.Fatal(err)
		}
	}
	// Alice has no account yet: unlocking it fails.
	failOnFailure, failOnSuccess := f.task(t, "Unlock, on failure", requests.UnlockAccount, "beneficiary"), f.task(t, "Unlock, on success", requests.UnlockAccount, "beneficiary")
	okOnSuccess, okOnFailure, off := f.task(t, "Create, on success", requests.CreateAccount, "beneficiary"), f.task(t, "Create, on failure", requests.CreateAccount, "beneficiary"), f.task(t, "Create, off", requests.CreateAccount, "beneficiary")
	notify(failOnFailure, true, "failure")
	notify(failOnSuccess, true, "success")
	notify(okOnSuccess, true, "success")
	notify(okOnFailure, true, "failure")
	notify(off, false, "always")
	mailed, silent := []*requests.Instance{f.run(t, failOnFailure)}, []*requests.Instance{f.run(t, failOnSuccess)}
	mailed = append(mailed, f.run(t, okOnSuccess))
	silent = append(silent, f.run(t, okOnFailure), f.run(t, off))
	if mailed[0].Status != requests.InstanceFailed || silent[0].Status != requests.InstanceFailed || mailed[1].Status != requests.InstanceCompleted {
		t.Fatalf("runs: %s %s %s", mailed[0].Status, silent[0].Status, mailed[1].Status)
	}
	for _, inst := range mailed {
		f.outbox(t, inst.ID, 1, 10*time.Second, status(notifier.StatusSent))
	}
	for _, inst := range silent {
		if items, _, _ := f.Notifier.List(f.Ctx, notifier.ListOpts{InstanceID: inst.ID}); len(items) != 0 {
			t.Errorf("run of %s was mailed: %s", inst.TaskName, describe(items))
		}
	}
}

// With the server down while runs end, messages wait in the outbox; when it
// is back, each is delivered exactly once.
func TestOutageQueuesThenDeliversOnce(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect string) {
		t.Parallel()
		srv := smtptest.Start(t, nil)
		f := setup(t, dialect, &apptest.Options{Args: append(srv.Args(), "--smtp-retry-for", "1m", "--smtp-timeout", "2s")})
		srv.Stop()
		task := f.task(t, "Outage", requests.UnlockAccount, f.carol.ID, "requester", "beneficiary")
		var runs []*requests.Instance
		for range 4 {
			runs = append(runs, f.run(t, task))
		}
		for _, inst := range runs {
			f.outbox(t, inst.ID, 3, 10*time.Second, func(n notifier.Notification) bool {
				return n.Status == notifier.StatusQueued && n.Attempts >= 2 && strings.Contains(n.LastError, "connect") && n.NextAttemptAt != nil
			})
		}
		srv.Restart()
		for _, inst := range runs {
			f.outbox(t, inst.ID, 3, 15*time.Second, status(notifier.StatusSent))
		}
		f.deliveriesDone(t)
		got := srv.ByMessageID()
		if len(got) != 12 || srv.Accepted() != 12 {
			t.Fatalf("%d messages, %d distinct Message-IDs; want 12", srv.Accepted(), len(got))
		}
		for id, n := range got {
			if n != 1 {
				t.Errorf("%s delivered %d times", id, n)
			}
		}
	})
}

// A connection the server closed, while it was idle in the pool or between
// two messages of a run, is dialed again: the message goes out on the new
// one, without a failed attempt, and once.
func TestClosedConnectionsAreDialedAgain(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect string) {
		t.Parallel()
		srv := smtptest.Start(t, nil)
		f := setup(t, dialect, &apptest.Options{Args: append(srv.Args(), "--smtp-retry-for", "1m")})
		task := f.task(t, "Reconnect", requests.UnlockAccount, f.carol.ID, "requester", "beneficiary")
		first := f.run(t, task)
		f.outbox(t, first.ID, 3, 10*time.Second, status(notifier.StatusSent))
		srv.Wait(t, 3, 10*time.Second)

		// Idle in the pool: the check before the next message finds it closed.
		srv.HangUp()
		idle := f.run(t, task)
		// Between two messages: the server hangs up at the second one.
		srv.HangUpAfter(7)
		between := f.run(t, task)
		for _, inst := range []*requests.Instance{idle, between} {
			for _, n := range f.outbox(t, inst.ID, 3, 10*time.Second, status(notifier.StatusSent)) {
				if n.Attempts != 1 || n.LastError != "" {
					t.Errorf("%s: %d attempts, last error %q; want one attempt", n.Address, n.Attempts, n.LastError)
				}
			}
		}
		f.deliveriesDone(t)
		if got := srv.ByMessageID(); len(got) != 9 || srv.Accepted() != 9 {
			t.Fatalf("%d messages, %d distinct Message-IDs; want 9", srv.Accepted(), len(got))
		}
	})
}

// A 4xx reply is retried with backoff until the server takes the message;
// a 5xx reply fails it at once with the server's words.
func TestTemporaryAndPermanentReplies(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect string) {
		t.Parallel()
		srv := smtptest.Start(t, nil)
		f := setup(t, dialect, &apptest.Options{Args: append(srv.Args(), "--smtp-retry-for", "1m")})
		var mu sync.Mutex
		var tries []time.Time
		srv.SetReply(func(m *smtptest.Message, attempt int) *smtp.SMTPError {
			mu.Lock()
			defer mu.Unlock()
			if m.To[0] == "carol@example.test" {
				return smtptest.Reply(550, "5.1.1", "carol: mailbox unavailable")
			}
			tries = append(tries, time.Now())
			if attempt <= 2 {
				return smtptest.Reply(451, "4.3.0", "greylisted, try again later")
			}
			return nil
		})
		task := f.task(t, "Replies", requests.UnlockAccount, f.carol.ID, "beneficiary")
		inst := f.run(t, task)
		rows := f.outbox(t, inst.ID, 2, 20*time.Second, func(n notifier.Notification) bool {
			return n.Status == notifier.StatusSent || n.Status == notifier.StatusFailed
		})
		for _, n := range rows {
			switch n.Address {
			case "alice@example.test":
				if n.Status != notifier.StatusSent || n.Attempts != 3 || n.LastError != "" {
					t.Errorf("greylisted message: %s", describe([]notifier.Notification{n}))
				}
			case "carol@example.test":
				if n.Status != notifier.StatusFailed || n.Attempts != 1 || !strings.Contains(n.LastError, "550") || !strings.Contains(n.LastError, "5.1.1 carol: mailbox unavailable") {
					t.Errorf("refused message: %s", describe([]notifier.Notification{n}))
				}
			}
		}
		mu.Lock()
		defer mu.Unlock()
		if srv.Accepted() != 1 || len(tries) != 3 {
			t.Fatalf("accepted %d, tried %d times", srv.Accepted(), len(tries))
		}
		// Retries wait (0.1 s, then 0.2 s for a 1 m period, plus the queue's
		// polling); the waits themselves are checked in TestBackoff.
		if d1, d2 := tries[1].Sub(tries[0]), tries[2].Sub(tries[1]); d1 < 80*time.Millisecond || d2 < 160*time.Millisecond {
			t.Errorf("retries after %s then %s; want a backoff", d1, d2)
		}
	})
}

// Retries stop at the end of the retry period, and the message fails with
// the last error. The period is measured by the notifier's clock, which
// the test moves past it once a few tries have failed: how many tries fit
// in the period does not depend on the machine's speed.
func TestRetryPeriodEnds(t *testing.T) {
	t.Parallel()
	const period = time.Minute
	srv := smtptest.Start(t, nil)
	clock := testwait.NewClock()
	f := setup(t, "sqlite", &apptest.Options{Args: append(srv.Args(), "--smtp-retry-for", period.String()), NowFunc: clock.Now})
	srv.SetReply(func(*smtptest.Message, int) *smtp.SMTPError { return smtptest.Reply(421, "4.7.0", "too busy") })
	inst := f.run(t, f.task(t, "Busy", requests.UnlockAccount, "beneficiary"))
	f.outbox(t, inst.ID, 1, 30*time.Second, func(n notifier.Notification) bool {
		return n.Status == notifier.StatusQueued && n.Attempts >= 3
	})
	clock.Advance(period)
	rows := f.outbox(t, inst.ID, 1, 30*time.Second, status(notifier.StatusFailed))
	n := rows[0]
	if n.Attempts < 3 || !strings.Contains(n.LastError, "gave up after") || !strings.Contains(n.LastError, "421") || !strings.Contains(n.LastError, "4.7.0 too busy") {
		t.Errorf("message: %s", describe(rows))
	}
	// The period, plus the real time the tries took (well under another
	// half period).
	if d := n.UpdatedAt.Sub(n.QueuedAt); d < period || d > period*3/2 {
		t.Errorf("failed %s after it was queued; want about the %s retry period", d, period)
	}
}

// hostile is a connector whose grants fail with a message full of markup.
type hostile struct{}

const script = "<script>alert(1)</script>"

func (hostile) Kind(op connectors.Operation) string { return "Hostile." + string(op) }
func (hostile) CreateAccount(context.Context, connectors.Account) (connectors.Result, error) {
	return connectors.Result{Changed: true}, nil
}
func (hostile) DeleteAccount(context.Context, connectors.Account) (connectors.Result, error) {
	return connectors.Result{}, nil
}
func (hostile) EnableAccount(context.Context, connectors.Account) (connectors.Result, error) {
	return connectors.Result{}, nil
}
func (hostile) DisableAccount(context.Context, connectors.Account) (connectors.Result, error) {
	return connectors.Result{}, nil
}
func (hostile) Grant(context.Context, connectors.Account, connectors.Entitlement) (connectors.Result, error) {
	return connectors.Result{}, connectors.Permanent(errors.New(script + ` & "denied"`))
}
func (hostile) Revoke(context.Context, connectors.Account, connectors.Entitlement) (connectors.Result, error) {
	return connectors.Result{}, nil
}
func (hostile) Check(context.Context) connectors.Health { return connectors.Health{OK: true} }
func (hostile) Import(context.Context, connectors.ImportMode, string, connectors.ImportSink) (string, error) {
	return "", nil
}

// Markup in a task's name and in a job's failure message reaches the HTML
// part escaped.
func TestHostileNamesAreEscaped(t *testing.T) {
	t.Parallel()
	srv := smtptest.Start(t, nil)
	typ := connectors.Type{Name: "hostile", Label: "Hostile", New: func(connectors.Config) (connectors.Connector, error) { return hostile{}, nil }}
	f := setup(t, "sqlite", &apptest.Options{Args: srv.Args(), ConnectorTypes: []connectors.Type{typ}})
	rec, err := f.Connectors.Create(f.Ctx, configured.Input{Name: "Hostile Dir", Type: "hostile"})
	if err != nil {
		t.Fatal(err)
	}
	ent, err := f.Identities.CreateEntitlement(f.Ctx, rec.ID, identities.EntitlementInput{Name: "G"})
	if err != nil {
		t.Fatal(err)
	}
	task, err := f.Tasks.Create(f.Ctx, tasks.Input{Name: str(script + " Onboard"), Request: &requests.Request{Type: requests.AddEntitlements,
		BeneficiaryType: "identity", BeneficiaryID: f.alice.ID, ConnectorID: rec.ID, Entitlements: []string{ent.ID}, Justification: "x"},
		Notify: &tasks.Notify{Enabled: true, Recipients: []string{"beneficiary"}}}, "admin")
	if err != nil {
		t.Fatal(err)
	}
	inst := f.run(t, task)
	if inst.Status != requests.InstanceFailed || !strings.Contains(inst.Jobs[0].Message, script) {
		t.Fatalf("run: %s", apptest.Describe(inst))
	}
	m := srv.Wait(t, 1, 10*time.Second)[0]
	parts, err := m.Parts()
	if err != nil {
		t.Fatal(err)
	}
	html := parts["text/html"]
	if strings.Contains(html, "<script") {
		t.Fatalf("the HTML part has a live script:\n%s", html)
	}
	escaped := "&lt;script&gt;alert(1)&lt;/script&gt;"
	if strings.Count(html, escaped) < 3 || !strings.Contains(html, escaped+" &amp; &#34;denied&#34;") {
		t.Errorf("the task name (title, table) and the failure message are not all there, escaped:\n%s", html)
	}
	if !strings.Contains(parts["text/plain"], script+" Onboard failed for Alice Doe.") {
		t.Errorf("text part:\n%s", parts["text/plain"])
	}
}

// Without an SMTP server messages are held and readable; a process that
// starts with one configured sends them.
func TestHeldUntilSMTPConfigured(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect string) {
		t.Parallel()
		f := setup(t, dialect, nil)
		inst := f.run(t, f.task(t, "Held", requests.UnlockAccount, f.carol.ID, "beneficiary"))
		rows := f.outbox(t, inst.ID, 2, 10*time.Second, func(n notifier.Notification) bool {
			return n.Status == notifier.StatusHeld && n.LastError == "not sent: no SMTP configured" && n.Attempts == 0
		})
		if held, total, err := f.Notifier.List(f.Ctx, notifier.ListOpts{Status: notifier.StatusHeld}); err != nil || total != 2 || len(held) != 2 || held[0].BodyText != "" {
			t.Fatalf("held list: %d %v", total, err)
		}
		if full, err := f.Notifier.Get(f.Ctx, rows[0].ID); err != nil || !strings.Contains(full.BodyHTML, "<table") {
			t.Fatalf("get held: %v", err)
		}
		if _, err := f.Notifier.Resend(f.Ctx, rows[0].ID, "admin"); !errors.Is(err, requests.ErrConflict) {
			t.Errorf("resend without SMTP: %v", err)
		}

		// Stop this process's workers and start another on the same
		// database with a server configured.
		stopCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := f.Queue.Stop(stopCtx); err != nil {
			t.Fatal(err)
		}
		srv := smtptest.Start(t, nil)
		args := append([]string{"--data-dir", f.Config.DataDir, "--secret-key", f.Config.SecretKey, "--log-level", "error"}, srv.Args()...)
		if f.Config.DatabaseURL != "" {
			args = append(args, "--database", f.Config.DatabaseURL)
		}
		cfg, err := config.Load("second", args, func(string) string { return "" }, io.Discard, nil)
		if err != nil {
			t.Fatal(err)
		}
		ctx, stop := context.WithCancel(context.Background())
		second, err := app.New(ctx, cfg, slog.New(slog.DiscardHandler), nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := second.Start(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { stop(); _ = second.Shutdown() })
		srv.Wait(t, 2, 15*time.Second)
		testwait.Until(t, 10*time.Second, func() error {
			items, _, err := second.Notifier.List(ctx, notifier.ListOpts{InstanceID: inst.ID})
			if err != nil {
				t.Fatal(err)
			}
			if len(items) == 2 && items[0].Status == notifier.StatusSent && items[1].Status == notifier.StatusSent {
				return nil
			}
			return fmt.Errorf("after configuring SMTP: %s", describe(items))
		})
		for id, n := range srv.ByMessageID() {
			if n != 1 {
				t.Errorf("%s delivered %d times", id, n)
			}
		}
	})
}

// Time-bound access mails when it is granted, saying until when, and
// again when it is revoked.
func TestTimeBoundAccessMailsWhenGrantedAndWhenRevoked(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect string) {
		t.Parallel()
		f := setup(t, dialect, nil)
		task := f.task(t, "VPN for a day", requests.CreateAccount, "beneficiary")
		dur := "24h"
		req := task.Request
		req.Duration = dur
		if _, err := f.Tasks.Update(f.Ctx, task.ID, tasks.Input{Request: &req}, "admin"); err != nil {
			t.Fatal(err)
		}
		inst := f.run(t, task)
		if inst.Status != requests.InstanceActive || inst.ExpiresAt == nil {
			t.Fatalf("run: %s", apptest.Describe(inst))
		}
		until := inst.ExpiresAt.UTC().Format("2006-01-02 15:04:05 MST")
		granted := f.outbox(t, inst.ID, 1, 10*time.Second, func(notifier.Notification) bool { return true })
		if want := "[Provisor] VPN for a day: granted until " + until + " for Alice Doe"; granted[0].Subject != want {
			t.Errorf("subject when granted %q, want %q", granted[0].Subject, want)
		}
		msg, err := f.Notifier.Get(f.Ctx, granted[0].ID)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(msg.BodyText, "revoked at "+until) || !strings.Contains(msg.BodyHTML, "granted until "+until) {
			t.Errorf("the grant's message does not say until when:\n%s", msg.BodyText)
		}

		if _, err := f.Requests.ForceEnd(f.Ctx, inst.ID, "admin"); err != nil {
			t.Fatal(err)
		}
		ended := f.Wait(t, inst.ID, 20*time.Second, func(i *requests.Instance) bool { return requests.Final(i.Status) })
		if ended.Status != requests.InstanceCompleted {
			t.Fatalf("after Force End: %s", apptest.Describe(ended))
		}
		both := f.outbox(t, inst.ID, 2, 10*time.Second, func(notifier.Notification) bool { return true })
		var revoked *notifier.Notification
		for i := range both {
			if both[i].ID != granted[0].ID {
				revoked = &both[i]
			}
		}
		if revoked == nil || revoked.Subject != "[Provisor] VPN for a day: revoked for Alice Doe" {
			t.Errorf("message when revoked: %+v", revoked)
		}
	})
}
