package schema

import (
	"encoding/json"
	"hash/maphash"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"

	"github.com/mqttwaf/mqttwaf/normalize"
)

// This file holds the one JSON reader of the package: a strict RFC 8259
// parser (UTF-8 only, no lone surrogates, no duplicate keys, bounded depth).
// In build mode it produces the value tree the JSON Schema library wants
// (map[string]any, []any, string, int64, json.Number, bool, nil) without
// reflection; in scan mode it only checks, allocating nothing in the steady
// state, before the field rules look values up with gjson.
//
// Building the tree allocates little, because it lives only inside
// Validate, which returns and keeps no part of it:
//   - strings and numbers without escapes share the input's bytes (the
//     payload does not change during the call);
//   - members and items collect on scratch stacks, so that a new map or
//     slice is made at its final size;
//   - after the call, release clears the maps and array storage and keeps
//     them for the next payload.

// decoder is reusable scratch; one per goroutine at a time (pooled).
type decoder struct {
	in       []byte
	pos      int
	maxDepth int
	build    bool
	buf      []byte             // unescaped string scratch (scan mode)
	buf2     []byte             // second scratch for exact key comparison
	keys     []keyRef           // keys of the open objects, innermost last
	big      []map[uint64]int32 // per open object with many keys: hash -> index in keys
	members  []member           // members of the open objects, innermost last (build mode)
	items    []any              // items of the open arrays, innermost last (build mode)
	maps     []map[string]any   // maps of the trees built since release, for the next tree
	nmaps    int                // how many of maps the trees since release use
	slab     []any              // storage for the items of the arrays built since release
	slabNeed int                // items of the arrays built since release
	err      *ValidationError
	fields   fieldScratch // for the field rules, pooled along
}

type member struct {
	key string
	val any
}

type keyRef struct {
	hash       uint64
	start, end int32 // raw key bytes between the quotes
	escaped    bool
}

// keySeed seeds the hashes of object keys for duplicate detection. It is
// random per process, so a sender cannot choose keys that collide.
var keySeed = maphash.MakeSeed()

// linearKeys is how many keys an object may have before duplicate
// detection switches from comparing hashes pairwise to a map: pairwise is
// faster for telemetry-sized objects and allocation-free, the map keeps
// attacker-sized objects linear.
const linearKeys = 32

func (d *decoder) reset(in []byte, maxDepth int, build bool) {
	d.in, d.pos, d.maxDepth, d.build, d.err = in, 0, maxDepth, build, nil
	d.keys = d.keys[:0]
	d.big = d.big[:0]
	d.members = d.members[:0]
	d.items = d.items[:0]
}

// Bounds on what release keeps for the next tree: a telemetry-sized tree
// is then built without allocating maps or slices, and an attacker-sized
// one is not kept.
const (
	recycleMaps    = 32      // maps
	recycleMembers = 128     // members in one map
	recycleItems   = 1024    // array items
	recycleStack   = 1 << 14 // entries of the members and items stacks
)

// release clears the trees built since the last release (they must no
// longer be used) and keeps their maps and array storage for the next
// ones. Clearing also drops the references into the payload.
func (d *decoder) release() {
	kept := d.maps[:0]
	for _, m := range d.maps {
		if len(m) <= recycleMembers {
			clear(m)
			kept = append(kept, m)
		}
	}
	clear(d.maps[len(kept):])
	d.maps, d.nmaps = kept, 0
	clear(d.slab)
	d.slab = d.slab[:0]
	if d.slabNeed > cap(d.slab) && d.slabNeed <= recycleItems {
		d.slab = make([]any, 0, d.slabNeed)
	}
	d.slabNeed = 0
	if cap(d.members) > recycleStack {
		d.members = nil
	}
	if cap(d.items) > recycleStack {
		d.items = nil
	}
}

// borrow returns b as a string sharing its bytes (see the top of the file).
func borrow(b []byte) string {
	return unsafe.String(unsafe.SliceData(b), len(b))
}

func (d *decoder) fail(keyword, msg string) {
	if d.err == nil {
		d.err = verr("", keyword, msg+" at byte "+strconv.Itoa(d.pos))
	}
}

// document parses the whole input: one value and optional whitespace.
func (d *decoder) document() (any, *ValidationError) {
	d.ws()
	v := d.value(0)
	if d.err != nil {
		return nil, d.err
	}
	d.ws()
	if d.pos != len(d.in) {
		d.fail(KeywordJSON, "invalid JSON: data after the top-level value")
		return nil, d.err
	}
	return v, nil
}

func (d *decoder) ws() {
	for d.pos < len(d.in) {
		switch d.in[d.pos] {
		case ' ', '\t', '\n', '\r':
			d.pos++
		default:
			return
		}
	}
}

