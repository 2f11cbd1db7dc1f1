package redact

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

func TestNewRejects(t *testing.T) {
	rule := func(path string, a Action) Options { return Options{Rules: []Rule{{Path: path, Action: a}}} }
	det := func(d Detector) Options { return Options{Detectors: []Detector{d}} }
	many := Options{}
	for range MaxRules + 1 {
		many.Detectors = append(many.Detectors, Detector{Kind: KindPhone, ID: fmt.Sprint(len(many.Detectors))})
	}
	for _, tc := range []struct {
		opts Options
		want string
	}{
		{Options{MaxDepth: -1}, "max_depth: must be between 1 and 1000, got -1"},
		{Options{MaxDepth: 1001}, "max_depth"},
		{many, "rules: at most 64"},
		{rule("a", Action{}), "rules[0].op: required"},
		{rule("a", Action{Op: "hash"}), `rules[0].op: unknown operator "hash"`},
		{rule("", Action{Op: OpRemove}), "rules[0].path: required"},
		{Options{Rules: []Rule{{Path: "a", Paths: []string{"b"}, Action: Action{Op: OpRemove}}}}, "set path or paths, not both"},
		{rule("a..b", Action{Op: OpRemove}), "rules[0].path: empty component"},
		{rule("a.#(b==1)", Action{Op: OpRemove}), "queries"},
		{rule("a", Action{Op: OpMask, KeepFirst: -1}), "rules[0].keep_first: must be between 0 and 1024, got -1"},
		{rule("a", Action{Op: OpMask, KeepLast: 2000}), "rules[0].keep_last"},
		{rule("a", Action{Op: OpMask, MaskChar: "0"}), "rules[0].mask_char"},
		{rule("a", Action{Op: OpMask, MaskChar: "a"}), "rules[0].mask_char"},
		{rule("a", Action{Op: OpMask, MaskChar: "@"}), "rules[0].mask_char"},
		{rule("a", Action{Op: OpMask, MaskChar: "**"}), "rules[0].mask_char"},
		{rule("a", Action{Op: OpMask, MaskChar: " "}), "rules[0].mask_char"},
		{rule("a", Action{Op: OpMask, Length: 3}), "rules[0].length: not used by mask; remove it"},
		{rule("a", Action{Op: OpRemove, Value: 1}), "rules[0].value: not used by remove"},
		{rule("a", Action{Op: OpTruncate}), "rules[0].length: truncate needs"},
		{rule("a", Action{Op: OpPseudonym}), "pseudonym_key: must be at least 16 bytes"},
		{Options{PseudonymKey: "short", Rules: []Rule{{Path: "a", Action: Action{Op: OpPseudonym}}}}, "pseudonym_key: must be at least 16 bytes for the pseudonym operator, got 5"},
		{Options{PseudonymKey: testKey, Rules: []Rule{{Path: "a", Action: Action{Op: OpPseudonym, Length: 4}}}}, "rules[0].length: must be between 8 and 52"},
		{Options{PseudonymKey: testKey, Rules: []Rule{{Path: "a", Action: Action{Op: OpPseudonym, Encoding: "b64"}}}}, "rules[0].encoding"},
		{rule("a", Action{Op: OpRound, Decimals: 16}), "rules[0].decimals"},
		{rule("a", Action{Op: OpBucket}), "rules[0].boundaries: needs 1 to 64"},
		{rule("a", Action{Op: OpBucket, Boundaries: []float64{1, 1}}), "rules[0].boundaries[1]: must be finite and greater"},
		{rule("a", Action{Op: OpReplace, Value: func() {}}), "rules[0].value: not representable"},
		{rule("a", Action{Op: OpCoarsen, CellMetres: 1000}), "coarsen needs exactly [latitude, longitude]"},
		{Options{Rules: []Rule{{Paths: []string{"a.lat", "b.lon"}, Action: Action{Op: OpCoarsen, CellMetres: 1000}}}}, "same object or array"},
		{Options{Rules: []Rule{{Paths: []string{"a.*", "a.lon"}, Action: Action{Op: OpCoarsen, CellMetres: 1000}}}}, "two different plain keys or indices"},
		{Options{Rules: []Rule{{Paths: []string{"lat", "lon"}, Action: Action{Op: OpCoarsen}}}}, "rules[0].cell_metres: set cell_metres"},
		{Options{Rules: []Rule{{Paths: []string{"lat", "lon"}, Action: Action{Op: OpCoarsen, CellMetres: 0.5}}}}, "rules[0].cell_metres: must be between 1"},
		{Options{Rules: []Rule{{Paths: []string{"lat", "lon"}, Action: Action{Op: OpCoarsen, CellMetres: 10, Decimals: 2}}}}, "not both"},
		{det(Detector{}), "detectors[0].kind: required"},
		{det(Detector{Kind: "ssn"}), `detectors[0].kind: unknown "ssn"`},
		{det(Detector{Kind: KindPhone, Pattern: "x"}), "detectors[0].pattern: only for kind regex"},
		{det(Detector{Kind: KindRegex, Pattern: "("}), "detectors[0].pattern"},
		{det(Detector{Kind: KindRegex, Pattern: "a*"}), "must not match the empty string"},
		{det(Detector{Kind: KindPhone, Action: Action{Op: OpRound}}), "detectors[0].op: a detector supports mask, pseudonym, remove or replace"},
		{Options{Detectors: []Detector{{Kind: KindPhone}, {Kind: KindPhone}}}, `detectors[1].id: "detect:phone" is also the ID of detectors[0]`},
		{Options{Detectors: []Detector{{Kind: KindPhone, Action: Action{Op: OpReplace, Value: "010-0000-0000"}}}}, "detectors[0].value: detector detect:phone would flag this output again"},
		{Options{Rules: []Rule{{Path: "a", Action: Action{Op: OpReplace, Value: []any{"x@example.com"}}}}, Detectors: []Detector{{Kind: KindEmail}}}, "rules[0].value: detector detect:email"},
		{Options{Rules: []Rule{{Path: "a", Action: Action{Op: OpMask, MaskChar: "#"}}}, Detectors: []Detector{{ID: "hashes", Kind: KindRegex, Pattern: "#{3}"}}}, "rules[0].mask_char: detector hashes"},
	} {
		_, err := New(tc.opts)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "redact: ") {
			t.Errorf("New(%+v) error = %v, want it to contain %q", tc.opts, err, tc.want)
		}
	}
}

