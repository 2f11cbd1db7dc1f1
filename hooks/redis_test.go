package hooks

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/redis/go-redis/v9"

	"github.com/mqttwaf/mqttwaf/mqttwaf"
	"github.com/mqttwaf/mqttwaf/ratelimit"
	"github.com/mqttwaf/mqttwaf/ratelimit/redisstate/redistest"
)

// Two brokers sharing one real redis-server (state.backend: redis), as two
// nodes behind a load balancer: what one node learns, the other enforces.

// startPair starts a redis-server and two brokers running policyYAML with
// the state in it, and waits until both are connected to it.
func startPair(t *testing.T, policyYAML string, stateKeys ...string) (a, b *testBroker, srv *redistest.Server) {
	t.Helper()
	srv = redistest.Start(t)
	// A generous timeout: on a loaded machine under -race a 250 ms command
	// timeout would make Redis look unavailable now and then, and these
	// tests are about sharing, not outages (TestRedisStoppedAndRestarted is).
	state := fmt.Sprintf("state: {backend: redis, %sredis: {address: %q, key_prefix: %q, timeout: 2s}}\n", strings.Join(stateKeys, ""), srv.Addr(), "t:"+t.Name()+":")
	a = startBroker(t, policyYAML+state, brokerOpts{})
	b = startBroker(t, policyYAML+state, brokerOpts{})
	for _, x := range []*testBroker{a, b} {
		t.Cleanup(func() { _ = x.waf.Stop() })
		pollUntil(t, 5*time.Second, "the state backend to connect", func() bool { s := x.waf.State(); return s.Up && s.Nodes == 2 })
	}
	return a, b, srv
}