func (d *decoder) value(depth int) any {
	if d.pos >= len(d.in) {
		d.fail(KeywordJSON, "invalid JSON: unexpected end")
		return nil
	}
	switch c := d.in[d.pos]; {
	case c == '{':
		if depth >= d.maxDepth {
			d.fail(KeywordDepth, "nested deeper than "+strconv.Itoa(d.maxDepth))
			return nil
		}
		return d.object(depth + 1)
	case c == '[':
		if depth >= d.maxDepth {
			d.fail(KeywordDepth, "nested deeper than "+strconv.Itoa(d.maxDepth))
			return nil
		}
		return d.array(depth + 1)
	case c == '"':
		start := d.pos + 1
		s, escaped := d.str(d.build)
		if d.err != nil || !d.build {
			return nil
		}
		if !escaped {
			return borrow(d.in[start : d.pos-1])
		}
		return string(s) // s is scratch: copy
	case c == '-' || (c >= '0' && c <= '9'):
		start := d.pos
		integer := d.number()
		if d.err != nil || !d.build {
			return nil
		}
		lit := borrow(d.in[start:d.pos])
		// The library reads every numeric type through fmt.Sprint into a
		// big.Rat, so an integer literal and its int64 (which 18 characters
		// always fit) get the same verdicts (see FuzzSchemaVerdict); the
		// int64 prints faster, and a small one boxes without allocating.
		if integer && len(lit) <= 18 {
			if n, err := strconv.ParseInt(lit, 10, 64); err == nil {
				return n
			}
		}
		return json.Number(lit)
	case c == 't':
		return d.literal("true", true)
	case c == 'f':
		return d.literal("false", false)
	case c == 'n':
		return d.literal("null", nil)
	}
	d.fail(KeywordJSON, "invalid JSON: unexpected character")
	return nil
}

func (d *decoder) literal(word string, v any) any {
	if len(d.in)-d.pos < len(word) || string(d.in[d.pos:d.pos+len(word)]) != word {
		d.fail(KeywordJSON, "invalid JSON: bad literal")
		return nil
	}
	d.pos += len(word)
	return v
}

func (d *decoder) object(depth int) any {
	d.pos++ // {
	base, mbase := len(d.keys), len(d.members)
	bigAt := -1
	defer func() {
		d.keys = d.keys[:base]
		if bigAt >= 0 {
			d.big = d.big[:bigAt]
		}
		// Drop the references into the payload before the decoder is pooled.
		clear(d.members[mbase:])
		d.members = d.members[:mbase]
	}()
	d.ws()
	if d.pos < len(d.in) && d.in[d.pos] == '}' {
		d.pos++
		return d.makeObject(mbase)
	}
	for {
		if d.pos >= len(d.in) || d.in[d.pos] != '"' {
			d.fail(KeywordJSON, "invalid JSON: expected a key")
			return nil
		}
		keyPos := d.pos
		start := d.pos + 1
		s, escaped := d.str(true)
		if d.err != nil {
			return nil
		}
		raw := d.in[start : d.pos-1]
		if escaped {
			raw = s
		}
		var k string
		if d.build {
			k = borrow(raw)
			if escaped {
				k = string(raw) // raw is scratch, which seenKey reuses: copy
			}
		}
		kr := keyRef{hash: maphash.Bytes(keySeed, raw), start: int32(start), end: int32(d.pos - 1), escaped: escaped}
		if d.seenKey(base, &bigAt, kr) {
			d.pos = keyPos
			d.fail(KeywordDuplicateKey, "duplicate object key")
			return nil
		}
		d.ws()
		if !d.colon() {
			return nil
		}
		v := d.value(depth)
		if d.err != nil {
			return nil
		}
		if d.build {
			d.members = append(d.members, member{k, v})
		}
		d.ws()
		if d.pos >= len(d.in) {
			d.fail(KeywordJSON, "invalid JSON: unexpected end in object")
			return nil
		}
		switch d.in[d.pos] {
		case ',':
			d.pos++
			d.ws()
		case '}':
			d.pos++
			return d.makeObject(mbase)
		default:
			d.fail(KeywordJSON, "invalid JSON: expected ',' or '}'")
			return nil
		}
	}
}

// makeObject builds the map of the members from d.members[base:]: one
// kept by release, else one of their size. Keys are unique: seenKey refused
// duplicates.
func (d *decoder) makeObject(base int) any {
	if !d.build {
		return nil
	}
	var m map[string]any
	if d.nmaps < len(d.maps) {
		m = d.maps[d.nmaps]
		d.nmaps++
	} else {
		m = make(map[string]any, len(d.members)-base)
		if len(d.maps) < recycleMaps {
			d.maps = append(d.maps, m)
			d.nmaps++
		}
	}
	for _, kv := range d.members[base:] {
		m[kv.key] = kv.val
	}
	return m
}

