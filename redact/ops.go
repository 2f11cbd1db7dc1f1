package redact

import (
	"encoding/base32"
	"encoding/hex"
	"unicode/utf8"
)

// This file holds the text operators: mask, truncate and pseudonym. They
// work on unescaped values and count Unicode code points, not bytes.

// appendMask appends v with all but the first keepFirst and last keepLast
// characters replaced by mask. A value too short to hide anything is masked
// entirely. The output has as many characters as v, so masking twice is
// the same as masking once.
func appendMask(dst, v []byte, keepFirst, keepLast int, mask []byte) []byte {
	n := utf8.RuneCount(v)
	if keepFirst+keepLast >= n {
		keepFirst, keepLast = 0, 0
	}
	head := runeOffset(v, keepFirst)                    // end of the kept head
	tail := len(v) - runeOffsetBack(v[head:], keepLast) // start of the kept tail
	dst = append(dst, v[:head]...)
	for range n - keepFirst - keepLast {
		dst = append(dst, mask...)
	}
	return append(dst, v[tail:]...)
}

// runeOffset returns the byte offset of the n-th character of v.
func runeOffset(v []byte, n int) int {
	i := 0
	for ; n > 0 && i < len(v); n-- {
		if v[i] < utf8.RuneSelf {
			i++
			continue
		}
		_, size := utf8.DecodeRune(v[i:])
		i += size
	}
	return i
}

// runeOffsetBack returns the length in bytes of the last n characters of v.
func runeOffsetBack(v []byte, n int) int {
	i := len(v)
	for ; n > 0 && i > 0; n-- {
		if v[i-1] < utf8.RuneSelf {
			i--
			continue
		}
		_, size := utf8.DecodeLastRune(v[:i])
		i -= size
	}
	return len(v) - i
}

// appendTruncate appends the first n characters of v.
func appendTruncate(dst, v []byte, n int) []byte {
	return append(dst, v[:runeOffset(v, n)]...)
}

var b32 = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// appendPseudonym appends the keyed pseudonym of v: HMAC-SHA-256 under the
// rule set's key, encoded and truncated. Base32 output never contains 0, 1,
// 8 or 9, so it cannot look like a phone number.
func (s *state) appendPseudonym(dst, v []byte, a *action) []byte {
	s.mac.Reset()
	s.mac.Write(v)
	s.sum = s.mac.Sum(s.sum[:0])
	n := len(dst)
	if a.hex {
		dst = hex.AppendEncode(dst, s.sum[:(a.length+1)/2])
	} else {
		dst = b32.AppendEncode(dst, s.sum[:(a.length*5+7)/8])
	}
	return dst[:n+a.length]
}
