// Package apptest builds a whole Provisor (database, queue with workers,
// services, scheduler and HTTP handler) on a fresh database for tests, with
// factories for the things most tests need.
package apptest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/provisor/provisor/app"
	"github.com/provisor/provisor/app/config"
	"github.com/provisor/provisor/connectors"
	"github.com/provisor/provisor/connectors/configured"
	"github.com/provisor/provisor/database/dbtest"
	"github.com/provisor/provisor/identities"
	"github.com/provisor/provisor/internal/testwait"
	"github.com/provisor/provisor/requests"
)

// Options adjust New. A nil *Options means defaults.
type Options struct {
	// Args are extra server flags, such as "--max-attempts", "3".
	Args []string
	// ConnectorTypes are added to the built-in ones.
	ConnectorTypes []connectors.Type
	// NoStart builds the app without starting workers and scheduler.
	NoStart bool
	// Prepare, if set, is called with the fresh database (a PostgreSQL URL,
	// or else a SQLite file path that does not exist yet) before the app
	// opens and migrates it: to load a database an earlier version made.
	Prepare func(databaseURL, sqlitePath string)
	// NowFunc, if set, is the clock of the notifier's retry period.
	NowFunc func() time.Time
	// Log, if set, receives the server log (at debug level), as
	// PROVISOR_TEST_LOG=1 sends it to stderr.
	Log io.Writer
}

// Bundle is a running app on a fresh database.
type Bundle struct {
	*app.App
	Dialect string
	Ctx     context.Context
}

// New returns an app on a fresh database of dialect, started unless
// opts.NoStart, and stopped when the test ends.
func New(t testing.TB, dialect string, opts *Options) *Bundle {
	t.Helper()
	if opts == nil {
		opts = &Options{}
	}
	dbURL, path := dbtest.Location(t, dialect)
	if opts.Prepare != nil {
		opts.Prepare(dbURL, path)
	}
	dataDir := t.TempDir()
	if path != "" {
		dataDir = dirOf(path)
	}
	// A small PostgreSQL pool per app: parallel tests share the server's
	// 100 connections. A connector quarantined by a test that stops its
	// server is probed within seconds, not the minute a deployment waits.
	args := []string{"--data-dir", dataDir, "--secret-key", "0123456789abcdef0123456789abcdef-test",
		"--schedule-sync", "500ms", "--log-level", "error", "--workers", "8", "--db-conns", "12",
		"--probe-min", "1s", "--probe-max", "5s"}
	if dbURL != "" {
		args = append(args, "--database", dbURL)
	}
	args = append(args, opts.Args...)
	cfg, err := config.Load("apptest", args, func(string) string { return "" }, io.Discard, nil)
	if err != nil {
		t.Fatalf("apptest: config: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	logOut := io.Discard
	if os.Getenv("PROVISOR_TEST_LOG") != "" {
		logOut = os.Stderr
	}
	if opts.Log != nil {
		logOut = opts.Log
		if os.Getenv("PROVISOR_TEST_LOG") != "" {
			logOut = io.MultiWriter(opts.Log, os.Stderr)
		}
	}
	log := slog.New(slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: slog.LevelDebug}))
	a, err := app.New(ctx, cfg, log, &app.Options{ConnectorTypes: opts.ConnectorTypes, NowFunc: opts.NowFunc})
	if err != nil {
		cancel()
		t.Fatalf("apptest: new app: %v", err)
	}
	b := &Bundle{App: a, Dialect: dialect, Ctx: ctx}
	if opts.NoStart {
		t.Cleanup(func() { cancel(); _ = a.DB.Close() })
		return b
	}
	if err := a.Start(ctx); err != nil {
		cancel()
		t.Fatalf("apptest: start: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		if err := a.Shutdown(); err != nil {
			t.Logf("apptest: shutdown: %v", err)
		}
	})
	return b
}

func dirOf(path string) string {
	for i := len(path) - 1; i >= 0; i-- {
		if path[i] == '/' {
			return path[:i]
		}
	}
	return "."
}

// Directory creates a built-in directory connector with the named groups
// and returns it with the entitlements by name.
func (b *Bundle) Directory(t testing.TB, name string, groups ...string) (*configured.Record, map[string]*identities.Entitlement) {
	t.Helper()
	rec, err := b.Connectors.Create(b.Ctx, configured.Input{Name: name, Type: "internal"})
	if err != nil {
		t.Fatalf("apptest: connector %s: %v", name, err)
	}
	ents := map[string]*identities.Entitlement{}
	for _, g := range groups {
		e, err := b.Identities.CreateEntitlement(b.Ctx, rec.ID, identities.EntitlementInput{Name: g})
		if err != nil {
			t.Fatalf("apptest: entitlement %s: %v", g, err)
		}
		ents[g] = e
	}
	return rec, ents
}

// Identity creates an identity.
func (b *Bundle) Identity(t testing.TB, username string) *identities.Identity {
	t.Helper()
	id, err := b.Identities.CreateIdentity(b.Ctx, identities.IdentityInput{Username: username, Email: username + "@example.test"})
	if err != nil {
		t.Fatalf("apptest: identity %s: %v", username, err)
	}
	return id
}

// Workgroup creates a workgroup of the given identities.
func (b *Bundle) Workgroup(t testing.TB, name string, members ...*identities.Identity) *identities.Workgroup {
	t.Helper()
	ids := make([]string, len(members))
	for i, m := range members {
		ids[i] = m.ID
	}
	wg, err := b.Identities.CreateWorkgroup(b.Ctx, identities.WorkgroupInput{Name: name, Members: ids})
	if err != nil {
		t.Fatalf("apptest: workgroup %s: %v", name, err)
	}
	return wg
}

// Submit submits r as a direct submission by "tester".
func (b *Bundle) Submit(t testing.TB, r requests.Request) *requests.Instance {
	t.Helper()
	if r.Justification == "" {
		r.Justification = "test"
	}
	inst, err := b.Requests.Submit(b.Ctx, r, requests.StartOpts{Trigger: requests.TriggerSubmission, Actor: "tester"})
	if err != nil {
		t.Fatalf("apptest: submit: %v", err)
	}
	return inst
}

// Wait polls an instance until cond holds, and fails the test after timeout.
func (b *Bundle) Wait(t testing.TB, id string, timeout time.Duration, cond func(*requests.Instance) bool) *requests.Instance {
	t.Helper()
	return testwait.For(t, timeout, func() (*requests.Instance, error) {
		inst, err := b.Requests.GetInstance(b.Ctx, id)
		if err != nil {
			t.Fatalf("apptest: get instance %s: %v", id, err)
		}
		if !cond(inst) {
			return inst, fmt.Errorf("apptest: instance %s still %s; jobs: %s", id, inst.Status, Describe(inst))
		}
		return inst, nil
	})
}

// WaitSettled waits until an instance is no longer pending or running.
func (b *Bundle) WaitSettled(t testing.TB, id string) *requests.Instance {
	t.Helper()
	return b.Wait(t, id, 30*time.Second, func(i *requests.Instance) bool { return !requests.Busy(i.Status) })
}

// Describe lists an instance's jobs for failure messages.
func Describe(inst *requests.Instance) string {
	s := ""
	for _, j := range inst.Jobs {
		s += "\n  #" + strconv.Itoa(j.Seq) + " " + j.Kind + " " + j.Username + " " + j.EntitlementName + ": " + j.Status + " (" + j.Message + ")"
	}
	return s
}
