package connectors_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/provisor/provisor/connectors"
)

func restClient(t *testing.T, url string, log *slog.Logger) *connectors.RESTClient {
	t.Helper()
	c, err := connectors.NewRESTClient(connectors.RESTOptions{BaseURL: url, Backoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond,
		Retries: 3, MaxWait: time.Second, Log: log,
		ErrorFunc: func(_ int, body []byte) (string, string) {
			var e struct{ Code, Message string }
			_ = json.Unmarshal(body, &e)
			return e.Code, e.Message
		}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestRESTClientRetriesAndClassifies(t *testing.T) {
	t.Parallel()
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := calls.Add(1)
		w.Header().Set("request-id", fmt.Sprintf("rid-%d", n))
		switch r.URL.Path {
		case "/throttled":
			if n == 1 {
				w.Header().Set("Retry-After", "0.05")
				w.WriteHeader(http.StatusTooManyRequests)
				return
			}
			if n == 2 {
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			fmt.Fprint(w, `{"ok":true}`)
		case "/forbidden":
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprint(w, `{"code":"Authorization_RequestDenied","message":"Insufficient privileges"}`)
		case "/long":
			w.Header().Set("Retry-After", "120")
			w.WriteHeader(http.StatusTooManyRequests)
		case "/down":
			w.WriteHeader(http.StatusGatewayTimeout)
		}
	}))
	t.Cleanup(srv.Close)
	var logs bytes.Buffer
	c := restClient(t, srv.URL, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	ctx := context.Background()

	var out struct{ OK bool }
	start := time.Now()
	resp, err := c.Do(ctx, connectors.Request{Method: "GET", Path: "/throttled", Header: http.Header{"Authorization": {"Bearer secret-token-1"}}}, &out)
	if err != nil || !out.OK || resp.RequestID != "rid-3" || resp.Waits != 1 || time.Since(start) < 50*time.Millisecond {
		t.Fatalf("throttled then unavailable then fine: %+v %v %+v", resp, err, out)
	}

	_, err = c.Do(ctx, connectors.Request{Method: "GET", Path: "/forbidden"}, nil)
	if !connectors.IsPermanent(err) || connectors.StatusOf(err) != 403 || !strings.Contains(err.Error(), "Insufficient privileges") ||
		!strings.Contains(err.Error(), "request id rid-4") {
		t.Fatalf("403: %v", err)
	}

	calls.Store(10)
	_, err = c.Do(ctx, connectors.Request{Method: "POST", Path: "/long", Body: map[string]string{"password": "hunter2-secret"}}, nil)
	if d, ok := connectors.RetryAfterOf(err); !ok || d != 2*time.Minute || calls.Load() != 11 {
		t.Fatalf("a Retry-After longer than the client waits: %v (%v, %v), %d calls", err, d, ok, calls.Load())
	}

	calls.Store(20)
	_, err = c.Do(ctx, connectors.Request{Method: "GET", Path: "/down"}, nil)
	if err == nil || connectors.IsPermanent(err) || calls.Load() != 24 {
		t.Fatalf("504 four times: %v after %d calls", err, calls.Load()-20)
	}
	if _, ok := connectors.RetryAfterOf(err); ok {
		t.Fatalf("504 without Retry-After asks no wait: %v", err)
	}
	for _, secret := range []string{"secret-token-1", "hunter2-secret"} {
		if strings.Contains(logs.String(), secret) {
			t.Fatalf("the log holds a secret:\n%s", logs.String())
		}
	}
	if !strings.Contains(logs.String(), "request_id=rid-3") {
		t.Errorf("the log names no request id:\n%s", logs.String())
	}
}

func TestRESTClientPaging(t *testing.T) {
	t.Parallel()
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/items":
			page, _ := strconv.Atoi(r.URL.Query().Get("page"))
			next := ""
			if page < 2 {
				next = fmt.Sprintf("%s/items?page=%d", srv.URL, page+1)
			}
			json.NewEncoder(w).Encode(map[string]any{"value": []int{page*2 + 1, page*2 + 2}, "@odata.nextLink": next})
		case "/scim":
			start, _ := strconv.Atoi(r.URL.Query().Get("startIndex"))
			var res []int
			for i := start; i < start+2 && i <= 5; i++ {
				res = append(res, i)
			}
			json.NewEncoder(w).Encode(map[string]any{"totalResults": 5, "Resources": res})
		}
	}))
	t.Cleanup(srv.Close)
	c := restClient(t, srv.URL, nil)
	var got []int
	err := c.NextLinks(context.Background(), connectors.Request{Method: "GET", Path: "/items"}, func(body []byte) (string, error) {
		var p struct {
			Value []int
			Next  string `json:"@odata.nextLink"`
		}
		err := json.Unmarshal(body, &p)
		got = append(got, p.Value...)
		return p.Next, err
	})
	if err != nil || fmt.Sprint(got) != "[1 2 3 4 5 6]" {
		t.Fatalf("next links: %v %v", got, err)
	}
	got = nil
	err = c.IndexPages(context.Background(), func(start int) connectors.Request {
		return connectors.Request{Method: "GET", Path: "/scim", Query: map[string][]string{"startIndex": {strconv.Itoa(start)}, "count": {"2"}}}
	}, func(body []byte) (int, int, error) {
		var p struct {
			Total     int `json:"totalResults"`
			Resources []int
		}
		err := json.Unmarshal(body, &p)
		got = append(got, p.Resources...)
		return len(p.Resources), p.Total, err
	})
	if err != nil || fmt.Sprint(got) != "[1 2 3 4 5]" {
		t.Fatalf("index pages: %v %v", got, err)
	}
	if err := c.NextLinks(context.Background(), connectors.Request{Method: "GET", Path: "https://elsewhere.example/x"},
		func([]byte) (string, error) { return "", nil }); !connectors.IsPermanent(err) {
		t.Fatalf("a link to another host: %v", err)
	}
}

// A request that skips the body of its success gets none, the same
// connection serves the next request, and an error's body still names the
// error.
func TestRESTClientSkipsTheBodyOfASuccess(t *testing.T) {
	t.Parallel()
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/missing" {
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"code":"NotFound","message":"no such group"}`))
			return
		}
		_, _ = w.Write(bytes.Repeat([]byte("x"), 100<<10))
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	c := restClient(t, srv.URL, nil)
	ctx := context.Background()
	for range 3 {
		resp, err := c.Do(ctx, connectors.Request{Method: http.MethodPatch, Path: "/group", Body: map[string]string{"a": "b"}, SkipBody: true}, nil)
		if err != nil || resp.Status != http.StatusOK || resp.Body != nil {
			t.Fatalf("skipped body: %v, status %d, %d bytes kept", err, resp.Status, len(resp.Body))
		}
	}
	if resp, err := c.Do(ctx, connectors.Request{Method: http.MethodGet, Path: "/group"}, nil); err != nil || len(resp.Body) != 100<<10 {
		t.Fatalf("a body read: %v", err)
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections for 4 requests, want 1", n)
	}
	_, err := c.Do(ctx, connectors.Request{Method: http.MethodPatch, Path: "/missing", SkipBody: true}, nil)
	if h := connectors.HTTPErrorOf(err); h == nil || h.Code != "NotFound" || h.Message != "no such group" {
		t.Errorf("error of a skipped body: %v", err)
	}
}
