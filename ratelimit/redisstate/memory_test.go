package redisstate

import (
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mqttwaf/mqttwaf/ratelimit/redisstate/redistest"
)

// TestNoveltyMemoryNoRace sends 1,000,000 distinct client IDs (from 1,000
// addresses) through the shared new-client-ID budget and measures Redis's
// used_memory: Redis keeps only the admitted IDs (the seen sets) and one
// count per group and window, so its memory is set by the budget
// (rates.new_client_ids.global), not by what an attacker sends. With the
// budget sized to admit them all, it is what 1,000,000 admitted IDs cost.
// CI sends 50,000 (two seconds); MQTTWAF_REDIS_IDS=1000000 gives the
// figures in BENCHMARKS.md.
func TestNoveltyMemoryNoRace(t *testing.T) {
	if raceEnabled {
		t.Skip("measures Redis's memory; runs without -race")
	}
	n := 50_000
	if s := os.Getenv("MQTTWAF_REDIS_IDS"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	for _, tc := range []struct {
		name   string
		global int
		most   int64 // bytes over the empty server's
	}{
		{"default budget 20000/min", 20_000, 8 << 20},
		{"budget admits all", n, int64(n) * 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := redistest.Start(t)
			b := openNodes(t, srv, 1)[0]
			before, _ := strconv.ParseInt(srv.Info("used_memory"), 10, 64)
			start := time.Now()
			var admitted atomic.Int64
			var next atomic.Int64
			var wg sync.WaitGroup
			for range 32 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						i := next.Add(1) - 1
						if i >= int64(n) {
							return
						}
						ok, err := b.AdmitNew(time.Now(), "new_ids", fmt.Sprintf("attacker-%08d", i), time.Minute, []Budget{
							{Group: "", Limit: tc.global},
							{Group: "i:10.0." + strconv.Itoa(int(i%1000)), Limit: max(100, tc.global)},
						})
						if err != nil {
							t.Error(err)
							return
						}
						if ok {
							admitted.Add(1)
						}
					}
				}()
			}
			wg.Wait()
			after, _ := strconv.ParseInt(srv.Info("used_memory"), 10, 64)
			keys, _ := srv.Do("DBSIZE")
			t.Logf("%d distinct client IDs in %v: %d admitted, redis used_memory %.1f MiB -> %.1f MiB (+%.1f MiB), keys %s",
				n, time.Since(start).Round(time.Millisecond), admitted.Load(), float64(before)/(1<<20), float64(after)/(1<<20), float64(after-before)/(1<<20), keys)
			// The budget is per sliding minute: a run that spans k minute
			// windows admits at most k+1 budgets.
			if most := int64(tc.global) * (int64(time.Since(start)/time.Minute) + 2); admitted.Load() > most {
				t.Errorf("%d admitted, budget %d per minute: want at most %d", admitted.Load(), tc.global, most)
			}
			if after-before > tc.most {
				t.Errorf("redis grew by %d bytes, want at most %d", after-before, tc.most)
			}
		})
	}
}
