package notifier

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/provisor/provisor/app/config"
	"github.com/provisor/provisor/database/dbtest"
	"github.com/provisor/provisor/notifier/smtptest"
)

// A queued message belongs to one job: the job written with it, or the job
// named in claimed_by (a resend or a release of held messages names the
// new job). Only that job sends it, so a resend can never race a live
// delivery. Nothing is written before a message is sent: after a crash
// between sending and recording, the rerun sends it once more, with the
// same Message-ID, the duplicate SMTP itself allows for.
func TestClaimAndCrashRecovery(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect string) {
		t.Parallel()
		srv := smtptest.Start(t, nil)
		cfg, err := config.Load("t", srv.Args(), func(string) string { return "" }, io.Discard, nil)
		if err != nil {
			t.Fatal(err)
		}
		db := dbtest.Open(t, dialect)
		s, err := New(db, nil, &Options{SMTP: (*SMTP)(cfg.SMTP), RetryFor: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close(context.Background())
		ctx := context.Background()
		inst := uuid.NewString()
		now := time.Now().UTC()
		if err := db.Gorm.Exec(`INSERT INTO request_instances (id, request, type, beneficiary_type, beneficiary_id, beneficiary_name,
			connector_id, trigger, priority, status, created_at, updated_at) VALUES (?, '{}', 'lock_account', 'identity', ?, 'Alice', ?, 'manual', 'normal', 'completed', ?, ?)`,
			inst, uuid.NewString(), uuid.NewString(), now, now).Error; err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, addr := range []string{"a@example.test", "b@example.test", "c@example.test"} {
			c := &Content{Subject: "s", Text: "t", HTML: "<p>h</p>"}
			n := s.newNotification(inst, recipient{Type: RecipientIdentity, Name: addr, Address: addr}, c)
			if err := db.Gorm.Create(&n).Error; err != nil {
				t.Fatal(err)
			}
			if err := db.Gorm.Create(&body{NotificationID: n.ID, BodyText: c.Text, BodyHTML: c.HTML}).Error; err != nil {
				t.Fatal(err)
			}
			ids = append(ids, n.ID)
		}
		set := func(id string, updates map[string]any) {
			t.Helper()
			if err := db.Gorm.Model(&Notification{}).Where("id = ?", id).Updates(updates).Error; err != nil {
				t.Fatal(err)
			}
		}
		// The three are job 7's (queued again for it); the third had an
		// attempt already.
		set(ids[0], map[string]any{"claimed_by": 7})
		set(ids[1], map[string]any{"claimed_by": 7})
		set(ids[2], map[string]any{"claimed_by": 7, "attempts": 1})

		// Another job (the one that failed them, say) does not touch them.
		if settled, err := s.deliver(ctx, 8, ids, time.Now().Add(time.Minute)); err != nil || settled || srv.Accepted() != 0 {
			t.Fatalf("job 8 delivered: %v, settled %v, %d messages", err, settled, srv.Accepted())
		}
		if next, err := s.nextAttempt(ctx, 8, ids); err != nil || next != nil {
			t.Fatalf("job 8 waits for %v (%v)", next, err)
		}
		// Job 7 sends the three, once.
		if settled, err := s.deliver(ctx, 7, ids, time.Now().Add(time.Minute)); err != nil || !settled {
			t.Fatalf("job 7: %v, settled %v", err, settled)
		}
		if srv.Accepted() != 3 {
			t.Fatalf("%d messages from job 7", srv.Accepted())
		}
		for i, id := range ids {
			n, _ := s.Get(ctx, id)
			if want := 1 + i/2; n.Status != StatusSent || n.Attempts != want || n.LastError != "" || n.SentAt == nil {
				t.Errorf("after job 7, want %d attempts: %+v", want, n)
			}
		}

		// A crash between sending and recording: the row still says queued.
		set(ids[0], map[string]any{"status": StatusQueued})
		if _, err := s.deliver(ctx, 7, ids, time.Now().Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		n, _ := s.Get(ctx, ids[0])
		counts := srv.ByMessageID()
		if counts["<"+n.MessageID+">"] != 2 || srv.Accepted() != 4 || n.Status != StatusSent || n.Attempts != 2 {
			t.Errorf("after a lost record: %v, %+v", counts, n)
		}
	})
}

// The start-up log names the SMTP server without its password, and warns
// when certificates are not checked.
func TestStartupLogRedactsPassword(t *testing.T) {
	t.Parallel()
	srv := smtptest.Start(t, nil)
	cfg, err := config.Load("t", append(srv.Args(), "--smtp-insecure-skip-verify"), func(string) string { return "" }, io.Discard, nil)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	log := slog.New(slog.NewTextHandler(&out, nil))
	s, err := New(dbtest.Open(t, "sqlite"), nil, &Options{SMTP: (*SMTP)(cfg.SMTP), SMTPName: cfg.RedactedSMTP(), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	got := out.String()
	if strings.Contains(got, srv.Password) || strings.Contains(got, url.QueryEscape(srv.Password)) || strings.Contains(got, url.PathEscape(srv.Password)) {
		t.Errorf("the password is in the log:\n%s", got)
	}
	if !strings.Contains(got, "provisor:xxxxx@"+srv.Addr) || !strings.Contains(got, "level=WARN") || !strings.Contains(got, "not verified") {
		t.Errorf("log:\n%s", got)
	}
}
