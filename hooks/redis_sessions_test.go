package hooks

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/redis/go-redis/v9"
)

// Session ownership across nodes (sessions.takeover with state.backend
// redis): a node knows only the sessions connected through itself, so the
// owner of every admitted client ID is recorded in Redis.

func TestRedisSessionTakeoverAcrossNodes(t *testing.T) {
	creds := credsFile(t, "dev1:device:dev1-secret", "dev2:device:dev2-secret")
	a, b, _ := startPair(t, `
identity: {credentials_file: `+creds+`, anonymous: {allow: never}}
roles: {device: {publish: ["fleet/{username}/telemetry"]}}
`)
	// dev1's persistent session, connected through node A.
	expiry := uint32(3600)
	cp := &paho.Connect{ClientID: "dev1", Username: "dev1", Password: []byte("dev1-secret"), PasswordFlag: true,
		CleanStart: true, Properties: &paho.ConnectProperties{SessionExpiryInterval: &expiry}}
	c, err := dialV5(t, a.addr, cp)
	if err != nil {
		t.Fatal(err)
	}
	// dev2 (a valid identity; the policy binds no client IDs) may not take
	// it over through node B, which has no session of dev1.
	if rc := connackOf(t, b.addr, "dev1", "dev2", "dev2-secret"); rc != 0x85 {
		t.Fatalf("dev2 with dev1's client ID on the other node: 0x%02x, want 0x85", rc)
	}
	b.events.wait(t, "sessions.takeover", "session_owned_by_other_identity", time.Second)
	// dev1 goes offline; its session lives on for an hour on node A.
	_ = c.Disconnect(&paho.Disconnect{})
	a.waitGone(t, "dev1")
	if rc := connackOf(t, b.addr, "dev1", "dev2", "dev2-secret"); rc != 0x85 {
		t.Fatalf("dev2 with dev1's client ID while its session is kept: 0x%02x, want 0x85", rc)
	}
	// dev1 itself may move to node B.
	if rc := connackOf(t, b.addr, "dev1", "dev1", "dev1-secret"); rc != 0 {
		t.Fatalf("dev1 moving to the other node: 0x%02x, want 0", rc)
	}
	// Other client IDs are not affected.
	if rc := connackOf(t, b.addr, "dev2", "dev2", "dev2-secret"); rc != 0 {
		t.Fatalf("dev2 with its own client ID: 0x%02x", rc)
	}
}

// TestRedisSessionOwnerUnknown: with Redis stopped, a client ID with no
// session on this node gets what sessions.owner_unknown says.
func TestRedisSessionOwnerUnknown(t *testing.T) {
	creds := credsFile(t, "dev1:device:dev1-secret", "dev2:device:dev2-secret")
	for _, tc := range []struct {
		setting string
		want    byte
	}{
		{"local", 0},
		{"refuse", 0x88},
	} {
		t.Run(tc.setting, func(t *testing.T) {
			a, _, srv := startPair(t, `
identity: {credentials_file: `+creds+`, anonymous: {allow: never}}
roles: {device: {publish: ["fleet/{username}/telemetry"]}}
sessions: {owner_unknown: `+tc.setting+`}
`)
			srv.Stop()
			pollUntil(t, 5*time.Second, "redis to be seen unavailable", func() bool { return !a.waf.State().Up })
			if rc := connackOf(t, a.addr, "dev1", "dev1", "dev1-secret"); rc != tc.want {
				t.Fatalf("owner_unknown %s, redis stopped: 0x%02x, want 0x%02x", tc.setting, rc, tc.want)
			}
		})
	}
}

