package schema

import (
	"errors"
	"strings"
	"testing"
)

func TestCompileRefusesBrokenSchemas(t *testing.T) {
	for _, c := range []struct {
		name   string
		opts   Options
		substr []string // all must appear in the error
		remote bool
	}{
		{"invalid JSON", Options{Schema: "testdata/broken.schema.json"},
			[]string{"broken.schema.json", "line 5, column 45", "invalid JSON"}, false},
		{"ref to invalid JSON", Options{Schema: "testdata/ref-to-broken.schema.json"},
			[]string{"broken.schema.json", "line 5"}, false},
		{"not valid against the meta-schema", Options{Schema: "testdata/bad-keyword.schema.json"},
			[]string{"bad-keyword.schema.json", "metaschema", "/type"}, false},
		{"missing file", Options{Schema: "testdata/no-such.schema.json"},
			[]string{"no-such.schema.json", "no such file"}, false},
		{"https ref", Options{Schema: "testdata/remote-ref.schema.json"},
			[]string{"https://example.com/schemas/coordinates.json", "not fetched: save the document as a local file"}, true},
		{"http root", Options{Schema: "http://example.com/s.json"},
			[]string{"http://example.com/s.json", "not fetched"}, true},
		{"inline ref to https", Options{Schema: "mem.json", Resources: map[string]string{
			"mem.json": `{"$ref":"https://example.com/other.json"}`}},
			[]string{"https://example.com/other.json"}, true},
		{"invalid inline resource", Options{Schema: "mem.json", Resources: map[string]string{"mem.json": `{"type":}`}},
			[]string{`Options.Resources["mem.json"]`, "line 1, column 9"}, false},
		{"unsupported scheme", Options{Schema: "ftp://example.com/s.json"},
			[]string{"ftp"}, false},
		{"bad pattern in schema", Options{Schema: "mem.json", Resources: map[string]string{"mem.json": `{"pattern":"("}`}},
			[]string{"mem.json", "pattern"}, false},
	} {
		_, err := New(c.opts)
		if err == nil {
			t.Errorf("%s: compiled, want an error", c.name)
			continue
		}
		var oe *OptionError
		if !errors.As(err, &oe) {
			t.Errorf("%s: %T, want *OptionError", c.name, err)
		}
		for _, s := range c.substr {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("%s: error %q does not mention %q", c.name, err, s)
			}
		}
		// A policy user cannot act on a Go option: only Go callers set
		// Resources, and only their own resources' errors name it.
		if strings.Contains(err.Error(), "Options.Resources") && c.opts.Resources == nil {
			t.Errorf("%s: error %q names a Go option", c.name, err)
		}
		if got := errors.Is(err, ErrRemoteRef); got != c.remote {
			t.Errorf("%s: errors.Is(err, ErrRemoteRef) = %v, want %v (%v)", c.name, got, c.remote, err)
		}
	}
}

