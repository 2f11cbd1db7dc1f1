package ratelimit

import (
	"math"
	"sync"
)

// seenSet remembers which keys appeared recently, in bounded memory: a
// rotating pair of Bloom filters per shard, one for the current fixed window
// and one for the previous. A key counts as seen if either filter may hold
// it, so a key is remembered for at least one and at most two windows after
// it last appeared.
//
// Errors and what they give an attacker:
//   - False positive (a new key reported seen): at most the configured rate
//     while each filter holds no more than its share of ExpectedKeys. The key
//     passes without being counted, so an attacker's new keys slip through a
//     budget at that rate, never more.
//   - No false negatives for keys inserted in the current or previous
//     window, with one deliberate exception: once a shard's current filter
//     holds its share of ExpectedKeys, further keys are not remembered (and
//     known keys from the previous window are not refreshed). Flooding can
//     therefore never push the false-positive rate up; it only makes more
//     keys count as new (fail closed), until the window rolls over.
type seenSet struct {
	shards []seenShard
	mask   uint64
	k      int    // bits set per key
	bits   uint64 // bits per filter per shard
	cap    int    // keys per filter per shard
}

type seenShard struct {
	mu        sync.Mutex
	w         int64
	cur, prev []uint64
	n         int // keys added to cur
	_         [64]byte
}

// newSeenSet sizes each filter so that the pair answers with at most fpr
// false positives while holding expected keys in each window.
func newSeenSet(expected int, fpr float64, shards int) *seenSet {
	perFilter := fpr / 2 // a lookup consults two filters
	bitsPerKey := -math.Log(perFilter) / (math.Ln2 * math.Ln2)
	// Keys do not spread evenly over shards: give each shard five standard
	// deviations of room, so that ExpectedKeys fit in practice.
	perShard := (expected + shards - 1) / shards
	perShard += 5*int(math.Ceil(math.Sqrt(float64(perShard)))) + 1
	words := (int(math.Ceil(float64(perShard)*bitsPerKey)) + 63) / 64
	s := &seenSet{
		shards: make([]seenShard, shards),
		mask:   uint64(shards - 1),
		k:      max(1, min(16, int(math.Round(bitsPerKey*math.Ln2)))),
		bits:   uint64(words) * 64,
		cap:    perShard,
	}
	for i := range s.shards {
		s.shards[i].cur = make([]uint64, words)
		s.shards[i].prev = make([]uint64, words)
	}
	return s
}

func (s *seenSet) shard(h uint64) *seenShard { return &s.shards[h&s.mask] }

// bit returns the j-th bit position for mixed hash x (double hashing, then
// Lemire's multiply-shift to map 32 bits onto the filter size).
func (s *seenSet) bit(x uint64, j int) uint64 {
	y := uint32(x) + uint32(j)*(uint32(x>>32)|1)
	return uint64(y) * s.bits >> 32
}

// mix is the splitmix64 finaliser. The shard was chosen by h's low bits;
// mixing gives bit positions that do not depend on that choice.
func mix(h uint64) uint64 {
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	return h ^ h>>31
}

func (s *seenSet) in(f []uint64, h uint64) bool {
	x := mix(h)
	for j := range s.k {
		b := s.bit(x, j)
		if f[b/64]&(1<<(b%64)) == 0 {
			return false
		}
	}
	return true
}

// The methods below require sh.mu to be held.

func (sh *seenShard) roll(w int64) {
	switch {
	case w <= sh.w:
		return
	case w == sh.w+1:
		sh.cur, sh.prev = sh.prev, sh.cur
		clear(sh.cur)
	default:
		clear(sh.cur)
		clear(sh.prev)
	}
	sh.w, sh.n = w, 0
}

// lookup reports whether h may be in the current or previous filter.
func (s *seenSet) lookup(sh *seenShard, h uint64) (inCur, inPrev bool) {
	if s.in(sh.cur, h) {
		return true, false
	}
	return false, s.in(sh.prev, h)
}

// insert adds h to the current filter unless the filter is at capacity.
func (s *seenSet) insert(sh *seenShard, h uint64) {
	if sh.n >= s.cap {
		return
	}
	x := mix(h)
	for j := range s.k {
		b := s.bit(x, j)
		sh.cur[b/64] |= 1 << (b % 64)
	}
	sh.n++
}