func (d *decoder) colon() bool {
	if d.pos >= len(d.in) || d.in[d.pos] != ':' {
		d.fail(KeywordJSON, "invalid JSON: expected ':'")
		return false
	}
	d.pos++
	d.ws()
	return true
}

// seenKey records kr among the keys of the object whose keys start at
// d.keys[base] and reports whether an equal key was already there.
func (d *decoder) seenKey(base int, bigAt *int, kr keyRef) bool {
	n := len(d.keys) - base
	if *bigAt < 0 && n < linearKeys {
		for i := base; i < len(d.keys); i++ {
			if d.keys[i].hash == kr.hash && d.sameKey(d.keys[i], kr) {
				return true
			}
		}
		d.keys = append(d.keys, kr)
		return false
	}
	if *bigAt < 0 {
		*bigAt = len(d.big)
		idx := make(map[uint64]int32, 2*linearKeys)
		for i := base; i < len(d.keys); i++ {
			idx[d.keys[i].hash] = int32(i)
		}
		d.big = append(d.big, idx)
	}
	idx := d.big[*bigAt]
	if i, ok := idx[kr.hash]; ok && d.sameKey(d.keys[i], kr) {
		return true
	}
	// A hash collision between different keys (seeded, so not chosen by
	// the sender) only costs the map entry of the earlier key; duplicates
	// of that key are still caught by the pairwise fallback below.
	if _, ok := idx[kr.hash]; ok {
		for i := base; i < len(d.keys); i++ {
			if d.keys[i].hash == kr.hash && d.sameKey(d.keys[i], kr) {
				return true
			}
		}
	} else {
		idx[kr.hash] = int32(len(d.keys))
	}
	d.keys = append(d.keys, kr)
	return false
}

// sameKey compares two keys after unescaping.
func (d *decoder) sameKey(a, b keyRef) bool {
	ra, rb := d.in[a.start:a.end], d.in[b.start:b.end]
	if !a.escaped && !b.escaped {
		return string(ra) == string(rb)
	}
	d.buf = normalize.AppendUnescaped(d.buf[:0], ra)
	d.buf2 = normalize.AppendUnescaped(d.buf2[:0], rb)
	return string(d.buf) == string(d.buf2)
}

func (d *decoder) array(depth int) any {
	d.pos++ // [
	base := len(d.items)
	defer func() {
		clear(d.items[base:]) // as in object
		d.items = d.items[:base]
	}()
	d.ws()
	if d.pos < len(d.in) && d.in[d.pos] == ']' {
		d.pos++
		return d.makeArray(base)
	}
	for {
		v := d.value(depth)
		if d.err != nil {
			return nil
		}
		if d.build {
			d.items = append(d.items, v)
		}
		d.ws()
		if d.pos >= len(d.in) {
			d.fail(KeywordJSON, "invalid JSON: unexpected end in array")
			return nil
		}
		switch d.in[d.pos] {
		case ',':
			d.pos++
			d.ws()
		case ']':
			d.pos++
			return d.makeArray(base)
		default:
			d.fail(KeywordJSON, "invalid JSON: expected ',' or ']'")
			return nil
		}
	}
}

// makeArray copies the items from d.items[base:] to the slab if they fit
// (capped there, so that an append cannot reach the next array), else to a
// slice of their size.
func (d *decoder) makeArray(base int) any {
	if !d.build {
		return nil
	}
	n := len(d.items) - base
	if n == 0 {
		return []any{} // not nil, as encoding/json decodes it (allocates nothing)
	}
	d.slabNeed += n
	if len(d.slab)+n > cap(d.slab) {
		return append(make([]any, 0, n), d.items[base:]...)
	}
	start := len(d.slab)
	d.slab = append(d.slab, d.items[base:]...)
	return d.slab[start:len(d.slab):len(d.slab)]
}

