package ratelimit

import "hash/maphash"

// Eviction memory.
//
// A bounded table must forget keys, and a key that comes back after being
// forgotten would normally start afresh: a full token bucket, a zero count.
// That turns eviction into a reset button: drain your bucket, push enough
// other keys through the table to evict yourself, come back full. The
// memories below close that hole in bounded space. When a key is evicted (or
// forgotten) while it still carries state that matters, a debt or a count,
// that state is folded into a small count-min style sketch: each key maps to
// memProbes slots and every slot keeps the most conservative value of all
// keys that map to it. When a key is admitted, the least conservative of its
// slots is the bound it starts from. Collisions can only make a returning or
// new key start more constrained than it would have, never less: eviction
// can no longer make anyone better off. The price, an innocent new key that
// collides on all its slots with recently evicted heavy users, is bounded by
// what those users carried (a drained bucket, or their window count) and
// fades as their debts expire.
//
// Under a churn flood that evicts more stateful keys per window than the
// memory has slots, most slots hold some recent state, and new keys inherit
// up to the smallest of their probes' states. That is fail closed by choice:
// new keys start constrained rather than evicted keys starting clean. Size
// the memories (DebtMemory, CountMemory, GroupMemory) for the churn you expect.

const memProbes = 4

// maxMemorySlots bounds a memory's size (256 MiB at 16 bytes a slot).
const maxMemorySlots = 1 << 24

// memSeed is shared by all memories of a process; each memory uses it with
// the stored key, independently of the shard hash.
var memSeed = maphash.MakeSeed()

func memHash(key string) uint64 { return maphash.String(memSeed, key) }

// memSlots returns the per-shard slot count for total slots over shards.
func memSlots(total, shards int) int { return nextPow2(max(16, (total+shards-1)/shards)) }

// debtMemory remembers, per slot, the latest time at which a forgotten token
// bucket mapping there would be full again (Unix nanoseconds).
type debtMemory struct {
	slots []int64
	mask  uint64
}

func newDebtMemory(n int) debtMemory { return debtMemory{slots: make([]int64, n), mask: uint64(n - 1)} }

func (m *debtMemory) remember(h uint64, fullAt int64) {
	for j := range memProbes {
		s := &m.slots[probe(h, j, m.mask)]
		*s = max(*s, fullAt)
	}
}

func (m *debtMemory) recall(h uint64) int64 {
	v := m.slots[probe(h, 0, m.mask)]
	for j := 1; j < memProbes; j++ {
		v = min(v, m.slots[probe(h, j, m.mask)])
	}
	return v
}

// countMemory remembers, per slot, the largest sliding-window counts of the
// forgotten keys that map there.
type countMemory struct {
	slots []window
	mask  uint64
}

func newCountMemory(n int) countMemory {
	return countMemory{slots: make([]window, n), mask: uint64(n - 1)}
}

func (m *countMemory) remember(h uint64, w window) {
	for j := range memProbes {
		s := &m.slots[probe(h, j, m.mask)]
		*s = s.join(w)
	}
}

// recall returns the bound for h rolled to window index now (zero if none).
func (m *countMemory) recall(h uint64, now int64) window {
	v := m.slots[probe(h, 0, m.mask)]
	v.roll(now)
	for j := 1; j < memProbes; j++ {
		o := m.slots[probe(h, j, m.mask)]
		o.roll(now)
		v = v.meet(o)
	}
	return v
}
