package redisstate

import (
	"context"
	"encoding/json"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mqttwaf/mqttwaf/ratelimit"
)

// Bans is a ban list shared through Redis: a ratelimit.BanStore whose
// checks are answered by a local ratelimit.BanList (no round trip on the
// CONNECT path), whose changes are written to Redis as one key per target
// (<prefix><namespace>:<target>, expiring with the ban) and announced to the
// other nodes, and which reloads the whole list whenever the node
// (re)connects.
//
// Consistency: a ban made on one node is enforced there at once and on the
// others as soon as the announcement arrives (milliseconds with Redis up).
// While Redis is unreachable each node keeps enforcing every ban it knows,
// and the bans it makes meanwhile are queued (MaxPending) and written when
// Redis is back. A lifted ban leaves a tombstone key until the ban would
// have ended, so a node that missed the announcement lifts it on its resync
// instead of writing it back. The strikes behind an automatic ban travel
// with it: a node taking in another's ban raises its own offence history to
// them, so a repeat offender's back-off grows across nodes, and a lifted ban
// forgives on every node; a ban Redis does not know (Redis restarted
// empty) is written back by every node that holds it: a restart of Redis
// never lifts a ban.
type Bans struct {
	b     *Backend
	ns    string
	local *ratelimit.BanList
	// OnLifted, if set, is called when another node lifted a ban of t
	// (operators' removals forgive counters the caller keeps).
	OnLifted func(t ratelimit.Target)

	mu      sync.Mutex
	pending map[string]change
	dropped atomic.Uint64
}

type op uint8

const (
	opLonger op = iota + 1 // an automatic ban: a longer one in Redis stays
	opSet                  // an operator's ban: replaces
	opLift                 // a lifted ban: a tombstone
)

type change struct {
	op  op
	ban ratelimit.Ban // for opLift, Target and Until (of the lifted ban)
	at  time.Time
}

var _ ratelimit.BanStore = (*Bans)(nil)

// Bans returns the shared ban list of namespace ns ("bans", "lockouts")
// over local, which must be used only through the returned Bans from now
// on.
func (b *Backend) Bans(ns string, local *ratelimit.BanList) *Bans {
	bl := &Bans{b: b, ns: ns, local: local, pending: map[string]change{}}
	b.mu.Lock()
	b.bans[ns] = bl
	b.mu.Unlock()
	b.wake() // resync on the next turn if already connected
	if b.up.Load() {
		go func() { _ = bl.resync() }()
	}
	return bl
}

// Check answers from the local list.
func (s *Bans) Check(now time.Time, clientID, username string, ip netip.Addr) (ratelimit.Ban, bool) {
	return s.local.Check(now, clientID, username, ip)
}

// Strike bans t locally and shares the ban.
func (s *Bans) Strike(now time.Time, t ratelimit.Target, reason string) (ratelimit.Ban, error) {
	ban, err := s.local.Strike(now, t, reason)
	if err == nil {
		s.queue(change{op: opLonger, ban: ban, at: now})
	}
	return ban, err
}

// Add sets ban locally and shares it.
func (s *Bans) Add(now time.Time, ban ratelimit.Ban) error {
	if ban.Since.IsZero() {
		ban.Since = now
	}
	if err := s.local.Add(now, ban); err != nil {
		return err
	}
	s.queue(change{op: opSet, ban: ban, at: now})
	return nil
}

// Remove lifts t's ban here and on every node.
func (s *Bans) Remove(t ratelimit.Target) (bool, error) {
	now := s.b.now()
	until := now.Add(time.Hour)
	for _, ban := range s.matching(now, t) {
		if ban.Until.IsZero() {
			until = now.Add(maxTTL)
		} else {
			until = ban.Until
		}
	}
	ok, err := s.local.Remove(t)
	if err == nil {
		s.queue(change{op: opLift, ban: ratelimit.Ban{Target: t, Until: until}, at: now})
	}
	return ok, err
}

// matching returns t's active ban, if any.
func (s *Bans) matching(now time.Time, t ratelimit.Target) []ratelimit.Ban {
	list, _ := s.local.List(now)
	for _, b := range list {
		if b.Target == t {
			return []ratelimit.Ban{b}
		}
	}
	return nil
}

