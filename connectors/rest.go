package connectors

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// CheckEndpointURL is what is wrong with raw as the address of a REST
// target ("" if nothing): an absolute https URL, or http to a loopback
// address (tests). example is shown as the expected form; carries says
// what travels to it, for the refusal of plain http.
func CheckEndpointURL(raw, example, carries string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "must be an absolute URL such as " + example
	}
	switch u.Scheme {
	case "https":
		return ""
	case "http":
		if ip := net.ParseIP(u.Hostname()); (ip != nil && ip.IsLoopback()) || u.Hostname() == "localhost" {
			return ""
		}
	}
	return fmt.Sprintf("must use https (got %s): %s", u.Scheme, carries)
}

// RESTOptions configure a RESTClient. Zero values mean the defaults.
type RESTOptions struct {
	// BaseURL is what relative paths are resolved against, such as
	// "https://graph.microsoft.com/v1.0".
	BaseURL string
	// HTTPClient sends the requests; it adds the credentials (an OAuth2
	// transport). Default http.DefaultClient.
	HTTPClient *http.Client
	// Timeout bounds one HTTP request, retries apart. Default 30 s.
	Timeout time.Duration
	// Retries is how many times a request answered 429, 503 or 504 (or not
	// answered) is sent again. Default 4; negative means none.
	Retries int
	// Backoff is the first wait between retries when the system does not
	// say how long (Retry-After); it doubles with every retry, up to
	// MaxBackoff. Defaults 500 ms and 30 s.
	Backoff, MaxBackoff time.Duration
	// MaxWait is the longest Retry-After the client waits for itself; a
	// longer one is returned at once as a RetryAfter error, so that the job
	// waits in the queue instead of holding a worker. Default 10 s.
	MaxWait time.Duration
	// RequestIDHeaders name the headers holding the system's request id,
	// first found wins. Default "request-id", "x-request-id".
	RequestIDHeaders []string
	// ErrorFunc reads a system's error answer into a code and a message;
	// by default the body, shortened, is the message.
	ErrorFunc func(status int, body []byte) (code, message string)
	// Pacer, when set, spreads the writes of every client sharing it over
	// time to stay within the system's write budget.
	Pacer *Pacer
	// Log gets one debug line per request: method, path, status, request
	// id, never a header or a body (they hold tokens and passwords).
	Log *slog.Logger
}

// RESTClient is the HTTP client base of REST connectors (Entra, SCIM): JSON
// requests with timeouts, retries of 429/503/504 that prefer the system's
// Retry-After to capped exponential backoff, next-link and index paging,
// the system's request id kept with each answer, and status codes mapped
// to permanent and transient errors. It logs no secret: neither headers
// nor bodies.
type RESTClient struct {
	opts RESTOptions
	base *url.URL
}

