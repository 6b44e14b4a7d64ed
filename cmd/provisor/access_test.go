package main

import (
	"bufio"
	"errors"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/provisor/provisor/app/api"
)

// signInStatus signs in to the portal of a running server and returns the
// answer's status and body (the redirect is not followed).
func signInStatus(t *testing.T, base, username, password string) (int, string) {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(base + "/login")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	m := regexp.MustCompile(`name="_csrf" value="([^"]+)"`).FindSubmatch(b)
	if m == nil {
		t.Fatal("no CSRF field on the sign-in page")
	}
	resp, err = c.PostForm(base+"/login", url.Values{"_csrf": {string(m[1])}, "username": {username}, "password": {password}, "next": {"/requests"}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ = io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// shownOnce returns the value of the "Password (shown once): " line.
func shownOnce(t *testing.T, out string) string {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "Password (shown once): "); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("no password printed:\n%s", out)
	return ""
}

// TestUserAndClientCommands runs `provisor user list|disable|enable|
// set-role|reset-password` and `provisor api-client list|revoke` against
// the database of a running server: a revoked client's token is refused
// at once, a disabled user is told so at sign-in, and the last enabled
// admin is kept.
func TestUserAndClientCommands(t *testing.T) {
	t.Parallel()
	dataDir := t.TempDir()
	srv := startServer(t, "serve", "--data-dir", dataDir, "--demo")
	db := []string{"--data-dir", dataDir}
	run := func(args ...string) result {
		t.Helper()
		return runProvisor(t, nil, append(args, db...)...)
	}
	creds, err := os.ReadFile(filepath.Join(dataDir, "demo-credentials.txt"))
	if err != nil {
		t.Fatal(err)
	}
	var clientID, secret, alicePW string
	for _, l := range strings.Split(string(creds), "\n") {
		if v, ok := strings.CutPrefix(l, "API client id:"); ok {
			clientID = strings.TrimSpace(v)
		}
		if v, ok := strings.CutPrefix(l, "API client secret:"); ok {
			secret = strings.TrimSpace(v)
		}
		if v, ok := strings.CutPrefix(l, "Portal requester:  alice / "); ok {
			alicePW = strings.TrimSpace(v)
		}
	}
	a := newAPI(t, srv.URL, clientID, secret)
	a.do(http.MethodGet, "/api/v1/tasks", nil, nil)

	for _, c := range []struct {
		name   string
		args   []string
		code   int
		stdout []string
		stderr []string
	}{
		{name: "list clients", args: []string{"api-client", "list"},
			stdout: []string{"NAME", "LAST USED", "Demo scripts", clientID, "read,requests"}},
		{name: "list users", args: []string{"user", "list"},
			stdout: []string{"USERNAME", "admin", "alice", "requester", "enabled", "local"}},
		{name: "disable the only admin", args: []string{"user", "disable", "--username", "admin"}, code: 1,
			stderr: []string{"cannot disable admin: it is the last enabled admin"}},
		{name: "demote the only admin", args: []string{"user", "set-role", "--username", "admin", "--role", "requester"}, code: 1,
			stderr: []string{"last enabled admin"}},
		{name: "unknown user", args: []string{"user", "disable", "--username", "nobody"}, code: 1, stderr: []string{"user nobody: not found"}},
		{name: "no username", args: []string{"user", "enable"}, code: 1, stderr: []string{"--username is required"}},
		{name: "unknown subcommand", args: []string{"user", "delete"}, code: 1, stderr: []string{"usage: provisor user"}},
		{name: "disable alice", args: []string{"user", "disable", "--username", "alice"},
			stdout: []string{"User alice disabled"}},
		{name: "disable alice again", args: []string{"user", "disable", "--username", "alice"}, code: 1,
			stderr: []string{"alice is disabled already"}},
		{name: "alice is disabled", args: []string{"user", "list"}, stdout: []string{"disabled"}},
		{name: "revoke without id", args: []string{"api-client", "revoke"}, code: 1, stderr: []string{"--client-id is required"}},
		{name: "revoke the demo client", args: []string{"api-client", "revoke", "--client-id", clientID},
			stdout: []string{`API client "Demo scripts" (` + clientID + `) revoked`}},
		{name: "revoke it again", args: []string{"api-client", "revoke", "--client-id", clientID}, code: 1,
			stderr: []string{"revoked already"}},
	} {
		r := run(c.args...)
		if r.code != c.code {
			t.Errorf("%s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", c.name, r.code, c.code, r.stdout, r.stderr)
			continue
		}
		for _, w := range c.stdout {
			if !strings.Contains(r.stdout, w) {
				t.Errorf("%s: stdout lacks %q:\n%s", c.name, w, r.stdout)
			}
		}
		for _, w := range c.stderr {
			if !strings.Contains(r.stderr, w) {
				t.Errorf("%s: stderr lacks %q:\n%s", c.name, w, r.stderr)
			}
		}
	}

	// The token the demo client got before the revocation is refused.
	var apiErr *api.APIError
	if err := a.c.Do(t.Context(), http.MethodGet, "/api/v1/tasks", nil, nil); !errors.As(err, &apiErr) || apiErr.Status != http.StatusUnauthorized {
		t.Errorf("a revoked client's token: %v, want 401", err)
	}
	// A disabled user is told so, with the right password only.
	if status, body := signInStatus(t, srv.URL, "alice", alicePW); status != http.StatusForbidden || !strings.Contains(body, "This account is disabled") {
		t.Errorf("disabled alice signs in: %d", status)
	}
	if status, body := signInStatus(t, srv.URL, "alice", "wrong-password"); status != http.StatusUnauthorized || strings.Contains(body, "disabled") {
		t.Errorf("disabled alice with a wrong password: %d", status)
	}
	// Enabled again and with a new password, she signs in with it only.
	if r := run("user", "enable", "--username", "alice"); r.code != 0 {
		t.Fatalf("enable: %s", r.stderr)
	}
	r := run("user", "reset-password", "--username", "alice")
	if r.code != 0 {
		t.Fatalf("reset-password: %s", r.stderr)
	}
	pw := shownOnce(t, r.stdout)
	if status, _ := signInStatus(t, srv.URL, "alice", pw); status != http.StatusSeeOther {
		t.Errorf("sign-in with the new password: %d", status)
	}
	if status, _ := signInStatus(t, srv.URL, "alice", alicePW); status != http.StatusUnauthorized {
		t.Errorf("sign-in with the old password: %d", status)
	}
	// With a second admin, the first can be disabled.
	if r := run("user", "set-role", "--username", "alice", "--role", "admin"); r.code != 0 || !strings.Contains(r.stdout, "role admin") {
		t.Fatalf("set-role: %s %s", r.stdout, r.stderr)
	}
	if r := run("user", "disable", "--username", "admin"); r.code != 0 {
		t.Errorf("disable one of two admins: %s", r.stderr)
	}
	// alice's sign-in is listed, with its time.
	for _, l := range strings.Split(run("user", "list").stdout, "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[0] == "alice" && (f[1] != "admin" || f[2] != "enabled" || !strings.HasSuffix(f[5], "Z")) {
			t.Errorf("alice in the list: %q", l)
		}
		if f := strings.Fields(l); len(f) > 0 && f[0] == "admin" && f[2] != "disabled" {
			t.Errorf("admin in the list: %q", l)
		}
	}
}
