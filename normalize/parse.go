package normalize

import (
	"encoding/binary"
	"math/bits"
)

// The parser is one loop over the input with an explicit stack (no recursion, so depth costs
// a bounded array, not goroutine stack). It never builds a tree. It is written as three labelled
// states, value / next / member, joined by goto: member parsing is inline because it runs for
// every key, and a call per key measurably costs.

// frame is one open array or object.
type frame struct {
	obj        bool
	n          int                 // members or elements seen so far
	arenaStart int                 // len(state.arena) when the object opened
	start      int                 // offset of '{' in the output from the message start (JCS)
	memStart   int                 // index of this object's first entry in state.members (JCS)
	filter     [4]uint64           // duplicate-key filter over the first linearKeys keys
	lin        *[linearKeys]keyRef // the first linearKeys keys; allocated once per depth
	keyStart   int                 // index in state.keys of this object's keys (hash phase)
	tab        []uint32            // duplicate-key hash set (hash phase)
}

// numberByte marks bytes that may continue a number: after the fast path stops at one, the
// full scanner takes over (exponent, a second '.', a digit after a leading zero).
var numberByte = [256]bool{'.': true, 'e': true, 'E': true, '0': true, '1': true, '2': true, '3': true, '4': true, '5': true, '6': true, '7': true, '8': true, '9': true}

// isWS marks the four JSON whitespace bytes.
var isWS = [256]bool{' ': true, '\t': true, '\n': true, '\r': true}

func skipWS(src []byte, i int) int {
	for uint(i) < uint(len(src)) {
		if b := src[i]; b > ' ' || !isWS[b] { // the compare settles most bytes without a load
			return i
		}
		i++
	}
	return i
}

