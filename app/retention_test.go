package app_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"github.com/provisor/provisor/app/apptest"
	"github.com/provisor/provisor/database/dbtest"
	"github.com/provisor/provisor/internal/testwait"
	"github.com/provisor/provisor/provlog"
)

// A process started with --log-retention deletes the provisioning log
// entries older than it (the daily prune also runs at start) and keeps the
// newer ones, which the search still finds.
func TestLogRetentionPrunesOldEntries(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect string) {
		t.Parallel()
		b := apptest.New(t, dialect, &apptest.Options{NoStart: true, Args: []string{"--log-retention", "30d"}})
		now := time.Now().UTC()
		var es []provlog.Entry
		for i, age := range []time.Duration{40 * 24 * time.Hour, 31 * 24 * time.Hour, 29 * 24 * time.Hour, time.Hour} {
			es = append(es, provlog.Entry{ID: uuid.NewString(), At: now.Add(-age), Action: provlog.ActionGrant,
				Status: provlog.StatusSuccess, IdentityName: fmt.Sprintf("Keeper %d", i), TargetUsername: fmt.Sprintf("keeper%d", i)})
		}
		if err := b.DB.InTx(b.Ctx, func(tx *gorm.DB) error { return provlog.InsertTx(tx, es) }); err != nil {
			t.Fatal(err)
		}
		// As the expander moved them when they were new.
		if _, err := b.Logs.Expand(b.Ctx, time.Now()); err != nil {
			t.Fatal(err)
		}
		if err := b.Start(b.Ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = b.Shutdown() })
		testwait.Until(t, 30*time.Second, func() error {
			got, _, err := b.Logs.Search(context.Background(), provlog.Filter{Query: "KEEPER"})
			if err != nil {
				return err
			}
			if len(got) != 2 || got[0].TargetUsername != "keeper3" || got[1].TargetUsername != "keeper2" {
				return fmt.Errorf("%d entries left, want keeper3 and keeper2", len(got))
			}
			return nil
		})
	})
}
