package redact

import (
	"bytes"
	"unicode/utf8"
)

// This file runs the detectors over one string value. Each detector has a
// prefilter on a byte summary of the value (cheap counts), so most values
// are dismissed without looking for a match.

// Outcomes of detect.
const (
	detNone    = iota // no detector fired
	detChanged        // matches were masked or pseudonymised: use out
	detRemove         // a detector with op remove fired
	detReplace        // a detector with op replace fired (its index returned)
	detNull           // the result still looked like data: null (fail closed)
)

// summary counts the bytes detectors need before they are worth running.
type summary struct {
	n [7]int // by class: other, digit, ':', '.', '-', '@', non-ASCII
}

const (
	clsDigit = 1 + iota
	clsColon
	clsDot
	clsDash
	clsAt
	clsHigh
)

var byteClass = func() (t [256]uint8) {
	for c := '0'; c <= '9'; c++ {
		t[c] = clsDigit
	}
	t[':'], t['.'], t['-'], t['@'] = clsColon, clsDot, clsDash, clsAt
	for c := utf8.RuneSelf; c < 256; c++ {
		t[c] = clsHigh
	}
	return t
}()

func (m *summary) of(b []byte) {
	m.n = [7]int{}
	for _, c := range b {
		m.n[byteClass[c]]++
	}
}

// any is the union of the built-in prefilters: false means no built-in
// detector can match (most telemetry strings: "S", "MALARM_INFO").
func (m *summary) any() bool {
	return m.n[clsDigit] >= 8 || m.n[clsColon] >= 2 || m.n[clsDot] >= 2 || m.n[clsDash] >= 5 || m.n[clsAt] > 0
}

// maybe is the prefilter: false means this detector cannot match b.
func (d *detector) maybe(m *summary, b []byte) bool {
	switch d.kind {
	case KindPhone:
		return m.n[clsDigit] >= 8
	case KindEmail:
		return m.n[clsAt] > 0 && m.n[clsDot] > 0
	case KindIPv4:
		return m.n[clsDot] >= 3 && m.n[clsDigit] >= 4
	case KindIPv6:
		return m.n[clsColon] >= 2
	case KindMAC:
		return m.n[clsColon] >= 5 || m.n[clsDash] >= 5 || m.n[clsDot] >= 2
	case KindIMEI:
		return m.n[clsDigit] >= 15
	case KindCard:
		return m.n[clsDigit] >= 13
	default:
		return d.literal == nil || bytes.Contains(b, d.literal)
	}
}

// find returns the first match in b at or after from, or -1, -1.
func (d *detector) find(b []byte, from int) (int, int) {
	switch d.kind {
	case KindPhone:
		return findPhone(b, from, d.plans)
	case KindEmail:
		return findEmail(b, from)
	case KindIPv4:
		return findIPv4(b, from)
	case KindIPv6:
		return findIPv6(b, from)
	case KindMAC:
		return findMAC(b, from)
	case KindIMEI:
		return findIMEI(b, from)
	case KindCard:
		return findCard(b, from)
	}
	return -1, -1 // regex: see spans
}

// spans appends every match in b to dst.
func (d *detector) spans(dst [][2]int, b []byte) [][2]int {
	if d.re != nil {
		for _, m := range d.re.FindAllIndex(b, -1) { // allocates, but only on a hit
			dst = append(dst, [2]int{m[0], m[1]})
		}
		return dst
	}
	for st, en := d.find(b, 0); st >= 0; st, en = d.find(b, en) {
		dst = append(dst, [2]int{st, en})
	}
	return dst
}

// hit reports whether d matches b.
func (d *detector) hit(m *summary, b []byte) bool {
	if !d.maybe(m, b) {
		return false
	}
	if d.re != nil {
		return d.re.Match(b)
	}
	st, _ := d.find(b, 0)
	return st >= 0
}

// detect runs the detectors in order over v, each on the previous one's
// output. pr is the path operator (mask or truncate) that produced v, or
// nil. With pr, every span operator becomes a mask of the same length (in
// pr's mask character), so re-applying pr to the result changes nothing.
// numOnly restricts to detectors that inspect numbers. The result never
// matches any detector again: if it would, it is masked entirely, and if
// even that matches (or pr would change it), nulled.
func (s *state) detect(v []byte, pr *action, numOnly bool) (verdict int, out []byte, who int) {
	var m summary
	m.of(v)
	view, folded := v, false
	if m.n[clsHigh] > 0 {
		if view, folded = s.fold(v); folded { // look-alikes read as ASCII (fold.go)
			m.of(view)
		}
	}
	// Most strings ("S", "MALARM_INFO") cannot match any built-in
	// detector: then only the regexps (if any) need a look.
	order := s.r.detAll
	if !m.any() {
		if order = s.r.detRegex; len(order) == 0 {
			return detNone, v, -1
		}
	}
	cur, fired := v, -1
	for _, k := range order {
		d := &s.r.dets[k]
		if numOnly && !d.numbers || !d.maybe(&m, view) {
			continue
		}
		s.spans = d.spans(s.spans[:0], view)
		if len(s.spans) == 0 {
			continue
		}
		// The matches in cur's own bytes (s.spans stay in the view's, for
		// pseudonyms of the folded text).
		s.ospans = append(s.ospans[:0], s.spans...)
		if folded {
			s.unfold(s.ospans)
		}
		s.count(len(s.r.rules) + k)
		if fired < 0 {
			fired = k
		}
		op, mask, kf, kl := d.op, d.mask, d.keepFirst, d.keepLast
		if pr != nil && op != OpRemove {
			if op != OpMask {
				op, kf, kl = OpMask, 0, 0
			}
			if pr.op == OpMask {
				mask = pr.mask
			}
		}
		switch op {
		case OpRemove:
			return detRemove, nil, k
		case OpReplace:
			return detReplace, nil, k
		}
		buf := s.spare()
		last := 0
		for i, sp := range s.ospans {
			buf = append(buf, cur[last:sp[0]]...)
			if op == OpMask {
				buf = appendMask(buf, cur[sp[0]:sp[1]], kf, kl, mask)
			} else {
				buf = s.appendPseudonym(buf, view[s.spans[i][0]:s.spans[i][1]], &d.action)
			}
			last = sp[1]
		}
		cur = s.keep(append(buf, cur[last:]...))
		view, folded = s.fold(cur)
		m.of(view)
	}
	if fired < 0 {
		return detNone, v, -1
	}
	if s.anyHit(&m, view) {
		mask := s.r.dets[fired].mask
		if pr != nil && pr.op == OpMask {
			mask = pr.mask
		}
		cur = s.keep(appendMask(s.spare(), cur, 0, 0, mask))
		view, _ = s.fold(cur)
		m.of(view)
		if s.anyHit(&m, view) {
			return detNull, nil, fired
		}
	}
	if pr != nil && pr.op == OpMask {
		s.d = appendMask(s.d[:0], cur, pr.keepFirst, pr.keepLast, pr.mask)
		if !bytes.Equal(s.d, cur) {
			return detNull, nil, fired
		}
	}
	return detChanged, cur, fired
}

// spare and keep alternate between two buffers, so the one being written
// never holds cur, and both keep their capacity for the next Apply.
func (s *state) spare() []byte { return s.bufs[s.w][:0] }

func (s *state) keep(buf []byte) []byte {
	s.bufs[s.w] = buf
	s.w ^= 1
	return buf
}

func (s *state) anyHit(m *summary, b []byte) bool {
	for k := range s.r.dets {
		if s.r.dets[k].hit(m, b) {
			return true
		}
	}
	return false
}