// str checks the string starting at d.pos (the opening quote) and leaves
// d.pos after the closing quote. It reports whether the string has escapes;
// if so and want is true it returns the unescaped form in d.buf (valid
// until the next call).
func (d *decoder) str(want bool) ([]byte, bool) {
	d.pos++
	start := d.pos
	escaped := false
	for d.pos < len(d.in) {
		// Most bytes are plain ASCII: step over them in a tight loop.
		i := d.pos
		for i < len(d.in) && plain[d.in[i]] {
			i++
		}
		d.pos = i
		if i == len(d.in) {
			break
		}
		c := d.in[i]
		switch {
		case c == '"':
			d.pos++
			if !escaped || !want {
				return nil, escaped
			}
			d.buf = normalize.AppendUnescaped(d.buf[:0], d.in[start:d.pos-1])
			return d.buf, true
		case c == '\\':
			escaped = true
			if !d.escape() {
				return nil, false
			}
		case c < 0x20:
			d.fail(KeywordJSON, "invalid JSON: control character in string")
			return nil, false
		default:
			r, n := utf8.DecodeRune(d.in[d.pos:])
			if r == utf8.RuneError && n <= 1 {
				d.fail(KeywordJSON, "invalid JSON: invalid UTF-8")
				return nil, false
			}
			d.pos += n
		}
	}
	d.fail(KeywordJSON, "invalid JSON: unterminated string")
	return nil, false
}

// plain marks the bytes a string may hold as they are: printable ASCII
// other than '"' and '\\'.
var plain = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// escape checks the escape sequence at d.pos and steps over it.
func (d *decoder) escape() bool {
	if d.pos+1 >= len(d.in) {
		d.fail(KeywordJSON, "invalid JSON: unterminated string")
		return false
	}
	switch d.in[d.pos+1] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		d.pos += 2
		return true
	case 'u':
		r, ok := hex4(d.in, d.pos+2)
		if !ok {
			d.fail(KeywordJSON, "invalid JSON: bad \\u escape")
			return false
		}
		d.pos += 6
		if utf16.IsSurrogate(r) {
			// Only a high surrogate followed by an escaped low one is a
			// character; anything else cannot be UTF-8 and is refused.
			lo, ok := rune(0), false
			if r < 0xDC00 && d.pos+1 < len(d.in) && d.in[d.pos] == '\\' && d.in[d.pos+1] == 'u' {
				lo, ok = hex4(d.in, d.pos+2)
			}
			if !ok || lo < 0xDC00 || lo > 0xDFFF {
				d.fail(KeywordJSON, "invalid JSON: lone UTF-16 surrogate")
				return false
			}
			d.pos += 6
		}
		return true
	}
	d.fail(KeywordJSON, "invalid JSON: bad escape")
	return false
}

func hex4(b []byte, i int) (rune, bool) {
	if i+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

// Bounds on numbers. The JSON Schema library compares numbers as exact
// rationals (math/big): an exponent of a million costs it seconds per
// number, and one that big.Rat refuses makes it panic. RFC 8259 lets a
// parser limit range and precision; these limits are far beyond any
// float64 (which ends near 1e308) or any reading a device sends.
const (
	maxNumberLen = 1000
	maxExponent  = 1000
)

// number checks the number at d.pos (RFC 8259 grammar, within the bounds
// above), steps over it and reports whether it has neither fraction nor
// exponent.
func (d *decoder) number() (integer bool) {
	start := d.pos
	i := d.pos
	if i < len(d.in) && d.in[i] == '-' {
		i++
	}
	switch {
	case i < len(d.in) && d.in[i] == '0':
		i++
	case i < len(d.in) && d.in[i] >= '1' && d.in[i] <= '9':
		for i < len(d.in) && d.in[i] >= '0' && d.in[i] <= '9' {
			i++
		}
	default:
		d.fail(KeywordJSON, "invalid JSON: bad number")
		return false
	}
	integer = true
	if i < len(d.in) && d.in[i] == '.' {
		integer = false
		i++
		if i >= len(d.in) || d.in[i] < '0' || d.in[i] > '9' {
			d.pos = i
			d.fail(KeywordJSON, "invalid JSON: bad number")
			return false
		}
		for i < len(d.in) && d.in[i] >= '0' && d.in[i] <= '9' {
			i++
		}
	}
	if i < len(d.in) && (d.in[i] == 'e' || d.in[i] == 'E') {
		integer = false
		i++
		if i < len(d.in) && (d.in[i] == '+' || d.in[i] == '-') {
			i++
		}
		if i >= len(d.in) || d.in[i] < '0' || d.in[i] > '9' {
			d.pos = i
			d.fail(KeywordJSON, "invalid JSON: bad number")
			return false
		}
		exp := 0
		for i < len(d.in) && d.in[i] >= '0' && d.in[i] <= '9' {
			if exp <= maxExponent {
				exp = exp*10 + int(d.in[i]-'0')
			}
			i++
		}
		if exp > maxExponent {
			d.fail(KeywordNumber, "number exponent beyond ±"+strconv.Itoa(maxExponent))
			return false
		}
	}
	if i-start > maxNumberLen {
		d.fail(KeywordNumber, "number longer than "+strconv.Itoa(maxNumberLen)+" characters")
		return false
	}
	d.pos = i
	return integer
}
