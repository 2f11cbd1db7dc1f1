package schema

import (
	"encoding/json"
	"hash/maphash"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/mqttwaf/mqttwaf/normalize"
)

// This file holds the one JSON reader of the package: a strict RFC 8259
// parser (UTF-8 only, no lone surrogates, no duplicate keys, bounded depth).
// In build mode it produces the value tree the JSON Schema library wants
// (map[string]any, []any, string, json.Number, bool, nil) without
// reflection; in scan mode it only checks, allocating nothing in the steady
// state, before the field rules look values up with gjson.

// decoder is reusable scratch; one per goroutine at a time (pooled).
type decoder struct {
	in       []byte
	pos      int
	maxDepth int
	build    bool
	buf      []byte             // unescaped string scratch (scan mode)
	buf2     []byte             // second scratch for exact key comparison
	keys     []keyRef           // keys of the open objects, innermost last (scan mode)
	big      []map[uint64]int32 // per open object with many keys: hash -> index in keys
	err      *ValidationError
	fields   fieldScratch // for the field rules, pooled along
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
			return string(d.in[start : d.pos-1])
		}
		return string(s)
	case c == '-' || (c >= '0' && c <= '9'):
		start := d.pos
		d.number()
		if d.err != nil || !d.build {
			return nil
		}
		return json.Number(d.in[start:d.pos])
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
	var m map[string]any
	if d.build {
		m = map[string]any{}
	}
	base := len(d.keys)
	bigAt := -1
	defer func() {
		d.keys = d.keys[:base]
		if bigAt >= 0 {
			d.big = d.big[:bigAt]
		}
	}()
	d.ws()
	if d.pos < len(d.in) && d.in[d.pos] == '}' {
		d.pos++
		return m
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
		if d.build {
			k := string(d.in[start : d.pos-1])
			if escaped {
				k = string(s)
			}
			if _, dup := m[k]; dup {
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
			m[k] = v
		} else {
			raw := d.in[start : d.pos-1]
			if escaped {
				raw = s
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
			d.value(depth)
			if d.err != nil {
				return nil
			}
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
			return m
		default:
			d.fail(KeywordJSON, "invalid JSON: expected ',' or '}'")
			return nil
		}
	}
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
	var a []any
	if d.build {
		a = []any{}
	}
	d.ws()
	if d.pos < len(d.in) && d.in[d.pos] == ']' {
		d.pos++
		return a
	}
	for {
		v := d.value(depth)
		if d.err != nil {
			return nil
		}
		if d.build {
			a = append(a, v)
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
			return a
		default:
			d.fail(KeywordJSON, "invalid JSON: expected ',' or ']'")
			return nil
		}
	}
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
		c := d.in[d.pos]
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
		case c < utf8.RuneSelf:
			d.pos++
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
// above) and steps over it.
func (d *decoder) number() {
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
		return
	}
	if i < len(d.in) && d.in[i] == '.' {
		i++
		if i >= len(d.in) || d.in[i] < '0' || d.in[i] > '9' {
			d.pos = i
			d.fail(KeywordJSON, "invalid JSON: bad number")
			return
		}
		for i < len(d.in) && d.in[i] >= '0' && d.in[i] <= '9' {
			i++
		}
	}
	if i < len(d.in) && (d.in[i] == 'e' || d.in[i] == 'E') {
		i++
		if i < len(d.in) && (d.in[i] == '+' || d.in[i] == '-') {
			i++
		}
		if i >= len(d.in) || d.in[i] < '0' || d.in[i] > '9' {
			d.pos = i
			d.fail(KeywordJSON, "invalid JSON: bad number")
			return
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
			return
		}
	}
	if i-start > maxNumberLen {
		d.fail(KeywordNumber, "number longer than "+strconv.Itoa(maxNumberLen)+" characters")
		return
	}
	d.pos = i
}
