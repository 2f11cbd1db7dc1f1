package ratelimit

import (
	"errors"
	"fmt"
	"os"
	"testing"
	"time"
)

func mustLimiter(t testing.TB, o LimiterOptions) *Limiter {
	t.Helper()
	l, err := NewLimiter(o)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

type limStep struct {
	at   time.Duration
	key  string
	n    int
	want bool
	rep  int // repeat the step this many times (0 means once)
}

func TestLimiterSteps(t *testing.T) {
	ten := Rate{10, time.Second} // one token per 100ms, burst 10
	tests := []struct {
		name  string
		opts  LimiterOptions
		steps []limStep
	}{
		{"burst then refill", LimiterOptions{Rate: ten}, []limStep{
			{at: 0, key: "a", n: 1, want: true, rep: 10},
			{at: 0, key: "a", n: 1, want: false},
			{at: 100 * time.Millisecond, key: "a", n: 1, want: true},
			{at: 100 * time.Millisecond, key: "a", n: 1, want: false},
			{at: 2 * time.Second, key: "a", n: 10, want: true}, // refilled to the burst, not beyond
			{at: 2 * time.Second, key: "a", n: 1, want: false},
		}},
		{"keys are independent", LimiterOptions{Rate: ten}, []limStep{
			{at: 0, key: "a", n: 10, want: true},
			{at: 0, key: "b", n: 10, want: true},
			{at: 0, key: "a", n: 1, want: false},
		}},
		{"zero and negative n", LimiterOptions{Rate: ten}, []limStep{
			{at: 0, key: "a", n: 10, want: true},
			{at: 0, key: "a", n: 0, want: true},
			{at: 0, key: "a", n: -5, want: false},
			{at: 0, key: "a", n: 1, want: false}, // -5 added no tokens
		}},
		{"explicit burst", LimiterOptions{Rate: ten, Burst: 3}, []limStep{
			{at: 0, key: "a", n: 3, want: true},
			{at: 0, key: "a", n: 1, want: false},
		}},
		{"oversize message goes into debt", LimiterOptions{Rate: ten}, []limStep{
			{at: 0, key: "a", n: 25, want: true},                       // full bucket: allowed, 15 tokens owed
			{at: time.Second, key: "a", n: 1, want: false},             // -15 + 10 = -5
			{at: 1600 * time.Millisecond, key: "a", n: 1, want: true},  // -15 + 16 = 1
			{at: 1600 * time.Millisecond, key: "a", n: 1, want: false}, // 0 left
		}},
		{"oversize message needs a full bucket", LimiterOptions{Rate: ten}, []limStep{
			{at: 0, key: "a", n: 1, want: true},
			{at: 0, key: "a", n: 11, want: false},
			{at: 100 * time.Millisecond, key: "a", n: 11, want: true},
		}},
		{"evicted full bucket comes back full", LimiterOptions{Rate: ten, MaxKeys: 1}, []limStep{
			{at: 0, key: "a", n: 10, want: true},
			{at: time.Second, key: "b", n: 1, want: true}, // evicts a, refilled by now
			{at: time.Second, key: "a", n: 10, want: true},
		}},
		{"evicted drained bucket keeps its debt", LimiterOptions{Rate: ten, MaxKeys: 1}, []limStep{
			{at: 0, key: "a", n: 10, want: true},
			{at: 0, key: "b", n: 1, want: true}, // evicts a while empty
			{at: 0, key: "a", n: 1, want: false},
			{at: 500 * time.Millisecond, key: "a", n: 5, want: true},
			{at: 500 * time.Millisecond, key: "a", n: 1, want: false},
		}},
		{"eviction keeps oversize debt", LimiterOptions{Rate: ten, MaxKeys: 1}, []limStep{
			{at: 0, key: "a", n: 40, want: true}, // 30 tokens owed: 4s until full
			{at: 0, key: "b", n: 1, want: true},  // evicts a
			{at: 3 * time.Second, key: "a", n: 1, want: false},
			{at: 4 * time.Second, key: "a", n: 10, want: true},
			{at: 4 * time.Second, key: "a", n: 1, want: false},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := mustLimiter(t, tc.opts)
			for i, s := range tc.steps {
				for r := range max(1, s.rep) {
					if got := l.AllowN(at(s.at), s.key, s.n); got != s.want {
						t.Fatalf("step %d (rep %d): AllowN(+%v, %q, %d) = %v, want %v", i, r, s.at, s.key, s.n, got, s.want)
					}
				}
			}
		})
	}
}

func TestLimiterForgetKeepsDebt(t *testing.T) {
	l := mustLimiter(t, LimiterOptions{Rate: Rate{10, time.Second}})
	if !l.AllowN(t0, "c", 10) {
		t.Fatal("burst refused")
	}
	l.Forget(t0, "c") // e.g. the client disconnects...
	if l.Len() != 0 {
		t.Fatalf("Len = %d after Forget", l.Len())
	}
	if got := l.TokensAt(t0, "c"); got != 0 {
		t.Fatalf("TokensAt after Forget = %v, want 0", got)
	}
	if l.Allow(t0, "c") { // ...and reconnects at once: still empty
		t.Fatal("reconnect refilled the bucket")
	}
	if got := l.TokensAt(at(300*time.Millisecond), "c"); got < 2.99 || got > 3.01 {
		t.Fatalf("TokensAt(+300ms) = %v, want 3", got)
	}
}

// TestLimiterBytes uses the realistic alarm payload: a 512 KiB/s byte limit
// passes a full burst of floor(512 KiB / size) alarms at once, then one
// alarm's worth per size/512KiB seconds.
func TestLimiterBytes(t *testing.T) {
	payload, err := os.ReadFile("testdata/komdi-alarm.json")
	if err != nil {
		t.Fatal(err)
	}
	size := len(payload)
	l := mustLimiter(t, LimiterOptions{Rate: Rate{512 << 10, time.Second}})
	if l.Burst() != 512<<10 {
		t.Fatalf("Burst = %d, want 524288", l.Burst())
	}
	want := (512 << 10) / size
	got := 0
	for l.AllowN(t0, "truck-1", size) {
		got++
	}
	if got != want {
		t.Fatalf("%d alarms of %d bytes in the burst, want %d", got, size, want)
	}
	oneAlarm := time.Duration(float64(size) / float64(512<<10) * float64(time.Second))
	if !l.AllowN(t0.Add(oneAlarm+time.Microsecond), "truck-1", size) {
		t.Fatal("no alarm after one alarm's refill time")
	}
}

// TestLimiterWellBehavedUnderChurnNoRace: 200,000 one-shot attacker keys churn
// through a 100,000-key limiter over ten seconds while one client publishes
// bursts of 50 within its 100/s rate, either every second (it stays held) or
// only at the start and the end (it is evicted in between). It is never
// refused either way. Under -race both numbers are divided by ten.
func TestLimiterWellBehavedUnderChurnNoRace(t *testing.T) {
	tests := []struct {
		name        string
		every       time.Duration
		wantEvicted bool
	}{
		{"publishes every second", time.Second, false},
		{"publishes every ten seconds", 10 * time.Second, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			scale := 1
			if raceEnabled {
				scale = 10
			}
			l := mustLimiter(t, LimiterOptions{MaxKeys: 100_000 / scale}) // 100/s, burst 100
			attackers := 200_000 / scale
			span := 10 * time.Second
			step := span / time.Duration(attackers)
			next, evicted := time.Duration(0), false
			for i := range attackers + 1 {
				now := time.Duration(i) * step
				if now >= next {
					for range 50 {
						if !l.Allow(at(now), "good-sensor") {
							t.Fatalf("+%v: well-behaved client refused", now)
						}
					}
					next += tc.every
				}
				if i < attackers {
					l.Allow(at(now+step/2), fmt.Sprint("attacker-", i))
				}
				if i%1000 == 0 && !l.held("good-sensor") {
					evicted = true
				}
			}
			if evicted != tc.wantEvicted {
				t.Fatalf("evicted = %v, want %v", evicted, tc.wantEvicted)
			}
			if l.Len() > 100_000/scale {
				t.Fatalf("Len %d over MaxKeys", l.Len())
			}
		})
	}
}

