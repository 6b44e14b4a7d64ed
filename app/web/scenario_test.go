package web_test

import (
	"maps"
	"net/http"
	"net/url"

	"github.com/provisor/provisor/app/apptest"
)

// run sends s in the browser's session: with its cookies and, for a form
// post without a form of its own, its CSRF token. It keeps the cookies the
// answer sets, as a browser does.
func (br *browser) run(s apptest.Scenario) *apptest.Response {
	br.t.Helper()
	s.Cookies = maps.Clone(br.cookies)
	if s.Method == http.MethodPost && s.Form == nil && s.Body == "" {
		s.Form = url.Values{"_csrf": {br.csrf}}
	}
	res := s.Run(br.t, br.b)
	for _, c := range res.Cookies {
		if c.MaxAge < 0 || c.Value == "" {
			delete(br.cookies, c.Name)
		} else {
			br.cookies[c.Name] = c.Value
		}
	}
	if m := csrfField.FindStringSubmatch(res.Body); m != nil && br.cookies["provisor_session"] != "" {
		br.csrf = m[1]
	}
	return res
}
