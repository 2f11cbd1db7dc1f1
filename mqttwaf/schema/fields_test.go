package schema

import (
	"testing"
)

// fieldCases exercise rule kinds and path forms beyond the seed message.
// Each document is checked against its rules by the one-pass evaluator and
// by the reference evaluator, and against the expected verdict.
var fieldCases = []struct {
	name  string
	rules []FieldRule
	doc   string
	want  verdict
}{
	{"every element", []FieldRule{{Path: "readings.#.temp", Required: true, Min: f64(-40), Max: f64(85)}},
		`{"readings":[{"temp":20},{"temp":90}]}`, v("/readings/1/temp", "maximum")},
	{"every element: missing member", []FieldRule{{Path: "readings.#.temp", Required: true}},
		`{"readings":[{"temp":20},{"t":1}]}`, v("/readings/1/temp", "required")},
	{"every element: optional member", []FieldRule{{Path: "readings.#.temp", Max: f64(85)}},
		`{"readings":[{"temp":20},{"t":1}]}`, verdict{}},
	{"every element: empty array", []FieldRule{{Path: "readings.#.temp", Required: true}},
		`{"readings":[]}`, verdict{}},
	{"every element: not an array", []FieldRule{{Path: "readings.#.temp", Required: true}},
		`{"readings":{"temp":1}}`, v("/readings", "type")},
	{"every element: container missing", []FieldRule{{Path: "readings.#.temp", Required: true}},
		`{"other":1}`, v("/readings", "required")},
	{"nested every element", []FieldRule{{Path: "a.#.b.#", Type: "integer"}},
		`{"a":[{"b":[1,2]},{"b":[3,4.5]}]}`, v("/a/1/b/1", "type")},
	{"array index", []FieldRule{{Path: "tags.1", Required: true, Enum: []any{"b"}}},
		`{"tags":["a","c"]}`, v("/tags/1", "enum")},
	{"array index out of range", []FieldRule{{Path: "tags.5", Required: true}},
		`{"tags":["a"]}`, v("/tags/5", "required")},
	{"numeric key on an object", []FieldRule{{Path: "m.1", Required: true, Type: "boolean"}},
		`{"m":{"1":true}}`, verdict{}},
	{"escaped dot in a key", []FieldRule{{Path: `a\.b`, Required: true, Type: "null"}},
		`{"a.b":null,"a":{"b":1}}`, verdict{}},
	{"pointer escapes", []FieldRule{{Path: `a/b.c~d`, Required: true}},
		`{"a/b":{}}`, v("/a~1b/c~0d", "required")},
	{"types", []FieldRule{{Path: "s", Type: "string"}, {Path: "n", Type: "number"}, {Path: "i", Type: "integer"},
		{Path: "b", Type: "boolean"}, {Path: "o", Type: "object"}, {Path: "a", Type: "array"}, {Path: "z", Type: "null"}},
		`{"s":"x","n":1.5,"i":-3,"b":false,"o":{},"a":[],"z":null}`, verdict{}},
	{"object is not an array", []FieldRule{{Path: "o", Type: "array"}}, `{"o":{}}`, v("/o", "type")},
	{"integer with exponent", []FieldRule{{Path: "i", Type: "integer"}}, `{"i":1.5e1}`, verdict{}},
	{"fraction with exponent", []FieldRule{{Path: "i", Type: "integer"}}, `{"i":1.5e0}`, v("/i", "type")},
	{"integer 1e2", []FieldRule{{Path: "i", Type: "integer"}}, `{"i":1e2}`, verdict{}},
	{"min inclusive", []FieldRule{{Path: "n", Min: f64(1)}}, `{"n":1}`, verdict{}},
	{"below min", []FieldRule{{Path: "n", Min: f64(1)}}, `{"n":0.999}`, v("/n", "minimum")},
	{"numeric enum", []FieldRule{{Path: "n", Enum: []any{1, 2.5, "3"}}}, `{"n":3}`, v("/n", "enum")},
	{"numeric enum as float", []FieldRule{{Path: "n", Enum: []any{1, 2.5}}}, `{"n":1.0}`, verdict{}},
	{"string enum is not a number", []FieldRule{{Path: "n", Enum: []any{"1"}}}, `{"n":1}`, v("/n", "enum")},
	{"pattern is a search", []FieldRule{{Path: "s", Pattern: `[0-9]`}}, `{"s":"abc1"}`, verdict{}},
	{"pattern on unescaped text", []FieldRule{{Path: "s", Pattern: `^a"b$`}}, `{"s":"a\"b"}`, verdict{}},
	{"length in characters", []FieldRule{{Path: "s", MinLength: 3, MaxLength: 3}}, `{"s":"홍길수"}`, verdict{}},
	{"too short", []FieldRule{{Path: "s", MinLength: 4}}, `{"s":"홍길수"}`, v("/s", "minLength")},
	{"implied string type", []FieldRule{{Path: "s", MaxLength: 3}}, `{"s":12}`, v("/s", "type")},
	{"implied number type", []FieldRule{{Path: "n", Max: f64(3)}}, `{"n":"2"}`, v("/n", "type")},
	{"first rule in Options order wins", []FieldRule{{Path: "z", Required: true}, {Path: "a", Required: true}},
		`{}`, v("/z", "required")},
	{"order across branches", []FieldRule{{Path: "b.x", Max: f64(1)}, {Path: "a.y", Max: f64(1)}},
		`{"a":{"y":5},"b":{"x":5}}`, v("/b/x", "maximum")},
	{"two rules on one path", []FieldRule{{Path: "n", Required: true}, {Path: "n", Max: f64(1)}},
		`{"n":2}`, v("/n", "maximum")},
	{"rule on a container and below it", []FieldRule{{Path: "d", Type: "object", Required: true}, {Path: "d.x", Required: true}},
		`{"d":"str"}`, v("/d", "type")},
	{"below a scalar", []FieldRule{{Path: "d.x", Required: true}}, `{"d":"str"}`, v("/d/x", "required")},
	{"escaped key in the document", []FieldRule{{Path: "key", Required: true, Enum: []any{"v"}}}, `{"k\u0065y":"\u0076"}`, verdict{}},
}

