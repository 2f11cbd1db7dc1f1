package redisstate

import (
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Retained is a retained store's accounting shared by every node: which
// owner holds each retained topic and how many bytes, so that retained
// budgets hold across several front ends of one broker (proxies in front
// of one broker or cluster), which see one retained store between them.
//
// Changes (Set) are queued and written every sync interval in one script
// call, which also reads back the use of the owners this node asked about
// lately and the store's total, so nothing on the publish path waits for
// Redis while an owner is clear of its budget: Use answers from those
// figures plus this node's changes not yet written. Only a publish those
// figures would refuse asks Redis (Admit, one round trip): a refusal is
// decided on the exact shared table, so an owner at its limit may still
// replace its own topic, whichever node it was retained through.
//
// In Redis: a hash topic -> "size|owner", a sorted set of the topics by
// expiry (every entry expires after the entry lifetime unless written
// again, so a topic the nodes never hear deleted, such as a message the
// broker expired itself, stops counting), and a hash of the per-owner and
// total use. Every key has a TTL of the entry lifetime past the last
// write. The entries are only what the budgets admitted, so their number is
// bounded by the total budget (plus what nodes admit between syncs).
//
// Local memory: the change queue holds at most MaxPending topics (later
// changes beyond it are dropped and counted: their entries expire in Redis
// with their lifetime), the use cache at most maxOwners owners.
type Retained struct {
	b         *Backend
	name      string
	life      time.Duration
	maxOwners int

	mu       sync.Mutex
	pending  map[string]retOp // by topic; the latest change wins
	sending  map[string]retOp // being written by the sync, or left by one that failed
	pendUse  useSum           // what pending adds
	sendUse  useSum           // what sending adds
	owners   map[string]*ownerUse
	total    Use
	dropped  uint64
	lastSync int64 // when the last sync started, Unix ns
	readAt   int64 // when the last sync that completed started, Unix ns (0: none yet)
}

// Use is a number of retained topics and their bytes.
type Use struct{ Topics, Bytes int64 }

type retOp struct {
	owner string
	size  int64
	exp   int64 // Unix ms the entry expires
	was   Held  // the topic's entry before this node's first unwritten change of it, as far as the node knew
}

// Held is a topic's retained entry as a node knows it: its owner and size
// (a zero Size: none, or not known).
type Held struct {
	Owner string
	Size  int
}

// useSum is what a set of changes adds, in total and per owner: each
// change removes the entry it replaces (if known) and adds its own (if not
// a deletion).
type useSum struct {
	total   Use
	byOwner map[string]Use
}

func (u *useSum) add(op retOp, sign int64) {
	if op.size > 0 {
		u.addOwner(op.owner, sign, sign*op.size)
	}
	if op.was.Size > 0 {
		u.addOwner(op.was.Owner, -sign, -sign*int64(op.was.Size))
	}
}

func (u *useSum) addOwner(owner string, topics, bytes int64) {
	if u.byOwner == nil {
		u.byOwner = map[string]Use{}
	}
	o := u.byOwner[owner]
	o.Topics += topics
	o.Bytes += bytes
	if o == (Use{}) {
		delete(u.byOwner, owner)
	} else {
		u.byOwner[owner] = o
	}
	u.total.Topics += topics
	u.total.Bytes += bytes
}

type ownerUse struct {
	use    Use   // as last read from Redis
	readAt int64 // the start of the sync that last read use, Unix ns
	last   int64 // last asked about, Unix ns
}

// Retained returns the shared retained accounting name ("retained"),
// whose entries live for life unless written again, caching the use of at
// most maxOwners owners. It is synced from now on.
func (b *Backend) Retained(name string, life time.Duration, maxOwners int) *Retained {
	r := &Retained{b: b, name: name, life: life, maxOwners: max(1, maxOwners),
		pending: map[string]retOp{}, owners: map[string]*ownerUse{}}
	b.mu.Lock()
	b.retained = append(b.retained, r)
	b.mu.Unlock()
	return r
}

// Set records that owner's message of size bytes is now retained on topic
// (size 0: the topic's retained message was deleted, whoever owned it),
// replacing was (what the node knows the topic held; zero if nothing or
// not known). It is written at the next sync.
func (r *Retained) Set(now time.Time, owner, topic string, size int, was Held) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.pending[topic]; !ok && len(r.pending) >= r.b.opts.MaxPending {
		r.dropped++
		return
	}
	if old, ok := r.pending[topic]; ok {
		r.pendUse.add(old, -1)
		was = old.was // what Redis holds until the queue is written
	} else if old, ok := r.sending[topic]; ok { // written before this change
		was = Held{}
		if old.size > 0 {
			was = Held{Owner: old.owner, Size: int(old.size)}
		}
	}
	op := retOp{owner: owner, size: int64(size), exp: now.Add(r.life).UnixMilli(), was: was}
	r.pending[topic] = op
	r.pendUse.add(op, 1)
}

