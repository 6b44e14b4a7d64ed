package main

// Helpers for the tests that run the provisor binary as real processes on
// loopback ports: the binary is built once by TestMain, every process writes
// its output to a file that is printed when the test fails, and every process
// is stopped and waited for when its test ends.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/provisor/provisor/app/api"
	"github.com/provisor/provisor/database"
	"github.com/provisor/provisor/internal/testwait"
	"github.com/provisor/provisor/requests"
)

// provisorBin is the binary under test, built once per test run.
var provisorBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "provisor-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	provisorBin = filepath.Join(dir, "provisor")
	build := exec.Command("go", "build", "-o", provisorBin, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "build provisor: %v\n", err)
		_ = os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// testSecretKey is the --secret-key of processes on PostgreSQL.
const testSecretKey = "test-secret-key-0123456789-abcdefghij"

// childEnv is this process's environment without PROVISOR_* settings, so
// that nothing from the developer's shell changes what a test runs, plus extra.
func childEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PROVISOR_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// freeAddr returns a loopback address with a port nobody listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// server is a running `provisor serve`.
type server struct {
	t    *testing.T
	name string
	URL  string
	log  string
	cmd  *exec.Cmd
	done chan struct{}
	err  error // how the process ended; read after done is closed
}

// startServer runs `provisor serve` with args on a free loopback port and
// waits until it answers /readyz. It is stopped when the test ends.
func startServer(t *testing.T, name string, args ...string) *server {
	t.Helper()
	addr := freeAddr(t)
	s := &server{t: t, name: name, URL: "http://" + addr, log: filepath.Join(t.TempDir(), name+".log"), done: make(chan struct{})}
	f, err := os.OpenFile(s.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	s.cmd = exec.Command(provisorBin, append([]string{"serve", "--addr", addr}, args...)...)
	s.cmd.Env = childEnv()
	s.cmd.Stdout, s.cmd.Stderr = f, f
	if err := s.cmd.Start(); err != nil {
		_ = f.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	_ = f.Close()
	go func() {
		s.err = s.cmd.Wait()
		close(s.done)
	}()
	t.Cleanup(func() {
		s.stop()
		if t.Failed() {
			s.printLog()
		}
	})
	s.waitReady()
	return s
}

func (s *server) waitReady() {
	s.t.Helper()
	testwait.Until(s.t, 60*time.Second, func() error {
		select {
		case <-s.done:
			s.t.Fatalf("%s exited before it was ready: %v", s.name, s.err)
		default:
		}
		resp, err := http.Get(s.URL + "/readyz")
		if err != nil {
			return fmt.Errorf("%s is not ready: %w", s.name, err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s is not ready: /readyz answers %d", s.name, resp.StatusCode)
		}
		return nil
	})
}

// kill ends the process at once with SIGKILL, as a crash or an OOM kill
// does, and waits for it.
func (s *server) kill() {
	_ = s.cmd.Process.Kill()
	<-s.done
}

// stop asks the process to shut down and kills it if it takes too long.
func (s *server) stop() {
	select {
	case <-s.done:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(25 * time.Second):
		s.t.Logf("%s did not stop within 25s of SIGTERM; killing it", s.name)
		s.kill()
	}
}

// logText returns what the process has written so far.
func (s *server) logText() string {
	b, err := os.ReadFile(s.log)
	if err != nil {
		s.t.Logf("read %s log: %v", s.name, err)
	}
	return string(b)
}

// printLog puts the process's warnings, errors and last lines into the test output.
func (s *server) printLog() {
	lines := strings.Split(strings.TrimRight(s.logText(), "\n"), "\n")
	var bad []string
	for _, l := range lines {
		if strings.Contains(l, "level=ERROR") || strings.Contains(l, "level=WARN") {
			bad = append(bad, l)
		}
	}
	if len(bad) > 100 {
		bad = bad[len(bad)-100:]
	}
	tail := lines
	if len(tail) > 200 {
		tail = tail[len(tail)-200:]
	}
	s.t.Logf("==== %s (%s): %d lines; warnings and errors:\n%s\n==== %s: last %d lines:\n%s",
		s.name, s.log, len(lines), strings.Join(bad, "\n"), s.name, len(tail), strings.Join(tail, "\n"))
}

// result is how a short command ended.
type result struct {
	stdout, stderr string
	code           int
}

// runProvisor runs a command that is expected to end by itself, with the
// extra environment variables env.
func runProvisor(t *testing.T, env []string, args ...string) result {
	t.Helper()
	return runProvisorWithin(t, 90*time.Second, env, args...)
}

// runProvisorWithin is runProvisor with a time limit.
func runProvisorWithin(t *testing.T, limit time.Duration, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, provisorBin, args...)
	cmd.Env = childEnv(env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("provisor %s did not end within %s; stdout:\n%s\nstderr:\n%s", strings.Join(args, " "), limit, stdout.String(), stderr.String())
	}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("provisor %s: %v", strings.Join(args, " "), err)
	}
	return result{stdout: stdout.String(), stderr: stderr.String(), code: cmd.ProcessState.ExitCode()}
}

// createAPIClient runs `provisor api-client create` with the database
// flags dbArgs and returns the client id and secret it prints.
func createAPIClient(t *testing.T, dbArgs ...string) (id, secret string) {
	t.Helper()
	r := runProvisor(t, nil, append([]string{"api-client", "create", "--name", "tests", "--scopes", "all"}, dbArgs...)...)
	if r.code != 0 {
		t.Fatalf("api-client create: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	sc := bufio.NewScanner(strings.NewReader(r.stdout))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "Client id: "); ok {
			id = strings.TrimSpace(v)
		}
		if v, ok := strings.CutPrefix(sc.Text(), "Secret (shown once): "); ok {
			secret = strings.TrimSpace(v)
		}
	}
	if id == "" || secret == "" {
		t.Fatalf("api-client create printed no id or secret:\n%s", r.stdout)
	}
	return id, secret
}

// apiClient calls a server's API and fails the test on an error answer.
type apiClient struct {
	t *testing.T
	c *api.Client
}

func newAPI(t *testing.T, baseURL, id, secret string) *apiClient {
	t.Helper()
	c := &api.Client{BaseURL: baseURL, ClientID: id, ClientSecret: secret}
	if err := c.Authenticate(context.Background()); err != nil {
		t.Fatalf("authenticate at %s: %v", baseURL, err)
	}
	return &apiClient{t: t, c: c}
}

// do sends in as JSON and decodes the answer into out (if not nil).
func (a *apiClient) do(method, path string, in, out any) {
	a.t.Helper()
	if err := a.c.Do(context.Background(), method, path, in, out); err != nil {
		a.t.Fatalf("%s %s: %v", method, path, err)
	}
}

// instance returns a request instance with its jobs.
func (a *apiClient) instance(id string) *requests.Instance {
	a.t.Helper()
	var inst requests.Instance
	a.do(http.MethodGet, "/api/v1/request-instances/"+id, nil, &inst)
	return &inst
}

// waitFinal waits until every instance is completed, failed or canceled.
func (a *apiClient) waitFinal(timeout time.Duration, ids ...string) {
	a.t.Helper()
	deadline := time.Now().Add(timeout)
	for _, id := range ids {
		testwait.Until(a.t, time.Until(deadline), func() error {
			if inst := a.instance(id); !requests.Final(inst.Status) {
				return fmt.Errorf("instance %s is still %s (%d of %d jobs done)", id, inst.Status, inst.JobsDone, inst.JobsTotal)
			}
			return nil
		})
	}
}

// directory is what makeDirectory creates through the API.
type directory struct {
	ConnectorID  string
	Entitlements []string
	Identities   []string
	WorkgroupID  string
}

// makeDirectory creates, through the API, a built-in directory connector
// with groups entitlements, people identities and a workgroup of them all.
func makeDirectory(a *apiClient, prefix string, people, groups int) directory {
	a.t.Helper()
	var d directory
	var idOnly struct {
		ID string `json:"id"`
	}
	a.do(http.MethodPost, "/api/v1/connectors", map[string]any{"name": prefix + " Directory", "type": "internal"}, &idOnly)
	d.ConnectorID = idOnly.ID
	for i := range groups {
		a.do(http.MethodPost, "/api/v1/connectors/"+d.ConnectorID+"/entitlements",
			map[string]any{"name": fmt.Sprintf("%s-group-%02d", prefix, i), "kind": "group"}, &idOnly)
		d.Entitlements = append(d.Entitlements, idOnly.ID)
	}
	for i := range people {
		u := fmt.Sprintf("%s.user%03d", prefix, i)
		a.do(http.MethodPost, "/api/v1/identities", map[string]any{"username": u, "display_name": "User " + u, "email": u + "@example.test"}, &idOnly)
		d.Identities = append(d.Identities, idOnly.ID)
	}
	a.do(http.MethodPost, "/api/v1/workgroups", map[string]any{"name": prefix + " people", "members": d.Identities}, &idOnly)
	d.WorkgroupID = idOnly.ID
	return d
}

// createAccounts is a request that creates an account for every member of
// the workgroup and adds it to every group: per member, one create job and
// one grant job per group that waits for it.
func (d directory) createAccounts() requests.Request {
	return requests.Request{Type: requests.CreateAccount, BeneficiaryType: requests.BeneficiaryWorkgroup, BeneficiaryID: d.WorkgroupID,
		ConnectorID: d.ConnectorID, Entitlements: d.Entitlements, Justification: "process test", Priority: requests.Normal}
}

// openDB opens the database a server runs on, to look at its rows.
func openDB(t *testing.T, databaseURL, sqlitePath string) *gorm.DB {
	t.Helper()
	db, err := database.Open(context.Background(), databaseURL, sqlitePath, nil)
	if err != nil {
		t.Fatalf("open database: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db.Gorm
}

// count runs a query that returns one number.
func count(t *testing.T, db *gorm.DB, query string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := db.Raw(query, args...).Scan(&n).Error; err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// checkJobsRanOnce checks that every connector job completed, that each has
// exactly one 'completed' entry in its history, and that every instance
// counts all its jobs as done.
func checkJobsRanOnce(t *testing.T, db *gorm.DB) (jobs int64) {
	t.Helper()
	jobs = count(t, db, `SELECT count(*) FROM connector_jobs`)
	if jobs == 0 {
		t.Fatal("no connector jobs at all")
	}
	var unfinished []struct {
		Seq      int
		Username string
		Kind     string
		Status   string
		Message  string
	}
	if err := db.Raw(`SELECT seq, username, kind, status, message FROM connector_jobs WHERE status <> 'completed' ORDER BY instance_id, seq LIMIT 20`).
		Scan(&unfinished).Error; err != nil {
		t.Fatal(err)
	}
	for _, j := range unfinished {
		t.Errorf("job #%d %s for %s is %s: %q", j.Seq, j.Kind, j.Username, j.Status, j.Message)
	}
	var twice []struct {
		ID string
		N  int
	}
	if err := db.Raw(`SELECT j.id, count(e.id) AS n FROM connector_jobs j
		LEFT JOIN job_events e ON e.job_id = j.id AND e.status = 'completed'
		GROUP BY j.id HAVING count(e.id) <> 1 LIMIT 20`).Scan(&twice).Error; err != nil {
		t.Fatal(err)
	}
	for _, j := range twice {
		t.Errorf("job %s has %d 'completed' entries in job_events, want 1", j.ID, j.N)
	}
	if n := count(t, db, `SELECT count(*) FROM job_events WHERE status = 'completed'`); n != jobs {
		t.Errorf("job_events has %d 'completed' entries for %d jobs", n, jobs)
	}
	var insts []struct {
		ID        string
		Status    string
		JobsTotal int
		JobsDone  int
		N         int
	}
	if err := db.Raw(`SELECT i.id, i.status, i.jobs_total, i.jobs_done, (SELECT count(*) FROM connector_jobs j WHERE j.instance_id = i.id) AS n
		FROM request_instances i ORDER BY i.created_at`).Scan(&insts).Error; err != nil {
		t.Fatal(err)
	}
	for _, i := range insts {
		if i.Status != requests.InstanceCompleted || i.JobsDone != i.JobsTotal || i.JobsTotal != i.N {
			t.Errorf("instance %s: status %s, jobs_done %d, jobs_total %d, %d jobs; want completed with every job done",
				i.ID, i.Status, i.JobsDone, i.JobsTotal, i.N)
		}
	}
	return jobs
}
