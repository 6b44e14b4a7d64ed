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

	"github.com/provisor/provisor/requests"
)

// Client calls the API with client credentials, as scripts and external
// schedulers do.
type Client struct {
	BaseURL      string
	ClientID     string
	ClientSecret string
	HTTP         *http.Client

	token string
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

// Authenticate gets a bearer token.
func (c *Client) Authenticate(ctx context.Context) error {
	form := url.Values{"grant_type": {"client_credentials"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(c.BaseURL, "/")+"/api/v1/token", strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(c.ClientID), url.QueryEscape(c.ClientSecret))
	resp, err := c.http().Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach %s: %w", c.BaseURL, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error       string `json:"error"`
			Description string `json:"error_description"`
		}
		_ = json.Unmarshal(body, &e)
		return fmt.Errorf("authentication failed (%d %s): %s", resp.StatusCode, e.Error, e.Description)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(body, &tok); err != nil || tok.AccessToken == "" {
		return fmt.Errorf("authentication failed: unexpected answer from %s", c.BaseURL)
	}
	c.token = tok.AccessToken
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
	req.Header.Set("Authorization", "Bearer "+c.token)
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
			// A restart of the server is no reason to give up: try again.
			if c.Authenticate(ctx) != nil {
				continue
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
