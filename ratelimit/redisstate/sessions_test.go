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

// TestClaimAdmit: the session claim and the new-client-ID budget check in
// one round trip, the budget spent only when the claim succeeds.
func TestClaimAdmit(t *testing.T) {
	srv := redistest.Start(t)
	nodes := openNodes(t, srv, 2)
	a, b := nodes[0].Owners("sessions", time.Minute, 10), nodes[1].Owners("sessions", time.Minute, 10)
	budgets := []Budget{{Group: "", Limit: 2}}
	// The script's first run loads it (EVALSHA, then EVAL): not counted.
	if _, _, err := nodes[0].Owners("warm", time.Minute, 10).ClaimAdmit("w", "w", 10*time.Second, time.Now(), "warm", time.Minute, budgets); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name         string
		o            *Owners
		id, owner    string
		established  bool // the session is then established by its owner
		claim        int
		wantAdmitted bool
	}{
		{"new client ID, claimed and counted (1 of 2)", a, "dev1", "dev1", true, ClaimOK, true},
		{"another identity's session: not counted", b, "dev1", "dev2", false, OwnedByOther, false},
		{"new client ID, claimed and counted (2 of 2)", b, "dev3", "dev3", false, ClaimOK, true},
		{"another identity's CONNECT under way: not counted", a, "dev3", "dev1", false, ClaimedByOther, false},
		{"over the budget: claimed, refused", a, "dev4", "dev4", false, ClaimOK, false},
		{"admitted in this window: reconnects", b, "dev1", "dev1", false, ClaimOK, true},
	} {
		before := srv.Calls("evalsha", "eval")
		claim, admitted, err := tc.o.ClaimAdmit(tc.id, tc.owner, 10*time.Second, time.Now(), "new_ids", time.Minute, budgets)
		if err != nil || claim != tc.claim || admitted != tc.wantAdmitted {
			t.Fatalf("%s: claim %d admitted %v (%v), want %d %v", tc.name, claim, admitted, err, tc.claim, tc.wantAdmitted)
		}
		if n := srv.Calls("evalsha", "eval") - before; n != 1 {
			t.Fatalf("%s: %d script calls, want 1 (one round trip)", tc.name, n)
		}
		if tc.established {
			tc.o.Established(tc.id, tc.owner, new(int))
		}
	}
	// Redis away: neither decision, an error at once.
	srv.Stop()
	waitFor(t, 5*time.Second, "redis to be seen unavailable", func() bool { return !nodes[0].Up() })
	if _, _, err := a.ClaimAdmit("dev5", "dev5", 10*time.Second, time.Now(), "new_ids", time.Minute, budgets); err != ErrUnavailable {
		t.Fatalf("redis stopped: %v, want ErrUnavailable", err)
	}
}
