package redact

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
)

func TestApplySeeds(t *testing.T) {
	t.Run("folded", func(t *testing.T) { testApplySeeds(t, false) })
	t.Run("exact", func(t *testing.T) { testApplySeeds(t, true) })
}

func testApplySeeds(t *testing.T, exact bool) {
	o := tableOptions()
	o.ExactPaths = exact
	r, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	goldenOut, err := os.ReadFile(goldenPath)
	if err != nil {
		t.Fatal(err)
	}
	for name := range exactWants {
		if !slices.ContainsFunc(seeds, func(s seed) bool { return s.name == name }) {
			t.Errorf("exactWants names %q, which is not a seed", name)
		}
	}
	for _, sd := range seeds {
		if w, ok := exactWants[sd.name]; ok && exact {
			sd.want = w
		}
		t.Run(sd.name, func(t *testing.T) {
			prefix := []byte("prefix:")
			out, rep, err := r.Apply(prefix, []byte(sd.in))
			if sd.want == "" {
				var ie *InputError
				if err == nil || !errors.As(err, &ie) {
					t.Fatalf("Apply(%q) = %q, %v; want an *InputError", sd.in, out, err)
				}
				if string(out) != "prefix:" || rep.Changed != 0 {
					t.Fatalf("on error: out %q, report %+v; want dst unchanged and an empty report", out, rep)
				}
				return
			}
			if err != nil {
				t.Fatalf("Apply(%q): %v", sd.in, err)
			}
			want := sd.want
			if want == golden {
				want = string(goldenOut)
			}
			if got, ok := bytes.CutPrefix(out, prefix); !ok || string(got) != want {
				t.Fatalf("Apply(%s)\n got %s\nwant %s", sd.in, out, "prefix:"+want)
			}
			if !json.Valid(out[len(prefix):]) {
				t.Fatalf("output is not valid JSON: %s", out)
			}
			var compact bytes.Buffer
			_ = json.Compact(&compact, []byte(sd.in))
			if (rep.Changed == 0) != (want == compact.String()) {
				t.Fatalf("Report.Changed = %d but output changed: %v", rep.Changed, want != sd.in)
			}
		})
	}
}

func TestReportNamesRulesNotValues(t *testing.T) {
	r, err := New(tableOptions())
	if err != nil {
		t.Fatal(err)
	}
	_, rep, err := r.Apply(nil, []byte(`{"readings":[{"phone":"01012345678","temp":"warm"},{"phone":"x","temp":1}],"log":"mail a@example.com"}`))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for id, n := range rep.All() {
		got[id] = n
	}
	want := map[string]int{"mask:readings.#.phone": 2, "round:readings.#.temp": 1, "detect:email": 1}
	if len(got) != len(want) {
		t.Fatalf("All() = %v, want %v", got, want)
	}
	for id, n := range want {
		if got[id] != n || rep.Count(id) != n {
			t.Fatalf("count of %s = %d / %d, want %d (all: %v)", id, got[id], rep.Count(id), n, got)
		}
	}
	if rep.Changed != 4 || rep.Nulled != 1 || rep.Hits() != 4 {
		t.Fatalf("Changed %d Nulled %d Hits %d, want 4, 1, 4", rep.Changed, rep.Nulled, rep.Hits())
	}
}

func TestInputErrors(t *testing.T) {
	r, err := New(Options{MaxDepth: 2})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		in     string
		is     error
		offset int
	}{
		{`[[[]]]`, ErrTooDeep, 2},
		{`{"a":{"b":[1]}}`, ErrTooDeep, 10},
		{`{"a" 1}`, ErrInvalidJSON, 5},
		{`tru`, ErrInvalidJSON, 0},
		{`{"a":1}}`, ErrInvalidJSON, 7},
	} {
		_, _, err := r.Apply(nil, []byte(tc.in))
		var ie *InputError
		if !errors.Is(err, tc.is) || !errors.As(err, &ie) || ie.Offset != tc.offset {
			t.Errorf("Apply(%s) error = %v, want %v at byte %d", tc.in, err, tc.is, tc.offset)
		}
	}
}

func TestApplyIsIdempotentOnSeeds(t *testing.T) {
	o := tableOptions()
	// Pseudonymising twice gives a new pseudonym by design; leave it out.
	o.Rules = append(o.Rules[:2], o.Rules[3:]...)
	r, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	for _, sd := range seeds {
		once, _, err := r.Apply(nil, []byte(sd.in))
		if err != nil {
			continue
		}
		twice, rep, err := r.Apply(nil, once)
		if err != nil || !bytes.Equal(once, twice) || rep.Hits() != 0 || rep.Changed != 0 {
			t.Errorf("%s: second Apply changed %s into %s (report %+v, err %v)", sd.name, once, twice, rep, err)
		}
	}
}

// Replace and pseudonym can make a document grow; MaxOutput bounds it.
func TestMaxOutput(t *testing.T) {
	long := strings.Repeat("x", 1000)
	in := []byte(`{"s":{"a":1,"b":2,"c":3}}`)
	for _, tc := range []struct {
		max  int
		fail bool
	}{{0, false}, {3100, false}, {2000, true}} {
		r, err := New(Options{MaxOutput: tc.max, Rules: []Rule{{Path: "s.*", Action: Action{Op: OpReplace, Value: long}}}})
		if err != nil {
			t.Fatal(err)
		}
		out, _, err := r.Apply(nil, in)
		if tc.fail != errors.Is(err, ErrTooLarge) || tc.fail && out != nil {
			t.Errorf("MaxOutput %d: %d bytes, %v", tc.max, len(out), err)
		}
	}
	// The default (8x the input + 64 KiB) stops a many-value blow-up.
	r, _ := New(Options{Rules: []Rule{{Path: "#", Action: Action{Op: OpReplace, Value: long}}}})
	if _, _, err := r.Apply(nil, []byte("["+strings.Repeat("1,", 10000)+"1]")); !errors.Is(err, ErrTooLarge) {
		t.Errorf("default limit: %v", err)
	}
}
