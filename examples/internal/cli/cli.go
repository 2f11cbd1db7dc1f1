// Package cli holds what the example binaries (hardened-broker, waf-proxy)
// share beyond the library: small conventions of a command line, not
// firewall logic.
package cli

import (
	"io"
	"sync"
)

// PolicyName names the policy in log lines: the -policy file, or
// "embedded default" when the flag is empty.
func PolicyName(path string) string {
	if path == "" {
		return "embedded default"
	}
	return path
}

// LockedWriter serialises writes to w: log lines and event lines come from
// different handlers and must not interleave on stderr.
type LockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

// NewLockedWriter returns a LockedWriter around w.
func NewLockedWriter(w io.Writer) *LockedWriter { return &LockedWriter{w: w} }

func (l *LockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