// List returns the local list's active bans.
func (s *Bans) List(now time.Time) ([]ratelimit.Ban, error) { return s.local.List(now) }

// Forgive clears t's local offence history.
func (s *Bans) Forgive(t ratelimit.Target) bool { return s.local.Forgive(t) }

// Len is the number of bans held locally.
func (s *Bans) Len() int { return s.local.Len() }

// Dropped is the number of changes not written to Redis because the queue
// was full while Redis was unreachable (they are still enforced locally).
func (s *Bans) Dropped() uint64 { return s.dropped.Load() }

func (s *Bans) queue(c change) {
	k := c.ban.Target.String()
	s.mu.Lock()
	if _, ok := s.pending[k]; !ok && len(s.pending) >= s.b.opts.MaxPending {
		s.mu.Unlock()
		s.dropped.Add(1)
		return
	}
	if old, ok := s.pending[k]; ok && old.op == opLonger && c.op == opLonger && old.ban.Until.After(c.ban.Until) && !c.ban.Until.IsZero() {
		c = old
	}
	s.pending[k] = c
	s.mu.Unlock()
	s.b.wake()
}

// maxTTL is the TTL of permanent bans and their tombstones: every key
// expires, and a permanent ban outlives a year only if some node writes it
// back (which every node holding it does on its next resync).
const maxTTL = 366 * 24 * time.Hour

// wireBan is a ban (or, with Lifted set, a tombstone) as stored in Redis
// and announced.
type wireBan struct {
	Target  string `json:"t"`
	Reason  string `json:"r,omitempty"`
	Since   int64  `json:"s,omitempty"` // Unix ms
	Until   int64  `json:"u"`           // Unix ms, 0 = permanent
	Strikes int    `json:"k,omitempty"`
	Lifted  int64  `json:"l,omitempty"` // Unix ms the ban was lifted
}

type announcement struct {
	Node string  `json:"n"`
	NS   string  `json:"ns"`
	Op   op      `json:"op"`
	Ban  wireBan `json:"b"`
}

func toWire(b ratelimit.Ban) wireBan {
	w := wireBan{Target: b.Target.String(), Reason: b.Reason, Strikes: b.Strikes}
	if !b.Since.IsZero() {
		w.Since = b.Since.UnixMilli()
	}
	if !b.Until.IsZero() {
		w.Until = b.Until.UnixMilli()
	}
	return w
}

func (w wireBan) ban() (ratelimit.Ban, error) {
	t, err := ratelimit.ParseTarget(w.Target)
	if err != nil {
		return ratelimit.Ban{}, err
	}
	b := ratelimit.Ban{Target: t, Reason: w.Reason, Strikes: w.Strikes}
	if w.Since != 0 {
		b.Since = time.UnixMilli(w.Since)
	}
	if w.Until != 0 {
		b.Until = time.UnixMilli(w.Until)
	}
	return b, nil
}

// putScript writes a ban (or tombstone) and announces it. In mode
// "longer" an existing ban that ends later (or never) stays and nothing is
// announced.
var putScript = redis.NewScript(`
local nu = tonumber(ARGV[2])
if ARGV[5] == 'longer' and nu ~= 0 then
  local cur = redis.call('GET', KEYS[1])
  if cur then
    local ok, old = pcall(cjson.decode, cur)
    if ok and type(old) == 'table' and old.l == nil and old.u ~= nil and (old.u == 0 or old.u >= nu) then
      return 0
    end
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
redis.call('PUBLISH', KEYS[2], ARGV[4])
return 1`)

// flush writes the queued changes in one pipeline. Changes that fail stay
// queued (unless a newer change of the same target came meanwhile).
func (s *Bans) flush() error {
	s.mu.Lock()
	if len(s.pending) == 0 {
		s.mu.Unlock()
		return nil
	}
	batch := s.pending
	s.pending = map[string]change{}
	s.mu.Unlock()

	now := s.b.now()
	ctx, cancel := s.b.ctx()
	defer cancel()
	pipe := s.b.rdb.Pipeline()
	n := 0
	for _, c := range batch {
		if s.putCmd(ctx, pipe, now, c) {
			n++
		}
	}
	var err error
	if n > 0 {
		_, err = pipe.Exec(ctx)
	}
	if err != nil && !isScriptNoop(err) {
		s.mu.Lock()
		for k, c := range batch {
			if _, newer := s.pending[k]; !newer {
				s.pending[k] = c
			}
		}
		s.mu.Unlock()
		return err
	}
	return nil
}

