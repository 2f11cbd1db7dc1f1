package normalize

import (
	"encoding/binary"
	"math/bits"
	"unicode/utf8"
)

// plain marks bytes that are copied through a string unchanged without a closer look:
// printable ASCII other than '"' and '\\'.
var plain = func() (t [256]bool) {
	for b := 0x20; b < 0x80; b++ {
		t[b] = b != '"' && b != '\\'
	}
	return t
}()

const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// specialMask flags, in the high bit of each byte of x, the bytes that end a plain run: below
// 0x20, '"', '\\' or non-ASCII. Borrows can set false flags, but only above a true one, so the
// lowest flag is exact.
func specialMask(x uint64) uint64 {
	q := x ^ (lsb * '"')
	bs := x ^ (lsb * '\\')
	m := (x - lsb*0x20) &^ x // bytes below 0x20
	m |= (q - lsb) &^ q      // '"'
	m |= (bs - lsb) &^ bs    // '\\'
	return (m | x) & msb     // x: non-ASCII
}

// plainEnd returns the index of the first byte at or after i that is not plain, or len(src).
// The parser's two hottest spots (keys, string values) repeat its loop inline.
func plainEnd(src []byte, i int) int {
	for i >= 0 && i <= len(src)-8 {
		if m := specialMask(binary.LittleEndian.Uint64(src[i:])); m != 0 {
			return i + bits.TrailingZeros64(m)>>3
		}
		i += 8
	}
	return plainTail(src, i)
}

// plainTail is plainEnd for the last few bytes of the input.
func plainTail(src []byte, i int) int {
	for uint(i) < uint(len(src)) && plain[src[i]] {
		i++
	}
	return i
}

// str scans the string whose content starts at src[i] (just after the opening quote). With emit
// it appends the content in canonical form to out: escapes that are not needed are decoded, the
// needed ones are written as \" \\ \b \f \n \r \t or lowercase \u00xx. It returns the index after
// the closing quote, or the offset of the problem.
func (s *state) str(out, src []byte, i int, emit bool) ([]byte, int, Reason) {
	start := i
	run := i // start of the bytes not yet copied to out
	L := len(src)
	for {
		if i = plainEnd(src, i); i >= L {
			return out, L, ReasonUnexpectedEnd
		}
		switch b := src[i]; {
		case b == '"':
			if i-start > s.cfg.maxString {
				return out, start - 1, ReasonStringTooLong
			}
			if emit {
				out = append(out, src[run:i]...)
			}
			return out, i + 1, reasonNone
		case b == '\\':
			if emit {
				out = append(out, src[run:i]...)
			}
			var r Reason
			if out, i, r = s.escape(out, src, i, emit); r != reasonNone {
				return out, i, r
			}
			run = i
		case b < 0x20:
			return out, i, ReasonControlChar
		default:
			n, r := utf8Seq(src, i)
			if r == reasonNone {
				i += n
				continue
			}
			if !s.cfg.replace {
				return out, i, r
			}
			// RFC 8259 output: one U+FFFD per bad byte, as encoding/json decodes it.
			s.rewrite = true
			if emit {
				out = append(out, src[run:i]...)
				out = append(out, "\uFFFD"...)
			}
			i++
			run = i
		}
	}
}

// escape handles the escape sequence at src[i] == '\\' and returns the index after it.
func (s *state) escape(out, src []byte, i int, emit bool) ([]byte, int, Reason) {
	s.rewrite = true // re-encoding is idempotent, so even canonical escapes may take this path
	if i+1 >= len(src) {
		return out, len(src), ReasonUnexpectedEnd
	}
	switch e := src[i+1]; e {
	case '"', '\\', 'b', 'f', 'n', 'r', 't':
		if emit {
			out = append(out, '\\', e)
		}
		return out, i + 2, reasonNone
	case '/':
		if emit {
			out = append(out, '/')
		}
		return out, i + 2, reasonNone
	case 'u':
	default:
		return out, i, ReasonInvalidEscape
	}
	u, r := hex4(src, i+2)
	if r != reasonNone {
		return out, i, r
	}
	next := i + 6
	switch {
	case u < 0x20 || u == '"' || u == '\\':
		if emit {
			out = appendEscaped(out, byte(u))
		}
	case u >= 0xD800 && u < 0xDC00:
		if next+6 <= len(src) && src[next] == '\\' && src[next+1] == 'u' {
			if lo, r := hex4(src, next+2); r == reasonNone && lo >= 0xDC00 && lo < 0xE000 {
				if emit {
					out = utf8.AppendRune(out, 0x10000+(u-0xD800)<<10+(lo-0xDC00))
				}
				return out, next + 6, reasonNone
			}
		}
		return s.loneSurrogate(out, i, next, emit)
	case u >= 0xDC00 && u < 0xE000:
		return s.loneSurrogate(out, i, next, emit)
	default:
		if emit {
			out = utf8.AppendRune(out, u)
		}
	}
	return out, next, reasonNone
}

