// Command provisor is Provisor's single binary: the server, and the tools
// that manage it.
//
//	provisor serve         start the portal, the API, the workers and the scheduler
//	provisor migrate       apply (or reverse) database migrations
//	provisor user create   make a portal user and print a generated password once
//	provisor user list|disable|enable|set-role|reset-password   manage portal users
//	provisor api-client create   make an API client and print its secret once
//	provisor api-client list|revoke   list API clients, revoke one and its tokens
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
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/provisor/provisor/access"
	"github.com/provisor/provisor/app"
	"github.com/provisor/provisor/app/api"
	"github.com/provisor/provisor/app/bench"
	"github.com/provisor/provisor/app/config"
	"github.com/provisor/provisor/audit"
	"github.com/provisor/provisor/database"
	"github.com/provisor/provisor/migrations"
	"github.com/provisor/provisor/requests"
)

const usage = `Provisor: self-service requests and task automation for identity provisioning.

Usage:
  provisor serve [flags]                 start the server (see provisor serve -h)
  provisor migrate [up|down|status] [flags]
  provisor user create --username U --email E [--admin] [flags]
  provisor user list [flags]
  provisor user disable|enable|reset-password --username U [flags]
  provisor user set-role --username U --role admin|requester [flags]
  provisor api-client create --name N --scopes S [flags]
  provisor api-client list [flags]
  provisor api-client revoke --client-id ID [flags]
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

func logger(cfg *config.Config, w io.Writer) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(cfg.LogLevel))
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l}))
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l}))
}

func serve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := config.Load("provisor serve", args, os.Getenv, stderr, nil)
	if err != nil {
		return err
	}
	log := logger(cfg, stderr)
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
	quiet := *cfg
	quiet.LogLevel = "warn"
	return app.New(ctx, cfg, logger(&quiet, stderr), &app.Options{NoWorkers: true})
}

const userUsage = "usage: provisor user create|list|disable|enable|set-role|reset-password [flags]"

func userCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New(userUsage)
	}
	switch args[0] {
	case "create":
		return userCreate(ctx, args[1:], stdout, stderr)
	case "list":
		return userList(ctx, args[1:], stdout, stderr)
	case "disable", "enable", "reset-password", "set-role":
		return userChange(ctx, args[0], args[1:], stdout, stderr)
	}
	return errors.New(userUsage)
}

func userCreate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var username, email, name, role string
	var admin bool
	cfg, err := loadTool("provisor user create", args, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&username, "username", "", "sign-in name (required)")
		fs.StringVar(&email, "email", "", "email address (required)")
		fs.StringVar(&name, "name", "", "display name")
		fs.BoolVar(&admin, "admin", false, "give the admin role (default requester)")
		fs.StringVar(&role, "role", access.RoleRequester, "role: "+strings.Join(access.Roles, ", "))
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
	if admin {
		role = access.RoleAdmin
	}
	password := access.GeneratePassword()
	u, err := a.Access.CreateUser(ctx, access.UserInput{Username: username, Email: email, DisplayName: name, Password: password, Role: role}, audit.ActorCLI)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "User %s created with role %s.\nPassword (shown once): %s\n", u.Username, u.Role, password)
	return nil
}

// when shows a time that may be unknown.
func when(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04Z")
}

func userList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := loadTool("provisor user list", args, stderr, nil)
	if err != nil {
		return err
	}
	a, err := toolApp(ctx, cfg, stderr)
	if err != nil {
		return err
	}
	defer a.DB.Close()
	users, err := a.Access.ListUsers(ctx)
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "USERNAME\tROLE\tSTATUS\tSIGN-IN\tLAST SIGN-IN\tID")
	for _, u := range users {
		status, signIn := "enabled", "local"
		if u.Disabled {
			status = "disabled"
		}
		if u.IsDirectoryUser() {
			signIn = "directory"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", u.Username, u.Role, status, signIn, when(u.LastSignInAt), u.ID)
	}
	return w.Flush()
}

// userChange disables, enables, re-roles or resets the password of the
// user named by --username (or its id).
func userChange(ctx context.Context, action string, args []string, stdout, stderr io.Writer) error {
	var username, role string
	cfg, err := loadTool("provisor user "+action, args, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&username, "username", "", "the user's sign-in name or id (required)")
		if action == "set-role" {
			fs.StringVar(&role, "role", "", strings.Join(access.Roles, ", ")+" (required)")
		}
	})
	if err != nil {
		return err
	}
	if username == "" {
		return errors.New("--username is required")
	}
	if action == "set-role" && !slices.Contains(access.Roles, role) {
		return errors.New("--role must be one of " + strings.Join(access.Roles, ", "))
	}
	a, err := toolApp(ctx, cfg, stderr)
	if err != nil {
		return err
	}
	defer a.DB.Close()
	u, err := a.Access.FindUser(ctx, username)
	if err != nil {
		return err
	}
	switch action {
	case "disable", "enable":
		if _, err := a.Access.SetDisabled(ctx, u.ID, action == "disable", "cli"); err != nil {
			return cliError(err)
		}
		if action == "disable" {
			fmt.Fprintf(stdout, "User %s disabled: their sessions have ended and sign-in is refused.\n", u.Username)
		} else {
			fmt.Fprintf(stdout, "User %s enabled.\n", u.Username)
		}
	case "set-role":
		if _, err := a.Access.SetRole(ctx, u.ID, role, "cli"); err != nil {
			return cliError(err)
		}
		fmt.Fprintf(stdout, "User %s now has the role %s.\n", u.Username, role)
	case "reset-password":
		_, password, err := a.Access.ResetPassword(ctx, u.ID, "cli")
		if err != nil {
			return cliError(err)
		}
		fmt.Fprintf(stdout, "Password of %s reset; their sessions have ended.\nPassword (shown once): %s\n", u.Username, password)
	}
	return nil
}

// cliError drops the "conflict: " a refusal starts with: the message says why.
func cliError(err error) error {
	if errors.Is(err, access.ErrConflict) {
		return errors.New(strings.TrimPrefix(err.Error(), access.ErrConflict.Error()+": "))
	}
	return err
}

const apiClientUsage = "usage: provisor api-client create|list|revoke [flags]"

func apiClientCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New(apiClientUsage)
	}
	switch args[0] {
	case "create":
		return apiClientCreate(ctx, args[1:], stdout, stderr)
	case "list":
		return apiClientList(ctx, args[1:], stdout, stderr)
	case "revoke":
		return apiClientRevoke(ctx, args[1:], stdout, stderr)
	}
	return errors.New(apiClientUsage)
}

func apiClientCreate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var name, scopes, forUser string
	cfg, err := loadTool("provisor api-client create", args, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&name, "name", "", "what the client is for (required)")
		fs.StringVar(&scopes, "scopes", "", "comma-separated: "+strings.Join(access.AllScopes, ", ")+", or all (required)")
		fs.StringVar(&forUser, "user", "", "portal user the client acts for: its requests and tasks are checked as that user's (default: none, a service)")
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
	c, secret, err := a.Access.CreateClientFor(ctx, name, list, forUser, audit.ActorCLI)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "API client %q created with scopes: %s\nClient id: %s\nSecret (shown once): %s\n", c.Name, c.Scopes, c.ClientID, secret)
	return nil
}

func apiClientList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := loadTool("provisor api-client list", args, stderr, nil)
	if err != nil {
		return err
	}
	a, err := toolApp(ctx, cfg, stderr)
	if err != nil {
		return err
	}
	defer a.DB.Close()
	clients, err := a.Access.ListClients(ctx)
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "NAME\tCLIENT ID\tSCOPES\tCREATED\tLAST USED\tREVOKED")
	for _, c := range clients {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", c.Name, c.ClientID, strings.ReplaceAll(c.Scopes, " ", ","),
			when(&c.CreatedAt), when(c.LastUsedAt), when(c.RevokedAt))
	}
	return w.Flush()
}

func apiClientRevoke(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var clientID string
	cfg, err := loadTool("provisor api-client revoke", args, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&clientID, "client-id", "", "the client id (pc_...) that api-client create printed (required)")
	})
	if err != nil {
		return err
	}
	if clientID == "" {
		return errors.New("--client-id is required")
	}
	a, err := toolApp(ctx, cfg, stderr)
	if err != nil {
		return err
	}
	defer a.DB.Close()
	c, err := a.Access.RevokeClient(ctx, clientID, "cli")
	if err != nil {
		return cliError(err)
	}
	fmt.Fprintf(stdout, "API client %q (%s) revoked: its tokens no longer work and it gets no new ones.\n", c.Name, c.ClientID)
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
