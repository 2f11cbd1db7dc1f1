package ratelimit

import (
	"hash/maphash"
	"sync"
)

// Default and bounds shared by every keyed table.
const (
	defaultShards = 32
	maxShards     = 1024
	maxTableKeys  = 1 << 24
)

// StoreOptions configures a Store. The zero value is valid: 100,000 keys in
// 32 shards.
type StoreOptions struct {
	// MaxKeys caps how many keys the store holds, at most 16777216. When a
	// shard is full, adding a key evicts that shard's least recently used key.
	// Default 100000.
	MaxKeys int `yaml:"max_keys" json:"max_keys"`
	// Shards is the number of independently locked parts, a power of two
	// between 1 and 1024. Default 32, lowered to fit MaxKeys when MaxKeys is
	// smaller.
	Shards int `yaml:"shards" json:"shards"`
}

// tableShape is a validated key cap and shard count.
type tableShape struct {
	maxKeys, shards int
}

// shapeOf validates a key cap and shard count. owner names the options
// struct in error messages ("LimiterOptions"); keysField names its cap field.
func shapeOf(owner, keysField string, maxKeys, shards, defMaxKeys int) (tableShape, error) {
	if maxKeys == 0 {
		maxKeys = defMaxKeys
	}
	if maxKeys < 1 || maxKeys > maxTableKeys {
		return tableShape{}, optErr(owner+"."+keysField, "must be between 1 and %d, got %d", maxTableKeys, maxKeys)
	}
	if shards == 0 {
		shards = defaultShards
		for shards > 1 && shards > maxKeys {
			shards /= 2
		}
	}
	if shards < 1 || shards > maxShards || shards&(shards-1) != 0 {
		return tableShape{}, optErr(owner+".Shards", "must be a power of two between 1 and %d, got %d", maxShards, shards)
	}
	if shards > maxKeys {
		return tableShape{}, optErr(owner+".Shards", "must not exceed %s (%d), got %d; lower Shards or raise %s", keysField, maxKeys, shards, keysField)
	}
	return tableShape{maxKeys: maxKeys, shards: shards}, nil
}

// Store is a bounded map from string keys to values of type V: at most
// MaxKeys keys, split into shards that each hold a map, an intrusive
// least-recently-used list and their own mutex. A full shard makes room by
// evicting its least recently used key. Keys longer than 128 bytes are kept
// as a fixed-size digest (see Range).
//
// The zero Store is not usable; create one with NewStore. A Store is safe for
// concurrent use. Values are reached only through callbacks that run under
// the shard lock: a callback must not keep the *V it is given, nor call back
// into the same Store.
type Store[V any] struct {
	seed   maphash.Seed
	shift  uint // 64 - log2(shards)
	shards []shard[V]
	max    int
}

type entry[V any] struct {
	key        string
	hash       uint64 // the Store's hash of key
	prev, next int32
	val        V
}

// shard is one locked part of a Store. Entries live in a slice that grows up
// to cap and never beyond; freed slots are chained through next. The index is
// an open-addressed table (linear probing, at most half full) of entry
// numbers plus one, probed with the hash already computed to pick the shard:
// one hash per lookup instead of two, no tombstones under churn, and 8 to 16
// bytes per key of capacity, allocated up front.
type shard[V any] struct {
	mu      sync.Mutex
	index   []int32 // 0 = empty, else entry slot + 1
	entries []entry[V]
	head    int32 // most recently used, -1 when empty
	tail    int32 // least recently used, -1 when empty
	free    int32 // first free slot, -1 when none
	n, cap  int32
	_       [64]byte // keep neighbouring shards' locks off one cache line
}

// NewStore returns an empty Store, or an *OptionError if opts is invalid.
func NewStore[V any](opts StoreOptions) (*Store[V], error) {
	shape, err := shapeOf("StoreOptions", "MaxKeys", opts.MaxKeys, opts.Shards, defaultMaxKeys)
	if err != nil {
		return nil, err
	}
	return newStore[V](shape), nil
}

const defaultMaxKeys = 100_000

func newStore[V any](shape tableShape) *Store[V] {
	s := &Store[V]{seed: maphash.MakeSeed(), shards: make([]shard[V], shape.shards), max: shape.maxKeys}
	bits := uint(0)
	for 1<<bits < shape.shards {
		bits++
	}
	s.shift = 64 - bits
	for i := range s.shards {
		// Spread the remainder so that the caps add up to exactly MaxKeys.
		c := shape.maxKeys / shape.shards
		if i < shape.maxKeys%shape.shards {
			c++
		}
		sh := &s.shards[i]
		sh.index = make([]int32, nextPow2(max(8, 2*c)))
		sh.head, sh.tail, sh.free, sh.cap = -1, -1, -1, int32(c)
	}
	return s
}

// locate returns the shard for an already-digested key, its number and the
// key's hash. The top bits of the hash pick the shard, the low bits the
// index position.
func (s *Store[V]) locate(key string) (si int, sh *shard[V], h uint64) {
	h = maphash.String(s.seed, key)
	si = int(h >> s.shift) // a shift of 64 (one shard) gives 0
	return si, &s.shards[si], h
}

// Len returns the number of keys held.
func (s *Store[V]) Len() int {
	n := 0
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		n += int(sh.n)
		sh.mu.Unlock()
	}
	return n
}

// Cap returns MaxKeys.
func (s *Store[V]) Cap() int { return s.max }

