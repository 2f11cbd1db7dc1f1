package ratelimit

import (
	"net/netip"
	"runtime"
	"strconv"
	"testing"
	"time"
)

// Live-heap caps for one instance with default options after a million
// distinct keys, in MiB. They are what the defaults cost when full, with
// some headroom; the sum must stay under the 64 MiB the WAF allows for all of
// them together. Measured figures are in the package README section.
const (
	capLimiterMiB  = 11
	capNoveltyMiB  = 8
	capBansMiB     = 14
	capDistinctMiB = 12
	capAllMiB      = 64
)

func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

const mib = 1 << 20

// key builds distinct keys like "sensor-123456" without fmt.
func key(prefix string, i int) string {
	return string(strconv.AppendInt([]byte(prefix), int64(i), 10))
}

// distinctCounts: 100,000 always; 1,000,000 except under -race or -short.
func distinctCounts() []int {
	if raceEnabled || testing.Short() {
		return []int{100_000}
	}
	return []int{100_000, 1_000_000}
}

// feed drives n distinct attacker keys through every structure, one second
// of fake time per 10,000 keys, the way a flood of one-shot sensors would.
type fleet struct {
	lim  *Limiter
	nov  *Novelty
	bans *BanList
	dist *Distinct
}

// newFleet builds the named structures ("" for all four) with defaults.
func newFleet(t testing.TB, which string) *fleet {
	t.Helper()
	f := &fleet{}
	var err error
	if which == "" || which == "limiter" {
		if f.lim, err = NewLimiter(LimiterOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if which == "" || which == "novelty" {
		if f.nov, err = NewNovelty(NoveltyOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if which == "" || which == "bans" {
		if f.bans, err = NewBanList(BanOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if which == "" || which == "distinct" {
		if f.dist, err = NewDistinct(DistinctOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// held checks every key cap of the structures present.
func (f *fleet) held(t testing.TB) {
	t.Helper()
	switch {
	case f.lim != nil && f.lim.Len() > 100_000,
		f.nov != nil && f.nov.groups.Len() > 50_000,
		f.bans != nil && (f.bans.Len() > 20_000 || f.bans.strikes.Len() > 50_000),
		f.dist != nil && f.dist.Len() > 1024:
		t.Fatal("a key cap was exceeded")
	}
}

func (f *fleet) feed(n int, which string) {
	for i := range n {
		now := t0.Add(time.Duration(i) * 100 * time.Microsecond)
		id := key("sensor-", i)
		switch which {
		case "limiter":
			f.lim.AllowN(now, id, 100) // drain: every eviction leaves a debt
		case "novelty":
			ip := key("ip:10.", i)
			f.nov.Allow(now, id, Budget{ip, 20}, Budget{"", 1 << 30})
		case "bans":
			f.bans.Strike(now, ClientIDTarget(id), "flapping")
			if i%7 == 0 {
				f.bans.Strike(now, IPTarget(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})), "flapping")
			}
		case "distinct":
			f.dist.Add(now, key("user:", i%5000), key("fleet/", i)+"/telemetry")
		}
	}
}

// TestBoundedMemoryNoRace drives 100,000 and 1,000,000 distinct keys (topics for
// Distinct) through each structure with default options and checks the live
// heap it holds.
func TestBoundedMemoryNoRace(t *testing.T) {
	caps := map[string]float64{"limiter": capLimiterMiB, "novelty": capNoveltyMiB, "bans": capBansMiB, "distinct": capDistinctMiB}
	for _, which := range []string{"limiter", "novelty", "bans", "distinct"} {
		for _, n := range distinctCounts() {
			t.Run(which+"/"+strconv.Itoa(n), func(t *testing.T) {
				before := liveHeap()
				f := newFleet(t, which)
				f.feed(n, which)
				used := float64(liveHeap()-min(before, liveHeap())) / mib
				f.held(t)
				runtime.KeepAlive(f)
				t.Logf("%s after %d distinct keys: %.1f MiB live (cap %.0f MiB)", which, n, used, caps[which])
				if used > caps[which] {
					t.Fatalf("%s holds %.1f MiB, cap %.0f MiB", which, used, caps[which])
				}
			})
		}
	}
}

// TestBoundedMemoryTogetherNoRace keeps all four alive at once, each filled past
// every one of its caps (200,000 distinct keys each), and checks they stay
// under 64 MiB together.
func TestBoundedMemoryTogetherNoRace(t *testing.T) {
	if raceEnabled {
		t.Skip("a memory measurement, not a concurrency test; TestBoundedMemoryNoRace's 100,000-key runs cover -race; run without it: go test -run NoRace")
	}
	if capLimiterMiB+capNoveltyMiB+capBansMiB+capDistinctMiB > capAllMiB {
		t.Fatal("the per-structure caps add up to more than the total")
	}
	before := liveHeap()
	f := newFleet(t, "")
	for _, which := range []string{"limiter", "novelty", "bans", "distinct"} {
		f.feed(200_000, which)
	}
	used := float64(liveHeap()-min(before, liveHeap())) / mib
	f.held(t)
	runtime.KeepAlive(f)
	t.Logf("all four, full: %.1f MiB live", used)
	if used > capAllMiB {
		t.Fatalf("together %.1f MiB, cap %d MiB", used, capAllMiB)
	}
}
