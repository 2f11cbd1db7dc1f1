package ratelimit

import (
	"hash/maphash"
	"time"
)

// DistinctOptions configures a Distinct. The zero value is valid: one-hour
// windows, limit 10,000 distinct items per group, precision 12 (1.6%
// standard error), up to 1,024 groups.
type DistinctOptions struct {
	// Window is the length of the sliding window. Default 1h.
	Window time.Duration `yaml:"window" json:"window"`
	// Limit is the most distinct items per group per sliding window that
	// Allow lets in. Default 10000.
	Limit int `yaml:"limit" json:"limit"`
	// Precision is log2 of the registers per sketch, 4..16. Standard error is
	// 1.04/sqrt(2^Precision) (4: 26%, 10: 3.3%, 12: 1.6%, 14: 0.8%, 16: 0.4%)
	// and each group costs 2*2^Precision bytes plus about 600. Default 12.
	Precision int `yaml:"precision" json:"precision"`
	// MaxGroups caps the groups held; a full shard evicts its least recently
	// used group, whose estimate is remembered as in Counter. Default 1024.
	MaxGroups int `yaml:"max_groups" json:"max_groups"`
	// Shards is the number of independently locked parts, a power of two.
	// Default 32.
	Shards int `yaml:"shards" json:"shards"`
	// GroupMemory is the number of 16-byte slots that remember the estimates
	// of evicted groups. A group's count may be as large as Limit, so a
	// crowded memory would make innocent new groups inherit large counts and
	// trip the breaker; hence the generous default of 16 * MaxGroups rounded
	// up to a power of two (256 KiB for 1024 groups).
	GroupMemory int `yaml:"group_memory" json:"group_memory"`
}

// Distinct estimates how many distinct items (topics) each group (a username,
// a tenant prefix) used in a sliding window, with a HyperLogLog sketch per
// group, and enforces a cap on it. It answers "how many series did this
// tenant create this hour" in 2*2^Precision bytes per group however many
// there were.
//
// A sketch cannot tell a known item from a new one, so Allow is a quota
// breaker: once a group's estimate reaches Limit, everything the group sends
// is refused until the estimate slides back below Limit. Use Novelty when new
// items must be refused while known ones keep flowing.
//
// The zero Distinct is not usable; create one with NewDistinct. A Distinct is
// safe for concurrent use.
type Distinct struct {
	seed   maphash.Seed
	store  *Store[hllPair]
	mems   []countMemory // per shard, guarded by its lock
	p      uint8
	length time.Duration
	limit  int
}

// NewDistinct returns a Distinct, or an *OptionError if opts is invalid.
func NewDistinct(opts DistinctOptions) (*Distinct, error) {
	const owner = "DistinctOptions"
	shape, err := shapeOf(owner, "MaxGroups", opts.MaxGroups, opts.Shards, 1024)
	if err != nil {
		return nil, err
	}
	length := opts.Window
	if length == 0 {
		length = time.Hour
	}
	if length < time.Millisecond || length > maxWindow {
		return nil, optErr(owner+".Window", "must be between 1ms and 366 days, got %v", length)
	}
	limit := opts.Limit
	if limit == 0 {
		limit = 10_000
	}
	if limit < 1 || limit > 1<<40 {
		return nil, optErr(owner+".Limit", "must be between 1 and %d, got %d", int64(1<<40), limit)
	}
	p := opts.Precision
	if p == 0 {
		p = 12
	}
	if p < 4 || p > 16 {
		return nil, optErr(owner+".Precision", "must be between 4 and 16, got %d", p)
	}
	if sketches := int64(shape.maxKeys) * 2 << p; sketches > 1<<30 {
		return nil, optErr(owner+".MaxGroups", "%d groups at precision %d need %d MiB of sketches, over 1024 MiB; lower MaxGroups or Precision", shape.maxKeys, p, sketches>>20)
	}
	slots := opts.GroupMemory
	if slots == 0 {
		slots = min(16*nextPow2(shape.maxKeys), maxMemorySlots)
	}
	if slots < 1 || slots > maxMemorySlots {
		return nil, optErr(owner+".GroupMemory", "must be between 1 and %d slots, got %d", maxMemorySlots, slots)
	}
	d := &Distinct{
		seed: maphash.MakeSeed(), store: newStore[hllPair](shape), mems: make([]countMemory, shape.shards),
		p: uint8(p), length: length, limit: limit,
	}
	per := memSlots(slots, shape.shards)
	for i := range d.mems {
		d.mems[i] = newCountMemory(per)
	}
	return d, nil
}

// Limit returns the limit Allow enforces.
func (d *Distinct) Limit() int { return d.limit }

// Len returns the number of groups held.
func (d *Distinct) Len() int { return d.store.Len() }

// Add records item for group at time now and returns the group's estimated
// distinct items in the sliding window, item included.
func (d *Distinct) Add(now time.Time, group, item string) uint64 {
	est, _ := d.update(now, group, item, -1)
	return uint64(est + 0.5)
}

// Allow records item for group and reports true if the group's estimate is
// below Limit; otherwise it records nothing and reports false.
func (d *Distinct) Allow(now time.Time, group, item string) bool {
	_, ok := d.update(now, group, item, float64(d.limit))
	return ok
}

func (d *Distinct) update(now time.Time, group, item string, limit float64) (float64, bool) {
	ih := maphash.String(d.seed, item)
	w, frac := windowAt(now, d.length)
	group = storedKey(group)
	si, sh, h := d.store.locate(group)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	i, ok := sh.find(group, h)
	if ok {
		sh.touch(i)
	} else {
		i = d.admit(w, si, sh, group, h)
	}
	g := &sh.entries[i].val
	g.roll(d.p, w)
	if limit >= 0 && g.estimate(d.p, frac) >= limit {
		return 0, false
	}
	g.insert(d.p, ih)
	return g.estimate(d.p, frac), true
}

func (d *Distinct) admit(w int64, si int, sh *shard[hllPair], group string, h uint64) int32 {
	if sh.full() {
		t := sh.tail
		if r := sh.entries[t].val.residue(d.p, w); !r.isZero() {
			d.mems[si].remember(memHash(sh.entries[t].key), r)
		}
		sh.remove(t)
	}
	// The slot freed last is reused first, so the evicted group's register
	// arrays are recycled rather than reallocated.
	i := sh.add(cloneKey(group), h)
	g := &sh.entries[i].val
	g.reset(d.p, w)
	g.extra = d.mems[si].recall(memHash(group), w)
	return i
}

// Estimate returns group's estimated distinct items in the sliding window at
// now, without recording anything or adding the group.
func (d *Distinct) Estimate(now time.Time, group string) uint64 {
	w, frac := windowAt(now, d.length)
	group = storedKey(group)
	si, sh, h := d.store.locate(group)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if i, ok := sh.find(group, h); ok {
		g := &sh.entries[i].val
		g.roll(d.p, w)
		return uint64(g.estimate(d.p, frac) + 0.5)
	}
	return uint64(d.mems[si].recall(memHash(group), w).count(frac) + 0.5)
}
