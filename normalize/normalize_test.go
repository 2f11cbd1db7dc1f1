package normalize

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"
)

func mustNew(o Options) *Normalizer {
	n, err := New(o)
	if err != nil {
		panic(err)
	}
	return n
}

// The configurations the seed table pins.
var (
	nCompact  = mustNew(Options{})
	nValidate = mustNew(Options{Output: OutputValidate})
	nJCS      = mustNew(Options{Output: OutputJCS})
	nRFC      = mustNew(Options{Profile: ProfileRFC8259})
)

// orWant returns w, or def when w is zero ("same as compact").
func orWant(w, def want) want {
	if w.isZero() {
		return def
	}
	return w
}

// expect runs n on in, with an empty and a non-empty dst (output offsets are relative to the
// message start, and a bug there only shows with a prefix), and compares with w.
func expect(t *testing.T, label string, n *Normalizer, in string, w want) {
	t.Helper()
	for _, prefix := range []string{"", "prefix:"} {
		dst := []byte(prefix)
		out, err := n.Append(dst, []byte(in))
		if w.reason != reasonNone {
			if ReasonOf(err) != w.reason {
				t.Errorf("%s: got %v, want reason %s", label, err, w.reason)
			}
			if string(out) != prefix {
				t.Errorf("%s: on error dst changed to %q", label, out)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: unexpected error %v", label, err)
			continue
		}
		if !bytes.HasPrefix(out, []byte(prefix)) {
			t.Fatalf("%s: prefix lost: %q", label, out)
		}
		if got := string(out[len(prefix):]); got != w.out {
			t.Errorf("%s:\n got %q\nwant %q", label, clip(got), clip(w.out))
		}
	}
}

func clip(s string) string {
	if len(s) > 300 {
		return s[:300] + "..."
	}
	return s
}

func TestSeeds(t *testing.T) {
	for _, tc := range seeds {
		t.Run(tc.name, func(t *testing.T) {
			expect(t, "compact", nCompact, tc.in, tc.compact)
			v := tc.compact
			if v.reason == reasonNone {
				v.out = tc.in // validate passes the input through
			}
			expect(t, "validate", nValidate, tc.in, v)
			expect(t, "jcs", nJCS, tc.in, orWant(tc.jcs, tc.compact))
			expect(t, "rfc8259", nRFC, tc.in, orWant(tc.rfc, tc.compact))
			for _, n := range []*Normalizer{nCompact, nJCS, nRFC} {
				if out, err := n.Append(nil, []byte(tc.in)); err == nil {
					checkOutput(t, n, []byte(tc.in), out)
				}
			}
		})
	}
}

// checkOutput asserts the properties every accepted output has: encoding/json accepts it,
// normalising it again changes nothing, and it decodes to the same value as the input.
func checkOutput(t *testing.T, n *Normalizer, in, out []byte) {
	t.Helper()
	if !json.Valid(out) {
		t.Fatalf("output rejected by json.Valid: %q", clip(string(out)))
	}
	if n.opts.Output == OutputValidate {
		if !bytes.Equal(in, out) {
			t.Fatalf("validate changed the input")
		}
		return
	}
	again, err := n.Append(nil, out)
	if err != nil {
		t.Fatalf("output rejected on second pass: %v\nout %q", err, clip(string(out)))
	}
	if !bytes.Equal(again, out) {
		t.Fatalf("not idempotent:\n1st %q\n2nd %q", clip(string(out)), clip(string(again)))
	}
	vin, errIn := decode(in)
	vout, errOut := decode(out)
	if errOut != nil {
		t.Fatalf("encoding/json cannot decode output: %v", errOut)
	}
	if errIn != nil {
		return // the input is beyond encoding/json (e.g. deeper than it allows); nothing to compare
	}
	if n.opts.Output == OutputJCS {
		vin, vout = numbersToFloat(vin), numbersToFloat(vout)
	}
	if !reflect.DeepEqual(vin, vout) {
		t.Fatalf("value changed:\n in %q\nout %q", clip(string(in)), clip(string(out)))
	}
}

func decode(b []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}

// numbersToFloat maps json.Number to float64: JCS keeps the value, not the spelling.
func numbersToFloat(v any) any {
	switch v := v.(type) {
	case json.Number:
		f, _ := v.Float64()
		return f
	case []any:
		for i := range v {
			v[i] = numbersToFloat(v[i])
		}
	case map[string]any:
		for k := range v {
			v[k] = numbersToFloat(v[k])
		}
	}
	return v
}

func TestErrorOffsets(t *testing.T) {
	tests := []struct {
		in     string
		reason Reason
		offset int
	}{
		{`{"a":1,"a":2}`, ReasonDuplicateKey, 7},
		{`{"a":{"b":1},"a":2}`, ReasonDuplicateKey, 13},
		{`["ok","\ud800"]`, ReasonLoneSurrogate, 7},
		{"[\"ab\xff\"]", ReasonInvalidUTF8, 4},
		{`[1] x`, ReasonTrailingData, 4},
		{nest(40), ReasonDepth, 32},
		{`[9007199254740992]`, ReasonNumberTooLarge, 1},
		{`{"a":1,}`, ReasonTrailingComma, 7},
		{`["a`, ReasonUnexpectedEnd, 3},
		{"", ReasonUnexpectedEnd, 0},
		{"[\"a\x01\"]", ReasonControlChar, 3},
	}
	for _, tc := range tests {
		for _, n := range []*Normalizer{nCompact, nValidate, nJCS} {
			_, err := n.Append(nil, []byte(tc.in))
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("%q (%s): got %v, want *Error", tc.in, n.opts.Output, err)
			}
			if e.Reason != tc.reason || e.Offset != tc.offset {
				t.Errorf("%q (%s): got %s at %d, want %s at %d", tc.in, n.opts.Output, e.Reason, e.Offset, tc.reason, tc.offset)
			}
		}
	}
}

