package scim_test

// Benchmark of SCIM grants through Provisor against the SCIM test server,
// with the same PATCH requests sent by a plain net/http loop over the same
// connections as the baseline, in the same run:
//
//	go test -run '^$' -bench SCIMGrants -benchtime 1x ./connectors/scim/

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/provisor/provisor/app/apptest"
	"github.com/provisor/provisor/connectors"
	"github.com/provisor/provisor/connectors/configured"
	"github.com/provisor/provisor/connectors/scim"
	"github.com/provisor/provisor/connectors/scim/scimtest"
	"github.com/provisor/provisor/database"
	"github.com/provisor/provisor/identities"
	"github.com/provisor/provisor/requests"
)

const (
	grantCount = 1000
	// rawStreams is how many PATCH loops the baseline runs at once: as
	// many as Provisor has in flight for a workgroup request of
	// grantCount, whose 4 sets of 250 share the connector's PATCH streams.
	rawStreams = scim.PatchStreams
)

// BenchmarkSCIMGrants grants one group to 1,000 accounts through the whole
// of Provisor (queue, workers, connector, database), as one workgroup
// request and as 1,000 single-grant requests, and reports the rate
// against a plain net/http loop sending the same PATCH requests (one
// member each) to another group of the same server over the same
// transport, measured just before.
//
// Each shape runs three times: against the server as it is, on this
// machine's cores beside Provisor (the raw loop alone keeps two cores busy
// with the server's work, and what Provisor adds has no core of its own),
// and with every answer 5 ms and 20 ms later ("…-5ms", "…-20ms"), as from
// a target across a network, whose work is not done on the machine
// Provisor runs on. A SaaS application's SCIM endpoint typically answers
// in tens of milliseconds or more.
func BenchmarkSCIMGrants(b *testing.B) {
	for _, dialect := range []string{database.Postgres, database.SQLite} {
		for _, sh := range []string{"workgroup", "identities"} {
			for _, latency := range []time.Duration{0, 5 * time.Millisecond, 20 * time.Millisecond} {
				name := dialect + "/" + sh
				if latency > 0 {
					name += "-" + latency.String()
				}
				b.Run(name, func(b *testing.B) {
					for range b.N {
						benchSCIMGrants(b, dialect, sh, latency)
					}
				})
			}
		}
	}
}

// rawPatches adds each of ids to group with one PATCH each, over client,
// from rawStreams loops, and returns how long it took.
func rawPatches(b *testing.B, client *http.Client, base, group string, ids []string) time.Duration {
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range rawStreams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1) - 1; i < int64(len(ids)); i = next.Add(1) - 1 {
				body := fmt.Sprintf(`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"add","path":"members","value":[{"value":%q}]}]}`, ids[i])
				req, _ := http.NewRequest(http.MethodPatch, base+"/Groups/"+group, bytes.NewReader([]byte(body)))
				req.Header.Set("Authorization", "Bearer "+scimtest.Token)
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Accept", "application/json")
				resp, err := client.Do(req)
				if err != nil {
					b.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b.Errorf("raw PATCH: %d", resp.StatusCode)
					return
				}
			}
		}()
	}
	wg.Wait()
	return time.Since(start)
}

