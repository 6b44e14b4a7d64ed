package web_test

import (
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/provisor/provisor/app/apptest"
	"github.com/provisor/provisor/connectors/scim/scimtest"
	"github.com/provisor/provisor/database"
)

// The SCIM connector has a settings form with its errors next to their
// fields; its token is stored and never shown back, and Test connection
// says what the target supports.
func TestSCIMConnectorForm(t *testing.T) {
	t.Parallel()
	b := apptest.New(t, database.SQLite, &apptest.Options{NoStart: true})
	adm := adminBrowser(t, b)
	page := adm.get("/connectors/new?type=scim")
	for _, want := range []string{`name="setting.base_url"`, "SCIM base URL", `name="setting.patch_op_case"`, `name="setting.string_booleans"`,
		`name="setting.member_removal"`, `name="setting.patch_response"`} {
		if !strings.Contains(page.body, want) {
			t.Errorf("the SCIM form lacks %q", want)
		}
	}
	srv := scimtest.New(t, nil)
	const token = scimtest.Token
	form := url.Values{"type": {"scim"}, "name": {"Acme SCIM"}, "enabled": {"on"}, "has_fields": {"1"}, "settings_shown": {"{}"}, "settings": {"{}"},
		"setting.base_url": {"http://acme.example.com/scim"}, "setting.patch_op_case": {"shouting"},
		"secret_name": {"token"}, "secret_value": {token}}
	bad := adm.post("/connectors/new", form)
	if bad.status != 422 {
		t.Fatalf("bad settings: %d", bad.status)
	}
	for field, msg := range map[string]string{"base_url": "must use https", "patch_op_case": "must be lower or capitalized"} {
		if !regexp.MustCompile(`(?s)id="setting-` + field + `".{0,500}?class="field-error" role="alert">` + msg).MatchString(bad.body) {
			t.Errorf("the error of %s is not next to its field", field)
		}
	}
	if strings.Contains(bad.body, token) {
		t.Errorf("the form shows the token back")
	}
	form.Set("setting.base_url", srv.URL)
	form.Set("setting.patch_op_case", "capitalized")
	ok := adm.post("/connectors/new", form)
	if ok.status != 303 {
		t.Fatalf("good settings: %d %s", ok.status, ok.body)
	}
	id := strings.TrimPrefix(ok.header.Get("Location"), "/connectors/")
	rec, err := b.Connectors.Get(b.Ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(rec.Settings, token) {
		t.Errorf("the token is in the settings: %s", rec.Settings)
	}
	shown := adm.get("/connectors/" + id)
	if strings.Contains(shown.body, token) {
		t.Errorf("the connector page shows the token")
	}
	r := adm.do("POST", "/connectors/"+id+"/check", nil, "HX-Request", "true", "X-CSRF-Token", adm.csrf)
	if r.status != 200 || !strings.Contains(r.body, "patch: yes, filter: yes, bulk: no, etag: no") {
		t.Fatalf("check: %d %s", r.status, r.body)
	}
}
