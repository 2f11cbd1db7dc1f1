package redact

import (
	"encoding/binary"
	"math/bits"
	"unicode/utf8"
)

// This file is the JSON lexer: it validates while it scans, so the rewriter
// never emits anything it has not checked (RFC 8259, UTF-8 only).

// String flags returned by scanString.
const (
	strEscaped  = 1 << iota // contains a backslash escape
	strNonASCII             // contains bytes >= 0x80 (already checked to be UTF-8)
)

// plain marks the bytes a string can contain without further checks.
var plain = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

func skipWS(src []byte, i int) int {
	for i < len(src) && src[i] <= ' ' { // normalised input: one compare
		switch src[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// scanString validates the string token starting at src[i] == '"' and returns
// the index just past its closing quote.
func scanString(src []byte, i int) (end int, flags uint8, err error) {
	start := i
	i++
	for {
		// Eight bytes at a time: flag quotes, backslashes, control
		// characters and non-ASCII bytes. The lowest flag is exact (the
		// subtraction tricks only raise false flags above a true one), so
		// it says where the next byte that needs a look is.
		const lo, hi = 0x0101010101010101, 0x8080808080808080
		for i+8 <= len(src) {
			x := binary.LittleEndian.Uint64(src[i:])
			q, b := x^(lo*'"'), x^(lo*'\\')
			if m := ((q-lo)&^q | (b-lo)&^b | (x-lo*0x20)&^x | x) & hi; m != 0 {
				i += bits.TrailingZeros64(m) >> 3
				goto special
			}
			i += 8
		}
		for i < len(src) && plain[src[i]] {
			i++
		}
	special:
		if i >= len(src) {
			return 0, 0, syntaxErr(start, "unterminated string")
		}
		switch c := src[i]; {
		case c == '"':
			return i + 1, flags, nil
		case c == '\\':
			flags |= strEscaped
			if i+1 >= len(src) {
				return 0, 0, syntaxErr(start, "unterminated string")
			}
			switch src[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(src) || !isHex4(src[i+2:i+6]) {
					return 0, 0, syntaxErr(i, "invalid \\u escape")
				}
				i += 6
			default:
				return 0, 0, syntaxErr(i, "invalid escape")
			}
		case c < 0x20:
			return 0, 0, syntaxErr(i, "control character in string")
		default:
			r, size := utf8.DecodeRune(src[i:])
			if r == utf8.RuneError && size <= 1 {
				return 0, 0, syntaxErr(i, "invalid UTF-8")
			}
			flags |= strNonASCII
			i += size
		}
	}
}

func isHex4(b []byte) bool {
	for _, c := range b[:4] {
		if !isHex(c) {
			return false
		}
	}
	return true
}

// appendString appends s (valid UTF-8) as a JSON string with the minimal
// escapes: quote, backslash and control characters, so the output stays in
// the normalised form the input contract promises.
func appendString(dst, s []byte) []byte {
	const hexDigits = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		case '\b':
			dst = append(dst, '\\', 'b')
		case '\f':
			dst = append(dst, '\\', 'f')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&15])
		}
		start = i + 1
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// numberEnd returns the end of the JSON number starting at b[i], or -1.
func numberEnd(b []byte, i int) int {
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i >= len(b):
		return -1
	case b[i] == '0':
		i++
	case b[i] >= '1' && b[i] <= '9':
		i++
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	default:
		return -1
	}
	if i < len(b) && b[i] == '.' {
		i++
		st := i
		for i < len(b) && isDigit(b[i]) {
			i++
		}
		if i == st {
			return -1
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		st := i
		for i < len(b) && isDigit(b[i]) {
			i++
		}
		if i == st {
			return -1
		}
	}
	return i
}

// isNumber reports whether b is exactly one JSON number (no spaces).
func isNumber(b []byte) bool { return len(b) > 0 && numberEnd(b, 0) == len(b) }

func scanLiteral(src []byte, i int) (int, error) {
	for _, lit := range [...]string{"true", "false", "null"} {
		if len(src)-i >= len(lit) && string(src[i:i+len(lit)]) == lit {
			return i + len(lit), nil
		}
	}
	return 0, syntaxErr(i, "invalid literal")
}

// skipValue validates the value at src[i] (depth = number of enclosing
// containers) and returns its end.
func skipValue(src []byte, i, depth, maxDepth int) (int, error) {
	if i >= len(src) {
		return 0, syntaxErr(i, "unexpected end of input")
	}
	switch c := src[i]; c {
	case '"':
		end, _, err := scanString(src, i)
		return end, err
	case '{', '[':
		if depth >= maxDepth {
			return 0, &InputError{Offset: i, Reason: "exceeds MaxDepth", Err: ErrTooDeep}
		}
		closer := byte('}')
		if c == '[' {
			closer = ']'
		}
		i = skipWS(src, i+1)
		if i < len(src) && src[i] == closer {
			return i + 1, nil
		}
		for {
			var err error
			if c == '{' {
				if i >= len(src) || src[i] != '"' {
					return 0, syntaxErr(i, "expected string key")
				}
				if i, _, err = scanString(src, i); err != nil {
					return 0, err
				}
				i = skipWS(src, i)
				if i >= len(src) || src[i] != ':' {
					return 0, syntaxErr(i, "expected ':' after object key")
				}
				i = skipWS(src, i+1)
			}
			if i, err = skipValue(src, i, depth+1, maxDepth); err != nil {
				return 0, err
			}
			i = skipWS(src, i)
			if i < len(src) && src[i] == ',' {
				i = skipWS(src, i+1)
				continue
			}
			if i < len(src) && src[i] == closer {
				return i + 1, nil
			}
			return 0, syntaxErr(i, "expected ',' or closing bracket")
		}
	case 't', 'f', 'n':
		return scanLiteral(src, i)
	default:
		end := numberEnd(src, i)
		if end < 0 {
			return 0, syntaxErr(i, "invalid value")
		}
		return end, nil
	}
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isHex(c byte) bool {
	return isDigit(c) || (c|0x20) >= 'a' && (c|0x20) <= 'f'
}

func isAlpha(c byte) bool { return (c|0x20) >= 'a' && (c|0x20) <= 'z' }

// isWord reports ASCII letters, digits and '_': characters that glue a
// candidate to its neighbours (so "TTNU1372314" is not a phone number).
func isWord(c byte) bool { return isDigit(c) || isAlpha(c) || c == '_' }