// NewRESTClient returns a client with opts.
func NewRESTClient(opts RESTOptions) (*RESTClient, error) {
	base, err := url.Parse(strings.TrimRight(opts.BaseURL, "/"))
	if err != nil || base.Scheme == "" || base.Host == "" {
		return nil, fmt.Errorf("connectors: base URL %q is not an absolute URL", opts.BaseURL)
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = http.DefaultClient
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 30 * time.Second
	}
	if opts.Retries == 0 {
		opts.Retries = 4
	}
	if opts.Backoff <= 0 {
		opts.Backoff = 500 * time.Millisecond
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 30 * time.Second
	}
	if opts.MaxWait <= 0 {
		opts.MaxWait = 10 * time.Second
	}
	if len(opts.RequestIDHeaders) == 0 {
		opts.RequestIDHeaders = []string{"request-id", "x-request-id"}
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	return &RESTClient{opts: opts, base: base}, nil
}

// Request is one REST call.
type Request struct {
	Method string
	// Path is relative to the base URL ("/users/abc"), or an absolute URL
	// of the same host (a next link).
	Path   string
	Query  url.Values
	Body   any // encoded as JSON; nil sends none
	Header http.Header
	// Weight is what the request spends of the write budget (the inner
	// requests of a batch); zero for reads, which the Pacer lets through.
	Weight int
	// Settle, when set, reads a success before the Pacer hears that the
	// request is done (a batch reports the throttles inside its 200 to the
	// Pacer there, before the next request goes).
	Settle func(*Response)
	// SkipBody says the caller reads nothing of a success's body: it is
	// read off the connection and dropped, not kept (a SCIM target answers
	// a membership change with the whole group). An error's body is kept.
	SkipBody bool
}

// Response is a system's answer.
type Response struct {
	Status    int
	Header    http.Header
	Body      []byte
	RequestID string
	// Waits counts the rate-limit waits before this answer.
	Waits int
}

// HTTPError is an answer that is not a success, as Do returns it inside
// an Error.
type HTTPError struct {
	Method, Path string
	Status       int
	Code         string // the system's error code, if it gives one
	Message      string
	RequestID    string
}

func (e *HTTPError) Error() string {
	msg := fmt.Sprintf("%s %s: %d %s", e.Method, e.Path, e.Status, http.StatusText(e.Status))
	if e.Code != "" {
		msg += ": " + e.Code
	}
	if e.Message != "" {
		msg += ": " + e.Message
	}
	return MessageWithRequest(msg, e.RequestID)
}

// StatusOf returns the HTTP status of err's answer, or 0.
func StatusOf(err error) int {
	var h *HTTPError
	if errors.As(err, &h) {
		return h.Status
	}
	return 0
}

// HTTPErrorOf returns err's HTTPError, or nil.
func HTTPErrorOf(err error) *HTTPError {
	var h *HTTPError
	if errors.As(err, &h) {
		return h
	}
	return nil
}

// retryable are the statuses sent again: throttled, unavailable, timed out.
func retryable(status int) bool {
	return status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable || status == http.StatusGatewayTimeout
}

// Classify maps an answer's status to an error kind: 408, 429, 5xx are
// transient (429 and 503 with their Retry-After), others permanent.
func Classify(h *HTTPError, retryAfter time.Duration) error {
	switch {
	case retryAfter > 0 && (h.Status == http.StatusTooManyRequests || h.Status == http.StatusServiceUnavailable):
		return &Error{Err: h, RetryAfter: retryAfter, RequestID: h.RequestID}
	case h.Status == http.StatusRequestTimeout || h.Status == http.StatusTooManyRequests || h.Status >= 500:
		return &Error{Err: h, RequestID: h.RequestID}
	}
	return &Error{Permanent: true, Err: h, RequestID: h.RequestID}
}

// ParseRetryAfter reads a Retry-After value: seconds (possibly
// fractional) or an HTTP date. It returns 0 when there is none.
func ParseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil && s >= 0 {
		return time.Duration(s * float64(time.Second))
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// resolve makes the URL of a path or a link.
func (c *RESTClient) resolve(path string, q url.Values) (string, error) {
	if strings.HasPrefix(path, "http://") || strings.HasPrefix(path, "https://") {
		u, err := url.Parse(path)
		if err != nil {
			return "", err
		}
		if u.Host != c.base.Host {
			// A link elsewhere would take the credentials with it.
			return "", Permanent(fmt.Errorf("link to another host %s refused", u.Host))
		}
		return path, nil
	}
	u := *c.base
	u.Path = c.base.Path + path
	u.RawPath = ""
	if p, err := url.PathUnescape(u.Path); err == nil {
		u.Path = p
	}
	if len(q) > 0 {
		u.RawQuery = q.Encode()
	}
	return u.String(), nil
}

// Do sends req and decodes a success's JSON body into out (unless nil).
// Answers 429, 503 and 504 and failures to answer are sent again, after
// the Retry-After the system gave (up to MaxWait) or after a capped
// exponential backoff. The error of an answer that is not a success holds
// an HTTPError; the Response is returned with it when there is one.
func (c *RESTClient) Do(ctx context.Context, req Request, out any) (*Response, error) {
	var body []byte
	if req.Body != nil {
		b, err := json.Marshal(req.Body)
		if err != nil {
			return nil, Permanent(fmt.Errorf("encode %s %s: %w", req.Method, req.Path, err))
		}
		body = b
	}
	target, err := c.resolve(req.Path, req.Query)
	if err != nil {
		return nil, err
	}
	waits := 0
	for attempt := 0; ; attempt++ {
		if c.opts.Pacer != nil && req.Weight > 0 {
			if err := c.opts.Pacer.Wait(ctx, req.Weight, c.opts.MaxWait); err != nil {
				return nil, err
			}
		}
		resp, err := c.send(ctx, req, target, body)
		if err != nil {
			if c.opts.Pacer != nil && req.Weight > 0 {
				c.opts.Pacer.Release(req.Weight)
			}
			if ctx.Err() != nil || attempt >= c.opts.Retries {
				return nil, Transient(fmt.Errorf("%s %s: %w", req.Method, req.Path, err))
			}
			if err := sleep(ctx, c.backoff(attempt)); err != nil {
				return nil, Transient(err)
			}
			continue
		}
		resp.Waits = waits
		if resp.Status >= 200 && resp.Status < 300 {
			if c.opts.Pacer != nil && req.Weight > 0 {
				c.opts.Pacer.Done(req.Weight)
			}
			if req.Settle != nil {
				req.Settle(resp)
			}
			if c.opts.Pacer != nil && req.Weight > 0 {
				c.opts.Pacer.Release(req.Weight)
			}
			if out != nil && len(resp.Body) > 0 && resp.Status != http.StatusNoContent {
				if err := json.Unmarshal(resp.Body, out); err != nil {
					return resp, Transient(MessageErr(fmt.Errorf("%s %s: unreadable answer: %w", req.Method, req.Path, err), resp.RequestID))
				}
			}
			return resp, nil
		}
		h := c.httpError(req, resp)
		wait := ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
		paced := c.opts.Pacer != nil && req.Weight > 0 && resp.Status == http.StatusTooManyRequests
		if paced {
			c.opts.Pacer.Throttled(max(wait, c.backoff(attempt)))
		}
		if c.opts.Pacer != nil && req.Weight > 0 {
			c.opts.Pacer.Release(req.Weight)
		}
		if !retryable(resp.Status) || attempt >= c.opts.Retries || wait > c.opts.MaxWait {
			return resp, Classify(h, wait)
		}
		if wait <= 0 {
			wait = c.backoff(attempt)
		}
		if resp.Status == http.StatusTooManyRequests {
			waits++
		}
		if !paced { // else the pacer holds the next try back
			if err := sleep(ctx, wait); err != nil {
				return resp, Transient(err)
			}
		}
	}
}

// MessageErr adds a request id to err's message.
func MessageErr(err error, requestID string) error {
	if requestID == "" {
		return err
	}
	return fmt.Errorf("%w (request id %s)", err, requestID)
}

// Backoff returns the wait before retry number attempt (from 0) when the
// system does not say: the base doubled each time, capped, with jitter.
func (c *RESTClient) backoff(attempt int) time.Duration {
	d := c.opts.Backoff << min(attempt, 20)
	if d <= 0 || d > c.opts.MaxBackoff {
		d = c.opts.MaxBackoff
	}
	return d/2 + rand.N(d/2+1)
}

func (c *RESTClient) send(ctx context.Context, req Request, target string, body []byte) (*Response, error) {
	ctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	hr, err := http.NewRequestWithContext(ctx, req.Method, target, rd)
	if err != nil {
		return nil, err
	}
	for k, vs := range req.Header {
		hr.Header[k] = vs
	}
	hr.Header.Set("Accept", "application/json")
	if body != nil {
		hr.Header.Set("Content-Type", "application/json")
	}
	start := time.Now()
	resp, err := c.opts.HTTPClient.Do(hr)
	if err != nil {
		c.opts.Log.Debug("rest request failed", "method", req.Method, "path", pathOf(target), "err", err)
		return nil, err
	}
	defer resp.Body.Close()
	var b []byte
	if req.SkipBody && resp.StatusCode >= 200 && resp.StatusCode < 300 {
		_, err = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<20))
	} else {
		b, err = io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	}
	if err != nil {
		return nil, err
	}
	out := &Response{Status: resp.StatusCode, Header: resp.Header, Body: b}
	for _, h := range c.opts.RequestIDHeaders {
		if v := resp.Header.Get(h); v != "" {
			out.RequestID = v
			break
		}
	}
	c.opts.Log.Debug("rest request", "method", req.Method, "path", pathOf(target), "status", resp.StatusCode,
		"request_id", out.RequestID, "ms", time.Since(start).Milliseconds())
	return out, nil
}

