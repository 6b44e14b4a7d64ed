package api_test

import (
	"testing"

	"github.com/provisor/provisor/app/apptest"
)

// bearer is the header of a request made with token.
func bearer(token string) map[string]string {
	return map[string]string{"Authorization": "Bearer " + token}
}

// chain runs the checks one after the other; nil ones are skipped.
func chain(checks ...func(testing.TB, *apptest.Response)) func(testing.TB, *apptest.Response) {
	return func(t testing.TB, res *apptest.Response) {
		for _, c := range checks {
			if c != nil {
				c(t, res)
			}
		}
	}
}
