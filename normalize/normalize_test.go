package normalize

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"

	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"
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

// TestFoldedKeys: by default keys that differ only by case or Unicode compatibility form are
// duplicates (encoding/json and other decoders would read one as the other); ExactKeys accepts
// them. foldedKeyCases is shared with the benchmark.
func TestFoldedKeys(t *testing.T) {
	for _, tc := range foldedKeyCases {
		w, exact := tc.w, tc.exact
		switch {
		case tc.exactFails:
			exact = fail(ReasonDuplicateKey)
		case w.reason == reasonNone:
			exact = w
		case exact.isZero():
			exact = ok(tc.in)
		}
		for _, c := range []struct {
			label string
			o     Options
			w     want
		}{{"folded", Options{}, w}, {"exact", Options{ExactKeys: true}, exact}} {
			expect(t, c.label+" "+tc.in, mustNew(c.o), tc.in, c.w)
			c.o.Output = OutputJCS
			expect(t, c.label+" jcs "+tc.in, mustNew(c.o), tc.in, want{reason: c.w.reason, out: refJCSOr(c.w, tc.in)})
			v := c.w
			if v.reason == reasonNone {
				v.out = tc.in
			}
			c.o.Output = OutputValidate
			expect(t, c.label+" validate "+tc.in, mustNew(c.o), tc.in, v)
		}
		// The reference, encoding/json's tokens with FoldKey, agrees.
		if dup := refFoldedDuplicate([]byte(tc.in)); dup != (w.reason == ReasonDuplicateKey) {
			t.Errorf("%s: reference says folded duplicate %v", tc.in, dup)
		}
	}
}

// foldedKeyCases are inputs in which keys differ only in case or compatibility form. exactFails
// marks those that are duplicates byte for byte too; exact is the compact output with
// ExactKeys where it is not the input.
var foldedKeyCases = []struct {
	in         string
	w          want // the default (folded)
	exactFails bool
	exact      want
}{
	{in: `{"admin":1,"ADMIN":2}`, w: fail(ReasonDuplicateKey)},
	{in: `{"DATA":{"LAT":45,"lat":999,"CMD":"status","cmd":"reboot"}}`, w: fail(ReasonDuplicateKey)}, // the attack
	{in: `{"user_name_of_the_driver":1,"USER_NAME_of_the_DRIVER":2}`, w: fail(ReasonDuplicateKey)},   // 8 bytes and more
	{in: `{"admin":1,"ＡＤＭＩＮ":2}`, w: fail(ReasonDuplicateKey)},                                       // fullwidth, NFKC
	{in: `{"Straße":1,"STRASSE":2}`, w: fail(ReasonDuplicateKey)},                                    // full case folding
	{in: "{\"é\":1,\"e\u0301\":2}", w: fail(ReasonDuplicateKey)},                                     // NFC vs NFD
	{in: `{"ﬁle":1,"FILE":2}`, w: fail(ReasonDuplicateKey)},                                          // ligature, NFKC
	{in: "{\"k\":1,\"\u212a\":2}", w: fail(ReasonDuplicateKey)},                                      // Kelvin sign: encoding/json reads it as k
	{in: "{\"s\":1,\"\u017f\":2}", w: fail(ReasonDuplicateKey)},                                      // long s: encoding/json reads it as s
	{in: "{\"\U0001d400\":1,\"a\":2}", w: fail(ReasonDuplicateKey)},                                  // mathematical bold capital A
	{in: `{"a\"b":1,"a＂b":2}`, w: fail(ReasonDuplicateKey)},                                          // fullwidth quote folds to an escaped one
	{in: `{"a\nB":1,"Ａ\u000ab":2}`, w: fail(ReasonDuplicateKey), exact: ok(`{"a\nB":1,"Ａ\nb":2}`)},   // escapes on both paths
	{in: `{"\u0041":1,"a":2}`, w: fail(ReasonDuplicateKey), exact: ok(`{"A":1,"a":2}`)},              // an escaped ASCII key
	{in: `{"a":1,"A":2}`, w: fail(ReasonDuplicateKey)},
	{in: "{\"@\":1,\"`\":2,\"[\":3,\"{\":4,\"Z\":5,\"z2\":6}", w: ok("{\"@\":1,\"`\":2,\"[\":3,\"{\":4,\"Z\":5,\"z2\":6}")}, // the bytes around A-Z are not letters
	{in: `{"a":1,"a":2}`, w: fail(ReasonDuplicateKey), exactFails: true},
	{in: `{"admin":1,"admin2":2,"ａｄｍｉｎ3":3}`, w: ok(`{"admin":1,"admin2":2,"ａｄｍｉｎ3":3}`)}, // keys kept as sent
	{in: `{"Ab":{"x":1},"aB2":{"X":1}}`, w: ok(`{"Ab":{"x":1},"aB2":{"X":1}}`)},
	{in: `{"x":{"LAT":1},"y":{"lat":2}}`, w: ok(`{"x":{"LAT":1},"y":{"lat":2}}`)}, // different objects
	{in: members(40, -1), w: ok(members(40, -1))},
	{in: strings.Replace(members(40, -1), `"k39"`, `"K7"`, 1), w: fail(ReasonDuplicateKey)}, // hash phase
	{in: strings.Replace(members(40, -1), `"k39"`, `"Ｋ7"`, 1), w: fail(ReasonDuplicateKey)}, // hash phase, non-ASCII
	{in: strings.Replace(members(40, -1), `"k1"`, `"K39"`, 1), w: fail(ReasonDuplicateKey)}, // moved into the hash set
	{in: strings.Replace(members(40, -1), `"k39"`, `"k\u0037"`, 1), w: fail(ReasonDuplicateKey), exactFails: true},
}

