package app_test

import (
	"context"
	"testing"
	"time"

	"github.com/provisor/provisor/app"
	"github.com/provisor/provisor/app/apptest"
	"github.com/provisor/provisor/database/dbtest"
)

// Shutdown returns within its bound whatever state the app is in, and a
// second call returns too: nothing waits for the context Start was given
// to end.
func TestShutdownReturnsFromAnyState(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name   string
		starts int
	}{{"never started", 0}, {"started", 1}, {"started twice", 2}} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			dbtest.Each(t, func(t *testing.T, dialect string) {
				t.Parallel()
				b := apptest.New(t, dialect, &apptest.Options{NoStart: true})
				// Start's context never ends during the test.
				for range c.starts {
					if err := b.Start(context.Background()); err != nil {
						t.Fatalf("start: %v", err)
					}
				}
				for call := 1; call <= 2; call++ {
					done := make(chan error, 1)
					began := time.Now()
					go func() { done <- b.Shutdown() }()
					select {
					case err := <-done:
						if err != nil {
							t.Errorf("shutdown #%d: %v", call, err)
						}
						if took := time.Since(began); took > app.ShutdownTimeout {
							t.Errorf("shutdown #%d took %s, more than its bound %s", call, took, app.ShutdownTimeout)
						}
					case <-time.After(app.ShutdownTimeout + 5*time.Second):
						t.Fatalf("shutdown #%d still running after %s", call, app.ShutdownTimeout+5*time.Second)
					}
				}
			})
		})
	}
}
