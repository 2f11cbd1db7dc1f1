package ratelimit

import (
	"net/netip"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/axiomhq/hyperloglog"
	"golang.org/x/time/rate"
)

// Every benchmark here has its baseline as a sibling sub-benchmark, so the
// comparison is made in the same run on the same machine.

// benchKeys are the known keys the allow-path benchmarks cycle through.
var benchKeys = func() []string {
	k := make([]string, 1024)
	for i := range k {
		k[i] = "fleet-client-" + strconv.Itoa(i)
	}
	return k
}()

// naiveLimiters is the sync.Map-of-limiters design: unbounded, no eviction.
type naiveLimiters struct {
	m     sync.Map
	limit rate.Limit
	burst int
}

func (n *naiveLimiters) AllowN(now time.Time, key string, k int) bool {
	v, ok := n.m.Load(key)
	if !ok {
		v, _ = n.m.LoadOrStore(key, rate.NewLimiter(n.limit, n.burst))
	}
	return v.(*rate.Limiter).AllowN(now, k)
}

// BenchmarkAllow measures the allow path for a known key. Each step advances
// the clock by 10ms, so at 100/s every call is allowed.
func BenchmarkAllow(b *testing.B) {
	mk := func(b *testing.B) *Limiter { return mustLimiter(b, LimiterOptions{}) }
	bare := func() *rate.Limiter { return rate.NewLimiter(100, 100) }
	naive := func() *naiveLimiters { return &naiveLimiters{limit: 100, burst: 100} }
	const tick = 10 * time.Millisecond

	b.Run("serial/ratelimit.Limiter", func(b *testing.B) {
		l := mk(b)
		b.ReportAllocs()
		now, denied := t0, 0
		for b.Loop() {
			now = now.Add(tick)
			if !l.AllowN(now, "fleet-client-7", 1) {
				denied++
			}
		}
		if denied > 0 {
			b.Fatalf("%d denied", denied)
		}
	})
	b.Run("serial/baseline-bare-rate.Limiter", func(b *testing.B) {
		l := bare()
		b.ReportAllocs()
		now := t0
		for b.Loop() {
			now = now.Add(tick)
			l.AllowN(now, 1)
		}
	})
	b.Run("serial/baseline-sync.Map", func(b *testing.B) {
		l := naive()
		b.ReportAllocs()
		now := t0
		for b.Loop() {
			now = now.Add(tick)
			l.AllowN(now, "fleet-client-7", 1)
		}
	})

	// In parallel, each goroutine is its own client with its own key, as on a
	// broker; the bare baseline gives each goroutine its own rate.Limiter.
	parallel := func(b *testing.B, allow func(now time.Time, g int) bool) {
		var next, denied atomic.Int64
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			g := int(next.Add(1)-1) % len(benchKeys)
			now := t0
			for pb.Next() {
				now = now.Add(tick)
				if !allow(now, g) {
					denied.Add(1)
				}
			}
		})
		if d := denied.Load(); d > 0 {
			b.Fatalf("%d denied", d)
		}
	}
	b.Run("parallel/ratelimit.Limiter", func(b *testing.B) {
		l := mk(b)
		parallel(b, func(now time.Time, g int) bool { return l.AllowN(now, benchKeys[g], 1) })
	})
	b.Run("parallel/baseline-bare-rate.Limiter", func(b *testing.B) {
		ls := make([]*rate.Limiter, len(benchKeys))
		for i := range ls {
			ls[i] = bare()
		}
		parallel(b, func(now time.Time, g int) bool { return ls[g].AllowN(now, 1) })
	})
	b.Run("parallel/baseline-sync.Map", func(b *testing.B) {
		l := naive()
		parallel(b, func(now time.Time, g int) bool { return l.AllowN(now, benchKeys[g], 1) })
	})
}

// BenchmarkAllowBytes is the byte limit with the realistic alarm payload:
// 512 KiB/s, n = message size.
func BenchmarkAllowBytes(b *testing.B) {
	payload, err := os.ReadFile("testdata/komdi-alarm.json")
	if err != nil {
		b.Fatal(err)
	}
	size := len(payload)
	step := time.Duration(float64(size) / float64(512<<10) * float64(time.Second)) // refill one message
	b.Run("ratelimit.Limiter", func(b *testing.B) {
		l := mustLimiter(b, LimiterOptions{Rate: Rate{512 << 10, time.Second}})
		b.ReportAllocs()
		now := t0
		for b.Loop() {
			now = now.Add(step)
			l.AllowN(now, "truck-42", size)
		}
	})
	b.Run("baseline-bare-rate.Limiter", func(b *testing.B) {
		l := rate.NewLimiter(512<<10, 512<<10)
		b.ReportAllocs()
		now := t0
		for b.Loop() {
			now = now.Add(step)
			l.AllowN(now, size)
		}
	})
}

