package api_test

import (
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/provisor/provisor/access"
	"github.com/provisor/provisor/app/apptest"
	"github.com/provisor/provisor/audit"
	"github.com/provisor/provisor/database/dbtest"
	"github.com/provisor/provisor/internal/testwait"
	"github.com/provisor/provisor/notifier"
	"github.com/provisor/provisor/notifier/smtptest"
	"github.com/provisor/provisor/requests"
)

// The outbox through the API: list and filter, read one with its bodies,
// resend a failed message (jobs scope, audited), 409 for one that was sent.
func TestNotificationsAPI(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect string) {
		t.Parallel()
		srv := smtptest.Start(t, nil)
		var refuse atomic.Bool
		refuse.Store(true)
		srv.SetReply(func(*smtptest.Message, int) *smtp.SMTPError {
			if refuse.Load() {
				return smtptest.Reply(550, "5.7.1", "relaying denied")
			}
			return nil
		})
		h := harness{apptest.New(t, dialect, &apptest.Options{Args: srv.Args()}), t}
		dir, _ := h.Directory(t, "Dir")
		alice := h.Identity(t, "alice")
		if _, err := h.Access.CreateUser(h.Ctx, access.UserInput{Username: "ada", Email: "ada@example.test", Password: "correct horse battery", Role: access.RoleAdmin}, "test"); err != nil {
			t.Fatal(err)
		}
		inst, err := h.Requests.Submit(h.Ctx, requests.Request{Type: requests.CreateAccount, BeneficiaryType: "identity", BeneficiaryID: alice.ID,
			ConnectorID: dir.ID, Justification: "x"}, requests.StartOpts{Trigger: requests.TriggerSubmission, Actor: "ada"})
		if err != nil {
			t.Fatal(err)
		}
		h.WaitSettled(t, inst.ID)
		read, jobs := h.token(access.ScopeRead), h.token(access.ScopeJobs)

		var page struct {
			Items []notifier.Notification `json:"items"`
			Total int64                   `json:"total"`
		}
		_ = testwait.Poll(h.Ctx, 10*time.Second, func() error {
			h.json("GET", "/api/v1/notifications?status=failed", read, "", 200, &page)
			if page.Total != 1 {
				return fmt.Errorf("%d failed messages", page.Total)
			}
			return nil
		})
		if page.Total != 1 || len(page.Items) != 1 {
			t.Fatalf("failed messages: %+v", page)
		}
		n := page.Items[0]
		if n.Address != "ada@example.test" || n.RecipientType != notifier.RecipientRequester || n.InstanceID == nil || *n.InstanceID != inst.ID ||
			!strings.Contains(n.LastError, "relaying denied") || n.BodyText != "" || n.BodyHTML != "" || n.Attempts != 1 {
			t.Errorf("listed %+v", n)
		}
		var one notifier.Notification
		h.json("GET", "/api/v1/notifications/"+n.ID, read, "", 200, &one)
		if !strings.Contains(one.BodyText, inst.ID) || !strings.Contains(one.BodyHTML, "<table") || one.MessageID != n.MessageID {
			t.Errorf("got %+v", one)
		}
		h.json("GET", "/api/v1/notifications?status=sent", read, "", 200, &page)
		if page.Total != 0 {
			t.Errorf("sent: %+v", page)
		}
		h.json("GET", "/api/v1/notifications?instance_id="+inst.ID, read, "", 200, &page)
		if page.Total != 1 {
			t.Errorf("by instance: %+v", page)
		}
		apptest.RunScenarios(t, h.Bundle, []apptest.Scenario{
			{Name: "unknown status", URL: "/api/v1/notifications?status=bogus", Headers: bearer(read), ExpectedStatus: 422},
			{Name: "malformed instance", URL: "/api/v1/notifications?instance_id=nope", Headers: bearer(read), ExpectedStatus: 422},
			{Name: "malformed id", URL: "/api/v1/notifications/not-an-id", Headers: bearer(read), ExpectedStatus: 404},
			{Name: "an instance's id", URL: "/api/v1/notifications/" + inst.ID, Headers: bearer(read), ExpectedStatus: 404},
			{Name: "list without read scope", URL: "/api/v1/notifications", Headers: bearer(jobs), ExpectedStatus: 403},
			{Name: "resend without jobs scope", Method: "POST", URL: "/api/v1/notifications/" + n.ID + "/resend", Headers: bearer(read), ExpectedStatus: 403},
			{Name: "resend of an unknown message", Method: "POST", URL: "/api/v1/notifications/" + inst.ID + "/resend", Headers: bearer(jobs), ExpectedStatus: 404},
		})

		refuse.Store(false)
		var resent notifier.Notification
		h.json("POST", "/api/v1/notifications/"+n.ID+"/resend", jobs, "", 200, &resent)
		if resent.Status != notifier.StatusQueued && resent.Status != notifier.StatusSent {
			t.Errorf("resent: %+v", resent)
		}
		srv.Wait(t, 1, 10*time.Second)
		_ = testwait.Poll(h.Ctx, 10*time.Second, func() error {
			h.json("GET", "/api/v1/notifications/"+n.ID, read, "", 200, &one)
			if one.Status != notifier.StatusSent {
				return errors.New(one.Status)
			}
			return nil
		})
		if one.Status != notifier.StatusSent || one.SentAt == nil || one.Attempts != 1 || one.LastError != "" {
			t.Errorf("after resend: %+v", one)
		}
		if m := srv.Messages()[0]; m.Header.Get("Message-Id") != "<"+n.MessageID+">" {
			t.Errorf("resent with Message-ID %s, want the stored %s", m.Header.Get("Message-Id"), n.MessageID)
		}
		status, _, body := h.do("POST", "/api/v1/notifications/"+n.ID+"/resend", jobs, "", "")
		if status != 409 || !strings.Contains(body, "only failed or held messages can be resent") {
			t.Errorf("resend of a sent message: %d %s", status, body)
		}
		events, _, err := audit.List(h.Ctx, h.DB.Gorm, audit.Filter{Action: "notification.resend"})
		if err != nil || len(events) != 1 || events[0].Actor != "api:client jobs" || events[0].TargetID != n.ID ||
			events[0].DetailsJSON["previous_status"] != "failed" {
			t.Errorf("audit: %v %+v", err, events)
		}
	})
}
