package normalize

import (
	"bytes"
	"encoding/binary"
	"hash/maphash"
	"math/bits"
)

// Duplicate-key detection. Each key of the open objects is recorded as a keyRef to its
// comparable (canonical) form: in the input when the key is canonical as written (nearly
// always), else in state.arena (keys with escapes, decoded; non-ASCII keys, folded). When keys
// are compared folded (the default, see fold.go), ASCII letters are lowercased by every tag,
// hash and comparison, so ASCII keys need no copy.
//
// Objects up to linearKeys members use a cheap tag: a 256-bit filter per object answers "new
// key" for almost every key without a scan, and a hit is confirmed by a linear scan. Past
// linearKeys members an object switches to a hash set keyed by a per-Normalizer seeded maphash,
// so a 100,000-member object costs linear time and precomputed collisions cannot make it
// quadratic. Tags are unseeded, but the scan they guard is bounded by linearKeys.

// linearKeys is the member count up to which the filtered linear scan is used.
const linearKeys = 32

// keyRef is one recorded key: offsets into the input, or into the arena (see arenaBit), which
// may grow and move while the object is open.
type keyRef struct {
	tag    uint64 // keyTag (linear phase) or maphash (hash phase), compared before the bytes
	off, n uint32 // the comparable key in its buffer
}

// arenaBit marks a keyRef.off that points into state.arena rather than the input. Inputs are
// at most 256 MiB, so input offsets never have it set.
const arenaBit = 1 << 31

// keyBytes returns the comparable bytes of the key at off (see arenaBit) with length n.
func (s *state) keyBytes(off, n uint32, src []byte) []byte {
	if off&arenaBit != 0 {
		off &^= arenaBit
		return s.arena[off : off+n]
	}
	return src[off : off+n]
}

// keyTag summarises the key b[off:off+n] in 64 bits: exact for keys shorter than 8 bytes (the
// bytes little-endian, the length in the top byte), first and last 8 bytes otherwise. Short keys
// are read with one 8-byte load from whichever side of the key has room in b.
func keyTag(b []byte, off, n int) uint64 {
	switch {
	case n >= 8:
		return binary.LittleEndian.Uint64(b[off:]) ^ bits.RotateLeft64(binary.LittleEndian.Uint64(b[off+n-8:]), 29) ^ uint64(n)*0x9E3779B97F4A7C15
	case off+8 <= len(b):
		return binary.LittleEndian.Uint64(b[off:])&(1<<(8*n)-1) ^ uint64(n)<<56
	case off+n >= 8:
		return binary.LittleEndian.Uint64(b[off+n-8:])>>(64-8*n) ^ uint64(n)<<56
	}
	var t uint64
	for j := n - 1; j >= 0; j-- {
		t = t<<8 | uint64(b[off+j])
	}
	return t ^ uint64(n)<<56
}

// keyTagLower is keyTag of the key with its ASCII letters lowercased. For a short key the tag
// is the bytes and the length (below 8, not a letter), so lowering the tag lowers the key.
func keyTagLower(b []byte, off, n int) uint64 {
	if n >= 8 {
		return lower8(binary.LittleEndian.Uint64(b[off:])) ^ bits.RotateLeft64(lower8(binary.LittleEndian.Uint64(b[off+n-8:])), 29) ^ uint64(n)*0x9E3779B97F4A7C15
	}
	return lower8(keyTag(b, off, n))
}

// sameKey compares two comparable keys.
func (s *state) sameKey(a, b []byte) bool {
	if s.cfg.fold {
		return equalLower(a, b)
	}
	return bytes.Equal(a, b)
}

// hashKey hashes a comparable key for the hash phase.
func (s *state) hashKey(key []byte) uint64 {
	if s.cfg.fold && hasUpper(key) {
		s.low = appendLower(s.low[:0], key)
		key = s.low
	}
	return maphash.Bytes(s.cfg.seed, key)
}

// recordKey records the key at off (see arenaBit) with length n as a member of the object f
// (whose count f.n already includes it) and reports whether f already has that key. The parser
// inlines the filter-miss case for keys in the input; this is the general path.
func (s *state) recordKey(src []byte, f *frame, off, n uint32) bool {
	key := s.keyBytes(off, n, src)
	if f.n <= linearKeys {
		buf, o := src, off
		if o&arenaBit != 0 {
			buf, o = s.arena, o&^arenaBit
		}
		var tag uint64
		if s.cfg.fold {
			tag = keyTagLower(buf, int(o), int(n))
		} else {
			tag = keyTag(buf, int(o), int(n))
		}
		h := (tag * 0x9E3779B97F4A7C15) >> 56
		word, bit := h>>6, uint64(1)<<(h&63)
		if f.filter[word]&bit != 0 {
			// A filter hit: confirm by scanning the keys so far.
			for j := range f.lin[:f.n-1] {
				k := &f.lin[j]
				if k.tag == tag && k.n == n && s.sameKey(s.keyBytes(k.off, k.n, src), key) {
					return true
				}
			}
		}
		f.filter[word] |= bit
		f.lin[f.n-1] = keyRef{tag, off, n}
		return false
	}
	if len(f.tab) == 0 {
		// Past linearKeys: move the keys to state.keys and index them.
		f.keyStart = len(s.keys)
		s.keys = append(s.keys, f.lin[:]...)
		s.buildTable(src, f)
	}
	h := s.hashKey(key)
	mask := uint64(len(f.tab) - 1)
	p := h & mask
	for ; f.tab[p] != 0; p = (p + 1) & mask {
		k := &s.keys[f.tab[p]-1]
		if k.tag == h && k.n == n && s.sameKey(s.keyBytes(k.off, k.n, src), key) {
			return true
		}
	}
	s.keys = append(s.keys, keyRef{h, off, n})
	f.tab[p] = uint32(len(s.keys))
	if 2*(len(s.keys)-f.keyStart) > len(f.tab) {
		s.buildTable(src, f)
	}
	return false
}

// buildTable (re)builds f's hash set at a load factor of at most 1/4, reusing its capacity.
func (s *state) buildTable(src []byte, f *frame) {
	ks := s.keys[f.keyStart:]
	size := 128
	for size < 4*len(ks) {
		size <<= 1
	}
	if cap(f.tab) >= size {
		f.tab = f.tab[:size]
		clear(f.tab)
	} else {
		f.tab = make([]uint32, size)
		if size > retainTable {
			s.bigTables = true
		}
	}
	mask := uint64(size - 1)
	for j := range ks {
		k := &ks[j]
		k.tag = s.hashKey(s.keyBytes(k.off, k.n, src))
		p := k.tag & mask
		for f.tab[p] != 0 {
			p = (p + 1) & mask
		}
		f.tab[p] = uint32(f.keyStart + j + 1)
	}
}
