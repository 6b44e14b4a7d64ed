package api

import (
	"encoding/base64"
	"errors"
	"net/url"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/provisor/provisor/access"
	"github.com/provisor/provisor/requests"
)

const principalKey = "principal"

// token implements the OAuth2 client-credentials grant (RFC 6749 §4.4).
// Credentials come in the Authorization header (Basic) or in the form body.
func (s *server) token(c *fiber.Ctx) error {
	oauthErr := func(status int, code, desc string) error {
		c.Set(fiber.HeaderCacheControl, "no-store")
		if status == 401 {
			c.Set(fiber.HeaderWWWAuthenticate, `Basic realm="provisor"`)
		}
		return c.Status(status).JSON(fiber.Map{"error": code, "error_description": desc})
	}
	// Parameters come from the body only: RFC 6749 §2.3.1 keeps
	// credentials out of URLs (and so out of access logs).
	body := c.Request().PostArgs()
	form := func(k string) string { return string(body.Peek(k)) }
	if strings.HasPrefix(string(c.Request().Header.ContentType()), fiber.MIMEApplicationJSON) {
		var body map[string]string
		if err := decodeLoose(c, &body); err != nil {
			return oauthErr(400, "invalid_request", "the body is not a JSON object of strings")
		}
		form = func(k string) string { return body[k] }
	}
	if g := form("grant_type"); g != "client_credentials" {
		return oauthErr(400, "unsupported_grant_type", "grant_type must be client_credentials")
	}
	id, secret := form("client_id"), form("client_secret")
	if u, p, ok := basicAuth(c); ok {
		id, secret = u, p
	}
	if id == "" || secret == "" {
		return oauthErr(401, "invalid_client", "client_id and client_secret are required")
	}
	var scopes []string
	if sc := form("scope"); sc != "" {
		var err error
		if scopes, err = access.ParseScopes(sc); err != nil {
			return oauthErr(400, "invalid_scope", err.Error())
		}
	}
	tok, granted, err := s.Access.IssueToken(c.UserContext(), id, secret, scopes)
	switch {
	case errors.Is(err, access.ErrInvalidCredentials):
		return oauthErr(401, "invalid_client", "unknown client or wrong secret")
	case err != nil && strings.HasPrefix(err.Error(), "scope "):
		return oauthErr(400, "invalid_scope", err.Error())
	case err != nil:
		return err
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.JSON(fiber.Map{
		"access_token": tok, "token_type": "Bearer",
		"expires_in": int(s.Access.TokenTTL().Seconds()), "scope": strings.Join(granted, " "),
	})
}

func basicAuth(c *fiber.Ctx) (string, string, bool) {
	h := c.Get(fiber.HeaderAuthorization)
	raw, ok := strings.CutPrefix(h, "Basic ")
	if !ok {
		return "", "", false
	}
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(raw))
	if err != nil {
		return "", "", false
	}
	// RFC 6749 §2.3.1: the id and secret are form-encoded before Basic encoding.
	u, p, ok := strings.Cut(string(b), ":")
	if !ok {
		return "", "", false
	}
	if d, err := url.QueryUnescape(u); err == nil {
		u = d
	}
	if d, err := url.QueryUnescape(p); err == nil {
		p = d
	}
	return u, p, true
}

// authenticate requires a valid bearer token.
func (s *server) authenticate(c *fiber.Ctx) error {
	raw, ok := strings.CutPrefix(c.Get(fiber.HeaderAuthorization), "Bearer ")
	if !ok || strings.TrimSpace(raw) == "" {
		return problem(401, "send a bearer token from POST /api/v1/token in the Authorization header")
	}
	p, err := s.Access.Principal(c.UserContext(), strings.TrimSpace(raw))
	if errors.Is(err, access.ErrInvalidCredentials) {
		return problem(401, "the bearer token is unknown or expired")
	}
	if err != nil {
		return err
	}
	c.Locals(principalKey, p)
	return c.Next()
}

// scope requires the caller to hold a scope.
func scope(name string) fiber.Handler {
	return func(c *fiber.Ctx) error {
		p, _ := c.Locals(principalKey).(*access.Principal)
		if p == nil || !p.Has(name) {
			return problem(403, "this call needs the "+name+" scope")
		}
		return c.Next()
	}
}

// requesterOf is the caller as the request policy sees it: a client that
// acts for a portal user is that user; any other client with the requests
// or tasks scope is a service an operator made, and may ask for what an
// admin may.
func requesterOf(p *access.Principal) requests.Requester {
	if p.User == nil {
		return requests.Requester{Admin: true}
	}
	u := p.User
	r := requests.Requester{Username: u.Username, Admin: u.Role == access.RoleAdmin, Helpdesk: u.Role == access.RoleHelpdesk}
	if u.IdentityID != nil {
		r.IdentityID = *u.IdentityID
	}
	return r
}

func principal(c *fiber.Ctx) *access.Principal {
	p, _ := c.Locals(principalKey).(*access.Principal)
	return p
}
