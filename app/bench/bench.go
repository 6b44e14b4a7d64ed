// Package bench measures Provisor's throughput and latency against raw River.
package bench

import (
	"context"
	"errors"
	"io"
)

// Main runs the benchmarks.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return errors.New("bench: not built yet")
}
