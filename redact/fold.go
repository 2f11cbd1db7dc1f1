package redact

import (
	"unicode"
	"unicode/utf8"
)

// Look-alikes. The detectors read ASCII: digits, '-', ' ', '.', '@'. A
// value can say the same thing with other characters that look alike or
// are invisible: full-width digits and '＠' (Japanese and Chinese input
// methods type them), Arabic-Indic and other decimal digits, soft hyphens
// and non-breaking hyphens as separators, no-break and thin spaces,
// zero-width characters inside a number. Left alone they hide a phone
// number or an e-mail address from every detector.
//
// So a value with any non-ASCII byte is read through a folded view: each
// look-alike replaced by its ASCII character, invisible ones dropped, the
// rest kept. The detectors run on the view; their matches are mapped back
// to the value's own bytes, which are masked (rune by rune, so a
// full-width digit is one mask character) or pseudonymised in their
// folded form (the same number in full-width or ASCII digits gets the
// same pseudonym). Text outside a match is never changed. ASCII values
// are not copied.

// foldView is the folded view of a value and, for each of its bytes, the
// value's bytes it came from.
type foldView struct {
	b          []byte
	start, end []int32
}

// fold returns v's folded view, or v itself (and false) when v has nothing
// to fold.
func (s *state) fold(v []byte) ([]byte, bool) {
	// Find the first character to fold: most values have none (ASCII, or
	// text such as names and plates), and are not copied.
	first := -1
	for i := 0; i < len(v); {
		if v[i] < utf8.RuneSelf {
			i++
			continue
		}
		r, size := utf8.DecodeRune(v[i:])
		if _, ok := foldRune(r); ok {
			first = i
			break
		}
		i += size
	}
	if first < 0 {
		return v, false
	}
	f := &s.fv
	f.b, f.start, f.end = append(f.b[:0], v[:first]...), f.start[:0], f.end[:0]
	for k := range first {
		f.start = append(f.start, int32(k))
		f.end = append(f.end, int32(k+1))
	}
	for i := first; i < len(v); {
		if v[i] < utf8.RuneSelf {
			f.add(v[i], i, i+1)
			i++
			continue
		}
		r, size := utf8.DecodeRune(v[i:])
		switch c, ok := foldRune(r); {
		case ok && c == 0: // invisible: dropped
		case ok:
			f.add(c, i, i+size)
		default:
			for k := i; k < i+size; k++ {
				f.add(v[k], k, k+1)
			}
		}
		i += size
	}
	return f.b, true
}

func (f *foldView) add(c byte, start, end int) {
	f.b = append(f.b, c)
	f.start = append(f.start, int32(start))
	f.end = append(f.end, int32(end))
}

// unfold maps spans of the folded view back to the value's bytes.
func (s *state) unfold(spans [][2]int) {
	for k, sp := range spans {
		spans[k] = [2]int{int(s.fv.start[sp[0]]), int(s.fv.end[sp[1]-1])}
	}
}

// foldRune returns the ASCII character r looks like (0: r is invisible
// and dropped), or false if r is not folded.
func foldRune(r rune) (byte, bool) {
	switch r {
	case '\u00AD', '\u2010', '\u2011', '\u2012', '\u2013', '\u2212', '\uFE63': // soft hyphen, hyphens, dashes, minus signs
		return '-', true
	case '\u00A0', '\u2007', '\u2009', '\u202F', '\u3000': // no-break, figure, thin, narrow no-break, ideographic spaces
		return ' ', true
	case '\u200B', '\u200C', '\u200D', '\u2060', '\uFEFF': // zero-width characters
		return 0, true
	case '\uFE6B': // small commercial at
		return '@', true
	}
	if r >= '\uFF01' && r <= '\uFF5E' { // full-width forms of ASCII '!' to '~'
		return byte(r - 0xFEE0), true
	}
	if r > '9' && unicode.IsDigit(r) {
		return '0' + byte(digitValue(r)), true
	}
	return 0, false
}

// digitValue is the value of a decimal digit (Unicode category Nd): Nd
// comes in runs of ten from zero to nine, and its ranges start at a zero.
func digitValue(r rune) int {
	for _, rg := range unicode.Nd.R16 {
		if r >= rune(rg.Lo) && r <= rune(rg.Hi) {
			return int(r-rune(rg.Lo)) % 10
		}
	}
	for _, rg := range unicode.Nd.R32 {
		if r >= rune(rg.Lo) && r <= rune(rg.Hi) {
			return int(r-rune(rg.Lo)) % 10
		}
	}
	return 0
}
