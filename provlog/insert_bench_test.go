package provlog_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/provisor/provisor/connectors"
	"github.com/provisor/provisor/database"
	"github.com/provisor/provisor/database/dbtest"
	"github.com/provisor/provisor/provlog"
)

// BenchmarkInsert writes entries as the engine does, 20 in one
// transaction, and reports the time per entry on each dialect.
func BenchmarkInsert(b *testing.B) {
	for _, dialect := range []string{database.Postgres, database.SQLite} {
		b.Run(dialect, func(b *testing.B) {
			db := dbtest.Open(b, dialect)
			if dialect == database.SQLite && os.Getenv("NOFTS") != "" {
				db.Gorm.Exec("DROP TRIGGER provisioning_logs_search_insert")
			}
			now := time.Now().UTC()
			bs, _ := strconv.Atoi(os.Getenv("BATCH"))
			if bs == 0 {
				bs = 20
			}
			batch := make([]provlog.Entry, bs)
			var in time.Duration
			b.ResetTimer()
			for n := range b.N {
				for i := range batch {
					batch[i] = entry(now, fmt.Sprintf("Person %d", n*bs+i), fmt.Sprintf("person%d@example.test", n*bs+i),
						fmt.Sprintf("user%d", n*bs+i), fmt.Sprintf("uid=user%d,ou=people,dc=example,dc=test", n*bs+i))
					batch[i].Steps = []connectors.Step{{Name: "lookup", Duration: time.Millisecond}, {Name: "modify", Duration: time.Millisecond}}
				}
				if err := db.InTx(context.Background(), func(tx *gorm.DB) error {
					t0 := time.Now()
					err := provlog.InsertTx(tx, batch)
					in += time.Since(t0)
					return err
				}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*len(batch)), "µs/entry")
			b.ReportMetric(float64(in.Microseconds())/float64(b.N*len(batch)), "µs/entry_in_tx")
		})
	}
}
