package redact

import "github.com/mqttwaf/mqttwaf/normalize"

// This file is the single-pass rewriter: it walks the document once,
// steps the path trie at every key and index, and writes each value either
// verbatim or rewritten. It validates everything it passes over.

// Where a value sits: a removed object member disappears, a removed array
// element or document becomes null.
const (
	ctxTop uint8 = iota
	ctxObj
	ctxArr
)

// frame is the object or array a value belongs to, where a longitude
// meets its latitude (see pair.go).
type frame struct {
	latRule int32   // coarsen rule whose latitude was seen, or -1
	latC    float64 // that latitude's band centre
	pend    [2]pendingLon
	npend   int
}

// value rewrites the value at src[i]. depth is the number of enclosing
// containers, states the trie nodes matching this place, inherit a
// scalar rule selected on an enclosing container (-1 for none). It returns
// the end of the value and whether the caller must drop the object member.
func (s *state) value(i, depth int, states []int32, inherit int32, ctx uint8, fr *frame) (int, bool, error) {
	src := s.src
	if i >= len(src) {
		return 0, false, syntaxErr(i, "unexpected end of input")
	}
	ri, role := s.r.trie.winner(states, inherit)
	switch c := src[i]; c {
	case '{', '[':
		if depth >= s.r.maxDepth {
			return 0, false, &InputError{Offset: i, Reason: "exceeds MaxDepth", Err: ErrTooDeep}
		}
		if ri >= 0 {
			switch a := &s.r.rules[ri].action; a.op {
			case OpRemove, OpReplace, OpCoarsen:
				end, err := skipValue(src, i, depth, s.r.maxDepth)
				if err != nil {
					return 0, false, err
				}
				return end, s.whole(int(ri), a, src[i:end], ctx), nil
			}
			inherit = ri // a scalar operator: applies to every scalar inside
		}
		if len(states) == 0 && inherit < 0 && len(s.r.dets) == 0 {
			end, err := skipValue(src, i, depth, s.r.maxDepth)
			if err != nil {
				return 0, false, err
			}
			s.dst = append(s.dst, src[i:end]...)
			return end, false, nil
		}
		var end int
		var err error
		if c == '{' {
			end, err = s.object(i, depth+1, states, inherit)
		} else {
			end, err = s.array(i, depth+1, states, inherit)
		}
		return end, false, err
	case '"':
		end, flags, err := scanString(src, i)
		if err != nil {
			return 0, false, err
		}
		return end, s.str(src[i:end], flags, ri, role, ctx, fr), nil
	case 't', 'f', 'n':
		end, err := scanLiteral(src, i)
		if err != nil {
			return 0, false, err
		}
		return end, s.literal(src[i:end], ri, ctx), nil
	default:
		end := numberEnd(src, i)
		if end < 0 {
			return 0, false, syntaxErr(i, "invalid value")
		}
		return end, s.number(src[i:end], ri, role, ctx, fr), nil
	}
}

// object and array copy runs of members that no rule or detector can
// touch in one append, so the common case costs a validating scan and a
// memmove.

