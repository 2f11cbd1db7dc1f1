package mqttwaf

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mqttwaf/mqttwaf/ratelimit/redisstate"
)

// state is what the WAF remembers across packets and across policy reloads.
// Every table here is keyed by something a client controls and is bounded:
// see the comment on each.
type state struct {
	addrs     addressing // fixed for the WAF's lifetime
	counters  counters
	conns     connTable
	claims    claimTable
	lockouts  *lockouts
	passwords *passwordChecker
	bans      banStore
	retained  retainedTable
	// handshakes are the TLS handshake budgets (tls.go).
	handshakes handshakeLimits
	// viewKey keys the markers of stored redacted views (views.go).
	viewKey []byte

	// reloadsOK and reloadsFailed count WAF.Reload calls, for operators.
	reloadsOK, reloadsFailed atomic.Uint64

	// statePolicy is the state section the WAF started with; shared is
	// its Redis backend (nil for memory).
	statePolicy StatePolicy
	shared      *redisstate.Backend
	// owners records session owners across nodes (sessions.takeover);
	// nil with the memory backend.
	owners *redisstate.Owners

	ratesMu sync.Mutex
	rates   *rateState // the running one; replaced only by commitRates
}

// connTable counts open sockets, broker-wide and per remote network (see
// AddressesPolicy), for the connection caps. An entry exists only while its
// network has an open socket and sockets are capped
// (broker.max_connections), so the table is bounded by that cap.
type connTable struct {
	mu    sync.Mutex
	open  int
	perIP map[netip.Prefix]int
}

// add counts a new socket and returns the counts including it.
func (t *connTable) add(ip netip.Prefix) (open, fromIP int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.perIP == nil {
		t.perIP = make(map[netip.Prefix]int)
	}
	t.open++
	t.perIP[ip]++
	return t.open, t.perIP[ip]
}

// remove forgets a socket counted by add.
func (t *connTable) remove(ip netip.Prefix) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.open--
	if n := t.perIP[ip] - 1; n > 0 {
		t.perIP[ip] = n
	} else {
		delete(t.perIP, ip)
	}
}

func (t *connTable) len() (open, ips int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.open, len(t.perIP)
}

// claimTable closes the race between two CONNECTs with the same client ID:
// mochi makes a session visible only after authentication, so both could pass
// the takeover check and the second would silently take the first one's
// session. A CONNECT that passes claims its client ID for its identity until
// the session is established (or the claim expires, after the CONNECT
// timeout); a CONNECT from another identity meanwhile is refused.
//
// Bounded: at most max entries; expired claims are evicted when the table is
// full, and if it is still full the CONNECT is refused (fail closed).
type claimTable struct {
	mu sync.Mutex
	m  map[string]claim
}

type claim struct {
	owner   string
	expires time.Time
}

type claimResult int

const (
	claimed      claimResult = iota // the claim is ours (new, or already ours)
	claimedOther                    // another identity holds the client ID
	claimsFull                      // the table is full of live claims
)

func (t *claimTable) take(id, owner string, now time.Time, ttl time.Duration, max int) claimResult {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil {
		t.m = make(map[string]claim)
	}
	if c, ok := t.m[id]; ok && now.Before(c.expires) {
		if c.owner != owner {
			return claimedOther
		}
	} else if len(t.m) >= max {
		for k, c := range t.m {
			if !now.Before(c.expires) {
				delete(t.m, k)
			}
		}
		if len(t.m) >= max {
			return claimsFull
		}
	}
	t.m[id] = claim{owner: owner, expires: now.Add(ttl)}
	return claimed
}

func (t *claimTable) release(id, owner string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if c, ok := t.m[id]; ok && c.owner == owner {
		delete(t.m, id)
	}
}

func (t *claimTable) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.m)
}