func refJCSOr(w want, in string) string {
	if w.reason != reasonNone {
		return ""
	}
	return refJCS(in)
}

// refFoldedDuplicate reports whether some object of in, a valid JSON text, has two keys with the
// same FoldKey: encoding/json's tokens and a map per object, the obvious way.
func refFoldedDuplicate(in []byte) bool {
	d := json.NewDecoder(bytes.NewReader(in))
	d.UseNumber()
	type frame struct {
		keys    map[string]bool
		obj     bool
		wantKey bool
	}
	var st []frame
	valueDone := func() {
		if n := len(st); n > 0 && st[n-1].obj {
			st[n-1].wantKey = true
		}
	}
	for {
		tok, err := d.Token()
		if err != nil {
			return false
		}
		switch v := tok.(type) {
		case json.Delim:
			switch v {
			case '{':
				st = append(st, frame{keys: map[string]bool{}, obj: true, wantKey: true})
			case '[':
				st = append(st, frame{})
			default:
				st = st[:len(st)-1]
				valueDone()
			}
			continue
		case string:
			if n := len(st); n > 0 && st[n-1].wantKey {
				k := FoldKey(v)
				if st[n-1].keys[k] {
					return true
				}
				st[n-1].keys[k], st[n-1].wantKey = true, false
				continue
			}
		}
		valueDone()
	}
}

// TestScratchReleased checks that pooled scratch is reset after each message and that what a
// hostile message grew is not kept.
func TestScratchReleased(t *testing.T) {
	n := mustNew(Options{MaxMembers: 200000, MaxBytes: 8 << 20})
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
	ns := []*Normalizer{nCompact, nValidate, nJCS, nRFC, nExact}
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

// fullFold is FoldKey's definition, spelled out without any shortcut.
func fullFold(key string) string {
	return norm.NFKC.String(cases.Fold().String(norm.NFKC.String(key)))
}

// TestFoldKeyShortcuts checks the character-by-character fold against the definition for every
// rune of the BMP, alone and between neighbours that could combine with it.
func TestFoldKeyShortcuts(t *testing.T) {
	simple := 0
	for r := rune(0x80); r < 0x10000; r++ {
		if r >= 0xD800 && r < 0xE000 {
			continue
		}
		for _, key := range []string{string(r), "A" + string(r) + "z" + string(r) + "ÿ", "\u1100" + string(r) + "가", string(r) + "e"} {
			got, ok := appendSimpleFold(nil, []byte(key))
			if !ok {
				continue
			}
			simple++
			if want := fullFold(key); string(got) != want {
				t.Fatalf("%U in %+q: got %+q, want %+q", r, key, got, want)
			}
		}
	}
	if simple < 40000 {
		t.Fatalf("only %d keys took the shortcut", simple)
	}
	for key, want := range map[string]string{"ÉTAT": "état", "값": "값", "ＡＤＭＩＮ": "admin", "Straße": "strasse", "\u212a": "k", "ﬁle": "file", "a\u0301": "á"} {
		if got := FoldKey(key); got != want || got != fullFold(key) {
			t.Errorf("FoldKey(%+q) = %+q, want %+q", key, got, want)
		}
	}
}
