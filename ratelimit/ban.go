package ratelimit

import (
	"cmp"
	"math"
	"math/bits"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Ban is one entry of a ban list. It is a plain value, safe to copy; the
// zero Ban bans nothing (its Target is invalid).
type Ban struct {
	Target  Target
	Reason  string    // why, as given by the caller ("flapping", "operator")
	Since   time.Time // when the ban was set
	Until   time.Time // when it ends; zero means never
	Strikes int       // repeat-offence count behind an automatic ban; 0 for bans set with Add
}

// Active reports whether b is in force at now.
func (b Ban) Active(now time.Time) bool { return b.Until.IsZero() || now.Before(b.Until) }

// BanStore is what the broker-facing code needs from a ban list. BanList is
// the in-memory implementation; a store shared by several broker nodes (for
// example in Redis) can implement it too. Check is on the CONNECT path and
// has no error: a shared implementation should answer it from a local replica
// kept current by subscription, and fail closed on its own if that replica is
// stale.
type BanStore interface {
	// Check returns the first active ban matching clientID, then username,
	// then ip (longest prefix first). Empty strings and the zero Addr match
	// nothing.
	Check(now time.Time, clientID, username string, ip netip.Addr) (Ban, bool)
	// Strike records an offence by t and bans it for a duration that grows
	// with its recent offences. It returns the ban in force afterwards.
	Strike(now time.Time, t Target, reason string) (Ban, error)
	// Add sets a ban as given (operator action), replacing any ban of the
	// same target.
	Add(now time.Time, b Ban) error
	// Remove lifts t's ban and reports whether there was one.
	Remove(t Target) (bool, error)
	// List returns the active bans, sorted by target.
	List(now time.Time) ([]Ban, error)
}

var _ BanStore = (*BanList)(nil)

// BanOptions configures a BanList. The zero value is valid: first ban 5
// minutes (EMQX's flapping ban), doubling per repeat offence up to 1 hour,
// one strike forgiven per quiet hour, at most 20,000 bans and 50,000 strike
// records.
type BanOptions struct {
	// Duration is the first automatic ban. Default 5m.
	Duration time.Duration `yaml:"duration" json:"duration"`
	// Backoff multiplies the duration for every further strike: with the
	// defaults 5m, 10m, 20m, 40m, then MaxDuration. Between 1 and 100.
	// Default 2.
	Backoff float64 `yaml:"backoff" json:"backoff"`
	// MaxDuration caps automatic bans. Default 1h.
	MaxDuration time.Duration `yaml:"max_duration" json:"max_duration"`
	// Forgive is the quiet time, counted from the end of the last ban, that
	// takes one strike off. Default 1h.
	Forgive time.Duration `yaml:"forgive" json:"forgive"`
	// MaxBans caps the bans held. When full, the ban that ends soonest goes
	// first (expired ones before all); a new ban that would end before every
	// held one is refused with ErrFull. Permanent bans go last. Default 20000.
	MaxBans int `yaml:"max_bans" json:"max_bans"`
	// MaxOffenders caps the strike records (offence history); the least
	// recently struck record is forgotten first, so its next ban starts again
	// at Duration. Default 50000.
	MaxOffenders int `yaml:"max_offenders" json:"max_offenders"`
}

// MaxReason is the longest Reason a ban may carry.
const MaxReason = 256

// BanList is an in-memory ban list keyed by client ID, username and IP
// address or network, with expiry, back-off for repeat offenders and bounded
// memory. Check is allocation-free, and returns at once when nothing is
// banned.
//
// The zero BanList is not usable; create one with NewBanList. A BanList is
// safe for concurrent use: checks share a read lock, changes take it alone.
type BanList struct {
	duration, maxDuration, forgive time.Duration
	backoff                        float64
	maxBans                        int

	held    atomic.Int64 // bans held, read without the lock by Check
	mu      sync.RWMutex
	ids     map[string]int32       // client ID bans
	users   map[string]int32       // username bans
	nets    map[netip.Prefix]int32 // IP and network bans
	slots   []banSlot
	free    []int32
	heap    []int32 // slot indices, ordered by end time (min-heap)
	v4Lens  uint64  // bit L set: some IPv4 ban has prefix length L
	v6Lens  [3]uint64
	lenUses [2][129]int32

	strikes *Store[strikeRecord]
}

type banSlot struct {
	ban Ban
	end int64 // Until in Unix ns, MaxInt64 for permanent
	pos int32 // position in heap
}

type strikeRecord struct {
	count      int
	quietSince int64 // end of the last ban, Unix ns
}

// NewBanList returns a BanList, or an *OptionError if opts is invalid.
func NewBanList(opts BanOptions) (*BanList, error) {
	const owner = "BanOptions"
	b := &BanList{
		duration: cmp.Or(opts.Duration, 5*time.Minute), maxDuration: cmp.Or(opts.MaxDuration, time.Hour),
		forgive: cmp.Or(opts.Forgive, time.Hour), backoff: cmp.Or(opts.Backoff, 2), maxBans: cmp.Or(opts.MaxBans, 20_000),
		ids: make(map[string]int32), users: make(map[string]int32), nets: make(map[netip.Prefix]int32),
	}
	switch {
	case b.duration < time.Second || b.duration > maxWindow:
		return nil, optErr(owner+".Duration", "must be between 1s and 366 days, got %v", b.duration)
	case b.maxDuration < b.duration || b.maxDuration > maxWindow:
		return nil, optErr(owner+".MaxDuration", "must be between Duration (%v) and 366 days, got %v", b.duration, b.maxDuration)
	case b.forgive < time.Second || b.forgive > maxWindow:
		return nil, optErr(owner+".Forgive", "must be between 1s and 366 days, got %v", b.forgive)
	case !(b.backoff >= 1 && b.backoff <= 100):
		return nil, optErr(owner+".Backoff", "must be between 1 and 100, got %v", b.backoff)
	case b.maxBans < 1 || b.maxBans > maxTableKeys:
		return nil, optErr(owner+".MaxBans", "must be between 1 and %d, got %d", maxTableKeys, b.maxBans)
	}
	shape, err := shapeOf(owner, "MaxOffenders", opts.MaxOffenders, 0, 50_000)
	if err != nil {
		return nil, err
	}
	b.strikes = newStore[strikeRecord](shape)
	return b, nil
}

// Len returns the number of bans held, including expired ones not yet
// dropped.
func (b *BanList) Len() int { return int(b.held.Load()) }

// Check returns the first active ban matching clientID, then username, then
// ip (longest prefix first); IPv4-mapped IPv6 addresses match IPv4 bans.
// Empty strings and the zero Addr match nothing. It does not allocate.
func (b *BanList) Check(now time.Time, clientID, username string, ip netip.Addr) (Ban, bool) {
	if b.held.Load() == 0 {
		return Ban{}, false
	}
	end := now.UnixNano()
	b.mu.RLock()
	defer b.mu.RUnlock()
	if clientID != "" {
		if i, ok := b.ids[clientID]; ok && b.slots[i].end > end {
			return b.slots[i].ban, true
		}
	}
	if username != "" {
		if i, ok := b.users[username]; ok && b.slots[i].end > end {
			return b.slots[i].ban, true
		}
	}
	if !ip.IsValid() {
		return Ban{}, false
	}
	ip = ip.Unmap()
	if ip.Is4() {
		return b.lookupIP(ip, b.v4Lens, 0, end)
	}
	for word := 2; word >= 0; word-- {
		if ban, ok := b.lookupIP(ip, b.v6Lens[word], 64*word, end); ok {
			return ban, true
		}
	}
	return Ban{}, false
}

// lookupIP tries the prefix lengths base+L for every bit L set in lens,
// longest first.
func (b *BanList) lookupIP(ip netip.Addr, lens uint64, base int, end int64) (Ban, bool) {
	for lens != 0 {
		l := 63 - bits.LeadingZeros64(lens)
		lens &^= 1 << l
		p, err := ip.Prefix(base + l)
		if err != nil {
			continue
		}
		if i, ok := b.nets[p]; ok && b.slots[i].end > end {
			return b.slots[i].ban, true
		}
	}
	return Ban{}, false
}

// find returns the slot of t's ban.
func (b *BanList) find(t Target) (int32, bool) {
	var i int32
	var ok bool
	switch t.Kind {
	case KindClientID:
		i, ok = b.ids[t.Value]
	case KindUsername:
		i, ok = b.users[t.Value]
	case KindIP:
		i, ok = b.nets[t.Prefix]
	}
	return i, ok
}

func (b *BanList) setIndex(t Target, i int32) {
	switch t.Kind {
	case KindClientID:
		b.ids[t.Value] = i
	case KindUsername:
		b.users[t.Value] = i
	case KindIP:
		b.nets[t.Prefix] = i
	}
}

func (b *BanList) unsetIndex(t Target) {
	switch t.Kind {
	case KindClientID:
		delete(b.ids, t.Value)
	case KindUsername:
		delete(b.users, t.Value)
	case KindIP:
		delete(b.nets, t.Prefix)
	}
}

func (b *BanList) count() int { return len(b.heap) }

// Strike records an offence by t at now and bans t for Duration *
// Backoff^(strikes-1), capped at MaxDuration, where strikes counts t's recent
// offences (one is forgiven per Forgive of quiet time after its last ban
// ended). If t is already banned for longer, the longer ban stays. It returns
// the ban in force.
func (b *BanList) Strike(now time.Time, t Target, reason string) (Ban, error) {
	if err := t.Validate(); err != nil {
		return Ban{}, err
	}
	if len(reason) > MaxReason {
		return Ban{}, optErr("Reason", "longer than %d bytes", MaxReason)
	}
	var strikes int
	var d time.Duration
	b.strikes.Update(t.String(), func(r *strikeRecord, _ bool) {
		n := min(b.left(*r, now.UnixNano())+1, maxStrikes)
		d = b.durationFor(n)
		r.count, r.quietSince = n, now.Add(d).UnixNano()
		strikes = n
	})
	return b.put(now, Ban{Target: t, Reason: reason, Since: now, Until: now.Add(d), Strikes: strikes}, true)
}

// maxStrikes caps a strike count (the duration is capped long before).
const maxStrikes = 1 << 20

// left returns the strikes of r not yet forgiven at the Unix ns at: one
// goes per Forgive of quiet time after r's last ban ended.
func (b *BanList) left(r strikeRecord, at int64) int {
	n := r.count
	if quiet := at - r.quietSince; n > 0 && quiet > 0 {
		n -= int(min(int64(n), quiet/int64(b.forgive)))
	}
	return n
}

// NoteStrikes takes in an offence history kept elsewhere: strikes offences,
// the last one's ban ending at quietUntil (a Ban's Strikes and Until). It is
// how a replica of a shared ban list learns the strikes behind another
// node's automatic ban, so that t's next offence here is banned as a repeat
// of it (strike 2 for 10 minutes, not strike 1 again) and forgiveness runs
// from that ban's end, as for a local strike.
//
// t's history becomes whichever of its own and the noted one leaves more
// strikes once both bans have ended, quiet from the later end: noting never
// lowers a count, and noting the same ban twice changes nothing. Strikes
// below 1 or a zero quietUntil (operators' and permanent bans) note
// nothing. Like Strike it adds to the strike records, which stay bounded by
// MaxOffenders (the least recently struck record goes first). It reports
// whether t's history changed.
func (b *BanList) NoteStrikes(t Target, strikes int, quietUntil time.Time) bool {
	if strikes < 1 || quietUntil.IsZero() || t.Validate() != nil {
		return false
	}
	noted := strikeRecord{count: min(strikes, maxStrikes), quietSince: quietUntil.UnixNano()}
	changed := false
	b.strikes.Update(t.String(), func(r *strikeRecord, _ bool) {
		at := max(r.quietSince, noted.quietSince)
		n := max(b.left(*r, at), b.left(noted, at))
		if n != r.count || at != r.quietSince {
			r.count, r.quietSince, changed = n, at, true
		}
	})
	return changed
}

func (b *BanList) durationFor(strikes int) time.Duration {
	d := float64(b.duration) * math.Pow(b.backoff, float64(strikes-1))
	if !(d < float64(b.maxDuration)) {
		return b.maxDuration
	}
	return time.Duration(d)
}

// Add sets ban as given, replacing any ban of the same target. Until must be
// zero (permanent) or after now; a zero Since is set to now.
func (b *BanList) Add(now time.Time, ban Ban) error {
	if err := ban.Target.Validate(); err != nil {
		return err
	}
	if len(ban.Reason) > MaxReason {
		return optErr("Ban.Reason", "longer than %d bytes", MaxReason)
	}
	if !ban.Until.IsZero() && !ban.Until.After(now) {
		return optErr("Ban.Until", "must be after now, or zero for a permanent ban; got %v", ban.Until)
	}
	if ban.Since.IsZero() {
		ban.Since = now
	}
	_, err := b.put(now, ban, false)
	return err
}

// Merge sets ban unless t already has a ban that ends later (or never),
// which then stays: the way a replica takes in a ban made elsewhere (a
// shared store's copy), where two nodes may have banned the same target
// for different lengths and the longer one wins.
func (b *BanList) Merge(now time.Time, ban Ban) error {
	if err := ban.Target.Validate(); err != nil {
		return err
	}
	if !ban.Active(now) {
		return nil
	}
	_, err := b.put(now, ban, true)
	return err
}

// Remove lifts t's ban and reports whether there was one. t's strike record
// stays, so a new offence still counts as a repeat; see Forgive.
func (b *BanList) Remove(t Target) (bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	i, ok := b.find(t)
	if ok {
		b.drop(i)
	}
	return ok, nil
}

// Forgive clears t's offence history, so its next ban starts at Duration.
func (b *BanList) Forgive(t Target) bool { return b.strikes.Delete(t.String()) }

// List returns the bans active at now, sorted by kind, then value or
// network.
func (b *BanList) List(now time.Time) ([]Ban, error) {
	end := now.UnixNano()
	b.mu.RLock()
	out := make([]Ban, 0, b.count())
	for _, i := range b.heap {
		if s := &b.slots[i]; s.end > end {
			out = append(out, s.ban)
		}
	}
	b.mu.RUnlock()
	slices.SortFunc(out, func(x, y Ban) int { return compareTargets(x.Target, y.Target) })
	return out, nil
}

func compareTargets(x, y Target) int {
	if c := cmp.Compare(x.Kind, y.Kind); c != 0 {
		return c
	}
	if c := cmp.Compare(x.Value, y.Value); c != 0 {
		return c
	}
	if c := x.Prefix.Addr().Compare(y.Prefix.Addr()); c != 0 {
		return c
	}
	return cmp.Compare(x.Prefix.Bits(), y.Prefix.Bits())
}

func endOf(ban Ban) int64 {
	if ban.Until.IsZero() {
		return math.MaxInt64
	}
	return ban.Until.UnixNano()
}

// put stores ban. With keepLonger, an existing longer ban of the same
// target keeps its end (automatic bans never shorten a ban).
func (b *BanList) put(now time.Time, ban Ban, keepLonger bool) (Ban, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.dropExpired(now.UnixNano())
	end := endOf(ban)
	if i, ok := b.find(ban.Target); ok {
		s := &b.slots[i]
		if keepLonger && s.end > end {
			ban.Until, end = s.ban.Until, s.end
		}
		s.ban, s.end = ban, end
		b.fix(s.pos)
		return ban, nil
	}
	if b.count() >= b.maxBans {
		first := b.heap[0]
		if end <= b.slots[first].end {
			return Ban{}, ErrFull
		}
		b.drop(first)
	}
	var i int32
	if n := len(b.free); n > 0 {
		i, b.free = b.free[n-1], b.free[:n-1]
	} else {
		i = int32(len(b.slots))
		b.slots = append(b.slots, banSlot{})
	}
	b.slots[i] = banSlot{ban: ban, end: end, pos: int32(len(b.heap))}
	b.heap = append(b.heap, i)
	b.up(len(b.heap) - 1)
	b.setIndex(ban.Target, i)
	b.countLen(ban.Target, 1)
	b.held.Store(int64(b.count()))
	return ban, nil
}

func (b *BanList) dropExpired(now int64) {
	for len(b.heap) > 0 && b.slots[b.heap[0]].end <= now {
		b.drop(b.heap[0])
	}
}

// drop removes slot i. Requires the write lock.
func (b *BanList) drop(i int32) {
	s := &b.slots[i]
	last := len(b.heap) - 1
	pos := int(s.pos)
	b.swap(pos, last)
	b.heap = b.heap[:last]
	if pos < last {
		b.fix(int32(pos))
	}
	b.unsetIndex(s.ban.Target)
	b.countLen(s.ban.Target, -1)
	*s = banSlot{}
	b.free = append(b.free, i)
	b.held.Store(int64(b.count()))
}

// countLen keeps the per-length use counts and bitmasks Check walks.
func (b *BanList) countLen(t Target, delta int32) {
	if t.Kind != KindIP {
		return
	}
	fam, l := 1, t.Prefix.Bits()
	if t.Prefix.Addr().Is4() {
		fam = 0
	}
	b.lenUses[fam][l] += delta
	set := b.lenUses[fam][l] > 0
	var word *uint64
	if fam == 0 {
		word = &b.v4Lens
	} else {
		word, l = &b.v6Lens[l/64], l%64
	}
	if set {
		*word |= 1 << l
	} else {
		*word &^= 1 << l
	}
}

// Min-heap by end time over b.heap.

func (b *BanList) less(x, y int) bool { return b.slots[b.heap[x]].end < b.slots[b.heap[y]].end }

func (b *BanList) swap(x, y int) {
	b.heap[x], b.heap[y] = b.heap[y], b.heap[x]
	b.slots[b.heap[x]].pos = int32(x)
	b.slots[b.heap[y]].pos = int32(y)
}

func (b *BanList) fix(pos int32) {
	if !b.down(int(pos)) {
		b.up(int(pos))
	}
}

func (b *BanList) up(j int) {
	for j > 0 {
		parent := (j - 1) / 2
		if !b.less(j, parent) {
			return
		}
		b.swap(j, parent)
		j = parent
	}
}

func (b *BanList) down(i int) bool {
	start, n := i, len(b.heap)
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		j := l
		if r := l + 1; r < n && b.less(r, l) {
			j = r
		}
		if !b.less(j, i) {
			break
		}
		b.swap(i, j)
		i = j
	}
	return i > start
}
