package api_test

import (
	"encoding/json"
	"io"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/provisor/provisor/access"
	"github.com/provisor/provisor/app/apptest"
	"github.com/provisor/provisor/database/dbtest"
	"github.com/provisor/provisor/requests"
	"github.com/provisor/provisor/tasks"
)

// keyed sends a JSON POST with an Idempotency-Key and returns the status
// and the run it answers with.
func (h harness) keyed(path, token, key, body string) (int, requests.Instance, string) {
	h.t.Helper()
	req := httptest.NewRequest("POST", path, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := h.HTTP.Test(req, 10000)
	if err != nil {
		h.t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out requests.Instance
	_ = json.Unmarshal(raw, &out)
	return resp.StatusCode, out, string(raw)
}

// A trigger or a submission sent again with the same Idempotency-Key gives
// the run the first one started; the key with another request is refused,
// and another client's key of the same value is its own.
func TestIdempotencyKeyGivesOneRun(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect string) {
		t.Parallel()
		h := harness{apptest.New(t, dialect, &apptest.Options{NoStart: true}), t}
		dir, _ := h.Directory(t, "Dir")
		alice := h.Identity(t, "alice")
		name := "Lock Alice"
		task, err := h.Tasks.Create(h.Ctx, tasks.Input{Name: &name, Request: &requests.Request{Type: requests.LockAccount,
			BeneficiaryType: "identity", BeneficiaryID: alice.ID, ConnectorID: dir.ID, Justification: "x"}}, "admin")
		if err != nil {
			t.Fatal(err)
		}
		tok := h.token(access.ScopeRead, access.ScopeTrigger, access.ScopeRequests)
		other := h.token(access.ScopeTrigger)
		trigger := "/api/v1/tasks/" + task.ID + "/trigger"
		runs := func() int64 {
			_, n, err := h.Requests.ListInstances(h.Ctx, requests.InstanceFilter{TaskID: task.ID})
			if err != nil {
				t.Fatal(err)
			}
			return n
		}

		// A double click: the same key, at once.
		var wg sync.WaitGroup
		got := make([]requests.Instance, 3)
		codes := make([]int, 3)
		for i := range got {
			wg.Add(1)
			go func() {
				defer wg.Done()
				codes[i], got[i], _ = h.keyed(trigger, tok, "click-1", "")
			}()
		}
		wg.Wait()
		for i := range got {
			if codes[i] != 201 || got[i].ID == "" || got[i].ID != got[0].ID {
				t.Errorf("trigger #%d with the same key = %d run %q, want 201 run %q", i, codes[i], got[i].ID, got[0].ID)
			}
		}
		if n := runs(); n != 1 {
			t.Errorf("%d runs for one key, want 1", n)
		}
		// Later, the same key again: the same run.
		if code, again, body := h.keyed(trigger, tok, "click-1", ""); code != 201 || again.ID != got[0].ID {
			t.Errorf("the key sent again = %d %s", code, body)
		}
		// The same key with another body or for another route: 422 naming the header.
		for _, c := range []struct{ path, body string }{{trigger, `{"source":"cli"}`}, {"/api/v1/requests", `{"type":"lock_account"}`}} {
			code, _, body := h.keyed(c.path, tok, "click-1", c.body)
			if code != 422 || !strings.Contains(body, `"field":"Idempotency-Key"`) {
				t.Errorf("key reused on %s %s = %d %s", c.path, c.body, code, body)
			}
		}
		// Another client's key of the same value, a new key, and no key: new runs.
		if code, run, body := h.keyed(trigger, other, "click-1", ""); code != 201 || run.ID == got[0].ID {
			t.Errorf("another client's key = %d %s", code, body)
		}
		if code, run, body := h.keyed(trigger, tok, "click-2", ""); code != 201 || run.ID == got[0].ID {
			t.Errorf("a new key = %d %s", code, body)
		}
		h.keyed(trigger, tok, "", "")
		h.keyed(trigger, tok, "", "")
		if n := runs(); n != 5 {
			t.Errorf("%d runs, want 5", n)
		}
		if code, _, body := h.keyed(trigger, tok, strings.Repeat("k", 300), ""); code != 422 || !strings.Contains(body, "Idempotency-Key") {
			t.Errorf("a key too long = %d %s", code, body)
		}

		// POST /requests: one run per key too.
		req := `{"type":"lock_account","beneficiary_type":"identity","beneficiary_id":"` + alice.ID + `","connector_id":"` + dir.ID + `","justification":"x"}`
		code1, first, body := h.keyed("/api/v1/requests", tok, "submit-1", req)
		code2, second, _ := h.keyed("/api/v1/requests", tok, "submit-1", req)
		if code1 != 201 || code2 != 201 || first.ID == "" || second.ID != first.ID {
			t.Errorf("submit twice with one key = %d %q, %d %q: %s", code1, first.ID, code2, second.ID, body)
		}
		if code, _, body := h.keyed("/api/v1/requests", tok, "submit-1", strings.Replace(req, `"x"`, `"y"`, 1)); code != 422 || !strings.Contains(body, "Idempotency-Key") {
			t.Errorf("submit with the key and another body = %d %s", code, body)
		}
		count := func() int64 {
			var n int64
			if err := h.DB.Gorm.Table("idempotency_keys").Count(&n).Error; err != nil {
				t.Fatal(err)
			}
			return n
		}
		if n := count(); n != 4 {
			t.Errorf("%d keys kept, want 4", n)
		}

		// A day later the keys have expired: the same key starts a new
		// run, and the expired keys are deleted as new ones are written.
		if err := h.DB.Gorm.Exec("UPDATE idempotency_keys SET expires_at = ?", time.Now().UTC().Add(-time.Minute)).Error; err != nil {
			t.Fatal(err)
		}
		if code, run, body := h.keyed(trigger, tok, "click-1", ""); code != 201 || run.ID == got[0].ID {
			t.Errorf("an expired key = %d %s", code, body)
		}
		if n := count(); n != 1 {
			t.Errorf("%d keys after the expiry, want 1 (the new one)", n)
		}
	})
}
