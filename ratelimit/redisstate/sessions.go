package redisstate

import (
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Owners records, across nodes, which identity owns the session of each
// admitted client ID, so that a node refuses a CONNECT that would take over
// a session held through another node (sessions.takeover). Two keys per
// client ID:
//
//   - <prefix><ns>:owner:<id> while its session lives: written when the
//     session is established, refreshed while it is connected through this
//     node (TTL LiveTTL), then kept for the session's expiry once it
//     disconnects, and deleted when the session ends with its connection;
//   - <prefix><ns>:claim:<id> between CONNECT and the session being
//     established (SET NX PX, the CONNECT timeout), so two CONNECTs racing
//     on two nodes cannot both pass.
//
// Values are "<node> <identity>": an identity may move between nodes, and a
// node only shortens or deletes a record it wrote itself.
//
// Keys exist only for client IDs some node admitted, which the new-client-ID
// budgets bound, and all expire.
type Owners struct {
	b    *Backend
	ns   string
	live time.Duration
	max  int

	mu          sync.Mutex
	conn        map[string]ownerEntry // connected through this node
	lastRefresh time.Time
}

type ownerEntry struct {
	owner string
	token any // the connection, so an old one ending does not drop a new one
}

// Claim results.
const (
	ClaimOK        = 0 // claimed (or already claimed) for this identity
	OwnedByOther   = 1 // a live session of the client ID belongs to another identity
	ClaimedByOther = 2 // another identity's CONNECT holds the claim
)

// Owners returns the session-owner records of namespace ns; live is how
// long a record of a connected client outlives its last refresh (refreshed
// every live/3); max bounds the connected client IDs this node refreshes.
func (b *Backend) Owners(ns string, live time.Duration, max int) *Owners {
	o := &Owners{b: b, ns: ns, live: live, max: max, conn: map[string]ownerEntry{}}
	b.mu.Lock()
	b.owners = append(b.owners, o)
	b.mu.Unlock()
	return o
}

func (o *Owners) value(owner string) string { return o.b.node + " " + owner }

// claimLua defines claim(owner key, claim key, identity, value, claim TTL
// in ms), which returns ClaimOK, OwnedByOther or ClaimedByOther: the
// ownership check and claim of claimScript and claimAdmitScript.
const claimLua = `
local function who(v)
  if not v then return nil end
  local i = string.find(v, ' ', 1, true)
  if not i then return v end
  return string.sub(v, i + 1)
end
local function claim(ko, kc, id, val, ttl)
  local o = who(redis.call('GET', ko))
  if o and o ~= id then return 1 end
  if not redis.call('SET', kc, val, 'NX', 'PX', ttl) then
    local c = who(redis.call('GET', kc))
    if c and c ~= id then return 2 end
    redis.call('SET', kc, val, 'PX', ttl)
  end
  return 0
end
`

// claimScript: KEYS owner key, claim key; ARGV identity, value, claim TTL
// (ms). Returns ClaimOK, OwnedByOther or ClaimedByOther.
var claimScript = redis.NewScript(claimLua + `return claim(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3])`)

// Claim checks that no other identity owns id's session on any node, and
// claims id for owner for ttl (until Established or Release). One round
// trip, bounded by the timeout; ErrUnavailable (or the Redis error) when
// Redis does not answer.
func (o *Owners) Claim(id, owner string, ttl time.Duration) (int, error) {
	if !o.b.up.Load() {
		return 0, ErrUnavailable
	}
	ctx, cancel := o.b.ctx()
	defer cancel()
	n, err := claimScript.Run(ctx, o.b.rdb, o.claimKeys(id), owner, o.value(owner), max(ttl.Milliseconds(), 1)).Int()
	if err != nil {
		o.b.wake()
		return 0, err
	}
	return n, nil
}

func (o *Owners) claimKeys(id string) []string {
	return []string{o.b.key(o.ns, "owner", id), o.b.key(o.ns, "claim", id)}
}

// claimAdmitScript is claimScript then, only if the claim succeeded,
// admitScript, in one step: a CONNECT refused for the session's owner
// spends no budget, and neither decision can interleave with another
// node's. KEYS: claimScript's then admitScript's; ARGV: claimScript's
// three then admitScript's. Returns {claim result, admitted (0 or 1)}.
var claimAdmitScript = redis.NewScript(claimLua + admitLua + `
local c = claim(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3])
if c ~= 0 then return {c, 0} end
return {0, admit(KEYS[3], KEYS[4], KEYS[5], KEYS[6], ARGV[4], ARGV[5], ARGV[6], 7)}`)

// ClaimAdmit is Claim and then, if the claim succeeded, the backend's
// AdmitNew(now, ns, id, window, budgets), in one round trip: what a CONNECT
// of a client ID this node has not admitted lately needs before its
// CONNACK. A claim refused (OwnedByOther, ClaimedByOther) spends no
// budget and reports admitted false. ErrUnavailable (or the Redis error)
// when Redis does not answer: neither happened.
func (o *Owners) ClaimAdmit(id, owner string, ttl time.Duration, now time.Time, ns string, window time.Duration, budgets []Budget) (claim int, admitted bool, err error) {
	if !o.b.up.Load() {
		return 0, false, ErrUnavailable
	}
	keys, args := o.b.admitArgs(now, ns, id, window, budgets)
	ctx, cancel := o.b.ctx()
	defer cancel()
	res, err := claimAdmitScript.Run(ctx, o.b.rdb, append(o.claimKeys(id), keys...),
		append([]any{owner, o.value(owner), max(ttl.Milliseconds(), 1)}, args...)...).Int64Slice()
	if err != nil {
		o.b.wake()
		return 0, false, err
	}
	return int(res[0]), res[1] == 1, nil
}

// delIfMine deletes KEYS[1] if its value is ARGV[1].
var delIfMine = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 0`)

// Release drops owner's claim on id (its CONNECT was refused).
func (o *Owners) Release(id, owner string) {
	if !o.b.up.Load() {
		return
	}
	ctx, cancel := o.b.ctx()
	defer cancel()
	_ = delIfMine.Run(ctx, o.b.rdb, []string{o.b.key(o.ns, "claim", id)}, o.value(owner)).Err()
}

// establishScript: KEYS owner key, claim key; ARGV value, TTL (ms),
// identity. The claim goes if it is the identity's (from any node: its
// other CONNECTs need no claim against itself).
var establishScript = redis.NewScript(`
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
local c = redis.call('GET', KEYS[2])
if c and string.sub(c, (string.find(c, ' ', 1, true) or 0) + 1) == ARGV[3] then redis.call('DEL', KEYS[2]) end
return 0`)

// Established records owner as the owner of id's session, connected
// through this node (token is the connection), and drops the claim. While
// Redis is away the record is written at the next refresh.
func (o *Owners) Established(id, owner string, token any) {
	o.mu.Lock()
	if _, ok := o.conn[id]; ok || len(o.conn) < o.max {
		o.conn[id] = ownerEntry{owner: owner, token: token}
	}
	o.mu.Unlock()
	if !o.b.up.Load() {
		return
	}
	ctx, cancel := o.b.ctx()
	defer cancel()
	_ = establishScript.Run(ctx, o.b.rdb, o.claimKeys(id),
		o.value(owner), o.live.Milliseconds(), owner).Err()
}

// endScript: KEYS owner key; ARGV value, TTL (ms, 0 deletes). Only a record
// this node wrote for this identity changes.
var endScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if tonumber(ARGV[2]) > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) else redis.call('DEL', KEYS[1]) end
return 1`)