func TestFieldRules(t *testing.T) {
	for _, c := range fieldCases {
		val, err := New(Options{Fields: c.rules})
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		got := gotVerdict(t, val.Validate([]byte(c.doc)))
		if got != c.want {
			t.Errorf("%s: got %+v, want %+v", c.name, got, c.want)
		}
		var ref verdict
		if e := referenceCheck(val.fields.rules, c.doc, val.fields.fold); e != nil {
			ref = verdict{e.Path, e.Keyword}
		}
		if ref != c.want {
			t.Errorf("%s: reference evaluator got %+v, want %+v", c.name, ref, c.want)
		}
	}
}

func TestFieldRulesMatchReferenceOnSeeds(t *testing.T) {
	_, fieldsV := komdiValidators(t)
	for _, s := range seeds {
		if !jsonOK(s.payload) {
			continue // field rules only ever see valid JSON
		}
		var d decoder
		var got, ref *ValidationError
		got = fieldsV.fields.check(s.payload, &d.fields)
		ref = referenceCheck(fieldsV.fields.rules, s.payload, fieldsV.fields.fold)
		if (got == nil) != (ref == nil) || got != nil && *got != *ref {
			t.Errorf("%s: one pass %v, reference %v", s.name, got, ref)
		}
	}
}

func jsonOK(s string) bool {
	var d decoder
	d.reset([]byte(s), defaultMaxDepth, false)
	_, err := d.document()
	return err == nil
}

