//go:build !linux

package scim_test

import "time"

// cpuTime is the CPU time used so far; only measured on Linux.
type cpuTime struct{ self, postgres time.Duration }

func (c cpuTime) minus(o cpuTime) cpuTime {
	return cpuTime{self: c.self - o.self, postgres: c.postgres - o.postgres}
}

func cpuNow() cpuTime { return cpuTime{} }