func TestResourcesAndDrafts(t *testing.T) {
	coords := `{"$defs":{"lat":{"type":"number","minimum":-90,"maximum":90}}}`
	for _, c := range []struct {
		name string
		opts Options
		in   string
		want verdict
	}{
		{"inline root and https ref served from Resources", Options{Schema: "https://example.com/root.json", Resources: map[string]string{
			"https://example.com/root.json":   `{"properties":{"lat":{"$ref":"coords.json#/$defs/lat"}}}`,
			"https://example.com/coords.json": coords,
		}}, `{"lat":91}`, v("/lat", "maximum")},
		{"inline ref accepted", Options{Schema: "https://example.com/root.json", Resources: map[string]string{
			"https://example.com/root.json":   `{"properties":{"lat":{"$ref":"coords.json#/$defs/lat"}}}`,
			"https://example.com/coords.json": coords,
		}}, `{"lat":45}`, verdict{}},
		{"inline schema refers to a local file", Options{Schema: "inline.json", Resources: map[string]string{
			"inline.json": `{"properties":{"lat":{"$ref":"testdata/coordinates.schema.json#/$defs/latitude"}}}`,
		}}, `{"lat":-91}`, v("/lat", "minimum")},
		{"draft-07 file: format and cross-file ref", Options{Schema: "testdata/draft7.schema.json"},
			`{"ts":"2017-11-28T13:45:20+09:00","lat":37.4}`, verdict{}},
		{"draft-07 file: bad date-time", Options{Schema: "testdata/draft7.schema.json"},
			`{"ts":"20171128134520"}`, v("/ts", "format")},
		{"draft-07 file: additionalProperties", Options{Schema: "testdata/draft7.schema.json"},
			`{"ts":"2017-11-28T13:45:20Z","evil":1}`, v("", "additionalProperties")},
		{"2020-12: format is asserted", Options{Schema: "m.json", Resources: map[string]string{
			"m.json": `{"properties":{"ip":{"format":"ipv4"}}}`}}, `{"ip":"300.1.1.1"}`, v("/ip", "format")},
		{"regex format: long pattern refused", Options{Schema: "m.json", Resources: map[string]string{
			"m.json": `{"format":"regex"}`}}, `"` + strings.Repeat("a", maxRegexp+1) + `"`, v("", "format")},
		{"regex format: valid pattern", Options{Schema: "m.json", Resources: map[string]string{
			"m.json": `{"format":"regex"}`}}, `"^[0-9]+$"`, verdict{}},
		// Draft 7 ignores siblings of $ref; 2020-12 applies them.
		{"Draft 7 for schemas without $schema", Options{Schema: "m.json", Draft: "7", Resources: map[string]string{
			"m.json": `{"$defs":{"n":{"type":"number"}},"$ref":"#/$defs/n","maximum":1}`}}, `5`, verdict{}},
		{"Draft 2020-12 by default", Options{Schema: "m.json", Resources: map[string]string{
			"m.json": `{"$defs":{"n":{"type":"number"}},"$ref":"#/$defs/n","maximum":1}`}}, `5`, v("", "maximum")},
		{"anyOf reported as itself", Options{Schema: "m.json", Resources: map[string]string{
			"m.json": `{"anyOf":[{"type":"string"},{"type":"integer"}]}`}}, `1.5`, v("", "anyOf")},
		{"required points at the first missing member", Options{Schema: "m.json", Resources: map[string]string{
			"m.json": `{"properties":{"a":{"required":["z","y"]}}}`}}, `{"a":{}}`, v("/a/y", "required")},
		{"pointer escapes ~ and /", Options{Schema: "m.json", Resources: map[string]string{
			"m.json": `{"properties":{"a/b~c":{"type":"string"}}}`}}, `{"a/b~c":1}`, v("/a~1b~0c", "type")},
	} {
		val, err := New(c.opts)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		var got verdict
		if err := val.Validate([]byte(c.in)); err != nil {
			ve, ok := err.(*ValidationError)
			if !ok {
				t.Errorf("%s: %T", c.name, err)
				continue
			}
			got = verdict{ve.Path, ve.Keyword}
		}
		if got != c.want {
			t.Errorf("%s: got %+v, want %+v", c.name, got, c.want)
		}
	}
}

// TestSchemaErrorIsDeterministic: the library visits object members in map
// order; the reported cause must not depend on it.
func TestSchemaErrorIsDeterministic(t *testing.T) {
	sv, _ := komdiValidators(t)
	in := []byte(setMany(map[string]any{"DATA.LAT": 91, "DATA.LON": 181, "DATA.ALT": -1000, "DATA.SPEED": -1, "TYPE": "X"}))
	first := sv.Validate(in).Error()
	for range 50 {
		if got := sv.Validate(in).Error(); got != first {
			t.Fatalf("got %q, then %q", first, got)
		}
	}
	if !strings.Contains(first, "/DATA/ALT") {
		t.Errorf("got %q, want the smallest pointer, /DATA/ALT", first)
	}
}

