package web_test

import (
	"net/url"
	"strings"
	"testing"

	"github.com/provisor/provisor/audit"
	"github.com/provisor/provisor/identities"
)

// fieldError reports whether body shows msg as a field's error.
func fieldError(body, msg string) bool {
	return strings.Contains(body, `<p class="field-error" role="alert">`+msg)
}

// An admin sets and removes an identity's manager on its page; the page
// shows the manager, where it came from, and the direct reports.
func TestIdentityManagerForm(t *testing.T) {
	t.Parallel()
	w := setup(t)
	b := w.Bundle
	carol := b.Identity(t, "carol")
	adm := newBrowser(t, b)
	adm.login("admin", w.adminPW)
	req := newBrowser(t, b)
	req.login("rita", w.requesterPW)

	// alice reports to rita (set by hand in setup).
	page := adm.get("/identities/" + w.alice)
	if page.status != 200 || !strings.Contains(page.body, `<a href="/identities/`+w.rita+`">rita</a>`) || !strings.Contains(page.body, "set by hand") ||
		!strings.Contains(page.body, `action="/identities/`+w.alice+`/manager"`) || !strings.Contains(page.body, "Remove manager") {
		t.Errorf("alice's page: %d %s", page.status, page.body)
	}
	if page := adm.get("/identities/" + w.rita); !strings.Contains(page.body, "Direct reports (1)") || !strings.Contains(page.body, `<a href="/identities/`+w.alice+`">alice</a>`) {
		t.Errorf("rita's page does not list alice as a report: %s", page.body)
	}
	// The picker offers one identity.
	if r := fragment(adm, "/lookup/identities?name=manager_id&pick=one&q=ri"); !strings.Contains(r.body, `type="radio" name="manager_id" value="`+w.rita+`"`) {
		t.Errorf("one-pick lookup: %s", r.body)
	}

	// Set.
	if r := adm.post("/identities/"+carol.ID+"/manager", url.Values{"action": {"set"}, "manager_id": {w.rita}}); r.status != 303 ||
		r.header.Get("Location") != "/identities/"+carol.ID {
		t.Fatalf("set carol's manager: %d %s", r.status, r.body)
	}
	if got, _ := b.Identities.GetIdentity(b.Ctx, carol.ID); got.ManagerID == nil || *got.ManagerID != w.rita || got.ManagerSourceConnectorID != nil {
		t.Errorf("carol after the form: %+v", got)
	}
	if page := adm.get("/identities/" + carol.ID); !strings.Contains(page.body, "Manager of carol set.") || !strings.Contains(page.body, "set by hand") {
		t.Errorf("carol's page after setting: %s", page.body)
	}
	events, _, _ := audit.List(b.Ctx, b.DB.Gorm, audit.Filter{Action: "identity.manager", Actor: "admin"})
	if len(events) != 1 || events[0].TargetID != carol.ID || events[0].DetailsJSON["manager_id"] != w.rita {
		t.Errorf("audit: %+v", events)
	}

	// Refused, with the reason next to the field, and nothing changed.
	for _, c := range []struct{ name, managerID, msg string }{
		{"unknown id", "00000000-0000-4000-8000-000000000000", "no identity with id 00000000-0000-4000-8000-000000000000"},
		{"not an id", "rita", "no identity with id rita"},
		{"self", carol.ID, "an identity is not its own manager"},
		{"none chosen", "", "choose the manager among the identities found"},
	} {
		r := adm.post("/identities/"+carol.ID+"/manager", url.Values{"action": {"set"}, "manager_id": {c.managerID}})
		if r.status != 422 || !fieldError(r.body, c.msg) || !strings.Contains(r.body, `id="manager-q"`) {
			t.Errorf("%s: %d, want 422 with %q: %s", c.name, r.status, c.msg, r.body)
		}
	}
	if got, _ := b.Identities.GetIdentity(b.Ctx, carol.ID); got.ManagerID == nil || *got.ManagerID != w.rita {
		t.Errorf("carol after refusals: %+v", got)
	}

	// A requester is refused, and so is a form without the CSRF token.
	if r := req.post("/identities/"+carol.ID+"/manager", url.Values{"action": {"clear"}}); r.status != 403 {
		t.Errorf("requester: %d", r.status)
	}
	if r := adm.do("POST", "/identities/"+carol.ID+"/manager", url.Values{"action": {"clear"}}); r.status != 403 {
		t.Errorf("without CSRF token: %d", r.status)
	}
	if got, _ := b.Identities.GetIdentity(b.Ctx, carol.ID); got.ManagerID == nil {
		t.Error("carol's manager removed by a refused form")
	}
	if r := adm.post("/identities/00000000-0000-4000-8000-000000000000/manager", url.Values{"action": {"set"}, "manager_id": {w.rita}}); r.status != 404 {
		t.Errorf("unknown identity: %d", r.status)
	}

	// Remove.
	if r := adm.post("/identities/"+carol.ID+"/manager", url.Values{"action": {"clear"}, "manager_id": {w.rita}}); r.status != 303 {
		t.Fatalf("clear: %d %s", r.status, r.body)
	}
	if got, _ := b.Identities.GetIdentity(b.Ctx, carol.ID); got.ManagerID != nil {
		t.Errorf("carol after clear: %+v", got)
	}
	if page := adm.get("/identities/" + carol.ID); !strings.Contains(page.body, "Manager of carol removed.") || strings.Contains(page.body, "Remove manager") {
		t.Errorf("carol's page after clear: %s", page.body)
	}

	// A manager an import set says which directory it came from.
	if err := b.DB.Gorm.Model(&identities.Identity{}).Where("id = ?", w.alice).Update("manager_source_connector_id", w.dir).Error; err != nil {
		t.Fatal(err)
	}
	if page := adm.get("/identities/" + w.alice); !strings.Contains(page.body, "from the directory Corp Directory") {
		t.Errorf("alice's page with a directory manager: %s", page.body)
	}
}

