package redisstate

import (
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mqttwaf/mqttwaf/ratelimit"
	"github.com/mqttwaf/mqttwaf/ratelimit/redisstate/redistest"
)

// sentinelNode is one node whose backend finds the primary through a
// sentinel, with its shared ban list and the changes it reported.
type sentinelNode struct {
	b    *Backend
	bans *Bans

	mu      sync.Mutex
	changes []Change
}

func (n *sentinelNode) saw(c Change) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, x := range n.changes {
		if x == c {
			return true
		}
	}
	return false
}

func openSentinelNode(t *testing.T, sentinel *redistest.Server, master string) *sentinelNode {
	t.Helper()
	n := &sentinelNode{}
	b, err := Open(Options{
		SentinelMaster: master, SentinelAddresses: []string{sentinel.Addr()},
		KeyPrefix: "t:sentinel:", Timeout: time.Second, MaxBackoff: 200 * time.Millisecond,
		OnChange: func(c Change, detail string) {
			t.Logf("%s: %s", c, detail)
			n.mu.Lock()
			n.changes = append(n.changes, c)
			n.mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	local, err := ratelimit.NewBanList(ratelimit.BanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n.b, n.bans = b, b.Bans("bans", local)
	b.Start()
	t.Cleanup(func() { _ = b.Close() })
	return n
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", within, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func banned(n *sentinelNode, id string) bool {
	_, ok := n.bans.Check(time.Now(), id, "", netip.Addr{})
	return ok
}

// TestSentinelFailover: two nodes find the primary through a sentinel and
// share a ban; the primary dies, the sentinel promotes the replica, both
// nodes report the outage and come back to the new primary, a ban made
// after it on one is enforced on the other, and the bans made before it
// are in the new primary (a node that starts afterwards sees them).
func TestSentinelFailover(t *testing.T) {
	primary := redistest.Start(t)
	replica := redistest.StartReplica(t, primary)
	sentinel := redistest.StartSentinel(t, primary, "mymaster")

	a, b := openSentinelNode(t, sentinel, "mymaster"), openSentinelNode(t, sentinel, "mymaster")
	waitFor(t, 5*time.Second, "nodes not connected through the sentinel", func() bool { return a.b.Up() && b.b.Up() })
	if got, want := a.b.Address(), "sentinel mymaster via "+sentinel.Addr(); got != want {
		t.Fatalf("Address() = %q, want %q", got, want)
	}
	now := time.Now()
	before := ratelimit.Ban{Target: ratelimit.ClientIDTarget("before"), Reason: "operator", Until: now.Add(time.Hour)}
	if err := a.bans.Add(now, before); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Second, "a ban made on node a not enforced on node b", func() bool { return banned(b, "before") })

	primary.Stop()
	killed := time.Now()
	waitFor(t, 5*time.Second, "the nodes did not report the primary unavailable", func() bool {
		return a.saw(Unavailable) && b.saw(Unavailable)
	})
	waitFor(t, 15*time.Second, "the sentinel did not promote the replica", func() bool { return replica.Info("role") == "master" })
	waitFor(t, 10*time.Second, "the nodes did not come back on the promoted replica", func() bool {
		return a.b.Up() && b.b.Up() && a.saw(Back) && b.saw(Back)
	})
	t.Logf("both nodes back on the promoted replica %v after the primary died", time.Since(killed).Round(time.Millisecond))

	after := ratelimit.Ban{Target: ratelimit.ClientIDTarget("after"), Reason: "operator", Until: time.Now().Add(time.Hour)}
	if err := b.bans.Add(time.Now(), after); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Second, "a ban made on node b after the failover not enforced on node a", func() bool { return banned(a, "after") })
	if !banned(a, "before") || !banned(b, "before") {
		t.Fatal("the ban made before the failover was lost")
	}
	// Both bans are in the promoted primary: a node that starts now, with
	// nothing local, enforces them.
	c := openSentinelNode(t, sentinel, "mymaster")
	waitFor(t, 5*time.Second, "a new node does not see the bans in the promoted primary", func() bool {
		return banned(c, "before") && banned(c, "after")
	})
	if keys, err := replica.Do("DBSIZE"); err != nil || keys == ":0" {
		t.Fatalf("promoted replica holds no keys: %s %v", keys, err)
	}
}

// TestSentinelOptions: a backend is given an address or a sentinel, not
// both, and names where it is in its messages.
func TestSentinelOptions(t *testing.T) {
	tests := []struct {
		name string
		o    Options
		want string // error, or Address() when ""
		addr string
	}{
		{"address", Options{Address: "r:6379"}, "", "r:6379"},
		{"sentinel", Options{SentinelMaster: "m", SentinelAddresses: []string{"s1:26379", "s2:26379"}}, "", "sentinel m via s1:26379,s2:26379"},
		{"both", Options{Address: "r:6379", SentinelMaster: "m", SentinelAddresses: []string{"s1:26379"}}, "both an address and a sentinel master", ""},
		{"no sentinels", Options{SentinelMaster: "m"}, "no sentinel addresses", ""},
		{"nothing", Options{}, "no address", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := Open(tc.o)
			if tc.want != "" {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("got %v, want %q", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			if got := b.Address(); got != tc.addr {
				t.Fatalf("Address() = %q, want %q", got, tc.addr)
			}
		})
	}
}
