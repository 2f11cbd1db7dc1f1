package redact

import (
	"crypto/hmac"
	"crypto/sha256"
	"hash"
	"iter"
	"sync"
)

// Redactor rewrites JSON documents according to one compiled rule set. It
// models a rule set: path rules and detectors, applied in a single pass over
// the document. Build one with New; the zero value is not usable. A Redactor
// is immutable and safe for concurrent use by multiple goroutines.
type Redactor struct {
	rules    []rule
	dets     []detector
	trie     trie
	root     []int32  // active trie nodes at the document root
	ids      []string // rule IDs, then detector IDs: the Report's index
	maxDepth int
	maxOut   int // 0: relative to the input
	key      []byte
	numDets  bool  // some detector inspects numbers
	detAll   []int // 0..len(dets)-1
	detRegex []int // the regexp detectors
	pool     sync.Pool
}

// Report tells what one Apply changed: which rules and detectors fired and
// how many values changed. It never holds the values. The zero value is an
// empty report. A Report is a plain value: copy it freely; reading it from
// several goroutines is safe.
type Report struct {
	// Changed counts values that were rewritten, replaced or removed (a
	// value touched by a rule and a detector counts once).
	Changed int
	// Nulled counts values replaced by null because their operator could
	// not apply (e.g. round on a non-number): the fail-closed outcome.
	// They are included in Changed.
	Nulled int

	counts [MaxRules]uint32
	ids    []string
}

// All yields each rule and detector that fired, by ID, in Options order,
// with the number of values it changed (for a detector: values it matched).
func (r *Report) All() iter.Seq2[string, int] {
	return func(yield func(string, int) bool) {
		for i, id := range r.ids {
			if r.counts[i] > 0 && !yield(id, int(r.counts[i])) {
				return
			}
		}
	}
}

// Count returns how many values the rule or detector with this ID changed.
func (r *Report) Count(id string) int {
	for i, v := range r.ids {
		if v == id {
			return int(r.counts[i])
		}
	}
	return 0
}

// Hits returns the total of all rule and detector counts.
func (r *Report) Hits() int {
	n := 0
	for i := range r.ids {
		n += int(r.counts[i])
	}
	return n
}

// state is the per-call scratch space, pooled so a warm Apply allocates
// nothing. Buffers hold at most one value at a time: strings are leaves.
type state struct {
	r      *Redactor
	src    []byte
	dst    []byte
	rep    Report
	esc    []byte    // unescaped string value
	key    []byte    // unescaped key; latitude look-ahead
	fkey   []byte    // folded key
	a      []byte    // path-operator output
	bufs   [2][]byte // detector outputs (ping-pong)
	w      int
	d      []byte   // re-check of a path operator
	spans  [][2]int // detector matches in the current value (its folded view)
	ospans [][2]int // the same in the value's own bytes
	fv     foldView // the current value's folded view (fold.go)
	pendV  float64  // longitude handed from numeric to deferLon
	limit  int      // len(dst) may not exceed this
	mac    hash.Hash
	sum    []byte
}

func (r *Redactor) getState() *state {
	if s, ok := r.pool.Get().(*state); ok {
		return s
	}
	s := &state{r: r}
	if len(r.key) > 0 {
		s.mac = hmac.New(sha256.New, r.key)
	}
	return s
}

// Apply appends the redacted form of the JSON document src to dst and
// reports what changed. src must be one valid JSON value (normalised input
// is expected but not required: untouched parts are copied byte for byte).
// On invalid input Apply returns an *InputError (wrapping ErrInvalidJSON,
// ErrTooDeep or ErrTooLarge), dst with its original length, and nothing
// else: the caller must drop or reject the message. Apply never modifies src.
func (r *Redactor) Apply(dst, src []byte) ([]byte, Report, error) {
	s := r.getState()
	s.src, s.dst = src, dst
	s.rep = Report{}
	n := len(dst)
	if s.limit = n + r.maxOut; r.maxOut == 0 {
		s.limit = n + 8*len(src) + 64<<10
	}
	i, _, err := s.value(skipWS(src, 0), 0, r.root, -1, ctxTop, nil)
	if err == nil && len(s.dst) > s.limit {
		err = s.tooLarge(i)
	}
	if err == nil {
		if i = skipWS(src, i); i != len(src) {
			err = syntaxErr(i, "unexpected data after the JSON value")
		}
	}
	out, rep := s.dst, s.rep
	s.src, s.dst = nil, nil
	r.pool.Put(s)
	if err != nil {
		return dst[:n], Report{}, err
	}
	rep.ids = r.ids
	return out, rep, nil
}
