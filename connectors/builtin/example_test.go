package builtin_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/provisor/provisor/connectors"
	"github.com/provisor/provisor/connectors/builtin"
	"github.com/provisor/provisor/connectors/builtin/builtinstore"
	"github.com/provisor/provisor/connectors/configured"
	"github.com/provisor/provisor/connectors/secrets"
	"github.com/provisor/provisor/database"
)

// A connector job opens its connector through the store, which knows the
// types, and calls one operation. Operations are idempotent: one that
// finds the change already made succeeds with Changed false, so a job run
// twice does no harm. Errors say whether trying again can help.
func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "provisor-example-")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	db, err := database.Open(ctx, "", filepath.Join(dir, "provisor.db"), nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer db.Close()
	if err := db.Migrate(ctx); err != nil {
		fmt.Println(err)
		return
	}
	sealer, _ := secrets.NewSealer("an example key of at least thirty-two characters")
	store := configured.NewStore(db.Gorm, connectors.NewRegistry(builtin.Type(builtinstore.New(db.Gorm, db.WriteRelaxed))), sealer, nil)
	rec, err := store.Create(ctx, configured.Input{Name: "Corp Dir", Type: builtin.TypeName})
	if err != nil {
		fmt.Println(err)
		return
	}
	_, c, err := store.OpenByID(ctx, rec.ID)
	if err != nil {
		fmt.Println(err)
		return
	}
	vpn := connectors.Entitlement{ExternalID: "VPN", Name: "VPN"}
	if err := c.(*builtin.Directory).CreateGroup(ctx, vpn, "remote access"); err != nil {
		fmt.Println(err)
		return
	}

	alice := connectors.Account{Username: "alice", DisplayName: "Alice Doe", Email: "alice@example.test"}
	show := func(op string, res connectors.Result, err error) {
		if err != nil {
			fmt.Printf("%s: %v (permanent: %v)\n", op, err, connectors.IsPermanent(err))
			return
		}
		fmt.Printf("%s: changed %v\n", op, res.Changed)
	}
	// What a type can do are small interfaces; Do calls the one an
	// operation needs, and refuses what the connector cannot do.
	fmt.Println("accounts:", connectors.Supports(c, connectors.OpCreateAccount), "entitlements:", connectors.Supports(c, connectors.OpGrant))
	res, err := connectors.Do(ctx, c, connectors.OpCreateAccount, alice, connectors.Entitlement{})
	show(c.Kind(connectors.OpCreateAccount), res, err)
	res, err = connectors.Do(ctx, c, connectors.OpCreateAccount, alice, connectors.Entitlement{})
	show(c.Kind(connectors.OpCreateAccount)+" again", res, err)
	res, err = connectors.Do(ctx, c, connectors.OpGrant, alice, vpn)
	show(c.Kind(connectors.OpGrant), res, err)
	res, err = connectors.Do(ctx, c, connectors.OpGrant, alice, connectors.Entitlement{ExternalID: "Payroll"})
	show(c.Kind(connectors.OpGrant)+" Payroll", res, err)
	fmt.Println(c.(connectors.HealthChecker).Check(ctx).Message)
	// Output:
	// accounts: true entitlements: true
	// Directory.CreateAccount: changed true
	// Directory.CreateAccount again: changed false
	// Directory.AddToGroup: changed true
	// Directory.AddToGroup Payroll: no such group: Payroll (permanent: true)
	// 1 accounts
}