// Dropped is the number of changes not queued because the queue was full
// (Redis unreachable for long): their entries expire with their lifetime.
func (r *Retained) Dropped() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.dropped
}

// Use returns owner's use and the store's total across every node, as
// last synced plus this node's changes not yet written (as far as this
// node knows what they replace; a refusal is checked with Admit). ok is
// false while Redis is unreachable or before the first sync: the caller
// decides on its own table. fresh is false when the last sync did not
// read owner's use (an owner this node has not asked about before, or not
// in the last minute, or beyond the sync's batch): mine is then what this
// node last read, possibly nothing, while the owner may have filled its
// budget through other nodes meanwhile, so only Admit may allow it.
func (r *Retained) Use(now time.Time, owner string) (mine, total Use, fresh, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.readAt == 0 || !r.b.up.Load() {
		return Use{}, Use{}, false, false
	}
	o := r.owners[owner]
	if o == nil {
		if len(r.owners) >= r.maxOwners {
			r.evict(now)
		}
		if len(r.owners) >= r.maxOwners {
			return Use{}, Use{}, false, false // no room to follow it: the caller's table decides
		}
		o = &ownerUse{}
		r.owners[owner] = o
	}
	o.last = now.UnixNano()
	mine, total = r.unwritten(owner, "")
	return mine.plus(o.use, 1), total.plus(r.total, 1), o.readAt == r.readAt, true
}

// unwritten is what this node's changes not yet written add for owner and
// in total, leaving out the change of topic (if any). Requires r.mu.
func (r *Retained) unwritten(owner, topic string) (mine, total Use) {
	for _, s := range []*useSum{&r.pendUse, &r.sendUse} {
		mine = mine.plus(s.byOwner[owner], 1)
		total = total.plus(s.total, 1)
	}
	if topic == "" {
		return mine, total
	}
	for _, m := range []map[string]retOp{r.pending, r.sending} {
		if op, ok := m[topic]; ok { // what Redis holds for topic is what op replaced
			if op.size > 0 {
				total = total.plus(Use{1, op.size}, -1)
				if op.owner == owner {
					mine = mine.plus(Use{1, op.size}, -1)
				}
			}
			if op.was.Size > 0 {
				was := Use{1, int64(op.was.Size)}
				total = total.plus(was, 1)
				if op.was.Owner == owner {
					mine = mine.plus(was, 1)
				}
			}
		}
	}
	return mine, total
}

func (u Use) plus(v Use, sign int64) Use {
	return Use{u.Topics + sign*v.Topics, u.Bytes + sign*v.Bytes}
}

// evict drops the owners not asked about for a minute. Requires r.mu.
func (r *Retained) evict(now time.Time) {
	idle := now.Add(-time.Minute).UnixNano()
	for k, o := range r.owners {
		if o.last < idle {
			delete(r.owners, k)
		}
	}
}

// Limits are the budgets Admit checks (0: not checked).
type Limits struct {
	OwnerTopics, OwnerBytes, TotalTopics, TotalBytes int64
}

// Over reasons, as Admit returns them.
const (
	WithinLimits = iota
	OverOwnerTopics
	OverOwnerBytes
	OverTotalTopics
	OverTotalBytes
)

