package web_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/provisor/provisor/access"
	"github.com/provisor/provisor/app/apptest"
	"github.com/provisor/provisor/connectors"
	"github.com/provisor/provisor/imports"
	"github.com/provisor/provisor/requests"
)

// TestImportProgressBar: while an import runs, the connector's page shows
// the objects it read of as many as the last applied cycle read, with an
// estimated end.
func TestImportProgressBar(t *testing.T) {
	t.Parallel()
	b := apptest.New(t, "sqlite", nil)
	pw := access.GeneratePassword()
	if _, err := b.Access.CreateUser(b.Ctx, access.UserInput{Username: "admin", Email: "admin@example.test", Password: pw, Role: access.RoleAdmin}, "t"); err != nil {
		t.Fatal(err)
	}
	dir, _ := b.Directory(t, "Corp Directory", "VPN", "Wiki")
	// The built-in directory takes no imports: two jobs that ran are
	// made the connector's import cycles, a first one applied (it read
	// 3 accounts and a group) and a second one running for a minute,
	// having read 1 object.
	var jobs []requests.Job
	for _, u := range []string{"alice", "bob"} {
		p := b.Identity(t, u)
		inst := b.WaitSettled(t, b.Submit(t, requests.Request{Type: requests.CreateAccount, BeneficiaryType: requests.BeneficiaryIdentity,
			BeneficiaryID: p.ID, ConnectorID: dir.ID}).ID)
		jobs = append(jobs, inst.Jobs[0])
	}
	now := time.Now().UTC()
	set := func(j requests.Job, fields map[string]any) {
		t.Helper()
		fields["operation"] = string(connectors.OpImport)
		if err := b.DB.Gorm.Model(&requests.Job{}).Where("id = ?", j.ID).Updates(fields).Error; err != nil {
			t.Fatal(err)
		}
	}
	set(jobs[0], map[string]any{"status": requests.JobCompleted, "started_at": now.Add(-time.Hour), "ended_at": now.Add(-time.Hour + 2*time.Minute)})
	applied := now.Add(-time.Hour + 2*time.Minute)
	if err := b.DB.Gorm.Create(&imports.Import{ID: uuid.NewString(), ConnectorID: dir.ID, ConnectorName: "Corp Directory", Mode: "full",
		Status: imports.ImportApplied, CountsJSON: `{"accounts_read":3,"groups_read":1}`, ChangesJSON: "[]", JobID: &jobs[0].ID,
		CreatedAt: applied, AppliedAt: &applied}).Error; err != nil {
		t.Fatal(err)
	}
	set(jobs[1], map[string]any{"status": requests.JobRunning, "started_at": now.Add(-time.Minute), "ended_at": nil})
	b.Requests.NoteImportProgress(b.Ctx, dir.ID, 1)

	adm := newBrowser(t, b)
	adm.login("admin", pw)
	r := adm.get("/connectors/" + dir.ID)
	if r.status != 200 {
		t.Fatalf("connector page: %d", r.status)
	}
	for _, want := range []string{`<progress max="4" value="1"`, "1 of about 4 objects read", "estimated end"} {
		if !strings.Contains(r.body, want) {
			t.Errorf("the page lacks %q", want)
		}
	}

	// The API's status says the same.
	client, secret, err := b.Access.CreateClient(b.Ctx, "status reader", []string{"read"}, "t")
	if err != nil {
		t.Fatal(err)
	}
	call := func(req *http.Request, out any) {
		t.Helper()
		res, err := b.HTTP.Test(req, 10000)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		if res.StatusCode != 200 || json.Unmarshal(body, out) != nil {
			t.Fatalf("%s %s: %d %s", req.Method, req.URL.Path, res.StatusCode, body)
		}
	}
	req := httptest.NewRequest("POST", "/api/v1/token", strings.NewReader(url.Values{"grant_type": {"client_credentials"},
		"client_id": {client.ClientID}, "client_secret": {secret}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	call(req, &tok)
	req = httptest.NewRequest("GET", "/api/v1/connectors/"+dir.ID+"/status", nil)
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	var st struct {
		Progress *requests.ImportProgress `json:"import_progress"`
	}
	call(req, &st)
	// Read 1 of 4 in a minute: done in about 4 minutes from the start.
	if p := st.Progress; p == nil || p.Done != 1 || p.Total != 4 || p.Percent != 25 || p.EstimatedEnd == nil ||
		p.EstimatedEnd.Sub(now.Add(3*time.Minute)).Abs() > 10*time.Second {
		t.Errorf("import progress in the API: %+v", p)
	}
}