// run parses src and appends the output to dst. On failure it returns the reason and the offset.
//
// Output is lazy: input that is already canonical is not copied token by token. The output so
// far is always dst[base:] followed by src[pend:i]; the pending run is copied in one block only
// where the output must differ from the input (whitespace, a string that needs re-escaping, a JCS
// number, a JCS object to sort) and at the end. Minified input is a single copy.
//
// Index tests are written as uint(i) < uint(L), and 8-byte loads guarded by j >= 0 && j <= L-8,
// because in those forms the compiler proves the access in bounds and drops its own check: the
// plain i < L and j+8 <= L leave one (i might be negative, j+8 might overflow), and removing
// them is worth 10-15% here. validate (validate.go) is this loop without the output.
func (s *state) run(dst, src []byte) ([]byte, Reason, int) {
	c := s.cfg
	var (
		emit   = c.emit
		base   = len(dst)
		frames = s.frames
		L      = len(src)
		depth  = 0
		i, j   int
		pend   int // start of the pending run (emit only)
		r      Reason
		f      *frame
		keyAt  int
		w      uint64 // a key's first 8 bytes, then its tag
		mstart int
	)
	if hasBOM(src) {
		return dst, ReasonBOM, 0
	}
	i = skipWS(src, 0)
	pend = i

value: // a value starts at src[i]
	if uint(i) >= uint(L) {
		return dst, ReasonUnexpectedEnd, i
	}
	switch b := src[i]; b {
	case '{', '[':
		if depth++; depth > c.maxDepth {
			return dst, ReasonDepth, i
		}
		f = &frames[depth]
		f.obj, f.n = b == '{', 0
		if f.obj {
			f.arenaStart, f.filter = len(s.arena), [4]uint64{}
			if len(f.tab) > 0 {
				f.tab = f.tab[:0]
			}
			if c.jcs {
				f.start, f.memStart = len(dst)-base+i-pend, len(s.members)
			}
			if f.lin == nil {
				f.lin = new([linearKeys]keyRef)
			}
		}
		if i++; uint(i) < uint(L) && src[i] <= ' ' {
			j = skipWS(src, i)
			if emit {
				dst = append(dst, src[pend:i]...)
			}
			pend, i = j, j
		}
		if f.obj {
			if uint(i) < uint(L) && src[i] == '}' {
				i++
				depth--
				goto next
			}
			goto member
		}
		if uint(i) < uint(L) && src[i] == ']' {
			i++
			depth--
			goto next
		}
		f.n = 1
		goto value
	case '"':
		// plainEnd, inlined by hand (strings are the most frequent token), extended over valid
		// UTF-8: a string without escapes is canonical as written.
		j = i + 1
	plain:
		for ; j >= 0 && j <= L-8; j += 8 {
			if m := specialMask(binary.LittleEndian.Uint64(src[j:])); m != 0 {
				j += bits.TrailingZeros64(m) >> 3
				goto special
			}
		}
		j = plainTail(src, j)
	special:
		if uint(j) < uint(L) {
			switch b := src[j]; {
			case b == '"':
				if j-i-1 <= c.maxString {
					i = j + 1
					goto next
				}
			case b >= 0xC2 && b < 0xE0 && uint(j+1) < uint(L) && src[j+1]&0xC0 == 0x80:
				j += 2 // a 2-byte sequence, checked here to save a call
				goto plain
			case b >= 0x80:
				if n, r := utf8Seq(src, j); r == reasonNone {
					j += n
					goto plain
				}
			}
		}
		if dst, i, pend, r = s.slowString(dst, src, i, pend); r != reasonNone {
			return dst, r, i
		}
	case 't':
		if i, r = literal(src, i, "true"); r != reasonNone {
			return dst, r, i
		}
	case 'f':
		if i, r = literal(src, i, "false"); r != reasonNone {
			return dst, r, i
		}
	case 'n':
		if i, r = literal(src, i, "null"); r != reasonNone {
			return dst, r, i
		}
	default:
		if b != '-' && (b < '0' || b > '9') {
			return dst, valueError(src, i), i
		}
		if j = i; b == '-' && !c.jcs {
			j++ // (JCS rewrites -0, so negative numbers take the full path there)
		}
		if j >= 0 && j <= L-8 {
			// Fast path: a short integer or plain decimal, canonical as written (in JCS,
			// non-negative integers only), read eight bytes at a time. Below 8 integer digits it
			// is below 2^53; without an exponent it cannot overflow.
			x := binary.LittleEndian.Uint64(src[j:])
			nd := nonDigits(x)
			p := bits.TrailingZeros64(nd) >> 3
			if p > 0 && p < 8 && (p == 1 || src[j] != '0') {
				e := j + p
				if byte(x>>(8*p)) == '.' && !c.jcs {
					if nd &= nd - 1; nd != 0 {
						e = j + bits.TrailingZeros64(nd)>>3
					} else {
						e = skipDigits(src, j+8)
					}
					if e == j+p+1 {
						goto slowNumber // "1." is malformed: let number report it
					}
					p = e - j - 1
				}
				if p <= c.maxDigits && (uint(e) >= uint(L) || !numberByte[src[e]]) {
					i = e
					goto next
				}
				goto slowNumber
			}
			if p != 8 {
				goto slowNumber // not a digit, or a leading zero
			}
		}
		if uint(j) < uint(L) && isDigit(src[j]) {
			// The same, byte by byte, near the end of the input or for 8 or more integer
			// digits (up to 15 it is below 2^53).
			d0 := j
			if j++; src[d0] != '0' {
				j = skipDigits(src, j)
			}
			k := j
			if uint(j) < uint(L) && src[j] == '.' && !c.jcs {
				if k = skipDigits(src, j+1); k == j+1 {
					goto slowNumber
				}
			}
			if digits := j - d0 + max(k-j-1, 0); j-d0 <= 15 && digits <= c.maxDigits && (uint(k) >= uint(L) || !numberByte[src[k]]) {
				i = k
				goto next
			}
		}
	slowNumber:
		j = i
		if i, r = s.number(src, i); r != reasonNone {
			return dst, r, i
		}
		if s.esValue && emit { // JCS: the ECMAScript form replaces the literal
			dst = append(dst, src[pend:j]...)
			dst = appendES(dst, s.esFloat)
			pend = i
		}
	}

next: // after a value: close containers until a ',' asks for the next value
	if uint(i) < uint(L) && src[i] <= ' ' {
		j = skipWS(src, i)
		if emit {
			dst = append(dst, src[pend:i]...)
		}
		pend, i = j, j
	}
	if depth == 0 {
		if i < L {
			return dst, ReasonTrailingData, i
		}
		if emit {
			dst = append(dst, src[pend:i]...)
		}
		return dst, reasonNone, 0
	}
	if uint(i) >= uint(L) {
		return dst, ReasonUnexpectedEnd, i
	}
	f = &frames[depth]
	switch b := src[i]; {
	case b == ',':
		if i++; uint(i) < uint(L) && src[i] <= ' ' {
			j = skipWS(src, i)
			if emit {
				dst = append(dst, src[pend:i]...)
			}
			pend, i = j, j
		}
		if f.obj {
			goto member
		}
		if uint(i) < uint(L) && src[i] == ']' {
			return dst, ReasonTrailingComma, i
		}
		if f.n++; f.n > c.maxElements {
			return dst, ReasonElements, i
		}
		goto value
	case b == '}' && f.obj:
		if c.jcs {
			dst = append(dst, src[pend:i]...)
			pend = i
			dst = s.sortMembers(dst, f, base)
			s.members = s.members[:f.memStart]
		}
		if len(f.tab) > 0 {
			s.keys = s.keys[:f.keyStart]
		}
		if len(s.arena) > f.arenaStart {
			s.arena = s.arena[:f.arenaStart]
		}
	case b == ']' && !f.obj:
	default:
		return dst, separatorError(b), i
	}
	i++
	depth--
	goto next

member: // `"key" :` at src[i] in the object f; whitespace skipped
	if uint(i) >= uint(L) {
		return dst, ReasonUnexpectedEnd, i
	}
	if src[i] != '"' {
		return dst, keyError(src[i], f.n), i
	}
	if f.n++; f.n > c.maxMembers {
		return dst, ReasonMembers, i
	}
	// Fast path: an ASCII key without escapes, by far the most common, is canonical as written
	// and compared in place. plainEnd is inlined by hand, and its first load gives the tag of a
	// key shorter than 8 bytes (keyTag) without a second one.
	keyAt = i
	if j = i + 1; j > L-8 || j < 0 {
		goto keySlow // near the end of the input
	}
	w = binary.LittleEndian.Uint64(src[j:])
	if m := specialMask(w); m != 0 {
		z := bits.TrailingZeros64(m)
		n := z >> 3
		if j += n; byte(w>>(z&^7)) != '"' || n > c.maxString {
			goto keySlow
		}
		w = w&((m&-m)>>7-1) ^ uint64(n)<<56 // the bytes before the quote
		if c.fold {
			w = lower8(w) // keyTagLower
		}
	} else {
		for j += 8; j >= 0 && j <= L-8; j += 8 {
			if m := specialMask(binary.LittleEndian.Uint64(src[j:])); m != 0 {
				j += bits.TrailingZeros64(m) >> 3
				break
			}
		}
		if j > L-8 {
			j = plainTail(src, j)
		}
		if uint(j) >= uint(L) || src[j] != '"' || j-keyAt-1 > c.maxString {
			goto keySlow
		}
		last := binary.LittleEndian.Uint64(src[j-8:])
		if c.fold {
			w, last = lower8(w), lower8(last) // keyTagLower
		}
		w ^= bits.RotateLeft64(last, 29) ^ uint64(j-keyAt-1)*0x9E3779B97F4A7C15
	}
	i = j + 1
	if c.jcs {
		mstart = len(dst) - base + keyAt - pend
		s.members = append(s.members, memberRef{mstart: uint32(mstart), kend: uint32(mstart + j - keyAt)})
	}
	if k := f.n - 1; c.checkDup && uint(k) < linearKeys {
		// Inline fast path of recordKey: a filter miss settles the key.
		h := (w * 0x9E3779B97F4A7C15) >> 56
		if word, bit := h>>6, uint64(1)<<(h&63); f.filter[word]&bit == 0 {
			f.filter[word] |= bit
			f.lin[k] = keyRef{w, uint32(keyAt + 1), uint32(j - keyAt - 1)}
			goto colon
		}
	}
	if c.checkDup && s.dupKey(src, f, keyAt, i, false) {
		return dst, ReasonDuplicateKey, keyAt
	}
	goto colon
keySlow:
	mstart = len(dst) - base + keyAt - pend
	if dst, i, pend, r = s.slowString(dst, src, keyAt, pend); r != reasonNone {
		return dst, r, i
	}
	if c.jcs {
		// A rewritten key was flushed to dst; either way its closing quote is at i-1.
		s.members = append(s.members, memberRef{mstart: uint32(mstart), kend: uint32(len(dst) - base + i - 1 - pend)})
	}
	if c.checkDup && s.dupKey(src, f, keyAt, i, s.rewrite) {
		return dst, ReasonDuplicateKey, keyAt
	}
colon:
	if uint(i) < uint(L) && src[i] == ':' { // the usual case: no whitespace before the colon
		if i++; uint(i) < uint(L) && src[i] <= ' ' {
			j = skipWS(src, i)
			if emit {
				dst = append(dst, src[pend:i]...)
			}
			pend, i = j, j
		}
		goto value
	}
	if uint(i) < uint(L) && src[i] <= ' ' {
		j = skipWS(src, i)
		if emit {
			dst = append(dst, src[pend:i]...)
		}
		pend, i = j, j
	}
	if uint(i) >= uint(L) {
		return dst, ReasonUnexpectedEnd, i
	}
	if src[i] != ':' {
		return dst, ReasonMissingColon, i
	}
	if i++; uint(i) < uint(L) && src[i] <= ' ' {
		j = skipWS(src, i)
		if emit {
			dst = append(dst, src[pend:i]...)
		}
		pend, i = j, j
	}
	goto value
}

