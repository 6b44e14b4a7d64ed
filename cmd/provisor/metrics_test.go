package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/provisor/provisor/internal/testwait"
)

// TestMetricsAddrAndJSONLog runs `provisor serve` with --metrics-addr and
// --log-format json: /metrics answers on its own address, without
// authentication, in the Prometheus text format (read with Prometheus's
// own parser), and not on the portal's address; every line of the
// process log is one JSON object with a time, a level and a message.
func TestMetricsAddrAndJSONLog(t *testing.T) {
	t.Parallel()
	metricsAddr := freeAddr(t)
	s := startServer(t, "metrics", "--data-dir", filepath.Join(t.TempDir(), "data"), "--metrics-addr", metricsAddr,
		"--log-format", "json", "--log-level", "debug")

	families := testwait.For(t, 30*time.Second, func() (map[string]bool, error) {
		resp, err := http.Get("http://" + metricsAddr + "/metrics")
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("/metrics: %s", resp.Status)
		}
		parser := expfmt.NewTextParser(model.UTF8Validation)
		parsed, err := parser.TextToMetricFamilies(resp.Body)
		if err != nil {
			return nil, fmt.Errorf("parse /metrics: %w", err)
		}
		out := map[string]bool{}
		for name, f := range parsed {
			out[name] = len(f.GetMetric()) > 0
		}
		// The probes of /readyz that startServer made are timed by route;
		// the queue holds the periodic entries inserted at start.
		for _, name := range []string{"provisor_http_request_duration_seconds", "provisor_queue_jobs"} {
			if !out[name] {
				return nil, fmt.Errorf("no %s yet: %v", name, out)
			}
		}
		return out, nil
	})
	for _, name := range []string{"go_goroutines", "process_resident_memory_bytes"} {
		if !families[name] {
			t.Errorf("/metrics has no %s: %v", name, families)
		}
	}
	// Without --metrics-token the portal's address has no /metrics.
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.Get(s.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode == http.StatusOK || strings.Contains(string(body), "provisor_") {
		t.Errorf("/metrics on the portal's address without a token: %s %.200s", resp.Status, body)
	}

	s.stop()
	lines := strings.Split(strings.TrimSpace(s.logText()), "\n")
	if len(lines) < 2 {
		t.Fatalf("the process logged %d lines", len(lines))
	}
	for i, l := range lines {
		if isBanner(l) {
			continue // what serve prints on stdout for the person who started it
		}
		var entry map[string]any
		if err := json.Unmarshal([]byte(l), &entry); err != nil {
			t.Fatalf("line %d is not JSON (%v): %s", i+1, err, l)
		}
		if _, ok := entry["time"].(string); !ok || entry["level"] == nil || entry["msg"] == nil {
			t.Errorf("line %d lacks time, level or msg: %s", i+1, l)
		}
	}
}

// isBanner reports whether l is one of the lines serve prints on its
// standard output when it is ready; the process log is its standard error.
func isBanner(l string) bool {
	for _, p := range []string{"Provisor is running at ", "API: ", "Sign in "} {
		if strings.HasPrefix(l, p) {
			return true
		}
	}
	return false
}
