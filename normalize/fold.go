package normalize

import (
	"unicode/utf8"

	"golang.org/x/text/transform"
	"golang.org/x/text/unicode/norm"
)

// Key folding (Options.FoldKeys): keys are compared as NFKC(casefold(NFKC(key))), so "admin",
// "ADMIN" and "ＡＤＭＩＮ" (fullwidth) are one key. Only the comparison uses the folded form;
// the output keeps the key as sent.

// foldKey appends the folded form of a key in canonical escaped form (as str writes it) to
// s.arena, itself in canonical escaped form, and returns where it is.
func (s *state) foldKey(canon []byte) (off, n uint32) {
	start := len(s.arena)
	ascii := true
	for _, b := range canon {
		if b >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if ascii {
		// For ASCII, NFKC is the identity and folding is lowercasing; canonical escapes use
		// lowercase letters only, so lowercasing the escaped form is exact.
		for _, b := range canon {
			if b >= 'A' && b <= 'Z' {
				b += 'a' - 'A'
			}
			s.arena = append(s.arena, b)
		}
		return uint32(start) | arenaBit, uint32(len(s.arena) - start)
	}
	// Unescape, normalise, re-escape: NFKC can turn a character into '"' or '\\' (U+FF02, U+FF3C),
	// which must then compare equal to the escaped ASCII key.
	s.tmp = s.tmp[:0]
	for i := 0; i < len(canon); {
		r, w := canonicalRune(canon[i:])
		s.tmp = utf8.AppendRune(s.tmp, r)
		i += w
	}
	s.tmp2 = norm.NFKC.Append(s.tmp2[:0], s.tmp...)
	s.tmp = appendTransform(&s.caser, s.tmp[:0], s.tmp2)
	s.tmp2 = norm.NFKC.Append(s.tmp2[:0], s.tmp...)
	for _, b := range s.tmp2 {
		if b < 0x20 || b == '"' || b == '\\' {
			s.arena = appendEscaped(s.arena, b)
		} else {
			s.arena = append(s.arena, b)
		}
	}
	return uint32(start) | arenaBit, uint32(len(s.arena) - start)
}

// appendTransform appends t applied to src to dst, growing dst as needed, without the
// allocations of transform.Append-style helpers.
func appendTransform(t transform.Transformer, dst, src []byte) []byte {
	t.Reset()
	for {
		if cap(dst)-len(dst) < len(src)+16 {
			dst = append(dst[:cap(dst)], make([]byte, len(src)+16)...)[:len(dst)]
		}
		nDst, nSrc, err := t.Transform(dst[len(dst):cap(dst)], src, true)
		dst = dst[:len(dst)+nDst]
		src = src[nSrc:]
		if err != transform.ErrShortDst {
			// Fold never fails on valid UTF-8; on any other error keep what was produced,
			// which still compares deterministically.
			return dst
		}
	}
}