// slowString checks the string whose opening quote is src[i] and that is not plain ASCII. If it
// is canonical as written it stays in the pending run; otherwise (escapes, or bytes replaced by
// U+FFFD) the run is flushed and the canonical form written. It returns the index after the
// string and the new pending start. s.rewrite reports whether the form changed.
func (s *state) slowString(dst, src []byte, i, pend int) ([]byte, int, int, Reason) {
	s.rewrite = false
	_, end, r := s.str(nil, src, i+1, false)
	if r != reasonNone {
		return dst, end, pend, r
	}
	if s.rewrite && s.cfg.emit {
		dst = append(dst, src[pend:i]...)
		dst = append(dst, '"')
		dst, _, _ = s.str(dst, src, i+1, true)
		dst = append(dst, '"')
		pend = end
	}
	return dst, end, pend, reasonNone
}

// dupKey records the key src[keyAt:end] (quotes included) in the object f and reports whether f
// already has it. A key that is canonical as written is compared in place; a rewritten one is
// decoded into the arena first; folded comparison folds non-ASCII keys (fold.go).
func (s *state) dupKey(src []byte, f *frame, keyAt, end int, rewritten bool) bool {
	off, n := uint32(keyAt+1), uint32(end-keyAt-2)
	if rewritten {
		ks := len(s.arena)
		s.arena, _, _ = s.str(s.arena, src, keyAt+1, true)
		off, n = uint32(ks)|arenaBit, uint32(len(s.arena)-ks)
	}
	if s.cfg.fold {
		off, n = s.foldKey(off, n, src)
	}
	return s.recordKey(src, f, off, n)
}