func TestErrorMessageHasNoPayload(t *testing.T) {
	_, err := nCompact.Append(nil, []byte(`{"secret-password":1,"secret-password":2}`))
	if err == nil || strings.Contains(err.Error(), "secret") {
		t.Fatalf("got %v", err)
	}
	if want := "normalize: duplicate object key (duplicate_key) at byte 21"; err.Error() != want {
		t.Fatalf("got %q, want %q", err.Error(), want)
	}
	if ReasonOf(errors.New("other")) != "" {
		t.Fatal("ReasonOf of a foreign error is not empty")
	}
}

func TestZeroNormalizerFailsClosed(t *testing.T) {
	var n Normalizer
	for _, in := range []string{"", "{}", `{"a":1}`} {
		if out, err := n.Append([]byte("x"), []byte(in)); err != ErrNotConfigured || string(out) != "x" {
			t.Errorf("zero Normalizer on %q: %q, %v", in, out, err)
		}
	}
}

func TestOptionsDefaults(t *testing.T) {
	got := mustNew(Options{}).Options()
	want := Options{
		Profile: ProfileIJSON, Output: OutputCompact, BigNumbers: NumbersReject,
		MaxBytes: 1 << 20, MaxDepth: 32, MaxMembers: 1000, MaxElements: 10000,
		MaxStringBytes: 64 << 10, MaxNumberDigits: 100,
	}
	if got != want {
		t.Fatalf("defaults:\n got %+v\nwant %+v", got, want)
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	tests := []struct {
		o    Options
		want string
	}{
		{Options{MaxDepth: -1}, "normalize: MaxDepth: must be between 1 and 1000 (0 means the default, 32), got -1"},
		{Options{MaxDepth: 1001}, "normalize: MaxDepth: must be between 1 and 1000"},
		{Options{MaxBytes: 256<<20 + 1}, "normalize: MaxBytes: must be between 1 and 268435456"},
		{Options{MaxMembers: -5}, "normalize: MaxMembers:"},
		{Options{MaxElements: -5}, "normalize: MaxElements:"},
		{Options{MaxStringBytes: -5}, "normalize: MaxStringBytes:"},
		{Options{MaxNumberDigits: -5}, "normalize: MaxNumberDigits:"},
		{Options{Profile: "json5"}, `normalize: Profile: must be "i-json" or "rfc8259", got "json5"`},
		{Options{Output: "pretty"}, `normalize: Output: must be "compact", "validate" or "jcs", got "pretty"`},
		{Options{BigNumbers: "round"}, `normalize: BigNumbers: must be "reject" or "keep", got "round"`},
		{Options{Profile: ProfileRFC8259, FoldKeys: true}, "normalize: FoldKeys:"},
		{Options{Profile: ProfileRFC8259, Output: OutputJCS}, "normalize: Output:"},
		{Options{Output: OutputJCS, BigNumbers: NumbersKeep}, "normalize: BigNumbers:"},
	}
	for _, tc := range tests {
		n, err := New(tc.o)
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("New(%+v) = %v, %v; want error starting %q", tc.o, n, err, tc.want)
		}
	}
}

