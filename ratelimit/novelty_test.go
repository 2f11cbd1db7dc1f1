package ratelimit

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

func mustNovelty(t testing.TB, o NoveltyOptions) *Novelty {
	t.Helper()
	n, err := NewNovelty(o)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestNoveltyBudgets(t *testing.T) {
	type step struct {
		key  string
		ip   string
		want bool
	}
	tests := []struct {
		name       string
		perIP, all int
		steps      []step
		counts     map[string]float64
	}{
		{"per-IP budget", 3, 1000, []step{
			{"c1", "ip:1", true}, {"c2", "ip:1", true}, {"c3", "ip:1", true},
			{"c4", "ip:1", false}, // budget spent
			{"c1", "ip:1", true},  // known keys always pass
			{"c4", "ip:1", false}, // a refused key is not remembered
			{"c4", "ip:2", true},  // other group
		}, map[string]float64{"ip:1": 3, "ip:2": 1, "": 4}},
		{"global budget", 2, 3, []step{
			{"a", "ip:1", true}, {"b", "ip:1", true}, {"c", "ip:1", false},
			{"d", "ip:2", true}, {"e", "ip:3", false}, // global spent
			{"a", "ip:9", true}, // known, whatever group it comes from now
		}, map[string]float64{"ip:1": 2, "ip:2": 1, "ip:3": 0, "": 3}},
		{"zero limit admits nothing new", 0, 10, []step{
			{"a", "ip:1", false},
		}, map[string]float64{"ip:1": 0, "": 0}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := mustNovelty(t, NoveltyOptions{})
			for i, s := range tc.steps {
				if got := n.Allow(t0, s.key, Budget{s.ip, tc.perIP}, Budget{"", tc.all}); got != s.want {
					t.Fatalf("step %d: Allow(%q from %s) = %v, want %v", i, s.key, s.ip, got, s.want)
				}
			}
			for g, want := range tc.counts {
				if got := n.Count(t0, g); got != want {
					t.Errorf("Count(%q) = %v, want %v", g, got, want)
				}
			}
		})
	}
}

func TestNoveltyWindows(t *testing.T) {
	n := mustNovelty(t, NoveltyOptions{}) // one-minute windows
	b := Budget{"g", 3}
	steps := []struct {
		at   time.Duration
		key  string
		want bool
		seen bool // Seen(key) after the step
	}{
		{0, "k", true, true},                   // group window 0: 1
		{90 * time.Second, "k", true, true},    // in the previous window: refreshed, not counted
		{150 * time.Second, "x", true, true},   // window 2: window 0 is gone, count 1
		{170 * time.Second, "y", true, true},   // 2
		{179 * time.Second, "z", true, true},   // 3 <= 3
		{179 * time.Second, "w", false, false}, // 4 > 3
		{180 * time.Second, "w", false, false}, // window 3: prev 3, none of it gone
		{200 * time.Second, "w", true, true},   // 3 * 2/3 + 1 = 3
		{300 * time.Second, "k", true, true},   // k last refreshed in window 1, now window 5: new again
	}
	for i, s := range steps {
		if got := n.Allow(at(s.at), s.key, b); got != s.want {
			t.Fatalf("step %d: Allow(+%v, %q) = %v, want %v", i, s.at, s.key, got, s.want)
		}
		if got := n.Seen(at(s.at), s.key); got != s.seen {
			t.Fatalf("step %d: Seen = %v, want %v", i, got, s.seen)
		}
	}
}

// TestNoveltyFalsePositives fills the seen set to ExpectedKeys and measures
// how often a fresh key is mistaken for a known one.
func TestNoveltyFalsePositives(t *testing.T) {
	const expected, trials = 20_000, 100_000
	n := mustNovelty(t, NoveltyOptions{ExpectedKeys: expected, FalsePositiveRate: 0.01})
	for i := range expected {
		if !n.Allow(t0, fmt.Sprint("known-", i)) {
			t.Fatal("unbudgeted key refused")
		}
	}
	for i := range expected {
		if !n.Seen(t0, fmt.Sprint("known-", i)) {
			t.Fatalf("false negative for known-%d", i)
		}
	}
	fp := 0
	for i := range trials {
		if n.Seen(t0, fmt.Sprint("fresh-", i)) {
			fp++
		}
	}
	// The current filter is full and the previous one empty, so the rate is
	// about half the configured 1%; allow up to the full 1% plus noise.
	if rate := float64(fp) / trials; rate > 0.012 {
		t.Fatalf("false-positive rate %.4f over 1%%", rate)
	}
}

// TestNoveltySaturationFailsClosed: past ExpectedKeys per window the seen set
// stops remembering, so further new keys count against budgets every time
// instead of raising the false-positive rate.
func TestNoveltySaturationFailsClosed(t *testing.T) {
	n := mustNovelty(t, NoveltyOptions{ExpectedKeys: 100, Shards: 1})
	sh := &n.seen.shards[0]
	for i := 0; sh.n < n.seen.cap; i++ {
		n.Allow(t0, fmt.Sprint("k", i))
	}
	// A key the full filter does not already (falsely) hold.
	late := ""
	for i := 0; late == ""; i++ {
		if k := fmt.Sprint("late-", i); !n.Seen(t0, k) {
			late = k
		}
	}
	if !n.Allow(t0, late, Budget{"g", 2}) {
		t.Fatal("first sighting refused")
	}
	if n.Seen(t0, late) {
		t.Fatal("saturated set remembered a new key")
	}
	if !n.Allow(t0, late, Budget{"g", 2}) || n.Allow(t0, late, Budget{"g", 2}) {
		t.Fatal("want the unremembered key to spend the budget on each sighting")
	}
	// The next window has room again.
	if !n.Allow(at(time.Minute), late, Budget{"g", 5}) || !n.Seen(at(time.Minute), late) {
		t.Fatal("new window did not remember the key")
	}
}

func TestNoveltyOptionErrors(t *testing.T) {
	tests := []struct {
		o     NoveltyOptions
		field string
	}{
		{NoveltyOptions{ExpectedKeys: -1}, "NoveltyOptions.ExpectedKeys"},
		{NoveltyOptions{FalsePositiveRate: 0.9}, "NoveltyOptions.FalsePositiveRate"},
		{NoveltyOptions{FalsePositiveRate: -0.1}, "NoveltyOptions.FalsePositiveRate"},
		{NoveltyOptions{MaxGroups: -1}, "NoveltyOptions.MaxGroups"},
		{NoveltyOptions{Window: time.Nanosecond}, "NoveltyOptions.Window"},
		{NoveltyOptions{Shards: 5}, "NoveltyOptions.Shards"},
	}
	for _, tc := range tests {
		_, err := NewNovelty(tc.o)
		var oe *OptionError
		if !errors.As(err, &oe) || oe.Field != tc.field {
			t.Errorf("NewNovelty(%+v) = %v, want error on %s", tc.o, err, tc.field)
		}
	}
}
