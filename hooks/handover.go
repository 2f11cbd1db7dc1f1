package hooks

import (
	"runtime"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
)

// handoverMax bounds how long one connection can hold the hand-over of its
// client ID. mochi's steps it covers take microseconds; the bound only
// matters when mochi skips the hook that ends a hold (a CONNACK it could not
// write), so a stuck hold delays the next CONNECT of that ID, never stops it.
const handoverMax = 2 * time.Second

// handover serialises, per client ID, mochi's two ways of ending a session:
// a new connection taking it over, and a clean session's own clean-up when
// its connection ends.
//
// mochi v2.7.9 ends a clean session after its last hook (OnDisconnect): if
// no one has taken the session over yet, it removes the client's
// subscriptions and then the client, both by client ID. A device that
// reconnects at once can take over in between, and then loses its new
// subscriptions, or its place in the client table, so it receives nothing
// more while its connection looks healthy (TestCleanReconnectKeepsSubscription).
//
// So a connection holds its client ID from OnSessionEstablish (just before
// mochi takes over the old session) to OnSessionEstablished, and a clean
// session that ends holds it from OnDisconnect until mochi has removed it
// from the client table. Whichever comes second waits; if the clean-up came
// second it finds the session taken over, and mochi leaves it alone.
//
// The table holds one entry per hand-over in progress, removed when it ends
// or, for a hold whose end mochi skipped, when it has expired and the table
// has grown.
type handover struct {
	mu        sync.Mutex
	held      map[string]*hold
	nextSweep int
}

type hold struct {
	done  chan struct{}
	until time.Time
}

// acquire waits until no one else holds id (or their hold expired), and
// holds it. release ends the hold; calling it more than once is harmless.
func (g *handover) acquire(id string) (release func()) {
	for {
		now := time.Now()
		g.mu.Lock()
		h := g.held[id]
		if h == nil || now.After(h.until) {
			if g.held == nil {
				g.held = make(map[string]*hold)
			}
			g.sweep(now)
			mine := &hold{done: make(chan struct{}), until: now.Add(handoverMax)}
			g.held[id] = mine
			g.mu.Unlock()
			var once sync.Once
			return func() { once.Do(func() { g.release(id, mine) }) }
		}
		g.mu.Unlock()
		t := time.NewTimer(h.until.Sub(now))
		select {
		case <-h.done:
		case <-t.C:
		}
		t.Stop()
	}
}

func (g *handover) release(id string, h *hold) {
	g.mu.Lock()
	if g.held[id] == h {
		delete(g.held, id)
	}
	g.mu.Unlock()
	close(h.done)
}

// sweep drops expired holds once the table has doubled since the last
// sweep. g.mu is held.
func (g *handover) sweep(now time.Time) {
	if len(g.held) < max(g.nextSweep, 1024) {
		return
	}
	for id, h := range g.held {
		if now.After(h.until) {
			delete(g.held, id)
		}
	}
	g.nextSweep = 2 * len(g.held)
}

// ending holds the client ID of a clean session whose connection ended
// until mochi has removed it from the client table, unless a new connection
// has already taken it over.
func (g *handover) ending(server *mqtt.Server, cl *mqtt.Client) {
	release := g.acquire(cl.ID)
	if cl.IsTakenOver() {
		release()
		return
	}
	go func() {
		defer release()
		// mochi removes the client right after the hooks return: a few
		// yields are usually enough; sleep only if they were not.
		deadline := time.Now().Add(handoverMax)
		for i := 0; ; i++ {
			if cur, ok := server.Clients.Get(cl.ID); !ok || cur != cl || time.Now().After(deadline) {
				return
			}
			if i < 16 {
				runtime.Gosched()
			} else {
				time.Sleep(100 * time.Microsecond)
			}
		}
	}()
}
