package schema

import (
	"hash/maphash"
	"math"
	"strconv"
	"time"
	"unsafe"

	"github.com/mqttwaf/mqttwaf/ratelimit"
	"github.com/tidwall/gjson"
)

// PlausibilityOptions configures a Plausibility: which checks run over each
// device's history. A check is on when its main field is set
// (TimestampPath, MaxSpeedKmh, ReplayWindow); at least one must be, so the
// zero value is refused by NewPlausibility. Other zero values are safe
// defaults. PlausibilityOptions is plain data, read by NewPlausibility.
type PlausibilityOptions struct {
	// TimestampPath is the gjson path of the device's timestamp. When set,
	// a message must carry a readable timestamp, not older than the last
	// accepted one (minus BackwardsTolerance) and not more than MaxFuture
	// ahead of now. It also dates positions for the speed check.
	TimestampPath string `yaml:"timestamp_path" json:"timestamp_path"`
	// TimestampFormat is "rfc3339" (default), "unix" (seconds), "unix_ms"
	// (milliseconds) or a Go time layout such as "20060102150405". Unix
	// timestamps may be JSON numbers or numeric strings, with a fraction
	// but no exponent; layouts read strings, or integers as written.
	TimestampFormat string `yaml:"timestamp_format" json:"timestamp_format"`
	// TimestampZone is the time zone of layouts that carry none: "UTC"
	// (default), "Local", an offset such as "+09:00", or an IANA name.
	TimestampZone string `yaml:"timestamp_zone" json:"timestamp_zone"`
	// MaxFuture is how far ahead of now a timestamp may be (device clock
	// skew). Default 5m. It cannot be turned off: one far-future timestamp
	// accepted would make every later honest message look backwards.
	MaxFuture time.Duration `yaml:"max_future" json:"max_future"`
	// BackwardsTolerance lets a timestamp be this much older than the
	// device's newest accepted one (reordering in flight). Default 0:
	// equal timestamps pass, older ones do not.
	BackwardsTolerance time.Duration `yaml:"backwards_tolerance" json:"backwards_tolerance"`

	// LatPath and LonPath are the gjson paths of the position in decimal
	// degrees (JSON numbers). Required by MaxSpeedKmh.
	LatPath string `yaml:"lat_path" json:"lat_path"`
	LonPath string `yaml:"lon_path" json:"lon_path"`
	// MaxSpeedKmh is the highest plausible speed between two consecutive
	// positions of a device, in km/h, timed by their timestamps (or by
	// arrival, the now passed to Check, without TimestampPath). 0 = off.
	MaxSpeedKmh float64 `yaml:"max_speed_kmh" json:"max_speed_kmh"`
	// JitterMeters is a movement always accepted whatever the time between
	// two positions (GPS noise; identical timestamps). Default 25.
	JitterMeters float64 `yaml:"jitter_meters" json:"jitter_meters"`

	// ReplayWindow turns on replay detection: a payload byte-identical to
	// one of the device's last ReplayHistory accepted payloads, received
	// less than ReplayWindow ago, is refused. 0 = off.
	ReplayWindow time.Duration `yaml:"replay_window" json:"replay_window"`
	// ReplayHistory is how many payload hashes are kept per device, 1 to
	// 64. Default 8.
	ReplayHistory int `yaml:"replay_history" json:"replay_history"`

	// MaxDevices caps how many devices have a history, at most 16777216.
	// The table is split into Shards, each holding MaxDevices/Shards; a
	// full shard forgets its least recently seen device, whose next message
	// is then accepted as its first. Default 100000 (about 25 MB with
	// replay detection, 12 MB without).
	MaxDevices int `yaml:"max_devices" json:"max_devices"`
	// Shards is the number of independently locked parts of the device
	// table, a power of two up to 1024. Default 32.
	Shards int `yaml:"shards" json:"shards"`

	// ExactPaths reads TimestampPath, LatPath and LonPath as gjson does:
	// each key byte for byte, never through an array. By default (false)
	// they match keys the way back ends read them (see Options.ExactPaths):
	// case-insensitively after NFKC, and through arrays of objects. A path
	// that then finds more than one value (keys that differ only in case,
	// an array of several objects) is refused as ambiguous: there is no
	// telling which one a back end reads.
	ExactPaths bool `yaml:"exact_paths" json:"exact_paths"`
}