// pathOf is a URL without its query, which may hold tokens (skip tokens,
// delta tokens): what a log may show.
func pathOf(target string) string {
	if i := strings.IndexByte(target, '?'); i >= 0 {
		return target[:i]
	}
	return target
}

func (c *RESTClient) httpError(req Request, resp *Response) *HTTPError {
	h := &HTTPError{Method: req.Method, Path: pathOf(req.Path), Status: resp.Status, RequestID: resp.RequestID}
	if c.opts.ErrorFunc != nil {
		h.Code, h.Message = c.opts.ErrorFunc(resp.Status, resp.Body)
	} else {
		h.Message = strings.TrimSpace(string(resp.Body))
	}
	if len(h.Message) > 300 {
		h.Message = h.Message[:300] + "…"
	}
	return h
}

// NextLinks reads a collection page after page: it gets req, gives each
// page's body to page, which returns the URL of the next page ("" after
// the last one).
func (c *RESTClient) NextLinks(ctx context.Context, req Request, page func(body []byte) (next string, err error)) error {
	for {
		resp, err := c.Do(ctx, req, nil)
		if err != nil {
			return err
		}
		next, err := page(resp.Body)
		if err != nil || next == "" {
			return err
		}
		req = Request{Method: http.MethodGet, Path: next, Header: req.Header}
	}
}

