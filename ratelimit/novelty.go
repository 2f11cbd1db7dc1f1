package ratelimit

import (
	"hash/maphash"
	"sync"
	"time"
)

// NoveltyOptions configures a Novelty. The zero value is valid: one-minute
// windows, 100,000 keys remembered per window at 1% false positives, up to
// 50,000 groups.
type NoveltyOptions struct {
	// Window is the length of the windows that both "seen recently" and the
	// per-group counts use. A key is remembered for one to two windows after
	// it last appeared. Default 1m.
	Window time.Duration `yaml:"window" json:"window"`
	// ExpectedKeys is how many distinct keys one window is sized for. Each
	// shard holds its share plus five standard deviations of headroom; past
	// that the seen set stops remembering new keys, which then count as new
	// every time (fail closed) instead of raising the false-positive rate. It
	// sizes the Bloom filters: about 1.7 bytes per key per window at 1%, two
	// windows kept. Default 100000.
	ExpectedKeys int `yaml:"expected_keys" json:"expected_keys"`
	// FalsePositiveRate is the chance that a new key is mistaken for a known
	// one, while the seen set is within ExpectedKeys. Default 0.01.
	FalsePositiveRate float64 `yaml:"false_positive_rate" json:"false_positive_rate"`
	// MaxGroups caps the groups whose counts are held (LRU eviction; counts
	// of evicted groups are remembered as in Counter). Default 50000.
	MaxGroups int `yaml:"max_groups" json:"max_groups"`
	// Shards is the number of independently locked parts of both tables, a
	// power of two. Default 32.
	Shards int `yaml:"shards" json:"shards"`
}

// Budget caps how many new keys a group may admit per sliding window. It is
// a plain value; the zero Budget (global group, Limit 0) admits nothing new. Group
// is any string the caller chooses ("" for global, "ip:192.0.2.1",
// "user:alice", "prefix:sensor-"); groups share one namespace, so prefix them
// by kind. A Limit below 1 admits no new keys.
type Budget struct {
	Group string
	Limit int
}

// Novelty counts new distinct keys (client IDs never seen before, topics
// never published before) per group per sliding window, and enforces budgets
// on them. "Seen before" means seen in the current or previous window, held
// in a rotating pair of Bloom filters per shard; group counts are held in a
// bounded Counter.
//
// Error behaviour and what an attacker gains from it: a false positive (a new
// key taken for a known one, at most FalsePositiveRate while the seen set is
// within ExpectedKeys) lets that key through uncounted, so an attacker's new
// keys slip past a budget at that rate and no faster. There are no false
// negatives for keys admitted in the current or previous window, except once
// a shard's filter is full: then new keys are not remembered and count as new
// each time they appear, which costs budgets, never bypasses them. Flooding
// therefore cannot raise the false-positive rate.
//
// The zero Novelty is not usable; create one with NewNovelty. A Novelty is
// safe for concurrent use: known keys are answered under one shard lock, and
// new keys are admitted one at a time so that budgets hold exactly.
type Novelty struct {
	seed   maphash.Seed
	seen   *seenSet
	groups *Counter
	length time.Duration
	mu     sync.Mutex // serialises admission of new keys
}

// NewNovelty returns a Novelty, or an *OptionError if opts is invalid.
func NewNovelty(opts NoveltyOptions) (*Novelty, error) {
	const owner = "NoveltyOptions"
	expected := opts.ExpectedKeys
	if expected == 0 {
		expected = 100_000
	}
	if expected < 1 || expected > 1<<26 {
		return nil, optErr(owner+".ExpectedKeys", "must be between 1 and %d, got %d", 1<<26, expected)
	}
	fpr := opts.FalsePositiveRate
	if fpr == 0 {
		fpr = 0.01
	}
	if !(fpr >= 1e-9 && fpr <= 0.5) {
		return nil, optErr(owner+".FalsePositiveRate", "must be between 1e-9 and 0.5, got %v", fpr)
	}
	maxGroups := opts.MaxGroups
	if maxGroups == 0 {
		maxGroups = 50_000
	}
	groups, err := newCounter(owner, CounterOptions{Window: opts.Window, MaxKeys: maxGroups, Shards: opts.Shards}, 1)
	if err != nil {
		if oe, ok := err.(*OptionError); ok && oe.Field == owner+".MaxKeys" {
			oe.Field = owner + ".MaxGroups"
		}
		return nil, err
	}
	return &Novelty{
		seed:   maphash.MakeSeed(),
		seen:   newSeenSet(expected, fpr, len(groups.store.shards)),
		groups: groups,
		length: groups.length,
	}, nil
}

// Allow reports whether key may appear at time now. A key seen in the current
// or previous window is always allowed and is remembered for another window.
// A new key is allowed only if every budget's group has admitted fewer than
// its Limit new keys in the sliding window; it is then counted in each of
// those groups and remembered. A refused key is neither counted nor
// remembered, so retrying it does not make it known.
func (n *Novelty) Allow(now time.Time, key string, budgets ...Budget) bool {
	h := maphash.String(n.seed, key)
	w, _ := windowAt(now, n.length)
	sh := n.seen.shard(h)
	if n.known(sh, w, h) {
		return true
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	// Another goroutine may have admitted key while we waited.
	if n.known(sh, w, h) {
		return true
	}
	for _, b := range budgets {
		if b.Limit < 1 || n.groups.Count(now, b.Group)+1 > float64(b.Limit) {
			return false
		}
	}
	sh.mu.Lock()
	n.seen.insert(sh, h)
	sh.mu.Unlock()
	for _, b := range budgets {
		n.groups.AddN(now, b.Group, 1)
	}
	return true
}

// known reports whether h was seen, refreshing it into the current window.
func (n *Novelty) known(sh *seenShard, w int64, h uint64) bool {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sh.roll(w)
	inCur, inPrev := n.seen.lookup(sh, h)
	if inPrev {
		n.seen.insert(sh, h)
	}
	return inCur || inPrev
}

// Seen reports whether key was seen in the current or previous window,
// without recording anything.
func (n *Novelty) Seen(now time.Time, key string) bool {
	h := maphash.String(n.seed, key)
	w, _ := windowAt(now, n.length)
	sh := n.seen.shard(h)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sh.roll(w)
	inCur, inPrev := n.seen.lookup(sh, h)
	return inCur || inPrev
}

// Count returns how many new keys group admitted in the sliding window
// ending at now.
func (n *Novelty) Count(now time.Time, group string) float64 { return n.groups.Count(now, group) }
