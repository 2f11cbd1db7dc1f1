package ratelimit

import (
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
)

// TestConcurrent hammers every structure from many goroutines (run it with
// -race). All goroutines use the same instant, so nothing refills and the
// totals are exact: a shared bucket grants its burst once, a budget admits its
// limit once, however the goroutines interleave.
func TestConcurrent(t *testing.T) {
	const workers, perWorker = 16, 2000
	lim := mustLimiter(t, LimiterOptions{Rate: Rate{50, 1e9}, MaxKeys: 500, Shards: 8})
	ctr := mustCounter(t, CounterOptions{Limit: 40, MaxKeys: 500, Shards: 8})
	nov := mustNovelty(t, NoveltyOptions{MaxGroups: 500, Shards: 8})
	dist, err := NewDistinct(DistinctOptions{MaxGroups: 64, Shards: 8, Precision: 8})
	if err != nil {
		t.Fatal(err)
	}
	bans := mustBanList(t, BanOptions{MaxBans: 300, MaxOffenders: 400})
	store, err := NewStore[int](StoreOptions{MaxKeys: 300, Shards: 8})
	if err != nil {
		t.Fatal(err)
	}

	var limGranted, ctrGranted, novAdmitted atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ip := netip.AddrFrom4([4]byte{10, 0, 0, byte(w)})
			for i := range perWorker {
				own := "w" + strconv.Itoa(w) + "-" + strconv.Itoa(i)
				if lim.Allow(t0, "shared") {
					limGranted.Add(1)
				}
				lim.AllowN(t0, own, 3) // churns the 500-key table
				if ctr.AllowN(t0, "shared", 1) {
					ctrGranted.Add(1)
				}
				ctr.AddN(t0, own, 1)
				if nov.Allow(t0, own, Budget{"", 100}) {
					novAdmitted.Add(1)
				}
				nov.Allow(t0, "everyone-knows-me")
				dist.Add(t0, "g"+strconv.Itoa(i%100), own)
				if i%10 == 0 {
					bans.Strike(t0, ClientIDTarget(own), "flapping")
					bans.Strike(t0, IPTarget(ip), "flapping")
				}
				bans.Check(t0, own, "u", ip)
				if i%500 == 0 {
					if _, err := bans.List(t0); err != nil {
						t.Error(err)
					}
					bans.Remove(IPTarget(ip))
				}
				store.Update(own, func(v *int, _ bool) { *v++ })
				store.Get("w0-0", func(*int) {})
			}
		}()
	}
	wg.Wait()

	if got := limGranted.Load(); got != 50 {
		t.Errorf("shared bucket granted %d, want its burst 50", got)
	}
	if got := ctrGranted.Load(); got != 40 {
		t.Errorf("shared counter allowed %d, want its limit 40", got)
	}
	// Every worker key is new; "everyone-knows-me" carries no budget.
	if got := novAdmitted.Load(); got != 100 {
		t.Errorf("novelty admitted %d new keys, want the budget 100", got)
	}
	if lim.Len() > 500 || ctr.Len() > 500 || dist.Len() > 64 || bans.Len() > 300 || store.Len() > 300 {
		t.Errorf("over a cap: limiter %d, counter %d, distinct %d, bans %d, store %d", lim.Len(), ctr.Len(), dist.Len(), bans.Len(), store.Len())
	}
	checkStore(t, store)
	checkStore(t, lim.store)
}
