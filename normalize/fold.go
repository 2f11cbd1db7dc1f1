package normalize

import (
	"bytes"
	"encoding/binary"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	"golang.org/x/text/cases"
	"golang.org/x/text/transform"
	"golang.org/x/text/unicode/norm"
)

// Key folding. Unless Options.ExactKeys, keys are compared as FoldKey folds them,
// NFKC(casefold(NFKC(key))), so "admin", "ADMIN" and "ＡＤＭＩＮ" (fullwidth) are one key. The
// inner NFKC makes compatibility characters (fullwidth forms, ligatures, mathematical letters)
// fold like the letters they stand for; the outer one brings the folded text back to one form.
// Only the comparison uses the folded form: the output keeps the key as sent.
//
// Most keys are ASCII, for which NFKC is the identity and folding is lowercasing. So the
// duplicate check never copies an ASCII key: it stays where it is (in the input, or decoded in
// the arena) and every comparison, tag and hash lowercases ASCII letters on the fly (lower8,
// equalLower, hashKey). Only keys with non-ASCII bytes are folded in full into the arena.

// FoldKey returns the folded form of an object key (its text, escapes decoded):
// NFKC(casefold(NFKC(key))). Two keys in one object are a duplicate for a Normalizer without
// ExactKeys exactly when their folded forms are equal. Other engines that must find a key the
// way case-insensitive decoders do (redaction paths, field rules) fold with it, so that every
// stage agrees on which keys are the same.
func FoldKey(key string) string {
	return string(AppendFoldedKey(nil, []byte(key)))
}

// AppendFoldedKey appends FoldKey(key) to dst and returns the extended slice. An ASCII key is
// lowercased; others are folded with pooled scratch space, so a call allocates nothing once warm
// unless dst must grow. It is safe for concurrent use.
func AppendFoldedKey(dst, key []byte) []byte {
	for _, b := range key {
		if b >= utf8.RuneSelf {
			f := folders.Get().(*folder)
			dst = f.appendFold(dst, key)
			f.release()
			folders.Put(f)
			return dst
		}
	}
	for _, b := range key {
		dst = append(dst, lowerASCII[b])
	}
	return dst
}

var folders = sync.Pool{New: func() any { return new(folder) }}

// folder folds non-ASCII keys. Its Caser is stateful, so each folder is used by one goroutine
// at a time (one per pooled state, or from the folders pool).
type folder struct {
	caser     cases.Caser
	ready     bool
	it        norm.Iter
	tmp, tmp2 []byte
}

// appendFold appends NFKC(casefold(NFKC(key))) to dst.
func (f *folder) appendFold(dst, key []byte) []byte {
	if out, ok := appendSimpleFold(dst, key); ok {
		return out
	}
	if !f.ready {
		f.caser, f.ready = cases.Fold(), true
	}
	f.tmp = f.nfkc(f.tmp[:0], key)
	if out, ok := appendSimpleFold(dst, f.tmp); ok {
		// Fullwidth forms, ligatures and most combining sequences are simple once in NFKC.
		return out
	}
	f.tmp2 = appendTransform(&f.caser, f.tmp2[:0], f.tmp)
	return f.nfkc(dst, f.tmp2)
}

// nfkc appends NFKC(src) to dst. norm.Iter keeps its reorder buffer in the folder, where
// norm.Form.Append would allocate one per call.
func (f *folder) nfkc(dst, src []byte) []byte {
	f.it.Init(norm.NFKC, src)
	for !f.it.Done() {
		dst = append(dst, f.it.Next()...)
	}
	return dst
}

func (f *folder) release() {
	f.tmp = trim(f.tmp[:0], retainBytes)
	f.tmp2 = trim(f.tmp2[:0], retainBytes)
}

