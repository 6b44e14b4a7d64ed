package web_test

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/provisor/provisor/internal/testwait"
)

// chromium finds the browser: CHROMIUM, or Debian's chromium (installed
// by .ci/run). A missing browser fails the test: it is never skipped.
func chromium(t *testing.T) string {
	t.Helper()
	for _, p := range []string{os.Getenv("CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"} {
		if p == "" {
			continue
		}
		if _, err := exec.LookPath(p); err == nil {
			return p
		}
	}
	t.Fatal("headless Chromium is needed for the end-to-end tests: apt-get install chromium (or set CHROMIUM)")
	return ""
}

// artifacts is where screenshots go: PROVISOR_TEST_ARTIFACTS, or
// test-artifacts at the top of the repository (not committed).
func artifacts(t *testing.T) string {
	dir := os.Getenv("PROVISOR_TEST_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join("..", "..", "test-artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func newChrome(t *testing.T) (context.Context, context.CancelFunc) {
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium(t)),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1440, 900),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	// The bound only stops a walk that hangs: a loaded 2-core machine
	// takes minutes for the longest walk, a passing one never waits for it.
	ctx, cancelTimeout := context.WithTimeout(ctx, 8*time.Minute)
	return ctx, func() { cancelTimeout(); cancelCtx(); cancelAlloc() }
}

func shot(t *testing.T, name string) chromedp.Action {
	return chromedp.ActionFunc(func(ctx context.Context) error {
		var png []byte
		if err := chromedp.FullScreenshot(&png, 100).Do(ctx); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(artifacts(t), name+".png"), png, 0o644)
	})
}

func signIn(base, user, password string) chromedp.Tasks {
	return chromedp.Tasks{
		chromedp.Navigate(base + "/login"),
		chromedp.WaitVisible(`#username`, chromedp.ByQuery),
		chromedp.SendKeys(`#username`, user, chromedp.ByQuery),
		chromedp.SendKeys(`#password`, password, chromedp.ByQuery),
		chromedp.Click(`form button[type=submit]`, chromedp.ByQuery),
		chromedp.WaitVisible(`header.top`, chromedp.ByQuery),
	}
}

