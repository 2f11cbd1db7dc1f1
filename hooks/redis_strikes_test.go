package hooks

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mqttwaf/mqttwaf/ratelimit"
)

// Two brokers sharing one redis-server: a repeat offender's ban back-off
// and the escalation's disconnect count follow the client from node to
// node.

// TestRedisFlappingBackoffAcrossNodes: a client ID banned for flapping on
// one node that flaps on the other once the ban has ended is banned there
// as a repeat offender: strike 2, twice the first ban (not strike 1 again).
func TestRedisFlappingBackoffAcrossNodes(t *testing.T) {
	a, b, _ := startPair(t, `rates:
  connect: {per_ip: 100000/s, per_network: 100000/s}
  flapping: {connects: 2/min, per_ip: 100000/min, ban: 1s}
  new_client_ids: {per_ip: 100000/min, per_username: 100000/min, global: 100000/min}
`)
	nodes := []*testBroker{a, b}
	banOn := func(n *testBroker) (ratelimit.Ban, bool) {
		return n.waf.Bans().Check(time.Now(), "flappy", "", netipZero)
	}
	// Reconnecting every 150 ms, alternately to each node (the pace of
	// TestRedisFlappingSplitAcrossNodesBans).
	tick := time.NewTicker(150 * time.Millisecond)
	defer tick.Stop()
	var first ratelimit.Ban
	var other *testBroker
	for i := 0; ; i++ {
		n := nodes[i%2]
		rc := connackOf(t, n.addr, "flappy", "", "")
		if rc == 0x8A {
			first, _ = banOn(n)
			other = nodes[(i+1)%2]
			break
		}
		if rc != 0 || i > 6 {
			t.Fatalf("CONNECT %d: 0x%02x", i+1, rc)
		}
		<-tick.C
	}
	if first.Strikes != 1 || first.Until.Sub(first.Since) != time.Second {
		t.Fatalf("first ban: %d strikes, %v; want 1, the policy's 1s", first.Strikes, first.Until.Sub(first.Since))
	}
	pollUntil(t, time.Second, "the ban on the other node", func() bool { _, ok := banOn(other); return ok })
	pollUntil(t, 3*time.Second, "the first ban to end on the other node", func() bool { _, ok := banOn(other); return !ok })
	// Still over flapping.connects across both nodes: banned again, on the
	// node that did not make the first ban.
	if rc := connackOf(t, other.addr, "flappy", "", ""); rc != 0x8A {
		t.Fatalf("flapping on after the first ban ended: 0x%02x, want 0x8A", rc)
	}
	second, ok := banOn(other)
	if !ok || second.Strikes != 2 || second.Until.Sub(second.Since) != 2*time.Second {
		t.Fatalf("second ban, on the other node: %d strikes, %v; want 2, 2s", second.Strikes, second.Until.Sub(second.Since))
	}
}

// TestRedisEscalationSplitAcrossNodesBans: a client disconnected for rate
// violations alternately on each node is banned after
// rates.escalation.ban_after disconnects in total, not per node.
func TestRedisEscalationSplitAcrossNodesBans(t *testing.T) {
	a, b, srv := startPair(t, "rates:\n  publish: {per_connection: {messages: 5/s, burst: 5}}\n"+
		"  escalation: {disconnect_after: 3, ban_after: 2}\n"+ratesLifted)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer rdb.Close()
	// shared is the disconnect count the nodes have written to Redis.
	shared := func() int {
		ctx := context.Background()
		keys, err := rdb.Keys(ctx, "t:"+t.Name()+":rate:escalation:flooder:*").Result()
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, k := range keys {
			v, _ := strconv.Atoi(rdb.Get(ctx, k).Val())
			n += v
		}
		return n
	}
	nodes := []*testBroker{a, b}
	// Two disconnects (one per node) are within ban_after; the third,
	// back on the first node, bans (0x87: 0x8A is not a DISCONNECT code).
	for round, want := range []byte{0x96, 0x96, 0x87} {
		d, accepted, refused := floodToDisconnect(t, mustV5(t, nodes[round%2].addr, "flooder", ""))
		if d == nil || d.ReasonCode != want {
			t.Fatalf("round %d: DISCONNECT %+v after %d accepted and %d refused, want 0x%02x", round+1, d, accepted, refused, want)
		}
		if round == 2 {
			break
		}
		pollUntil(t, 2*time.Second, "the disconnect counted in Redis", func() bool { return shared() == round+1 })
		// The device reconnects once the other node has read the count
		// back (within a sync interval or two: a device's back-off).
		exchanged(t, nodes[round%2], nodes[(round+1)%2])
	}
	for _, n := range nodes {
		pollUntil(t, time.Second, "the ban on both nodes", func() bool {
			_, ok := n.waf.Bans().Check(time.Now(), "flooder", "", netipZero)
			return ok
		})
		if rc := connackOf(t, n.addr, "flooder", "", ""); rc != 0x8A {
			t.Fatalf("reconnect after the ban: 0x%02x, want 0x8A", rc)
		}
	}
	// An operator lifts the ban: the shared count is forgiven with it, so
	// the next disconnect is the first again, not a ban.
	if ok, err := a.waf.Bans().Remove(ratelimit.ClientIDTarget("flooder")); !ok || err != nil {
		t.Fatalf("remove: %v %v", ok, err)
	}
	pollUntil(t, time.Second, "the lift on the other node", func() bool {
		_, ok := b.waf.Bans().Check(time.Now(), "flooder", "", netipZero)
		return !ok
	})
	if n := shared(); n != 0 {
		t.Fatalf("disconnect count in Redis after the lift: %d, want 0", n)
	}
	if d, _, _ := floodToDisconnect(t, mustV5(t, a.addr, "flooder", "")); d == nil || d.ReasonCode != 0x96 {
		t.Fatalf("first disconnect after the lift: %+v, want 0x96", d)
	}
}