func setMany(m map[string]any) string {
	s := komdi
	for _, k := range []string{"DATA.LAT", "DATA.LON", "DATA.ALT", "DATA.SPEED", "TYPE"} {
		if val, ok := m[k]; ok {
			var err error
			if s, err = sjsonSet(s, k, val); err != nil {
				panic(err)
			}
		}
	}
	return s
}

func TestOptionErrors(t *testing.T) {
	for _, c := range []struct {
		opts  Options
		field string
	}{
		{Options{MaxDepth: -1}, "Options.MaxDepth"},
		{Options{MaxDepth: 1001}, "Options.MaxDepth"},
		{Options{Schema: komdiSchema, Draft: "3"}, "Options.Draft"},
		{Options{Draft: "7"}, "Options.Schema"},
		{Options{Resources: map[string]string{"a.json": `{}`}}, "Options.Schema"},
		{Options{Fields: []FieldRule{{Path: ""}}}, "Options.Fields[0].Path"},
		{Options{Fields: []FieldRule{{Path: "DATA.*"}}}, "Options.Fields[0].Path"},
		{Options{Fields: []FieldRule{{Path: "a"}, {Path: "DATA|LAT"}}}, "Options.Fields[1].Path"},
		{Options{Fields: []FieldRule{{Path: "@reverse"}}}, "Options.Fields[0].Path"},
		{Options{Fields: []FieldRule{{Path: "a.#(b>1)"}}}, "Options.Fields[0].Path"},
		{Options{Fields: []FieldRule{{Path: "a..b"}}}, "Options.Fields[0].Path"},
		{Options{Fields: []FieldRule{{Path: `a\`}}}, "Options.Fields[0].Path"},
		{Options{Fields: []FieldRule{{Path: "a", Type: "float"}}}, "Options.Fields[0].Type"},
		{Options{Fields: []FieldRule{{Path: "a", Type: "string", Min: f64(1)}}}, "Options.Fields[0].Type"},
		{Options{Fields: []FieldRule{{Path: "a", Type: "number", Pattern: "x"}}}, "Options.Fields[0].Type"},
		{Options{Fields: []FieldRule{{Path: "a", Max: f64(1), MaxLength: 3}}}, "Options.Fields[0]"},
		{Options{Fields: []FieldRule{{Path: "a", Min: f64(2), Max: f64(1)}}}, "Options.Fields[0].Min"},
		{Options{Fields: []FieldRule{{Path: "a", MinLength: -1}}}, "Options.Fields[0].MinLength"},
		{Options{Fields: []FieldRule{{Path: "a", MaxLength: -1}}}, "Options.Fields[0].MaxLength"},
		{Options{Fields: []FieldRule{{Path: "a", MinLength: 3, MaxLength: 2}}}, "Options.Fields[0].MinLength"},
		{Options{Fields: []FieldRule{{Path: "a", Pattern: "(("}}}, "Options.Fields[0].Pattern"},
		{Options{Fields: []FieldRule{{Path: "a", Enum: []any{}}}}, "Options.Fields[0].Enum"},
		{Options{Fields: []FieldRule{{Path: "a", Enum: []any{"x", true}}}}, "Options.Fields[0].Enum[1]"},
		{Options{Fields: []FieldRule{{Path: "a", Enum: []any{"x", map[string]any{}}}}}, "Options.Fields[0].Enum[1]"},
		{Options{Fields: make([]FieldRule, maxFieldRules+1)}, "Options.Fields"},
	} {
		_, err := New(c.opts)
		var oe *OptionError
		if !errors.As(err, &oe) {
			t.Errorf("%+v: got %v, want *OptionError", c.opts, err)
			continue
		}
		if oe.Field != c.field {
			t.Errorf("%+v: field %q, want %q (%v)", c.opts, oe.Field, c.field, err)
		}
		if !strings.HasPrefix(err.Error(), "schema: "+c.field+": ") {
			t.Errorf("error %q does not start with the field", err)
		}
	}
}
