package ratelimit

import (
	"encoding/binary"
	"hash/maphash"
	"strings"
)

// maxStoredKey bounds the bytes any table keeps per key. Keys are chosen by
// clients (an MQTT client ID or topic may be 65535 bytes), so without this a
// 100,000-key table could hold 6 GiB of key text. Longer keys are stored as
// their first digestPrefix bytes followed by a 128-bit keyed hash; two long
// keys share state only if both agree on that prefix and on the hash, which an
// attacker cannot arrange without the per-process seeds.
const (
	maxStoredKey = 128
	digestPrefix = maxStoredKey - 16
)

// Per-process seeds: hashes cannot be predicted from outside, so nobody can
// craft keys that pile into one shard, one Bloom word or one HLL register.
var digestSeed1, digestSeed2 = maphash.MakeSeed(), maphash.MakeSeed()

// storedKey returns key, or its bounded digest when key is too long. Only the
// long-key case allocates. It is small enough to inline, so the common short
// key costs one comparison.
func storedKey(key string) string {
	if len(key) <= maxStoredKey {
		return key
	}
	return digestKey(key)
}

// digestKey is storedKey's long-key case: the first digestPrefix bytes
// followed by two keyed 64-bit hashes of the whole key.
func digestKey(key string) string {
	var b [maxStoredKey]byte
	copy(b[:], key[:digestPrefix])
	binary.LittleEndian.PutUint64(b[digestPrefix:], maphash.String(digestSeed1, key))
	binary.LittleEndian.PutUint64(b[digestPrefix+8:], maphash.String(digestSeed2, key))
	return string(b[:])
}

// cloneKey copies a key before a table keeps it, so that a key that is a
// substring of a large packet buffer does not keep the whole buffer alive.
func cloneKey(key string) string { return strings.Clone(key) }

// probe returns the j-th of several slot indices for hash h in a table of
// mask+1 slots (double hashing: h1 + j*h2 with h2 odd).
func probe(h uint64, j int, mask uint64) uint64 {
	h1, h2 := h, (h>>32)|1
	return (h1 + uint64(j)*h2) & mask
}

// nextPow2 returns the smallest power of two >= n (n >= 1).
func nextPow2(n int) int {
	p := 1
	for p < n {
		p <<= 1
	}
	return p
}
