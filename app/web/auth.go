package web

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/url"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/provisor/provisor/access"
	"github.com/provisor/provisor/requests"
)

const (
	sessionCookie = "provisor_session"
	loginCSRF     = "provisor_login_csrf"
	flashCookie   = "provisor_flash"
	sessionKey    = "session"
)

func session(c *fiber.Ctx) *access.Session {
	s, _ := c.Locals(sessionKey).(*access.Session)
	return s
}

func user(c *fiber.Ctx) *access.User {
	if s := session(c); s != nil {
		return s.User
	}
	return nil
}

func isAdmin(c *fiber.Ctx) bool {
	u := user(c)
	return u != nil && u.Role == access.RoleAdmin
}

// requester is the signed-in user as the request policy sees them.
func requester(c *fiber.Ctx) requests.Requester {
	u := user(c)
	r := requests.Requester{Username: u.Username, Admin: u.Role == access.RoleAdmin, Helpdesk: u.Role == access.RoleHelpdesk}
	if u.IdentityID != nil {
		r.IdentityID = *u.IdentityID
	}
	return r
}

// secureHeaders forbid framing, sniffing and scripts from elsewhere.
func (s *Server) secureHeaders(c *fiber.Ctx) error {
	c.Set("X-Content-Type-Options", "nosniff")
	c.Set("X-Frame-Options", "DENY")
	c.Set("Referrer-Policy", "same-origin")
	c.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "+
		"frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'")
	return c.Next()
}

func (s *Server) loadSession(c *fiber.Ctx) error {
	token := c.Cookies(sessionCookie)
	if token == "" {
		return c.Next()
	}
	sess, err := s.Access.SessionByToken(c.UserContext(), token)
	if errors.Is(err, access.ErrNoSession) {
		s.clearCookie(c, sessionCookie)
		return c.Next()
	}
	if err != nil {
		return err
	}
	c.Locals(sessionKey, sess)
	return c.Next()
}

// requireUser sends anonymous visitors to the sign-in page.
func (s *Server) requireUser(c *fiber.Ctx) error {
	if session(c) != nil {
		return c.Next()
	}
	if c.Method() != fiber.MethodGet {
		return fiber.NewError(fiber.StatusUnauthorized, "Your session has ended: sign in again.")
	}
	return redirect(c, "/login?next="+url.QueryEscape(c.OriginalURL()))
}

// admin answers 403 to anyone but an admin.
func admin(c *fiber.Ctx) error {
	if !isAdmin(c) {
		return fiber.NewError(fiber.StatusForbidden, "This page is for admins.")
	}
	return c.Next()
}

// checkCSRF requires the session's token on every request that changes
// something: from a form field, or the header htmx sends.
func (s *Server) checkCSRF(c *fiber.Ctx) error {
	switch c.Method() {
	case fiber.MethodGet, fiber.MethodHead, fiber.MethodOptions:
		return c.Next()
	}
	sent := c.Get("X-CSRF-Token")
	if sent == "" {
		sent = c.FormValue("_csrf")
	}
	if subtle.ConstantTimeCompare([]byte(sent), []byte(session(c).CSRFToken)) != 1 {
		return fiber.NewError(fiber.StatusForbidden, "The form was out of date or did not come from this site. Reload the page and try again.")
	}
	return c.Next()
}

func randomToken() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func (s *Server) setCookie(c *fiber.Ctx, name, value string, expires time.Time) {
	c.Cookie(&fiber.Cookie{Name: name, Value: value, Path: "/", Expires: expires, HTTPOnly: true,
		Secure: s.SecureCookies, SameSite: fiber.CookieSameSiteLaxMode})
}

func (s *Server) clearCookie(c *fiber.Ctx, name string) {
	c.Cookie(&fiber.Cookie{Name: name, Value: "", Path: "/", Expires: time.Unix(1, 0), HTTPOnly: true,
		Secure: s.SecureCookies, SameSite: fiber.CookieSameSiteLaxMode})
}