func benchSCIMGrants(b *testing.B, dialect, shape string, latency time.Duration) {
	b.StopTimer()
	srv := scimtest.New(b, &scimtest.Options{MaxResults: 1000})
	srv.Record(false)
	var uids []string
	for i := range grantCount {
		uids = append(uids, srv.AddUser(fmt.Sprintf("u%05d", i), fmt.Sprintf("User %d", i), true))
	}
	group := srv.AddGroup("Provisor")
	rawGroup := srv.AddGroup("Raw")
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConnsPerHost = 64
	bundle := apptest.New(b, dialect, &apptest.Options{NoStart: true, Args: []string{"--workers", "50"},
		ConnectorTypes: []connectors.Type{scim.TypeWith(&scim.Options{Transport: transport})}})
	ctx := bundle.Ctx
	rec, err := bundle.Connectors.Create(ctx, configured.Input{Name: "Bench SCIM", Type: scim.TypeName,
		Settings: []byte(fmt.Sprintf(`{"base_url":%q,"page_size":1000}`, srv.URL)), Secrets: scimtest.Secrets()})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := bundle.Importer.Run(ctx, rec.ID, connectors.ImportFull, ""); err != nil {
		b.Fatal(err)
	}
	var all []*identities.Identity
	for off := 0; off < grantCount; off += 500 {
		ids, _, err := bundle.Identities.ListIdentities(ctx, identities.ListOpts{Limit: 500, Offset: off})
		if err != nil {
			b.Fatal(err)
		}
		for i := range ids {
			all = append(all, &ids[i])
		}
	}
	ents, _, _ := bundle.Identities.ListEntitlements(ctx, rec.ID, identities.ListOpts{Query: "Provisor"})
	if len(all) != grantCount || len(ents) != 1 {
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
	for _, r := range runs {
		if _, err := bundle.Requests.Submit(ctx, r, requests.StartOpts{Trigger: requests.TriggerAPI, Actor: "bench"}); err != nil {
			b.Fatal(err)
		}
	}

	// The baseline, over the transport the connector uses.
	srv.Latency(latency)
	rawCPU := cpuNow()
	rawTook := rawPatches(b, &http.Client{Transport: transport}, srv.URL, rawGroup, uids)
	rawCPU = cpuNow().minus(rawCPU)
	if got := len(srv.Members(rawGroup)); got != grantCount {
		b.Fatalf("raw loop: %d members", got)
	}
	patchesBefore := srv.Patches()
	_, _, rawMost, rawBusy := srv.PatchStats()
	srv.ResetPatchStats()

	b.StartTimer()
	cpu := cpuNow()
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
	noticed := time.Since(start)
	cpu = cpuNow().minus(cpu)
	b.StopTimer()
	// The runs ended when the last one's roll-up said so, not when the
	// loop above, which looks every 20 ms, saw it.
	var lastRun requests.Instance
	if err := bundle.DB.Gorm.Where("ended_at IS NOT NULL").Order("ended_at DESC").Take(&lastRun).Error; err != nil {
		b.Fatal(err)
	}
	took := lastRun.EndedAt.Sub(start)
	var completed, failed int64
	grants := bundle.DB.Gorm.Model(&requests.Job{}).Where("operation = ?", connectors.OpGrant)
	grants.Session(&gorm.Session{}).Where("status = ?", requests.JobCompleted).Count(&completed)
	grants.Session(&gorm.Session{}).Where("status = ?", requests.JobFailed).Count(&failed)
	_ = bundle.App.Shutdown()
	members := len(srv.Members(group))
	if completed != grantCount || failed != 0 || members != grantCount {
		b.Fatalf("%d completed, %d failed, %d members", completed, failed, members)
	}
	rate, raw := float64(grantCount)/took.Seconds(), float64(grantCount)/rawTook.Seconds()
	b.ReportMetric(rate, "grants/s")
	b.ReportMetric(raw, "raw_patches/s")
	b.ReportMetric(rate/raw, "ratio")
	first, last, most, busy := srv.PatchStats()
	shape += map[bool]string{true: " (answers " + latency.String() + " later)"}[latency > 0]
	b.Logf("%s %s: time in the server's handler per request: raw loop %s, Provisor %s", dialect, shape,
		(rawBusy / grantCount).Round(time.Microsecond), (busy / time.Duration(srv.Patches()-patchesBefore)).Round(time.Microsecond))
	b.Logf("%s %s: start to first PATCH %s, first to last PATCH %s, last PATCH to all runs ended %s; PATCHes in flight at most %d (raw loop %d)",
		dialect, shape, first.Sub(start).Round(time.Millisecond), last.Sub(first).Round(time.Millisecond), start.Add(took).Sub(last).Round(time.Millisecond), most, rawMost)
	b.Logf("%s %s: CPU used: raw loop %s in this process, %s in PostgreSQL's processes; Provisor %s in this process, %s in PostgreSQL's (the SCIM server's work included; its last run seen %s after the start)",
		dialect, shape, rawCPU.self.Round(time.Millisecond), rawCPU.postgres.Round(time.Millisecond), cpu.self.Round(time.Millisecond), cpu.postgres.Round(time.Millisecond), noticed.Round(time.Millisecond))
	b.Logf("%s %s: %d grants in %s (%.0f/s, %d PATCH requests); raw loop of the same PATCHes on %d streams %s (%.0f/s); ratio %.2f (target ≥ 0.8 for the workgroup request)",
		dialect, shape, grantCount, took.Round(time.Millisecond), rate, srv.Patches()-patchesBefore, rawStreams, rawTook.Round(time.Millisecond), raw, rate/raw)
}
