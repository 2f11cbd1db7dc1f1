// Package mqtttest is test support shared by the front ends' tests (hooks,
// the proxy, the example binaries): an event sink to wait on, a real
// mosquitto on a free loopback port, and MQTT 3.1.1 and 5 clients with
// deadlines that suit a loaded CI machine. Only tests import it.
package mqtttest

import (
	"bytes"
	"sync"
	"testing"
	"time"

	"github.com/mqttwaf/mqttwaf/mqttwaf"
)

// Events is an event sink (mqttwaf.Sink) that tests can wait on.
type Events struct {
	mu     sync.Mutex
	events []mqttwaf.Event
	signal chan struct{}
}

// NewEvents returns an empty sink.
func NewEvents() *Events { return &Events{signal: make(chan struct{}, 1)} }

// Emit records e.
func (r *Events) Emit(e mqttwaf.Event) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
	select {
	case r.signal <- struct{}{}:
	default:
	}
}

func matches(e *mqttwaf.Event, rule, reason string) bool {
	return (rule == "" || e.Rule == rule) && (reason == "" || e.Reason == reason)
}

// Find returns the first event with rule and reason ("" matches any).
func (r *Events) Find(rule, reason string) (mqttwaf.Event, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := range r.events {
		if matches(&r.events[i], rule, reason) {
			return r.events[i], true
		}
	}
	return mqttwaf.Event{}, false
}

// Count is the number of events with rule and reason ("" matches any).
func (r *Events) Count(rule, reason string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for i := range r.events {
		if matches(&r.events[i], rule, reason) {
			n++
		}
	}
	return n
}

// Wait waits up to d for an event with rule and reason, and fails the test
// (listing the events seen) if none comes.
func (r *Events) Wait(t testing.TB, rule, reason string, d time.Duration) mqttwaf.Event {
	t.Helper()
	deadline := time.After(d)
	for {
		if e, ok := r.Find(rule, reason); ok {
			return e
		}
		select {
		case <-r.signal:
		case <-deadline:
			t.Fatalf("no event rule=%q reason=%q within %s; events: %v", rule, reason, d, r.All())
		}
	}
}

// WaitCount waits up to d until n events with rule and reason were seen.
func (r *Events) WaitCount(t testing.TB, rule, reason string, n int, d time.Duration) {
	t.Helper()
	deadline := time.After(d)
	for r.Count(rule, reason) < n {
		select {
		case <-r.signal:
		case <-deadline:
			t.Fatalf("%d events rule=%q reason=%q within %s, want %d; events: %v", r.Count(rule, reason), rule, reason, d, n, r.All())
		}
	}
}

// All returns a copy of the events seen so far.
func (r *Events) All() []mqttwaf.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]mqttwaf.Event(nil), r.events...)
}

// Reset forgets the events seen so far.
func (r *Events) Reset() {
	r.mu.Lock()
	r.events = nil
	r.mu.Unlock()
}

// SyncBuffer is a bytes.Buffer safe for a writer and a reader in different
// goroutines (a binary's stderr read by its test).
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
