package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/google/uuid"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/provisor/provisor/requests"
)

// Client calls the API with client credentials, as scripts and external
// schedulers do.
type Client struct {
	BaseURL      string
	ClientID     string
	ClientSecret string
	HTTP         *http.Client

	tokens oauth2.TokenSource
}

// APIError is an error answer of the API.
type APIError struct {
	Status  int
	Problem Problem
	Body    string
}

func (e *APIError) Error() string {
	if e.Problem.Detail != "" {
		msg := fmt.Sprintf("%d %s: %s", e.Status, e.Problem.Title, e.Problem.Detail)
		for _, f := range e.Problem.Errors {
			msg += fmt.Sprintf("; %s: %s", f.Field, f.Message)
		}
		return msg
	}
	return fmt.Sprintf("%d: %s", e.Status, strings.TrimSpace(e.Body))
}

func (c *Client) http() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return &http.Client{Timeout: 30 * time.Second}
}

// Authenticate gets a bearer token (OAuth2 client credentials, the
// credentials in the Authorization header). Do gets the next one when it
// expires.
func (c *Client) Authenticate(ctx context.Context) error {
	cfg := &clientcredentials.Config{ClientID: c.ClientID, ClientSecret: c.ClientSecret,
		TokenURL: strings.TrimRight(c.BaseURL, "/") + "/api/v1/token", AuthStyle: oauth2.AuthStyleInHeader}
	ctx = context.WithValue(ctx, oauth2.HTTPClient, c.http())
	tok, err := cfg.Token(ctx)
	var re *oauth2.RetrieveError
	var ue *url.Error
	switch {
	case errors.As(err, &re):
		return fmt.Errorf("authentication failed (%d %s): %s", re.Response.StatusCode, re.ErrorCode, re.ErrorDescription)
	case errors.As(err, &ue):
		return fmt.Errorf("cannot reach %s: %w", c.BaseURL, err)
	case err != nil:
		return fmt.Errorf("authentication failed: unexpected answer from %s: %w", c.BaseURL, err)
	}
	// The next tokens are fetched when Do needs them, outside the
	// context of this call.
	c.tokens = oauth2.ReuseTokenSource(tok, cfg.TokenSource(context.WithoutCancel(ctx)))
	return nil
}

// Do sends a JSON request and decodes the JSON answer into out (if not nil).
func (c *Client) Do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.BaseURL, "/")+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.tokens == nil {
		return errors.New("api: Authenticate before Do")
	}
	tok, err := c.tokens.Token()
	if err != nil {
		return fmt.Errorf("api: renew the bearer token: %w", err)
	}
	tok.SetAuthHeader(req)
	resp, err := c.http().Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if resp.StatusCode >= 300 {
		e := &APIError{Status: resp.StatusCode, Body: string(b)}
		_ = json.Unmarshal(b, &e.Problem)
		return e
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// InvokeOpts say which task to run and whether to wait for it.
type InvokeOpts struct {
	Task    string // name or id
	Wait    bool
	Timeout time.Duration
	// Poll is how often the run is checked while waiting (default 1s).
	Poll time.Duration
	// Progress, if set, is told each time the run's status changes.
	ProgressFunc func(inst *requests.Instance)
}

// ErrRunFailed is returned by InvokeTask when a job of the run did not complete.
var ErrRunFailed = errors.New("the run did not complete")

// ErrTimeout is returned by InvokeTask when the run did not end in time.
var ErrTimeout = errors.New("timed out waiting for the run")

// InvokeTask triggers a task by name or id and, with Wait, follows the run
// until it settles. It returns the instance; the error wraps ErrRunFailed
// with the failed jobs' messages when a job did not complete.
func (c *Client) InvokeTask(ctx context.Context, o InvokeOpts) (*requests.Instance, error) {
	if err := c.Authenticate(ctx); err != nil {
		return nil, err
	}
	id := o.Task
	if _, err := uuid.Parse(o.Task); err != nil {
		var found struct {
			Items []struct {
				ID string `json:"id"`
			} `json:"items"`
		}
		if err := c.Do(ctx, http.MethodGet, "/api/v1/tasks?name="+url.QueryEscape(o.Task), nil, &found); err != nil {
			return nil, fmt.Errorf("find task %q: %w", o.Task, err)
		}
		if len(found.Items) == 0 {
			return nil, fmt.Errorf("no task called %q", o.Task)
		}
		id = found.Items[0].ID
	}
	var inst requests.Instance
	if err := c.Do(ctx, http.MethodPost, "/api/v1/tasks/"+url.PathEscape(id)+"/trigger", map[string]string{"source": "cli"}, &inst); err != nil {
		return nil, fmt.Errorf("trigger task %q: %w", o.Task, err)
	}
	if o.ProgressFunc != nil {
		o.ProgressFunc(&inst)
	}
	if !o.Wait {
		return &inst, nil
	}
	if o.Poll <= 0 {
		o.Poll = time.Second
	}
	if o.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.Timeout)
		defer cancel()
	}
	last := inst.Status
	for requests.Busy(inst.Status) {
		select {
		case <-ctx.Done():
			return &inst, fmt.Errorf("%w: run %s is still %s after %s", ErrTimeout, inst.ID, inst.Status, o.Timeout)
		case <-time.After(o.Poll):
		}
		if err := c.Do(ctx, http.MethodGet, "/api/v1/request-instances/"+inst.ID, nil, &inst); err != nil {
			if ctx.Err() != nil {
				return &inst, fmt.Errorf("%w: run %s is still %s after %s", ErrTimeout, inst.ID, last, o.Timeout)
			}
			// A restart of the server is no reason to give up: look again,
			// with a new token if the server forgot the old one.
			var ae *APIError
			if errors.As(err, &ae) && ae.Status == http.StatusUnauthorized {
				_ = c.Authenticate(ctx) // a failure shows in the next look
			}
			continue
		}
		if inst.Status != last && o.ProgressFunc != nil {
			o.ProgressFunc(&inst)
		}
		last = inst.Status
	}
	if err := c.Do(ctx, http.MethodGet, "/api/v1/request-instances/"+inst.ID, nil, &inst); err != nil {
		return &inst, err
	}
	var failed []string
	for _, j := range inst.Jobs {
		if j.Status != requests.JobCompleted && j.Status != requests.JobScheduled {
			failed = append(failed, fmt.Sprintf("job #%d %s for %s: %s: %s", j.Seq, j.Kind, j.Username, j.Status, j.Message))
		}
	}
	if len(failed) > 0 {
		return &inst, fmt.Errorf("%w (%s):\n  %s", ErrRunFailed, inst.Status, strings.Join(failed, "\n  "))
	}
	return &inst, nil
}