const (
	defaultMaxFuture     = 5 * time.Minute
	defaultJitter        = 25.0
	defaultReplayHistory = 8
	maxReplayHistory     = 64
	maxSpeed             = 1e6 // km/h; anything above is not a limit
)

// Plausibility checks each message against its device's own history:
// timestamps that go backwards or lie in the future, positions that imply
// an impossible speed, payloads replayed verbatim. It models a bounded,
// per-device memory of the last accepted message.
//
// History is updated only by messages that pass every check, so a rejected
// message (forged, replayed, garbled) never becomes the reference the next
// honest message is judged against. The first message of a device, or the
// first after it was evicted or forgotten, passes the history checks.
//
// The zero Plausibility is not usable; create one with NewPlausibility. A
// Plausibility is safe for concurrent use; messages of one device are
// judged one at a time, in the order their Check calls take the device's
// lock.
type Plausibility struct {
	fold      bool // paths match keys folded and through arrays
	msgAmbig  string
	ts        bool
	tsPath    path
	tsFmt     tsFormat
	maxFuture int64 // ns
	tolerance int64 // ns

	speed            bool
	latPath, lonPath path
	maxSpeed         float64 // m/ns
	jitter           float64 // m
	msgSpeed         string

	replay  bool
	window  int64 // ns
	slots   int   // replay records per device
	seed    maphash.Seed
	msgRepl string
	msgFut  string
	msgTS   string

	devices *ratelimit.Store[history]
}

// history is what a device's last accepted messages said.
type history struct {
	ts       int64 // newest accepted timestamp, Unix ns
	posAt    int64 // when the last position was taken, Unix ns
	lat, lon float64
	hasPos   bool
	next     uint8          // next replay slot to overwrite
	seen     []replayRecord // ring of the last accepted payloads
}

type replayRecord struct {
	hash uint64
	at   int64 // arrival, Unix ns; 0 = empty slot
}

