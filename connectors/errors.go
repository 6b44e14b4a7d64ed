package connectors

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/provisor/provisor/input"
)

// Error is a classified connector error. Permanent errors (no such group,
// insufficient rights, invalid input) fail the job at once; transient ones
// (server down, busy, timed out) are retried with backoff. A transient
// error with RetryAfter says the system asked to be left alone that long
// (a 429 or 503 with Retry-After): the job waits that long without
// spending an attempt.
type Error struct {
	Permanent bool
	Err       error
	// RetryAfter, when positive, is how long the system asked to wait.
	RetryAfter time.Duration
	// RequestID is the system's id of the request that failed, if any.
	RequestID string
	// Code is the system's error code ("LDAP 32", an HTTP status or a
	// REST system's code), for the provisioning log's advice.
	Code string
	// Class says more of what failed where the connector knows it:
	// ClassAuth, ClassConfig or ClassConnection; empty otherwise.
	Class Class
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrAuth) true for authentication failures.
func (e *Error) Is(target error) bool { return target == ErrAuth && e.Class == ClassAuth }

// Class is what kind of failure a connector error is, beyond permanent or
// transient. It decides whether a connector is quarantined: an
// authentication failure at once, connection failures after several in a
// row (see requests' quarantine rules).
type Class string

// The classes of connector errors. ClassOf returns ClassPermanent or
// ClassTransient for errors a connector did not classify further.
const (
	ClassAuth       Class = "authentication"
	ClassConfig     Class = "configuration"
	ClassConnection Class = "connection"
	ClassPermanent  Class = "permanent"
	ClassTransient  Class = "transient"
)

// ErrAuth matches (errors.Is) every error marked with Auth: the system
// refused the connector's own credentials (an LDAP bind with invalid
// credentials, a token refused).
var ErrAuth = errors.New("the system refused the connector's credentials")

// Auth marks err as a refusal of the connector's credentials: permanent
// for the operation, and a reason to quarantine the connector at once.
func Auth(err error) error {
	if err == nil {
		return nil
	}
	return &Error{Permanent: true, Err: err, Class: ClassAuth}
}

// Misconfigured marks err as a problem of the connector's settings (a bad URL, a
// certificate that does not match): permanent until an admin fixes it.
func Misconfigured(err error) error {
	if err == nil {
		return nil
	}
	return &Error{Permanent: true, Err: err, Class: ClassConfig}
}

// Connection marks err as a failure to reach the system (refused, reset,
// timed out): transient.
func Connection(err error) error {
	if err == nil {
		return nil
	}
	return &Error{Err: err, Class: ClassConnection}
}

// ClassOf returns the class of err: the connector's own, or else
// ClassPermanent or ClassTransient. It returns "" for nil.
func ClassOf(err error) Class {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		if e.Class != "" {
			return e.Class
		}
		if e.Permanent {
			return ClassPermanent
		}
	}
	return ClassTransient
}

// Permanent marks err as not worth retrying.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &Error{Permanent: true, Err: err}
}

// Transient marks err as worth retrying.
func Transient(err error) error {
	if err == nil {
		return nil
	}
	return &Error{Permanent: false, Err: err}
}

// RetryAfter marks err as transient, to be tried again after d: the
// system is throttling or briefly unavailable and said for how long.
func RetryAfter(err error, d time.Duration) error {
	if err == nil {
		return nil
	}
	return &Error{Err: err, RetryAfter: max(d, time.Millisecond)}
}

// IsPermanent reports whether err should fail a job without retrying.
// Unclassified errors are transient: a network error or an unknown failure
// is better retried than lost.
func IsPermanent(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Permanent
}

// RetryAfterOf returns how long err asks to wait before the next try, and
// whether it asks at all.
func RetryAfterOf(err error) (time.Duration, bool) {
	var e *Error
	if errors.As(err, &e) && !e.Permanent && e.RetryAfter > 0 {
		return e.RetryAfter, true
	}
	return 0, false
}

// CodeOf returns the system's error code of err, or "".
func CodeOf(err error) string {
	var e *Error
	if errors.As(err, &e) && e.Code != "" {
		return e.Code
	}
	if h := HTTPErrorOf(err); h != nil {
		if h.Code != "" {
			return h.Code
		}
		return fmt.Sprintf("HTTP %d", h.Status)
	}
	return ""
}

// RequestIDOf returns the system's request id of err, or "".
func RequestIDOf(err error) string {
	var e *Error
	if errors.As(err, &e) && e.RequestID != "" {
		return e.RequestID
	}
	if h := HTTPErrorOf(err); h != nil {
		return h.RequestID
	}
	return ""
}

// BoundSettings returns the JSON names of the fields of the settings
// struct v tagged secret:"bound": the settings a connector's stored
// secrets are bound to (see SecretBinding).
func BoundSettings(v any) []string {
	t := reflect.TypeOf(v)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	var out []string
	for i := range t.NumField() {
		if t.Field(i).Tag.Get("secret") == "bound" {
			name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
			out = append(out, name)
		}
	}
	return out
}

// MessageWithRequest appends a system's request id to a message, so that
// the record of a job names the request its system's logs know.
func MessageWithRequest(msg, requestID string) string {
	if requestID == "" {
		return msg
	}
	return fmt.Sprintf("%s (request id %s)", msg, requestID)
}

// ErrNotFound is returned for an unknown connector.
var ErrNotFound = fmt.Errorf("connector %w", input.ErrNotFound)

// FieldErrors maps a field to what is wrong with it.
type FieldErrors = input.FieldErrors
