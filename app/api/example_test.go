package api_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"time"

	"github.com/gofiber/fiber/v2/middleware/adaptor"

	"github.com/provisor/provisor/access"
	"github.com/provisor/provisor/app"
	"github.com/provisor/provisor/app/api"
	"github.com/provisor/provisor/app/config"
	"github.com/provisor/provisor/connectors/configured"
	"github.com/provisor/provisor/identities"
	"github.com/provisor/provisor/requests"
	"github.com/provisor/provisor/tasks"
)

// A script or an external scheduler runs a task through the API with its
// client's credentials, and waits for the run to end. Here the server is a
// Provisor on a fresh embedded database, with a task that gives Alice an
// account and the VPN group in the built-in directory.
func ExampleClient_InvokeTask() {
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	a, done, err := exampleApp(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer done()
	srv := httptest.NewServer(adaptor.FiberApp(a.HTTP))
	defer srv.Close()

	// What an admin sets up in the portal: a directory with a group, a
	// person, a task, and an API client allowed to trigger tasks.
	dir, _ := a.Connectors.Create(ctx, configured.Input{Name: "Corp Dir", Type: "internal"})
	vpn, _ := a.Identities.CreateEntitlement(ctx, dir.ID, identities.EntitlementInput{Name: "VPN"})
	alice, _ := a.Identities.CreateIdentity(ctx, identities.IdentityInput{Username: "alice", DisplayName: "Alice Doe"})
	name := "Onboard Alice"
	if _, err := a.Tasks.Create(ctx, tasks.Input{Name: &name, Request: &requests.Request{Type: requests.CreateAccount,
		BeneficiaryType: "identity", BeneficiaryID: alice.ID, ConnectorID: dir.ID, Entitlements: []string{vpn.ID},
		Justification: "new hire"}}, "admin"); err != nil {
		fmt.Println(err)
		return
	}
	cl, secret, _ := a.Access.CreateClient(ctx, "nightly", []string{access.ScopeRead, access.ScopeTrigger}, "admin")

	c := &api.Client{BaseURL: srv.URL, ClientID: cl.ClientID, ClientSecret: secret}
	inst, err := c.InvokeTask(ctx, api.InvokeOpts{Task: "Onboard Alice", Wait: true, Timeout: time.Minute, Poll: 20 * time.Millisecond})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(inst.TaskName, inst.Trigger, inst.Status)
	for _, j := range inst.Jobs {
		fmt.Println(j.Seq, j.Kind, j.Username, j.Status)
	}
	// Output:
	// Onboard Alice cli completed
	// 1 Directory.CreateAccount alice completed
	// 2 Directory.AddToGroup alice completed
}

// exampleApp starts a Provisor on an embedded database in a temporary
// folder; done stops it and removes the folder.
func exampleApp(ctx context.Context) (a *app.App, done func(), err error) {
	dir, err := os.MkdirTemp("", "provisor-example-")
	if err != nil {
		return nil, nil, err
	}
	defer func() {
		if err != nil {
			_ = os.RemoveAll(dir)
		}
	}()
	cfg, err := config.Load("example", []string{"--data-dir", dir, "--secret-key", "an example key of at least thirty-two characters"},
		func(string) string { return "" }, io.Discard, nil)
	if err != nil {
		return nil, nil, err
	}
	if a, err = app.New(ctx, cfg, slog.New(slog.DiscardHandler), nil); err != nil {
		return nil, nil, err
	}
	if err = a.Start(ctx); err != nil {
		_ = a.Shutdown()
		return nil, nil, err
	}
	return a, func() { _ = a.Shutdown(); _ = os.RemoveAll(dir) }, nil
}
