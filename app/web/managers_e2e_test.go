package web_test

import (
	"net"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// An admin picks an identity's manager with the search-as-you-type picker,
// and sees it on the page with where it came from.
func TestManagerPickerInChromium(t *testing.T) {
	w := setup(t)
	carol := w.Identity(t, "carol")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = w.HTTP.Listener(ln) }()
	base := "http://" + ln.Addr().String()
	ctx, cancel := newChrome(t)
	defer cancel()
	var manager string
	err = chromedp.Run(ctx,
		signIn(base, "admin", w.adminPW),
		chromedp.Navigate(base+"/identities/"+carol.ID),
		chromedp.WaitVisible(`#manager-q`, chromedp.ByQuery),
		chromedp.SendKeys(`#manager-q`, "rit", chromedp.ByQuery),
		chromedp.WaitVisible(`input[type=radio][name=manager_id][value="`+w.rita+`"]`, chromedp.ByQuery),
		chromedp.Click(`input[type=radio][name=manager_id][value="`+w.rita+`"]`, chromedp.ByQuery),
		chromedp.Click(`button[value=set]`, chromedp.ByQuery),
		chromedp.WaitVisible(`button[value=clear]`, chromedp.ByQuery),
		chromedp.Text(`#manager`, &manager, chromedp.ByQuery),
		shot(t, "20-identity-manager"),
	)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(manager, "rita") || !strings.Contains(manager, "set by hand") {
		t.Errorf("manager shown: %q", manager)
	}
	if got, _ := w.Identities.GetIdentity(w.Ctx, carol.ID); got.ManagerID == nil || *got.ManagerID != w.rita {
		t.Errorf("carol's manager: %+v", got.ManagerID)
	}
}