// An admin sets and removes a workgroup's owner on its page.
func TestWorkgroupOwnerForm(t *testing.T) {
	t.Parallel()
	w := setup(t)
	b := w.Bundle
	carol := b.Identity(t, "carol")
	wg := b.Workgroup(t, "Finance", carol)
	adm := newBrowser(t, b)
	adm.login("admin", w.adminPW)
	req := newBrowser(t, b)
	req.login("rita", w.requesterPW)
	path := "/workgroups/" + wg.ID

	if page := adm.get(path); page.status != 200 || !strings.Contains(page.body, `action="`+path+`/owner"`) || strings.Contains(page.body, "Remove owner") {
		t.Errorf("workgroup page: %d %s", page.status, page.body)
	}
	if r := adm.post(path+"/owner", url.Values{"action": {"set"}, "owner_id": {w.rita}}); r.status != 303 || r.header.Get("Location") != path {
		t.Fatalf("set owner: %d %s", r.status, r.body)
	}
	if got, _ := b.Identities.GetWorkgroup(b.Ctx, wg.ID); got.OwnerID == nil || *got.OwnerID != w.rita {
		t.Errorf("owner after the form: %+v", got)
	}
	if page := adm.get(path); !strings.Contains(page.body, `<a href="/identities/`+w.rita+`">rita</a>`) || !strings.Contains(page.body, "Owner of Finance set.") {
		t.Errorf("workgroup page after setting: %s", page.body)
	}
	events, _, _ := audit.List(b.Ctx, b.DB.Gorm, audit.Filter{Action: "workgroup.owner", Actor: "admin"})
	if len(events) != 1 || events[0].TargetID != wg.ID {
		t.Errorf("audit: %+v", events)
	}
	for _, c := range []struct{ name, ownerID, msg string }{
		{"unknown id", "00000000-0000-4000-8000-000000000000", "no identity with id 00000000-0000-4000-8000-000000000000"},
		{"none chosen", "", "choose the owner among the identities found"},
	} {
		r := adm.post(path+"/owner", url.Values{"action": {"set"}, "owner_id": {c.ownerID}})
		if r.status != 422 || !fieldError(r.body, c.msg) {
			t.Errorf("%s: %d, want 422 with %q: %s", c.name, r.status, c.msg, r.body)
		}
	}
	if r := req.post(path+"/owner", url.Values{"action": {"clear"}}); r.status != 403 {
		t.Errorf("requester: %d", r.status)
	}
	if got, _ := b.Identities.GetWorkgroup(b.Ctx, wg.ID); got.OwnerID == nil || *got.OwnerID != w.rita {
		t.Errorf("owner after refusals: %+v", got)
	}
	if r := adm.post("/workgroups/00000000-0000-4000-8000-000000000000/owner", url.Values{"action": {"set"}, "owner_id": {w.rita}}); r.status != 404 {
		t.Errorf("unknown workgroup: %d", r.status)
	}
	if r := adm.post(path+"/owner", url.Values{"action": {"clear"}}); r.status != 303 {
		t.Fatalf("clear: %d", r.status)
	}
	if got, _ := b.Identities.GetWorkgroup(b.Ctx, wg.ID); got.OwnerID != nil {
		t.Errorf("owner after clear: %+v", got)
	}
}
