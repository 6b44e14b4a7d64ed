package web_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/provisor/provisor/identities"
	"github.com/provisor/provisor/requests"
	"github.com/provisor/provisor/tasks"
)

// A task's page previews its run per member, at desktop and phone width;
// once triggered, the run page shows the jobs that changed nothing with
// their own badge and counts them apart.
func TestPreviewInChromium(t *testing.T) {
	w := setup(t)
	bob := w.Identity(t, "bob")
	alice, err := w.Identities.GetIdentity(w.Ctx, w.alice)
	if err != nil {
		t.Fatal(err)
	}
	team := w.Workgroup(t, "Team", alice, bob)
	ents, _, err := w.Identities.ListEntitlements(w.Ctx, w.dir, identities.ListOpts{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, e := range ents {
		ids = append(ids, e.ID) // VPN, which alice has, and Wiki
	}
	name := "Team onboarding"
	task, err := w.Tasks.Create(w.Ctx, tasks.Input{Name: &name, Request: &requests.Request{Type: requests.CreateAccount,
		BeneficiaryType: "workgroup", BeneficiaryID: team.ID, ConnectorID: w.dir, Entitlements: ids, Justification: "project", Duration: "30d"}}, "admin")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = w.HTTP.Listener(ln) }()
	base := "http://" + ln.Addr().String()
	ctx, cancel := newChrome(t)
	defer cancel()
	var preview, run string
	err = chromedp.Run(ctx,
		signIn(base, "admin", w.adminPW),
		chromedp.EmulateViewport(1280, 900),
		chromedp.Navigate(base+"/tasks/"+task.ID),
		chromedp.WaitVisible(`.run-preview table`, chromedp.ByQuery),
		chromedp.Text(`.run-preview`, &preview, chromedp.ByQuery),
		shot(t, "30-task-preview-1280"),
		chromedp.EmulateViewport(390, 844),
		chromedp.Navigate(base+"/tasks/"+task.ID),
		chromedp.WaitVisible(`.run-preview`, chromedp.ByQuery),
		shot(t, "31-task-preview-390"),
		part(t, ".run-preview", "31-task-preview-390-part"),
	)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"9 jobs on Corp Directory", "7 will change", "2 already so, no change", "alice already is a member of VPN", "creates account bob",
		"removes alice from Wiki", "deletes account bob"} {
		if !strings.Contains(preview, want) {
			t.Errorf("preview lacks %q:\n%s", want, preview)
		}
	}
	if strings.Contains(preview, "deletes account alice") {
		t.Errorf("the end of the access deletes alice's account, which was there before:\n%s", preview)
	}
	inst, err := w.Tasks.Trigger(w.Ctx, task.ID, requests.TriggerManual, "admin")
	if err != nil {
		t.Fatal(err)
	}
	w.WaitSettled(t, inst.ID)
	err = chromedp.Run(ctx,
		chromedp.EmulateViewport(1280, 900),
		chromedp.Navigate(base+"/requests/"+inst.ID),
		chromedp.WaitVisible(`.job-summary`, chromedp.ByQuery),
		chromedp.Text(`#run`, &run, chromedp.ByQuery),
		shot(t, "32-run-no-change-1280"),
		chromedp.EmulateViewport(390, 844),
		chromedp.Navigate(base+"/requests/"+inst.ID),
		chromedp.WaitVisible(`.job-summary`, chromedp.ByQuery),
		shot(t, "33-run-no-change-390"),
		part(t, "#run", "33-run-no-change-390-part"),
	)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(run, "Completed · no change") != 2 || !strings.Contains(run, "2 no change") {
		t.Errorf("run page:\n%s", run)
	}
}

// part is a screenshot of the element sel alone.
func part(t *testing.T, sel, name string) chromedp.Action {
	return chromedp.ActionFunc(func(ctx context.Context) error {
		var png []byte
		if err := chromedp.Screenshot(sel, &png, chromedp.ByQuery).Do(ctx); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(artifacts(t), name+".png"), png, 0o644)
	})
}