// loneSurrogate rejects an unpaired \uXXXX surrogate at i, or (RFC 8259 output) writes U+FFFD.
func (s *state) loneSurrogate(out []byte, i, next int, emit bool) ([]byte, int, Reason) {
	if !s.cfg.replace {
		return out, i, ReasonLoneSurrogate
	}
	s.rewrite = true
	if emit {
		out = append(out, "\uFFFD"...)
	}
	return out, next, reasonNone
}

var hexVal = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xFF
	}
	for b := '0'; b <= '9'; b++ {
		t[b] = byte(b - '0')
	}
	for b := 'a'; b <= 'f'; b++ {
		t[b] = byte(b - 'a' + 10)
		t[b-'a'+'A'] = byte(b - 'a' + 10)
	}
	return t
}()

// hex4 decodes the four hex digits at src[i:].
func hex4(src []byte, i int) (rune, Reason) {
	var u rune
	for k := i; k < i+4; k++ {
		if k >= len(src) {
			return 0, ReasonUnexpectedEnd
		}
		h := hexVal[src[k]]
		if h == 0xFF {
			return 0, ReasonInvalidEscape
		}
		u = u<<4 | rune(h)
	}
	return u, reasonNone
}

// appendEscaped writes a byte that must be escaped in canonical form: '"', '\\' or a control
// character (the two-letter form where JSON has one, else lowercase \u00xx as RFC 8785 wants).
func appendEscaped(out []byte, b byte) []byte {
	switch b {
	case '"', '\\':
		return append(out, '\\', b)
	case '\b':
		return append(out, '\\', 'b')
	case '\f':
		return append(out, '\\', 'f')
	case '\n':
		return append(out, '\\', 'n')
	case '\r':
		return append(out, '\\', 'r')
	case '\t':
		return append(out, '\\', 't')
	}
	const hex = "0123456789abcdef"
	return append(out, '\\', 'u', '0', '0', hex[b>>4], hex[b&0xF])
}

// utf8Seq checks the multi-byte UTF-8 sequence starting at src[i] (src[i] >= 0x80) and returns
// its length. A UTF-8 encoded surrogate (ED A0..BF xx) is reported as ReasonLoneSurrogate.
func utf8Seq(src []byte, i int) (int, Reason) {
	b := src[i]
	rest := len(src) - i
	switch {
	case b < 0xC2: // continuation byte, or overlong C0/C1 lead
		return 0, ReasonInvalidUTF8
	case b < 0xE0:
		if rest >= 2 && src[i+1]&0xC0 == 0x80 {
			return 2, reasonNone
		}
	case b < 0xF0:
		if rest < 3 || src[i+2]&0xC0 != 0x80 {
			return 0, ReasonInvalidUTF8
		}
		b1 := src[i+1]
		switch {
		case b == 0xE0 && b1 >= 0xA0 && b1 <= 0xBF,
			b != 0xE0 && b != 0xED && b1&0xC0 == 0x80,
			b == 0xED && b1 >= 0x80 && b1 <= 0x9F:
			return 3, reasonNone
		case b == 0xED && b1 >= 0xA0 && b1 <= 0xBF:
			return 0, ReasonLoneSurrogate
		}
	case b < 0xF5:
		if rest < 4 || src[i+2]&0xC0 != 0x80 || src[i+3]&0xC0 != 0x80 {
			return 0, ReasonInvalidUTF8
		}
		b1 := src[i+1]
		switch {
		case b == 0xF0 && b1 >= 0x90 && b1 <= 0xBF,
			b > 0xF0 && b < 0xF4 && b1&0xC0 == 0x80,
			b == 0xF4 && b1 >= 0x80 && b1 <= 0x8F:
			return 4, reasonNone
		}
	}
	return 0, ReasonInvalidUTF8
}
