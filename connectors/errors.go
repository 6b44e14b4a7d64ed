package connectors

import (
	"context"
	"errors"
)

// Error is a classified connector error. Permanent errors (no such group,
// insufficient rights, invalid input) fail the job at once; transient ones
// (server down, busy, timed out) are retried with backoff.
type Error struct {
	Permanent bool
	Err       error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

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

// IsPermanent reports whether err should fail a job without retrying.
// Unclassified errors are transient: a network error or an unknown failure
// is better retried than lost.
func IsPermanent(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Permanent
}

// IsTimeout reports whether err came from a deadline.
func IsTimeout(err error) bool {
	return errors.Is(err, context.DeadlineExceeded)
}