// IndexPages reads a collection by index, as SCIM does (startIndex,
// count): request builds the request of the page starting at start (from
// 1), and page reads one and returns how many items it held and how many
// there are in all.
func (c *RESTClient) IndexPages(ctx context.Context, request func(start int) Request, page func(body []byte) (items, total int, err error)) error {
	for start := 1; ; {
		resp, err := c.Do(ctx, request(start), nil)
		if err != nil {
			return err
		}
		items, total, err := page(resp.Body)
		if err != nil {
			return err
		}
		start += items
		if items == 0 || start > total {
			return nil
		}
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Pacer spreads a connector's writes over time to stay within the write
// budget its system enforces (Graph throttles writes per app and tenant).
// It learns the budget from the system's answers, additive increase and
// multiplicative decrease: after a 429 every request waits for the
// Retry-After (the pause is shared by every request in flight), and writes
// are then paced a little under the rate that got through; the pace grows
// slowly while nothing is throttled, so that it finds the budget again
// when the budget grows. The first estimate (from the last second, which
// includes a full bucket) is refined at the second throttle (what got
// through between two throttles, pause included, is the budget), and the
// pace grows faster until then. Every client of one connector shares one
// (see SharedPacer).
type Pacer struct {
	mu        sync.Mutex
	now       func() time.Time
	until     time.Time // no request before (a Retry-After)
	rate      float64   // units per second; 0 is not paced
	next      time.Time // when the next unit may go
	since     time.Time // the last throttle's time
	counted   float64   // units done since then
	recent    []stamp   // units done in the last second
	throttles int       // throttles seen (each answer of one pause counts once)
	inflight  int       // units between Wait and Release
	wake      chan struct{}
}

type stamp struct {
	at    time.Time
	units int
}

// Pacing constants: the pace is this share of the estimated budget, and
// grows by the given share of itself per second without a throttle while
// learning (before the second throttle) and after.
const (
	paceShare     = 0.97
	learnGrowth   = 0.05
	steadyGrowth  = 0.002
	maxPaceGrowth = 1.5
)

// NewPacer returns a pacer that lets everything through until the system
// first throttles.
func NewPacer() *Pacer { return &Pacer{now: time.Now} }

var (
	sharedMu     sync.Mutex
	sharedPacers = map[string]*Pacer{}
)

// SharedPacer returns the process's pacer for key (for Graph: the app and
// the tenant, which Graph's write budget is counted by), so that what one
// connector instance learnt applies to the next one opened for the same
// budget and every job set sending at once waits out one pause together.
func SharedPacer(key string) *Pacer {
	sharedMu.Lock()
	defer sharedMu.Unlock()
	p := sharedPacers[key]
	if p == nil {
		p = NewPacer()
		sharedPacers[key] = p
	}
	return p
}

// Rate is the paced rate (units per second), 0 before any throttle.
func (p *Pacer) Rate() float64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.rate
}

// Throttles is how many throttles the pacer saw.
func (p *Pacer) Throttles() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.throttles
}

// errThrottled is why a request waits in the queue rather than in a
// worker: the system asked for a longer pause than a worker waits.
var errThrottled = errors.New("the system asked to pause its requests")

// pace is the rate now (p.mu held).
func (p *Pacer) pace(now time.Time) float64 {
	g := steadyGrowth
	if p.throttles < 2 {
		g = learnGrowth
	}
	return p.rate * min(maxPaceGrowth, 1+g*max(0, now.Sub(p.since).Seconds()))
}

