package schema

import (
	"strings"
	"testing"

	"github.com/mqttwaf/mqttwaf/normalize"
)

// checkedNormalizers are normalize configurations whose acceptance, for a
// text without number exponents, is meant to imply the decoder's (what
// mqttwaf relies on to call ValidateChecked): I-JSON, key folding on and
// off, the default limits and the loosest within DefaultBounds, validate
// and compact output.
func checkedNormalizers(tb testing.TB) []*normalize.Normalizer {
	tb.Helper()
	b := DefaultBounds()
	var out []*normalize.Normalizer
	for _, o := range []normalize.Options{
		{},
		{ExactKeys: true, Output: normalize.OutputValidate},
		{MaxDepth: b.MaxDepth, MaxNumberDigits: b.MaxNumberLen - 2, BigNumbers: normalize.NumbersKeep},
		{MaxDepth: b.MaxDepth, MaxNumberDigits: b.MaxNumberLen - 2, Output: normalize.OutputValidate, ExactKeys: true},
	} {
		n, err := normalize.New(o)
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, n)
	}
	return out
}

// checkedAgrees fails if, for a text a normalizer accepts without number
// exponents, ValidateChecked and Validate disagree on the text or on the
// normalizer's output.
func checkedAgrees(t *testing.T, v *Validator, ns []*normalize.Normalizer, in []byte) {
	t.Helper()
	for _, n := range ns {
		out, facts, err := n.AppendFacts(nil, in)
		if err != nil || facts.Exponent {
			continue
		}
		for _, doc := range [][]byte{in, out} {
			want, got := v.Validate(doc), v.ValidateChecked(doc)
			if (want == nil) != (got == nil) || want != nil && *want.(*ValidationError) != *got.(*ValidationError) {
				t.Fatalf("%+v on %q: Validate %v, ValidateChecked %v", n.Options(), doc, want, got)
			}
		}
	}
}

// TestValidateCheckedAtTheBounds: texts at and past each bound the
// decoder checks, through every checked normalizer.
func TestValidateCheckedAtTheBounds(t *testing.T) {
	b := DefaultBounds()
	deep := func(n int) string { return strings.Repeat(`{"DATA":`, n) + `1` + strings.Repeat(`}`, n) }
	number := func(digits int) string { return `{"DATA":{"LAT":-1.` + strings.Repeat("5", digits-1) + `}}` }
	docs := []string{
		deep(b.MaxDepth), deep(b.MaxDepth + 1),
		number(b.MaxNumberLen - 2), number(b.MaxNumberLen - 1),
		`{"DATA":{"LAT":1e-5000}}`, `{"DATA":{"LAT":0e999999}}`,
		`{"DATA":{"LAT":1,"L\u0041T":2}}`, `{"a":1,"\u0061":2}`,
		`{"DATA":{"LAT":"\ud800"}}`, `{"DATA":{"LAT":"` + "\xff" + `"}}`, "\ufeff{}",
		`{"DATA":{"LAT":12345678901234567890}}`,
	}
	v, err := New(Options{Fields: komdiFields()})
	if err != nil {
		t.Fatal(err)
	}
	ns := checkedNormalizers(t)
	accepted := 0
	for _, d := range append(docs, komdi, komdiRaw) {
		checkedAgrees(t, v, ns, []byte(d))
		for _, n := range ns {
			if _, f, err := n.AppendFacts(nil, []byte(d)); err == nil && !f.Exponent {
				accepted++
			}
		}
	}
	if accepted < 8 {
		t.Fatalf("only %d normalizer/text pairs accepted: the bounds are not reached", accepted)
	}
}

// FuzzValidateChecked: whatever a checked normalizer accepts without
// number exponents, ValidateChecked judges as Validate does, on the text
// and on the normalizer's output.
func FuzzValidateChecked(f *testing.F) {
	for _, s := range seeds {
		f.Add([]byte(s.payload))
	}
	for _, c := range fieldCases {
		f.Add([]byte(c.doc))
	}
	for _, c := range foldedFieldCases {
		f.Add([]byte(c.doc))
	}
	v, err := New(Options{Fields: komdiFields()})
	if err != nil {
		f.Fatal(err)
	}
	ns := checkedNormalizers(f)
	f.Fuzz(func(t *testing.T, in []byte) { checkedAgrees(t, v, ns, in) })
}
