package normalize

import (
	"bytes"
	"slices"
	"strconv"
	"unicode/utf8"
)

// RFC 8785 (JCS) support: ECMAScript number serialisation and member sorting by UTF-16 code
// units. Strings need nothing extra: the canonical escaping in string.go is already JCS's.

// appendES appends f as ECMAScript's Number.prototype.toString writes it (ECMA-262, section
// Number::toString): the shortest digits that round-trip, plain notation for decimal exponents
// in [-6, 21), exponent notation otherwise. f must be finite.
func appendES(dst []byte, f float64) []byte {
	if f == 0 {
		return append(dst, '0') // also for -0
	}
	var buf [32]byte
	b := strconv.AppendFloat(buf[:0], f, 'e', -1, 64) // -d.ddde±xx, shortest round-trip digits
	if b[0] == '-' {
		dst = append(dst, '-')
		b = b[1:]
	}
	e := len(b) - 1
	for b[e] != 'e' {
		e--
	}
	x := 0 // the exponent; strconv's digits are well-formed
	for _, d := range b[e+2:] {
		x = x*10 + int(d-'0')
	}
	if b[e+1] == '-' {
		x = -x
	}
	// Digits without the point: b[0] and b[2:e].
	var dig [24]byte
	digs := append(dig[:0], b[0])
	if e > 1 {
		digs = append(digs, b[2:e]...)
	}
	k, n := len(digs), x+1 // value = 0.digs * 10^n
	switch {
	case k <= n && n <= 21:
		dst = append(dst, digs...)
		for ; n > k; n-- {
			dst = append(dst, '0')
		}
	case 0 < n && n <= 21:
		dst = append(dst, digs[:n]...)
		dst = append(dst, '.')
		dst = append(dst, digs[n:]...)
	case -6 < n && n <= 0:
		dst = append(dst, '0', '.')
		for ; n < 0; n++ {
			dst = append(dst, '0')
		}
		dst = append(dst, digs...)
	default:
		dst = append(dst, digs[0])
		if k > 1 {
			dst = append(dst, '.')
			dst = append(dst, digs[1:]...)
		}
		dst = append(dst, 'e')
		if n-1 >= 0 {
			dst = append(dst, '+')
		}
		dst = strconv.AppendInt(dst, int64(n-1), 10)
	}
	return dst
}

// memberRef locates one member of an open object in the output, relative to the message start.
type memberRef struct {
	mstart uint32 // the key's opening quote
	kend   uint32 // the key's closing quote
	mend   uint32 // just past the member's value, set when sorting
}

// sortMembers reorders the members of the object being closed by their keys' UTF-16 code
// units (RFC 8785 section 3.2.3). Members are contiguous in dst, separated by single commas;
// nested objects are already sorted because they closed first.
func (s *state) sortMembers(dst []byte, f *frame, base int) []byte {
	keys := s.members[f.memStart:]
	if len(keys) < 2 {
		return dst
	}
	end := uint32(len(dst) - base)
	for j := range keys[:len(keys)-1] {
		keys[j].mend = keys[j+1].mstart - 1
	}
	keys[len(keys)-1].mend = end
	out := dst[base:]
	cmp := func(a, b memberRef) int {
		return compareUTF16(out[a.mstart+1:a.kend], out[b.mstart+1:b.kend])
	}
	if slices.IsSortedFunc(keys, cmp) {
		return dst // common for machine-written payloads; no copy needed
	}
	slices.SortFunc(keys, cmp)
	region := uint32(f.start + 1) // first byte after '{'
	s.tmp = append(s.tmp[:0], out[region:end]...)
	dst = dst[:base+int(region)]
	for j, k := range keys {
		if j > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, s.tmp[k.mstart-region:k.mend-region]...)
	}
	return dst
}

// compareUTF16 orders two canonical JSON string contents (escapes as str writes them) by the
// UTF-16 code units of the strings they denote.
func compareUTF16(a, b []byte) int {
	// Fast path: skip the common prefix; without a backslash in it, the first difference is at
	// a UTF-8 boundary once continuation bytes are backed over, and only one character from
	// each side needs decoding.
	n := min(len(a), len(b))
	p := 0
	for p < n && a[p] == b[p] {
		p++
	}
	if p == n {
		return len(a) - len(b) // one is a prefix of the other, at a character boundary
	}
	if bytes.IndexByte(a[:p], '\\') >= 0 {
		return compareUTF16Slow(a, b)
	}
	if a[p] < utf8.RuneSelf && b[p] < utf8.RuneSelf && a[p] != '\\' && b[p] != '\\' {
		return int(a[p]) - int(b[p])
	}
	for p > 0 && a[p]&0xC0 == 0x80 {
		p--
	}
	ra, _ := canonicalRune(a[p:])
	rb, _ := canonicalRune(b[p:])
	return compareRunes(ra, rb)
}

// compareRunes orders two different runes by their UTF-16 code units.
func compareRunes(ra, rb rune) int {
	if ua, ub := firstUnit(ra), firstUnit(rb); ua != ub {
		return int(ua) - int(ub)
	}
	return int(ra) - int(rb) // same high surrogate: the low ones order like the runes
}

// compareUTF16Slow is compareUTF16 character by character, for keys with escapes.
func compareUTF16Slow(a, b []byte) int {
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		ra, na := canonicalRune(a[i:])
		rb, nb := canonicalRune(b[j:])
		if ra != rb {
			return compareRunes(ra, rb)
		}
		i, j = i+na, j+nb
	}
	return (len(a) - i) - (len(b) - j)
}

// canonicalRune decodes one character of canonical string content.
func canonicalRune(p []byte) (rune, int) {
	if p[0] != '\\' {
		return utf8.DecodeRune(p)
	}
	switch p[1] {
	case 'b':
		return '\b', 2
	case 'f':
		return '\f', 2
	case 'n':
		return '\n', 2
	case 'r':
		return '\r', 2
	case 't':
		return '\t', 2
	case 'u': // \u00xx
		return rune(hexVal[p[4]])<<4 | rune(hexVal[p[5]]), 6
	}
	return rune(p[1]), 2 // \" or \\
}

// firstUnit is the first UTF-16 code unit of r.
func firstUnit(r rune) rune {
	if r >= 0x10000 {
		return 0xD800 + (r-0x10000)>>10
	}
	return r
}