// A requester completes the wizard and clicks Create Task; an admin
// triggers it on the grid, sees Triggered then Idle, opens Connector Jobs,
// filters Completed, opens the dialog and sees the jobs.
func TestEndToEndInChromium(t *testing.T) {
	w := setup(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = w.HTTP.Listener(ln) }()
	base := "http://" + ln.Addr().String()

	// The requester.
	ctx, cancel := newChrome(t)
	defer cancel()
	var taskURL, review string
	err = chromedp.Run(ctx,
		signIn(base, "rita", w.requesterPW),
		chromedp.Click(`a[href="/requests/new"]`, chromedp.ByQuery),
		chromedp.WaitVisible(`button[value="create_account"]`, chromedp.ByQuery),
		shot(t, "01-wizard-types"),
		chromedp.Click(`button[value="create_account"]`, chromedp.ByQuery),
		// Beneficiary: search as you type, pick herself (a requester finds
		// only whom she may ask for).
		chromedp.WaitVisible(`#q`, chromedp.ByQuery),
		chromedp.SendKeys(`#q`, "rit", chromedp.ByQuery),
		chromedp.WaitVisible(`input[name=beneficiary_id][value="`+w.rita+`"]`, chromedp.ByQuery),
		chromedp.Click(`input[name=beneficiary_id][value="`+w.rita+`"]`, chromedp.ByQuery),
		chromedp.Click(`button[value=next].primary`, chromedp.ByQuery),
		// Connector.
		chromedp.WaitVisible(`input[name=connector_id]`, chromedp.ByQuery),
		chromedp.Click(`input[name=connector_id][value="`+w.dir+`"]`, chromedp.ByQuery),
		chromedp.Click(`button[value=next].primary`, chromedp.ByQuery),
		// Access: the VPN group.
		chromedp.WaitVisible(`input[name=entitlements][value="`+w.vpn+`"]`, chromedp.ByQuery),
		chromedp.Click(`input[name=entitlements][value="`+w.vpn+`"]`, chromedp.ByQuery),
		chromedp.Click(`button[value=next].primary`, chromedp.ByQuery),
		// Details: Next without a justification shows the problem next to it.
		chromedp.WaitVisible(`#justification`, chromedp.ByQuery),
		chromedp.Click(`button[value=next].primary`, chromedp.ByQuery),
		chromedp.WaitVisible(`#justification-error .field-error`, chromedp.ByQuery),
		chromedp.SendKeys(`#justification`, "Joins the VPN pilot", chromedp.ByQuery),
		chromedp.SetValue(`#priority`, "high", chromedp.ByQuery),
		chromedp.Click(`button[value=next].primary`, chromedp.ByQuery),
		// Review and Submit: Back keeps what was typed.
		chromedp.WaitVisible(`button[value=task]`, chromedp.ByQuery),
		chromedp.Click(`button[value=back]`, chromedp.ByQuery),
		chromedp.WaitVisible(`#justification`, chromedp.ByQuery),
		chromedp.Click(`button[value=next].primary`, chromedp.ByQuery),
		chromedp.WaitVisible(`button[value=task]`, chromedp.ByQuery),
		chromedp.Text(`main`, &review, chromedp.ByQuery),
		shot(t, "02-wizard-review"),
		chromedp.Click(`button[value=task]`, chromedp.ByQuery),
		chromedp.WaitVisible(`//h2[text()="Notification settings"]`),
		chromedp.Location(&taskURL),
		shot(t, "03-task-details"),
	)
	if err != nil {
		t.Fatalf("requester: %v", err)
	}
	for _, want := range []string{"rita", "Corp Directory", "VPN", "Joins the VPN pilot", "High"} {
		if !strings.Contains(review, want) {
			t.Errorf("review lacks %q", want)
		}
	}
	taskID := taskURL[strings.LastIndex(taskURL, "/")+1:]
	cancel()

	// The admin.
	ctx, cancel = newChrome(t)
	defer cancel()
	row := `#task-` + taskID
	var dialogText, dialogOpen string
	err = chromedp.Run(ctx,
		signIn(base, "admin", w.adminPW),
		chromedp.Navigate(base+"/tasks"),
		chromedp.WaitVisible(row, chromedp.ByQuery),
		chromedp.Click(row+` button`, chromedp.ByQuery),
		chromedp.WaitVisible(row+` .status .badge-triggered`, chromedp.ByQuery),
		shot(t, "04-tasks-triggered"),
		chromedp.WaitVisible(row+` .status .badge-idle`, chromedp.ByQuery),
		chromedp.WaitVisible(row+` .badge-completed`, chromedp.ByQuery),
		shot(t, "05-tasks-idle"),
		chromedp.Click(`a[href="/jobs"]`, chromedp.ByQuery),
		chromedp.WaitVisible(`select#size`, chromedp.ByQuery),
		// Choosing a status applies the filter at once, and puts it in the URL.
		chromedp.SetValue(`#status`, "completed", chromedp.ByQuery),
		chromedp.ActionFunc(func(ctx context.Context) error {
			var url string
			var failed error
			err := testwait.Poll(ctx, 10*time.Second, func() error {
				if failed = chromedp.Location(&url).Do(ctx); failed != nil {
					return nil
				}
				if strings.Contains(url, "status=completed") {
					return nil
				}
				var fired bool
				_ = chromedp.Evaluate(`(function(){var s=document.getElementById("status"); if(!s) return false; s.dispatchEvent(new Event("change",{bubbles:true})); return true})()`, &fired).Do(ctx)
				return errors.New("the status filter did not apply: " + url)
			})
			if failed != nil {
				return failed
			}
			return err
		}),
		chromedp.WaitVisible(`//*[contains(@class,"counters") and contains(., "activation group")]`),
		chromedp.WaitVisible(`tr[data-open] td`, chromedp.ByQuery),
		shot(t, "06-jobs-completed"),
		chromedp.Click(`tr[data-open] td[data-label=Kind]`, chromedp.ByQuery),
		chromedp.WaitVisible(`#job-dialog .job-card`, chromedp.ByQuery),
		chromedp.Text(`#job-dialog`, &dialogText, chromedp.ByQuery),
		shot(t, "07-jobs-dialog"),
		chromedp.KeyEvent(kb.Escape),
		chromedp.WaitNotVisible(`#job-dialog`, chromedp.ByQuery),
		chromedp.Evaluate(`String(document.getElementById("job-dialog").open)`, &dialogOpen),
		// A narrow phone screen.
		chromedp.EmulateViewport(360, 740, chromedp.EmulateScale(1)),
		chromedp.Navigate(base+"/jobs"),
		chromedp.WaitVisible(`tr[data-open] td`, chromedp.ByQuery),
		shot(t, "08-jobs-360px"),
		chromedp.ActionFunc(func(ctx context.Context) error { return emulation.ClearDeviceMetricsOverride().Do(ctx) }),
	)
	if err != nil {
		t.Fatalf("admin: %v", err)
	}
	for _, want := range []string{"Activation Jobs", "Directory.CreateAccount", "Directory.AddToGroup", "Completed", "Corp Directory", "High"} {
		if !strings.Contains(dialogText, want) {
			t.Errorf("dialog lacks %q: %s", want, dialogText)
		}
	}
	if dialogOpen != "false" {
		t.Error("Escape did not close the dialog")
	}
	var loc string
	if err := chromedp.Run(ctx, chromedp.Location(&loc)); err == nil && !strings.Contains(loc, "/jobs") {
		t.Errorf("location %s", loc)
	}

	// The provisioning log of the run: searched by the username in another
	// case, an entry's tabs, and the timeline on the person's page.
	var logText, stepsText, timeline string
	err = chromedp.Run(ctx,
		chromedp.Click(`a[href="/provisioning-logs"]`, chromedp.ByQuery),
		chromedp.WaitVisible(`#provlogs`, chromedp.ByQuery),
		chromedp.SendKeys(`#q`, "RITA", chromedp.ByQuery),
		chromedp.Submit(`#q`, chromedp.ByQuery),
		chromedp.WaitVisible(`#provlogs td[data-label=When] a`, chromedp.ByQuery),
		chromedp.Text(`#provlogs`, &logText, chromedp.ByQuery),
		shot(t, "10-provisioning-logs"),
		chromedp.Click(`#provlogs td[data-label=When] a`, chromedp.ByQuery),
		chromedp.WaitVisible(`#tab-summary`, chromedp.ByQuery),
		shot(t, "11-provisioning-log-summary"),
		chromedp.Click(`a[href$="?tab=steps"]`, chromedp.ByQuery),
		chromedp.WaitVisible(`#tab-steps`, chromedp.ByQuery),
		chromedp.Text(`#tab-steps`, &stepsText, chromedp.ByQuery),
		chromedp.Click(`a[href$="?tab=properties"]`, chromedp.ByQuery),
		chromedp.WaitVisible(`#tab-properties`, chromedp.ByQuery),
		shot(t, "12-provisioning-log-properties"),
		chromedp.Click(`a[href$="?tab=troubleshooting"]`, chromedp.ByQuery),
		chromedp.WaitVisible(`#tab-troubleshooting`, chromedp.ByQuery),
		chromedp.Navigate(base+"/identities/"+w.rita),
		chromedp.WaitVisible(`#timeline`, chromedp.ByQuery),
		chromedp.Text(`#timeline`, &timeline, chromedp.ByQuery),
		shot(t, "13-identity-timeline"),
	)
	if err != nil {
		t.Fatalf("provisioning logs: %v", err)
	}
	for _, want := range []string{"Corp Directory", "Grant", "Create", "Success", "rita"} {
		if !strings.Contains(logText, want) || !strings.Contains(timeline, strings.Replace(want, "rita", "run", 1)) {
			t.Errorf("log or timeline lacks %q:\n%s\n%s", want, logText, timeline)
		}
	}
	if !strings.Contains(stepsText, "Modify") {
		t.Errorf("steps tab: %s", stepsText)
	}

	// Users and API clients: reset the requester's password in place; the
	// row shows the new one once. (The confirmation is accepted.)
	rita, err := w.Access.UserByUsername(w.Ctx, "rita")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := w.Access.CreateClient(w.Ctx, "Nightly jobs", []string{"read", "trigger"}, "cli"); err != nil {
		t.Fatal(err)
	}
	ritaRow := `#user-` + rita.ID
	var shown string
	err = chromedp.Run(ctx,
		chromedp.Click(`a[href="/users"]`, chromedp.ByQuery),
		chromedp.WaitVisible(ritaRow, chromedp.ByQuery),
		chromedp.Evaluate(`window.confirm = function () { return true; }`, nil),
		chromedp.Click(ritaRow+` form[action$="/reset-password"] button`, chromedp.ByQuery),
		chromedp.WaitVisible(ritaRow+` .secret code`, chromedp.ByQuery),
		chromedp.Text(ritaRow+` .secret code`, &shown, chromedp.ByQuery),
		shot(t, "09-users-and-clients"),
	)
	if err != nil {
		t.Fatalf("users page: %v", err)
	}
	if _, err := w.Access.Authenticate(w.Ctx, "rita", strings.TrimSpace(shown)); err != nil {
		t.Errorf("the password shown after the reset does not sign in: %v", err)
	}

	// Connectors: the list shows each state; a connector's page its
	// current status with the chart of the last 24 hours; Pause makes it
	// Paused with the reason, Release makes it active again.
	var listText, statusText, pausedText string
	var bars int
	err = chromedp.Run(ctx,
		chromedp.Navigate(base+"/connectors"),
		chromedp.WaitVisible(`td[data-label=State] .badge`, chromedp.ByQuery),
		chromedp.Text(`table.grid`, &listText, chromedp.ByQuery),
		shot(t, "10-connectors-states"),
		chromedp.Click(`//td[@data-label="Name"]/a[contains(., "Corp Directory")]`),
		chromedp.WaitVisible(`#status svg.chart`, chromedp.ByQuery),
		chromedp.Text(`#status`, &statusText, chromedp.ByQuery),
		chromedp.Evaluate(`document.querySelectorAll("#status svg.chart rect.chart-ops").length`, &bars),
		chromedp.ScrollIntoView(`#status`, chromedp.ByQuery),
		shot(t, "11-connector-status"),
		chromedp.Click(`#status form[action$="/pause"] button`, chromedp.ByQuery),
		chromedp.WaitVisible(`#status form[action$="/release"]`, chromedp.ByQuery),
		chromedp.Text(`#status`, &pausedText, chromedp.ByQuery),
		shot(t, "12-connector-paused"),
		chromedp.Click(`#status form[action$="/release"] button`, chromedp.ByQuery),
		chromedp.WaitVisible(`#status form[action$="/pause"]`, chromedp.ByQuery),
	)
	if err != nil {
		t.Fatalf("connector status: %v", err)
	}
	if !strings.Contains(listText, "State") || !strings.Contains(listText, "Active") {
		t.Errorf("connectors list: %s", listText)
	}
	for _, want := range []string{"Current status", "Queue", "Failures in a row", "Last successful sign-in", "Last import cycle", "Last 24 hours"} {
		if !strings.Contains(statusText, want) {
			t.Errorf("status card lacks %q: %s", want, statusText)
		}
	}
	if bars != 24 {
		t.Errorf("chart has %d bars, want 24", bars)
	}
	if !strings.Contains(pausedText, "Paused") || !strings.Contains(pausedText, "connector paused: paused by") {
		t.Errorf("paused card: %s", pausedText)
	}
}

