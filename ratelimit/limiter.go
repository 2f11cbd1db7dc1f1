package ratelimit

import (
	"math"
	"time"

	"golang.org/x/time/rate"
)

// Limiter defaults: the per-connection publish rate of AWS IoT Core.
var defaultLimiterRate = Rate{N: 100, Per: time.Second}

const maxBurst = 1 << 40

// LimiterOptions configures a Limiter. The zero value is valid: 100 events
// per second with a burst of 100, for up to 100,000 keys.
type LimiterOptions struct {
	// Rate is the sustained rate per key. Default "100/s". For byte limits
	// write bytes, e.g. "512KiB/s", and pass message sizes as n.
	Rate Rate `yaml:"rate" json:"rate"`
	// Burst is how many tokens a key may spend at once. Default: Rate.N as
	// written ("100/s" gives 100, "20/min" gives 20, "512KiB/s" gives 524288).
	// A single AllowN larger than Burst is allowed only on a full bucket and
	// then leaves the key in debt (see AllowN).
	Burst int `yaml:"burst" json:"burst"`
	// MaxKeys caps the keys held; a full shard evicts its least recently used
	// key. Default 100000.
	MaxKeys int `yaml:"max_keys" json:"max_keys"`
	// Shards is the number of independently locked parts, a power of two.
	// Default 32.
	Shards int `yaml:"shards" json:"shards"`
	// DebtMemory is the number of 8-byte slots that remember the debt of
	// evicted keys, so that eviction never refills a bucket early. Default:
	// MaxKeys rounded up to a power of two (about 8 bytes per key).
	DebtMemory int `yaml:"debt_memory" json:"debt_memory"`
}

// Limiter is a set of token buckets, one per key, with the semantics of
// golang.org/x/time/rate.Limiter: every key may spend Burst tokens at once and
// regains them at Rate. Keys are held in a bounded Store; see NewLimiter for
// what eviction does.
//
// The zero Limiter is not usable; create one with NewLimiter. A Limiter is
// safe for concurrent use. Time is always passed in (AllowN(now, ...)), as in
// x/time/rate, so callers and tests decide what "now" is.
type Limiter struct {
	store  *Store[bucket]
	debts  []debtMemory // one per shard, guarded by that shard's lock
	limit  rate.Limit
	burst  int
	refill float64 // nanoseconds per token
}

// NewLimiter returns a Limiter, or an *OptionError if opts is invalid.
//
// When a shard is full, admitting a new key evicts the shard's least recently
// used key. A key whose bucket had refilled completely is simply dropped: it
// would come back full, exactly as if it had stayed. A key evicted while its
// bucket was still short of tokens leaves its debt in a small memory (see
// DebtMemory), and whoever is admitted under that key later starts with that
// debt. So a well-behaved client loses nothing when evicted, and an attacker
// cannot reset its own bucket by churning other keys through the table; the
// worst an attacker gains by churn is that innocent new keys colliding with
// its debts start with (part of) that debt.
func NewLimiter(opts LimiterOptions) (*Limiter, error) {
	shape, err := shapeOf("LimiterOptions", "MaxKeys", opts.MaxKeys, opts.Shards, defaultMaxKeys)
	if err != nil {
		return nil, err
	}
	r := opts.Rate
	if r.IsZero() {
		r = defaultLimiterRate
	}
	if r.N < 1 || r.N > maxRateN || r.Per <= 0 || r.Per > maxRatePeriod {
		return nil, optErr("LimiterOptions.Rate", "must be between 1 and 2^50 per 1ns..366d, got %d per %v", r.N, r.Per)
	}
	burst := opts.Burst
	if burst == 0 {
		burst = int(min(r.N, maxBurst))
	}
	if burst < 1 || burst > maxBurst {
		return nil, optErr("LimiterOptions.Burst", "must be between 1 and %d, got %d", int64(maxBurst), burst)
	}
	slots := opts.DebtMemory
	if slots == 0 {
		slots = nextPow2(shape.maxKeys)
	}
	if slots < 1 || slots > maxMemorySlots {
		return nil, optErr("LimiterOptions.DebtMemory", "must be between 1 and %d slots, got %d", maxMemorySlots, slots)
	}
	l := &Limiter{
		store: newStore[bucket](shape),
		debts: make([]debtMemory, shape.shards),
		limit: r.PerSecond(),
		burst: burst,
	}
	l.refill = float64(time.Second) / float64(l.limit)
	per := memSlots(slots, shape.shards)
	for i := range l.debts {
		l.debts[i] = newDebtMemory(per)
	}
	return l, nil
}

