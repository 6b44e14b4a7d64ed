package entra_test

// Benchmark of the Entra connector through Provisor against the Graph
// contract server with a write budget:
//
//	go test -run '^$' -bench Entra -benchtime 1x ./connectors/entra/

import (
	"fmt"
	"math"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/provisor/provisor/app/apptest"
	"github.com/provisor/provisor/connectors"
	"github.com/provisor/provisor/connectors/configured"
	"github.com/provisor/provisor/connectors/entra"
	"github.com/provisor/provisor/connectors/entra/graphtest"
	"github.com/provisor/provisor/database"
	"github.com/provisor/provisor/identities"
	"github.com/provisor/provisor/requests"
)

const benchUsers = 2000

// benchBudget is the server's write budget (writes per second): Microsoft
// Graph's documented write quota for an application+tenant pair in the
// identity and access service, 3,000 requests per 2 minutes 30 seconds
// (https://learn.microsoft.com/graph/throttling-limits#identity-and-access-service-limits),
// which is 20 writes/s; each request inside a $batch counts. The bucket
// holds one second's worth and starts full: the app has spent its window
// already, as a busy provisioning app has (with a fresh window of 3,000
// the 2,000 writes would never be throttled and the run would measure the
// machine, not the pacing). PROVISOR_ENTRA_BENCH_BUDGET overrides it (for
// a quick trial at a higher budget).
var benchBudget = func() float64 {
	if v, err := strconv.ParseFloat(os.Getenv("PROVISOR_ENTRA_BENCH_BUDGET"), 64); err == nil && v > 0 {
		return v
	}
	return 3000.0 / 150
}()

// BenchmarkEntraGrants grants one group to 2,000 accounts through the
// whole of Provisor (queue, workers, connector, database), as one
// workgroup request and as 2,000 single-grant requests, against the
// contract server throttling writes at benchBudget per second. The
// baseline is the budget itself: the sustained rate is the writes the
// server took beyond its initial bucket, per second of the run.
func BenchmarkEntraGrants(b *testing.B) {
	for _, dialect := range []string{database.Postgres, database.SQLite} {
		for _, sh := range []string{"workgroup", "identities"} {
			b.Run(dialect+"/"+sh, func(b *testing.B) {
				for range b.N {
					benchGrants(b, dialect, sh)
				}
			})
		}
	}
}