// admitScript decides on the shared table whether owner may retain size
// bytes on topic: KEYS topics hash, use hash; ARGV owner, topic, size,
// the four limits, then this node's unwritten topics and bytes for the
// owner and in total. Returns {reason, value}.
var retainedAdmitScript = redis.NewScript(`
local owner, size = ARGV[1], tonumber(ARGV[3])
local old = redis.call('HGET', KEYS[1], ARGV[2])
local addT, addB, totT, totB = 1, size, 1, size
if old then
  local sep = string.find(old, '|', 1, true)
  local osize, oowner = tonumber(string.sub(old, 1, sep - 1)), string.sub(old, sep + 1)
  totT, totB = 0, size - osize
  if oowner == owner then addT, addB = 0, size - osize end
end
local ut = tonumber(redis.call('HGET', KEYS[2], 't:' .. owner) or '0') + tonumber(ARGV[8])
local ub = tonumber(redis.call('HGET', KEYS[2], 'b:' .. owner) or '0') + tonumber(ARGV[9])
local tt = tonumber(redis.call('HGET', KEYS[2], '#t') or '0') + tonumber(ARGV[10])
local tb = tonumber(redis.call('HGET', KEYS[2], '#b') or '0') + tonumber(ARGV[11])
for i = 12, #ARGV do
  local v = redis.call('HGET', KEYS[1], ARGV[i])
  if v then
    local sep = string.find(v, '|', 1, true)
    local vsize = tonumber(string.sub(v, 1, sep - 1))
    tt, tb = tt - 1, tb - vsize
    if string.sub(v, sep + 1) == owner then ut, ub = ut - 1, ub - vsize end
  end
end
if ut + addT > tonumber(ARGV[4]) then return {1, ut + addT} end
if ub + addB > tonumber(ARGV[5]) then return {2, ub + addB} end
if tt + totT > tonumber(ARGV[6]) then return {3, tt + totT} end
if tb + totB > tonumber(ARGV[7]) then return {4, tb + totB} end
return {0, 0}`)

// Admit decides on the shared table (one round trip) whether owner may
// retain size bytes on topic within lim, with this node's unwritten
// changes counted: a topic that already holds a retained message counts
// as replaced (the owner's own) or taken over (another's). It returns the
// reason it is over (WithinLimits if not) and the use it would reach.
// ErrUnavailable (or the Redis error) when Redis does not answer.
func (r *Retained) Admit(now time.Time, owner, topic string, size int, lim Limits) (reason int, value int64, err error) {
	if !r.b.up.Load() {
		return 0, 0, ErrUnavailable
	}
	r.mu.Lock()
	mine, total := r.unwritten(owner, topic)
	args := []any{owner, topic, size, lim.OwnerTopics, lim.OwnerBytes, lim.TotalTopics, lim.TotalBytes,
		mine.Topics, mine.Bytes, total.Topics, total.Bytes}
	// The unwritten changes of topics whose entry this node did not know
	// (deleted, or retained again, through it after another node retained
	// them) replace what Redis holds for them: the script takes that out,
	// so a deletion through this node frees room at once. At most maxBatch
	// (beyond, they err towards refusing until written).
	unknown := func(t string, op retOp) bool { return t != topic && op.was.Size == 0 && len(args) < 11+maxBatch }
	for t, op := range r.sending { // a chain of changes starts with the one being sent
		if unknown(t, op) {
			args = append(args, t)
		}
	}
	for t, op := range r.pending {
		if _, sent := r.sending[t]; !sent && unknown(t, op) {
			args = append(args, t)
		}
	}
	r.mu.Unlock()
	ctx, cancel := r.b.ctx()
	defer cancel()
	res, err := retainedAdmitScript.Run(ctx, r.b.rdb, []string{r.b.key(r.name, "topics"), r.b.key(r.name, "use")}, args...).Int64Slice()
	if err != nil {
		r.b.wake()
		return 0, 0, err
	}
	return int(res[0]), res[1], nil
}