// BenchmarkNewKeys is the attack path: every call brings a key never seen,
// so the bounded limiter evicts (and remembers debts) on every call while
// the naive design grows without bound.
func BenchmarkNewKeys(b *testing.B) {
	keys := make([]string, 1<<20)
	for i := range keys {
		keys[i] = "attacker-" + strconv.Itoa(i)
	}
	b.Run("ratelimit.Limiter", func(b *testing.B) {
		l := mustLimiter(b, LimiterOptions{MaxKeys: 10_000})
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			l.AllowN(t0, keys[i&(len(keys)-1)], 100)
			i++
		}
	})
	b.Run("baseline-sync.Map", func(b *testing.B) {
		l := &naiveLimiters{limit: 100, burst: 100}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			l.AllowN(t0, keys[i&(len(keys)-1)], 100)
			i++
		}
	})
}

// BenchmarkBanCheck is the CONNECT-path check, against a plain map lookup of
// the same three keys.
func BenchmarkBanCheck(b *testing.B) {
	ip := netip.MustParseAddr("198.51.100.23")
	full := mustBanList(b, BanOptions{})
	plain := map[string]bool{}
	for i := range 1000 {
		id := "banned-" + strconv.Itoa(i)
		if _, err := full.Strike(t0, ClientIDTarget(id), "flapping"); err != nil {
			b.Fatal(err)
		}
		plain[id] = true
	}
	for _, s := range []string{"ip:10.0.0.0/8", "ip:192.0.2.0/24", "ip:203.0.113.9", "ip:2001:db8::/32"} {
		if err := full.Add(t0, Ban{Target: mustTarget(b, s)}); err != nil {
			b.Fatal(err)
		}
		plain[s] = true
	}
	b.Run("empty", func(b *testing.B) {
		l := mustBanList(b, BanOptions{})
		b.ReportAllocs()
		for b.Loop() {
			l.Check(t0, "fleet-client-7", "fleet", ip)
		}
	})
	b.Run("1004-bans-no-match", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, ok := full.Check(t0, "fleet-client-7", "fleet", ip); ok {
				b.Fatal("match")
			}
		}
	})
	b.Run("baseline-map-3-lookups", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = plain["fleet-client-7"] || plain["fleet"] || plain["198.51.100.23"]
		}
	})
}

// BenchmarkNoveltyKnown is the path every reconnect (or every publish, for
// topic novelty) takes: a known key, with two budgets named. The baseline is
// an exact, unbounded set under a mutex.
func BenchmarkNoveltyKnown(b *testing.B) {
	b.Run("Novelty", func(b *testing.B) {
		n := mustNovelty(b, NoveltyOptions{})
		for _, k := range benchKeys {
			n.Allow(t0, k)
		}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			n.Allow(t0, benchKeys[i&1023], Budget{"ip:192.0.2.1", 20}, Budget{"", 1000})
			i++
		}
	})
	b.Run("baseline-map+mutex", func(b *testing.B) {
		var mu sync.Mutex
		seen := map[string]struct{}{}
		for _, k := range benchKeys {
			seen[k] = struct{}{}
		}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			mu.Lock()
			_, ok := seen[benchKeys[i&1023]]
			mu.Unlock()
			_ = ok
			i++
		}
	})
}

// BenchmarkDistinct records a known topic for a known group and reads the
// estimate, as a publish does. The baseline is the same with
// github.com/axiomhq/hyperloglog (Insert + Estimate).
func BenchmarkDistinct(b *testing.B) {
	b.Run("Distinct.Allow", func(b *testing.B) {
		d, err := NewDistinct(DistinctOptions{})
		if err != nil {
			b.Fatal(err)
		}
		for _, k := range benchKeys {
			d.Add(t0, "user:fleet", k)
		}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			d.Allow(t0, "user:fleet", benchKeys[i&1023])
			i++
		}
	})
	b.Run("baseline-axiom-Insert+Estimate", func(b *testing.B) {
		sk, err := hyperloglog.NewSketch(12, true)
		if err != nil {
			b.Fatal(err)
		}
		for _, k := range benchKeys {
			sk.Insert([]byte(k))
		}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			sk.Insert([]byte(benchKeys[i&1023]))
			_ = sk.Estimate()
			i++
		}
	})
}

// BenchmarkCounter is the per-CONNECT flapping count against a map of
// windows under one mutex (unbounded).
func BenchmarkCounter(b *testing.B) {
	b.Run("Counter.AddN", func(b *testing.B) {
		c := mustCounter(b, CounterOptions{})
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			c.AddN(t0, benchKeys[i&1023], 1)
			i++
		}
	})
	b.Run("baseline-map+mutex", func(b *testing.B) {
		var mu sync.Mutex
		m := map[string]*window{}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			w, _ := windowAt(t0, time.Minute)
			mu.Lock()
			c := m[benchKeys[i&1023]]
			if c == nil {
				c = &window{w: w}
				m[benchKeys[i&1023]] = c
			}
			c.roll(w)
			c.add(1)
			mu.Unlock()
			i++
		}
	})
}
