package ratelimit

import (
	"math"
	"time"
)

// CounterOptions configures a Counter. The zero value is valid: a one-minute
// sliding window, limit 15 (EMQX's flapping default: 15 connects a minute),
// up to 100,000 keys.
type CounterOptions struct {
	// Window is the length of the sliding window. Default 1m.
	Window time.Duration `yaml:"window" json:"window"`
	// Limit is the most events per window AllowN lets through. Default 15.
	Limit int `yaml:"limit" json:"limit"`
	// MaxKeys caps the keys held; a full shard evicts its least recently used
	// key. Default 100000.
	MaxKeys int `yaml:"max_keys" json:"max_keys"`
	// Shards is the number of independently locked parts, a power of two.
	// Default 32.
	Shards int `yaml:"shards" json:"shards"`
	// CountMemory is the number of 16-byte slots that remember the counts of
	// evicted keys, so that eviction never resets a count. Default: MaxKeys
	// rounded up to a power of two.
	CountMemory int `yaml:"count_memory" json:"count_memory"`
}

// Counter counts events per key over a sliding window (two-bucket
// approximation: the previous fixed window's count slides out linearly). It
// is the "N events per window per key" building block: flapping detection
// (connects per minute per client ID, username or IP), and the per-group
// budgets of Novelty.
//
// Keys live in a bounded Store. A key evicted with a non-zero count leaves
// that count in a small memory, and a key admitted later starts from it, so
// eviction cannot be used to reset a count (see Limiter for the reasoning).
//
// The zero Counter is not usable; create one with NewCounter. A Counter is
// safe for concurrent use.
type Counter struct {
	store  *Store[window]
	mems   []countMemory // one per shard, guarded by that shard's lock
	length time.Duration
	limit  int
}

const maxWindow = 366 * 24 * time.Hour

// NewCounter returns a Counter, or an *OptionError if opts is invalid.
func NewCounter(opts CounterOptions) (*Counter, error) {
	return newCounter("CounterOptions", opts, 15)
}

func newCounter(owner string, opts CounterOptions, defLimit int) (*Counter, error) {
	shape, err := shapeOf(owner, "MaxKeys", opts.MaxKeys, opts.Shards, defaultMaxKeys)
	if err != nil {
		return nil, err
	}
	length := opts.Window
	if length == 0 {
		length = time.Minute
	}
	if length < time.Millisecond || length > maxWindow {
		return nil, optErr(owner+".Window", "must be between 1ms and 366 days, got %v", length)
	}
	limit := opts.Limit
	if limit == 0 {
		limit = defLimit
	}
	if limit < 1 || limit > math.MaxUint32 {
		return nil, optErr(owner+".Limit", "must be between 1 and %d, got %d", uint32(math.MaxUint32), limit)
	}
	slots := opts.CountMemory
	if slots == 0 {
		slots = nextPow2(shape.maxKeys)
	}
	if slots < 1 || slots > maxMemorySlots {
		return nil, optErr(owner+".CountMemory", "must be between 1 and %d slots, got %d", maxMemorySlots, slots)
	}
	c := &Counter{store: newStore[window](shape), mems: make([]countMemory, shape.shards), length: length, limit: limit}
	per := memSlots(slots, shape.shards)
	for i := range c.mems {
		c.mems[i] = newCountMemory(per)
	}
	return c, nil
}

// Window returns the window length.
func (c *Counter) Window() time.Duration { return c.length }

// Limit returns the limit AllowN enforces.
func (c *Counter) Limit() int { return c.limit }

// Len returns the number of keys currently held.
func (c *Counter) Len() int { return c.store.Len() }

// AddN counts n events for key at time now and returns key's sliding count
// including them. Negative n counts nothing.
func (c *Counter) AddN(now time.Time, key string, n int) float64 {
	got, _ := c.update(now, key, n, math.Inf(1))
	return got
}

// AllowN counts n events for key at time now only if its sliding count would
// stay within Limit, and reports whether it did. This is a budget: refused
// events are not counted.
func (c *Counter) AllowN(now time.Time, key string, n int) bool {
	_, ok := c.update(now, key, n, float64(c.limit))
	return ok
}

func (c *Counter) update(now time.Time, key string, n int, limit float64) (float64, bool) {
	if n < 0 {
		n = 0
	}
	w, frac := windowAt(now, c.length)
	key = storedKey(key)
	si, sh, h := c.store.locate(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	i, ok := sh.find(key, h)
	if ok {
		sh.touch(i)
	} else {
		i = c.admit(w, si, sh, key, h)
	}
	win := &sh.entries[i].val
	win.roll(w)
	got := win.count(frac)
	if got+float64(n) > limit {
		return got, false
	}
	win.add(uint32(min(n, math.MaxUint32)))
	return got + float64(n), true
}

func (c *Counter) admit(w int64, si int, sh *shard[window], key string, h uint64) int32 {
	if sh.full() {
		t := sh.tail
		c.remember(w, si, sh.entries[t].key, sh.entries[t].val)
		sh.remove(t)
	}
	i := sh.add(cloneKey(key), h)
	sh.entries[i].val = c.mems[si].recall(memHash(key), w)
	return i
}

func (c *Counter) remember(w int64, si int, key string, win window) {
	win.roll(w)
	if !win.isZero() {
		c.mems[si].remember(memHash(key), win)
	}
}

// Count returns key's sliding count at time now without counting anything or
// adding key. An absent key reports what it would start from if admitted.
func (c *Counter) Count(now time.Time, key string) float64 {
	w, frac := windowAt(now, c.length)
	key = storedKey(key)
	si, sh, h := c.store.locate(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if i, ok := sh.find(key, h); ok {
		win := sh.entries[i].val
		win.roll(w)
		return win.count(frac)
	}
	return c.mems[si].recall(memHash(key), w).count(frac)
}

// Reset drops key's count without remembering it, as if the key had never
// counted anything (Forget, by contrast, keeps the count in the eviction
// memory). Use it when a count has been acted on, e.g. after an escalation,
// or when an operator lifts a ban.
func (c *Counter) Reset(key string) { c.store.Delete(key) }

// Forget drops key, keeping its count in the eviction memory.
func (c *Counter) Forget(now time.Time, key string) {
	w, _ := windowAt(now, c.length)
	key = storedKey(key)
	si, sh, h := c.store.locate(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if i, ok := sh.find(key, h); ok {
		c.remember(w, si, key, sh.entries[i].val)
		sh.remove(i)
	}
}