// foldedFieldCases: by default paths match keys the way case-insensitive
// back ends read them, and through arrays of objects; exact is the verdict
// with ExactPaths (gjson's reading).
var foldedFieldCases = []struct {
	name  string
	rules []FieldRule
	doc   string
	want  verdict
	exact verdict
}{
	{"case variant duplicate: both checked", []FieldRule{{Path: "DATA.LAT", Max: f64(90)}},
		`{"DATA":{"LAT":45,"lat":999}}`, v("/DATA/lat", "maximum"), verdict{}},
	{"lone lower-case key", []FieldRule{{Path: "DATA.LAT", Required: true, Max: f64(90)}},
		`{"DATA":{"lat":999}}`, v("/DATA/lat", "maximum"), v("/DATA/LAT", "required")},
	{"lower-case rule, upper-case document", []FieldRule{{Path: "data.cmd", Enum: []any{"status"}}},
		`{"DATA":{"CMD":"reboot"}}`, v("/DATA/CMD", "enum"), verdict{}},
	{"fullwidth key", []FieldRule{{Path: "DATA.CMD", Enum: []any{"status"}}},
		`{"DATA":{"ＣＭＤ":"reboot"}}`, v("/DATA/ＣＭＤ", "enum"), verdict{}},
	{"Kelvin sign", []FieldRule{{Path: "k", Type: "string"}}, "{\"\u212a\":1}", v("/\u212a", "type"), verdict{}},
	{"array of objects", []FieldRule{{Path: "DATA.LAT", Max: f64(90)}},
		`{"DATA":[{"LAT":45},{"lat":999}]}`, v("/DATA/1/lat", "maximum"), verdict{}},
	{"nested arrays of objects", []FieldRule{{Path: "DATA.LAT", Max: f64(90)}},
		`{"DATA":[[{"LAT":45}],[[{"LAT":91}]]]}`, v("/DATA/1/0/0/LAT", "maximum"), verdict{}},
	{"required in every object of an array", []FieldRule{{Path: "DATA.LAT", Required: true}},
		`{"DATA":[{"LAT":45},{"LON":1},7]}`, v("/DATA/1/LAT", "required"), v("/DATA/LAT", "required")},
	{"required: an array without objects", []FieldRule{{Path: "DATA.LAT", Required: true}},
		`{"DATA":[1,2]}`, v("/DATA/LAT", "required"), v("/DATA/LAT", "required")},
	{"required: an empty array", []FieldRule{{Path: "DATA.LAT", Required: true}},
		`{"DATA":[]}`, v("/DATA/LAT", "required"), v("/DATA/LAT", "required")},
	{"an index stays an index", []FieldRule{{Path: "tags.1", Required: true, Type: "string"}},
		`{"tags":["a","b",{"x":1}]}`, verdict{}, verdict{}},
	{"an index on objects of an array", []FieldRule{{Path: "tags.1", Type: "string"}},
		`{"tags":["a","b",{"1":2}]}`, v("/tags/2/1", "type"), verdict{}},
	{"'#' unchanged", []FieldRule{{Path: "r.#.T", Required: true, Max: f64(1)}},
		`{"r":[{"t":0},{"T":2}]}`, v("/r/1/T", "maximum"), v("/r/0/T", "required")},
	{"deeper rule through an array", []FieldRule{{Path: "a.b.c", Required: true}},
		`{"A":[{"B":{"C":1}},{"b":{}}]}`, v("/A/1/b/c", "required"), v("/a/b/c", "required")},
}

func TestFieldRulesFolded(t *testing.T) {
	for _, c := range foldedFieldCases {
		for _, exact := range []bool{false, true} {
			want := c.want
			if exact {
				want = c.exact
			}
			val, err := New(Options{Fields: c.rules, ExactPaths: exact})
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			if got := gotVerdict(t, val.Validate([]byte(c.doc))); got != want {
				t.Errorf("%s (exact %v): got %+v, want %+v", c.name, exact, got, want)
			}
			var ref verdict
			if e := referenceCheck(val.fields.rules, c.doc, !exact); e != nil {
				ref = verdict{e.Path, e.Keyword}
			}
			if ref != want {
				t.Errorf("%s (exact %v): reference evaluator got %+v, want %+v", c.name, exact, ref, want)
			}
		}
	}
}
