package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/provisor/provisor/app/api"
	"github.com/provisor/provisor/database/dbtest"
)

// tinyBurst keeps a burst to a few seconds.
var tinyBurst = []string{"--requests", "60", "--clients", "6", "--db-conns", "12"}

func TestBurstMainSQLite(t *testing.T) {
	t.Parallel()
	var out, errs bytes.Buffer
	if err := BurstMain(context.Background(), append([]string{"--dialects", "sqlite"}, tinyBurst...), &out, &errs); err != nil {
		t.Fatalf("BurstMain: %v\nstderr:\n%s", err, errs.String())
	}
	got := out.String()
	for _, want := range []string{"60 submissions", "6 concurrent clients", "| errors (non-2xx or no answer) | 0 |",
		"| runs completed | 60 |", "Markdown for BENCHMARKS.md"} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "Target") {
		t.Errorf("the target is for PostgreSQL only, yet printed:\n%s", got)
	}
}

func TestBurstMainPostgres(t *testing.T) {
	t.Parallel()
	var out, errs bytes.Buffer
	args := append([]string{"--dialects", "postgres", "--postgres", dbtest.ServerURL()}, tinyBurst...)
	if err := BurstMain(context.Background(), args, &out, &errs); err != nil {
		t.Fatalf("BurstMain: %v\nstderr:\n%s", err, errs.String())
	}
	got := out.String()
	for _, want := range []string{"PostgreSQL", "| errors (non-2xx or no answer) | 0 |", "| runs completed | 60 |",
		"Target on PostgreSQL:", "0 errors and p99 answer time < 1000.0 ms"} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	checkDropped(t, errs.String())
}

func TestBurstErrorKind(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		err  error
		want string
	}{
		{nil, ""},
		{&api.APIError{Status: 503}, "status 503"},
		{fmt.Errorf("post: %w", context.DeadlineExceeded), "timeout"},
		{&net.OpError{Op: "dial", Err: errors.New("connection refused")}, "transport"},
	} {
		if got := errorKind(c.err); got != c.want {
			t.Errorf("errorKind(%v) = %q, want %q", c.err, got, c.want)
		}
	}
	r := &BurstResult{Answers: []time.Duration{time.Millisecond}, Errors: map[string]int{"timeout": 2, "status 500": 1}}
	if got := errorText(r); got != "3 (1 status 500, 2 timeout)" {
		t.Errorf("errorText = %q", got)
	}
	if r.Pass() {
		t.Error("a burst with errors passes")
	}
}