// Wait blocks until units may be spent. When the system asked for a pause
// longer than maxWait, it returns at once a RetryAfter error of the pause.
// Until the first throttle, at most probeUnits are in flight at once (one
// $batch, or as many single requests), so that the first throttle finds
// one request sent into it, not every worker's. A request that waits for
// its turn while a throttle comes takes a new turn after the pause: turns
// given before it are void. Every Wait that returns nil is followed by
// one Release of the same units.
func (p *Pacer) Wait(ctx context.Context, units int, maxWait time.Duration) error {
	for {
		p.mu.Lock()
		now := p.now()
		if left := p.until.Sub(now); maxWait > 0 && left > maxWait {
			p.mu.Unlock()
			return RetryAfter(errThrottled, left)
		}
		if p.rate == 0 && p.throttles == 0 && p.inflight > 0 && p.inflight+units > probeUnits {
			ch := p.wakeLocked()
			p.mu.Unlock()
			select {
			case <-ch:
				continue
			case <-ctx.Done():
				return Transient(ctx.Err())
			}
		}
		at := now
		if p.until.After(at) {
			at = p.until
		}
		if p.rate > 0 {
			if p.next.After(at) {
				at = p.next
			}
			p.next = at.Add(time.Duration(float64(units) / p.pace(now) * float64(time.Second)))
		}
		gen := p.throttles
		if !at.After(now) {
			p.inflight += units
			p.mu.Unlock()
			return nil
		}
		p.mu.Unlock()
		if err := sleep(ctx, at.Sub(now)); err != nil {
			return Transient(err)
		}
		p.mu.Lock()
		if p.throttles == gen && !p.now().Before(p.until) {
			p.inflight += units
			p.mu.Unlock()
			return nil
		}
		p.mu.Unlock() // throttled meanwhile: a new turn
	}
}

// probeUnits bound the units in flight before the first throttle.
const probeUnits = 20

// wakeLocked is the channel closed at the next Release (p.mu held).
func (p *Pacer) wakeLocked() chan struct{} {
	if p.wake == nil {
		p.wake = make(chan struct{})
	}
	return p.wake
}

// Release ends the units of a Wait: their request has its answer.
func (p *Pacer) Release(units int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.inflight = max(0, p.inflight-units)
	if p.wake != nil {
		close(p.wake)
		p.wake = nil
	}
}

// Reset forgets what the pacer learnt.
func (p *Pacer) Reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.until, p.rate, p.next, p.since, p.counted, p.recent, p.throttles = time.Time{}, 0, time.Time{}, time.Time{}, 0, nil, 0
	if p.wake != nil {
		close(p.wake)
		p.wake = nil
	}
}

// Done counts units the system accepted.
func (p *Pacer) Done(units int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	p.counted += float64(units)
	p.recent = append(p.recent, stamp{now, units})
	cut := 0
	for cut < len(p.recent) && now.Sub(p.recent[cut].at) > time.Second {
		cut++
	}
	p.recent = p.recent[cut:]
}

// Refused takes back units counted by Done that the system refused after
// all (the inner requests of a batch answered 429 inside its 200).
func (p *Pacer) Refused(units int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.counted = max(0, p.counted-float64(units))
	p.recent = append(p.recent, stamp{p.now(), -units})
}

// Throttled notes a 429 asking to wait d: nothing goes before it ends, and
// the pace becomes a little under what got through since the previous
// throttle (or in the last second, the first time). Answers that arrive
// during the pause belong to the same throttle and only lengthen it.
func (p *Pacer) Throttled(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	if now.Before(p.until) {
		// Another answer of the same throttle.
		if end := now.Add(d); end.After(p.until) {
			p.until = end
		}
		return
	}
	var est float64
	if !p.since.IsZero() {
		if el := now.Sub(p.since).Seconds(); el > 0 {
			est = p.counted / el
		}
	} else {
		var n int
		for _, s := range p.recent {
			n += s.units
		}
		est = float64(n)
	}
	if est > 0 {
		if p.rate > 0 && p.throttles >= 2 {
			// Learnt already: a throttle says the pace went over; a lower
			// measure than the pace (the sender was slower) says nothing.
			est = min(est, p.pace(now))
		}
		p.rate = est * paceShare
	}
	p.throttles++
	p.since, p.counted = now, 0
	p.until = now.Add(d)
	p.next = p.until
}
