// Command provisor is Provisor's single binary: the server, and the tools
// that manage it.
//
//	provisor serve         start the portal, the API, the workers and the scheduler
//	provisor migrate       apply (or reverse) database migrations
//	provisor user create   make a portal user and print a generated password once
//	provisor api-client create   make an API client and print its secret once
//	provisor invoke-task   trigger a task through the API, as an external scheduler does
//	provisor bench         measure throughput and latency; bench portal times the busiest pages,
//	                       bench burst concurrent API submissions
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/provisor/provisor/access"
	"github.com/provisor/provisor/app"
	"github.com/provisor/provisor/app/api"
	"github.com/provisor/provisor/app/bench"
	"github.com/provisor/provisor/app/config"
	"github.com/provisor/provisor/app/database"
	"github.com/provisor/provisor/migrations"
	"github.com/provisor/provisor/requests"
)

const usage = `Provisor: self-service requests and task automation for identity provisioning.

Usage:
  provisor serve [flags]                 start the server (see provisor serve -h)
  provisor migrate [up|down|status] [flags]
  provisor user create --username U --email E [--admin] [flags]
  provisor api-client create --name N --scopes S [flags]
  provisor invoke-task --task NAME|ID --api-url URL --api-client-id ID --api-secret SECRET [--wait] [--timeout D]
  provisor bench [flags]                 job throughput and latency (PostgreSQL and SQLite)
  provisor bench portal [flags]          Connector Jobs page and tasks grid on 1,000,000 seeded jobs
  provisor bench burst [flags]           1,000 API submissions from 50 concurrent clients (PostgreSQL and SQLite)

Every server flag can also be set with its PROVISOR_* environment variable.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "serve":
		err = serve(ctx, args[1:], stdout, stderr)
	case "migrate":
		err = migrate(ctx, args[1:], stdout, stderr)
	case "user":
		err = userCmd(ctx, args[1:], stdout, stderr)
	case "api-client":
		err = apiClientCmd(ctx, args[1:], stdout, stderr)
	case "invoke-task":
		return invokeTask(ctx, args[1:], stdout, stderr)
	case "bench":
		err = benchCmd(ctx, args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "provisor: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "provisor %s: %v\n", args[0], err)
		return 1
	}
	return 0
}

func logger(level string, w io.Writer) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level))
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l}))
}

func serve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := config.Load("provisor serve", args, os.Getenv, stderr, nil)
	if err != nil {
		return err
	}
	log := logger(cfg.LogLevel, stderr)
	a, err := app.New(ctx, cfg, log, nil)
	if err != nil {
		return err
	}
	if cfg.Demo {
		if _, err := a.LoadDemo(ctx); err != nil {
			_ = a.Shutdown()
			return err
		}
	}
	fmt.Fprintf(stdout, "Provisor is running at %s (database: %s)\n", cfg.BaseURL, cfg.RedactedDatabase())
	fmt.Fprintf(stdout, "API: %s/api/v1 (description: %s/api/v1/openapi.yaml)\n", cfg.BaseURL, cfg.BaseURL)
	if b, err := os.ReadFile(a.CredentialsFile()); err == nil {
		fmt.Fprintf(stdout, "Demo sign-in (kept in %s):\n%s", a.CredentialsFile(), b)
	} else {
		fmt.Fprintln(stdout, "Sign in with a user made by: provisor user create --username NAME --email EMAIL --admin")
	}
	return a.Run(ctx, nil)
}

// loadTool reads the server settings of a command that opens the
// database, with the command's own flags added by extra.
func loadTool(name string, args []string, stderr io.Writer, extra func(*flag.FlagSet)) (*config.Config, error) {
	return config.Load(name, args, os.Getenv, stderr, extra)
}

func migrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	dir := "up"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		dir, args = args[0], args[1:]
	}
	var steps int
	cfg, err := loadTool("provisor migrate", args, stderr, func(fs *flag.FlagSet) {
		fs.IntVar(&steps, "steps", 1, "with down: how many migrations to reverse")
	})
	if err != nil {
		return err
	}
	db, err := database.Open(ctx, cfg.DatabaseURL, cfg.SQLitePath(), nil)
	if err != nil {
		return err
	}
	defer db.Close()
	switch dir {
	case "up":
		ran, err := migrations.Up(ctx, db.SQL, db.Dialect)
		if err != nil {
			return err
		}
		if err := db.Migrate(ctx); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s: applied %d migration(s) %v\n", cfg.RedactedDatabase(), len(ran), ran)
	case "down":
		if steps < 1 {
			return errors.New("--steps must be at least 1")
		}
		ran, err := migrations.Down(ctx, db.SQL, db.Dialect, steps)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s: reversed %d migration(s) %v\n", cfg.RedactedDatabase(), len(ran), ran)
	case "status":
		applied, err := migrations.Status(ctx, db.SQL)
		if err != nil {
			return err
		}
		all, err := migrations.List(db.Dialect)
		if err != nil {
			return err
		}
		done := map[int]migrations.Applied{}
		for _, a := range applied {
			done[a.Version] = a
		}
		for _, m := range all {
			if a, ok := done[m.Version]; ok {
				fmt.Fprintf(stdout, "%03d_%s  applied %s\n", m.Version, m.Name, a.AppliedAt.Format(time.RFC3339))
			} else {
				fmt.Fprintf(stdout, "%03d_%s  pending\n", m.Version, m.Name)
			}
		}
	default:
		return fmt.Errorf("unknown direction %q: use up, down or status", dir)
	}
	return nil
}

// toolApp builds an app that runs no workers, for commands that only write.
func toolApp(ctx context.Context, cfg *config.Config, stderr io.Writer) (*app.App, error) {
	return app.New(ctx, cfg, logger("warn", stderr), &app.Options{NoWorkers: true})
}

func userCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "create" {
		return errors.New("usage: provisor user create --username U --email E [--admin]")
	}
	var username, email, name string
	var admin bool
	cfg, err := loadTool("provisor user create", args[1:], stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&username, "username", "", "sign-in name (required)")
		fs.StringVar(&email, "email", "", "email address (required)")
		fs.StringVar(&name, "name", "", "display name")
		fs.BoolVar(&admin, "admin", false, "give the admin role (default requester)")
	})
	if err != nil {
		return err
	}
	if username == "" || email == "" {
		return errors.New("--username and --email are required")
	}
	a, err := toolApp(ctx, cfg, stderr)
	if err != nil {
		return err
	}
	defer a.DB.Close()
	role := access.RoleRequester
	if admin {
		role = access.RoleAdmin
	}
	password := access.GeneratePassword()
	u, err := a.Access.CreateUser(ctx, access.UserInput{Username: username, Email: email, DisplayName: name, Password: password, Role: role}, "cli")
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "User %s created with role %s.\nPassword (shown once): %s\n", u.Username, u.Role, password)
	return nil
}

func apiClientCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "create" {
		return errors.New("usage: provisor api-client create --name N --scopes S")
	}
	var name, scopes string
	cfg, err := loadTool("provisor api-client create", args[1:], stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&name, "name", "", "what the client is for (required)")
		fs.StringVar(&scopes, "scopes", "", "comma-separated: "+strings.Join(access.AllScopes, ", ")+", or all (required)")
	})
	if err != nil {
		return err
	}
	list, err := access.ParseScopes(scopes)
	if err != nil {
		return fmt.Errorf("--scopes: %w", err)
	}
	if strings.TrimSpace(name) == "" {
		return errors.New("--name is required")
	}
	a, err := toolApp(ctx, cfg, stderr)
	if err != nil {
		return err
	}
	defer a.DB.Close()
	c, secret, err := a.Access.CreateClient(ctx, name, list, "cli")
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "API client %q created with scopes: %s\nClient id: %s\nSecret (shown once): %s\n", c.Name, c.Scopes, c.ClientID, secret)
	return nil
}

// invokeTask returns 0 when every job completed, 1 when a job did not, 2 for
// a usage error, 3 when it could not trigger, and 4 on a timeout.
func invokeTask(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("provisor invoke-task", flag.ContinueOnError)
	fs.SetOutput(stderr)
	task := fs.String("task", "", "task name or id (required)")
	apiURL := fs.String("api-url", os.Getenv("PROVISOR_API_URL"), "Provisor's base URL (PROVISOR_API_URL)")
	clientID := fs.String("api-client-id", os.Getenv("PROVISOR_API_CLIENT_ID"), "API client id (PROVISOR_API_CLIENT_ID)")
	secret := fs.String("api-secret", os.Getenv("PROVISOR_API_SECRET"), "API client secret (PROVISOR_API_SECRET)")
	wait := fs.Bool("wait", false, "follow the run and exit 0 only if every job completed")
	timeout := fs.Duration("timeout", 0, "with --wait: give up after this long (exit 4); 0 waits forever")
	fs.StringVar(task, "j", "", "short for --task")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	var missing []string
	for _, f := range []struct{ name, value string }{{"--task", *task}, {"--api-url", *apiURL}, {"--api-client-id", *clientID}, {"--api-secret", *secret}} {
		if f.value == "" {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		fmt.Fprintf(stderr, "provisor invoke-task: missing %s\n", strings.Join(missing, ", "))
		return 2
	}
	c := &api.Client{BaseURL: *apiURL, ClientID: *clientID, ClientSecret: *secret}
	inst, err := c.InvokeTask(ctx, api.InvokeOpts{Task: *task, Wait: *wait, Timeout: *timeout,
		ProgressFunc: func(i *requests.Instance) {
			fmt.Fprintf(stdout, "run %s: %s (%d of %d jobs done)\n", i.ID, i.Status, i.JobsDone, i.JobsTotal)
		}})
	switch {
	case err == nil:
		return 0
	case errors.Is(err, api.ErrRunFailed):
		fmt.Fprintf(stderr, "provisor invoke-task: %v\n", err)
		return 1
	case errors.Is(err, api.ErrTimeout):
		fmt.Fprintf(stderr, "provisor invoke-task: %v\n", err)
		return 4
	default:
		if inst != nil {
			fmt.Fprintf(stderr, "provisor invoke-task: run %s: %v\n", inst.ID, err)
		} else {
			fmt.Fprintf(stderr, "provisor invoke-task: %v\n", err)
		}
		return 3
	}
}

func benchCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return bench.Main(ctx, args, stdout, stderr)
}