func TestLimits(t *testing.T) {
	tests := []struct {
		name string
		o    Options
		in   string
		w    want
	}{
		{"bytes at limit", Options{MaxBytes: 5}, `[1,2]`, ok(`[1,2]`)},
		{"bytes over", Options{MaxBytes: 5}, `[1,2] `, fail(ReasonTooLarge)},
		{"depth at limit", Options{MaxDepth: 2}, `[{"a":1}]`, ok(`[{"a":1}]`)},
		{"depth over", Options{MaxDepth: 2}, `[{"a":[]}]`, fail(ReasonDepth)},
		{"depth 1 scalar", Options{MaxDepth: 1}, `"x"`, ok(`"x"`)},
		{"members at limit", Options{MaxMembers: 2}, `{"a":1,"b":{"x":1,"y":2}}`, ok(`{"a":1,"b":{"x":1,"y":2}}`)},
		{"members over", Options{MaxMembers: 2}, `{"a":1,"b":2,"c":3}`, fail(ReasonMembers)},
		{"elements at limit", Options{MaxElements: 2}, `[[1,2],[3,4]]`, ok(`[[1,2],[3,4]]`)},
		{"elements over", Options{MaxElements: 2}, `[1,2,3]`, fail(ReasonElements)},
		{"string at limit", Options{MaxStringBytes: 4}, `["\n\n"]`, ok(`["\n\n"]`)},
		{"string over", Options{MaxStringBytes: 4}, `["abcde"]`, fail(ReasonStringTooLong)},
		{"string escapes count as written", Options{MaxStringBytes: 4}, `["\u00e9"]`, fail(ReasonStringTooLong)},
		{"key over", Options{MaxStringBytes: 4}, `{"abcde":1}`, fail(ReasonStringTooLong)},
		{"digits at limit", Options{MaxNumberDigits: 3}, `[1.23,-4e56]`, ok(`[1.23,-4e56]`)},
		{"digits over", Options{MaxNumberDigits: 3}, `[1.234]`, fail(ReasonNumberTooLong)},
		{"keep big int", Options{BigNumbers: NumbersKeep}, `[123456789012345678901234567890]`, ok(`[123456789012345678901234567890]`)},
		{"keep overflow", Options{BigNumbers: NumbersKeep}, `[1e400,-1E+999]`, ok(`[1e400,-1E+999]`)},
		{"keep still limits digits", Options{BigNumbers: NumbersKeep}, "[" + strings.Repeat("9", 101) + "]", fail(ReasonNumberTooLong)},
		{"100k members linear", Options{MaxMembers: 100000, MaxBytes: 4 << 20}, members(100000, -1), ok(members(100000, -1))},
		{"100k members duplicate", Options{MaxMembers: 100001, MaxBytes: 4 << 20}, members(100000, 54321), fail(ReasonDuplicateKey)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			expect(t, "compact", mustNew(tc.o), tc.in, tc.w)
			tc.o.Output = OutputValidate
			if tc.w.reason == reasonNone {
				tc.w.out = tc.in
			}
			expect(t, "validate", mustNew(tc.o), tc.in, tc.w)
		})
	}
}

