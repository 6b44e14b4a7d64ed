// Package httperr classifies the errors HTTP handlers return, for the
// error handler of each surface (the API's problem+json, the portal's
// pages and htmx fragments) to answer them alike: invalid input 422 with
// its fields, not found 404, conflict 409, forbidden 403, rate limited 429
// with Retry-After, a Fiber error with its own status, anything else 500.
// The surfaces choose the words.
package httperr

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/provisor/provisor/access"
	"github.com/provisor/provisor/input"
	"github.com/provisor/provisor/requests"
)

// Class is how an error is answered.
type Class struct {
	// Status is the HTTP status.
	Status int
	// Message is the error's text as the client may read it (a conflict's
	// without its "conflict: "); "" for an internal error, whose details
	// are for the server log only.
	Message string
	// Fields are the problems of an invalid input, ordered by field.
	Fields []input.FieldError
	// Policy is the request policy's refusal, for a 403 that is one.
	Policy *requests.PolicyError
	// RetryAfter is, for 429, how long to wait before trying again.
	RetryAfter time.Duration
}

// Internal reports whether the error is the server's: to be logged, and
// answered without its details.
func (c Class) Internal() bool { return c.Status == http.StatusInternalServerError && c.Message == "" }

// Classify returns how err is answered.
func Classify(err error) Class {
	var pe *requests.PolicyError
	var inv input.Invalid
	var slow *access.ErrSlowDown
	var fe *fiber.Error
	switch {
	case errors.As(err, &pe):
		return Class{Status: http.StatusForbidden, Message: pe.Error(), Policy: pe}
	case errors.Is(err, requests.ErrNotAllowed):
		return Class{Status: http.StatusForbidden, Message: err.Error()}
	case errors.As(err, &inv):
		return Class{Status: http.StatusUnprocessableEntity, Message: inv.Error(), Fields: inv.FieldList()}
	case errors.Is(err, input.ErrNotFound):
		return Class{Status: http.StatusNotFound, Message: err.Error()}
	case errors.Is(err, input.ErrConflict):
		return Class{Status: http.StatusConflict, Message: strings.TrimPrefix(err.Error(), "conflict: ")}
	case errors.As(err, &slow):
		return Class{Status: http.StatusTooManyRequests, Message: slow.Error(), RetryAfter: slow.Wait}
	case errors.As(err, &fe):
		return Class{Status: fe.Code, Message: fe.Message}
	}
	return Class{Status: http.StatusInternalServerError}
}

// SetRetryAfter sets the Retry-After header of a 429 answer, in whole
// seconds rounded up.
func (c Class) SetRetryAfter(ctx *fiber.Ctx) {
	if c.Status == http.StatusTooManyRequests && c.RetryAfter > 0 {
		ctx.Set(fiber.HeaderRetryAfter, strconv.Itoa(int((c.RetryAfter+time.Second-1)/time.Second)))
	}
}
