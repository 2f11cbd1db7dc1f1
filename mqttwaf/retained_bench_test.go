package mqttwaf

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mqttwaf/mqttwaf/ratelimit/redisstate/redistest"
)

// BenchmarkRetainedPublish is what a retained publish costs, the budgets'
// bookkeeping included (Publish, then Retained as an adapter calls it),
// with the state in memory, in a real redis-server with the retained
// budgets per node, and shared, in the same run. Shared, a publish clear of
// its budgets is decided locally, as per_node; one within a topic of the
// identity's limit waits for the exact shared table (one round trip),
// whether it replaces the identity's own topic or is refused.
func BenchmarkRetainedPublish(b *testing.B) {
	srv := redistest.Start(b)
	policy := strings.Replace(benchPolicy, `subscribe: ["fleet/{username}/cmd/#"]`,
		"subscribe: [\"fleet/{username}/cmd/#\"]\n    retain: [\"fleet/{username}/#\"]", 1) +
		"  retained: {per_identity: {topics: 10}}\n"
	for _, tc := range []struct {
		name     string
		retained string // with state.backend redis: per_node or shared; "": backend memory
		held     int    // topics the device holds before the loop
		newOnes  bool   // the loop publishes a topic it does not hold (refused at the limit)
	}{
		{"memory", "", 0, false},
		{"redis_per_node", "per_node", 0, false},
		{"redis_shared", "shared", 0, false},
		{"memory_own_topic_at_limit", "", 10, false},
		{"redis_per_node_own_topic_at_limit", "per_node", 10, false},
		{"redis_shared_own_topic_at_limit", "shared", 10, false},
		{"redis_shared_refused_at_limit", "shared", 10, true},
	} {
		b.Run(tc.name, func(b *testing.B) {
			y := policy
			if tc.retained != "" {
				y += fmt.Sprintf("state: {backend: redis, retained: %s, redis: {address: %q, key_prefix: %q, timeout: 2s}}\n", tc.retained, srv.Addr(), fmt.Sprintf("b%d:", time.Now().UnixNano())) // a fresh store for each run
			}
			p, err := ParsePolicy([]byte(y), "bench.yaml")
			if err != nil {
				b.Fatal(err)
			}
			w, err := New(p, Options{Sink: &eventLog{}})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = w.Stop() })
			c, m := benchDevice(), realisticMessage(b)
			m.Retain = true
			for i := range tc.held {
				m.Topic = fmt.Sprintf("fleet/device-0042/held/%d", i)
				if v, _ := w.Publish(c, m); v.Blocked() {
					b.Fatal(v)
				}
				w.Retained(c, m.Topic, m.Size())
			}
			if tc.retained == "shared" { // the shared figures read back, as in a running broker
				sh := w.st.retained.shared
				for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
					if mine, _, fresh, ok := sh.Use(time.Now(), "u:device-0042"); ok && fresh && mine.Topics == int64(tc.held) {
						time.Sleep(300 * time.Millisecond) // the changes just made are written and read back
						if mine, _, fresh, _ := sh.Use(time.Now(), "u:device-0042"); fresh && mine.Topics == int64(tc.held) {
							break
						}
					}
					if time.Now().After(deadline) {
						b.Fatal("the shared retained figures were not read back")
					}
				}
			}
			m.Topic = "fleet/device-0042/held/0"
			if tc.newOnes {
				m.Topic = "fleet/device-0042/new"
			}
			b.ReportAllocs()
			for b.Loop() {
				v, _ := w.Publish(c, m)
				if v.Blocked() != tc.newOnes {
					b.Fatal(v)
				}
				if !v.Blocked() {
					w.Retained(c, m.Topic, m.Size())
				}
			}
		})
	}
}
