package input

import (
	"errors"
	"slices"
	"strings"
)

// The errors every package's own wrap, so that the HTTP server tells a
// missing thing and a state that does not allow an action apart from a
// failure, whichever package said it. A package keeps its own value with
// its own text (fmt.Errorf("task %w", input.ErrNotFound)), so that
// errors.Is tells its errors from another package's too.
var (
	// ErrNotFound is wrapped by the errors about something that does not
	// exist (or that the caller may not know of).
	ErrNotFound = errors.New("not found")
	// ErrConflict is wrapped by the errors that say why an action does not
	// apply to the current state of things (cancel a running job, revoke a
	// revoked client).
	ErrConflict = errors.New("conflict")
)

// FieldError names a field and what is wrong with it.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// Invalid is an error that says, field by field, what is wrong with an
// input: FieldErrors, or a package's own list such as
// requests.ValidationError.
type Invalid interface {
	error
	// FieldList returns the problems, always in the same order for the
	// same input (FieldErrors: by field).
	FieldList() []FieldError
}

// FieldErrors maps a field to what is wrong with it.
type FieldErrors map[string]string

// FieldList returns the problems ordered by field.
func (f FieldErrors) FieldList() []FieldError {
	out := make([]FieldError, 0, len(f))
	for k, v := range f {
		out = append(out, FieldError{Field: k, Message: v})
	}
	slices.SortFunc(out, func(a, b FieldError) int { return strings.Compare(a.Field, b.Field) })
	return out
}

func (f FieldErrors) Error() string {
	parts := make([]string, 0, len(f))
	for _, e := range f.FieldList() {
		parts = append(parts, e.Field+": "+e.Message)
	}
	return "invalid input: " + strings.Join(parts, "; ")
}
