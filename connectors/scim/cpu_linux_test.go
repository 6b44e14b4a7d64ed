package scim_test

import (
	"bytes"
	"os"
	"strconv"
	"syscall"
	"time"
)

// cpuTime is the CPU time used so far by this process (the SCIM server
// and the raw loop or Provisor) and by PostgreSQL's server processes
// (all of them, whatever database they serve: other work on the machine
// counts too; a process that ends between two readings is missed). The
// second is read from /proc, in clock ticks.
type cpuTime struct{ self, postgres time.Duration }

func (c cpuTime) minus(o cpuTime) cpuTime {
	return cpuTime{self: c.self - o.self, postgres: c.postgres - o.postgres}
}

func cpuNow() cpuTime {
	var c cpuTime
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		c.self = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		stat, err := os.ReadFile("/proc/" + p.Name() + "/stat")
		if err != nil || !bytes.Contains(stat, []byte("(postgres)")) {
			continue
		}
		// The fields after the command's closing parenthesis: utime and
		// stime are the 12th and 13th (proc(5)); a tick is 10 ms on Linux.
		f := bytes.Fields(stat[bytes.LastIndexByte(stat, ')')+1:])
		if len(f) < 13 {
			continue
		}
		ut, _ := strconv.ParseInt(string(f[11]), 10, 64)
		st, _ := strconv.ParseInt(string(f[12]), 10, 64)
		c.postgres += time.Duration(ut+st) * 10 * time.Millisecond
	}
	return c
}
