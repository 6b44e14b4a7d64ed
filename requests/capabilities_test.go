package requests_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/provisor/provisor/app/apptest"
	"github.com/provisor/provisor/connectors"
	"github.com/provisor/provisor/connectors/configured"
	"github.com/provisor/provisor/database/dbtest"
	"github.com/provisor/provisor/identities"
	"github.com/provisor/provisor/requests"
)

// A system that asks to wait (429 with Retry-After) is waited for: the job
// spends no attempt, however often it is asked, and the waits are counted
// on the job.
func TestRetryAfterWaitsWithoutSpendingAttempts(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect string) {
		t.Parallel()
		f := newFlaky()
		f.failures["throttled"] = 3
		b, rec, _ := flakyBundle(t, dialect, f, "--max-attempts", "1")
		who := b.Identity(t, "throttled")
		run := b.WaitSettled(t, b.Submit(t, requests.Request{Type: requests.LockAccount, BeneficiaryType: "identity",
			BeneficiaryID: who.ID, ConnectorID: rec.ID}).ID)
		j := run.Jobs[0]
		if run.Status != requests.InstanceCompleted || j.Attempts != 1 || j.RateLimitWaits != 3 {
			t.Fatalf("throttled job: %s, attempts %d, rate-limit waits %d", apptest.Describe(run), j.Attempts, j.RateLimitWaits)
		}
		var waited int
		for _, e := range j.Events {
			if strings.Contains(e.Message, "waiting") && strings.Contains(e.Message, "as the system asked") {
				waited++
			}
		}
		if waited != 3 || f.calls["throttled"] != 4 {
			t.Errorf("history shows %d waits, connector called %d times; want 3 and 4", waited, f.calls["throttled"])
		}
	})
}

// grantOnly can grant and revoke, and nothing else.
type grantOnly struct{ seen chan connectors.Account }

func (grantOnly) Kind(op connectors.Operation) string { return "GrantOnly." + string(op) }
func (g grantOnly) Grant(_ context.Context, a connectors.Account, _ connectors.Entitlement) (connectors.Result, error) {
	g.seen <- a
	return connectors.Result{Changed: true, RequestID: "req-42"}, nil
}
func (grantOnly) Revoke(context.Context, connectors.Account, connectors.Entitlement) (connectors.Result, error) {
	return connectors.Result{}, nil
}

// A request is accepted only for what its connector can do, and an
// operation gets the account's external id as the portal knows it.
func TestRequestsOnlyForWhatTheConnectorCanDo(t *testing.T) {
	t.Parallel()
	g := grantOnly{seen: make(chan connectors.Account, 1)}
	b := apptest.New(t, "sqlite", &apptest.Options{ConnectorTypes: []connectors.Type{{Name: "grantonly", Label: "Grant only",
		New: func(connectors.Config) (connectors.Connector, error) { return g, nil }}}})
	rec, err := b.Connectors.Create(b.Ctx, configured.Input{Name: "Grants", Type: "grantonly"})
	if err != nil {
		t.Fatal(err)
	}
	e, err := b.Identities.CreateEntitlement(b.Ctx, rec.ID, identities.EntitlementInput{Name: "G"})
	if err != nil {
		t.Fatal(err)
	}
	ann := b.Identity(t, "ann")
	_, opened, _ := b.Connectors.OpenByID(b.Ctx, rec.ID)
	if requests.Offers(opened, requests.CreateAccount) || !requests.Offers(opened, requests.AddEntitlements) {
		t.Fatalf("offers: capabilities %v", connectors.Capabilities(opened))
	}
	_, err = b.Requests.Submit(b.Ctx, requests.Request{Type: requests.LockAccount, BeneficiaryType: "identity", BeneficiaryID: ann.ID,
		ConnectorID: rec.ID, Justification: "x"}, requests.StartOpts{Trigger: requests.TriggerAPI, Actor: "t"})
	var v *requests.ValidationError
	if !errors.As(err, &v) || !strings.Contains(v.Error(), "type") || !strings.Contains(v.Error(), "cannot run lock_account") {
		t.Fatalf("lock on a connector without accounts: %v", err)
	}
	if err := b.Identities.ApplyTx(b.Ctx, b.DB.Gorm, identities.Change{Operation: connectors.OpCreateAccount, ConnectorID: rec.ID,
		IdentityID: ann.ID, Username: "ann", ExternalID: "obj-ann"}); err != nil {
		t.Fatal(err)
	}
	run := b.WaitSettled(t, b.Submit(t, requests.Request{Type: requests.AddEntitlements, BeneficiaryType: "identity", BeneficiaryID: ann.ID,
		ConnectorID: rec.ID, Entitlements: []string{e.ID}}).ID)
	if a := <-g.seen; a.ExternalID != "obj-ann" || a.Username != "ann" {
		t.Errorf("the grant got %+v, want the external id obj-ann", a)
	}
	if msg := run.Jobs[0].Message; !strings.Contains(msg, "request id req-42") {
		t.Errorf("job message %q does not name the system's request id", msg)
	}
}
