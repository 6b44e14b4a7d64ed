package notifier

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/provisor/provisor/database/dbtest"
)

// The messages of a run share one stored body; another run, or another
// email, has its own. A message written beside its run's first one, which
// was there already, gets a body of its own.
func TestRunSharesOneBody(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect string) {
		t.Parallel()
		db := dbtest.Open(t, dialect)
		s, err := New(db, nil, nil) // no SMTP: the messages are held, no queue needed
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		now := time.Now().UTC()
		run := func() string {
			id := uuid.NewString()
			if err := db.Gorm.Exec(`INSERT INTO request_instances (id, request, type, beneficiary_type, beneficiary_id, beneficiary_name,
				connector_id, trigger, priority, status, created_at, updated_at) VALUES (?, '{}', 'lock_account', 'identity', ?, 'Alice', ?, 'manual', 'normal', 'completed', ?, ?)`,
				id, uuid.NewString(), uuid.NewString(), now, now).Error; err != nil {
				t.Fatal(err)
			}
			return id
		}
		a, b := run(), run()
		email := &Content{Subject: "s", Text: "text", HTML: "<p>html</p>"}
		other := &Content{Subject: "s", Text: "other text", HTML: "<p>other</p>"}
		msg := func(inst, addr string, c *Content) Notification {
			return s.newNotification(inst, recipient{Type: RecipientIdentity, Name: addr, Address: addr}, c)
		}
		bodies := func() int64 {
			var n int64
			if err := db.Gorm.Model(&body{}).Count(&n).Error; err != nil {
				t.Fatal(err)
			}
			return n
		}
		check := func(rows []Notification) {
			t.Helper()
			for _, r := range rows {
				n, err := s.Get(ctx, r.ID)
				if err != nil || n.BodyText != r.BodyText || n.BodyHTML != r.BodyHTML {
					t.Errorf("%s: %v, body %q %q; want %q %q", r.Address, err, n.BodyText, n.BodyHTML, r.BodyText, r.BodyHTML)
				}
			}
		}
		rows := []Notification{msg(a, "a1@example.test", email), msg(a, "a2@example.test", email), msg(a, "a3@example.test", email),
			msg(b, "b1@example.test", email), msg(b, "b2@example.test", email), msg(b, "b3@example.test", other)}
		if n, err := s.EnqueueTx(ctx, db.Gorm, rows); err != nil || n != 6 {
			t.Fatalf("wrote %d: %v", n, err)
		}
		if n := bodies(); n != 3 {
			t.Errorf("%d bodies for two runs and two emails, want 3", n)
		}
		check(rows)

		// a1 is there already: a4 and a5 cannot share its body.
		more := []Notification{msg(a, "a1@example.test", email), msg(a, "a4@example.test", email), msg(a, "a5@example.test", email)}
		if n, err := s.EnqueueTx(ctx, db.Gorm, more); err != nil || n != 2 {
			t.Fatalf("wrote %d: %v", n, err)
		}
		if n := bodies(); n != 5 {
			t.Errorf("%d bodies, want 5", n)
		}
		check(more[1:])
		var shared int64
		if err := db.Gorm.Model(&Notification{}).Where("id IN ? AND body_id IS NOT NULL", []string{more[1].ID, more[2].ID}).Count(&shared).Error; err != nil || shared != 0 {
			t.Errorf("%d of the new messages name another's body (%v)", shared, err)
		}
	})
}
