package redisstate

import (
	"math"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Window is a rate shared by every node: at most Limit events per key per
// sliding window, counted across nodes without a round trip per event.
// Each node counts locally and, every sync interval, adds its counts to the
// key's per-window Redis key (INCRBY, expiring after two windows) and reads
// back the global total; it enforces on global_last + local_since_sync.
//
// A node does not see the others' events of the current sync interval, so
// between two syncs it may admit only its share of what was left at the
// last one: (Limit - global count - (nodes-1) x what it admitted in the
// last interval) / nodes, the nodes being those that synced in the last
// second (a presence set in Redis). The middle term covers the others'
// admissions the total may not hold yet (their syncs are not simultaneous
// with this one's), assuming they spent what this node spent. If every
// node spends its whole share at once the nodes together reach the limit
// and no more. Measured (TestWindowErrorAcrossNodes, 2 and 4 nodes each
// flooding at 10x the limit): at most the limit in every window, 86-100% of
// it admitted; the tests hold it to the limit + 10%. A single busy node
// among idle ones gets half of the headroom per interval, then half of the
// rest...: it still reaches the limit within a few intervals. While Redis
// is unreachable there are no shares: each node holds the key to Limit on
// its own counts.
//
// Memory: at most MaxKeys keys are tracked; idle keys (no event for two
// windows) are dropped when the table is full, and a key that finds the table
// full of active keys is not shared (the caller's local limits still apply).
type Window struct {
	b       *Backend
	name    string
	length  time.Duration
	limit   float64
	maxKeys int

	mu        sync.Mutex
	m         map[string]*winEntry
	lastEvict int64
	gen       uint64 // successful syncs
}

type winEntry struct {
	w            int64   // window the counts are for
	global, prev float64 // totals of windows w and w-1 as last read from Redis
	prevRead     bool    // prev was read from Redis (not only known locally)
	local        int64   // counted here in window w, not yet sent
	sending      int64   // sent in the sync under way
	last         int64   // last event, Unix ns
	share        float64 // what may still be admitted here until the next sync
	spent        float64 // admitted here since share was computed
	gen          uint64  // the sync generation share was computed in
}

// Window returns the shared rate name (a namespace: "rate:user_msgs") of
// limit events per length per key, tracking at most maxKeys keys. It is
// synced only once tracked (Track), so a rate state built for a policy that
// then fails to load leaves nothing behind.
func (b *Backend) Window(name string, limit int64, length time.Duration, maxKeys int) *Window {
	return &Window{b: b, name: name, length: length, limit: float64(limit), maxKeys: maxKeys, m: map[string]*winEntry{}}
}

// Track starts syncing ws.
func (b *Backend) Track(ws ...*Window) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.windows = append(b.windows, ws...)
}

// Untrack stops syncing ws (their policy was replaced).
func (b *Backend) Untrack(ws ...*Window) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.windows = slices.DeleteFunc(b.windows, func(x *Window) bool { return slices.Contains(ws, x) })
}

func (e *winEntry) roll(w int64) {
	switch {
	case w <= e.w:
	case w == e.w+1:
		e.prev, e.prevRead = e.global+float64(e.sending+e.local), false
		e.global, e.local, e.w = 0, 0, w
	default:
		e.prev, e.prevRead = 0, true
		e.global, e.local, e.w = 0, 0, w
	}
}

// AllowN counts n events for key at now if the key's global sliding count
// stays within the limit, and reports whether it did.
func (w *Window) AllowN(now time.Time, key string, n int) bool {
	win, frac := windowAt(now, w.length)
	ns := now.UnixNano()
	w.mu.Lock()
	defer w.mu.Unlock()
	e := w.m[key]
	if e == nil {
		if len(w.m) >= w.maxKeys && !w.evict(ns) {
			return true // not shared; the local limits still apply
		}
		e = &winEntry{w: win, gen: math.MaxUint64} // no share yet
		w.m[key] = e
	}
	e.roll(win)
	e.last = ns
	est := e.global + float64(e.sending+e.local) + e.prev*(1-frac)
	if est+float64(n) > w.limit {
		return false
	}
	if w.b.up.Load() { // shares only while the counts are exchanged
		if e.gen != w.gen {
			// The total just read may miss what the other nodes admitted
			// since their own last sync: assume each spent what this node
			// spent in the last interval (an overestimate when the total
			// has it already, so it errs towards refusing).
			nodes := float64(w.b.nodes.Load())
			e.share = max(0, w.limit-est-(nodes-1)*e.spent) / nodes
			e.spent, e.gen = 0, w.gen
		}
		if float64(n) > e.share {
			return false
		}
		e.share -= float64(n)
		e.spent += float64(n)
	}
	e.local += int64(n)
	return true
}

// evict drops idle keys; false if none could be dropped. At most once per
// sync interval, so a table full of active keys costs one scan per interval.
func (w *Window) evict(ns int64) bool {
	if ns-w.lastEvict < int64(w.b.opts.SyncInterval) {
		return false
	}
	w.lastEvict = ns
	idle := ns - 2*int64(w.length)
	for k, e := range w.m {
		if e.last < idle && e.local == 0 && e.sending == 0 {
			delete(w.m, k)
		}
	}
	return len(w.m) < w.maxKeys
}

type pendingSync struct {
	key       string
	e         *winEntry
	w         int64
	delta     int64
	cur, prev *redis.StringCmd
	add       *redis.IntCmd
}

// sync sends the local counts of active keys and reads back the totals.
func (w *Window) sync(now time.Time) (bool, error) {
	ns := now.UnixNano()
	idle := ns - 2*int64(w.length)
	ttl := 2 * w.length
	var batch []pendingSync
	w.mu.Lock()
	for k, e := range w.m {
		if e.last < idle && e.local == 0 {
			continue
		}
		batch = append(batch, pendingSync{key: k, e: e, w: e.w, delta: e.local})
		e.sending += e.local
		e.local = 0
	}
	w.mu.Unlock()
	if len(batch) == 0 {
		return false, nil
	}
	ctx, cancel := w.b.ctxFor(2)
	defer cancel()
	pipe := w.b.rdb.Pipeline()
	for i := range batch {
		p := &batch[i]
		cur := w.b.key(w.name, p.key, strconv.FormatInt(p.w, 10))
		if p.delta > 0 {
			p.add = pipe.IncrBy(ctx, cur, p.delta)
			pipe.PExpire(ctx, cur, ttl)
		} else {
			p.cur = pipe.Get(ctx, cur)
		}
		if !p.e.prevRead {
			p.prev = pipe.Get(ctx, w.b.key(w.name, p.key, strconv.FormatInt(p.w-1, 10)))
		}
	}
	_, err := pipe.Exec(ctx)
	if err == redis.Nil { // a GET of a key no node wrote: a count of 0
		err = nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if err == nil {
		w.gen++ // fresh totals: shares are recomputed at their next use
	}
	for i := range batch {
		p := &batch[i]
		e := p.e
		e.sending -= p.delta
		if err != nil {
			if e.w == p.w {
				e.local += p.delta // sent again next time
			}
			continue
		}
		total := float64(p.delta)
		if p.add != nil {
			total = float64(p.add.Val())
		} else if v, err := p.cur.Int64(); err == nil {
			total = float64(v)
		}
		switch e.w {
		case p.w:
			e.global = total
			if p.prev != nil {
				if v, err := p.prev.Int64(); err == nil {
					e.prev = max(e.prev, float64(v))
				}
				e.prevRead = true
			}
		case p.w + 1: // the window rolled while syncing
			e.prev = max(e.prev, total)
		}
	}
	return true, err
}