func TestFoldKeys(t *testing.T) {
	tests := []struct {
		in string
		w  want
	}{
		{`{"admin":1,"ADMIN":2}`, fail(ReasonDuplicateKey)},
		{`{"admin":1,"ＡＤＭＩＮ":2}`, fail(ReasonDuplicateKey)},                            // fullwidth, NFKC
		{`{"Straße":1,"STRASSE":2}`, fail(ReasonDuplicateKey)},                         // full case folding
		{"{\"é\":1,\"e\u0301\":2}", fail(ReasonDuplicateKey)},                          // NFC vs NFD
		{`{"ﬁle":1,"FILE":2}`, fail(ReasonDuplicateKey)},                               // ligature, NFKC
		{`{"a\"b":1,"a＂b":2}`, fail(ReasonDuplicateKey)},                               // fullwidth quote folds to an escaped one
		{`{"a\nB":1,"Ａ\u000ab":2}`, fail(ReasonDuplicateKey)},                          // escapes on both paths
		{`{"admin":1,"admin2":2,"ａｄｍｉｎ3":3}`, ok(`{"admin":1,"admin2":2,"ａｄｍｉｎ3":3}`)}, // keys kept as sent
		{`{"Ab":{"x":1},"aB2":{"X":1}}`, ok(`{"Ab":{"x":1},"aB2":{"X":1}}`)},
		{members(40, -1), ok(members(40, -1))},
		{strings.Replace(members(40, -1), `"k39"`, `"K7"`, 1), fail(ReasonDuplicateKey)}, // hash phase
	}
	for _, tc := range tests {
		expect(t, tc.in, mustNew(Options{FoldKeys: true}), tc.in, tc.w)
		expect(t, tc.in, mustNew(Options{FoldKeys: true, Output: OutputJCS}), tc.in, want{reason: tc.w.reason, out: refJCSOr(tc)})
		v := tc.w
		if v.reason == reasonNone {
			v.out = tc.in
		}
		expect(t, tc.in, mustNew(Options{FoldKeys: true, Output: OutputValidate}), tc.in, v)
	}
}

func refJCSOr(tc struct {
	in string
	w  want
}) string {
	if tc.w.reason != reasonNone {
		return ""
	}
	return refJCS(tc.in)
}

// TestScratchReleased checks that pooled scratch is reset after each message and that what a
// hostile message grew is not kept.
func TestScratchReleased(t *testing.T) {
	n := mustNew(Options{MaxMembers: 200000, MaxBytes: 8 << 20, FoldKeys: true})
	in := []byte(`{"a":` + strings.Replace(members(100000, -1), `"k1"`, `"k1x"`, 1) + `}`)
	if _, err := n.Append(nil, in); err != nil {
		t.Fatal(err)
	}
	s := n.cache.Load()
	if s == nil {
		t.Fatal("no cached state after Append")
	}
	if len(s.keys) != 0 || len(s.arena) != 0 || len(s.members) != 0 {
		t.Errorf("scratch not reset: %d keys, %d arena bytes, %d members", len(s.keys), len(s.arena), len(s.members))
	}
	if cap(s.keys) > retainKeys || cap(s.arena) > retainBytes {
		t.Errorf("scratch kept: cap keys %d, arena %d", cap(s.keys), cap(s.arena))
	}
	for d := range s.frames {
		if cap(s.frames[d].tab) > retainTable {
			t.Errorf("depth %d keeps a hash set of %d entries", d, cap(s.frames[d].tab))
		}
	}
}

// TestConcurrent shares Normalizers between goroutines; run with -race.
func TestConcurrent(t *testing.T) {
	ns := []*Normalizer{nCompact, nValidate, nJCS, nRFC, mustNew(Options{FoldKeys: true})}
	type result struct {
		out string
		r   Reason
	}
	wantRes := make([][]result, len(ns))
	for i, n := range ns {
		for _, tc := range seeds {
			out, err := n.Append(nil, []byte(tc.in))
			wantRes[i] = append(wantRes[i], result{string(out), ReasonOf(err)})
		}
	}
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var dst []byte
			for rep := 0; rep < 3; rep++ {
				for i, n := range ns {
					for j, tc := range seeds {
						out, err := n.Append(dst[:0], []byte(tc.in))
						if got := (result{string(out), ReasonOf(err)}); got != wantRes[i][j] {
							t.Errorf("%s/%s: concurrent result differs", n.opts.Output, tc.name)
							return
						}
						if err == nil {
							dst = out
						}
					}
				}
			}
		}()
	}
	wg.Wait()
}
