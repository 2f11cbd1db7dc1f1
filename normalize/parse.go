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
	for i < len(src) {
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
func (s *state) run(dst, src []byte) ([]byte, Reason, int) {
	c := s.cfg
	var (
		emit    = c.emit
		fastDup = c.checkDup && !c.fold
		base    = len(dst)
		L       = len(src)
		frames  = s.frames
		depth   = 0
		i, j    int
		pend    int // start of the pending run (emit only)
		r       Reason
		f       *frame
		keyAt   int
		mstart  int
	)
	if hasBOM(src) {
		return dst, ReasonBOM, 0
	}
	i = skipWS(src, 0)
	pend = i

value: // a value starts at src[i]
	if i >= L {
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
		if i++; i < L && src[i] <= ' ' {
			j = skipWS(src, i)
			if emit {
				dst = append(dst, src[pend:i]...)
			}
			pend, i = j, j
		}
		if f.obj {
			if i < L && src[i] == '}' {
				i++
				depth--
				goto next
			}
			goto member
		}
		if i < L && src[i] == ']' {
			i++
			depth--
			goto next
		}
		f.n = 1
		goto value
	case '"':
		j = i + 1 // plainEnd, inlined by hand: strings are the most frequent token
		for ; j+8 <= L; j += 8 {
			if m := specialMask(binary.LittleEndian.Uint64(src[j:])); m != 0 {
				j += bits.TrailingZeros64(m) >> 3
				break
			}
		}
		if j+8 > L {
			j = plainTail(src, j)
		}
		if j < L && src[j] == '"' && j-i-1 <= c.maxString {
			i = j + 1 // ASCII without escapes: canonical as written
			goto next
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
		if j < L && src[j] >= '0' && src[j] <= '9' {
			// Fast path: a short integer or plain decimal, canonical as written (in JCS,
			// non-negative integers only). Up to 15 integer digits it is below 2^53; without an
			// exponent it cannot overflow.
			d0 := j
			if j++; src[d0] != '0' {
				j = skipDigits(src, j)
			}
			k := j
			if j < L && src[j] == '.' && !c.jcs {
				if k = skipDigits(src, j+1); k == j+1 {
					k = -1 // "1." is malformed: let number report it
				}
			}
			if digits := j - d0 + max(k-j-1, 0); j-d0 <= 15 && k >= 0 && digits <= c.maxDigits && (k >= L || !numberByte[src[k]]) {
				i = k
				goto next
			}
		}
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
	if i < L && src[i] <= ' ' {
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
	if i >= L {
		return dst, ReasonUnexpectedEnd, i
	}
	f = &frames[depth]
	switch b := src[i]; {
	case b == ',':
		if i++; i < L && src[i] <= ' ' {
			j = skipWS(src, i)
			if emit {
				dst = append(dst, src[pend:i]...)
			}
			pend, i = j, j
		}
		if f.obj {
			goto member
		}
		if i < L && src[i] == ']' {
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
	if i >= L {
		return dst, ReasonUnexpectedEnd, i
	}
	if src[i] != '"' {
		return dst, keyError(src[i], f.n), i
	}
	if f.n++; f.n > c.maxMembers {
		return dst, ReasonMembers, i
	}
	keyAt = i
	for j = i + 1; j+8 <= L; j += 8 { // plainEnd, inlined by hand
		if m := specialMask(binary.LittleEndian.Uint64(src[j:])); m != 0 {
			j += bits.TrailingZeros64(m) >> 3
			break
		}
	}
	if j+8 > L {
		j = plainTail(src, j)
	}
	if j < L && src[j] == '"' && j-i-1 <= c.maxString {
		// Fast path: an ASCII key without escapes, by far the most common, is canonical as
		// written and compared in place.
		i = j + 1
		if c.jcs {
			mstart = len(dst) - base + keyAt - pend
			s.members = append(s.members, memberRef{mstart: uint32(mstart), kend: uint32(mstart + j - keyAt)})
		}
		if fastDup {
			// Inline fast path of recordKey: the tag needs an 8-byte load past a short key, which
			// the input nearly always has, and a filter miss settles the key.
			if n := j - keyAt - 1; f.n <= linearKeys && (n >= 8 || keyAt+9 <= L) {
				var tag uint64
				if n >= 8 {
					tag = binary.LittleEndian.Uint64(src[keyAt+1:]) ^ bits.RotateLeft64(binary.LittleEndian.Uint64(src[j-8:]), 29) ^ uint64(n)*0x9E3779B97F4A7C15
				} else {
					tag = binary.LittleEndian.Uint64(src[keyAt+1:])&(1<<(8*n)-1) ^ uint64(n)<<56
				}
				h := (tag * 0x9E3779B97F4A7C15) >> 56
				if word, bit := h>>6, uint64(1)<<(h&63); f.filter[word]&bit == 0 {
					f.filter[word] |= bit
					f.lin[f.n-1] = keyRef{tag, uint32(keyAt + 1), uint32(n)}
					goto colon
				}
			}
		}
		if c.checkDup && s.dupKey(src, f, keyAt, i, false) {
			return dst, ReasonDuplicateKey, keyAt
		}
	} else {
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
	}
colon:
	if i < L && src[i] <= ' ' {
		j = skipWS(src, i)
		if emit {
			dst = append(dst, src[pend:i]...)
		}
		pend, i = j, j
	}
	if i >= L {
		return dst, ReasonUnexpectedEnd, i
	}
	if src[i] != ':' {
		return dst, ReasonMissingColon, i
	}
	if i++; i < L && src[i] <= ' ' {
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
// decoded into the arena first, and FoldKeys compares folded forms.
func (s *state) dupKey(src []byte, f *frame, keyAt, end int, rewritten bool) bool {
	off, n := uint32(keyAt+1), uint32(end-keyAt-2)
	if rewritten {
		ks := len(s.arena)
		s.arena, _, _ = s.str(s.arena, src, keyAt+1, true)
		off, n = uint32(ks)|arenaBit, uint32(len(s.arena)-ks)
	}
	if s.cfg.fold {
		off, n = s.foldKey(s.keyBytes(off, n, src))
	}
	return s.recordKey(src, f, off, n)
}

func literal(src []byte, i int, lit string) (int, Reason) {
	if len(src)-i >= len(lit) && string(src[i:i+len(lit)]) == lit {
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
