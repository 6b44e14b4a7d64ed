package ldap_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/provisor/provisor/access"
	"github.com/provisor/provisor/app/apptest"
	"github.com/provisor/provisor/audit"
	"github.com/provisor/provisor/connectors/ldap/ldaptest"
	"github.com/provisor/provisor/database/dbtest"
	"github.com/provisor/provisor/identities"
	"github.com/provisor/provisor/internal/testwait"
	"github.com/provisor/provisor/notifier"
	"github.com/provisor/provisor/requests"
)

// TestQuarantine stops slapd in the middle of a run: the connector is
// quarantined after the configured connection failures in a row, its jobs
// wait as pending with the reason and spend no attempts, the admins get
// an email, and when slapd is back a probe releases it and the jobs run.
// Then a wrong bind password quarantines it at the first refusal.
func TestQuarantine(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect string) {
		t.Parallel()
		users := []string{"alice", "bob", "carol", "dan"}
		s := ldaptest.StartSlapd(t, &ldaptest.SlapdOptions{LDIF: peopleLDIF(users, map[string][]string{"staff": {"alice"}, "vpn": {"bob"}})})
		b := apptest.New(t, dialect, &apptest.Options{Args: []string{"--quarantine-failures", "2", "--probe-min", "1s", "--probe-max", "3s",
			"--max-attempts", "20"}})
		a := newAPI(t, b)
		if _, err := b.Access.CreateUser(b.Ctx, access.UserInput{Username: "ada", Email: "ada@example.test", DisplayName: "Ada Admin",
			Password: "correct horse battery", Role: access.RoleAdmin}, "test"); err != nil {
			t.Fatal(err)
		}
		var conn struct {
			ID string `json:"id"`
		}
		a.json("POST", "/api/v1/connectors", fmt.Sprintf(`{"name":"Corp LDAP","type":"ldap","settings":{"urls":[%q],"bind_dn":%q,"user_base_dn":%q,"group_base_dn":%q},"secrets":{"bind_password":%q}}`,
			s.URL, ldaptest.AdminDN, ldaptest.PeopleDN, ldaptest.GroupsDN, ldaptest.AdminPassword), 201, &conn)
		onlyJob(t, a.trigger("Data Import (full) — Corp LDAP"))
		ents := map[string]string{}
		el, _, _ := b.Identities.ListEntitlements(b.Ctx, conn.ID, identities.ListOpts{})
		for _, e := range el {
			ents[e.Name] = e.ID
		}
		grant := func(user, group string) *requests.Instance {
			p, err := b.Identities.IdentityByUsername(b.Ctx, user)
			if err != nil {
				t.Fatal(err)
			}
			return b.Submit(t, requests.Request{Type: requests.AddEntitlements, BeneficiaryType: requests.BeneficiaryIdentity,
				BeneficiaryID: p.ID, ConnectorID: conn.ID, Entitlements: []string{ents[group]}})
		}
		status := func() *requests.ConnectorStatus {
			var st requests.ConnectorStatus
			a.json("GET", "/api/v1/connectors/"+conn.ID+"/status", "", 200, &st)
			return &st
		}
		waitState := func(want string, within time.Duration) *requests.ConnectorStatus {
			t.Helper()
			return testwait.For(t, within, func() (*requests.ConnectorStatus, error) {
				st := status()
				if st.Shown != want {
					return nil, fmt.Errorf("connector state %s (%s; last error %s; recent %s), want %s", st.Shown, st.Reason, st.LastError, st.Recent, want)
				}
				return st, nil
			})
		}
		// A run that works: the connector is active, with a sign-in.
		b.WaitSettled(t, grant("alice", "vpn").ID)
		if st := status(); st.Shown != requests.StateActive || st.LastSuccessAt == nil || st.Hours[len(st.Hours)-1].Operations < 1 {
			t.Fatalf("status after a success: %+v", st)
		}

		// slapd stops: the jobs fail to connect, twice, and the connector
		// is quarantined.
		s.Stop()
		runs := []*requests.Instance{grant("bob", "staff"), grant("carol", "staff"), grant("dan", "vpn")}
		st := waitState(requests.StateQuarantined, 30*time.Second)
		if !strings.Contains(st.Reason, "connection failures in a row") || st.NextProbeAt == nil {
			t.Errorf("quarantine: %+v", st)
		}
		// The jobs wait as pending, with the reason, and spend no attempts
		// while they wait. spent reads, once every job waits with the
		// reason and no queue entry is running, each job's attempts and
		// those of its queue entry: the attempts the entry spent, those
		// that ended in an error, and its snoozes.
		type spent struct{ job, attempt, errors, snoozes int }
		spentNow := func() (map[string]spent, error) {
			out := map[string]spent{}
			var ids []int64
			jobs := map[int64]requests.Job{}
			for _, r := range runs {
				inst, err := b.Requests.GetInstance(b.Ctx, r.ID)
				if err != nil {
					return nil, err
				}
				for _, j := range inst.Jobs {
					if j.Status != requests.JobPending || !strings.HasPrefix(j.Message, "connector quarantined: ") || !strings.Contains(j.Message, "next probe") {
						return nil, fmt.Errorf("job of %s is %s: %q", j.Username, j.Status, j.Message)
					}
					ids = append(ids, *j.QueueJobID)
					jobs[*j.QueueJobID] = j
				}
			}
			entries, err := b.Queue.Entries(b.Ctx, ids)
			if err != nil {
				return nil, err
			}
			for _, id := range ids {
				e, j := entries[id], jobs[id]
				if e.State == "running" {
					return nil, fmt.Errorf("the queue entry of %s's job is running", j.Username)
				}
				out[j.Username] = spent{job: j.Attempts, attempt: e.Attempt, errors: e.Errors, snoozes: e.Snoozes}
			}
			return out, nil
		}
		before := testwait.For(t, 20*time.Second, spentNow)
		// Each job ran at most once, in its first attempt (one that
		// started after the quarantine did not run). A set whose failure
		// came before the quarantine may have spent that attempt (the
		// queue recorded its error); the one whose failure quarantined the
		// connector, and those after it, spent none: they snoozed.
		total := 0
		for user, sp := range before {
			if sp.job > 1 || sp.attempt != sp.errors || sp.attempt > sp.job {
				t.Errorf("%s's job when the connector was quarantined: %+v", user, sp)
			}
			total += sp.attempt
		}
		if total > 1 { // --quarantine-failures 2: one failure came before
			t.Errorf("attempts spent before the quarantine: %d, want at most 1: %+v", total, before)
		}
		// Once every set ran again and waited again, and a probe failed
		// meanwhile, no attempt was spent.
		after := testwait.For(t, 30*time.Second, func() (map[string]spent, error) {
			got, err := spentNow()
			if err != nil {
				return nil, err
			}
			for user, sp := range got {
				if sp.snoozes <= before[user].snoozes {
					return nil, fmt.Errorf("%s's set did not run again yet: %+v", user, sp)
				}
			}
			if st := status(); !strings.HasPrefix(st.LastError, "probe: ") {
				return nil, fmt.Errorf("no probe failed yet: last error %q", st.LastError)
			}
			return got, nil
		})
		for user, sp := range after {
			if b := before[user]; sp.job != b.job || sp.attempt != b.attempt || sp.errors != b.errors {
				t.Errorf("attempts of %s's job spent while quarantined: %+v, then %+v", user, b, sp)
			}
		}
		if st := status(); st.Shown != requests.StateQuarantined || st.Queue.Pending+st.Queue.Retrying != 3 || !strings.HasPrefix(st.LastError, "probe: ") {
			t.Errorf("status while quarantined: %+v", st)
		}
		// The admins were mailed, once.
		var mails []notifier.Notification
		b.DB.Gorm.Where("recipient_type = ?", notifier.RecipientAdmin).Order("created_at").Find(&mails)
		var body string
		if len(mails) == 1 {
			b.DB.Gorm.Raw("SELECT body_text FROM notification_bodies WHERE notification_id = ?", mails[0].ID).Scan(&body)
		}
		if len(mails) != 1 || mails[0].Address != "ada@example.test" || mails[0].Subject != "[Provisor] Connector Corp LDAP is quarantined" ||
			!strings.Contains(body, "connection failures in a row") {
			t.Fatalf("emails to the admins: %+v", mails)
		}

		// slapd is back: a probe releases the connector and the jobs run.
		if err := s.Start(); err != nil {
			t.Fatal(err)
		}
		waitState(requests.StateActive, 15*time.Second)
		for _, r := range runs {
			if inst := b.WaitSettled(t, r.ID); inst.Status != requests.InstanceCompleted {
				t.Errorf("run after the release: %s", apptest.Describe(inst))
			}
		}
		b.DB.Gorm.Where("recipient_type = ?", notifier.RecipientAdmin).Order("created_at").Find(&mails)
		if len(mails) != 2 || mails[1].Subject != "[Provisor] Connector Corp LDAP is out of quarantine" {
			t.Errorf("emails to the admins after the release: %+v", mails)
		}
		events, _, _ := audit.List(b.Ctx, b.DB.Gorm, audit.Filter{Action: "connector.quarantine"})
		released, _, _ := audit.List(b.Ctx, b.DB.Gorm, audit.Filter{Action: "connector.release"})
		if len(events) != 1 || len(released) != 1 || released[0].Actor != "provisor" {
			t.Errorf("audit: %d quarantines, %+v", len(events), released)
		}

		// A bind password changed to a wrong one: the first refusal
		// quarantines the connector, and the job waits.
		a.json("PATCH", "/api/v1/connectors/"+conn.ID, `{"secrets":{"bind_password":"not-the-password"}}`, 200, nil)
		time.Sleep(1100 * time.Millisecond) // the workers' connector cache
		run := grant("alice", "staff")
		st = waitState(requests.StateQuarantined, 15*time.Second)
		if !strings.Contains(st.Reason, "authentication failed") || !strings.Contains(st.Reason, "Invalid Credentials") {
			t.Errorf("quarantine reason: %q", st.Reason)
		}
		if inst, _ := b.Requests.GetInstance(b.Ctx, run.ID); inst.Jobs[0].Status != requests.JobPending {
			t.Errorf("job after the refusal: %s %q", inst.Jobs[0].Status, inst.Jobs[0].Message)
		}
		// The password fixed, an admin releases it.
		a.json("PATCH", "/api/v1/connectors/"+conn.ID, fmt.Sprintf(`{"secrets":{"bind_password":%q}}`, ldaptest.AdminPassword), 200, nil)
		a.json("POST", "/api/v1/connectors/"+conn.ID+"/release", "", 200, nil)
		a.json("POST", "/api/v1/connectors/"+conn.ID+"/release", "", 409, nil)
		if inst := b.WaitSettled(t, run.ID); inst.Status != requests.InstanceCompleted {
			t.Errorf("run after the release: %s", apptest.Describe(inst))
		}

		// Pause holds jobs until Resume: the job's set runs, sees the
		// pause and waits.
		a.json("POST", "/api/v1/connectors/"+conn.ID+"/pause", "", 200, nil)
		held := grant("bob", "vpn")
		testwait.Until(t, 20*time.Second, func() error {
			inst, err := b.Requests.GetInstance(b.Ctx, held.ID)
			if err != nil {
				return err
			}
			if j := inst.Jobs[0]; j.Status != requests.JobPending || !strings.HasPrefix(j.Message, "connector paused") {
				return fmt.Errorf("job of a paused connector: %s %q", j.Status, j.Message)
			}
			return nil
		})
		a.json("POST", "/api/v1/connectors/"+conn.ID+"/resume", "", 200, nil)
		if inst := b.WaitSettled(t, held.ID); inst.Status != requests.InstanceCompleted {
			t.Errorf("run after resume: %s", apptest.Describe(inst))
		}
	})
}
