package normalize

import (
	"errors"
	"hash/maphash"
	"sync"
	"sync/atomic"
)

// Normalizer is a compiled, immutable JSON firewall: it validates one JSON text against its
// Options and appends the result (validated input, compact form or RFC 8785 form) to a buffer.
// Build it with New; the zero value rejects every input (fail closed) with ErrNotConfigured. A
// *Normalizer is safe for concurrent use by multiple goroutines.
//
// Scratch state (the nesting stack, decoded keys, duplicate-key hash sets, the JCS sort buffer)
// comes from a one-slot cache and a sync.Pool owned by the Normalizer, so Append allocates
// nothing once they are warm and dst has enough capacity. Scratch grown by an unusually large
// message is dropped rather than kept, so one hostile message does not pin memory.
type Normalizer struct {
	opts Options
	cfg  config
	pool sync.Pool
	// cache holds one idle state: a swap is cheaper than a sync.Pool round trip, which matters
	// for 600-byte messages; sync.Pool serves concurrent callers.
	cache atomic.Pointer[state]
}

// config is Options reduced to what the hot loop reads.
type config struct {
	maxBytes, maxDepth, maxMembers, maxElements, maxString, maxDigits int

	emit       bool // write output (compact or JCS); false: validate only
	jcs        bool
	checkDup   bool // I-JSON
	fold       bool // checkDup && !ExactKeys: keys compared folded (fold.go)
	replace    bool // RFC 8259 with output: replace invalid UTF-8 and lone surrogates by U+FFFD
	checkRange bool // reject integers beyond 2^53-1 and binary64 overflow
	seed       maphash.Seed
}

// New validates o, fills in defaults and returns a ready Normalizer. An error names the
// offending field and the accepted values.
func New(o Options) (*Normalizer, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	n := &Normalizer{opts: o}
	n.cfg = config{
		maxBytes:    o.MaxBytes,
		maxDepth:    o.MaxDepth,
		maxMembers:  o.MaxMembers,
		maxElements: o.MaxElements,
		maxString:   o.MaxStringBytes,
		maxDigits:   o.MaxNumberDigits,
		emit:        o.Output != OutputValidate,
		jcs:         o.Output == OutputJCS,
		checkDup:    o.Profile == ProfileIJSON,
		fold:        o.Profile == ProfileIJSON && !o.ExactKeys,
		replace:     o.Profile == ProfileRFC8259 && o.Output != OutputValidate,
		checkRange:  o.BigNumbers == NumbersReject,
		// A random seed per Normalizer: attackers cannot precompute keys that collide in the
		// duplicate-key hash set and turn it quadratic.
		seed: maphash.MakeSeed(),
	}
	n.pool.New = func() any { return newState(&n.cfg) }
	return n, nil
}

// ErrNotConfigured is returned by the zero Normalizer, which was not built with New.
var ErrNotConfigured = errors.New("normalize: Normalizer not built with New")

// Options returns the effective options, with every default filled in.
func (n *Normalizer) Options() Options { return n.opts }

// Append validates the JSON text in src and, if it passes, appends the configured output to dst
// and returns the extended slice. src is not modified or retained.
//
// On rejection it returns dst unchanged and an *Error carrying the offset and Reason. Bytes past
// len(dst) in dst's backing array may have been overwritten by then, but no byte of dst[:len(dst)].
func (n *Normalizer) Append(dst, src []byte) ([]byte, error) {
	out, _, err := n.AppendFacts(dst, src)
	return out, err
}

// Facts are what Append learnt about a JSON text it accepted, for a later reader that holds the
// text to limits of its own and need not read it again to know it is within them. They hold for
// the output too, except in JCS form, which rewrites numbers.
type Facts struct {
	// Exponent is true if some number has an exponent part (1e5, 2.5E-3). Without one, every
	// number is within MaxNumberDigits digits and at most two other characters ('-', '.').
	Exponent bool
}

// AppendFacts is Append, and also returns Facts about the accepted text (zero on rejection).
func (n *Normalizer) AppendFacts(dst, src []byte) ([]byte, Facts, error) {
	if len(src) > n.cfg.maxBytes || n.cfg.maxBytes == 0 {
		if n.cfg.maxBytes == 0 {
			return dst, Facts{}, ErrNotConfigured
		}
		return dst, Facts{}, &Error{Offset: n.cfg.maxBytes, Reason: ReasonTooLarge}
	}
	s := n.cache.Swap(nil)
	if s == nil {
		s = n.pool.Get().(*state)
	}
	var (
		out = dst
		r   Reason
		off int
	)
	s.exponent = false
	if n.cfg.emit {
		out, r, off = s.run(dst, src)
	} else {
		r, off = s.validate(src)
	}
	facts := Facts{Exponent: s.exponent}
	s.release()
	if !n.cache.CompareAndSwap(nil, s) {
		n.pool.Put(s)
	}
	if r != reasonNone {
		return dst, Facts{}, &Error{Offset: off, Reason: r}
	}
	if !n.cfg.emit {
		out = append(out, src...)
	}
	return out, facts, nil
}