// NewPlausibility returns a Plausibility, or an *OptionError naming the
// field at fault.
func NewPlausibility(opts PlausibilityOptions) (*Plausibility, error) {
	p := &Plausibility{seed: maphash.MakeSeed(), fold: !opts.ExactPaths,
		msgAmbig: "found more than once (keys that differ only in case, or an array of several objects), or nested too deep to tell: a back end could read another value"}
	if opts.TimestampPath != "" {
		tp, err := parsePath(opts.TimestampPath, false)
		if err != nil {
			return nil, optErr("PlausibilityOptions.TimestampPath", "%v (got %q)", err, opts.TimestampPath)
		}
		f, err := parseTSFormat(opts.TimestampFormat, opts.TimestampZone)
		if err != nil {
			return nil, err
		}
		p.ts, p.tsPath, p.tsFmt = true, tp, f
	} else if opts.TimestampFormat != "" || opts.TimestampZone != "" || opts.MaxFuture != 0 || opts.BackwardsTolerance != 0 {
		return nil, optErr("PlausibilityOptions.TimestampPath", "is empty, but other timestamp options are set; name the timestamp's path")
	}
	maxFuture := opts.MaxFuture
	if maxFuture == 0 {
		maxFuture = defaultMaxFuture
	}
	if maxFuture < 0 {
		return nil, optErr("PlausibilityOptions.MaxFuture", "must be > 0 (0 = default 5m), got %v", opts.MaxFuture)
	}
	if opts.BackwardsTolerance < 0 {
		return nil, optErr("PlausibilityOptions.BackwardsTolerance", "must be >= 0, got %v", opts.BackwardsTolerance)
	}
	p.maxFuture, p.tolerance = int64(maxFuture), int64(opts.BackwardsTolerance)

	if s := opts.MaxSpeedKmh; math.IsNaN(s) || s < 0 || s > maxSpeed {
		return nil, optErr("PlausibilityOptions.MaxSpeedKmh", "must be between 0 (off) and %g, got %v", float64(maxSpeed), s)
	}
	if opts.MaxSpeedKmh > 0 {
		if opts.LatPath == "" || opts.LonPath == "" {
			return nil, optErr("PlausibilityOptions.MaxSpeedKmh", "needs LatPath and LonPath")
		}
		var err error
		if p.latPath, err = parsePath(opts.LatPath, false); err != nil {
			return nil, optErr("PlausibilityOptions.LatPath", "%v (got %q)", err, opts.LatPath)
		}
		if p.lonPath, err = parsePath(opts.LonPath, false); err != nil {
			return nil, optErr("PlausibilityOptions.LonPath", "%v (got %q)", err, opts.LonPath)
		}
		p.speed = true
		p.maxSpeed = opts.MaxSpeedKmh * 1000 / float64(time.Hour)
		p.msgSpeed = "implies more than " + strconv.FormatFloat(opts.MaxSpeedKmh, 'g', -1, 64) + " km/h since the device's last position"
	} else if opts.LatPath != "" || opts.LonPath != "" || opts.JitterMeters != 0 {
		return nil, optErr("PlausibilityOptions.MaxSpeedKmh", "is 0 (off), but LatPath, LonPath or JitterMeters is set; set a speed limit")
	}
	p.jitter = opts.JitterMeters
	if p.jitter == 0 {
		p.jitter = defaultJitter
	}
	if math.IsNaN(p.jitter) || p.jitter < 0 || p.jitter > 1e6 {
		return nil, optErr("PlausibilityOptions.JitterMeters", "must be between 0 and 1000000, got %v", opts.JitterMeters)
	}

	if opts.ReplayWindow < 0 {
		return nil, optErr("PlausibilityOptions.ReplayWindow", "must be >= 0 (0 = off), got %v", opts.ReplayWindow)
	}
	p.slots = opts.ReplayHistory
	if p.slots == 0 {
		p.slots = defaultReplayHistory
	}
	if p.slots < 1 || p.slots > maxReplayHistory {
		return nil, optErr("PlausibilityOptions.ReplayHistory", "must be between 1 and %d, got %d", maxReplayHistory, opts.ReplayHistory)
	}
	if opts.ReplayWindow > 0 {
		p.replay, p.window = true, int64(opts.ReplayWindow)
		p.msgRepl = "identical to a payload the device sent less than " + opts.ReplayWindow.String() + " ago"
	} else if opts.ReplayHistory != 0 {
		return nil, optErr("PlausibilityOptions.ReplayWindow", "is 0 (off), but ReplayHistory is set; set a window")
	}

	if !p.ts && !p.speed && !p.replay {
		return nil, optErr("PlausibilityOptions", "no check enabled; set TimestampPath, MaxSpeedKmh or ReplayWindow")
	}
	p.msgFut = "more than " + maxFuture.String() + " ahead of now"
	p.msgTS = "missing, or not a " + p.tsFmt.name + " timestamp"

	st, err := ratelimit.NewStore[history](ratelimit.StoreOptions{MaxKeys: opts.MaxDevices, Shards: opts.Shards})
	if err != nil {
		// Report the field by our name, with the store's reason.
		if oe, ok := err.(*ratelimit.OptionError); ok {
			field := "PlausibilityOptions.MaxDevices"
			if oe.Field == "StoreOptions.Shards" {
				field = "PlausibilityOptions.Shards"
			}
			return nil, optErr(field, "%s", oe.Problem)
		}
		return nil, err
	}
	p.devices = st
	return p, nil
}

