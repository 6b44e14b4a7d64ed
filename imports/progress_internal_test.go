package imports

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/provisor/provisor/connectors"
)

// TestCollectorReportsProgressInObjects: the collector counts the
// accounts and groups it receives and says how many at most once per
// progressEvery, whatever the pace of the connector.
func TestCollectorReportsProgressInObjects(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := newCollector()
	var got []int
	c.progress = func(_ context.Context, read int) { got = append(got, read) }
	c.lastProgress = time.Now()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(c.Account(ctx, connectors.ImportedAccount{Account: connectors.Account{Username: "alice"}}))
	must(c.Account(ctx, connectors.ImportedAccount{Account: connectors.Account{Username: ""}})) // not an account: not counted
	if len(got) != 0 {
		t.Fatalf("reported before progressEvery passed: %v", got)
	}
	c.lastProgress = time.Now().Add(-progressEvery) // as if a second passed
	must(c.Entitlement(ctx, connectors.Entitlement{ExternalID: "cn=staff"}))
	must(c.Account(ctx, connectors.ImportedAccount{Account: connectors.Account{Username: "bob"}}))
	c.lastProgress = time.Now().Add(-progressEvery)
	must(c.Account(ctx, connectors.ImportedAccount{Account: connectors.Account{Username: "carol"}}))
	if want := []int{2, 4}; !reflect.DeepEqual(got, want) {
		t.Errorf("progress reported %v, want %v", got, want)
	}
}
