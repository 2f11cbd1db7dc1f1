package normalize

import (
	"encoding/binary"
	"math/bits"
)

// validate is run for OutputValidate: the same grammar, checks, limits and error offsets as run,
// without the output. It is a copy of run with every output step taken out, because that
// bookkeeping (dst, the pending run, JCS members) costs 10-15% in run's hot paths even when
// switched off, in registers and branches, and validate-only is the mode that has to keep up
// with plain validators such as gjson.ValidBytes. The two must change together: FuzzAppend
// checks that validate and compact reject every input with the same Reason at the same offset.
// Why each step is written as it is, is commented in run.
func (s *state) validate(src []byte) (Reason, int) {
	c := s.cfg
	var (
		L     = len(src)
		depth = 0
		i, j  int
		r     Reason
		f     *frame
		keyAt int
		w     uint64 // a key's first 8 bytes, then its tag
	)
	if hasBOM(src) {
		return ReasonBOM, 0
	}
	i = skipWS(src, 0)

value: // a value starts at src[i]
	if uint(i) >= uint(L) {
		return ReasonUnexpectedEnd, i
	}
	switch b := src[i]; b {
	case '{', '[':
		if depth++; depth > c.maxDepth {
			return ReasonDepth, i
		}
		f = &s.frames[depth]
		f.obj, f.n = b == '{', 0
		if f.obj {
			f.arenaStart, f.filter = len(s.arena), [4]uint64{}
			if len(f.tab) > 0 {
				f.tab = f.tab[:0]
			}
			if f.lin == nil {
				f.lin = new([linearKeys]keyRef)
			}
		}
		if i++; uint(i) < uint(L) && src[i] <= ' ' {
			i = skipWS(src, i)
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
				j += 2
				goto plain
			case b >= 0x80:
				if n, r := utf8Seq(src, j); r == reasonNone {
					j += n
					goto plain
				}
			}
		}
		if _, i, r = s.str(nil, src, i+1, false); r != reasonNone {
			return r, i
		}
	case 't':
		if i, r = literal(src, i, "true"); r != reasonNone {
			return r, i
		}
	case 'f':
		if i, r = literal(src, i, "false"); r != reasonNone {
			return r, i
		}
	case 'n':
		if i, r = literal(src, i, "null"); r != reasonNone {
			return r, i
		}
	default:
		if b != '-' && (b < '0' || b > '9') {
			return valueError(src, i), i
		}
		if j = i; b == '-' {
			j++
		}
		if j >= 0 && j <= L-8 {
			x := binary.LittleEndian.Uint64(src[j:])
			nd := nonDigits(x)
			p := bits.TrailingZeros64(nd) >> 3
			if p > 0 && p < 8 && (p == 1 || src[j] != '0') {
				e := j + p
				if byte(x>>(8*p)) == '.' {
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
			if uint(j) < uint(L) && src[j] == '.' {
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
		if i, r = s.number(src, i); r != reasonNone {
			return r, i
		}
	}

next: // after a value: close containers until a ',' asks for the next value
	if uint(i) < uint(L) && src[i] <= ' ' {
		i = skipWS(src, i)
	}
	if depth == 0 {
		if i < L {
			return ReasonTrailingData, i
		}
		return reasonNone, 0
	}
	if uint(i) >= uint(L) {
		return ReasonUnexpectedEnd, i
	}
	f = &s.frames[depth]
	switch b := src[i]; {
	case b == ',':
		if i++; uint(i) < uint(L) && src[i] <= ' ' {
			i = skipWS(src, i)
		}
		if f.obj {
			goto member
		}
		if uint(i) < uint(L) && src[i] == ']' {
			return ReasonTrailingComma, i
		}
		if f.n++; f.n > c.maxElements {
			return ReasonElements, i
		}
		goto value
	case b == '}' && f.obj:
		if len(f.tab) > 0 {
			s.keys = s.keys[:f.keyStart]
		}
		if len(s.arena) > f.arenaStart {
			s.arena = s.arena[:f.arenaStart]
		}
	case b == ']' && !f.obj:
	default:
		return separatorError(b), i
	}
	i++
	depth--
	goto next

member: // `"key" :` at src[i] in the object f; whitespace skipped
	if uint(i) >= uint(L) {
		return ReasonUnexpectedEnd, i
	}
	if src[i] != '"' {
		return keyError(src[i], f.n), i
	}
	if f.n++; f.n > c.maxMembers {
		return ReasonMembers, i
	}
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
	if k := f.n - 1; c.checkDup && uint(k) < linearKeys {
		h := (w * 0x9E3779B97F4A7C15) >> 56
		if word, bit := h>>6, uint64(1)<<(h&63); f.filter[word]&bit == 0 {
			f.filter[word] |= bit
			f.lin[k] = keyRef{w, uint32(keyAt + 1), uint32(j - keyAt - 1)}
			goto colon
		}
	}
	if c.checkDup && s.dupKey(src, f, keyAt, i, false) {
		return ReasonDuplicateKey, keyAt
	}
	goto colon
keySlow:
	s.rewrite = false
	if _, i, r = s.str(nil, src, keyAt+1, false); r != reasonNone {
		return r, i
	}
	if c.checkDup && s.dupKey(src, f, keyAt, i, s.rewrite) {
		return ReasonDuplicateKey, keyAt
	}
colon:
	if uint(i) < uint(L) && src[i] == ':' {
		if i++; uint(i) < uint(L) && src[i] <= ' ' {
			i = skipWS(src, i)
		}
		goto value
	}
	if uint(i) < uint(L) && src[i] <= ' ' {
		i = skipWS(src, i)
	}
	if uint(i) >= uint(L) {
		return ReasonUnexpectedEnd, i
	}
	if src[i] != ':' {
		return ReasonMissingColon, i
	}
	if i++; uint(i) < uint(L) && src[i] <= ' ' {
		i = skipWS(src, i)
	}
	goto value
}