// pollUntil polls cond until it holds, failing the test after d.
func pollUntil(t testing.TB, d time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > d {
			t.Fatalf("no %s within %v", what, d)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Since(start)
}

func TestRedisBanOnOneNodeRefusesOnTheOther(t *testing.T) {
	a, b, _ := startPair(t, "")
	if rc := connackOf(t, b.addr, "dev-7", "", ""); rc != 0 {
		t.Fatalf("before the ban: 0x%02x", rc)
	}
	now := time.Now()
	if err := a.waf.Bans().Add(now, ratelimit.Ban{Target: ratelimit.ClientIDTarget("dev-7"), Reason: "operator", Until: now.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	took := pollUntil(t, time.Second, "ban on the other node", func() bool {
		_, banned := b.waf.Bans().Check(time.Now(), "dev-7", "", netipZero)
		return banned
	})
	t.Logf("ban made on node A in force on node B after %v", took)
	if rc := connackOf(t, b.addr, "dev-7", "", ""); rc != 0x8A {
		t.Fatalf("banned client on the other node: 0x%02x, want 0x8A", rc)
	}
	// Lifting it on B lifts it on A.
	if ok, err := b.waf.Bans().Remove(ratelimit.ClientIDTarget("dev-7")); !ok || err != nil {
		t.Fatalf("remove: %v %v", ok, err)
	}
	pollUntil(t, time.Second, "lift on the first node", func() bool {
		_, banned := a.waf.Bans().Check(time.Now(), "dev-7", "", netipZero)
		return !banned
	})
	if rc := connackOf(t, a.addr, "dev-7", "", ""); rc != 0 {
		t.Fatalf("after the lift: 0x%02x", rc)
	}
}

func TestRedisPasswordGuessesSplitAcrossNodesLockOut(t *testing.T) {
	creds := credsFile(t, "dev1:device:dev1-secret", "dev2:device:dev2-secret")
	a, b, _ := startPair(t, `
identity: {credentials_file: `+creds+`, anonymous: {allow: never}, lockout: {max_failures: 4, duration: 1m}}
roles: {device: {publish: ["fleet/{username}/telemetry"]}}
`)
	nodes := []*testBroker{a, b}
	for i := range 5 { // more than max_failures in all, never more than 3 on one node
		if rc := connackOf(t, nodes[i%2].addr, "dev1", "dev1", "guess"); rc != 0x86 {
			t.Fatalf("guess %d: 0x%02x", i, rc)
		}
	}
	for _, n := range nodes {
		pollUntil(t, time.Second, "lockout on both nodes", func() bool {
			_, locked := n.waf.Lockouts().Check(time.Now(), "", "dev1", netipZero)
			return locked
		})
		if rc := connackOf(t, n.addr, "dev1", "dev1", "dev1-secret"); rc != 0x8A {
			t.Fatalf("right password while locked out: 0x%02x, want 0x8A", rc)
		}
		if rc := connackOf(t, n.addr, "dev2", "dev2", "dev2-secret"); rc != 0 {
			t.Fatalf("another user from the same address: 0x%02x", rc)
		}
	}
	// An operator lifts the lockout on one node: it is lifted on both, and
	// the failure counts are forgiven (the next wrong password does not
	// lock dev1 out again at once).
	if ok, err := a.waf.Lockouts().Remove(ratelimit.UsernameTarget("dev1")); !ok || err != nil {
		t.Fatalf("lift: %v %v", ok, err)
	}
	pollUntil(t, time.Second, "the lift on the other node", func() bool {
		_, locked := b.waf.Lockouts().Check(time.Now(), "", "dev1", netipZero)
		return !locked
	})
	if rc := connackOf(t, b.addr, "dev1", "dev1", "guess"); rc != 0x86 {
		t.Fatalf("a wrong password after the lift: 0x%02x", rc)
	}
	if rc := connackOf(t, b.addr, "dev1", "dev1", "dev1-secret"); rc != 0 {
		t.Fatalf("the right password after the lift: 0x%02x", rc)
	}
}

func TestRedisClientIDChurnSplitAcrossNodesHeldToOneBudget(t *testing.T) {
	a, b, _ := startPair(t, `rates:
  connect: {per_ip: 100000/s, per_network: 100000/s}
  flapping: {off: true}
  new_client_ids: {global: 10/min, per_ip: 100000/min, per_username: 100000/min}
`)
	admitted := 0
	for i := range 30 {
		n := []*testBroker{a, b}[i%2]
		switch rc := connackOf(t, n.addr, fmt.Sprintf("churn-%d", i), "", ""); rc {
		case 0:
			admitted++
		case 0x97:
		default:
			t.Fatalf("client %d: 0x%02x", i, rc)
		}
	}
	if admitted != 10 {
		t.Fatalf("%d new client IDs admitted across both nodes, want the global budget of 10", admitted)
	}
	// A client ID admitted on one node is known on the other: it
	// reconnects there without spending the (spent) budget.
	if rc := connackOf(t, b.addr, "churn-0", "", ""); rc != 0 {
		t.Fatalf("known client ID on the other node: 0x%02x", rc)
	}
}

// floodPolicy limits the user "flood" to 100 messages per second across
// all its connections; nothing else stops the flood (per connection and
// per address far above, no escalation to a disconnect).
const floodPolicy = `
identity: {credentials_file: %s, anonymous: {allow: never}}
roles: {device: {publish: ["flood/#"], retain: ["flood/#"]}}
rates:
  connect: {per_ip: 100000/s, per_network: 100000/s}
  flapping: {off: true}
  new_client_ids: {per_ip: 100000/min, per_username: 100000/min, global: 100000/min}
  publish:
    per_connection: {messages: 100000/s, bytes: 100MiB/s}
    per_username: {messages: 100/s, bytes: 100MiB/s}
    per_ip: {messages: 100000/s, bytes: 100MiB/s}
  escalation: {disconnect_after: 1000000}
`

// flood publishes from one client per node, as user flood, for d, and
// returns how many publishes each broker received and how many it refused.
func flood(t *testing.T, nodes []*testBroker, d time.Duration) (received, refused int) {
	t.Helper()
	var sent atomic.Int64
	var wg sync.WaitGroup
	stop := time.Now().Add(d)
	for i, n := range nodes {
		c := mustV5Pass(t, n.addr, fmt.Sprintf("flood-%d", i), "flood", "flood-secret")
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(stop) {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				_, err := c.Publish(ctx, &paho.Publish{Topic: "flood/x", Payload: []byte("x")})
				cancel()
				if err != nil {
					return
				}
				sent.Add(1)
				time.Sleep(200 * time.Microsecond) // ~2000/s per client: a flood 10x the limit, without starving the machine
			}
		}()
	}
	wg.Wait()
	pollUntil(t, 10*time.Second, "every publish to reach the brokers", func() bool {
		var got int64
		for _, n := range nodes {
			got += atomic.LoadInt64(&n.server.Info.MessagesReceived)
		}
		return got >= sent.Load()
	})
	for _, n := range nodes {
		received += int(atomic.LoadInt64(&n.server.Info.MessagesReceived))
		for _, c := range n.waf.Counters() {
			if c.Rule == "rates.publish" {
				refused += int(c.N)
			}
		}
	}
	return received, refused
}

func TestRedisFloodSplitAcrossNodesHeldToTheIdentityRate(t *testing.T) {
	creds := credsFile(t, "flood:device:flood-secret")
	const d, limit = 2 * time.Second, 100
	// The sliding window admits at most the limit in any second: over d
	// that is limit*(d+1s) at most (the flood spans parts of three
	// one-second windows), plus the stated error of the shared count
	// (README: 10% for two nodes).
	most := float64(limit) * (d.Seconds() + 1) * 1.1
	for _, tc := range []struct {
		backend string
		shared  bool
	}{{"redis", true}, {"memory", false}} {
		t.Run(tc.backend, func(t *testing.T) {
			var a, b *testBroker
			if tc.shared {
				a, b, _ = startPair(t, fmt.Sprintf(floodPolicy, creds))
			} else { // the control: two independent firewalls
				a, b = startBroker(t, fmt.Sprintf(floodPolicy, creds), brokerOpts{}), startBroker(t, fmt.Sprintf(floodPolicy, creds), brokerOpts{})
			}
			received, refused := flood(t, []*testBroker{a, b}, d)
			admitted := received - refused
			t.Logf("%s state, 2 nodes, %v: %d publishes received, %d admitted (limit %d/s, at most %.0f shared)", tc.backend, d, received, admitted, limit, most)
			if !tc.shared && received < 4*int(most) {
				// A machine too loaded to flood: the control shows nothing.
				t.Skipf("only %d publishes sent: too few to show two independent limits", received)
			}
			if tc.shared != (float64(admitted) <= most) {
				t.Fatalf("%d admitted across both nodes with %s state; the shared limit is %.0f", admitted, tc.backend, most)
			}
			// Shares err towards refusing, more so when a loaded machine
			// delays the syncs; half the limit is still far from starving.
			if admitted < limit*int(d.Seconds())/2 {
				t.Fatalf("%d admitted: the limit refuses more than it should", admitted)
			}
		})
	}
}

func TestRedisStoppedAndRestarted(t *testing.T) {
	creds := credsFile(t, "dev1:device:dev1-secret")
	a, b, srv := startPair(t, `
identity: {credentials_file: `+creds+`, anonymous: {allow: never}, lockout: {max_failures: 2, duration: 1m}}
roles: {device: {publish: ["fleet/{username}/telemetry"]}}
`)
	now := time.Now()
	if err := a.waf.Bans().Add(now, ratelimit.Ban{Target: ratelimit.ClientIDTarget("old-ban"), Reason: "operator", Until: now.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	pollUntil(t, time.Second, "ban on the other node", func() bool {
		_, banned := b.waf.Bans().Check(time.Now(), "old-ban", "", netipZero)
		return banned
	})

	srv.Stop()
	for _, n := range []*testBroker{a, b} {
		pollUntil(t, 5*time.Second, "redis_unavailable", func() bool { return !n.waf.State().Up })
		n.events.wait(t, "state.backend", "redis_unavailable", 5*time.Second)
	}
	// Never fail open: the bans each node knows are still enforced, and
	// password lockouts still work on each node's own counts.
	if rc := connackOf(t, b.addr, "old-ban", "dev1", "dev1-secret"); rc != 0x8A {
		t.Fatalf("known ban while redis is down: 0x%02x, want 0x8A", rc)
	}
	for i := range 3 {
		if rc := connackOf(t, a.addr, "dev1", "dev1", "guess"); rc != 0x86 {
			t.Fatalf("guess %d: 0x%02x", i, rc)
		}
	}
	if rc := connackOf(t, a.addr, "dev1", "dev1", "dev1-secret"); rc != 0x8A {
		t.Fatalf("lockout on the node's own count while redis is down: 0x%02x, want 0x8A", rc)
	}
	// A ban made while Redis is away is kept and shared once it is back.
	if err := a.waf.Bans().Add(time.Now(), ratelimit.Ban{Target: ratelimit.ClientIDTarget("new-ban"), Reason: "operator", Until: time.Now().Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}

	srv.Restart() // empty: no persistence
	for _, n := range []*testBroker{a, b} {
		pollUntil(t, 15*time.Second, "redis back", func() bool { return n.waf.State().Up })
		n.events.wait(t, "state.backend", "redis_back", 5*time.Second)
	}
	pollUntil(t, 2*time.Second, "the queued ban and lockout on the other node", func() bool {
		_, banned := b.waf.Bans().Check(time.Now(), "new-ban", "", netipZero)
		_, locked := b.waf.Lockouts().Check(time.Now(), "", "dev1", netipZero)
		return banned && locked
	})
	// Redis restarted empty, yet the ban made before the outage is back in
	// it: the nodes wrote back what they hold.
	pollUntil(t, 2*time.Second, "the old ban written back to redis", func() bool {
		v, _ := srv.Do("EXISTS", "t:"+t.Name()+":bans:client:old-ban")
		return v == ":1"
	})
	if rc := connackOf(t, b.addr, "new-ban", "", ""); rc != 0x8A {
		t.Fatalf("ban queued during the outage, on the other node: 0x%02x", rc)
	}
}

// TestRedisKeysAllExpire: every key the shared state writes has a TTL,
// so nothing an attacker makes the nodes write stays in Redis for ever.
func TestRedisKeysAllExpire(t *testing.T) {
	creds := credsFile(t, "dev1:device:dev1-secret", "flood:device:flood-secret")
	a, b, srv := startPair(t, fmt.Sprintf(floodPolicy, creds), "retained: shared, ")
	_ = a.waf.Bans().Add(time.Now(), ratelimit.Ban{Target: ratelimit.UsernameTarget("x"), Reason: "operator"}) // permanent
	_, _ = a.waf.Bans().Remove(ratelimit.UsernameTarget("x"))                                                  // a tombstone
	_ = b.waf.Bans().Add(time.Now(), ratelimit.Ban{Target: ratelimit.ClientIDTarget("y"), Reason: "operator"})
	connackOf(t, a.addr, "dev1", "dev1", "guess")
	// A persistent session, kept after its connection closes: its owner
	// record expires with it.
	expiry := uint32(60)
	if c, err := dialV5(t, b.addr, &paho.Connect{ClientID: "kept", Username: "dev1", Password: []byte("dev1-secret"), PasswordFlag: true,
		CleanStart: true, Properties: &paho.ConnectProperties{SessionExpiryInterval: &expiry}}); err != nil {
		t.Fatal(err)
	} else {
		// A retained message: the shared retained accounting's keys.
		if _, err := c.Publish(context.Background(), &paho.Publish{Topic: "flood/status", QoS: 1, Retain: true, Payload: []byte("up")}); err != nil {
			t.Fatal(err)
		}
		_ = c.Disconnect(&paho.Disconnect{})
	}
	flood(t, []*testBroker{a, b}, 300*time.Millisecond)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer rdb.Close()
	ctx := context.Background()
	kinds := map[string]bool{}
	defer func() { t.Logf("key kinds seen: %v", kinds) }()
	pollUntil(t, 2*time.Second, "every kind of key in redis", func() bool {
		keys, err := rdb.Keys(ctx, "*").Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			rest := strings.TrimPrefix(k, "t:"+t.Name()+":")
			kind, _, _ := strings.Cut(rest, ":")
			if kind == "retained" { // retained:topics, :expiry, :use
				kind = rest
			} else if kind == "rate" || kind == "fail" || kind == "new_ids" || kind == "sessions" {
				kind = rest[:strings.IndexByte(rest, ':')+1+strings.IndexByte(rest[strings.IndexByte(rest, ':')+1:], ':')]
			}
			kinds[kind] = true
			if ttl := rdb.PTTL(ctx, k).Val(); ttl == -1 { // (-2: it expired since KEYS)
				t.Fatalf("key %q has no TTL", k)
			}
		}
		return len(kinds) >= 7 && kinds["sessions:owner"] && kinds["retained:topics"] && kinds["retained:expiry"] && kinds["retained:use"]
	})
}

var netipZero = mqttwaf.ParseRemoteIP("")

// exchanged waits until what node from has counted so far is in Redis and
// node to has read it back: a sync of from's that started after now has
// completed, and then one of to's (a key either used in the last seconds
// is read back at every sync).
func exchanged(t *testing.T, from, to *testBroker) {
	t.Helper()
	t0 := time.Now()
	pollUntil(t, 5*time.Second, "a sync of the node that counted", func() bool { return from.waf.State().LastSync.After(t0) })
	t1 := time.Now()
	pollUntil(t, 5*time.Second, "a sync of the other node", func() bool { return to.waf.State().LastSync.After(t1) })
}

// TestRedisFlappingSplitAcrossNodesBans: a client ID reconnecting in a
// loop, alternately to each node (as a load balancer spreads it), is banned
// for flapping after the policy's count across both nodes, not after twice
// that.
func TestRedisFlappingSplitAcrossNodesBans(t *testing.T) {
	a, b, _ := startPair(t, `rates:
  connect: {per_ip: 100000/s, per_network: 100000/s}
  flapping: {connects: 4/min, per_ip: 100000/min, ban: 1m}
  new_client_ids: {per_ip: 100000/min, per_username: 100000/min, global: 100000/min}
`)
	// A device reconnecting every 150 ms, alternately through each node:
	// longer than the 100 ms sync interval the shared counts are exchanged
	// at. On a loaded machine a sync can take longer; the next CONNECT then
	// waits for the exchange (the README's consistency: one interval).
	tick := time.NewTicker(150 * time.Millisecond)
	defer tick.Stop()
	nodes := []*testBroker{a, b}
	for i := 1; ; i++ {
		if i > 1 {
			exchanged(t, nodes[(i-1)%2], nodes[i%2])
		}
		rc := connackOf(t, nodes[i%2].addr, "flappy", "", "")
		if rc == 0x8A {
			if i != 5 {
				t.Fatalf("banned at CONNECT %d, want 5 (more than flapping.connects 4 across both nodes)", i)
			}
			break
		}
		if rc != 0 || i > 8 {
			t.Fatalf("CONNECT %d: 0x%02x", i, rc)
		}
		<-tick.C
	}
	pollUntil(t, time.Second, "the flapping ban on both nodes", func() bool {
		_, onA := a.waf.Bans().Check(time.Now(), "flappy", "", netipZero)
		_, onB := b.waf.Bans().Check(time.Now(), "flappy", "", netipZero)
		return onA && onB
	})
}

// TestRedisNewTopicsSplitAcrossNodesHeldToOneBudget: one identity
// publishing new topics through two nodes is held to one new-topic budget.
func TestRedisNewTopicsSplitAcrossNodesHeldToOneBudget(t *testing.T) {
	creds := credsFile(t, "sensor:device:sensor-secret")
	a, b, _ := startPair(t, `
identity: {credentials_file: `+creds+`, anonymous: {allow: never}}
roles: {device: {publish: ["t/#"]}}
rates:
  connect: {per_ip: 100000/s, per_network: 100000/s}
  flapping: {off: true}
  new_topics: {per_identity: 10/h}
`)
	clients := []*v5{mustV5Pass(t, a.addr, "s-a", "sensor", "sensor-secret"), mustV5Pass(t, b.addr, "s-b", "sensor", "sensor-secret")}
	accepted := 0
	for i := range 30 {
		pr, err := clients[i%2].publish(t, fmt.Sprintf("t/%d", i), 1, []byte("1"))
		switch {
		case err == nil && pr.ReasonCode == 0:
			accepted++
		case pr != nil && pr.ReasonCode == 0x97:
		default:
			t.Fatalf("publish %d: %v %+v", i, err, pr)
		}
	}
	// Shares err towards refusing: between 5 and the budget (10), never
	// the 20 two independent budgets would admit.
	if accepted < 5 || accepted > 10 {
		t.Fatalf("%d new topics accepted across both nodes, want at most the budget of 10", accepted)
	}
	t.Logf("%d of 30 new topics accepted across both nodes (budget 10/h)", accepted)
}