// retainedSyncScript applies queued changes and reads back use: KEYS
// topics hash, expiry sorted set, use hash; ARGV now (ms), key TTL (ms),
// number of changes, then owner, topic, size, expiry (ms) per change, then
// the owners to report. Expired entries are dropped first (at most 1000 a
// call, so one call stays short). Returns total topics, total bytes, then
// topics and bytes per owner asked.
var retainedSyncScript = redis.NewScript(`
local function drop(topic)
  redis.call('ZREM', KEYS[2], topic)
  local v = redis.call('HGET', KEYS[1], topic)
  if not v then return end
  local sep = string.find(v, '|', 1, true)
  local size, owner = tonumber(string.sub(v, 1, sep - 1)), string.sub(v, sep + 1)
  if redis.call('HINCRBY', KEYS[3], 't:' .. owner, -1) <= 0 then
    redis.call('HDEL', KEYS[3], 't:' .. owner, 'b:' .. owner)
  else
    redis.call('HINCRBY', KEYS[3], 'b:' .. owner, -size)
  end
  redis.call('HINCRBY', KEYS[3], '#t', -1)
  redis.call('HINCRBY', KEYS[3], '#b', -size)
  redis.call('HDEL', KEYS[1], topic)
end
for _, t in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, 1000)) do drop(t) end
local n = tonumber(ARGV[3])
for i = 0, n - 1 do
  local o, t, s, e = ARGV[4 + 4 * i], ARGV[5 + 4 * i], tonumber(ARGV[6 + 4 * i]), ARGV[7 + 4 * i]
  drop(t)
  if s > 0 then
    redis.call('HSET', KEYS[1], t, s .. '|' .. o)
    redis.call('ZADD', KEYS[2], e, t)
    redis.call('HINCRBY', KEYS[3], 't:' .. o, 1)
    redis.call('HINCRBY', KEYS[3], 'b:' .. o, s)
    redis.call('HINCRBY', KEYS[3], '#t', 1)
    redis.call('HINCRBY', KEYS[3], '#b', s)
  end
end
if n > 0 then
  for k = 1, 3 do redis.call('PEXPIRE', KEYS[k], ARGV[2]) end
end
local out = {tonumber(redis.call('HGET', KEYS[3], '#t') or '0'), tonumber(redis.call('HGET', KEYS[3], '#b') or '0')}
for i = 4 + 4 * n, #ARGV do
  out[#out + 1] = tonumber(redis.call('HGET', KEYS[3], 't:' .. ARGV[i]) or '0')
  out[#out + 1] = tonumber(redis.call('HGET', KEYS[3], 'b:' .. ARGV[i]) or '0')
end
return out`)

// maxBatch bounds the changes written in one script call (and the owners
// read back), so one call stays short on the server.
const maxBatch = 500

// sync writes the queued changes and reads back the total and the use of
// the owners asked about in the last minute. It writes the whole queue, in
// script calls of maxBatch changes: a queue written only maxBatch a sync
// would fall behind a fleet changing more topics than that per interval,
// and once full (MaxPending) drop changes, leaving retained messages
// uncounted on every node.
func (r *Retained) sync(now time.Time) error {
	for range r.b.opts.MaxPending/maxBatch + 2 {
		more, err := r.syncBatch(now)
		if err != nil || !more {
			return err
		}
	}
	return nil
}

// syncBatch writes up to maxBatch queued changes and reads back the
// figures; more reports whether changes are left to write.
func (r *Retained) syncBatch(now time.Time) (more bool, err error) {
	r.mu.Lock()
	if len(r.sending) == 0 {
		r.sending, r.pending = r.pending, map[string]retOp{}
		r.sendUse, r.pendUse = r.pendUse, useSum{}
	}
	ops := make([]any, 0, 3+4*min(len(r.sending), maxBatch))
	ops = append(ops, now.UnixMilli(), (r.life + time.Hour).Milliseconds(), 0)
	var written []string
	for t, op := range r.sending {
		if len(written) == maxBatch {
			break
		}
		ops = append(ops, op.owner, t, op.size, op.exp)
		written = append(written, t)
	}
	ops[2] = len(written)
	// The owners asked about since the last sync first (they are
	// publishing now), then the others of the last minute, maxBatch in all:
	// beyond that the rest wait for a later sync.
	var asked []string
	for pass, since := range []int64{r.lastSync, now.Add(-time.Minute).UnixNano()} {
		for k, o := range r.owners {
			if len(asked) == maxBatch {
				break
			}
			if o.last >= since && (pass == 0 || o.last < r.lastSync) {
				asked = append(asked, k)
				ops = append(ops, k)
			}
		}
	}
	r.lastSync = now.UnixNano()
	r.mu.Unlock()

	ctx, cancel := r.b.ctxFor(2)
	defer cancel()
	res, err := retainedSyncScript.Run(ctx, r.b.rdb,
		[]string{r.b.key(r.name, "topics"), r.b.key(r.name, "expiry"), r.b.key(r.name, "use")}, ops...).Int64Slice()

	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		return false, err // the changes stay in sending, written next time
	}
	for _, t := range written {
		r.sendUse.add(r.sending[t], -1)
		delete(r.sending, t)
	}
	r.total, r.readAt = Use{Topics: res[0], Bytes: res[1]}, now.UnixNano()
	for i, k := range asked {
		if o := r.owners[k]; o != nil && 2+2*i+1 < len(res) {
			o.use, o.readAt = Use{Topics: res[2+2*i], Bytes: res[3+2*i]}, r.readAt
		}
	}
	return len(r.sending) > 0, nil
}