// Check judges payload, a message of device received at now, against the
// device's history. It returns nil and records the message if it is
// plausible, or a *ValidationError (keywords timestamp,
// timestampBackwards, timestampFuture, position, speed, replay) and leaves
// the history as it was. device is any stable identity the caller trusts:
// the client ID or the username. Check never panics; it keeps 16 bytes
// per replay slot and a few numbers per device, never the payload. It does
// not validate JSON (a value it cannot find is refused): run it after a
// Validator.
func (p *Plausibility) Check(now time.Time, device string, payload []byte) error {
	doc := unsafe.String(unsafe.SliceData(payload), len(payload))
	nowNs := now.UnixNano()
	var v values
	p.read(doc, &v)
	var ts int64
	if p.ts {
		r, n := v.res[tsValue], v.n[tsValue]
		if n > 1 {
			return verr(p.tsPath.fixed, KeywordTimestamp, p.msgAmbig)
		}
		var err error
		if ts, err = p.tsFmt.read(r); err != nil {
			return verr(p.tsPath.fixed, KeywordTimestamp, p.msgTS)
		}
		if ts > nowNs && ts-nowNs > p.maxFuture {
			return verr(p.tsPath.fixed, KeywordTimestampFuture, p.msgFut)
		}
	}
	var lat, lon float64
	at := nowNs
	if p.speed {
		la, lo := v.res[latValue], v.res[lonValue]
		if v.n[latValue] > 1 || v.n[lonValue] > 1 {
			return verr(p.latPath.fixed, KeywordPosition, p.msgAmbig)
		}
		if la.Type != gjson.Number || lo.Type != gjson.Number || !(la.Num >= -90 && la.Num <= 90) || !(lo.Num >= -180 && lo.Num <= 180) {
			return verr(p.latPath.fixed, KeywordPosition, "missing, not a number, or out of range")
		}
		lat, lon = la.Num, lo.Num
		if p.ts {
			at = ts
		}
	}
	var h uint64
	if p.replay {
		h = maphash.Bytes(p.seed, payload)
	}
	var res error
	p.devices.Update(device, func(d *history, created bool) {
		if !created {
			if res = p.judge(d, nowNs, ts, at, lat, lon, h); res != nil {
				return
			}
		}
		p.record(d, nowNs, ts, at, lat, lon, h)
	})
	return res
}

// judge applies the history checks; it must not change d.
func (p *Plausibility) judge(d *history, now, ts, at int64, lat, lon float64, h uint64) error {
	if p.replay {
		for _, r := range d.seen {
			// A clock that steps back (now < r.at) still counts as inside
			// the window: fail closed.
			if r.at != 0 && r.hash == h && now-r.at < p.window {
				return verr("", KeywordReplay, p.msgRepl)
			}
		}
	}
	if p.ts && ts < d.ts-p.tolerance {
		return verr(p.tsPath.fixed, KeywordTimestampBackwards, "older than the device's last accepted timestamp")
	}
	if p.speed && d.hasPos {
		dist := distance(d.lat, d.lon, lat, lon)
		if dist > p.jitter {
			dt := at - d.posAt
			// No time elapsed (or time went back within tolerance): any
			// movement beyond the jitter is implausible.
			if dt <= 0 || dist/float64(dt) > p.maxSpeed {
				return verr(p.latPath.fixed, KeywordSpeed, p.msgSpeed)
			}
		}
	}
	return nil
}

// record makes an accepted message the device's reference.
func (p *Plausibility) record(d *history, now, ts, at int64, lat, lon float64, h uint64) {
	if p.ts {
		// Keep the newest: a string of messages each a little older
		// (within tolerance) must not walk the clock back.
		d.ts = max(d.ts, ts)
	}
	if p.speed {
		d.lat, d.lon, d.hasPos = lat, lon, true
		d.posAt = max(d.posAt, at)
	}
	if p.replay {
		if d.seen == nil {
			d.seen = make([]replayRecord, p.slots)
		}
		if now == 0 {
			now = 1 // 0 marks an empty slot
		}
		d.seen[d.next] = replayRecord{hash: h, at: now}
		d.next = uint8((int(d.next) + 1) % p.slots)
	}
}

// Forget drops device's history, so that its next message is accepted as
// its first (after a device was moved by truck, or its clock was reset).
// It reports whether the device had a history.
func (p *Plausibility) Forget(device string) bool { return p.devices.Delete(device) }