// Ended notes that the connection token holding id closed: the record is
// kept for keep (the session's expiry), or deleted when keep is 0 (the
// session ended with it). A connection that was taken over changes nothing.
func (o *Owners) Ended(id, owner string, token any, keep time.Duration) {
	o.mu.Lock()
	e, ok := o.conn[id]
	if ok && e.token == token {
		delete(o.conn, id)
	}
	o.mu.Unlock()
	if !ok || e.token != token || !o.b.up.Load() {
		return
	}
	ctx, cancel := o.b.ctx()
	defer cancel()
	_ = endScript.Run(ctx, o.b.rdb, []string{o.b.key(o.ns, "owner", id)}, o.value(owner), max(keep.Milliseconds(), 0)).Err()
}

// Owner returns the identity recorded as owning id's session, "" if none
// (for tests and operators).
func (o *Owners) Owner(id string) (string, error) {
	ctx, cancel := o.b.ctx()
	defer cancel()
	v, err := o.b.rdb.Get(ctx, o.b.key(o.ns, "owner", id)).Result()
	if err == redis.Nil {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	_, owner, _ := strings.Cut(v, " ")
	return owner, nil
}

// Len is the number of connected client IDs this node refreshes.
func (o *Owners) Len() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.conn)
}

// refresh writes the records of the clients connected through this node,
// every live/3 (one pipeline): they outlive a node that dies by at most
// live.
func (o *Owners) refresh(now time.Time) error {
	o.mu.Lock()
	if now.Sub(o.lastRefresh) < o.live/3 || len(o.conn) == 0 {
		o.mu.Unlock()
		return nil
	}
	ids := make([]string, 0, len(o.conn))
	vals := make([]string, 0, len(o.conn))
	for id, e := range o.conn {
		ids, vals = append(ids, id), append(vals, o.value(e.owner))
	}
	o.mu.Unlock()
	const batch = 1000
	for len(ids) > 0 {
		n := min(batch, len(ids))
		ctx, cancel := o.b.ctx()
		pipe := o.b.rdb.Pipeline()
		for i := range n {
			pipe.Set(ctx, o.b.key(o.ns, "owner", ids[i]), vals[i], o.live)
		}
		_, err := pipe.Exec(ctx)
		cancel()
		if err != nil {
			return err
		}
		ids, vals = ids[n:], vals[n:]
	}
	o.mu.Lock()
	o.lastRefresh = now
	o.mu.Unlock()
	return nil
}