// Limit returns the sustained rate per key, in tokens per second.
func (l *Limiter) Limit() rate.Limit { return l.limit }

// Burst returns the bucket size.
func (l *Limiter) Burst() int { return l.burst }

// Len returns the number of keys currently held.
func (l *Limiter) Len() int { return l.store.Len() }

// Allow is AllowN(now, key, 1).
func (l *Limiter) Allow(now time.Time, key string) bool { return l.AllowN(now, key, 1) }

// AllowN reports whether key may spend n tokens at time now, and spends them
// if so. n == 0 is always allowed and n < 0 never is. Like x/time/rate, it
// trusts now: pass time.Now() (or one test clock), not times from several
// unsynchronised clocks.
//
// n larger than Burst (a message bigger than the byte burst) is allowed only
// when key's bucket is full, and then the bucket goes n-Burst tokens into
// debt: key is refused until the debt is repaid at Rate. So an oversized
// message is neither refused forever nor a way around the rate: over any
// period T the key gets at most Burst + Rate*T tokens plus the unrepaid part
// of one oversized message.
func (l *Limiter) AllowN(now time.Time, key string, n int) bool {
	if n <= 0 {
		return n == 0
	}
	key = storedKey(key)
	si, sh, h := l.store.locate(key)
	sh.mu.Lock()
	i, ok := sh.find(key, h)
	if ok {
		sh.touch(i)
	} else {
		i = l.admit(now, si, sh, key, h)
	}
	var allowed bool
	b, ns := &sh.entries[i].val, now.UnixNano()
	if n <= l.burst {
		allowed = b.allowN(ns, n, float64(l.limit), l.burst)
	} else if allowed = b.advance(ns, float64(l.limit), l.burst) >= float64(l.burst); allowed {
		// Oversize: allowed on a full bucket only, leaving it in debt.
		b.charge(ns, n, float64(l.limit), l.burst)
	}
	sh.mu.Unlock()
	return allowed
}

// admit adds key to shard si, evicting its least recently used key if the
// shard is full, and returns the new slot with its bucket initialised.
func (l *Limiter) admit(now time.Time, si int, sh *shard[bucket], key string, h uint64) int32 {
	if sh.full() {
		t := sh.tail
		l.remember(now, si, sh.entries[t].key, &sh.entries[t].val)
		sh.remove(t)
	}
	i := sh.add(cloneKey(key), h)
	b := &sh.entries[i].val
	b.fill(now.UnixNano(), l.burst)
	if debt := l.recall(now, si, key); debt > 0 {
		b.charge(now.UnixNano(), debt, float64(l.limit), l.burst)
	}
	return i
}

// recall returns the tokens a key admitted at now owes, from the memory.
func (l *Limiter) recall(now time.Time, si int, key string) int {
	fullAt := l.debts[si].recall(memHash(key))
	if fullAt <= now.UnixNano() {
		return 0
	}
	return int(min(math.Ceil(float64(fullAt-now.UnixNano())/l.refill), maxBurst))
}

// remember records the debt of a bucket that is about to be forgotten, all
// of it, including what an oversize message left owing: eviction must never
// grant more than staying would have.
func (l *Limiter) remember(now time.Time, si int, key string, b *bucket) {
	short := float64(l.burst) - b.advance(now.UnixNano(), float64(l.limit), l.burst)
	if short <= 0 {
		return
	}
	// Capped so that absurd rates cannot overflow the nanosecond clock.
	fullAt := now.UnixNano() + int64(math.Min(math.Ceil(short*l.refill), 1<<61))
	l.debts[si].remember(memHash(key), fullAt)
}

// TokensAt returns the tokens key would have at time now: its bucket's level
// if held (negative while in debt), otherwise what a key admitted at now
// would start with. It does not add key or change its recency.
func (l *Limiter) TokensAt(now time.Time, key string) float64 {
	key = storedKey(key)
	si, sh, h := l.store.locate(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if i, ok := sh.find(key, h); ok {
		return sh.entries[i].val.advance(now.UnixNano(), float64(l.limit), l.burst)
	}
	return float64(l.burst - l.recall(now, si, key))
}

// Forget drops key's bucket, for instance when its connection closes. Like
// eviction, it keeps the bucket's debt, so disconnecting and reconnecting
// does not refill anything.
func (l *Limiter) Forget(now time.Time, key string) {
	key = storedKey(key)
	si, sh, h := l.store.locate(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if i, ok := sh.find(key, h); ok {
		l.remember(now, si, key, &sh.entries[i].val)
		sh.remove(i)
	}
}