func (s *state) object(i, depth int, states []int32, inherit int32) (int, error) {
	src := s.src
	fr := frame{latRule: -1}
	s.dst = append(s.dst, '{')
	i = skipWS(src, i+1)
	if i < len(src) && src[i] == '}' {
		s.dst = append(s.dst, '}')
		return i + 1, nil
	}
	var buf [8]int32
	first, run, runEnd := true, -1, 0
	quiet := inherit < 0 && len(s.r.dets) == 0
	for {
		if i >= len(src) || src[i] != '"' {
			return 0, syntaxErr(i, "expected string key")
		}
		kstart := i
		kend, kflags, err := scanString(src, i)
		if err != nil {
			return 0, err
		}
		child := buf[:0]
		if len(states) > 0 {
			key := src[i+1 : kend-1]
			if kflags&strEscaped != 0 {
				s.key = normalize.AppendUnescaped(s.key[:0], key)
				key = s.key
			}
			if s.r.trie.fold && kflags != 0 {
				// Escapes or non-ASCII: fold in full. A plain ASCII key
				// (kflags 0) is compared with its letters lowercased.
				s.fkey = normalize.AppendFoldedKey(s.fkey[:0], key)
				key = s.fkey
			}
			if len(states) > 1 || s.r.trie.mayStep(states[0], key) {
				child = s.r.trie.stepKey(child, states, key)
			}
		}
		if i = skipWS(src, kend); i >= len(src) || src[i] != ':' {
			return 0, syntaxErr(i, "expected ':' after object key")
		}
		vstart := skipWS(src, i+1)
		if quiet && len(child) == 0 {
			if i, err = skipValue(src, vstart, depth, s.r.maxDepth); err != nil {
				return 0, err
			}
			if run < 0 {
				run = kstart
			}
			runEnd = i
		} else {
			if run >= 0 {
				first = s.flush(first, run, runEnd)
				run = -1
			}
			mark := len(s.dst)
			if !first {
				s.dst = append(s.dst, ',')
			}
			s.dst = append(s.dst, src[kstart:kend]...)
			s.dst = append(s.dst, ':')
			var drop bool
			if i, drop, err = s.value(vstart, depth, child, inherit, ctxObj, &fr); err != nil {
				return 0, err
			}
			if drop {
				s.dst = s.dst[:mark]
			} else {
				first = false
			}
			if len(s.dst) > s.limit {
				return 0, s.tooLarge(i)
			}
		}
		i = skipWS(src, i)
		if i < len(src) && src[i] == ',' {
			i = skipWS(src, i+1)
			continue
		}
		if i < len(src) && src[i] == '}' {
			if run >= 0 {
				s.flush(first, run, runEnd)
			}
			if fr.npend > 0 {
				s.resolveLons(&fr, -1, 0, false) // no latitude came
			}
			s.dst = append(s.dst, '}')
			return i + 1, nil
		}
		return 0, syntaxErr(i, "expected ',' or '}' in object")
	}
}

// flush copies the untouched members or elements src[run:end] (with the
// separators between them) and reports that something was written.
func (s *state) flush(first bool, run, end int) bool {
	if !first {
		s.dst = append(s.dst, ',')
	}
	s.dst = append(s.dst, s.src[run:end]...)
	return false
}

func (s *state) array(i, depth int, states []int32, inherit int32) (int, error) {
	src := s.src
	s.dst = append(s.dst, '[')
	i = skipWS(src, i+1)
	if i < len(src) && src[i] == ']' {
		s.dst = append(s.dst, ']')
		return i + 1, nil
	}
	var buf [8]int32
	fr := frame{latRule: -1}
	first, run, runEnd := true, -1, 0
	quiet := inherit < 0 && len(s.r.dets) == 0
	for idx := 0; ; idx++ {
		child := buf[:0]
		if len(states) > 0 {
			child = s.r.trie.stepIndex(child, states, idx)
			if s.r.trie.fold && i < len(src) && (src[i] == '{' || src[i] == '[') {
				child = s.r.trie.appendThrough(child, states)
			}
		}
		var err error
		if quiet && len(child) == 0 {
			if run < 0 {
				run = i
			}
			if i, err = skipValue(src, i, depth, s.r.maxDepth); err != nil {
				return 0, err
			}
			runEnd = i
		} else {
			if run >= 0 {
				first = s.flush(first, run, runEnd)
				run = -1
			}
			if !first {
				s.dst = append(s.dst, ',')
			}
			first = false
			if i, _, err = s.value(i, depth, child, inherit, ctxArr, &fr); err != nil {
				return 0, err
			}
			if len(s.dst) > s.limit {
				return 0, s.tooLarge(i)
			}
		}
		i = skipWS(src, i)
		if i < len(src) && src[i] == ',' {
			i = skipWS(src, i+1)
			continue
		}
		if i < len(src) && src[i] == ']' {
			if run >= 0 {
				s.flush(first, run, runEnd)
			}
			if fr.npend > 0 {
				s.resolveLons(&fr, -1, 0, false) // no latitude came
			}
			s.dst = append(s.dst, ']')
			return i + 1, nil
		}
		return 0, syntaxErr(i, "expected ',' or ']' in array")
	}
}

// tooLarge refuses a document whose output outgrew the limit. Each value
// adds a bounded amount, so checking after each one bounds memory.
func (s *state) tooLarge(i int) error {
	return &InputError{Offset: i, Reason: "output exceeds MaxOutput", Err: ErrTooLarge}
}
