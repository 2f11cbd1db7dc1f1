package redisstate

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Windows are aligned on the Unix epoch, so every node (with a synchronised
// clock) agrees on which window a moment falls in; the sliding count at a
// fraction f into window w is count(w) + count(w-1)*(1-f), as in
// ratelimit.Counter.
func windowAt(now time.Time, length time.Duration) (int64, float64) {
	ns, l := now.UnixNano(), int64(length)
	w := ns / l
	return w, float64(ns%l) / float64(l)
}

// ErrUnavailable is returned by the calls that need Redis at once
// (AddFailure, AdmitNew) while it is known to be unreachable: the caller
// decides on its local state instead, without waiting for a timeout.
var ErrUnavailable = errors.New("redisstate: redis unavailable")

var incrScript = redis.NewScript(`
local n = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
local p = tonumber(redis.call('GET', KEYS[2]) or '0')
return {n, p}`)

// AddFailure counts one event for key (in namespace ns) in the current
// window of the given length, across every node, and returns the sliding
// count including it: the password-failure counts behind the lockouts. One
// round trip, bounded by the timeout; ErrUnavailable (or the Redis error)
// when Redis does not answer. Keys expire after two windows.
func (b *Backend) AddFailure(now time.Time, ns, key string, window time.Duration) (float64, error) {
	if !b.up.Load() {
		return 0, ErrUnavailable
	}
	w, frac := windowAt(now, window)
	ctx, cancel := b.ctx()
	defer cancel()
	cur, prev := b.key(ns, key, strconv.FormatInt(w, 10)), b.key(ns, key, strconv.FormatInt(w-1, 10))
	res, err := incrScript.Run(ctx, b.rdb, []string{cur, prev}, (2 * window).Milliseconds()).Int64Slice()
	if err != nil {
		b.wake()
		return 0, err
	}
	return float64(res[0]) + float64(res[1])*(1-frac), nil
}

// ResetFailures forgets key's counts (an operator lifted its lockout).
func (b *Backend) ResetFailures(now time.Time, ns, key string, window time.Duration) {
	if !b.up.Load() {
		return
	}
	w, _ := windowAt(now, window)
	ctx, cancel := b.ctx()
	defer cancel()
	b.rdb.Del(ctx, b.key(ns, key, strconv.FormatInt(w, 10)), b.key(ns, key, strconv.FormatInt(w-1, 10)))
}

// Budget caps the new keys a group admits per sliding window (as
// ratelimit.Budget).
type Budget struct {
	Group string
	Limit int
}

// admitLua defines admit(seen set of this window, of the last one, counts
// hash of this window, of the last one, key, fraction into the window, TTL
// in ms, index of the first budget in ARGV), which decides whether a client
// ID is new and within every budget (group, limit pairs from ARGV[first]
// on), in one step on the server (so two nodes cannot both take the last
// slot), and returns 1 (admitted, counted) or 0. The seen sets hold only
// admitted keys, so their size is bounded by the global budget, whatever
// an attacker sends.
const admitLua = `
local function admit(seen, seenPrev, count, countPrev, key, frac, ttl, first)
  if redis.call('SISMEMBER', seen, key) == 1 then return 1 end
  if redis.call('SISMEMBER', seenPrev, key) == 1 then
    redis.call('SADD', seen, key)
    redis.call('PEXPIRE', seen, ttl)
    return 1
  end
  frac = tonumber(frac)
  for i = first, #ARGV, 2 do
    local cur = tonumber(redis.call('HGET', count, ARGV[i]) or '0')
    local prev = tonumber(redis.call('HGET', countPrev, ARGV[i]) or '0')
    if cur + prev * (1 - frac) + 1 > tonumber(ARGV[i+1]) then return 0 end
  end
  for i = first, #ARGV, 2 do redis.call('HINCRBY', count, ARGV[i], 1) end
  redis.call('PEXPIRE', count, ttl)
  redis.call('SADD', seen, key)
  redis.call('PEXPIRE', seen, ttl)
  return 1
end
`

// admitScript: KEYS as admit's first four; ARGV key, fraction into the
// window, TTL (ms), then group, limit pairs.
var admitScript = redis.NewScript(admitLua + `return admit(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[1], ARGV[2], ARGV[3], 4)`)

// AdmitNew reports whether key (a client ID) may appear now: yes if any
// node admitted it in this window or the last, otherwise only if every
// budget's group has admitted fewer than its Limit new keys in the sliding
// window across all nodes, and then it is counted in each. One round trip,
// bounded by the timeout; ErrUnavailable (or the Redis error) when Redis
// does not answer.
func (b *Backend) AdmitNew(now time.Time, ns, key string, window time.Duration, budgets []Budget) (bool, error) {
	if !b.up.Load() {
		return false, ErrUnavailable
	}
	keys, args := b.admitArgs(now, ns, key, window, budgets)
	ctx, cancel := b.ctx()
	defer cancel()
	ok, err := admitScript.Run(ctx, b.rdb, keys, args...).Int()
	if err != nil {
		b.wake()
		return false, err
	}
	return ok == 1, nil
}

// admitArgs are admitScript's KEYS and ARGV for AdmitNew's arguments.
func (b *Backend) admitArgs(now time.Time, ns, key string, window time.Duration, budgets []Budget) ([]string, []any) {
	w, frac := windowAt(now, window)
	ws, wp := strconv.FormatInt(w, 10), strconv.FormatInt(w-1, 10)
	args := make([]any, 0, 3+2*len(budgets))
	args = append(args, key, strconv.FormatFloat(frac, 'f', 6, 64), (2 * window).Milliseconds())
	for _, bu := range budgets {
		args = append(args, bu.Group, bu.Limit)
	}
	return []string{b.key(ns, "seen", ws), b.key(ns, "seen", wp), b.key(ns, "count", ws), b.key(ns, "count", wp)}, args
}

// ctxFor is a context for a call that may take up to n command timeouts.
func (b *Backend) ctxFor(n int) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), time.Duration(n)*b.opts.Timeout)
}
