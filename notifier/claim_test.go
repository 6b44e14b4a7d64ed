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
	"github.com/provisor/provisor/app/database/dbtest"
	"github.com/provisor/provisor/notifier/smtptest"
)

// A message is marked before it is sent. Only the job that marked it may
// claim it again (River runs that job again after its process died); any
// other job leaves it alone, so a resend can never race a live delivery.
// After a crash between sending and recording, the rerun sends it once
// more, with the same Message-ID: the duplicate SMTP itself allows for.
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
		s, err := New(db, &Options{SMTP: cfg.SMTP, RetryFor: time.Minute})
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
		for _, addr := range []string{"a@example.test", "b@example.test"} {
			c := &Content{Subject: "s", Text: "t", HTML: "<p>h</p>"}
			n := s.newNotification(inst, recipient{Type: RecipientIdentity, Name: addr, Address: addr}, c)
			if err := db.Gorm.Create(&n).Error; err != nil {
				t.Fatal(err)
			}
			ids = append(ids, n.ID)
		}

		// Job 7 marks both and dies before sending.
		if got, err := s.claim(7, ids); err != nil || len(got) != 2 || got[0].Status != StatusSending || *got[0].ClaimedBy != 7 {
			t.Fatalf("claim by 7: %v %+v", err, got)
		}
		// Another job (a resend, say) does not touch them.
		if got, err := s.claim(8, ids); err != nil || len(got) != 0 {
			t.Fatalf("claim by 8: %v %d rows", err, len(got))
		}
		if err := s.deliver(ctx, 8, ids); err != nil || srv.Accepted() != 0 {
			t.Fatalf("job 8 delivered: %v, %d messages", err, srv.Accepted())
		}
		// River runs job 7 again: it sends both, once.
		if err := s.deliver(ctx, 7, ids); err != nil {
			t.Fatal(err)
		}
		if srv.Accepted() != 2 {
			t.Fatalf("%d messages after the rerun", srv.Accepted())
		}
		for _, id := range ids {
			n, _ := s.Get(ctx, id)
			if n.Status != StatusSent || n.Attempts != 2 || n.LastError != "" {
				t.Errorf("after the rerun: %+v", n)
			}
		}

		// A crash between sending and recording: the row still says sending.
		if err := db.Gorm.Model(&Notification{}).Where("id = ?", ids[0]).Update("status", StatusSending).Error; err != nil {
			t.Fatal(err)
		}
		if err := s.deliver(ctx, 7, ids); err != nil {
			t.Fatal(err)
		}
		n, _ := s.Get(ctx, ids[0])
		counts := srv.ByMessageID()
		if counts["<"+n.MessageID+">"] != 2 || srv.Accepted() != 3 || n.Status != StatusSent {
			t.Errorf("after a lost record: %v, status %s", counts, n.Status)
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
	s, err := New(dbtest.Open(t, "sqlite"), &Options{SMTP: cfg.SMTP, SMTPName: cfg.RedactedSMTP(), Logger: log})
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
