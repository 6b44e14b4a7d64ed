package api_test

import (
	"fmt"
	"io"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/provisor/provisor/app/apptest"
	"github.com/provisor/provisor/database/dbtest"
	"github.com/provisor/provisor/internal/testwait"
	"github.com/provisor/provisor/requests"
	"github.com/provisor/provisor/tasks"
)

// A burst of submissions and triggers on a small pool of connections:
// every one answers within a bound and every run completes. A transaction
// that read through another connection of its pool froze PostgreSQL here
// for good once the burst outnumbered the connections.
func TestBurstOfSubmissionsAndTriggers(t *testing.T) {
	t.Parallel()
	const (
		submissions  = 100
		triggers     = 100
		answerWithin = 30 * time.Second
	)
	dbtest.Each(t, func(t *testing.T, dialect string) {
		h := harness{apptest.New(t, dialect, &apptest.Options{Args: []string{"--db-conns", "8"}}), t}
		tok := h.token("requests", "trigger", "read")
		rec, ents := h.Directory(t, "Burst Directory", "VPN", "Wiki")
		people := make([]string, submissions+triggers)
		for i := range people {
			people[i] = h.Identity(t, fmt.Sprintf("burst%03d", i)).ID
		}
		taskIDs := make([]string, triggers)
		for i := range taskIDs {
			name := fmt.Sprintf("Burst task %03d", i)
			req := &requests.Request{Type: requests.CreateAccount, BeneficiaryType: requests.BeneficiaryIdentity,
				BeneficiaryID: people[submissions+i], ConnectorID: rec.ID, Entitlements: []string{ents["Wiki"].ID}, Justification: "burst"}
			task, err := h.Tasks.Create(h.Ctx, tasks.Input{Name: &name, Request: req}, "admin")
			if err != nil {
				t.Fatal(err)
			}
			taskIDs[i] = task.ID
		}

		type answer struct {
			what   string
			status int
			body   string
			err    error
			took   time.Duration
		}
		answers := make(chan answer, submissions+triggers)
		var wg sync.WaitGroup
		start := make(chan struct{})
		send := func(what, path, body string) {
			defer wg.Done()
			<-start
			req := httptest.NewRequest("POST", path, strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+tok)
			if body != "" {
				req.Header.Set("Content-Type", "application/json")
			}
			began := time.Now()
			resp, err := h.HTTP.Test(req, int(answerWithin/time.Millisecond))
			a := answer{what: what, err: err, took: time.Since(began)}
			if err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				a.status, a.body = resp.StatusCode, string(b)
			}
			answers <- a
		}
		for i := range submissions {
			wg.Add(1)
			go send("submit", "/api/v1/requests", fmt.Sprintf(`{"type":"create_account","beneficiary_type":"identity",
				"beneficiary_id":%q,"connector_id":%q,"entitlements":[%q],"justification":"burst"}`, people[i], rec.ID, ents["VPN"].ID))
		}
		for _, id := range taskIDs {
			wg.Add(1)
			go send("trigger", "/api/v1/tasks/"+id+"/trigger", "")
		}
		close(start)
		wg.Wait()
		close(answers)
		var slowest time.Duration
		for a := range answers {
			slowest = max(slowest, a.took)
			switch {
			case a.err != nil:
				t.Errorf("%s: no answer within %s: %v", a.what, answerWithin, a.err)
			case a.status != 200 && a.status != 201 && a.status != 202:
				t.Errorf("%s: %d %s", a.what, a.status, a.body)
			}
		}
		t.Logf("%s: %d submissions and %d triggers answered, the slowest in %s", dialect, submissions, triggers, slowest.Round(time.Millisecond))
		if t.Failed() {
			return
		}
		// Every run completes.
		var done int64
		testwait.Until(t, 2*time.Minute, func() error {
			var busy int64
			if err := h.DB.Gorm.Model(&requests.Instance{}).Where("status IN ?", []string{requests.InstancePending, requests.InstanceRunning}).
				Count(&busy).Error; err != nil {
				t.Fatal(err)
			}
			if busy > 0 {
				return fmt.Errorf("%d runs still busy", busy)
			}
			return nil
		})
		if err := h.DB.Gorm.Model(&requests.Instance{}).Where("status = ?", requests.InstanceCompleted).Count(&done).Error; err != nil {
			t.Fatal(err)
		}
		if done != submissions+triggers {
			var rows []struct{ Status, Message string }
			h.DB.Gorm.Table("connector_jobs").Select("status, message").Where("status <> ?", requests.JobCompleted).Limit(3).Scan(&rows)
			t.Fatalf("%d runs completed, want %d; jobs not completed: %+v", done, submissions+triggers, rows)
		}
	})
}
