package normalize

import (
	"encoding/binary"
	"math"
	"math/bits"
	"strconv"
	"unsafe"
)

// maxSafeInteger is 2^53-1, the largest integer RFC 7493 section 2.2 calls interoperable, as
// text: integer literals are range-checked by comparing digits, never by parsing.
const maxSafeInteger = "9007199254740991"

const maxSafeFloat = 1<<53 - 1

// number scans the number at src[i] and returns the index after it, or the offset of the
// problem. Numbers are canonical as written, except in JCS output: then s.esValue is set and
// s.esFloat holds the value to write in ECMAScript form instead.
func (s *state) number(src []byte, i int) (int, Reason) {
	c := s.cfg
	L := len(src)
	start := i
	neg := src[i] == '-'
	if neg {
		if i++; i >= L {
			return L, ReasonUnexpectedEnd
		}
		if src[i] == 'I' {
			return start, ReasonNonFinite
		}
	}
	intStart := i
	switch b := src[i]; {
	case b == '0':
		i++
		if i < L && isDigit(src[i]) {
			return intStart, ReasonInvalidNumber // leading zero
		}
	case b >= '1' && b <= '9':
		i++
		for i < L && isDigit(src[i]) {
			i++
		}
	default:
		return i, ReasonInvalidNumber
	}
	intEnd := i
	fracStart, fracEnd := i, i
	if i < L && src[i] == '.' {
		i++
		if fracStart, i = i, digits(src, i); i == fracStart {
			return i, needDigit(src, i)
		}
		fracEnd = i
	}
	expStart, expEnd, expNeg := i, i, false
	if i < L && (src[i] == 'e' || src[i] == 'E') {
		i++
		if i < L && (src[i] == '+' || src[i] == '-') {
			expNeg = src[i] == '-'
			i++
		}
		if expStart, i = i, digits(src, i); i == expStart {
			return i, needDigit(src, i)
		}
		expEnd = i
		s.exponent = true
	}
	if (intEnd-intStart)+(fracEnd-fracStart)+(expEnd-expStart) > c.maxDigits {
		return start, ReasonNumberTooLong
	}
	s.esValue = false

	if fracEnd == fracStart && expEnd == expStart {
		// An integer literal: parsers disagree beyond 2^53 (int64, float64, bignum), so the
		// default rejects it rather than letting each consumer pick its own value.
		if c.checkRange {
			d := src[intStart:intEnd]
			if len(d) > len(maxSafeInteger) || len(d) == len(maxSafeInteger) && string(d) > maxSafeInteger {
				return start, ReasonNumberTooLarge
			}
		}
		if c.jcs && neg && src[intStart] == '0' {
			s.esValue, s.esFloat = true, 0 // ECMAScript prints -0 as 0
		}
		return i, reasonNone
	}

	if c.jcs {
		// RFC 8785 needs a binary64. ECMAScript prints magnitudes from 2^53 up to 1e21 as integer
		// literals, which the policy above rejects on input; rejecting them here keeps the
		// output itself within the policy (and JCS idempotent).
		f := parseFloat(src[start:i])
		if a := math.Abs(f); a > maxSafeFloat && a < 1e21 || math.IsInf(f, 0) {
			return start, ReasonNumberTooLarge
		}
		s.esValue, s.esFloat = true, f
		return i, reasonNone
	}
	if c.checkRange && overflows(src[start:i], src[intStart:intEnd], src[fracStart:fracEnd], src[expStart:expEnd], expNeg) {
		return start, ReasonNumberTooLarge
	}
	return i, reasonNone
}

func isDigit(b byte) bool { return b >= '0' && b <= '9' }

func digits(src []byte, i int) int {
	for i < len(src) && isDigit(src[i]) {
		i++
	}
	return i
}

// skipDigits is digits eight bytes at a time: telemetry floats carry many decimals.
func skipDigits(src []byte, i int) int {
	for ; i >= 0 && i <= len(src)-8; i += 8 {
		x := binary.LittleEndian.Uint64(src[i:])
		// High bit set in bytes below '0' (borrow) or above '9' (carry); carries and borrows
		// only travel upwards, so the lowest flag is exact.
		if m := ((x - lsb*'0') | (x + lsb*(0x7F-'9'))) & msb; m != 0 {
			return i + bits.TrailingZeros64(m)>>3
		}
	}
	return digits(src, i)
}

func needDigit(src []byte, i int) Reason {
	if i >= len(src) {
		return ReasonUnexpectedEnd
	}
	return ReasonInvalidNumber
}

// overflows reports whether a float literal exceeds binary64's range. It estimates the decimal
// exponent from the digits and only parses the rare literal within a factor of ten of the limit,
// so a huge exponent costs nothing. Underflow (1e-400 reads as 0 everywhere) is accepted.
func overflows(lit, intPart, frac, exp []byte, expNeg bool) bool {
	// The value is 0.d1d2... * 10^p, with d1 the first non-zero digit.
	var p int
	if intPart[0] != '0' {
		p = len(intPart)
	} else {
		z := 0
		for z < len(frac) && frac[z] == '0' {
			z++
		}
		if z == len(frac) {
			return false // zero
		}
		p = -z
	}
	e := 0
	for _, d := range exp {
		if e < 1e9 { // saturate: anything this large is decided by the sign alone
			e = e*10 + int(d-'0')
		}
	}
	if expNeg {
		p -= e
	} else {
		p += e
	}
	switch {
	case p <= 308: // below 1e308 < MaxFloat64
		return false
	case p >= 310: // at least 1e309
		return true
	}
	return math.IsInf(parseFloat(lit), 0)
}

// parseFloat parses a literal the grammar has already checked. unsafe.String avoids copying the
// bytes into a string for every number; strconv does not retain its argument.
func parseFloat(lit []byte) float64 {
	f, _ := strconv.ParseFloat(unsafe.String(&lit[0], len(lit)), 64)
	return f
}

// nonDigits flags, in the high bit of each byte of x, the bytes that are not ASCII digits. Unlike
// skipDigits' test it is exact in every byte, not just the lowest flagged one (the arithmetic
// cannot carry or borrow across bytes), so the parser's number fast path can also read the flag
// after a decimal point from the same word.
func nonDigits(x uint64) uint64 {
	ge0 := (x | msb) - lsb*'0'         // high bit set where x&0x7F >= '0'
	gt9 := (x &^ msb) + lsb*(0x7F-'9') // high bit set where x&0x7F > '9'
	return (^ge0 | gt9 | x) & msb
}
