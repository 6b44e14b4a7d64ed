package app

import (
	"context"
	"crypto/subtle"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/provisor/provisor/database"
	"github.com/provisor/provisor/requests"
)

// Metrics are the process's Prometheus metrics. Counters and histograms
// are kept in memory as jobs and requests end; the gauges of what is
// stored (queue depth, connector states, outbox) are read from the
// database at each scrape, so every process reports the same totals.
type Metrics struct {
	Registry *prometheus.Registry
	jobs     *prometheus.CounterVec
	took     *prometheus.HistogramVec
	http     *prometheus.HistogramVec
}

func newMetrics(db *database.DB) *Metrics {
	m := &Metrics{Registry: prometheus.NewRegistry()}
	m.jobs = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "provisor_jobs_total",
		Help: "Connector operations that ran, by connector, kind (operation) and outcome (completed, no_change, failed, retrying, waiting)."},
		[]string{"connector", "kind", "outcome"})
	m.took = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "provisor_job_duration_seconds",
		Help: "How long connector operations took, by connector and kind.", Buckets: prometheus.ExponentialBuckets(0.001, 4, 10)},
		[]string{"connector", "kind"})
	m.http = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "provisor_http_request_duration_seconds",
		Help: "HTTP requests by method, route (as registered) and status code.", Buckets: prometheus.DefBuckets},
		[]string{"method", "route", "code"})
	m.Registry.MustRegister(m.jobs, m.took, m.http, stored{db: db},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// observeJob is the requests' ObserveFunc.
func (m *Metrics) observeJob(connector, kind, outcome string, took time.Duration) {
	m.jobs.WithLabelValues(connector, kind, outcome).Inc()
	if outcome != "waiting" {
		m.took.WithLabelValues(connector, kind).Observe(took.Seconds())
	}
}

// middleware times every HTTP request by its route, not its path, so that
// ids do not make a series each.
func (m *Metrics) middleware(c *fiber.Ctx) error {
	start := time.Now()
	err := c.Next()
	code := c.Response().StatusCode()
	if err != nil {
		if fe, ok := err.(*fiber.Error); ok {
			code = fe.Code
		} else {
			code = fiber.StatusInternalServerError
		}
	}
	route := "unmatched"
	if r := c.Route(); r != nil && r.Path != "/" && r.Path != "" {
		route = r.Path
	}
	m.http.WithLabelValues(c.Method(), route, strconv.Itoa(code)).Observe(time.Since(start).Seconds())
	return err
}

// handler serves the metrics in the Prometheus text format.
func (m *Metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{})
}

// tokenHandler serves the metrics on the main address to requests that
// bear token; others get 404, as if there were nothing there.
func (m *Metrics) tokenHandler(token string) fiber.Handler {
	serve := adaptor.HTTPHandler(m.handler())
	return func(c *fiber.Ctx) error {
		got, ok := strings.CutPrefix(c.Get(fiber.HeaderAuthorization), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
			return fiber.ErrNotFound
		}
		return serve(c)
	}
}

// serveMetrics serves /metrics on addr until ctx ends.
func (m *Metrics) serve(ctx context.Context, addr string) (func(context.Context) error, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.handler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return srv.Shutdown, nil
}

// stored reports what the database holds: queue entries by state,
// connectors by state and outbox messages by status.
type stored struct{ db *database.DB }

var (
	queueDesc = prometheus.NewDesc("provisor_queue_jobs", "Queue entries (job sets, deliveries, probes) by kind and state.",
		[]string{"kind", "state"}, nil)
	connDesc = prometheus.NewDesc("provisor_connector_state", "1 for each connector's current state (active, degraded, quarantined, paused, disabled).",
		[]string{"connector", "state"}, nil)
	outboxDesc = prometheus.NewDesc("provisor_outbox_messages", "Outbox messages by status (held, queued, sending, sent, failed).",
		[]string{"status"}, nil)
)

func (stored) Describe(ch chan<- *prometheus.Desc) {
	ch <- queueDesc
	ch <- connDesc
	ch <- outboxDesc
}

func (s stored) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	g := s.db.Gorm.WithContext(ctx)
	var queue []struct {
		Kind, State string
		N           float64
	}
	if g.Raw(`SELECT kind, state, count(*) AS n FROM river_job GROUP BY kind, state`).Scan(&queue).Error == nil {
		for _, q := range queue {
			ch <- prometheus.MustNewConstMetric(queueDesc, prometheus.GaugeValue, q.N, q.Kind, q.State)
		}
	}
	var conns []struct {
		Name                string
		Enabled             bool
		State               *string
		ConsecutiveFailures *int
	}
	if g.Raw(`SELECT c.name, c.enabled, s.state, s.consecutive_failures FROM connectors c
		LEFT JOIN connector_states s ON s.connector_id = c.id`).Scan(&conns).Error == nil {
		for _, c := range conns {
			st := requests.ConnectorState{State: requests.StateActive}
			if c.State != nil {
				st.State = *c.State
			}
			if c.ConsecutiveFailures != nil {
				st.ConsecutiveFailures = *c.ConsecutiveFailures
			}
			shown := st.Shown(c.Enabled)
			for _, state := range []string{requests.StateActive, requests.StateDegraded, requests.StateQuarantined, requests.StatePaused, requests.StateDisabled} {
				v := 0.0
				if state == shown {
					v = 1
				}
				ch <- prometheus.MustNewConstMetric(connDesc, prometheus.GaugeValue, v, c.Name, state)
			}
		}
	}
	var outbox []struct {
		Status string
		N      float64
	}
	if g.Raw(`SELECT status, count(*) AS n FROM notifications GROUP BY status`).Scan(&outbox).Error == nil {
		for _, o := range outbox {
			ch <- prometheus.MustNewConstMetric(outboxDesc, prometheus.GaugeValue, o.N, o.Status)
		}
	}
}
