package ratelimit

import (
	"errors"
	"testing"
	"time"
)

func mustCounter(t testing.TB, o CounterOptions) *Counter {
	t.Helper()
	c, err := NewCounter(o)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestCounterSliding checks the two-bucket arithmetic on a one-minute window
// (t0 is on a minute boundary). want is the sliding count after the step,
// computed by hand: cur + prev * (1 - fraction of the current window gone).
func TestCounterSliding(t *testing.T) {
	c := mustCounter(t, CounterOptions{})
	steps := []struct {
		at   time.Duration
		n    int
		want float64
	}{
		{0, 10, 10},
		{30 * time.Second, 0, 10},
		{59 * time.Second, 2, 12},
		{60 * time.Second, 0, 12},         // new window: prev 12, 0% gone
		{75 * time.Second, 0, 9},          // 12 * 0.75
		{90 * time.Second, 3, 3 + 6},      // cur 3 + 12 * 0.5
		{120 * time.Second, 0, 3},         // prev 3
		{150 * time.Second, -4, 1.5},      // negative n counts nothing
		{240 * time.Second, 1, 1},         // two windows later: all gone
		{200 * time.Second, 1, 2},         // clock stepped back: same window
		{300 * time.Second, 0, 2},         // prev 2, 0% gone
		{1000 * 24 * time.Hour, 0, 0},     // far future
		{1000*24*time.Hour + 1, 1e6, 1e6}, // large n
	}
	for i, s := range steps {
		if got := c.AddN(at(s.at), "k", s.n); got != s.want {
			t.Fatalf("step %d: AddN(+%v, %d) = %v, want %v", i, s.at, s.n, got, s.want)
		}
	}
	if got := c.Count(at(1000*24*time.Hour+1), "absent"); got != 0 {
		t.Fatalf("Count of absent key = %v", got)
	}
}

func TestCounterAllow(t *testing.T) {
	c := mustCounter(t, CounterOptions{Limit: 3})
	for i, want := range []bool{true, true, true, false, false} {
		if got := c.AllowN(t0, "k", 1); got != want {
			t.Fatalf("AllowN #%d = %v, want %v", i, got, want)
		}
	}
	if got := c.Count(t0, "k"); got != 3 {
		t.Fatalf("refused events were counted: %v", got)
	}
	// Half a window into the next one the previous 3 count as 1.5.
	if !c.AllowN(at(90*time.Second), "k", 1) || c.AllowN(at(90*time.Second), "k", 1) {
		t.Fatal("want exactly one more event at +90s (1.5 + 1 <= 3 < 1.5 + 2)")
	}
}

func TestCounterEvictionKeepsCount(t *testing.T) {
	c := mustCounter(t, CounterOptions{MaxKeys: 1})
	c.AddN(t0, "flappy", 14)
	c.AddN(t0, "other", 1) // evicts flappy
	if c.Len() != 1 {
		t.Fatalf("Len = %d", c.Len())
	}
	if got := c.Count(t0, "flappy"); got != 14 {
		t.Fatalf("evicted count recalled as %v, want 14", got)
	}
	if got := c.AddN(at(time.Second), "flappy", 1); got != 15 {
		t.Fatalf("count after return = %v, want 15", got)
	}
	// Forget keeps the count too, and it still slides out.
	c.Forget(at(time.Second), "flappy")
	if got := c.Count(at(90*time.Second), "flappy"); got != 7.5 {
		t.Fatalf("forgotten count at +90s = %v, want 7.5", got)
	}
}

func TestCounterOptionErrors(t *testing.T) {
	tests := []struct {
		o     CounterOptions
		field string
	}{
		{CounterOptions{Window: time.Microsecond}, "CounterOptions.Window"},
		{CounterOptions{Window: 400 * 24 * time.Hour}, "CounterOptions.Window"},
		{CounterOptions{Limit: -1}, "CounterOptions.Limit"},
		{CounterOptions{MaxKeys: -1}, "CounterOptions.MaxKeys"},
		{CounterOptions{CountMemory: -1}, "CounterOptions.CountMemory"},
	}
	for _, tc := range tests {
		_, err := NewCounter(tc.o)
		var oe *OptionError
		if !errors.As(err, &oe) || oe.Field != tc.field {
			t.Errorf("NewCounter(%+v) = %v, want error on %s", tc.o, err, tc.field)
		}
	}
}