// foldKey returns where the comparable form of the key at off (see arenaBit) with length n is:
// in place for an ASCII key (compared lowercased) or a key that is its own fold, else its fold
// appended to s.arena in canonical escaped form (as str writes keys).
func (s *state) foldKey(off, n uint32, src []byte) (uint32, uint32) {
	canon := s.keyBytes(off, n, src)
	ascii := true
	for _, b := range canon {
		if b >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if ascii {
		// NFKC is the identity on ASCII, and folding is lowercasing, which every comparison
		// does. Canonical escapes use lowercase letters only (\n, \u001f), and lowercasing
		// never turns literal text into an escape, so the escaped form compares exactly.
		return off, n
	}
	// Unescape, fold, re-escape: NFKC can turn a character into '"' or '\\' (U+FF02, U+FF3C),
	// which must then compare equal to the escaped ASCII key.
	raw := canon
	escaped := bytes.IndexByte(canon, '\\') >= 0
	if escaped {
		s.tmp = s.tmp[:0]
		for i := 0; i < len(canon); {
			r, w := canonicalRune(canon[i:])
			s.tmp = utf8.AppendRune(s.tmp, r)
			i += w
		}
		raw = s.tmp
	}
	s.folded = s.folder.appendFold(s.folded[:0], raw)
	if !escaped && bytes.Equal(s.folded, canon) {
		return off, n // its own fold (most non-ASCII keys: Hangul, kana, lower-case accents)
	}
	start := len(s.arena)
	for _, b := range s.folded {
		if b < 0x20 || b == '"' || b == '\\' {
			s.arena = appendEscaped(s.arena, b)
		} else {
			s.arena = append(s.arena, b)
		}
	}
	return uint32(start) | arenaBit, uint32(len(s.arena) - start)
}

// Simple runes. Full NFKC and case folding cost about 100 ns a character in x/text, which would
// make a payload of non-ASCII keys some 50 times dearer to check than an ASCII one. Most
// characters in keys are simple: NFKC leaves them alone, nothing before them can combine with
// them, and they fold to one character that is simple too (É to é, Hangul syllables and kana to
// themselves). A key made of ASCII and simple runes folds character by character, through a
// table built one 256-rune block of the BMP at a time, on first use, and shared by the process
// (at most 256 blocks of 512 bytes). Anything else takes the full path.

// foldBlocks[r>>8][r&0xff] is the fold of the simple BMP rune r, or 0 when r is not simple.
var foldBlocks [256]atomic.Pointer[[256]uint16]

// appendSimpleFold appends the fold of key to dst if key is ASCII and simple runes only, and
// reports whether it did; otherwise dst is returned unchanged.
func appendSimpleFold(dst, key []byte) ([]byte, bool) {
	start := len(dst)
	for i := 0; i < len(key); {
		if b := key[i]; b < utf8.RuneSelf {
			dst = append(dst, lowerASCII[b])
			i++
			continue
		}
		r, w := utf8.DecodeRune(key[i:])
		if r >= 0x10000 || w == 1 { // supplementary planes, invalid UTF-8
			return dst[:start], false
		}
		blk := foldBlocks[r>>8].Load()
		if blk == nil {
			blk = buildFoldBlock(r >> 8)
		}
		f := blk[r&0xff]
		if f == 0 {
			return dst[:start], false
		}
		dst = utf8.AppendRune(dst, rune(f))
		i += w
	}
	return dst, true
}

// buildFoldBlock computes the runes hi<<8 .. hi<<8+255 with the full definition. Goroutines
// racing to build one block compute the same table; one is kept.
func buildFoldBlock(hi rune) *[256]uint16 {
	t := new([256]uint16)
	c := cases.Fold()
	for lo := range rune(256) {
		r := hi<<8 | lo
		if r < utf8.RuneSelf || r >= 0xD800 && r < 0xE000 || !simpleRune(r) {
			continue
		}
		f := c.String(string(r))
		fr, size := utf8.DecodeRuneInString(f)
		if size == len(f) && fr < 0x10000 && simpleRune(fr) && c.String(f) == f {
			t[lo] = uint16(fr)
		}
	}
	foldBlocks[hi].CompareAndSwap(nil, t)
	return foldBlocks[hi].Load()
}

// simpleRune reports whether NFKC leaves r alone and nothing before it can combine with it (so
// no neighbour changes it either: a rune can only compose with one that combines backwards).
func simpleRune(r rune) bool {
	s := string(r)
	return norm.NFKC.IsNormalString(s) && norm.NFKC.PropertiesString(s).BoundaryBefore()
}

// lowerASCII maps 'A'-'Z' to 'a'-'z' and every other byte to itself.
var lowerASCII = func() (t [256]byte) {
	for i := range t {
		t[i] = byte(i)
		if i >= 'A' && i <= 'Z' {
			t[i] += 'a' - 'A'
		}
	}
	return t
}()

// lower8 lowercases the ASCII letters among the 8 bytes of x and leaves every other byte,
// including those of multi-byte UTF-8 sequences, as it is.
func lower8(x uint64) uint64 {
	const ones, msb = 0x0101010101010101, 0x8080808080808080
	h := x &^ msb // the low 7 bits of each byte: the sums below cannot carry into the next byte
	upper := (h + (0x80-'A')*ones) &^ (h + (0x80-'Z'-1)*ones) &^ x & msb
	return x | upper>>2 // 0x80>>2 is 0x20, the case bit
}

// appendLower appends b with its ASCII letters lowercased to dst, 8 bytes at a time.
func appendLower(dst, b []byte) []byte {
	for len(b) >= 8 {
		dst = binary.LittleEndian.AppendUint64(dst, lower8(binary.LittleEndian.Uint64(b)))
		b = b[8:]
	}
	for _, c := range b {
		dst = append(dst, lowerASCII[c])
	}
	return dst
}

// hasUpper reports whether b has an ASCII upper-case letter.
func hasUpper(b []byte) bool {
	for ; len(b) >= 8; b = b[8:] {
		if x := binary.LittleEndian.Uint64(b); lower8(x) != x {
			return true
		}
	}
	for _, c := range b {
		if c-'A' < 26 {
			return true
		}
	}
	return false
}

// equalLower reports whether a and b are equal once their ASCII letters are lowercased.
func equalLower(a, b []byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if lowerASCII[a[i]] != lowerASCII[b[i]] {
			return false
		}
	}
	return true
}

// appendTransform appends t applied to src to dst, growing dst as needed, without the
// allocations of transform.Append-style helpers.
func appendTransform(t transform.Transformer, dst, src []byte) []byte {
	t.Reset()
	room := len(src) + 16
	for {
		if cap(dst)-len(dst) < room {
			dst = append(dst[:cap(dst)], make([]byte, room)...)[:len(dst)]
		}
		nDst, nSrc, err := t.Transform(dst[len(dst):cap(dst)], src, true)
		dst = dst[:len(dst)+nDst]
		src = src[nSrc:]
		if err == transform.ErrShortDst && nDst+nSrc == 0 {
			// No progress: the transformer wants more room for one segment. Give it more,
			// within reason; past that, keep the rest as it is.
			if room > 4*len(src)+1024 {
				return append(dst, src...)
			}
			room *= 2
			continue
		}
		if err != transform.ErrShortDst {
			// Fold never fails on valid UTF-8. On anything else keep the rest as it is: the
			// result still compares deterministically, and no byte of the key is dropped.
			if err != nil {
				dst = append(dst, src...)
			}
			return dst
		}
	}
}