func benchGrants(b *testing.B, dialect, shape string) {
	b.StopTimer()
	g := graphtest.New(b, &graphtest.Options{PageSize: 999, WriteBudget: benchBudget})
	for i := range benchUsers {
		g.AddUser(fmt.Sprintf("u%05d@contoso.test", i), fmt.Sprintf("User %d", i), true)
	}
	g.AddGroup("Provisor")
	bundle := apptest.New(b, dialect, &apptest.Options{NoStart: true, Args: []string{"--workers", "50"}})
	ctx := bundle.Ctx
	rec, err := bundle.Connectors.Create(ctx, configured.Input{Name: "Bench Entra", Type: entra.TypeName, Settings: g.Settings(),
		Secrets: map[string]string{entra.SecretClientSecret: graphtest.ClientSecret}})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := bundle.Importer.Run(ctx, rec.ID, connectors.ImportFull, ""); err != nil {
		b.Fatal(err)
	}
	var all []*identities.Identity
	for off := 0; off < benchUsers; off += 500 {
		ids, _, err := bundle.Identities.ListIdentities(ctx, identities.ListOpts{Limit: 500, Offset: off})
		if err != nil {
			b.Fatal(err)
		}
		for i := range ids {
			all = append(all, &ids[i])
		}
	}
	ents, _, _ := bundle.Identities.ListEntitlements(ctx, rec.ID, identities.ListOpts{Query: "Provisor"})
	if len(all) != benchUsers || len(ents) != 1 {
		b.Fatalf("%d identities, entitlements %+v", len(all), ents)
	}
	grant := requests.Request{Type: requests.AddEntitlements, ConnectorID: rec.ID, Entitlements: []string{ents[0].ID}, Justification: "bench"}
	var runs []requests.Request
	if shape == "identities" {
		for _, id := range all {
			r := grant
			r.BeneficiaryType, r.BeneficiaryID = requests.BeneficiaryIdentity, id.ID
			runs = append(runs, r)
		}
	} else {
		wg := bundle.Workgroup(b, "Everyone", all...)
		r := grant
		r.BeneficiaryType, r.BeneficiaryID = requests.BeneficiaryWorkgroup, wg.ID
		runs = append(runs, r)
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := next.Add(1) - 1; i < int64(len(runs)); i = next.Add(1) - 1 {
			if _, err := bundle.Requests.Submit(ctx, runs[i], requests.StartOpts{Trigger: requests.TriggerAPI, Actor: "bench"}); err != nil {
				b.Error(err)
				return
			}
		}
	}()
	wg.Wait()
	g.ResetStats()
	b.StartTimer()
	start := time.Now()
	if err := bundle.App.Start(ctx); err != nil {
		b.Fatal(err)
	}
	for {
		var busy int64
		if err := bundle.DB.Gorm.Model(&requests.Instance{}).Where("status IN ?", []string{requests.InstancePending, requests.InstanceRunning}).
			Count(&busy).Error; err != nil {
			b.Fatal(err)
		}
		if busy == 0 {
			break
		}
		if time.Since(start) > 10*time.Minute {
			b.Fatalf("%d runs still busy after 10 minutes", busy)
		}
		time.Sleep(20 * time.Millisecond)
	}
	took := time.Since(start)
	b.StopTimer()
	var completed, failed, waits int64
	grants := bundle.DB.Gorm.Model(&requests.Job{}).Where("operation = ?", connectors.OpGrant)
	grants.Session(&gorm.Session{}).Where("status = ?", requests.JobCompleted).Count(&completed)
	grants.Session(&gorm.Session{}).Where("status = ?", requests.JobFailed).Count(&failed)
	bundle.DB.Gorm.Model(&requests.Job{}).Select("COALESCE(SUM(rate_limit_waits), 0)").Scan(&waits)
	_ = bundle.App.Shutdown()
	st := g.Stats()
	members := len(g.Members(ents[0].ExternalID))
	if completed != benchUsers || failed != 0 || members != benchUsers {
		b.Fatalf("%d completed, %d failed, %d members", completed, failed, members)
	}
	sustained := (float64(st.WritesOK) - math.Ceil(benchBudget)) / took.Seconds()
	share429 := 100 * float64(st.Throttled) / float64(st.Writes)
	b.ReportMetric(float64(benchUsers)/took.Seconds(), "grants/s")
	b.ReportMetric(100*sustained/benchBudget, "%_of_budget")
	b.ReportMetric(share429, "%_429")
	b.ReportMetric(float64(st.HTTPRequests), "http_requests")
	b.Logf("%s %s: start to first write %s, first to last write %s (longest gap %s), last write to all runs ended %s",
		dialect, shape, st.FirstWrite.Sub(start).Round(time.Millisecond), st.LastWrite.Sub(st.FirstWrite).Round(time.Millisecond),
		st.MaxGap.Round(time.Millisecond), start.Add(took).Sub(st.LastWrite).Round(time.Millisecond))
	b.Logf("%s %s: %d grants in %s (%.0f/s); budget %.0f writes/s, sustained %.0f/s beyond the initial bucket = %.1f%% (target ≥ 90%%); "+
		"%d of %d write requests answered 429 = %.2f%% (target ≤ 2%%); %d HTTP requests to Graph, %d of them $batch (others: %v); %d rate-limit waits on jobs; failed jobs %d",
		dialect, shape, benchUsers, took.Round(time.Millisecond), float64(benchUsers)/took.Seconds(), benchBudget, sustained, 100*sustained/benchBudget,
		st.Throttled, st.Writes, share429, st.HTTPRequests, st.Batches, st.Others, waits, failed)
}
