package redisstate

import (
	"net/netip"
	"testing"
	"time"

	"github.com/mqttwaf/mqttwaf/ratelimit"
	"github.com/mqttwaf/mqttwaf/ratelimit/redisstate/redistest"
)

// TestBansShareStrikes: a target banned for an offence on one node and
// offending again on another is banned there as a repeat offender (strike
// 2, twice as long), whether the other node learnt of the first ban from
// its announcement or from a resync; a ban lifted by an operator forgives
// on every node.
func TestBansShareStrikes(t *testing.T) {
	srv := redistest.Start(t)
	nodes := openNodes(t, srv, 2)
	newBans := func(b *Backend) *Bans {
		l, err := ratelimit.NewBanList(ratelimit.BanOptions{}) // 5m doubling to 1h
		if err != nil {
			t.Fatal(err)
		}
		return b.Bans("bans", l)
	}
	a, b := newBans(nodes[0]), newBans(nodes[1])
	tg := ratelimit.ClientIDTarget("flappy")
	now := time.Now()
	first, err := a.Strike(now, tg, "flapping")
	if err != nil || first.Strikes != 1 {
		t.Fatalf("first strike on A: %+v %v", first, err)
	}
	banned := func(s *Bans) func() bool {
		return func() bool { _, ok := s.Check(time.Now(), "flappy", "", netip.Addr{}); return ok }
	}
	waitFor(t, 5*time.Second, "A's ban not announced to B", banned(b))

	// After A's ban ends, the device offends on B: strike 2, 10 minutes.
	later := first.Until.Add(time.Second)
	second, err := b.Strike(later, tg, "flapping")
	if err != nil {
		t.Fatal(err)
	}
	if second.Strikes != 2 || second.Until.Sub(second.Since) != 10*time.Minute {
		t.Fatalf("strike on B after a ban on A: %d strikes, %v; want 2, 10m", second.Strikes, second.Until.Sub(second.Since))
	}

	// A node that joins later learns the strikes from its resync.
	c := newBans(openNodes(t, srv, 1)[0])
	waitFor(t, 5*time.Second, "no ban on the joining node", func() bool {
		l, _ := c.List(later)
		return len(l) == 1 && l[0].Strikes == 2
	})
	third, err := c.Strike(second.Until.Add(time.Second), tg, "flapping")
	if err != nil || third.Strikes != 3 || third.Until.Sub(third.Since) != 20*time.Minute {
		t.Fatalf("strike on a node that resynced: %+v %v; want 3 strikes, 20m", third, err)
	}

	// An operator lifts the ban on C: A forgives, its next ban is strike 1.
	waitFor(t, 5*time.Second, "C's ban not on A", func() bool {
		l, _ := a.List(third.Since)
		return len(l) == 1 && l[0].Strikes == 3
	})
	if ok, err := c.Remove(tg); !ok || err != nil {
		t.Fatalf("remove on C: %v %v", ok, err)
	}
	waitFor(t, 5*time.Second, "the lift not on A", func() bool { l, _ := a.List(third.Since); return len(l) == 0 })
	if ban, _ := a.Strike(third.Since, tg, "flapping"); ban.Strikes != 1 {
		t.Fatalf("strike on A after the lift: %d strikes, want 1", ban.Strikes)
	}
}
