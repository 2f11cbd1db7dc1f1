package ratelimit

import (
	"math"
	"time"
)

// bucket is one key's token bucket: the state and arithmetic of
// golang.org/x/time/rate.Limiter (a float64 token count that refills at limit
// tokens per second up to burst, and the time it last changed), without its
// mutex and its time.Time arithmetic. A Limiter already holds a shard lock for
// the key lookup, so a second lock per decision is pure cost, and
// rate.Limiter's time.Time operations (Before, Sub, Add) are most of its own
// cost: on the CI machine a bare rate.Limiter.AllowN takes about 85 ns, which
// leaves nothing for the lookup within the allow path's 100 ns budget
// (BENCHMARKS.md). Each method below is the rate.Limiter method it is named
// after, step for step, on Unix nanoseconds instead of time.Time, so decisions
// and token levels are the same to the bit; FuzzBucketMatchesRate checks that
// against rate.Limiter itself.
//
// Times are wall-clock Unix nanoseconds (time.Time.UnixNano), as in the rest
// of the package, rather than the monotonic reading rate.Limiter can use: a
// step of the system clock forwards refills buckets once, a step backwards
// refills nothing. The bucket is 16 bytes against rate.Limiter's 80.
type bucket struct {
	tokens float64
	last   int64 // Unix nanoseconds of the last change
}

// fill sets b full at now, as rate.NewLimiter would be.
func (b *bucket) fill(now int64, burst int) {
	b.tokens, b.last = float64(burst), now
}

// advance is rate.Limiter.advance: the tokens at now, leaving b unchanged.
func (b *bucket) advance(now int64, limit float64, burst int) float64 {
	last := b.last
	if now < last {
		last = now
	}
	elapsed := now - last
	if elapsed < 0 { // overflow: times over 292 years apart
		elapsed = math.MaxInt64
	}
	// rate.Limit.tokensFromDuration; limit > 0 is checked by NewLimiter.
	tokens := b.tokens + time.Duration(elapsed).Seconds()*limit
	if fb := float64(burst); tokens > fb {
		tokens = fb
	}
	return tokens
}

// allowN is rate.Limiter.AllowN: reserveN with no wait allowed.
func (b *bucket) allowN(now int64, n int, limit float64, burst int) bool {
	tokens := b.advance(now, limit, burst) - float64(n)
	// rate.Limit.durationFromTokens(-tokens) <= 0: a deficit that refills in
	// under a nanosecond counts as none, because the wait is truncated.
	if n > burst || tokens < 0 && -tokens/limit*float64(time.Second) >= 1 {
		return false
	}
	b.tokens, b.last = tokens, now
	return true
}

// charge takes n tokens whatever the level, possibly into debt: what
// rate.Limiter.ReserveN does when the burst has been raised to at least n.
func (b *bucket) charge(now int64, n int, limit float64, burst int) {
	b.tokens, b.last = b.advance(now, limit, burst)-float64(n), now
}
