package apptest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"
)

// Scenario is one HTTP exchange with the app, as the API and portal tests
// list them in tables: a request, and what its answer must hold. Checks
// that fail are reported with the scenario's name and the test goes on.
type Scenario struct {
	Name   string
	Method string // GET when empty
	URL    string
	// Body is sent as it is, as application/json unless Headers say
	// otherwise; Form, when set, is sent as a form instead.
	Body string
	Form url.Values
	// Headers are set on the request: Authorization, HX-Request, …
	Headers map[string]string
	// Cookies are sent with the request: a portal session.
	Cookies map[string]string
	// BeforeFunc, if set, runs before the request is sent.
	BeforeFunc func(t testing.TB)

	// ExpectedStatus is the answer's status; 0 leaves it to AfterFunc.
	ExpectedStatus int
	// ExpectedContent are in the body; NotExpectedContent are not, in any
	// case (a password or a secret must not show however it is spelled).
	ExpectedContent    []string
	NotExpectedContent []string
	// ExpectedHeaders are headers of the answer, with their values.
	ExpectedHeaders map[string]string
	// ExpectedJSON are fields of the JSON object answered, with their
	// values as they decode from JSON (numbers are float64).
	ExpectedJSON map[string]any
	// AfterFunc, if set, checks the answer further (and what the request
	// changed or queued), when the status was as expected.
	AfterFunc func(t testing.TB, res *Response)
}

// Response is the app's answer to a Scenario.
type Response struct {
	Status  int
	Header  http.Header
	Cookies []*http.Cookie
	Body    string
}

// Run sends the scenario's request to the app and checks the answer.
func (s Scenario) Run(t testing.TB, b *Bundle) *Response {
	t.Helper()
	if s.BeforeFunc != nil {
		s.BeforeFunc(t)
	}
	method := s.Method
	if method == "" {
		method = http.MethodGet
	}
	var body io.Reader
	contentType := ""
	switch {
	case s.Form != nil:
		body, contentType = strings.NewReader(s.Form.Encode()), "application/x-www-form-urlencoded"
	case s.Body != "":
		body, contentType = strings.NewReader(s.Body), "application/json"
	}
	req := httptest.NewRequest(method, s.URL, body)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, v := range s.Headers {
		req.Header.Set(k, v)
	}
	for k, v := range s.Cookies {
		req.AddCookie(&http.Cookie{Name: k, Value: v})
	}
	resp, err := b.HTTP.Test(req, 20000)
	if err != nil {
		t.Fatalf("%s: %s %s: %v", s.Name, method, s.URL, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s: %s %s: read the answer: %v", s.Name, method, s.URL, err)
	}
	res := &Response{Status: resp.StatusCode, Header: resp.Header, Cookies: resp.Cookies(), Body: string(raw)}
	if s.ExpectedStatus != 0 && res.Status != s.ExpectedStatus {
		t.Errorf("%s: %s %s = %d, want %d: %s", s.Name, method, s.URL, res.Status, s.ExpectedStatus, res.Body)
		return res
	}
	for _, want := range s.ExpectedContent {
		if !strings.Contains(res.Body, want) {
			t.Errorf("%s: body lacks %s: %s", s.Name, want, res.Body)
		}
	}
	lower := strings.ToLower(res.Body)
	for _, unwanted := range s.NotExpectedContent {
		if strings.Contains(lower, strings.ToLower(unwanted)) {
			t.Errorf("%s: body has %s: %s", s.Name, unwanted, res.Body)
		}
	}
	for k, want := range s.ExpectedHeaders {
		if got := res.Header.Get(k); got != want {
			t.Errorf("%s: header %s = %q, want %q", s.Name, k, got, want)
		}
	}
	if len(s.ExpectedJSON) > 0 {
		var fields map[string]any
		if err := json.Unmarshal(raw, &fields); err != nil {
			t.Errorf("%s: answer is not a JSON object: %v: %s", s.Name, err, res.Body)
		}
		for k, want := range s.ExpectedJSON {
			if got, ok := fields[k]; !ok || !reflect.DeepEqual(got, want) {
				t.Errorf("%s: field %s = %s, want %s", s.Name, k, jsonText(got), jsonText(want))
			}
		}
	}
	if s.AfterFunc != nil {
		s.AfterFunc(t, res)
	}
	return res
}

func jsonText(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// RunScenarios runs scenarios one after the other, in order: each sees
// what the ones before it changed.
func RunScenarios(t testing.TB, b *Bundle, scenarios []Scenario) {
	t.Helper()
	for _, s := range scenarios {
		s.Run(t, b)
	}
}
