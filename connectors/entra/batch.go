package entra

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/provisor/provisor/connectors"
)

// maxBatch is Graph's limit of requests in one $batch.
const maxBatch = 20

// batchRounds bounds how often the memberships of one call are sent
// again (throttled, replication lag) before they are left to the queue.
const batchRounds = 8

type batchRequest struct {
	ID      string            `json:"id"`
	Method  string            `json:"method"`
	URL     string            `json:"url"`
	Body    any               `json:"body,omitempty"`
	Headers map[string]string `json:"headers,omitempty"`
}

type batchResponse struct {
	ID      string            `json:"id"`
	Status  int               `json:"status"`
	Headers map[string]string `json:"headers"`
	Body    json.RawMessage   `json:"body"`
}

// GrantAll adds group memberships through $batch, 20 to a request; roles
// go one by one.
func (d *Directory) GrantAll(ctx context.Context, ms []connectors.Membership) ([]connectors.Result, []error) {
	return d.all(ctx, ms, true)
}

// RevokeAll removes group memberships through $batch.
func (d *Directory) RevokeAll(ctx context.Context, ms []connectors.Membership) ([]connectors.Result, []error) {
	return d.all(ctx, ms, false)
}

func (d *Directory) all(ctx context.Context, ms []connectors.Membership, grant bool) ([]connectors.Result, []error) {
	results, errs := make([]connectors.Result, len(ms)), make([]error, len(ms))
	ids := make([]string, len(ms))
	var todo []int
	for i, m := range ms {
		kind, _, _ := entitlementOf(m.Entitlement)
		if kind != kindGroup {
			if grant {
				results[i], errs[i] = d.Grant(ctx, m.Account, m.Entitlement)
			} else {
				results[i], errs[i] = d.Revoke(ctx, m.Account, m.Entitlement)
			}
			continue
		}
		id, err := d.userID(ctx, m.Account)
		if err != nil {
			errs[i] = err
			continue
		}
		ids[i] = id
		todo = append(todo, i)
	}
	waits := make([]int, len(ms))
	for round := 0; len(todo) > 0; round++ {
		var again []int
		var wait time.Duration // for replication lag; the pacer holds throttled ones back
		for start := 0; start < len(todo); start += maxBatch {
			chunk := todo[start:min(start+maxBatch, len(todo))]
			reqs := make([]batchRequest, len(chunk))
			for k, i := range chunk {
				group := ms[i].Entitlement.ExternalID
				if grant {
					reqs[k] = batchRequest{ID: strconv.Itoa(k), Method: http.MethodPost, URL: "/groups/" + group + "/members/$ref",
						Body: map[string]string{"@odata.id": d.directoryObject(ids[i])}, Headers: map[string]string{"Content-Type": "application/json"}}
				} else {
					reqs[k] = batchRequest{ID: strconv.Itoa(k), Method: http.MethodDelete, URL: memberRefPath(group, ids[i])}
				}
			}
			var out struct {
				Responses []batchResponse `json:"responses"`
			}
			resp, err := d.rest.Do(ctx, connectors.Request{Method: http.MethodPost, Path: "/$batch",
				Body: map[string]any{"requests": reqs}, Weight: len(reqs), Settle: d.settleBatch}, &out)
			if err != nil {
				for _, i := range chunk {
					errs[i] = err
				}
				continue
			}
			byID := make(map[string]batchResponse, len(out.Responses))
			for _, r := range out.Responses {
				byID[r.ID] = r // answers come in any order
			}
			for k, i := range chunk {
				r, ok := byID[strconv.Itoa(k)]
				name := nameOf(ms[i].Entitlement)
				base := connectors.Result{RequestID: resp.RequestID}
				if rid := r.Headers["request-id"]; rid != "" {
					base.RequestID = rid
				}
				base.RateLimitWaits = waits[i] + resp.Waits
				switch {
				case !ok:
					errs[i] = connectors.Transient(fmt.Errorf("$batch answered nothing for %s", name))
				case r.Status >= 200 && r.Status < 300:
					base.Changed = true
					base.Message = map[bool]string{true: "added to ", false: "removed from "}[grant] + name
					results[i], errs[i] = base, nil
				case r.Status == http.StatusTooManyRequests || r.Status == http.StatusServiceUnavailable || r.Status == http.StatusFailedDependency:
					w := connectors.ParseRetryAfter(r.Headers["Retry-After"], time.Now())
					if r.Status == http.StatusTooManyRequests {
						waits[i]++
					}
					if r.Status != http.StatusTooManyRequests {
						wait = max(wait, w, 100*time.Millisecond)
					}
					again = append(again, i)
					errs[i] = connectors.RetryAfter(fmt.Errorf("$batch request for %s: Graph answered %d", name, r.Status), max(w, time.Second))
				case grant && r.Status == http.StatusBadRequest && isDuplicateBody(r.Body):
					results[i], errs[i] = d.checkMember(ctx, ms[i].Entitlement.ExternalID, ids[i], name)
				case !grant && r.Status == http.StatusNotFound:
					base.Message = "not a member of " + name
					results[i], errs[i] = base, nil
				case grant && r.Status == http.StatusNotFound && d.isFresh(ids[i]):
					again = append(again, i)
					wait = max(wait, d.opts.LagWait)
					errs[i] = connectors.Transient(fmt.Errorf("user %s not found yet (replication lag)", ids[i]))
				default:
					code, msg := graphErrorOf(r.Status, r.Body)
					h := &connectors.HTTPError{Method: reqs[k].Method, Path: reqs[k].URL, Status: r.Status, Code: code, Message: msg, RequestID: base.RequestID}
					errs[i] = connectors.Classify(h, 0)
				}
			}
		}
		if len(again) == 0 || round+1 >= batchRounds || wait > 10*time.Second {
			break
		}
		if wait > 0 {
			if err := sleepCtx(ctx, wait); err != nil {
				break
			}
		}
		todo = again
	}
	return results, errs
}

// settleBatch tells the pacer of the inner requests of a $batch answered
// 429 (they did not spend the budget, and the pause they ask for applies
// to every request), before the pacer lets the next request go.
func (d *Directory) settleBatch(resp *connectors.Response) {
	var out struct {
		Responses []struct {
			Status  int               `json:"status"`
			Headers map[string]string `json:"headers"`
		} `json:"responses"`
	}
	if json.Unmarshal(resp.Body, &out) != nil {
		return
	}
	var throttled time.Duration
	refused := 0
	for _, r := range out.Responses {
		if r.Status == http.StatusTooManyRequests {
			refused++
			throttled = max(throttled, connectors.ParseRetryAfter(r.Headers["Retry-After"], time.Now()), time.Second)
		}
	}
	if refused > 0 {
		d.pacer.Refused(refused)
		d.pacer.Throttled(throttled)
	}
}

func isDuplicateBody(body json.RawMessage) bool {
	_, msg := graphErrorOf(http.StatusBadRequest, body)
	return strings.Contains(msg, "One or more added object references already exist")
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
