package provlog_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/provisor/provisor/connectors"
	"github.com/provisor/provisor/database"
	"github.com/provisor/provisor/database/dbtest"
	"github.com/provisor/provisor/provlog"
)

// BenchmarkInsert writes entries as the engine does, 20 in one result
// transaction, then moves them into the log as the expander does, and
// reports the time per entry of each on each dialect:
//
//	go test -run '^$' -bench Insert -benchtime 2000x ./provlog/
func BenchmarkInsert(b *testing.B) {
	for _, dialect := range []string{database.Postgres, database.SQLite} {
		b.Run(dialect, func(b *testing.B) {
			db := dbtest.Open(b, dialect)
			l := provlog.New(db, nil)
			ctx := context.Background()
			now := time.Now().UTC()
			batch := make([]provlog.Entry, 20)
			var in time.Duration
			b.ResetTimer()
			for n := range b.N {
				for i := range batch {
					k := n*len(batch) + i
					batch[i] = entry(now, fmt.Sprintf("Person %d", k), fmt.Sprintf("person%d@example.test", k),
						fmt.Sprintf("user%d", k), fmt.Sprintf("uid=user%d,ou=people,dc=example,dc=test", k))
					batch[i].Steps = []connectors.Step{{Name: "lookup", Duration: time.Millisecond}, {Name: "modify", Duration: time.Millisecond}}
				}
				if err := db.InTx(ctx, func(tx *gorm.DB) error {
					t0 := time.Now()
					err := provlog.InsertTx(tx, batch)
					in += time.Since(t0)
					return err
				}); err != nil {
					b.Fatal(err)
				}
			}
			t0 := time.Now()
			moved, err := l.Expand(ctx, time.Now().Add(time.Hour))
			if err != nil || moved != int64(b.N*len(batch)) {
				b.Fatalf("moved %d entries, %v", moved, err)
			}
			entries := float64(b.N * len(batch))
			b.ReportMetric(float64(in.Microseconds())/entries, "µs/entry_in_result_tx")
			b.ReportMetric(float64(time.Since(t0).Microseconds())/entries, "µs/entry_moved")
		})
	}
}
