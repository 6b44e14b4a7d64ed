package web

import (
	"errors"
	"strings"

	"github.com/provisor/provisor/requests"
)

// previewRows bounds the jobs a page lists of a preview; the counts cover
// them all, and the API lists every one.
const previewRows = 200

// previewView is a run's preview as a page shows it. Note, when set, says
// why there is no preview (Preview is then nil).
type previewView struct {
	*requests.Preview
	Shown []requests.PreviewJob
	More  int
	Note  string
}

// previewOf makes the view of a preview, or of why there is none: a
// request that is not complete or valid yet, or that can no longer run.
// Other errors are returned.
func previewOf(p *requests.Preview, err error) (*previewView, error) {
	var ve *requests.ValidationError
	var pe *requests.PolicyError
	switch {
	case errors.As(err, &pe):
		return nil, nil // the page says why it is refused
	case errors.As(err, &ve):
		return &previewView{Note: "The preview of the run's jobs appears once every step is complete and valid."}, nil
	case errors.Is(err, requests.ErrConflict):
		return &previewView{Note: strings.TrimPrefix(err.Error(), "conflict: ")}, nil
	case err != nil:
		return nil, err
	}
	v := &previewView{Preview: p, Shown: p.Jobs}
	if len(v.Shown) > previewRows {
		v.Shown, v.More = v.Shown[:previewRows], len(p.Jobs)-previewRows
	}
	return v, nil
}