func isScriptNoop(err error) bool { return err == redis.Nil }

// putCmd adds c's write to pipe; false if there is nothing to write (the
// ban has ended).
func (s *Bans) putCmd(ctx context.Context, pipe redis.Pipeliner, now time.Time, c change) bool {
	w := toWire(c.ban)
	ttl := maxTTL
	if !c.ban.Until.IsZero() {
		ttl = c.ban.Until.Sub(now)
	}
	if ttl < time.Millisecond {
		return false
	}
	mode := "set"
	switch c.op {
	case opLonger:
		mode = "longer"
	case opLift:
		w = wireBan{Target: w.Target, Until: w.Until, Lifted: c.at.UnixMilli()}
	}
	val, _ := json.Marshal(w)
	msg, _ := json.Marshal(announcement{Node: s.b.node, NS: s.ns, Op: c.op, Ban: w})
	putScript.Eval(ctx, pipe, []string{s.b.key(s.ns, w.Target), s.b.channel()},
		string(val), w.Until, ttl.Milliseconds(), string(msg), mode)
	return true
}

// apply takes in another node's announcement.
func (b *Backend) apply(payload string) {
	var a announcement
	if json.Unmarshal([]byte(payload), &a) != nil || a.Node == b.node {
		return
	}
	b.mu.Lock()
	s := b.bans[a.NS]
	b.mu.Unlock()
	if s == nil {
		return
	}
	ban, err := a.Ban.ban()
	if err != nil {
		return
	}
	now := b.now()
	switch a.Op {
	case opLonger:
		s.merge(now, ban)
	case opSet:
		_ = s.local.Add(now, ban)
		s.local.NoteStrikes(ban.Target, ban.Strikes, ban.Until)
	case opLift:
		s.lift(ban.Target)
	}
}

// merge takes in another node's automatic ban and the strikes behind it, so
// that the target's next offence here is banned as a repeat (the back-off
// is shared, not per node), forgiven from that ban's end.
func (s *Bans) merge(now time.Time, ban ratelimit.Ban) {
	_ = s.local.Merge(now, ban)
	s.local.NoteStrikes(ban.Target, ban.Strikes, ban.Until)
}

func (s *Bans) lift(t ratelimit.Target) {
	_, _ = s.local.Remove(t)
	s.local.Forgive(t)
	if s.OnLifted != nil {
		s.OnLifted(t)
	}
}

// resync reloads the namespace from Redis: bans there are merged in,
// tombstones lift local bans made before them, and local bans Redis does
// not know are written back.
func (s *Bans) resync() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*s.b.opts.Timeout)
	defer cancel()
	now := s.b.now()
	seen := map[ratelimit.Target]bool{}
	var cursor uint64
	for {
		keys, next, err := s.b.rdb.Scan(ctx, cursor, s.b.key(s.ns, "*"), 1000).Result()
		if err != nil {
			return err
		}
		if len(keys) > 0 {
			vals, err := s.b.rdb.MGet(ctx, keys...).Result()
			if err != nil {
				return err
			}
			for _, v := range vals {
				str, ok := v.(string)
				if !ok {
					continue
				}
				var w wireBan
				if json.Unmarshal([]byte(str), &w) != nil {
					continue
				}
				ban, err := w.ban()
				if err != nil {
					continue
				}
				seen[ban.Target] = true
				if w.Lifted != 0 {
					for _, l := range s.matching(now, ban.Target) {
						if l.Since.UnixMilli() <= w.Lifted {
							s.lift(ban.Target)
						}
					}
					continue
				}
				s.merge(now, ban)
			}
		}
		if cursor = next; cursor == 0 {
			break
		}
	}
	list, _ := s.local.List(now)
	for _, ban := range list {
		if !seen[ban.Target] {
			s.queue(change{op: opLonger, ban: ban, at: now})
		}
	}
	return nil
}