// Len returns how many devices have a history.
func (p *Plausibility) Len() int { return p.devices.Len() }

// Cap returns the most devices that can have a history (MaxDevices).
func (p *Plausibility) Cap() int { return p.devices.Cap() }

// The values Check reads.
const (
	tsValue = iota
	latValue
	lonValue
)

// values are what the paths found in one payload: each value, and how many
// there were (0, 1, or 2 for "more than one").
type values struct {
	res [3]gjson.Result
	n   [3]int
}

// read finds the values of the enabled checks in doc: with gjson.Get under
// ExactPaths; otherwise in one walk (find) that matches keys folded and
// goes through arrays, and counts the values each path names.
func (p *Plausibility) read(doc string, v *values) {
	paths := [3]*path{}
	if p.ts {
		paths[tsValue] = &p.tsPath
	}
	if p.speed {
		paths[latValue], paths[lonValue] = &p.latPath, &p.lonPath
	}
	if !p.fold {
		for t, pa := range paths {
			if pa != nil {
				if v.res[t] = gjson.Get(doc, pa.text); v.res[t].Exists() {
					v.n[t] = 1
				}
			}
		}
		return
	}
	f := finder{paths: paths, v: v}
	n := 0
	for t, pa := range paths {
		if pa != nil {
			f.stack[n] = cursor{t: uint8(t)}
			n++
		}
	}
	f.find(gjson.Parse(doc), 0, n)
}

// cursor is where one path's walk is: its next component, and whether the
// value was reached through an array (then an index does not apply).
type cursor struct {
	t       uint8
	through bool
	i       int32
}

// finder walks a document for up to three paths at once. The cursors of
// the walk's current branch live on a fixed stack, so a walk allocates
// nothing; a document nested deeper than the stack holds is refused.
type finder struct {
	paths [3]*path
	v     *values
	stack [512]cursor
}

// find advances the cursors f.stack[lo:hi] over r, the value they have
// reached; the cursors of r's members go above hi.
func (f *finder) find(r gjson.Result, lo, hi int) {
	if hi+2*(hi-lo) > len(f.stack) {
		for _, c := range f.stack[lo:hi] {
			f.v.n[c.t] = 2 // deeper than any telemetry: refuse rather than guess
		}
		return
	}
	switch {
	case r.IsObject():
		r.ForEach(func(k, val gjson.Result) bool {
			top := hi
			for _, c := range f.stack[lo:hi] {
				if keyMatches(k.Str, f.paths[c.t].folded[c.i]) {
					f.stack[top] = cursor{t: c.t, i: c.i + 1}
					top++
				}
			}
			return f.step(val, hi, top)
		})
	case r.IsArray():
		j := 0
		r.ForEach(func(_, val gjson.Result) bool {
			top := hi
			for _, c := range f.stack[lo:hi] {
				if !c.through && j == f.paths[c.t].index[c.i] {
					f.stack[top] = cursor{t: c.t, i: c.i + 1}
					top++
				}
				if val.IsObject() || val.IsArray() {
					f.stack[top] = cursor{t: c.t, i: c.i, through: true}
					top++
				}
			}
			j++
			return f.step(val, hi, top)
		})
	}
}

// step records val for the cursors f.stack[lo:hi] that reached the end of
// their path and walks on with the others. It reports whether any path may
// still find a value that matters (a second one makes it ambiguous).
func (f *finder) step(val gjson.Result, lo, hi int) bool {
	top := lo
	for _, c := range f.stack[lo:hi] {
		if int(c.i) == len(f.paths[c.t].keys) {
			f.v.res[c.t] = val
			f.v.n[c.t]++
		} else if f.v.n[c.t] < 2 {
			f.stack[top] = c
			top++
		}
	}
	if top > lo {
		f.find(val, lo, top)
	}
	for t, pa := range f.paths {
		if pa != nil && f.v.n[t] < 2 {
			return true
		}
	}
	return false
}
