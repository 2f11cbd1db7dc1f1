//go:build unix

package redact

import (
	"syscall"
	"testing"
	"time"
)

// cpuTimer measures the process's CPU time, not wall time: on a machine
// shared with other jobs, ns/op also counts the time the benchmark waited
// for a core; cpu-ns/op does not. Both are reported.
type cpuTimer struct{ start time.Duration }

func cpuNow() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func startCPU() cpuTimer { return cpuTimer{cpuNow()} }

func (c cpuTimer) report(b *testing.B) {
	if b.N > 0 {
		b.ReportMetric(float64(cpuNow()-c.start)/float64(b.N), "cpu-ns/op")
	}
}