// TestLimiterChurnCannotReset: an attacker drains its bucket, then pushes
// enough other keys through to evict itself. It comes back empty.
func TestLimiterChurnCannotReset(t *testing.T) {
	l := mustLimiter(t, LimiterOptions{Rate: Rate{10, time.Minute}, MaxKeys: 1000, Shards: 4})
	if !l.AllowN(t0, "me", 10) {
		t.Fatal("burst refused")
	}
	for i := range 5000 {
		l.Allow(t0, fmt.Sprint("sock-", i))
	}
	if l.held("me") {
		t.Fatal("not evicted; the test proves nothing")
	}
	if l.Allow(t0, "me") {
		t.Fatal("eviction refilled the bucket")
	}
	if !l.Allow(at(6*time.Second), "me") { // 10/min: one token per 6s
		t.Fatal("token due after 6s refused")
	}
}

// held reports whether key has a bucket in the store (test helper).
func (l *Limiter) held(key string) bool {
	key = storedKey(key)
	_, sh, h := l.store.locate(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	_, ok := sh.find(key, h)
	return ok
}

func TestLimiterOptionErrors(t *testing.T) {
	tests := []struct {
		o    LimiterOptions
		want string
	}{
		{LimiterOptions{Burst: -1}, "ratelimit: LimiterOptions.Burst: must be between 1 and 1099511627776, got -1"},
		{LimiterOptions{Rate: Rate{N: 5}}, "ratelimit: LimiterOptions.Rate: must be between 1 and 2^50 per 1ns..366d, got 5 per 0s"},
		{LimiterOptions{Rate: Rate{N: -1, Per: time.Second}}, "ratelimit: LimiterOptions.Rate: must be between 1 and 2^50 per 1ns..366d, got -1 per 1s"},
		{LimiterOptions{MaxKeys: -3}, "ratelimit: LimiterOptions.MaxKeys: must be between 1 and 16777216, got -3"},
		{LimiterOptions{Shards: 6}, "ratelimit: LimiterOptions.Shards: must be a power of two between 1 and 1024, got 6"},
		{LimiterOptions{DebtMemory: -1}, "ratelimit: LimiterOptions.DebtMemory: must be between 1 and 16777216 slots, got -1"},
	}
	for _, tc := range tests {
		_, err := NewLimiter(tc.o)
		var oe *OptionError
		if !errors.As(err, &oe) || err.Error() != tc.want {
			t.Errorf("NewLimiter(%+v) = %v\nwant %s", tc.o, err, tc.want)
		}
	}
	l := mustLimiter(t, LimiterOptions{})
	if l.Limit() != 100 || l.Burst() != 100 {
		t.Fatalf("defaults: %v/s burst %d, want 100/s burst 100", l.Limit(), l.Burst())
	}
}

// limiterOpSeeds is the one seed list for the limiter conformance property:
// the table test replays them, the fuzz target starts from them. Each byte
// triple is (key, n, time step).
var limiterOpSeeds = [][]byte{
	{0, 10, 0, 0, 1, 0, 1, 10, 0, 2, 10, 0, 0, 1, 0},
	{0, 30, 0, 1, 1, 0, 2, 1, 0, 3, 1, 0, 0, 1, 5, 0, 1, 5},
	{0, 5, 1, 0, 5, 1, 0, 5, 1, 0, 5, 1, 0, 200, 200},
	{1, 1, 0, 2, 1, 0, 3, 1, 0, 4, 1, 0, 5, 1, 0, 0, 10, 0, 0, 10, 0},
}

// checkConformance drives a tiny limiter (2 keys of room, 10 tokens/s, burst
// 10) with a sequence in which key 0 is watched and keys 1..7 churn; a key
// byte with the high bit set forgets the key instead. Whatever happens, the
// tokens granted to key 0 plus those it holds (negative while in debt) never
// exceed burst + rate*elapsed: eviction, forgetting and oversize requests
// cannot beat the bucket.
func checkConformance(t testing.TB, ops []byte) {
	l := mustLimiter(t, LimiterOptions{Rate: Rate{10, time.Second}, MaxKeys: 2, Shards: 1, DebtMemory: 64})
	now, granted := t0, 0
	for i := 0; i+2 < len(ops); i += 3 {
		key, n := fmt.Sprint(ops[i]%8), int(ops[i+1]%40)
		now = now.Add(time.Duration(ops[i+2]%64) * 10 * time.Millisecond)
		if ops[i]&0x80 != 0 {
			l.Forget(now, key)
		} else if l.AllowN(now, key, n) && key == "0" {
			granted += n
		}
		bound := 10 + 10*now.Sub(t0).Seconds()
		if held := l.TokensAt(now, "0"); float64(granted)+held > bound+1e-6 {
			t.Fatalf("op %d: key 0 granted %d and holds %.2f by +%v; bound %.2f", i/3, granted, held, now.Sub(t0), bound)
		}
		if l.Len() > 2 {
			t.Fatalf("Len %d over MaxKeys 2", l.Len())
		}
	}
}

func TestLimiterConformance(t *testing.T) {
	for i, ops := range limiterOpSeeds {
		t.Run(fmt.Sprint(i), func(t *testing.T) { checkConformance(t, ops) })
	}
}

func FuzzLimiterConformance(f *testing.F) {
	for _, ops := range limiterOpSeeds {
		f.Add(ops)
	}
	f.Fuzz(func(t *testing.T, ops []byte) {
		if len(ops) > 3000 {
			ops = ops[:3000]
		}
		checkConformance(t, ops)
	})
}

// TestLimiterSaturatedMemory: when a flood of drained keys fills the debt
// memory, an innocent new key may inherit a debt, but never more than one
// bucket (attackers' debts), and it refills at the normal rate.
func TestLimiterSaturatedMemory(t *testing.T) {
	l := mustLimiter(t, LimiterOptions{Rate: Rate{10, time.Second}, MaxKeys: 64, Shards: 1, DebtMemory: 16})
	for i := range 10_000 {
		l.AllowN(t0, fmt.Sprint("drain-", i), 10)
	}
	for i := range 100 {
		k := fmt.Sprint("innocent-", i)
		if got := l.TokensAt(t0, k); got < 0 || got > 10 {
			t.Fatalf("%s would start with %v tokens", k, got)
		}
		if got := l.TokensAt(at(time.Second), k); got != 10 {
			t.Fatalf("%s would not be full a bucket's refill time later: %v", k, got)
		}
	}
}