func literal(src []byte, i int, lit string) (int, Reason) {
	if i >= 0 && i <= len(src)-len(lit) && string(src[i:i+len(lit)]) == lit {
		return i + len(lit), reasonNone
	}
	// Report a truncated literal as truncation, anything else at the first wrong byte.
	for k := 1; k < len(lit); k++ {
		if i+k >= len(src) {
			return i + k, ReasonUnexpectedEnd
		}
		if src[i+k] != lit[k] {
			return i + k, ReasonSyntax
		}
	}
	return i, ReasonSyntax
}

func hasBOM(src []byte) bool {
	return len(src) >= 3 && src[0] == 0xEF && src[1] == 0xBB && src[2] == 0xBF ||
		len(src) >= 2 && (src[0] == 0xFE && src[1] == 0xFF || src[0] == 0xFF && src[1] == 0xFE)
}

// valueError names the problem when src[i] cannot start a value.
func valueError(src []byte, i int) Reason {
	switch src[i] {
	case '/':
		return ReasonComment
	case 'N', 'I':
		return ReasonNonFinite
	case '+', '.':
		return ReasonInvalidNumber
	}
	return ReasonSyntax
}

// keyError names the problem when b starts an object member but is not '"'.
func keyError(b byte, members int) Reason {
	switch {
	case b == '}' && members > 0:
		return ReasonTrailingComma
	case b == '/':
		return ReasonComment
	}
	return ReasonKeyNotString
}

// separatorError names the problem when b follows a value inside an array or object.
func separatorError(b byte) Reason {
	switch {
	case b == '/':
		return ReasonComment
	case b == '"' || b == '[' || b == '{' || b == '-' || b >= '0' && b <= '9' || b == 't' || b == 'f' || b == 'n':
		return ReasonMissingComma
	}
	return ReasonSyntax // includes a mismatched bracket
}
