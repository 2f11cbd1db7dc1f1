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
		{Options{MaxDepth: -1}, "MaxDepth: must be between 1 and 1000, got -1"},
		{Options{MaxDepth: 1001}, "MaxDepth"},
		{many, "Rules: at most 64"},
		{rule("a", Action{}), "Rules[0].Op: required"},
		{rule("a", Action{Op: "hash"}), `Rules[0].Op: unknown operator "hash"`},
		{rule("", Action{Op: OpRemove}), "Rules[0].Path: required"},
		{Options{Rules: []Rule{{Path: "a", Paths: []string{"b"}, Action: Action{Op: OpRemove}}}}, "set Path or Paths, not both"},
		{rule("a..b", Action{Op: OpRemove}), "Rules[0].Path: empty component"},
		{rule("a.#(b==1)", Action{Op: OpRemove}), "queries"},
		{rule("a", Action{Op: OpMask, KeepFirst: -1}), "Rules[0].KeepFirst: must be between 0 and 1024, got -1"},
		{rule("a", Action{Op: OpMask, KeepLast: 2000}), "Rules[0].KeepLast"},
		{rule("a", Action{Op: OpMask, MaskChar: "0"}), "Rules[0].MaskChar"},
		{rule("a", Action{Op: OpMask, MaskChar: "a"}), "Rules[0].MaskChar"},
		{rule("a", Action{Op: OpMask, MaskChar: "@"}), "Rules[0].MaskChar"},
		{rule("a", Action{Op: OpMask, MaskChar: "**"}), "Rules[0].MaskChar"},
		{rule("a", Action{Op: OpMask, MaskChar: " "}), "Rules[0].MaskChar"},
		{rule("a", Action{Op: OpMask, Length: 3}), "Rules[0].Length: not used by mask; remove it"},
		{rule("a", Action{Op: OpRemove, Value: 1}), "Rules[0].Value: not used by remove"},
		{rule("a", Action{Op: OpTruncate}), "Rules[0].Length: truncate needs"},
		{rule("a", Action{Op: OpPseudonym}), "PseudonymKey: must be at least 16 bytes"},
		{Options{PseudonymKey: "short", Rules: []Rule{{Path: "a", Action: Action{Op: OpPseudonym}}}}, "PseudonymKey: must be at least 16 bytes for the pseudonym operator, got 5"},
		{Options{PseudonymKey: testKey, Rules: []Rule{{Path: "a", Action: Action{Op: OpPseudonym, Length: 4}}}}, "Rules[0].Length: must be between 8 and 52"},
		{Options{PseudonymKey: testKey, Rules: []Rule{{Path: "a", Action: Action{Op: OpPseudonym, Encoding: "b64"}}}}, "Rules[0].Encoding"},
		{rule("a", Action{Op: OpRound, Decimals: 16}), "Rules[0].Decimals"},
		{rule("a", Action{Op: OpBucket}), "Rules[0].Boundaries: needs 1 to 64"},
		{rule("a", Action{Op: OpBucket, Boundaries: []float64{1, 1}}), "Rules[0].Boundaries[1]: must be finite and greater"},
		{rule("a", Action{Op: OpReplace, Value: func() {}}), "Rules[0].Value: not representable"},
		{rule("a", Action{Op: OpCoarsen, CellMetres: 1000}), "coarsen needs exactly [latitude, longitude]"},
		{Options{Rules: []Rule{{Paths: []string{"a.lat", "b.lon"}, Action: Action{Op: OpCoarsen, CellMetres: 1000}}}}, "same object or array"},
		{Options{Rules: []Rule{{Paths: []string{"a.*", "a.lon"}, Action: Action{Op: OpCoarsen, CellMetres: 1000}}}}, "two different plain keys or indices"},
		{Options{Rules: []Rule{{Paths: []string{"lat", "lon"}, Action: Action{Op: OpCoarsen}}}}, "Rules[0].CellMetres: set CellMetres"},
		{Options{Rules: []Rule{{Paths: []string{"lat", "lon"}, Action: Action{Op: OpCoarsen, CellMetres: 0.5}}}}, "Rules[0].CellMetres: must be between 1"},
		{Options{Rules: []Rule{{Paths: []string{"lat", "lon"}, Action: Action{Op: OpCoarsen, CellMetres: 10, Decimals: 2}}}}, "not both"},
		{det(Detector{}), "Detectors[0].Kind: required"},
		{det(Detector{Kind: "ssn"}), `Detectors[0].Kind: unknown "ssn"`},
		{det(Detector{Kind: KindPhone, Pattern: "x"}), "Detectors[0].Pattern: only for kind regex"},
		{det(Detector{Kind: KindRegex, Pattern: "("}), "Detectors[0].Pattern"},
		{det(Detector{Kind: KindRegex, Pattern: "a*"}), "must not match the empty string"},
		{det(Detector{Kind: KindPhone, Action: Action{Op: OpRound}}), "Detectors[0].Op: a detector supports mask, pseudonym, remove or replace"},
		{Options{Detectors: []Detector{{Kind: KindPhone}, {Kind: KindPhone}}}, `Detectors[1].ID: "detect:phone" is also the ID of Detectors[0]`},
		{Options{Detectors: []Detector{{Kind: KindPhone, Action: Action{Op: OpReplace, Value: "010-0000-0000"}}}}, "Detectors[0].Value: detector detect:phone would flag this output again"},
		{Options{Rules: []Rule{{Path: "a", Action: Action{Op: OpReplace, Value: []any{"x@example.com"}}}}, Detectors: []Detector{{Kind: KindEmail}}}, "Rules[0].Value: detector detect:email"},
		{Options{Rules: []Rule{{Path: "a", Action: Action{Op: OpMask, MaskChar: "#"}}}, Detectors: []Detector{{ID: "hashes", Kind: KindRegex, Pattern: "#{3}"}}}, "Rules[0].MaskChar: detector hashes"},
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
