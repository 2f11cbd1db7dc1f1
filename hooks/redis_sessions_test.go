package hooks

import (
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
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
