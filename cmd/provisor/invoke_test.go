package main

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/provisor/provisor/requests"
)

// TestInvokeTask runs `provisor invoke-task` against a running server (on
// the embedded database, with the demo data and its API client) and checks
// its exit codes: 0 when every job completed, 1 with the failed jobs'
// messages when one did not, 2 for a usage error, 3 when the task cannot be
// triggered, and 4 on a timeout.
func TestInvokeTask(t *testing.T) {
	t.Parallel()
	dataDir := t.TempDir()
	srv := startServer(t, "serve", "--data-dir", dataDir, "--demo")
	creds, err := os.ReadFile(filepath.Join(dataDir, "demo-credentials.txt"))
	if err != nil {
		t.Fatal(err)
	}
	var clientID, secret string
	for _, l := range strings.Split(string(creds), "\n") {
		if v, ok := strings.CutPrefix(l, "API client id:"); ok {
			clientID = strings.TrimSpace(v)
		}
		if v, ok := strings.CutPrefix(l, "API client secret:"); ok {
			secret = strings.TrimSpace(v)
		}
	}
	if clientID == "" || secret == "" {
		t.Fatalf("no API client in demo-credentials.txt:\n%s", creds)
	}

	// Two tasks of our own: one that creates an account for the first of
	// three people, and one that grants a group to all three, which fails
	// for the two without an account.
	a := newAPI(t, srv.URL, clientID, secret)
	dir := makeDirectory(a, "invoke", 3, 1)
	for name, req := range map[string]requests.Request{
		"invoke-onboard": {Type: requests.CreateAccount, BeneficiaryType: requests.BeneficiaryIdentity, BeneficiaryID: dir.Identities[0],
			ConnectorID: dir.ConnectorID, Entitlements: dir.Entitlements, Justification: "test", Priority: requests.High},
		"invoke-grant-all": {Type: requests.AddEntitlements, BeneficiaryType: requests.BeneficiaryWorkgroup, BeneficiaryID: dir.WorkgroupID,
			ConnectorID: dir.ConnectorID, Entitlements: dir.Entitlements, Justification: "test", Priority: requests.Normal},
	} {
		a.do(http.MethodPost, "/api/v1/tasks", map[string]any{"name": name, "request": req}, nil)
	}
	flags := func(task string, more ...string) []string {
		return append([]string{"invoke-task", "--task", task, "--api-url", srv.URL, "--api-client-id", clientID, "--api-secret", secret}, more...)
	}

	// The cases run in order: the second needs the account the first creates.
	for _, c := range []struct {
		name       string
		env        []string
		args       []string
		code       int
		stdout     []string
		stderr     []string
		notStderr  []string
		stdoutNone bool
	}{
		{
			name:   "every job completes",
			args:   flags("invoke-onboard", "--wait", "--timeout", "60s"),
			stdout: []string{": pending (0 of 2 jobs done)", ": completed (2 of 2 jobs done)"},
		},
		{
			// The first person has an account now, the others have none:
			// their grants fail at once (a permanent error), and the run fails.
			name:   "a job fails",
			args:   flags("invoke-grant-all", "--wait", "--timeout", "60s"),
			code:   1,
			stdout: []string{": failed (3 of 3 jobs done)"},
			stderr: []string{"the run did not complete (failed)",
				"for invoke.user001: failed: no such account: invoke.user001",
				"for invoke.user002: failed: no such account: invoke.user002"},
			notStderr: []string{"for invoke.user000"},
		},
		{
			name:   "without --wait, success means triggered",
			env:    []string{"PROVISOR_API_URL=" + srv.URL, "PROVISOR_API_CLIENT_ID=" + clientID, "PROVISOR_API_SECRET=" + secret},
			args:   []string{"invoke-task", "--task", "invoke-grant-all"},
			stdout: []string{": pending (0 of 3 jobs done)"},
		},
		{
			name:   "timeout",
			args:   flags("invoke-onboard", "--wait", "--timeout", "1ns"),
			code:   4,
			stderr: []string{"timed out waiting for the run"},
		},
		{
			name:       "unknown task",
			args:       flags("No such task", "--wait"),
			code:       3,
			stderr:     []string{`no task called "No such task"`},
			stdoutNone: true,
		},
		{
			name:       "wrong secret",
			args:       []string{"invoke-task", "--task", "invoke-onboard", "--api-url", srv.URL, "--api-client-id", clientID, "--api-secret", "wrong"},
			code:       3,
			stderr:     []string{"authentication failed (401 invalid_client)"},
			stdoutNone: true,
		},
		{
			name:       "missing flags",
			args:       []string{"invoke-task", "--task", "invoke-onboard", "--wait"},
			code:       2,
			stderr:     []string{"missing", "--api-url", "--api-client-id", "--api-secret"},
			stdoutNone: true,
		},
		{
			name:       "missing task",
			args:       []string{"invoke-task", "--api-url", srv.URL, "--api-client-id", clientID, "--api-secret", secret},
			code:       2,
			stderr:     []string{"missing --task"},
			stdoutNone: true,
		},
		{
			name:       "unknown flag",
			args:       flags("invoke-onboard", "--frobnicate"),
			code:       2,
			stderr:     []string{"flag provided but not defined: -frobnicate"},
			stdoutNone: true,
		},
	} {
		t.Run(strings.ReplaceAll(c.name, " ", "_"), func(t *testing.T) {
			r := runProvisor(t, c.env, c.args...)
			if r.code != c.code {
				t.Errorf("exit code %d, want %d", r.code, c.code)
			}
			for _, s := range c.stdout {
				if !strings.Contains(r.stdout, s) {
					t.Errorf("stdout lacks %q", s)
				}
			}
			for _, s := range c.stderr {
				if !strings.Contains(r.stderr, s) {
					t.Errorf("stderr lacks %q", s)
				}
			}
			for _, s := range c.notStderr {
				if strings.Contains(r.stderr, s) {
					t.Errorf("stderr has %q", s)
				}
			}
			if c.stdoutNone && r.stdout != "" {
				t.Errorf("stdout is not empty")
			}
			if t.Failed() {
				t.Logf("stdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
			}
		})
	}
}
