package app

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/provisor/provisor/access"
	"github.com/provisor/provisor/audit"
	"github.com/provisor/provisor/connectors/configured"
	"github.com/provisor/provisor/identities"
	"github.com/provisor/provisor/requests"
	"github.com/provisor/provisor/tasks"
)

// DemoCredentials are the sign-in details made with the demo data.
type DemoCredentials struct {
	AdminUser, AdminPassword         string
	RequesterUser, RequesterPassword string
	ClientID, ClientSecret           string
}

// CredentialsFile is where the demo sign-in details are kept (mode 0600), so
// that every start can print them.
func (a *App) CredentialsFile() string {
	return filepath.Join(a.Config.DataDir, "demo-credentials.txt")
}

// LoadDemo fills an empty database with demo data: identities, workgroups,
// the built-in directory with entitlements, three tasks (one scheduled), a
// portal admin, a requester and an API client. It does nothing when the
// database already has users, and returns nil then.
func (a *App) LoadDemo(ctx context.Context) (*DemoCredentials, error) {
	n, err := a.Access.CountUsers(ctx)
	if err != nil || n > 0 {
		return nil, err
	}
	const actor = audit.ActorDemo
	people := []identities.IdentityInput{
		{Username: "alice", DisplayName: "Alice Martin", Email: "alice@example.test"},
		{Username: "bob", DisplayName: "Bob Durand", Email: "bob@example.test"},
		{Username: "carol", DisplayName: "Carol Nguyen", Email: "carol@example.test"},
		{Username: "dave", DisplayName: "Dave Okafor", Email: "dave@example.test"},
		{Username: "erin", DisplayName: "Erin Schmidt", Email: "erin@example.test"},
		{Username: "frank", DisplayName: "Frank Rossi", Email: "frank@example.test"},
		{Username: "grace", DisplayName: "Grace Kim", Email: "grace@example.test"},
		{Username: "heidi", DisplayName: "Heidi Larsen", Email: "heidi@example.test"},
		{Username: "ivan", DisplayName: "Ivan Petrov", Email: "ivan@example.test"},
		{Username: "judy", DisplayName: "Judy Alvarez", Email: "judy@example.test"},
	}
	ids := map[string]string{}
	for _, p := range people {
		id, err := a.Identities.CreateIdentity(ctx, p)
		if err != nil {
			return nil, fmt.Errorf("demo: identity %s: %w", p.Username, err)
		}
		ids[p.Username] = id.ID
	}
	finance, err := a.Identities.CreateWorkgroup(ctx, identities.WorkgroupInput{Name: "Finance", Description: "Finance department",
		Members: []string{ids["alice"], ids["bob"], ids["carol"]}})
	if err != nil {
		return nil, fmt.Errorf("demo: workgroup: %w", err)
	}
	if _, err := a.Identities.CreateWorkgroup(ctx, identities.WorkgroupInput{Name: "Contractors", Description: "External contractors",
		Members: []string{ids["ivan"], ids["judy"]}}); err != nil {
		return nil, fmt.Errorf("demo: workgroup: %w", err)
	}
	dir, err := a.Connectors.Create(ctx, configured.Input{Name: "Built-in Directory", Type: "internal",
		Description: "Accounts and groups kept in Provisor"})
	if err != nil {
		return nil, fmt.Errorf("demo: connector: %w", err)
	}
	ents := map[string]string{}
	for _, e := range []identities.EntitlementInput{
		{Name: "VPN Users", Kind: "group", Description: "Remote access"},
		{Name: "Finance Reports", Kind: "group", Description: "Read the monthly reports"},
		{Name: "Payroll Approvers", Kind: "role", Description: "Approve payroll runs"},
		{Name: "Wiki Editors", Kind: "group", Description: "Edit the company wiki"},
		{Name: "Helpdesk Agents", Kind: "role", Description: "Work helpdesk tickets"},
	} {
		ent, err := a.Identities.CreateEntitlement(ctx, dir.ID, e)
		if err != nil {
			return nil, fmt.Errorf("demo: entitlement %s: %w", e.Name, err)
		}
		ents[e.Name] = ent.ID
	}
	// Payroll Approvers is privileged: a requester's grant waits for an
	// admin's approval, and lasts a working day at most.
	privileged, admin := "privileged", identities.ApprovalAdmin
	if _, err := a.Identities.SetPolicy(ctx, ents["Payroll Approvers"], identities.PolicyInput{Sensitivity: &privileged, Approval: &admin}, actor); err != nil {
		return nil, fmt.Errorf("demo: policy of Payroll Approvers: %w", err)
	}
	// Finance's accounts exist from the start, so the demo tasks that grant
	// them access have accounts to work on. The run is queued now and done
	// by the workers as soon as the server starts.
	if _, err := a.Requests.Submit(ctx, requests.Request{Type: requests.CreateAccount, BeneficiaryType: requests.BeneficiaryWorkgroup,
		BeneficiaryID: finance.ID, ConnectorID: dir.ID, Entitlements: []string{ents["Wiki Editors"]},
		Justification: "Demo set-up: directory accounts for Finance", Priority: requests.Normal},
		requests.StartOpts{Trigger: requests.TriggerSubmission, Actor: actor}); err != nil {
		return nil, fmt.Errorf("demo: accounts for Finance: %w", err)
	}
	str := func(s string) *string { return &s }
	demoTasks := []tasks.Input{
		{Name: str("Onboard Alice"), Description: str("Create Alice's directory account with VPN access"),
			Request: &requests.Request{Type: requests.CreateAccount, BeneficiaryType: requests.BeneficiaryIdentity, BeneficiaryID: ids["alice"],
				ConnectorID: dir.ID, Entitlements: []string{ents["VPN Users"]}, Justification: "New hire", Priority: requests.High}},
		{Name: str("Finance reports access"), Description: str("Give the Finance workgroup the monthly reports"),
			Request: &requests.Request{Type: requests.AddEntitlements, BeneficiaryType: requests.BeneficiaryWorkgroup, BeneficiaryID: finance.ID,
				ConnectorID: dir.ID, Entitlements: []string{ents["Finance Reports"]}, Justification: "Month-end close", Priority: requests.Normal}},
		{Name: str("Nightly lock of Ivan"), Description: str("Lock the contractor account every night"),
			Request: &requests.Request{Type: requests.LockAccount, BeneficiaryType: requests.BeneficiaryIdentity, BeneficiaryID: ids["ivan"],
				ConnectorID: dir.ID, Justification: "Contractor works office hours only", Priority: requests.Low},
			Cron: str("0 22 * * *"), Timezone: str("UTC")},
	}
	for _, t := range demoTasks {
		if _, err := a.Tasks.Create(ctx, t, actor); err != nil {
			return nil, fmt.Errorf("demo: task %s: %w", *t.Name, err)
		}
	}
	creds := &DemoCredentials{AdminUser: "admin", AdminPassword: access.GeneratePassword(),
		RequesterUser: "alice", RequesterPassword: access.GeneratePassword()}
	if _, err := a.Access.CreateUser(ctx, access.UserInput{Username: "admin", Email: "admin@example.test", DisplayName: "Demo Admin",
		Password: creds.AdminPassword, Role: access.RoleAdmin}, actor); err != nil {
		return nil, fmt.Errorf("demo: user: %w", err)
	}
	if _, err := a.Access.CreateUser(ctx, access.UserInput{Username: "alice", Email: "alice@example.test", DisplayName: "Alice Martin",
		Password: creds.RequesterPassword, Role: access.RoleRequester}, actor); err != nil {
		return nil, fmt.Errorf("demo: user: %w", err)
	}
	client, secret, err := a.Access.CreateClient(ctx, "Demo scripts", access.AllScopes, actor)
	if err != nil {
		return nil, fmt.Errorf("demo: api client: %w", err)
	}
	creds.ClientID, creds.ClientSecret = client.ClientID, secret
	body := fmt.Sprintf("Portal admin:      %s / %s\nPortal requester:  %s / %s\nAPI client id:     %s\nAPI client secret: %s\n",
		creds.AdminUser, creds.AdminPassword, creds.RequesterUser, creds.RequesterPassword, creds.ClientID, creds.ClientSecret)
	if err := os.MkdirAll(a.Config.DataDir, 0o700); err != nil {
		return nil, err
	}
	if err := os.WriteFile(a.CredentialsFile(), []byte(body), 0o600); err != nil {
		return nil, fmt.Errorf("demo: write %s: %w", a.CredentialsFile(), err)
	}
	return creds, nil
}