// flash keeps a short message for the next page.
func (s *Server) flash(c *fiber.Ctx, msg string) {
	s.setCookie(c, flashCookie, url.QueryEscape(msg), time.Now().Add(time.Minute))
}

func takeFlash(c *fiber.Ctx) string {
	v := c.Cookies(flashCookie)
	if v == "" {
		return ""
	}
	c.Cookie(&fiber.Cookie{Name: flashCookie, Value: "", Path: "/", Expires: time.Unix(1, 0), HTTPOnly: true, SameSite: fiber.CookieSameSiteLaxMode})
	msg, err := url.QueryUnescape(v)
	if err != nil {
		return ""
	}
	return msg
}

type loginData struct {
	Username string
	Next     string
	Error    string
	Token    string
}

func (s *Server) loginPage(c *fiber.Ctx) error {
	next := safeNext(query(c, "next"))
	if session(c) != nil {
		return c.Redirect(next)
	}
	return s.renderLogin(c, fiber.StatusOK, loginData{Next: next})
}

// renderLogin shows the sign-in form with a fresh double-submit token: the
// form carries it and a cookie holds it, so another site cannot post it.
func (s *Server) renderLogin(c *fiber.Ctx, status int, d loginData) error {
	// Keep the token of an open sign-in form: another tab, or a request
	// the browser makes on its own, must not invalidate it.
	d.Token = c.Cookies(loginCSRF)
	if len(d.Token) < 32 {
		d.Token = randomToken()
	}
	s.setCookie(c, loginCSRF, d.Token, time.Now().Add(time.Hour))
	p := s.newPage(c, "", "Sign in", d)
	return s.render(c, status, "login", p)
}

func (s *Server) loginSubmit(c *fiber.Ctx) error {
	d := loginData{Username: form(c, "username"), Next: safeNext(form(c, "next"))}
	cookie := c.Cookies(loginCSRF)
	if cookie == "" || subtle.ConstantTimeCompare([]byte(cookie), []byte(form(c, "_csrf"))) != 1 {
		d.Error = "The sign-in form was out of date. Please try again."
		return s.renderLogin(c, fiber.StatusForbidden, d)
	}
	sess, token, err := s.Access.SignIn(c.UserContext(), d.Username, form(c, "password"), c.IP())
	var slow *access.ErrSlowDown
	switch {
	case errors.As(err, &slow):
		d.Error = "Too many failed sign-ins. Wait " + slow.Wait.Round(time.Second).String() + " and try again."
		c.Set(fiber.HeaderRetryAfter, strconv.Itoa(int(slow.Wait.Seconds())+1))
		return s.renderLogin(c, fiber.StatusTooManyRequests, d)
	case errors.Is(err, access.ErrInvalidCredentials):
		d.Error = "Wrong username or password."
		return s.renderLogin(c, fiber.StatusUnauthorized, d)
	case errors.Is(err, access.ErrAccountDisabled):
		d.Error = "This account is disabled. Ask an admin to enable it."
		return s.renderLogin(c, fiber.StatusForbidden, d)
	case errors.Is(err, access.ErrUnusableUsername):
		d.Error = "Your directory username cannot be used to sign in to Provisor (only letters, digits and . _ @ -). Ask an administrator."
		return s.renderLogin(c, fiber.StatusForbidden, d)
	case errors.Is(err, access.ErrDirectoryUnavailable):
		d.Error = "The directory that checks your password cannot be reached right now. Try again in a few minutes."
		return s.renderLogin(c, fiber.StatusServiceUnavailable, d)
	case err != nil:
		return err
	}
	s.clearCookie(c, loginCSRF)
	s.setCookie(c, sessionCookie, token, sess.ExpiresAt)
	return c.Redirect(d.Next, fiber.StatusSeeOther)
}

func (s *Server) logout(c *fiber.Ctx) error {
	if err := s.Access.SignOut(c.UserContext(), c.Cookies(sessionCookie), user(c).Username); err != nil {
		return err
	}
	s.clearCookie(c, sessionCookie)
	s.flash(c, "You are signed out.")
	return redirect(c, "/login")
}