// TestRedisConnectOneRoundTrip counts the scripts a CONNECT runs on Redis
// (INFO commandstats): one before the CONNACK, the session claim with the
// new-client-ID budget for a client ID new to the node, the claim alone for
// one it admitted lately; then one when the session is established (after
// the CONNACK), which the test waits for.
func TestRedisConnectOneRoundTrip(t *testing.T) {
	a, _, srv := startPair(t, "")
	owner := "t:" + t.Name() + ":sessions:owner:"
	exists := func(id string) bool {
		s, err := srv.Do("EXISTS", owner+id)
		if err != nil {
			t.Fatal(err)
		}
		return s == ":1"
	}
	cycle := func(id string) int {
		t.Helper()
		before := srv.Calls("evalsha", "eval")
		c := mustV5(t, a.addr, id, "")
		pollUntil(t, 5*time.Second, "the session of "+id+" to be recorded", func() bool { return exists(id) })
		n := srv.Calls("evalsha", "eval") - before - 1 // the session established
		_ = c.Disconnect(&paho.Disconnect{})
		pollUntil(t, 5*time.Second, "the session of "+id+" to end", func() bool { return !exists(id) })
		return n
	}
	// The scripts' first runs load them (EVALSHA, then EVAL): a new client
	// ID, then a known one.
	cycle("warm-up")
	cycle("warm-up")
	for _, tc := range []struct {
		name, id string
	}{
		{"client ID new to the node", "dev1"},
		{"client ID the node admitted lately", "dev1"},
		{"another new client ID", "dev2"},
	} {
		if n := cycle(tc.id); n != 1 {
			t.Errorf("%s: %d Redis round trips before the CONNACK, want 1", tc.name, n)
		}
	}
}

// TestRedisFlappingBanSpendsOneSlot: the session claim (which also spends
// the new-client-ID budget in Redis) runs before flapping, so that
// CONNECTs refused for another identity's session do not count towards
// that client ID's flapping ban; the CONNECT that flapping bans has spent
// its one slot, and the CONNECTs refused by the ban after it spend none.
func TestRedisFlappingBanSpendsOneSlot(t *testing.T) {
	a, _, srv := startPair(t, `rates:
  connect: {per_ip: 100000/s, per_network: 100000/s}
  flapping: {connects: 100000/min, per_ip: 3/min, ban: 1m}
  new_client_ids: {per_ip: 100000/min, per_username: 100000/min, global: 10/min}
`)
	for i := range 6 {
		want := byte(0)
		if i >= 3 {
			want = 0x8A // the 4th CONNECT from the address: flapping; then the ban
		}
		if rc := connackOf(t, a.addr, fmt.Sprintf("flap-%d", i), "", ""); rc != want {
			t.Fatalf("CONNECT %d: 0x%02x, want 0x%02x", i+1, rc, want)
		}
	}
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	spent := 0
	w := time.Now().UnixNano() / int64(time.Minute) // the budget's windows: this minute and the last
	for _, k := range []int64{w, w - 1} {
		n, err := rdb.HGet(context.Background(), fmt.Sprintf("t:%s:new_ids:count:%d", t.Name(), k), "").Int()
		if err != nil && err != redis.Nil {
			t.Fatal(err)
		}
		spent += n
	}
	if spent != 4 {
		t.Fatalf("%d new client IDs counted in redis, want 4 (3 admitted, 1 banned by flapping; none refused by the ban after it)", spent)
	}
}

// TestRedisTakeoverAttemptsDoNotBanTheOwner: another identity trying a
// device's client ID again and again through the other node is refused
// (0x85) each time without counting towards the client ID's flapping ban:
// the device still connects, on either node.
func TestRedisTakeoverAttemptsDoNotBanTheOwner(t *testing.T) {
	creds := credsFile(t, "dev1:device:dev1-secret", "dev2:device:dev2-secret")
	a, b, _ := startPair(t, `
identity: {credentials_file: `+creds+`, anonymous: {allow: never}}
roles: {device: {publish: ["fleet/{username}/telemetry"]}}
rates: {flapping: {connects: 3/min, per_ip: 1000/min}}
`)
	expiry := uint32(3600)
	c, err := dialV5(t, a.addr, &paho.Connect{ClientID: "dev1", Username: "dev1", Password: []byte("dev1-secret"), PasswordFlag: true,
		CleanStart: true, Properties: &paho.ConnectProperties{SessionExpiryInterval: &expiry}})
	if err != nil {
		t.Fatal(err)
	}
	_ = c.Disconnect(&paho.Disconnect{})
	a.waitGone(t, "dev1")
	for i := range 6 {
		if rc := connackOf(t, b.addr, "dev1", "dev2", "dev2-secret"); rc != 0x85 {
			t.Fatalf("dev2's attempt %d with dev1's client ID: 0x%02x, want 0x85", i+1, rc)
		}
	}
	for _, n := range []*testBroker{a, b} {
		if rc := connackOf(t, n.addr, "dev1", "dev1", "dev1-secret"); rc != 0 {
			t.Fatalf("dev1 after dev2's attempts: 0x%02x, want 0", rc)
		}
	}
}
