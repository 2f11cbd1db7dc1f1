package ratelimit

import (
	"errors"
	"fmt"
	"hash/maphash"
	"slices"
	"strings"
	"testing"
)

// checkStore verifies a Store's internal invariants: every shard's list,
// index and free list agree, and no shard holds more than its cap.
func checkStore[V any](t testing.TB, s *Store[V]) {
	t.Helper()
	total := 0
	for si := range s.shards {
		sh := &s.shards[si]
		sh.mu.Lock()
		seen := map[int32]bool{}
		n, prev := int32(0), int32(-1)
		for i := sh.head; i >= 0; i = sh.entries[i].next {
			e := &sh.entries[i]
			if seen[i] || e.prev != prev {
				sh.mu.Unlock()
				t.Fatalf("shard %d: broken list at %d", si, i)
			}
			if j, ok := sh.find(e.key, e.hash); !ok || j != i || e.hash != maphash.String(s.seed, e.key) {
				sh.mu.Unlock()
				t.Fatalf("shard %d: key %q not indexed at %d", si, e.key, i)
			}
			seen[i], prev = true, i
			n++
		}
		for i := sh.free; i >= 0; i = sh.entries[i].next {
			if seen[i] {
				sh.mu.Unlock()
				t.Fatalf("shard %d: slot %d both free and used", si, i)
			}
			seen[i] = true
		}
		indexed := 0
		for _, v := range sh.index {
			if v != 0 {
				indexed++
			}
		}
		bad := sh.tail != prev || n != sh.n || int(n) != indexed || sh.n > sh.cap || cap(sh.entries) > int(sh.cap)
		sh.mu.Unlock()
		if bad {
			t.Fatalf("shard %d: n=%d counted=%d indexed=%d cap=%d entries cap=%d", si, sh.n, n, indexed, sh.cap, cap(sh.entries))
		}
		total += int(n)
	}
	if total > s.Cap() || total != s.Len() {
		t.Fatalf("Len %d, counted %d, Cap %d", s.Len(), total, s.Cap())
	}
}

// storeOpSeeds is the one seed list for Store operation sequences: each byte
// pair is (op, key). The table test replays them against a reference model;
// the fuzz target starts from them.
var storeOpSeeds = [][]byte{
	{},
	{0, 1, 0, 2, 0, 3, 0, 4},             // fill past cap
	{0, 1, 0, 2, 1, 1, 0, 3},             // get refreshes 1, so 2 is evicted
	{0, 1, 2, 1, 2, 1, 0, 2},             // delete twice
	{0, 1, 0, 1, 0, 1},                   // update same key
	{0, 9, 0, 8, 0, 7, 2, 8, 0, 6, 0, 5}, // delete frees a slot
	{1, 3, 2, 3, 3, 0},                   // ops on an empty store
}

// lruModel is an obviously correct single-shard LRU to compare against.
type lruModel struct {
	cap  int
	keys []string // most recent first
}

func (m *lruModel) touch(k string) bool {
	i := slices.Index(m.keys, k)
	if i < 0 {
		return false
	}
	m.keys = slices.Insert(slices.Delete(m.keys, i, i+1), 0, k)
	return true
}

func (m *lruModel) update(k string) {
	if m.touch(k) {
		return
	}
	if len(m.keys) == m.cap {
		m.keys = m.keys[:len(m.keys)-1]
	}
	m.keys = slices.Insert(m.keys, 0, k)
}

func (m *lruModel) del(k string) bool {
	i := slices.Index(m.keys, k)
	if i >= 0 {
		m.keys = slices.Delete(m.keys, i, i+1)
	}
	return i >= 0
}