// The approval paths in a browser: rita asks for VPN (its owner, then an
// admin), Olga finds it on My approvals and approves it with a comment, an
// admin approves it, and the run completes; Olga denies another request
// and rita sees it Denied; rita withdraws a third.
func TestApprovalsInChromium(t *testing.T) {
	w := setupApprovals(t, "sqlite")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = w.HTTP.Listener(ln) }()
	base := "http://" + ln.Addr().String()
	ctx, cancel := newChrome(t)
	defer cancel()

	signOut := chromedp.Tasks{
		chromedp.Click(`form[action="/logout"] button`, chromedp.ByQuery),
		chromedp.WaitVisible(`#username`, chromedp.ByQuery),
	}
	wide := chromedp.EmulateViewport(1280, 900, chromedp.EmulateScale(1))
	phone := chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(1))
	// both takes a screenshot at 1280 px and at 390 px.
	both := func(name string) chromedp.Tasks {
		return chromedp.Tasks{wide, shot(t, name+"-1280px"), phone, shot(t, name+"-390px"), wide}
	}

	// Rita asks for VPN for Alice: the review says whose approval it needs.
	var review, flash, runURL string
	err = chromedp.Run(ctx, wide,
		signIn(base, "rita", w.pw["rita"]),
		chromedp.Navigate(base+"/requests/new"),
		chromedp.Click(`button[value="create_account"]`, chromedp.ByQuery),
		chromedp.WaitVisible(`#q`, chromedp.ByQuery),
		chromedp.SendKeys(`#q`, "ali", chromedp.ByQuery),
		chromedp.WaitVisible(`input[name=beneficiary_id][value="`+w.alice+`"]`, chromedp.ByQuery),
		chromedp.Click(`input[name=beneficiary_id][value="`+w.alice+`"]`, chromedp.ByQuery),
		chromedp.Click(`button[value=next].primary`, chromedp.ByQuery),
		chromedp.WaitVisible(`input[name=connector_id]`, chromedp.ByQuery),
		chromedp.Click(`input[name=connector_id][value="`+w.dir+`"]`, chromedp.ByQuery),
		chromedp.Click(`button[value=next].primary`, chromedp.ByQuery),
		chromedp.WaitVisible(`input[name=entitlements][value="`+w.vpn+`"]`, chromedp.ByQuery),
		shot(t, "20-approval-access-badge"),
		chromedp.Click(`input[name=entitlements][value="`+w.vpn+`"]`, chromedp.ByQuery),
		chromedp.Click(`button[value=next].primary`, chromedp.ByQuery),
		chromedp.WaitVisible(`#justification`, chromedp.ByQuery),
		chromedp.SendKeys(`#justification`, "Joins the VPN pilot", chromedp.ByQuery),
		chromedp.Click(`button[value=next].primary`, chromedp.ByQuery),
		chromedp.WaitVisible(`.approval-plan`, chromedp.ByQuery),
		chromedp.Text(`.approval-plan`, &review, chromedp.ByQuery),
		shot(t, "21-approval-review"),
		chromedp.Click(`button[value=submit]`, chromedp.ByQuery),
		chromedp.WaitVisible(`#run .approval-summary`, chromedp.ByQuery),
		chromedp.Text(`#flash`, &flash, chromedp.ByQuery),
		chromedp.Location(&runURL),
		shot(t, "22-approval-run-awaiting"),
		signOut,
	)
	if err != nil {
		t.Fatalf("rita asks: %v", err)
	}
	for _, want := range []string{"step 1: Olga Owner", "owner of VPN", "step 2: an admin"} {
		if !strings.Contains(review, want) {
			t.Errorf("the review's plan lacks %q: %s", want, review)
		}
	}
	if !strings.Contains(flash, "awaits approval") {
		t.Errorf("flash after Submit: %q", flash)
	}
	runID := runURL[strings.LastIndex(runURL, "/")+1:]
	denied, deniedID := w.ask(t, w.wiki)
	_, withdrawnID := w.ask(t, w.wiki)

	// Olga: the count in the navigation, My approvals, the approval page.
	var badge, trail string
	err = chromedp.Run(ctx,
		signIn(base, "olga", w.pw["olga"]),
		chromedp.Text(`a[href="/approvals"] .badge-count`, &badge, chromedp.ByQuery),
		chromedp.Click(`a[href="/approvals"]`, chromedp.ByQuery),
		chromedp.WaitVisible(`.approvals-grid tbody tr.clickable`, chromedp.ByQuery),
		both("23-my-approvals"),
		chromedp.Navigate(base+"/approvals/"+approvalOfRun(t, w, runID)),
		chromedp.WaitVisible(`form.decision textarea#comment`, chromedp.ByQuery),
		both("24-approval-page"),
		chromedp.SendKeys(`#comment`, "OK for the pilot", chromedp.ByQuery),
		chromedp.Click(`form.decision button.primary`, chromedp.ByQuery),
		chromedp.WaitVisible(`//p[contains(@class,"flash") and contains(., "now waits for an admin")]`),
		chromedp.Text(`ol.trail`, &trail, chromedp.ByQuery),
		// Deny the second request, with a reason.
		chromedp.Navigate(base+"/approvals/"+deniedID),
		chromedp.WaitVisible(`form.decision textarea#comment`, chromedp.ByQuery),
		chromedp.SendKeys(`#comment`, "Not for contractors", chromedp.ByQuery),
		chromedp.Click(`form.decision button.danger`, chromedp.ByQuery),
		chromedp.WaitVisible(`//p[contains(@class,"flash") and contains(., "Denied")]`),
		signOut,
	)
	if err != nil {
		t.Fatalf("olga decides: %v", err)
	}
	if f := strings.Fields(badge); len(f) == 0 || f[0] != "3" {
		t.Errorf("olga's badge: %q", badge)
	}
	if !strings.Contains(trail, "OK for the pilot") || !strings.Contains(trail, "Olga Owner") {
		t.Errorf("the trail after olga: %s", trail)
	}

	// An admin approves the second step; the run goes on and completes.
	var approvedBy string
	err = chromedp.Run(ctx,
		signIn(base, "admin", w.pw["admin"]),
		chromedp.Click(`a[href="/approvals"]`, chromedp.ByQuery),
		chromedp.WaitVisible(`.approvals-grid tbody tr.clickable a`, chromedp.ByQuery),
		chromedp.Click(`.approvals-grid tbody tr.clickable a`, chromedp.ByQuery),
		chromedp.WaitVisible(`form.decision textarea#comment`, chromedp.ByQuery),
		chromedp.SendKeys(`#comment`, "Approved for the pilot", chromedp.ByQuery),
		chromedp.Click(`form.decision button.primary`, chromedp.ByQuery),
		chromedp.WaitVisible(`//p[contains(@class,"flash") and contains(., "jobs are queued")]`),
		both("25-approval-approved"),
		chromedp.Click(`a[href="/requests/`+runID+`"]`, chromedp.ByQuery),
		chromedp.WaitVisible(`#run .heading .badge-completed`, chromedp.ByQuery),
		chromedp.Text(`#run .approval-summary`, &approvedBy, chromedp.ByQuery),
		shot(t, "26-approval-run-completed"),
		signOut,
	)
	if err != nil {
		t.Fatalf("admin approves: %v", err)
	}
	if !strings.Contains(approvedBy, "Approved by Olga Owner (owner of VPN), Ada Admin (admin)") {
		t.Errorf("the run's approval: %s", approvedBy)
	}

	// Rita sees the denial and its reason, and withdraws the third.
	var deniedRun, withdrawn string
	err = chromedp.Run(ctx,
		signIn(base, "rita", w.pw["rita"]),
		chromedp.Navigate(base+"/requests/"+denied.ID),
		chromedp.WaitVisible(`#run .heading .badge-denied`, chromedp.ByQuery),
		chromedp.Text(`#run .approval-summary`, &deniedRun, chromedp.ByQuery),
		chromedp.Navigate(base+"/approvals?tab=mine"),
		chromedp.WaitVisible(`.approvals-grid .badge-denied`, chromedp.ByQuery),
		both("27-my-requests"),
		chromedp.Navigate(base+"/approvals/"+withdrawnID),
		chromedp.WaitVisible(`form.withdraw button`, chromedp.ByQuery),
		chromedp.Evaluate(`window.confirm = function () { return true; }`, nil),
		chromedp.SendKeys(`#withdraw-comment`, "Asked by mistake", chromedp.ByQuery),
		chromedp.Click(`form.withdraw button`, chromedp.ByQuery),
		chromedp.WaitVisible(`.heading .badge-withdrawn`, chromedp.ByQuery),
		chromedp.Text(`.approval-state`, &withdrawn, chromedp.ByQuery),
		shot(t, "28-approval-withdrawn"),
	)
	if err != nil {
		t.Fatalf("rita: %v", err)
	}
	if !strings.Contains(deniedRun, "Denied") || !strings.Contains(deniedRun, "Not for contractors") {
		t.Errorf("the denied run: %s", deniedRun)
	}
	if !strings.Contains(withdrawn, "Withdrawn by rita") || !strings.Contains(withdrawn, "Asked by mistake") {
		t.Errorf("the withdrawn approval: %s", withdrawn)
	}
}

func approvalOfRun(t *testing.T, w *approvalWorld, runID string) string {
	t.Helper()
	inst, err := w.Requests.GetInstance(w.Ctx, runID)
	if err != nil || inst.ApprovalID == nil {
		t.Fatalf("run %s: %v %v", runID, inst, err)
	}
	return *inst.ApprovalID
}
