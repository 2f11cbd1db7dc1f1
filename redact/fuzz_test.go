package redact

import (
	"bytes"
	"encoding/json"
	"errors"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// fuzzRedactors: the table rule set with every operator (pseudonym
// included), and the same without the path pseudonym, which must be
// idempotent: Apply(Apply(x)) == Apply(x); each with folded and with exact
// paths.
func fuzzRedactors(tb testing.TB) (full, idem []*Redactor) {
	for _, exact := range []bool{false, true} {
		o := tableOptions()
		o.ExactPaths = exact
		f, err := New(o)
		if err != nil {
			tb.Fatal(err)
		}
		o.Rules = append(o.Rules[:2:2], o.Rules[3:]...)
		i, err := New(o)
		if err != nil {
			tb.Fatal(err)
		}
		full, idem = append(full, f), append(idem, i)
	}
	return full, idem
}

func detectorHits(r *Redactor, rep *Report) int {
	n := 0
	for _, id := range r.ids[len(r.rules):] {
		n += rep.Count(id)
	}
	return n
}

// depthOf returns the nesting depth of valid JSON.
func depthOf(b []byte) int {
	d, top := 0, 0
	dec := json.NewDecoder(bytes.NewReader(b))
	for {
		tok, err := dec.Token()
		if err != nil {
			return top
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			d++
			top = max(top, d)
		case json.Delim('}'), json.Delim(']'):
			d--
		}
	}
}

func fuzzSeeds(f *testing.F) {
	for _, s := range seeds {
		f.Add([]byte(s.in))
	}
	for _, c := range detectorCases {
		f.Add([]byte(`{"v":` + marshalNoHTML(c.text) + `}`))
		f.Add([]byte(`[` + escapeAll(c.text) + `]`))
	}
}

func FuzzApply(f *testing.F) {
	fuzzSeeds(f)
	full, idem := fuzzRedactors(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		valid := json.Valid(in) && utf8.Valid(in) // encoding/json does not check UTF-8
		for _, r := range append(slices.Clip(full), idem...) {
			out, rep, err := r.Apply([]byte("x"), in)
			if err != nil {
				refused := errors.Is(err, ErrTooDeep) && depthOf(in) > r.maxDepth || errors.Is(err, ErrTooLarge)
				if valid && !refused || string(out) != "x" || rep.Changed != 0 {
					t.Fatalf("Apply(%q) = %q, %v; valid=%v", in, out, err, valid)
				}
				continue
			}
			out = out[1:]
			if !valid || !json.Valid(out) || !utf8.Valid(out) {
				t.Fatalf("Apply(%q) = %q; input valid=%v, output valid=%v", in, out, valid, json.Valid(out))
			}
			again, rep2, err := r.Apply(nil, out)
			if err != nil {
				t.Fatalf("re-Apply(%q): %v", out, err)
			}
			if n := detectorHits(r, &rep2); n != 0 {
				t.Fatalf("re-Apply(%q) = %q: %d detector hits", out, again, n)
			}
			if slices.Contains(idem, r) && (!bytes.Equal(again, out) || rep2.Changed != 0) {
				t.Fatalf("not idempotent:\n in   %q\n once %q\n twice %q (%+v)", in, out, again, rep2)
			}
		}
	})
}

// FuzzParsePath: parsePath never panics, and printing the components back
// as a path parses to the same components.
func FuzzParsePath(f *testing.F) {
	for _, p := range []string{"DATA.USER_NAME", "readings.#.phone", "a\\.b.c*d?", "tags.1", "#", "a..b", "@this", "a|b", "x.#(y==1)", "\\"} {
		f.Add(p)
	}
	for _, tc := range pathCases {
		f.Add(tc.path)
	}
	f.Fuzz(func(t *testing.T, p string) {
		comps, err := parsePath(p, false)
		if err != nil {
			return
		}
		var parts []string
		for _, c := range comps {
			switch c.kind {
			case compAll:
				parts = append(parts, "#")
			case compWild:
				parts = append(parts, c.text)
			default:
				parts = append(parts, escapeKey(c.text))
			}
		}
		again, err := parsePath(strings.Join(parts, "."), false)
		if err != nil || len(again) != len(comps) {
			t.Fatalf("parsePath(%q) = %+v, reprinted %q: %+v, %v", p, comps, strings.Join(parts, "."), again, err)
		}
		for i := range comps {
			if comps[i] != again[i] {
				t.Fatalf("parsePath(%q)[%d] = %+v, after reprinting %+v", p, i, comps[i], again[i])
			}
		}
	})
}

// escapeKey writes a literal key as a path component.
func escapeKey(k string) string {
	var b strings.Builder
	for i := 0; i < len(k); i++ {
		if strings.IndexByte(`\.*?|@#![{`, k[i]) >= 0 {
			b.WriteByte('\\')
		}
		b.WriteByte(k[i])
	}
	return b.String()
}

// FuzzWildMatch compares the key matcher with regexp on the same pattern.
func FuzzWildMatch(f *testing.F) {
	for _, tc := range wildCases {
		f.Add(tc.pat, tc.key)
	}
	f.Fuzz(func(t *testing.T, pat, key string) {
		if !utf8.ValidString(pat) || !utf8.ValidString(key) {
			return // keys are validated UTF-8; patterns come from Go strings
		}
		want := wildRegexp(pat).MatchString(key)
		if got := wildMatch(pat, []byte(key), false); got != want {
			t.Fatalf("wildMatch(%q, %q) = %v, regexp says %v", pat, key, got, want)
		}
	})
}

func wildRegexp(pat string) *regexp.Regexp {
	var b strings.Builder
	b.WriteString(`(?s)^`)
	for i := 0; i < len(pat); i++ {
		switch c := pat[i]; c {
		case '*':
			b.WriteString(`.*`)
		case '?':
			b.WriteString(`.`)
		case '\\':
			if i+1 == len(pat) {
				b.WriteString(`[^\s\S]`) // a lone trailing '\' matches nothing
				continue
			}
			_, size := utf8.DecodeRuneInString(pat[i+1:])
			b.WriteString(regexp.QuoteMeta(pat[i+1 : i+1+size]))
			i += size
		default:
			_, size := utf8.DecodeRuneInString(pat[i:])
			b.WriteString(regexp.QuoteMeta(pat[i : i+size]))
			i += size - 1
		}
	}
	b.WriteString(`$`)
	return regexp.MustCompile(b.String())
}

// FuzzDetect puts one string in three places: under a truncate rule, under
// a mask rule and under no rule, so the detectors meet it raw and after
// each text operator.
func FuzzDetect(f *testing.F) {
	for _, c := range detectorCases {
		f.Add(c.text)
	}
	f.Add("10.0.0.1 is the gateway")
	f.Add("mail j.doe@example.com or call 010-1234-5678, card 4111 1111 1111 1111")
	_, idems := fuzzRedactors(f)
	idem := idems[0]
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) {
			return // the lexer refuses it; FuzzApply covers that
		}
		v := appendString(nil, []byte(s))
		in := []byte(`{"note":` + string(v) + `,"v":[` + string(v) + `],"owner":` + string(v) + `}`)
		out, _, err := idem.Apply(nil, in)
		if err != nil || !json.Valid(out) {
			t.Fatalf("Apply(%s) = %s, %v", in, out, err)
		}
		again, rep, err := idem.Apply(nil, out)
		if err != nil || !bytes.Equal(again, out) || rep.Hits() != 0 {
			t.Fatalf("not stable:\n in    %s\n once  %s\n twice %s (%+v)", in, out, again, rep)
		}
	})
}
