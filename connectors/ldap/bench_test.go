package ldap_test

// Benchmarks of the LDAP connector against a real slapd (make bench runs
// them with -benchtime 1x; every iteration builds its own server and
// database, so more iterations only repeat the measurement).
//
//	go test -run '^$' -bench LDAP -benchtime 1x ./connectors/ldap/

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	ldapv3 "github.com/go-ldap/ldap/v3"

	"github.com/provisor/provisor/app/apptest"
	"github.com/provisor/provisor/connectors"
	"github.com/provisor/provisor/connectors/configured"
	"github.com/provisor/provisor/connectors/ldap/ldaptest"
	"github.com/provisor/provisor/database"
	"github.com/provisor/provisor/identities"
	"github.com/provisor/provisor/requests"
)

const (
	benchUsers = 2000
	// benchConns is the number of LDAP connections of both sides: the raw
	// clients and the connector's pool.
	benchConns = 4
)

func benchLDIF(users, groups, groupsPerUser int) string {
	var b strings.Builder
	for i := range users {
		fmt.Fprintf(&b, "dn: uid=u%05d,%s\nobjectClass: inetOrgPerson\nuid: u%05d\ncn: User %d\nsn: %d\nmail: u%05d@example.test\n\n",
			i, ldaptest.PeopleDN, i, i, i, i)
	}
	members := make([][]int, groups)
	if groups > 0 {
		for i := range users {
			for k := range groupsPerUser {
				g := (i*groupsPerUser + k*7919) % groups
				members[g] = append(members[g], i)
			}
		}
	}
	for g := range groups {
		fmt.Fprintf(&b, "dn: cn=g%04d,%s\nobjectClass: groupOfNames\ncn: g%04d\nmember: %s\n", g, ldaptest.GroupsDN, g, ldaptest.AdminDN)
		for _, i := range members[g] {
			fmt.Fprintf(&b, "member: uid=u%05d,%s\n", i, ldaptest.PeopleDN)
		}
		b.WriteString("\n")
	}
	for _, g := range []string{"raw", "provisor"} {
		fmt.Fprintf(&b, "dn: cn=%s,%s\nobjectClass: groupOfNames\ncn: %s\nmember: %s\n\n", g, ldaptest.GroupsDN, g, ldaptest.AdminDN)
	}
	return b.String()
}