// Get calls fn with key's value and marks key most recently used. It reports
// whether key was present; fn is not called when it was not.
func (s *Store[V]) Get(key string, fn func(v *V)) bool {
	key = storedKey(key)
	_, sh, h := s.locate(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	i, ok := sh.find(key, h)
	if !ok {
		return false
	}
	sh.touch(i)
	fn(&sh.entries[i].val)
	return true
}

// Update calls fn with key's value, adding key with the zero V first if it
// was absent (created is then true). Adding to a full shard evicts its least
// recently used key; Update reports whether that happened.
func (s *Store[V]) Update(key string, fn func(v *V, created bool)) (evicted bool) {
	key = storedKey(key)
	_, sh, h := s.locate(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	i, ok := sh.find(key, h)
	if ok {
		sh.touch(i)
		fn(&sh.entries[i].val, false)
		return false
	}
	if sh.full() {
		sh.remove(sh.tail)
		evicted = true
	}
	i = sh.add(cloneKey(key), h)
	var zero V
	sh.entries[i].val = zero
	fn(&sh.entries[i].val, true)
	return evicted
}

// Delete removes key and reports whether it was present.
func (s *Store[V]) Delete(key string) bool {
	key = storedKey(key)
	_, sh, h := s.locate(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	i, ok := sh.find(key, h)
	if ok {
		sh.remove(i)
	}
	return ok
}

// Range calls fn for every key until fn returns false, one shard at a time
// under that shard's lock, in no particular order. Keys longer than 128 bytes
// appear as their 128-byte digest (the first 112 bytes and a hash).
func (s *Store[V]) Range(fn func(key string, v *V) bool) {
	for si := range s.shards {
		sh := &s.shards[si]
		sh.mu.Lock()
		for i := sh.head; i >= 0; i = sh.entries[i].next {
			if !fn(sh.entries[i].key, &sh.entries[i].val) {
				sh.mu.Unlock()
				return
			}
		}
		sh.mu.Unlock()
	}
}

// The methods below require sh.mu to be held.

func (sh *shard[V]) full() bool { return sh.n >= sh.cap }

// find returns key's entry slot.
func (sh *shard[V]) find(key string, h uint64) (int32, bool) {
	mask := uint64(len(sh.index) - 1)
	for pos := h & mask; ; pos = (pos + 1) & mask {
		v := sh.index[pos]
		if v == 0 {
			return -1, false
		}
		if e := &sh.entries[v-1]; e.hash == h && e.key == key {
			return v - 1, true
		}
	}
}

// unindex removes entry slot i from the index by backward-shift deletion:
// later members of the probe run move up into the hole when that keeps them
// reachable from their home position, so no tombstones are ever needed.
func (sh *shard[V]) unindex(i int32) {
	mask := uint64(len(sh.index) - 1)
	hole := sh.entries[i].hash & mask
	for sh.index[hole] != i+1 {
		hole = (hole + 1) & mask
	}
	for j := (hole + 1) & mask; ; j = (j + 1) & mask {
		v := sh.index[j]
		if v == 0 {
			break
		}
		if home := sh.entries[v-1].hash & mask; (j-home)&mask >= (j-hole)&mask {
			sh.index[hole] = v
			hole = j
		}
	}
	sh.index[hole] = 0
}

func (sh *shard[V]) unlink(i int32) {
	e := &sh.entries[i]
	if e.prev >= 0 {
		sh.entries[e.prev].next = e.next
	} else {
		sh.head = e.next
	}
	if e.next >= 0 {
		sh.entries[e.next].prev = e.prev
	} else {
		sh.tail = e.prev
	}
}

func (sh *shard[V]) pushFront(i int32) {
	e := &sh.entries[i]
	e.prev, e.next = -1, sh.head
	if sh.head >= 0 {
		sh.entries[sh.head].prev = i
	} else {
		sh.tail = i
	}
	sh.head = i
}

// touch marks entry i most recently used. It is small enough to inline, so
// touching the entry already at the head costs one comparison.
func (sh *shard[V]) touch(i int32) {
	if sh.head != i {
		sh.moveFront(i)
	}
}

func (sh *shard[V]) moveFront(i int32) {
	sh.unlink(i)
	sh.pushFront(i)
}

// remove drops entry i and puts its slot on the free list. The value is left
// in place (callers that reuse slots initialise them); only the key goes.
func (sh *shard[V]) remove(i int32) {
	sh.unlink(i)
	sh.unindex(i)
	e := &sh.entries[i]
	e.key = ""
	e.prev, e.next = -1, sh.free
	sh.free = i
	sh.n--
}

// add inserts key with hash h (not present, shard not full) as most
// recently used and returns its slot. The caller initialises the value.
func (sh *shard[V]) add(key string, h uint64) int32 {
	var i int32
	if sh.free >= 0 {
		i = sh.free
		sh.free = sh.entries[i].next
	} else {
		if len(sh.entries) == cap(sh.entries) {
			// Grow by doubling, never past the shard's cap.
			nc := min(max(2*cap(sh.entries), 8), int(sh.cap))
			grown := make([]entry[V], len(sh.entries), nc)
			copy(grown, sh.entries)
			sh.entries = grown
		}
		i = int32(len(sh.entries))
		sh.entries = append(sh.entries, entry[V]{})
	}
	sh.entries[i].key, sh.entries[i].hash = key, h
	mask := uint64(len(sh.index) - 1)
	pos := h & mask
	for sh.index[pos] != 0 {
		pos = (pos + 1) & mask
	}
	sh.index[pos] = i + 1
	sh.pushFront(i)
	sh.n++
	return i
}