func TestZeroOptionsOnlyValidate(t *testing.T) {
	r, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	in := `{"phone":"010-1234-5678","a":[1,2.5e3,true,null,{}]}`
	out, rep, err := r.Apply(nil, []byte(in))
	if err != nil || string(out) != in || rep.Changed != 0 {
		t.Fatalf("got %s, %+v, %v", out, rep, err)
	}
	if _, _, err := r.Apply(nil, []byte(`{"a":}`)); err == nil {
		t.Fatal("invalid JSON accepted")
	}
}

// Options decode from a policy document (JSON here; the yaml tags mirror
// the json ones), and the key never prints.
func TestOptionsDocument(t *testing.T) {
	doc := `{
	  "pseudonym_key": "0123456789abcdef0123",
	  "rules": [
	    {"path": "DATA.USER_NAME", "op": "remove"},
	    {"path": "DATA.USER_MOBILE", "op": "mask", "keep_last": 4},
	    {"path": "DATA.USER_ID", "op": "pseudonym"},
	    {"paths": ["DATA.LAT", "DATA.LON"], "op": "coarsen", "cell_metres": 1000},
	    {"path": "DATA.NUMBER_PLATE", "op": "mask", "keep_first": 3}
	  ],
	  "detectors": [{"kind": "phone"}, {"kind": "email", "op": "replace", "value": "[email]"}]
	}`
	var o Options
	if err := json.Unmarshal([]byte(doc), &o); err != nil {
		t.Fatal(err)
	}
	if o.Rules[1].KeepLast != 4 || o.Rules[3].CellMetres != 1000 || o.Detectors[1].Value != "[email]" || o.PseudonymKey != "0123456789abcdef0123" {
		t.Fatalf("decoded %+v", o)
	}
	if _, err := New(o); err != nil {
		t.Fatal(err)
	}
	printed := fmt.Sprintf("%v %+v %#v %s", o, o, o, o.PseudonymKey)
	enc, _ := json.Marshal(o)
	if strings.Contains(printed, "0123456789abcdef") || strings.Contains(string(enc), "0123456789abcdef") {
		t.Fatalf("key leaked: %s / %s", printed, enc)
	}
}
