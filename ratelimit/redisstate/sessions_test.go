package redisstate

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mqttwaf/mqttwaf/ratelimit/redisstate/redistest"
)

// TestOwnersAcrossNodes walks one client ID through the owner records of
// two nodes: claims racing, a session established on one node, kept after
// its connection closes, moved by its own identity, and ended.
func TestOwnersAcrossNodes(t *testing.T) {
	srv := redistest.Start(t)
	nodes := openNodes(t, srv, 2)
	a, b := nodes[0].Owners("sessions", time.Minute, 10), nodes[1].Owners("sessions", time.Minute, 10)
	prefix := "t:" + t.Name() + ":sessions:"
	ttl := func(key string) time.Duration {
		s, err := srv.Do("PTTL", prefix+key)
		if err != nil {
			t.Fatal(err)
		}
		n, _ := strconv.Atoi(strings.TrimPrefix(s, ":")) // an integer reply
		return time.Duration(n) * time.Millisecond
	}
	claim := func(o *Owners, owner string, want int) {
		t.Helper()
		if got, err := o.Claim("dev1", owner, 10*time.Second); err != nil || got != want {
			t.Fatalf("claim dev1 for %s: %d %v, want %d", owner, got, err, want)
		}
	}
	claim(a, "dev1", ClaimOK)
	claim(b, "dev2", ClaimedByOther) // two CONNECTs racing on two nodes
	claim(b, "dev1", ClaimOK)        // the same identity may race itself
	if d := ttl("claim:dev1"); d <= 0 || d > 10*time.Second {
		t.Fatalf("claim TTL %v, want at most the claim's 10s", d)
	}
	tokA := new(int)
	a.Established("dev1", "dev1", tokA)
	if s, _ := srv.Do("EXISTS", prefix+"claim:dev1"); s != ":0" {
		t.Fatalf("claim left after the session was established: %s", s)
	}
	claim(b, "dev2", OwnedByOther)
	if d := ttl("owner:dev1"); d <= 0 || d > time.Minute {
		t.Fatalf("connected owner TTL %v, want at most 1m", d)
	}
	// The connection closes; the session is kept an hour: still owned.
	a.Ended("dev1", "dev1", tokA, time.Hour)
	if d := ttl("owner:dev1"); d <= 59*time.Minute || d > time.Hour {
		t.Fatalf("owner TTL after disconnect %v, want the session's hour", d)
	}
	claim(b, "dev2", OwnedByOther)
	// dev1 moves to node B; an old connection ending on A changes nothing.
	claim(b, "dev1", ClaimOK)
	tokB := new(int)
	b.Established("dev1", "dev1", tokB)
	a.Ended("dev1", "dev1", tokA, 0)
	if o, err := a.Owner("dev1"); err != nil || o != "dev1" {
		t.Fatalf("owner after moving: %q %v", o, err)
	}
	// The session ends with its connection on B: the record goes.
	b.Ended("dev1", "dev1", tokB, 0)
	if o, err := a.Owner("dev1"); err != nil || o != "" {
		t.Fatalf("owner after the session ended: %q %v", o, err)
	}
	claim(a, "dev2", ClaimOK)
}
