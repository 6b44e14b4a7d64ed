package app_test

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/provisor/provisor/app/apptest"
	"github.com/provisor/provisor/database/dbtest"
	"github.com/provisor/provisor/requests"
)

// TestMetrics scrapes /metrics after a run and reads it with Prometheus's
// own parser: jobs by connector, kind and outcome, their durations, the
// queue, the connectors' states, the outbox and the HTTP routes. Without
// the token, /metrics is not there.
func TestMetrics(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect string) {
		t.Parallel()
		const token = "metrics-token-0123456789"
		b := apptest.New(t, dialect, &apptest.Options{Args: []string{"--metrics-token", token}})
		dir, ents := b.Directory(t, "Corp Dir", "VPN")
		alice := b.Identity(t, "alice")
		inst := b.WaitSettled(t, b.Submit(t, requests.Request{Type: requests.AddEntitlements, BeneficiaryType: requests.BeneficiaryIdentity,
			BeneficiaryID: alice.ID, ConnectorID: dir.ID, Entitlements: []string{ents["VPN"].ID}}).ID)
		if inst.Status != requests.InstanceFailed { // alice has no account there
			t.Fatalf("run: %s", apptest.Describe(inst))
		}
		if resp, _ := b.HTTP.Test(httptest.NewRequest("GET", "/healthz", nil)); resp.StatusCode != 200 {
			t.Fatalf("healthz: %d", resp.StatusCode)
		}
		for _, auth := range []string{"", "Bearer wrong-token-0123456789"} {
			req := httptest.NewRequest("GET", "/metrics", nil)
			if auth != "" {
				req.Header.Set("Authorization", auth)
			}
			if resp, err := b.HTTP.Test(req); err != nil || resp.StatusCode != 404 {
				t.Errorf("/metrics with %q: %v %v", auth, resp.StatusCode, err)
			}
		}
		req := httptest.NewRequest("GET", "/metrics", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := b.HTTP.Test(req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("/metrics: %v %v", resp.StatusCode, err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		parser := expfmt.NewTextParser(model.UTF8Validation)
		families, err := parser.TextToMetricFamilies(strings.NewReader(string(body)))
		if err != nil {
			t.Fatalf("parse /metrics: %v", err)
		}
		value := func(name string, labels map[string]string) (float64, bool) {
			f := families[name]
			if f == nil {
				return 0, false
			}
		next:
			for _, m := range f.GetMetric() {
				got := map[string]string{}
				for _, l := range m.GetLabel() {
					got[l.GetName()] = l.GetValue()
				}
				for k, v := range labels {
					if got[k] != v {
						continue next
					}
				}
				switch {
				case m.Counter != nil:
					return m.Counter.GetValue(), true
				case m.Gauge != nil:
					return m.Gauge.GetValue(), true
				case m.Histogram != nil:
					return float64(m.Histogram.GetSampleCount()), true
				}
			}
			return 0, false
		}
		for _, c := range []struct {
			name   string
			labels map[string]string
			min    float64
		}{
			{"provisor_jobs_total", map[string]string{"connector": "Corp Dir", "kind": "entitlement.grant", "outcome": "failed"}, 1},
			{"provisor_job_duration_seconds", map[string]string{"connector": "Corp Dir", "kind": "entitlement.grant"}, 1},
			{"provisor_queue_jobs", map[string]string{"kind": "connector_job"}, 1},                           // running or completed by now
			{"provisor_connector_state", map[string]string{"connector": "Corp Dir", "state": "degraded"}, 1}, // its last operation failed
			{"provisor_outbox_messages", nil, 0},
			{"provisor_http_request_duration_seconds", map[string]string{"method": "GET", "route": "/healthz", "code": "200"}, 1},
		} {
			v, ok := value(c.name, c.labels)
			if c.name == "provisor_outbox_messages" {
				continue // no message was written: the family may be empty
			}
			if !ok || v < c.min {
				t.Errorf("%s%v = %v (found %v), want at least %v", c.name, c.labels, v, ok, c.min)
			}
		}
		if v, _ := value("provisor_connector_state", map[string]string{"connector": "Corp Dir", "state": "quarantined"}); v != 0 {
			t.Errorf("Corp Dir shown quarantined: %v", v)
		}
	})
}
