package schema

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/mqttwaf/mqttwaf/mqttwaf/schema/internal/jsonschema"
	upstream "github.com/santhosh-tekuri/jsonschema/v6"
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
			if !sameTree(got, want) {
				t.Fatalf("decoded %#v, encoding/json %#v", got, want)
			}
		} else if jerr == nil && utf8.Valid(in) && derr.Keyword == KeywordJSON && !strings.Contains(derr.Message, "surrogate") {
			t.Fatalf("decoder refused valid JSON: %v", derr)
		}
	})
}

// sameTree compares a decoded tree with encoding/json's (UseNumber): equal,
// except that an int64 stands for an integer literal of the same value.
func sameTree(got, want any) bool {
	switch g := got.(type) {
	case int64:
		w, ok := want.(json.Number)
		n, err := strconv.ParseInt(string(w), 10, 64)
		return ok && err == nil && n == g
	case map[string]any:
		w, ok := want.(map[string]any)
		if !ok || len(g) != len(w) {
			return false
		}
		for k, gv := range g {
			if wv, ok := w[k]; !ok || !sameTree(gv, wv) {
				return false
			}
		}
		return true
	case []any:
		w, ok := want.([]any)
		if !ok || len(g) != len(w) || (g == nil) != (w == nil) {
			return false
		}
		for i := range g {
			if !sameTree(g[i], w[i]) {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(got, want)
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
	for _, c := range foldedFieldCases {
		f.Add(c.rules[0].Path, "DATA.0", c.doc)
	}
	f.Fuzz(func(t *testing.T, p1, p2, doc string) {
		exact := len(doc)%2 == 1 // both ways, by a bit of the input
		v, err := New(Options{ExactPaths: exact, Fields: []FieldRule{
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
		got, ref := v.fields.check(doc, &sc), referenceCheck(v.fields.rules, doc, v.fields.fold)
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

// differentialSchemas are the schemas FuzzSchemaVerdict checks: the seed
// contract, and keywords whose verdict depends on how the tree represents
// numbers (exact decimals, integers beyond 2^53, 1 vs 1.0), strings and
// structure.
var differentialSchemas = []string{
	`{"$ref": "komdi.json"}`,
	`{"type": "integer", "minimum": 9007199254740992, "maximum": 9007199254740993}`,
	`{"multipleOf": 0.1, "exclusiveMaximum": 1e400, "exclusiveMinimum": -0}`,
	`{"items": {"multipleOf": 0.01, "maximum": 0.30000000000000004}}`,
	`{"enum": [1, "1", null, true, {"a": [1, 2.5]}, [0.1, -0], 18446744073709551617]}`,
	`{"const": 1.0}`,
	`{"const": {"k": [1, -0, 1e2]}}`,
	`{"uniqueItems": true, "maxItems": 30}`,
	`{"items": {"uniqueItems": true}}`,
	`{"properties": {"a": {"type": "string", "maxLength": 3, "pattern": "^[a-z\u00e9]*$"}, "b": {"type": "number"}},
	  "patternProperties": {"^x": {"type": "array", "prefixItems": [{"type": "null"}], "items": {"type": "boolean"}}},
	  "additionalProperties": false, "required": ["a"], "dependentRequired": {"b": ["a"]}}`,
	`{"propertyNames": {"maxLength": 2}, "minProperties": 1, "maxProperties": 3}`,
	`{"allOf": [{"properties": {"a": true}}], "unevaluatedProperties": {"type": "integer"}}`,
	`{"contains": {"type": "integer", "minimum": 10}, "minContains": 2, "unevaluatedItems": false, "prefixItems": [true]}`,
	`{"oneOf": [{"type": "integer"}, {"multipleOf": 3}], "not": {"const": 0}}`,
	// Bounds exact as float64, which the fork decides with float64
	// arithmetic (internal/jsonschema/fastnum.go), next to ones that are not.
	`{"items": {"type": "number", "minimum": -90, "maximum": 90}}`,
	`{"items": {"exclusiveMinimum": 0, "exclusiveMaximum": 0.5, "type": "number"}}`,
	`{"items": {"type": "integer", "multipleOf": 3, "maximum": 9007199254740992}}`,
	`{"items": {"minimum": 9007199254740993, "maximum": 0.1}}`,
	`{"if": {"type": "object", "required": ["t"]}, "then": {"properties": {"t": {"format": "date-time"}}},
	  "else": {"items": {"format": "email"}}}`,
}

// differentialPayloads seed FuzzSchemaVerdict with the numeric edge cases
// of differentialSchemas.
var differentialPayloads = []string{
	`9007199254740992`, `9007199254740993`, `9007199254740994`, `-9007199254740993`,
	`18446744073709551617`, `1e400`, `-1e400`, `1e-400`, `-0`, `-0.0`, `0`, `0e5`,
	`0.1`, `0.3`, `0.30000000000000004`, `0.35`, `1`, `1.0`, `1e0`, `10e-1`, `3`, `6`,
	`[1, 1.0]`, `[1, 1e0, "1"]`, `[0.1, 0.10]`, `[-0, 0]`, `[{"a": 1}, {"a": 1.0}]`, `[[1, 2], [1, 2.0]]`,
	`[10, 11.0, 3]`, `[null, true, false]`, `[0.01, 0.3, 0.31]`, `{"k": [1, 0, 100]}`, `{"k": [1.0, -0.0, 1e2]}`,
	`{"a": [1, 2.5]}`, `{"a": [1, 2.50]}`, `[0.1, 0]`,
	`{"a": "abc"}`, `{"a": "abcd"}`, `{"a": "\u00e9\u00e9\u00e9"}`, `{"a": "A"}`, `{"b": 1}`, `{"a": "", "b": 1}`,
	`{"a": "x", "x1": [null, true]}`, `{"a": "x", "x1": [1]}`, `{"a": "x", "y": 1}`, `{"\u0061": "x"}`,
	`{"a": 1, "zz": 2.0}`, `{"a": 1, "zz": 2.5}`, `{"abc": 1}`, `{}`, `[]`,
	`[90, 90.0, 9e1, 90.00000000000001, 90.000000000000000001, 89.99999999999999999, -90.0000000000000000001, -91]`,
	`[0.5, 0.49999999999999999999, 0.5000000000000000001, 1e-400, 0.0, 5e-1]`,
	`[9, 9007199254740992, 9007199254740993, 9007199254740995, 3e0, 3.0000000000000000001, -3, -0]`,
	`[0.1, 0.10000000000000000001, 9007199254740993, 9007199254740994, 99999999999999999999]`,
	`{"t": "2017-11-28T13:45:20Z"}`, `{"t": "2017-11-28 13:45"}`, `["a@b.example", "nope"]`,
}

// FuzzSchemaVerdict: whenever the decoder accepts a payload, the JSON
// Schema verdict on its tree is the verdict on the tree of the library's
// own decoder (jsonschema.UnmarshalJSON), and the fork's verdict on that
// tree is upstream's, error text included. The Validator is reused across
// payloads, so a tree built in storage kept from earlier payloads (see
// decoder.release) is checked too.
func FuzzSchemaVerdict(f *testing.F) {
	for _, p := range differentialPayloads {
		f.Add([]byte(p))
	}
	for _, s := range seeds {
		f.Add([]byte(s.payload))
	}
	komdiDoc, err := os.ReadFile(komdiSchema)
	if err != nil {
		f.Fatal(err)
	}
	var vs []*Validator
	var ups []*upstream.Schema
	for i, s := range differentialSchemas {
		res := map[string]string{"s.json": s, "komdi.json": string(komdiDoc),
			"coordinates.schema.json": mustRead(f, "testdata/coordinates.schema.json")}
		v, err := New(Options{Schema: "s.json", Resources: res})
		if err != nil {
			f.Fatalf("schema %d: %v", i, err)
		}
		vs = append(vs, v)
		ups = append(ups, compileUpstream(f, res, "s.json"))
	}
	other := []byte(komdi)
	f.Fuzz(func(t *testing.T, in []byte) {
		orig := bytes.Clone(in)
		for i, v := range vs {
			got := v.Validate(in)
			var ve *ValidationError
			if got != nil && errors.As(got, &ve) {
				switch ve.Keyword {
				case KeywordJSON, KeywordDepth, KeywordDuplicateKey, KeywordNumber:
					return // the decoder refused it; FuzzValidate covers that
				}
			}
			tree, err := jsonschema.UnmarshalJSON(bytes.NewReader(in))
			if err != nil {
				t.Fatalf("schema %d: the decoder accepted what the library's decoder refuses: %v", i, err)
			}
			if fe, ue := forkLeaves(v.sch.Validate(tree)), upstreamLeaves(ups[i].Validate(tree)); fe != ue {
				t.Fatalf("schema %d: the fork says %v, upstream %v", i, fe, ue)
			}
			want := v.validateSchema(tree)
			if !sameError(got, want) {
				t.Fatalf("schema %d: verdict %v on our tree, %v on the library's", i, got, want)
			}
			// Again after another payload, from recycled storage.
			_ = v.Validate(other)
			if again := v.Validate(in); !sameError(again, want) {
				t.Fatalf("schema %d: verdict %v after another payload, want %v", i, again, want)
			}
		}
		if !bytes.Equal(in, orig) {
			t.Fatal("Validate modified its input")
		}
	})
}

// compileUpstream compiles root with the upstream library, set up as
// compileSchema sets up the fork for the default draft.
func compileUpstream(t testing.TB, resources map[string]string, root string) *upstream.Schema {
	t.Helper()
	c := upstream.NewCompiler()
	c.DefaultDraft(upstream.Draft2020)
	c.AssertFormat()
	for loc, doc := range resources {
		v, err := upstream.UnmarshalJSON(strings.NewReader(doc))
		if err != nil {
			t.Fatal(err)
		}
		if err := c.AddResource(loc, v); err != nil {
			t.Fatal(err)
		}
	}
	sch, err := c.Compile(root)
	if err != nil {
		t.Fatal(err)
	}
	return sch
}

// errorLeaves lists where and by which keyword the library's error tree
// failed, sorted: the order of siblings, and of the names inside a message,
// follows map iteration. parts gives a node's location, keyword and causes, so
// that the fork's and upstream's error types read alike.
func errorLeaves[E comparable](e E, parts func(E) (loc, keyword []string, causes []E)) string {
	var zero E
	if e == zero {
		return "valid"
	}
	var leaves []string
	var walk func(E)
	walk = func(e E) {
		loc, kw, causes := parts(e)
		leaves = append(leaves, strings.Join(loc, "/")+" "+strings.Join(kw, "/"))
		for _, c := range causes {
			walk(c)
		}
	}
	walk(e)
	slices.Sort(leaves)
	return strings.Join(leaves, "; ")
}

func forkLeaves(err error) string {
	e, _ := err.(*jsonschema.ValidationError)
	return errorLeaves(e, func(e *jsonschema.ValidationError) ([]string, []string, []*jsonschema.ValidationError) {
		return e.InstanceLocation, e.ErrorKind.KeywordPath(), e.Causes
	})
}

func upstreamLeaves(err error) string {
	e, _ := err.(*upstream.ValidationError)
	return errorLeaves(e, func(e *upstream.ValidationError) ([]string, []string, []*upstream.ValidationError) {
		return e.InstanceLocation, e.ErrorKind.KeywordPath(), e.Causes
	})
}

func sameError(a, b error) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return *a.(*ValidationError) == *b.(*ValidationError)
}

func mustRead(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
