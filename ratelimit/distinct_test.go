package ratelimit

import (
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"testing"
	"time"

	"github.com/axiomhq/hyperloglog"
)

// TestHLLAccuracyNoRace compares the sketch with the exact count, and with
// github.com/axiomhq/hyperloglog as a reference, from 0 to 1,000,000 items.
// The bound is five standard errors (1.04/sqrt(2^p)) and, for tiny counts
// where linear counting is almost exact, one item.
func TestHLLAccuracyNoRace(t *testing.T) {
	seed := maphash.MakeSeed()
	counts := []int{0, 1, 2, 10, 100, 1000, 5000, 20_000, 100_000, 1_000_000}
	if testing.Short() || raceEnabled {
		counts = counts[:len(counts)-1]
	}
	for _, p := range []uint8{10, 12, 14} {
		var g hllPair
		g.reset(p, 0)
		ref, err := hyperloglog.NewSketch(p, true)
		if err != nil {
			t.Fatal(err)
		}
		tol := 5 * 1.04 / math.Sqrt(float64(uint64(1)<<p))
		inserted := 0
		for _, n := range counts {
			for ; inserted < n; inserted++ {
				item := fmt.Sprint("fleet/truck-", inserted, "/telemetry")
				g.insert(p, maphash.String(seed, item))
				ref.Insert([]byte(item))
			}
			got, want := g.estimate(p, 0), float64(n)
			if math.Abs(got-want) > max(1, tol*want) {
				t.Errorf("p=%d n=%d: estimate %.1f, off by %.2f%% (bound %.2f%%)", p, n, got, 100*(got-want)/max(1, want), 100*tol)
			}
			if r := float64(ref.Estimate()); math.Abs(r-want) > max(1, tol*want) {
				t.Logf("p=%d n=%d: reference sketch estimates %.0f", p, n, r)
			}
		}
	}
}

// TestHLLSlidingWindow: items seen in both windows count once; items only
// in the previous window slide out linearly.
func TestHLLSlidingWindow(t *testing.T) {
	const p, n = 14, 1000
	seed := maphash.MakeSeed()
	var g hllPair
	g.reset(p, 0)
	add := func(prefix string) {
		for i := range n {
			g.insert(p, maphash.String(seed, fmt.Sprint(prefix, i)))
		}
	}
	add("a")
	g.roll(p, 1)
	tol := 0.05 * n
	checks := []struct {
		name string
		frac float64
		act  func()
		want float64
	}{
		{"start of next window", 0, nil, n},
		{"half way", 0.5, nil, n / 2},
		{"same items again", 0.5, func() { add("a") }, n},
		{"new items", 0.5, func() { add("b") }, 2 * n},
	}
	for _, c := range checks {
		if c.act != nil {
			c.act()
		}
		if got := g.estimate(p, c.frac); math.Abs(got-c.want) > tol {
			t.Errorf("%s: estimate %.1f, want %.0f", c.name, got, c.want)
		}
	}
	g.roll(p, 3)
	if got := g.estimate(p, 0); got != 0 {
		t.Errorf("two windows later: %v, want 0", got)
	}
}

func TestDistinctAllowIsABreaker(t *testing.T) {
	d, err := NewDistinct(DistinctOptions{Limit: 100, Precision: 14})
	if err != nil {
		t.Fatal(err)
	}
	allowed := 0
	for i := range 150 {
		if d.Allow(t0, "user:mallory", fmt.Sprint("spam/", i)) {
			allowed++
		}
	}
	if allowed < 95 || allowed > 105 {
		t.Fatalf("allowed %d distinct topics, want about 100", allowed)
	}
	if d.Allow(t0, "user:mallory", "spam/0") {
		t.Fatal("over quota, a known topic still passed")
	}
	if !d.Allow(t0, "user:alice", "fleet/alice/telemetry") {
		t.Fatal("another group was refused")
	}
	// Two windows (hours) later the quota is free again.
	if !d.Allow(at(2*time.Hour), "user:mallory", "spam/0") {
		t.Fatal("quota did not recover")
	}
	if got := d.Estimate(at(2*time.Hour), "user:mallory"); got != 1 {
		t.Fatalf("Estimate = %d, want 1", got)
	}
}

func TestDistinctEvictionKeepsEstimate(t *testing.T) {
	d, err := NewDistinct(DistinctOptions{MaxGroups: 1, Precision: 14})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 500 {
		d.Add(t0, "tenant-a", fmt.Sprint("t/", i))
	}
	d.Add(t0, "tenant-b", "x") // evicts tenant-a
	if d.Len() != 1 {
		t.Fatalf("Len = %d", d.Len())
	}
	got := d.Estimate(t0, "tenant-a")
	if got < 490 || got > 510 {
		t.Fatalf("evicted group recalled as %d, want about 500", got)
	}
	if again := d.Add(t0, "tenant-a", "new-topic"); again < got {
		t.Fatalf("returning group restarted at %d", again)
	}
}

func TestDistinctOptionErrors(t *testing.T) {
	tests := []struct {
		o     DistinctOptions
		field string
	}{
		{DistinctOptions{Precision: 3}, "DistinctOptions.Precision"},
		{DistinctOptions{Precision: 17}, "DistinctOptions.Precision"},
		{DistinctOptions{Limit: -1}, "DistinctOptions.Limit"},
		{DistinctOptions{Window: time.Microsecond}, "DistinctOptions.Window"},
		{DistinctOptions{MaxGroups: -1}, "DistinctOptions.MaxGroups"},
		{DistinctOptions{GroupMemory: -1}, "DistinctOptions.GroupMemory"},
		{DistinctOptions{MaxGroups: 100_000, Precision: 14}, "DistinctOptions.MaxGroups"},
	}
	for _, tc := range tests {
		_, err := NewDistinct(tc.o)
		var oe *OptionError
		if !errors.As(err, &oe) || oe.Field != tc.field {
			t.Errorf("NewDistinct(%+v) = %v, want error on %s", tc.o, err, tc.field)
		}
	}
}
