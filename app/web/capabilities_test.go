package web_test

import (
	"strings"
	"testing"

	"github.com/provisor/provisor/app/apptest"
	"github.com/provisor/provisor/connectors/configured"
	"github.com/provisor/provisor/connectors/entra"
	"github.com/provisor/provisor/connectors/entra/graphtest"
	"github.com/provisor/provisor/database"
	"github.com/provisor/provisor/identities"
)

// A connector's page lists what it can do, from its capability
// interfaces, and offers the entitlement kinds of its type; entitlement
// pages name the kind.
func TestConnectorPageCapabilitiesAndKinds(t *testing.T) {
	t.Parallel()
	b := apptest.New(t, database.SQLite, &apptest.Options{NoStart: true})
	adm := adminBrowser(t, b)
	dir, _ := b.Directory(t, "Dir", "VPN")
	page := adm.do("GET", "/connectors/"+dir.ID, nil)
	for _, c := range []string{"accounts", "entitlements", "batches", "create-groups"} {
		if !strings.Contains(page.body, `data-capability="`+c+`"`) {
			t.Errorf("the built-in directory's page lacks %s", c)
		}
	}
	if strings.Contains(page.body, `data-capability="sign-in"`) || strings.Contains(page.body, `value="directory_role"`) {
		t.Errorf("the built-in directory's page offers sign-in or directory roles")
	}

	g := graphtest.New(t, nil)
	rec, err := b.Connectors.Create(b.Ctx, configured.Input{Name: "SLB Entra", Type: entra.TypeName, Settings: g.Settings(),
		Secrets: map[string]string{entra.SecretClientSecret: graphtest.ClientSecret}})
	if err != nil {
		t.Fatal(err)
	}
	page = adm.do("GET", "/connectors/"+rec.ID, nil)
	for _, c := range []string{"accounts", "entitlements", "batches", "import", "health"} {
		if !strings.Contains(page.body, `data-capability="`+c+`"`) {
			t.Errorf("the Entra page lacks %s", c)
		}
	}
	if strings.Contains(page.body, `data-capability="sign-in"`) {
		t.Errorf("the Entra page offers sign-in")
	}
	for _, k := range []string{`<option value="group">Group</option>`, `<option value="directory_role">Directory role</option>`, `<option value="app_role">App role</option>`} {
		if !strings.Contains(page.body, k) {
			t.Errorf("the Entra page lacks the kind %s", k)
		}
	}
	e, err := b.Identities.CreateEntitlement(b.Ctx, rec.ID, identities.EntitlementInput{Name: "Helpdesk Administrator",
		ExternalID: entra.DirectoryRole("729827e3-9c14-49f7-bb1b-9608f156bbb8"), Kind: identities.KindDirectoryRole})
	if err != nil {
		t.Fatal(err)
	}
	if p := adm.do("GET", "/entitlements/"+e.ID, nil); !strings.Contains(p.body, "<dd>Directory role</dd>") {
		t.Errorf("the entitlement page does not name the kind: %s", p.body)
	}
	if _, err := b.Identities.CreateEntitlement(b.Ctx, rec.ID, identities.EntitlementInput{Name: "X", Kind: "bogus"}); err == nil {
		t.Errorf("kind bogus accepted")
	}
}