// runStoreOps replays ops on a one-shard Store of cap 3 and on the model.
func runStoreOps(t testing.TB, ops []byte) {
	s, err := NewStore[int](StoreOptions{MaxKeys: 3, Shards: 1})
	if err != nil {
		t.Fatal(err)
	}
	m := &lruModel{cap: 3}
	for i := 0; i+1 < len(ops); i += 2 {
		k := fmt.Sprint(ops[i+1] % 8)
		if ops[i+1]%16 >= 8 {
			k = strings.Repeat(k, 200) // long keys take the digest path
		}
		switch ops[i] % 4 {
		case 0:
			s.Update(k, func(v *int, created bool) {
				if created != (*v == 0) {
					t.Fatalf("created=%v with value %d", created, *v)
				}
				*v++
			})
			m.update(k)
		case 1:
			if got, want := s.Get(k, func(*int) {}), m.touch(k); got != want {
				t.Fatalf("Get(%q) = %v, model %v", k, got, want)
			}
		case 2:
			if got, want := s.Delete(k), m.del(k); got != want {
				t.Fatalf("Delete(%q) = %v, model %v", k, got, want)
			}
		case 3:
			n := 0
			s.Range(func(string, *int) bool { n++; return n < 2 })
			if n > 2 {
				t.Fatalf("Range did not stop")
			}
		}
		checkStore(t, s)
		var got []string
		s.Range(func(k string, _ *int) bool { got = append(got, k); return true })
		want := make([]string, len(m.keys))
		for i, k := range m.keys {
			want[i] = storedKey(k)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("after op %d: keys %q, model %q", i/2, got, want)
		}
	}
}

func TestStoreOps(t *testing.T) {
	for i, ops := range storeOpSeeds {
		t.Run(fmt.Sprint(i), func(t *testing.T) { runStoreOps(t, ops) })
	}
}

func FuzzStore(f *testing.F) {
	for _, ops := range storeOpSeeds {
		f.Add(ops)
	}
	f.Fuzz(func(t *testing.T, ops []byte) {
		if len(ops) > 4096 {
			ops = ops[:4096]
		}
		runStoreOps(t, ops)
	})
}

func TestStoreShardedCap(t *testing.T) {
	for _, c := range []struct{ max, shards int }{{100, 8}, {7, 4}, {1, 1}, {1000, 0}, {5, 0}} {
		s, err := NewStore[struct{}](StoreOptions{MaxKeys: c.max, Shards: c.shards})
		if err != nil {
			t.Fatal(err)
		}
		for i := range 10 * c.max {
			s.Update(fmt.Sprint(i), func(*struct{}, bool) {})
		}
		checkStore(t, s)
		if s.Len() > c.max || s.Len() < c.max*9/10 {
			t.Errorf("MaxKeys %d, Shards %d: Len %d", c.max, c.shards, s.Len())
		}
	}
}

func TestStoreOptionErrors(t *testing.T) {
	tests := []struct {
		o    StoreOptions
		want string
	}{
		{StoreOptions{MaxKeys: -1}, "ratelimit: StoreOptions.MaxKeys: must be between 1 and 16777216, got -1"},
		{StoreOptions{Shards: 3}, "ratelimit: StoreOptions.Shards: must be a power of two between 1 and 1024, got 3"},
		{StoreOptions{Shards: 2048}, "ratelimit: StoreOptions.Shards: must be a power of two between 1 and 1024, got 2048"},
		{StoreOptions{MaxKeys: 4, Shards: 8}, "ratelimit: StoreOptions.Shards: must not exceed MaxKeys (4), got 8; lower Shards or raise MaxKeys"},
	}
	for _, tc := range tests {
		_, err := NewStore[int](tc.o)
		var oe *OptionError
		if !errors.As(err, &oe) || err.Error() != tc.want {
			t.Errorf("NewStore(%+v) = %v, want %s", tc.o, err, tc.want)
		}
	}
}

func TestStoredKey(t *testing.T) {
	short := strings.Repeat("a", maxStoredKey)
	if storedKey(short) != short {
		t.Fatal("key at the limit was changed")
	}
	long1 := strings.Repeat("a", 1000)
	long2 := strings.Repeat("a", 999) + "b" // same 112-byte prefix
	d1, d2 := storedKey(long1), storedKey(long2)
	if len(d1) != maxStoredKey || d1 == d2 || d1 != storedKey(long1) || d1[:digestPrefix] != long1[:digestPrefix] {
		t.Fatalf("digests: %d bytes, distinct %v, stable %v", len(d1), d1 != d2, d1 == storedKey(long1))
	}
}
