package ratelimit

import (
	"encoding/binary"
	"fmt"
	"math"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

// refBucket is the reference a bucket must match: a golang.org/x/time/rate
// Limiter, with an oversized request charged the way only x/time/rate can do
// it (raise the burst, reserve, restore the burst).
type refBucket struct {
	lim   *rate.Limiter
	burst int
}

func newRefBucket(limit float64, burst int) *refBucket {
	return &refBucket{lim: rate.NewLimiter(rate.Limit(limit), burst), burst: burst}
}

func (r *refBucket) allowN(now time.Time, n int) bool { return r.lim.AllowN(now, n) }

func (r *refBucket) charge(now time.Time, n int) {
	r.lim.SetBurstAt(now, max(n, r.burst))
	r.lim.ReserveN(now, n)
	r.lim.SetBurstAt(now, r.burst)
}

// bucketOpSeeds drive checkBucket: a header of limit (tokens/s, as 2 bytes
// scaled by the third) and burst, then (op, n, time step) triples. Times step
// back as well as forward, by nanoseconds as well as seconds, so the rounding
// edges of rate.Limiter's arithmetic are visited.
var bucketOpSeeds = [][]byte{
	{100, 0, 0, 100, 0, 1, 10, 0, 1, 0, 0, 1, 100, 10, 0, 1, 3},
	{1, 0, 1, 10, 0, 10, 0, 0, 10, 0, 1, 5, 7, 2, 5, 9, 0, 1, 200},
	{7, 0, 3, 3, 0, 3, 0, 2, 200, 128, 1, 1, 0, 1, 255, 0, 3, 1, 0, 3, 64},
	{255, 255, 9, 255, 0, 250, 0, 1, 255, 250, 2, 7, 255, 1, 0, 9, 3},
	{3, 0, 0, 1, 1, 200, 0, 0, 2, 255, 1, 1, 0, 0, 1, 0, 1, 1, 1, 0, 3, 0, 0, 2},
	// A deficit that refills in under a nanosecond is allowed (found by the
	// fuzzer when the truncation was left out).
	{48, 1, 34, 0, 49, 5, 48, 48, 0, 1, 48},
}

// checkBucket runs the same operations on a bucket and on rate.Limiter and
// fails on the first decision or token level (compared bit for bit) that
// differs.
func checkBucket(t testing.TB, ops []byte) {
	if len(ops) < 5 {
		return
	}
	limit := float64(binary.LittleEndian.Uint16(ops)|1) * math.Pow10(int(ops[2]%12)-3)
	burst := int(ops[3]) + 1
	ops = ops[4:]

	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC) // no monotonic reading
	var b bucket
	b.fill(now.UnixNano(), burst)
	ref := newRefBucket(limit, burst)
	for i := 0; i+2 < len(ops); i += 3 {
		op, n, step := ops[i], int(ops[i+1]), ops[i+2]
		d := time.Duration(step&0x3f) * []time.Duration{time.Nanosecond, time.Millisecond, time.Second, time.Hour}[op>>6]
		if step&0x40 != 0 {
			d = -d
		}
		now = now.Add(d)
		ns := now.UnixNano()
		var got, want bool
		switch op % 3 {
		case 0:
			got, want = b.allowN(ns, n, limit, burst), ref.allowN(now, n)
		case 1:
			b.charge(ns, n, limit, burst)
			ref.charge(now, n)
		case 2:
			// TokensAt only: compared below.
		}
		if got != want {
			t.Fatalf("op %d (kind %d, n %d, at %v): bucket %v, rate.Limiter %v", i/3, op%3, n, now, got, want)
		}
		if g, w := b.advance(ns, limit, burst), ref.lim.TokensAt(now); math.Float64bits(g) != math.Float64bits(w) {
			t.Fatalf("op %d (kind %d, n %d, at %v): bucket holds %v, rate.Limiter %v", i/3, op%3, n, now, g, w)
		}
	}
}

func TestBucketMatchesRate(t *testing.T) {
	for i, ops := range bucketOpSeeds {
		t.Run(fmt.Sprint(i), func(t *testing.T) { checkBucket(t, ops) })
	}
}

func FuzzBucketMatchesRate(f *testing.F) {
	for _, ops := range bucketOpSeeds {
		f.Add(ops)
	}
	f.Fuzz(func(t *testing.T, ops []byte) {
		if len(ops) > 3000 {
			ops = ops[:3000]
		}
		checkBucket(t, ops)
	})
}
