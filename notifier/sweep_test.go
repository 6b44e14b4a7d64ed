package notifier_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/provisor/provisor/app/apptest"
	"github.com/provisor/provisor/database/dbtest"
	"github.com/provisor/provisor/internal/testwait"
	"github.com/provisor/provisor/notifier"
	"github.com/provisor/provisor/notifier/smtptest"
	"github.com/provisor/provisor/requests"
)

// Messages whose delivery job will not run again (cancelled here, as after
// River discarded it) are handed to a new job by the sweep and sent once.
func TestSweepRequeuesMessagesWithoutAnOwner(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect string) {
		t.Parallel()
		srv := smtptest.Start(t, nil)
		f := setup(t, dialect, &apptest.Options{Args: append(srv.Args(), "--smtp-retry-for", "1h", "--smtp-timeout", "2s")})
		srv.Stop()
		task := f.task(t, "Stranded", requests.UnlockAccount, f.carol.ID, "requester", "beneficiary")
		inst := f.run(t, task)
		f.outbox(t, inst.ID, 3, 10*time.Second, func(n notifier.Notification) bool {
			return n.Status == notifier.StatusQueued && n.Attempts >= 1
		})
		g := f.DB.Gorm
		if err := g.Exec("UPDATE river_job SET state = 'cancelled', finalized_at = ? WHERE kind = ?", time.Now().UTC(),
			notifier.DeliveryArgs{}.Kind()).Error; err != nil {
			t.Fatal(err)
		}
		// Recent messages are left alone.
		if n, err := f.Notifier.Sweep(f.Ctx, time.Hour); err != nil || n != 0 {
			t.Fatalf("sweep of recent messages: %d, %v", n, err)
		}
		// The messages go back one by one as their job lets go of them.
		handed := 0
		testwait.Until(t, 10*time.Second, func() error {
			if err := g.Exec("UPDATE notifications SET updated_at = ? WHERE instance_id = ?", time.Now().UTC().Add(-time.Hour), inst.ID).Error; err != nil {
				t.Fatal(err)
			}
			n, err := f.Notifier.Sweep(f.Ctx, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			if handed += n; handed < 3 {
				return fmt.Errorf("%d messages handed back, want 3", handed)
			}
			return nil
		})
		srv.Restart()
		f.outbox(t, inst.ID, 3, 15*time.Second, status(notifier.StatusSent))
		if n, err := f.Notifier.Sweep(f.Ctx, 0); err != nil || n != 0 {
			t.Errorf("sweep after delivery: %d, %v", n, err)
		}
		for id, n := range srv.ByMessageID() {
			if n != 1 {
				t.Errorf("%s delivered %d times", id, n)
			}
		}
		if srv.Accepted() != 3 {
			t.Errorf("%d messages accepted, want 3", srv.Accepted())
		}
	})
}

// A delivery job's attempt is bounded by the service's own bound, not by
// the connector jobs' timeout.
func TestDeliveryAttemptBound(t *testing.T) {
	t.Parallel()
	f := setup(t, dbtest.Dialects[0], &apptest.Options{NoStart: true, Args: []string{"--job-timeout", "30s", "--rescue-after", "7m"}})
	if got := notifier.NewWorker(f.Notifier).Timeout(nil); got != 7*time.Minute {
		t.Errorf("a delivery attempt is bounded by %s, want the rescue delay (7m)", got)
	}
}
