package schema

import (
	"sync"
	"unsafe"

	"github.com/mqttwaf/mqttwaf/mqttwaf/schema/internal/jsonschema"
)

// Validator checks that payloads fit the contract of their topic: one valid
// JSON value, the fast field rules, then the JSON Schema. It models a
// compiled rule set: built once by New, never changed afterwards.
//
// The zero Validator is not usable; create one with New. A Validator is
// immutable and safe for concurrent use by any number of goroutines.
type Validator struct {
	sch      *jsonschema.Schema
	fields   *fieldSet // nil without rules
	maxDepth int
	pool     sync.Pool // *decoder
}

// New compiles opts into a Validator. Schema files (and the files they
// $ref) are read now, never again. It returns an *OptionError naming the
// field at fault, or the schema file and its problem.
func New(opts Options) (*Validator, error) {
	v := &Validator{maxDepth: opts.MaxDepth}
	if v.maxDepth == 0 {
		v.maxDepth = defaultMaxDepth
	}
	if v.maxDepth < 1 || v.maxDepth > maxMaxDepth {
		return nil, optErr("Options.MaxDepth", "must be between 1 and %d, got %d", maxMaxDepth, opts.MaxDepth)
	}
	if len(opts.Fields) > maxFieldRules {
		return nil, optErr("Options.Fields", "at most %d rules, got %d", maxFieldRules, len(opts.Fields))
	}
	var rules []fieldRule
	for i, f := range opts.Fields {
		fr, err := compileField(i, f)
		if err != nil {
			return nil, err
		}
		rules = append(rules, fr)
	}
	if len(rules) > 0 {
		v.fields = newFieldSet(rules, !opts.ExactPaths)
	}
	if opts.Schema != "" {
		sch, err := compileSchema(opts)
		if err != nil {
			return nil, err
		}
		v.sch = sch
	} else if len(opts.Resources) > 0 || opts.Draft != "" {
		return nil, optErr("Options.Schema", "is empty, but Resources or Draft is set; name the root schema")
	}
	v.pool.New = func() any { return new(decoder) }
	return v, nil
}

// Validate checks payload and returns nil if it fits, or a
// *ValidationError: keyword "json", "depth" or "duplicateKey" when it is
// not one acceptable JSON value, otherwise the first failing field rule
// (in Options order) or JSON Schema keyword. It never panics and does not
// keep payload or any part of it.
//
// Field rules alone allocate nothing on success. With a JSON Schema the
// payload is decoded into a value tree first (see the benchmarks for what
// that costs), which shares payload's bytes: payload must not change
// during the call.
func (v *Validator) Validate(payload []byte) error {
	d := v.pool.Get().(*decoder)
	defer func() {
		d.release() // the tree is garbage now
		v.pool.Put(d)
	}()
	d.reset(payload, v.maxDepth, v.sch != nil)
	doc, err := d.document()
	d.in = nil
	if err != nil {
		return err
	}
	if v.fields != nil {
		// gjson works on strings; payload is not modified while we look
		// and no result outlives this call, so a copy is not needed.
		s := unsafe.String(unsafe.SliceData(payload), len(payload))
		if err := v.fields.check(s, &d.fields); err != nil {
			return err
		}
	}
	if v.sch != nil {
		return v.validateSchema(doc)
	}
	return nil
}

// Bounds are the limits Validate's decoder holds a payload to besides
// RFC 8259 syntax, valid UTF-8, no lone surrogates and no duplicate keys
// (compared after unescaping).
type Bounds struct {
	MaxDepth     int // nesting ([[1]] is 2 deep)
	MaxNumberLen int // characters of a number literal
	MaxExponent  int // magnitude of a number's decimal exponent
}

// DefaultBounds are the Bounds of a Validator with the default MaxDepth.
func DefaultBounds() Bounds {
	return Bounds{MaxDepth: defaultMaxDepth, MaxNumberLen: maxNumberLen, MaxExponent: maxExponent}
}

// Bounds returns the limits of v's decoder.
func (v *Validator) Bounds() Bounds {
	return Bounds{MaxDepth: v.maxDepth, MaxNumberLen: maxNumberLen, MaxExponent: maxExponent}
}

// ValidateChecked is Validate for a payload already held to everything its
// decoder checks: one JSON value (RFC 8259), valid UTF-8 without lone
// surrogates or duplicate keys (compared after unescaping), within
// v.Bounds(), as the normalize package's i-json profile holds a text it
// accepts when its limits are within them. Without a JSON Schema, which
// needs the decoded value tree, it skips the decoding and runs the field
// rules at once: the same verdict as Validate, one reading of the payload
// fewer. Given a payload that breaks the precondition it may accept what
// Validate refuses.
func (v *Validator) ValidateChecked(payload []byte) error {
	if v.sch != nil || v.fields == nil {
		return v.Validate(payload)
	}
	d := v.pool.Get().(*decoder)
	defer v.pool.Put(d)
	if err := v.fields.check(unsafe.String(unsafe.SliceData(payload), len(payload)), &d.fields); err != nil {
		return err
	}
	return nil
}

// validateSchema runs the JSON Schema library. A panic inside it (on input
// that got past the decoder's bounds) is turned into a refusal: fail
// closed, and keep the broker alive.
func (v *Validator) validateSchema(doc any) (err error) {
	defer func() {
		if recover() != nil {
			err = verr("", "schema", "the validator failed on this payload")
		}
	}()
	if err := v.sch.Validate(doc); err != nil {
		return convertError(err)
	}
	return nil
}
