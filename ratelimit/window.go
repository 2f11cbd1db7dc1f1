package ratelimit

import (
	"math"
	"time"
)

// window is a two-bucket sliding-window count: the events counted in the
// current fixed window (index w) and in the one before. The sliding count at
// a moment that is a fraction f into window w is cur + prev*(1-f): the
// previous window's events are assumed evenly spread and slide out linearly.
// This is the approximation Cloudflare and nginx use; it is exact when
// traffic is steady and off by at most prev*f's share otherwise.
type window struct {
	w         int64 // index of the current window (time / window length)
	cur, prev uint32
}

// roll moves the window forward to index w. Time going backwards (a clock
// step) is treated as still being in the current window.
func (c *window) roll(w int64) {
	switch {
	case w <= c.w:
	case w == c.w+1:
		c.prev, c.cur, c.w = c.cur, 0, w
	default:
		c.prev, c.cur, c.w = 0, 0, w
	}
}

func (c *window) add(n uint32) {
	if c.cur > math.MaxUint32-n {
		c.cur = math.MaxUint32
		return
	}
	c.cur += n
}

func (c window) count(frac float64) float64 { return float64(c.cur) + float64(c.prev)*(1-frac) }

func (c window) isZero() bool { return c.cur == 0 && c.prev == 0 }

// join is the least window that bounds both c and o at every later time.
func (c window) join(o window) window {
	if c.w < o.w {
		c.roll(o.w)
	} else {
		o.roll(c.w)
	}
	return window{w: c.w, cur: max(c.cur, o.cur), prev: max(c.prev, o.prev)}
}

// meet is the largest window bounded by both (both rolled to the same index).
func (c window) meet(o window) window {
	return window{w: c.w, cur: min(c.cur, o.cur), prev: min(c.prev, o.prev)}
}

// windowAt returns the index of the fixed window holding now and how far into
// it now is (0 <= frac < 1). Windows are aligned to the Unix epoch, so every
// table and every node agrees on where they start.
func windowAt(now time.Time, length time.Duration) (int64, float64) {
	ns, l := now.UnixNano(), int64(length)
	w := ns / l
	if ns%l < 0 {
		w--
	}
	return w, float64(ns-w*l) / float64(l)
}
