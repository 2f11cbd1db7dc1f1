package schema

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/tidwall/gjson"
)

// FuzzValidate: neither engine panics on arbitrary bytes, both agree on
// what is not acceptable JSON, and what the decoder accepts is exactly what
// encoding/json decodes.
func FuzzValidate(f *testing.F) {
	for _, s := range seeds {
		f.Add([]byte(s.payload))
	}
	schemaV, fieldsV := komdiValidators(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		orig := bytes.Clone(in)
		errS, errF := schemaV.Validate(in), fieldsV.Validate(in)
		if !bytes.Equal(in, orig) {
			t.Fatal("Validate modified its input")
		}
		var vs, vf *ValidationError
		if errS != nil && !errors.As(errS, &vs) || errF != nil && !errors.As(errF, &vf) {
			t.Fatalf("untyped errors: %v, %v", errS, errF)
		}
		syntax := func(ve *ValidationError) bool {
			return ve != nil && (ve.Keyword == KeywordJSON || ve.Keyword == KeywordDepth || ve.Keyword == KeywordDuplicateKey || ve.Keyword == KeywordNumber)
		}
		if syntax(vs) != syntax(vf) || syntax(vs) && *vs != *vf {
			t.Fatalf("build and scan modes disagree: %v vs %v", errS, errF)
		}

		// Differential check of the decoder against encoding/json.
		d := &decoder{}
		d.reset(in, 10000, true)
		got, derr := d.document()
		dec := json.NewDecoder(bytes.NewReader(in))
		dec.UseNumber()
		var want any
		jerr := dec.Decode(&want)
		if jerr == nil {
			if _, err := dec.Token(); err == nil || !errors.Is(err, io.EOF) {
				jerr = errors.New("trailing data")
			}
		}
		if derr == nil {
			if jerr != nil || !utf8.Valid(in) {
				t.Fatalf("decoder accepted what encoding/json refuses (%v) or invalid UTF-8", jerr)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("decoded %#v, encoding/json %#v", got, want)
			}
		} else if jerr == nil && utf8.Valid(in) && derr.Keyword == KeywordJSON && !strings.Contains(derr.Message, "surrogate") {
			t.Fatalf("decoder refused valid JSON: %v", derr)
		}
	})
}

// FuzzPlausibility: Check never panics, and a refused message leaves the
// history exactly as it was: a twin that never saw it judges the next
// message the same way.
func FuzzPlausibility(f *testing.F) {
	for _, s := range seeds {
		f.Add([]byte(s.payload), int64(0))
	}
	f.Add([]byte(msg(1, busanLat, busanLon, 2)), int64(1))
	f.Add([]byte(msg(-1, depotLat, depotLon, 2)), int64(60))
	f.Add([]byte(msg(0, depotLat, depotLon, 1)), int64(1))
	first, next := []byte(msg(0, depotLat, depotLon, 1)), []byte(msg(30, depotLat+100*metreLat, depotLon, 2))
	o := fleetOptions()
	o.MaxDevices = 16 // the default allocates its index up front
	f.Fuzz(func(t *testing.T, in []byte, after int64) {
		p1, err := NewPlausibility(o)
		if err != nil {
			t.Fatal(err)
		}
		p2, _ := NewPlausibility(o)
		for _, p := range []*Plausibility{p1, p2} {
			if err := p.Check(t0, "a", first); err != nil {
				t.Fatal(err)
			}
		}
		now := t0.Add(time.Duration(after%100000) * time.Second)
		if err := p1.Check(now, "a", in); err == nil {
			return
		} else if _, ok := err.(*ValidationError); !ok {
			t.Fatalf("untyped error %T", err)
		}
		e1, e2 := p1.Check(t0.Add(30*time.Second), "a", next), p2.Check(t0.Add(30*time.Second), "a", next)
		if (e1 == nil) != (e2 == nil) {
			t.Fatalf("a refused message changed the history: %v vs %v", e1, e2)
		}
	})
}

// FuzzRulePath: any path is either refused by New or evaluated on any
// document without panicking, and the one-pass evaluator agrees with the
// reference evaluator (one gjson lookup per component, rule by rule).
func FuzzRulePath(f *testing.F) {
	for _, r := range komdiFields() {
		f.Add(r.Path, "DATA.LAT", komdi)
	}
	for _, s := range seeds {
		f.Add("DATA.#.x", "DATA.1", s.payload)
	}
	for _, c := range fieldCases {
		f.Add(c.rules[0].Path, "a.#", c.doc)
	}
	f.Add(`a\.b.#.c`, "a\\.b.1.c", `{"a.b":[{"c":1},{"d":2},3]}`)
	f.Fuzz(func(t *testing.T, p1, p2, doc string) {
		v, err := New(Options{Fields: []FieldRule{
			{Path: p1, Required: true, Type: "number", Max: f64(1)},
			{Path: p2, MaxLength: 2},
			{Path: p1, Enum: []any{"x", 0.5}},
			{Path: p2, Required: true},
		}})
		if err != nil {
			return
		}
		err = v.Validate([]byte(doc))
		if err != nil {
			if _, ok := err.(*ValidationError); !ok {
				t.Fatalf("untyped error %T", err)
			}
		}
		if !jsonOK(doc) {
			return
		}
		var sc fieldScratch
		got, ref := v.fields.check(doc, &sc), referenceCheck(v.fields.rules, doc)
		if (got == nil) != (ref == nil) || got != nil && *got != *ref {
			t.Fatalf("one pass %v, reference %v", got, ref)
		}
	})
}

// FuzzTimestamp: any format and value either is refused or read without
// panicking, within the documented range.
func FuzzTimestamp(f *testing.F) {
	f.Add("20060102150405", "+09:00", `"20171128134520"`)
	f.Add("unix", "", `1511844320.25`)
	f.Add("unix_ms", "", `"1511844320123"`)
	f.Add("rfc3339", "", `"2017-11-28T04:45:20.5Z"`)
	for _, s := range seeds {
		f.Add("20060102150405", "UTC", s.payload)
	}
	f.Fuzz(func(t *testing.T, format, zone, raw string) {
		if strings.Contains(zone, "/") || strings.Contains(zone, ".") {
			return // IANA names read the zone database from disk
		}
		tf, err := parseTSFormat(format, zone)
		if err != nil {
			return
		}
		ns, err := tf.read(gjson.Parse(raw))
		if err == nil && (ns < 0 || ns >= maxUnixSec*1e9) {
			t.Fatalf("%q %q %q: %d outside the documented range", format, zone, raw, ns)
		}
	})
}
