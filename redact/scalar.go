package redact

import (
	"bytes"
	"strconv"

	"github.com/mqttwaf/mqttwaf/normalize"
)

// This file rewrites scalars (strings, numbers, true/false/null) under
// their winning rule, hands strings to the detectors, and keeps the Report.

// count records that rule or detector id changed the current value.
func (s *state) count(id int) { s.rep.counts[id]++ }

// null writes null in place of raw; nulling null changes nothing.
func (s *state) null(id int, raw []byte, failClosed bool) {
	s.dst = append(s.dst, "null"...)
	if string(raw) != "null" {
		s.count(id)
		s.rep.Changed++
		if failClosed {
			s.rep.Nulled++
		}
	}
}

// whole applies remove or replace to a whole value; any other operator
// reaching here cannot apply (coarsen on an object) and yields null.
func (s *state) whole(id int, a *action, raw []byte, ctx uint8) bool {
	switch a.op {
	case OpRemove:
		if ctx == ctxObj {
			s.count(id)
			s.rep.Changed++
			return true
		}
		s.null(id, raw, false) // keeps array indices and the document valid
	case OpReplace:
		s.dst = append(s.dst, a.value...)
		if !bytes.Equal(raw, a.value) {
			s.count(id)
			s.rep.Changed++
		}
	default:
		s.null(id, raw, true)
	}
	return false
}

// literal handles true, false and null under a rule. Text operators leave
// them (they carry one bit at most); number operators cannot apply.
func (s *state) literal(raw []byte, ri int32, ctx uint8) bool {
	if ri < 0 {
		s.dst = append(s.dst, raw...)
		return false
	}
	switch a := &s.r.rules[ri].action; a.op {
	case OpRemove, OpReplace:
		return s.whole(int(ri), a, raw, ctx)
	case OpRound, OpBucket, OpCoarsen:
		s.null(int(ri), raw, true)
	default:
		s.dst = append(s.dst, raw...)
	}
	return false
}

func (s *state) number(raw []byte, ri int32, role uint8, ctx uint8, fr *frame) bool {
	if ri < 0 {
		if s.r.numDets && allDigits(raw) {
			verdict, out, k := s.detect(raw, nil, true)
			return s.emit(raw, out, -1, false, verdict, k, ctx)
		}
		s.dst = append(s.dst, raw...)
		return false
	}
	switch a := &s.r.rules[ri].action; a.op {
	case OpRemove, OpReplace:
		return s.whole(int(ri), a, raw, ctx)
	case OpMask, OpTruncate, OpPseudonym:
		return s.text(raw, raw, false, ri, ctx)
	}
	out, res := s.numeric(s.a[:0], ri, role, raw, fr)
	s.a = out
	switch {
	case res == numDefer:
		s.deferLon(fr, ri, raw, false)
	case res == numFail:
		s.null(int(ri), raw, true)
	case bytes.Equal(out, raw):
		s.dst = append(s.dst, raw...)
	default:
		s.dst = append(s.dst, out...)
		s.count(int(ri))
		s.rep.Changed++
	}
	return false
}

func (s *state) str(raw []byte, flags uint8, ri int32, role uint8, ctx uint8, fr *frame) bool {
	val := raw[1 : len(raw)-1]
	if flags&strEscaped != 0 {
		s.esc = normalize.AppendUnescaped(s.esc[:0], val)
		val = s.esc
	}
	if ri < 0 {
		if len(s.r.dets) == 0 {
			s.dst = append(s.dst, raw...)
			return false
		}
		verdict, out, k := s.detect(val, nil, false)
		return s.emit(raw, out, -1, false, verdict, k, ctx)
	}
	switch a := &s.r.rules[ri].action; a.op {
	case OpRemove, OpReplace:
		return s.whole(int(ri), a, raw, ctx)
	case OpMask, OpTruncate, OpPseudonym:
		return s.text(raw, val, true, ri, ctx)
	}
	// A number operator on a string: accept a number written as a string,
	// keep it a string; refuse anything else.
	if !isNumber(val) {
		s.null(int(ri), raw, true)
		return false
	}
	out, res := s.numeric(s.a[:0], ri, role, val, fr)
	s.a = out
	switch {
	case res == numDefer:
		s.deferLon(fr, ri, raw, true)
	case res == numFail:
		s.null(int(ri), raw, true)
	case bytes.Equal(out, val):
		s.dst = append(s.dst, raw...)
	default:
		s.dst = append(s.dst, '"')
		s.dst = append(s.dst, out...)
		s.dst = append(s.dst, '"')
		s.count(int(ri))
		s.rep.Changed++
	}
	return false
}