// rawGrants adds n users to a group with plain go-ldap modifies, per
// users to a modify, over conns connections, and returns the rate.
func rawGrants(b *testing.B, s *ldaptest.Slapd, group string, n, per, conns int) float64 {
	var next atomic.Int64
	var wg sync.WaitGroup
	cs := make([]*ldapv3.Conn, conns)
	for i := range cs {
		cs[i] = s.Conn(b)
	}
	start := time.Now()
	for _, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				first := next.Add(int64(per)) - int64(per)
				if first >= int64(n) {
					return
				}
				var dns []string
				for i := first; i < min(first+int64(per), int64(n)); i++ {
					dns = append(dns, fmt.Sprintf("uid=u%05d,%s", i, ldaptest.PeopleDN))
				}
				m := ldapv3.NewModifyRequest("cn="+group+","+ldaptest.GroupsDN, nil)
				m.Add("member", dns)
				if err := c.Modify(m); err != nil {
					b.Errorf("raw modify: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	return float64(n) / time.Since(start).Seconds()
}

// BenchmarkLDAPGrants grants one group to 2,000 accounts through Provisor,
// on the queue with the default 50 workers and a connector pool of 4 LDAP
// connections, and with plain go-ldap modifies (one per grant, the
// target's baseline; and, for comparison, 100 per modify, as Provisor
// sends them) over 4 connections, on the same slapd. Three shapes of work:
//
//   - "workgroup": one request for a workgroup of 2,000;
//   - "teams": 20 requests, each for a workgroup of 100;
//   - "identities": 2,000 add_entitlements requests, one per identity.
//
// The runs are stored before the workers start, so what is timed is the
// execution of the 2,000 jobs, until every run has ended.
func BenchmarkLDAPGrants(b *testing.B) {
	for _, dialect := range []string{database.Postgres, database.SQLite} {
		for _, sh := range []shape{{"workgroup", 1}, {"teams", 20}, {"identities", benchUsers}} {
			b.Run(dialect+"/"+sh.name, func(b *testing.B) {
				for range b.N {
					benchGrants(b, dialect, sh)
				}
			})
		}
	}
}

// shape is how the 2,000 grants are requested: in runs, each for an
// identity (runs = 2,000) or for a workgroup of 2,000/runs.
type shape struct {
	name string
	runs int
}

func (sh shape) String() string {
	switch {
	case sh.runs == 1:
		return "one workgroup run of 2,000 jobs"
	case sh.runs == benchUsers:
		return "2,000 runs of one job"
	}
	return fmt.Sprintf("%d workgroup runs of %d jobs", sh.runs, benchUsers/sh.runs)
}

func benchGrants(b *testing.B, dialect string, sh shape) {
	b.StopTimer()
	s := ldaptest.StartSlapd(b, &ldaptest.SlapdOptions{LDIF: benchLDIF(benchUsers, 0, 0)})
	raw := rawGrants(b, s, "raw", benchUsers, 1, benchConns)
	// For comparison only: what go-ldap does with the batches Provisor sends.
	add := ldapv3.NewAddRequest("cn=rawbatched,"+ldaptest.GroupsDN, nil)
	add.Attribute("objectClass", []string{"groupOfNames"})
	add.Attribute("member", []string{ldaptest.AdminDN})
	if err := s.Conn(b).Add(add); err != nil {
		b.Fatal(err)
	}
	rawBatched := rawGrants(b, s, "rawbatched", benchUsers, 100, benchConns)
	direct := connectorGrants(b, s, "direct", benchUsers)
	// The same work on a connector that does nothing: the pipeline alone.
	pipeline, _ := runGrants(b, dialect, s, sh, true)
	prov, took := runGrants(b, dialect, s, sh, false)
	if got := len(members(b, s.Conn(b), "cn=provisor,"+ldaptest.GroupsDN)); got != benchUsers {
		b.Fatalf("provisor group has %d members", got)
	}
	b.ReportMetric(raw, "raw_grants/s")
	b.ReportMetric(rawBatched, "raw_batched_grants/s")
	b.ReportMetric(direct, "connector_grants/s")
	b.ReportMetric(pipeline, "noop_pipeline_jobs/s")
	b.ReportMetric(prov, "provisor_grants/s")
	b.ReportMetric(100*prov/raw, "%_of_raw")
	b.Logf("%s, %s: raw go-ldap %.0f grants/s (100 per modify: %.0f/s); the connector's Grant called directly (50 goroutines) %.0f/s; "+
		"the pipeline with a no-op connector %.0f jobs/s; Provisor %.0f grants/s (%s), %.0f%% of raw (target 80%%)",
		dialect, sh, raw, rawBatched, direct, pipeline, prov, took.Round(time.Millisecond), 100*prov/raw)
}

// runGrants builds a Provisor on a fresh database, imports the directory,
// stores the runs that grant the group "provisor" (or, with noop, an
// entitlement of a connector that does nothing) to every identity, in the
// runs of sh, with the workers stopped; then it starts the workers and
// times the 2,000 jobs until no run is busy.
func runGrants(b *testing.B, dialect string, s *ldaptest.Slapd, sh shape, noopConnector bool) (float64, time.Duration) {
	// The defaults of a process: 50 workers, connections sized by the CPUs.
	bundle := apptest.New(b, dialect, &apptest.Options{NoStart: true, Args: []string{"--workers", "50", "--db-conns", "0"}, ConnectorTypes: []connectors.Type{{
		Name: "noop", Label: "No-op", New: func(connectors.Config) (connectors.Connector, error) { return noop{}, nil }}}})
	ctx := bundle.Ctx
	rec, err := bundle.Connectors.Create(ctx, configured.Input{Name: "Bench LDAP", Type: "ldap",
		Settings: []byte(s.Settings(fmt.Sprintf(`"pool_size":%d`, benchConns))),
		Secrets:  map[string]string{"bind_password": ldaptest.AdminPassword}})
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
	ents, _, _ := bundle.Identities.ListEntitlements(ctx, rec.ID, identities.ListOpts{Query: "provisor"})
	if len(all) != benchUsers || len(ents) != 1 {
		b.Fatalf("%d identities, entitlements %+v", len(all), ents)
	}
	grant := requests.Request{Type: requests.AddEntitlements, ConnectorID: rec.ID, Entitlements: []string{ents[0].ID}}
	if noopConnector {
		nrec, err := bundle.Connectors.Create(ctx, configured.Input{Name: "No-op", Type: "noop"})
		if err != nil {
			b.Fatal(err)
		}
		ne, err := bundle.Identities.CreateEntitlement(ctx, nrec.ID, identities.EntitlementInput{Name: "nothing"})
		if err != nil {
			b.Fatal(err)
		}
		grant = requests.Request{Type: requests.AddEntitlements, ConnectorID: nrec.ID, Entitlements: []string{ne.ID}}
	}
	// Stored from 8 goroutines (one on SQLite, which has one writer):
	// storing is not what is measured.
	var runs []requests.Request
	if sh.runs == benchUsers {
		for _, id := range all {
			r := grant
			r.BeneficiaryType, r.BeneficiaryID = requests.BeneficiaryIdentity, id.ID
			runs = append(runs, r)
		}
	} else {
		per := benchUsers / sh.runs
		for k := range sh.runs {
			wg := bundle.Workgroup(b, fmt.Sprintf("Team %d", k), all[k*per:(k+1)*per]...)
			r := grant
			r.BeneficiaryType, r.BeneficiaryID = requests.BeneficiaryWorkgroup, wg.ID
			runs = append(runs, r)
		}
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	writers := 8
	if dialect == database.SQLite {
		writers = 1
	}
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1) - 1; i < int64(len(runs)); i = next.Add(1) - 1 {
				r := runs[i]
				r.Justification = "bench"
				if _, err := bundle.Requests.Submit(ctx, r, requests.StartOpts{Trigger: requests.TriggerAPI, Actor: "bench"}); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	runCtx, cancel := context.WithCancel(ctx)
	b.StartTimer()
	start := time.Now()
	if err := bundle.App.Start(runCtx); err != nil {
		b.Fatal(err)
	}
	// Wait until no run is busy, then check every one completed.
	for {
		var busy int64
		if err := bundle.DB.Gorm.Model(&requests.Instance{}).Where("status IN ?", []string{requests.InstancePending, requests.InstanceRunning}).
			Count(&busy).Error; err != nil {
			b.Fatal(err)
		}
		if busy == 0 {
			break
		}
		if time.Since(start) > 20*time.Minute {
			b.Fatalf("%d runs still busy after 20 minutes", busy)
		}
		time.Sleep(20 * time.Millisecond)
	}
	took := time.Since(start)
	b.StopTimer()
	var completed int64
	bundle.DB.Gorm.Model(&requests.Job{}).Where("status = ? AND connector_id = ?", requests.JobCompleted, grant.ConnectorID).Count(&completed)
	cancel()
	_ = bundle.App.Shutdown()
	if completed != benchUsers {
		b.Fatalf("%d of %d jobs completed", completed, benchUsers)
	}
	return float64(benchUsers) / took.Seconds(), took
}

// connectorGrants calls the connector's Grant directly from 50 goroutines
// (as many as the queue's workers) through its pool of 4 connections.
func connectorGrants(b *testing.B, s *ldaptest.Slapd, group string, n int) float64 {
	d := openSlapd(b, s, fmt.Sprintf(`"pool_size":%d`, benchConns))
	e := connectors.Entitlement{ExternalID: "cn=" + group + "," + ldaptest.GroupsDN, Name: group}
	add := ldapv3.NewAddRequest(e.ExternalID, nil)
	add.Attribute("objectClass", []string{"groupOfNames"})
	add.Attribute("member", []string{ldaptest.AdminDN})
	if err := s.Conn(b).Add(add); err != nil {
		b.Fatal(err)
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1) - 1; i < int64(n); i = next.Add(1) - 1 {
				if _, err := d.Grant(context.Background(), connectors.Account{Username: fmt.Sprintf("u%05d", i)}, e); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	return float64(n) / time.Since(start).Seconds()
}

// noop is a connector that does nothing, to time the pipeline alone.
type noop struct{}

func (noop) Kind(connectors.Operation) string { return "Noop" }
func (noop) CreateAccount(context.Context, connectors.Account) (connectors.Result, error) {
	return connectors.Result{Message: "nothing"}, nil
}
func (noop) DeleteAccount(context.Context, connectors.Account) (connectors.Result, error) {
	return connectors.Result{Message: "nothing"}, nil
}
func (noop) EnableAccount(context.Context, connectors.Account) (connectors.Result, error) {
	return connectors.Result{Message: "nothing"}, nil
}
func (noop) DisableAccount(context.Context, connectors.Account) (connectors.Result, error) {
	return connectors.Result{Message: "nothing"}, nil
}
func (noop) Grant(context.Context, connectors.Account, connectors.Entitlement) (connectors.Result, error) {
	return connectors.Result{Message: "nothing"}, nil
}
func (noop) Revoke(context.Context, connectors.Account, connectors.Entitlement) (connectors.Result, error) {
	return connectors.Result{Message: "nothing"}, nil
}
func (noop) Check(context.Context) connectors.Health { return connectors.Health{OK: true} }
func (noop) Import(context.Context, connectors.ImportMode, string, connectors.ImportSink) (string, error) {
	return "", nil
}

// BenchmarkLDAPImport imports 10,000 users and 1,000 groups (3 groups per
// user: 30,000 memberships) into a fresh database, then again with nothing
// changed, then a delta.
func BenchmarkLDAPImport(b *testing.B) {
	for _, dialect := range []string{database.Postgres, database.SQLite} {
		b.Run(dialect, func(b *testing.B) {
			for range b.N {
				benchImport(b, dialect)
			}
		})
	}
}

func benchImport(b *testing.B, dialect string) {
	b.StopTimer()
	s := ldaptest.StartSlapd(b, &ldaptest.SlapdOptions{LDIF: benchLDIF(10000, 1000, 3)})
	bundle := apptest.New(b, dialect, &apptest.Options{NoStart: true})
	ctx := bundle.Ctx
	rec, err := bundle.Connectors.Create(ctx, configured.Input{Name: "Bench LDAP", Type: "ldap",
		Settings: []byte(s.Settings(`"page_size":1000`)), Secrets: map[string]string{"bind_password": ldaptest.AdminPassword}})
	if err != nil {
		b.Fatal(err)
	}
	b.StartTimer()
	start := time.Now()
	imp, err := bundle.Importer.Run(ctx, rec.ID, connectors.ImportFull, "")
	full := time.Since(start)
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	c := imp.Counts
	if c.AccountsCreated != 10000 || c.EntitlementsCreated != 1002 || c.MembershipsAdded != 30000 || c.IdentitiesCreated != 10000 {
		b.Fatalf("first import: %s", imp.Message)
	}
	start = time.Now()
	again, err := bundle.Importer.Run(ctx, rec.ID, connectors.ImportFull, "")
	unchanged := time.Since(start)
	if err != nil || again.Changed() {
		b.Fatalf("second import: %v %s", err, again.Message)
	}
	start = time.Now()
	delta, err := bundle.Importer.Run(ctx, rec.ID, connectors.ImportDelta, "")
	deltaTook := time.Since(start)
	if err != nil || delta.Changed() {
		b.Fatalf("delta import: %v", err)
	}
	b.ReportMetric(full.Seconds(), "s_full_import")
	b.ReportMetric(unchanged.Seconds(), "s_full_unchanged")
	b.ReportMetric(deltaTook.Seconds(), "s_delta")
	b.Logf("%s: full import of 10,000 users, 1,002 groups, 30,000 memberships in %s (target < 10 s); unchanged full import %s; delta %s",
		dialect, full.Round(time.Millisecond), unchanged.Round(time.Millisecond), deltaTook.Round(time.Millisecond))
}