// text applies mask, truncate or pseudonym to val, the content of a string
// (isStr) or the literal of a number, then lets the detectors look at what
// mask and truncate leave. A number comes out as a string.
func (s *state) text(raw, val []byte, isStr bool, ri int32, ctx uint8) bool {
	a := &s.r.rules[ri].action
	switch a.op {
	case OpMask:
		s.a = appendMask(s.a[:0], val, a.keepFirst, a.keepLast, a.mask)
	case OpTruncate:
		s.a = appendTruncate(s.a[:0], val, a.length)
		if !isStr && len(s.a) == len(val) {
			s.dst = append(s.dst, raw...) // a short number stays a number
			return false
		}
	case OpPseudonym:
		s.a = s.appendPseudonym(s.a[:0], val, a)
	}
	out := s.a
	changed := !isStr || !bytes.Equal(out, val)
	verdict, k := detNone, -1
	if a.op != OpPseudonym && len(s.r.dets) > 0 {
		verdict, out, k = s.detect(out, a, false)
	}
	return s.emit(raw, out, ri, changed, verdict, k, ctx)
}

// emit writes the final form of a scalar whose input token is raw: v when
// a rule (ri, ruleChanged) or the detectors (verdict) changed it.
func (s *state) emit(raw, v []byte, ri int32, ruleChanged bool, verdict, k int, ctx uint8) bool {
	if ruleChanged {
		s.count(int(ri))
	}
	if ruleChanged || verdict != detNone {
		s.rep.Changed++
	}
	switch verdict {
	case detRemove:
		if ctx == ctxObj {
			return true
		}
		s.dst = append(s.dst, "null"...)
	case detReplace:
		s.dst = append(s.dst, s.r.dets[k].value...)
	case detNull:
		s.dst = append(s.dst, "null"...)
		s.rep.Nulled++
	case detChanged:
		s.dst = appendString(s.dst, v)
	default:
		if ruleChanged {
			s.dst = appendString(s.dst, v)
		} else {
			s.dst = append(s.dst, raw...)
		}
	}
	return false
}

// Outcomes of numeric.
const (
	numOK    = iota
	numFail  // the operator cannot apply: write null
	numDefer // a longitude waiting for its latitude: write nothing yet
)

// numeric computes round, bucket or coarsen for the number text t.
func (s *state) numeric(dst []byte, ri int32, role uint8, t []byte, fr *frame) ([]byte, int) {
	a := &s.r.rules[ri].action
	v, err := strconv.ParseFloat(string(t), 64)
	if err != nil {
		return dst, numFail // out of float64 range
	}
	ok := false
	switch {
	case a.op == OpRound:
		dst, ok = appendRound(dst, v, a.decimals)
	case a.op == OpBucket:
		dst, ok = appendBucket(dst, v, a)
	case role == roleLat:
		dst, ok = s.coarsenLat(dst, a, ri, v, fr)
	case !a.metres:
		dst, ok = a.appendLon(dst, v, 0)
	case fr != nil && fr.latRule == ri:
		dst, ok = a.appendLon(dst, v, fr.latC)
	case fr != nil:
		s.pendV = v
		return dst, numDefer
	}
	if !ok {
		return dst, numFail
	}
	return dst, numOK
}

func allDigits(b []byte) bool {
	for _, c := range b {
		if !isDigit(c) {
			return false
		}
	}
	return true
}
