package normalize

import (
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf16"
	"unicode/utf8"
)

// rfc8785Numbers is RFC 8785 Appendix B: IEEE-754 bits and their required serialisation.
var rfc8785Numbers = []struct {
	bits uint64
	want string
}{
	{0x0000000000000000, "0"},
	{0x8000000000000000, "0"},
	{0x0000000000000001, "5e-324"},
	{0x8000000000000001, "-5e-324"},
	{0x7fefffffffffffff, "1.7976931348623157e+308"},
	{0xffefffffffffffff, "-1.7976931348623157e+308"},
	{0x4340000000000000, "9007199254740992"},
	{0xc340000000000000, "-9007199254740992"},
	{0x4430000000000000, "295147905179352830000"},
	{0x44b52d02c7e14af5, "9.999999999999997e+22"},
	{0x44b52d02c7e14af6, "1e+23"},
	{0x44b52d02c7e14af7, "1.0000000000000001e+23"},
	{0x444b1ae4d6e2ef4e, "999999999999999700000"},
	{0x444b1ae4d6e2ef4f, "999999999999999900000"},
	{0x444b1ae4d6e2ef50, "1e+21"},
	{0x3eb0c6f7a0b5ed8c, "9.999999999999997e-7"},
	{0x3eb0c6f7a0b5ed8d, "0.000001"},
	{0x41b3de4355555553, "333333333.3333332"},
	{0x41b3de4355555554, "333333333.33333325"},
	{0x41b3de4355555555, "333333333.3333333"},
	{0x41b3de4355555556, "333333333.3333334"},
	{0x41b3de4355555557, "333333333.33333343"},
	{0xbecbf647612f3696, "-0.0000033333333333333333"},
	{0x43143ff3c1cb0959, "1424953923781206.2"},
}

func TestAppendES(t *testing.T) {
	for _, tc := range rfc8785Numbers {
		f := math.Float64frombits(tc.bits)
		if got := string(appendES(nil, f)); got != tc.want {
			t.Errorf("%016x: got %s, want %s", tc.bits, got, tc.want)
		}
		// Through the public API, from a 17-digit spelling of the same value. Magnitudes that
		// JCS prints as integers beyond 2^53-1 are rejected by the number policy.
		in := "[" + strconv.FormatFloat(f, 'e', 16, 64) + "]"
		out, err := nJCS.Append(nil, []byte(in))
		if a := math.Abs(f); a > 1<<53-1 && a < 1e21 {
			if ReasonOf(err) != ReasonNumberTooLarge {
				t.Errorf("%s: got %v, want number_too_large", in, err)
			}
			continue
		}
		if err != nil || string(out) != "["+tc.want+"]" {
			t.Errorf("%s: got %s %v, want [%s]", in, out, err, tc.want)
		}
	}
}

// cyberphoneVectors are input/output pairs from the RFC 8785 reference implementation's
// testdata (github.com/cyberphone/json-canonicalization, Apache-2.0).
var cyberphoneVectors = []struct{ name, in, want string }{
	{"values",
		`{"numbers": [1E30, 4.50, 333333333.33333329, 2e-3, 0.000000000000000000000000001], "escaping": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/", "literals": [null, true, false]}`,
		`{"escaping":"€$\u000f\nA'B\"\\\\\"/","literals":[null,true,false],"numbers":[1e+30,4.5,333333333.3333333,0.002,1e-27]}`},
	{"weird",
		`{"\u20ac": "Euro Sign", "1": "One", "\u0080": "Control\u007f", "\ud83d\ude02": "Smiley", "\u00f6": "Latin Small Letter O With Diaeresis", "\ufb33": "Hebrew Letter Dalet With Dagesh", "</script>": "Browser Challenge"}`,
		"{\"1\":\"One\",\"</script>\":\"Browser Challenge\",\"\u0080\":\"Control\u007f\",\"ö\":\"Latin Small Letter O With Diaeresis\",\"€\":\"Euro Sign\",\"😂\":\"Smiley\",\"\ufb33\":\"Hebrew Letter Dalet With Dagesh\"}"},
	{"structures",
		`{"1": {"f": {"f": "hi","F": 5} ,"\n": 56.0}, "10": { }, "": "empty", "a": { }, "111": [ { } ], "A": { }}`,
		`{"":"empty","1":{"\n":56,"f":{"F":5,"f":"hi"}},"10":{},"111":[{}],"A":{},"a":{}}`},
	{"french",
		`{"peach": "This sorting order", "péché": "is wrong according to French", "pêche": "but canonicalization MUST", "sin":   "ingnore locale"}`,
		`{"peach":"This sorting order","péché":"is wrong according to French","pêche":"but canonicalization MUST","sin":"ingnore locale"}`},
}

func TestJCSVectors(t *testing.T) {
	for _, tc := range cyberphoneVectors {
		expect(t, tc.name, nExactJCS, tc.in, ok(tc.want))
		// "structures" has "f" and "F", "a" and "A" in one object: distinct keys to RFC 8785,
		// a duplicate to the default, which compares keys folded.
		w := ok(tc.want)
		if tc.name == "structures" {
			w = fail(ReasonDuplicateKey)
		}
		expect(t, tc.name, nJCS, tc.in, w)
	}
}

func TestCompareUTF16(t *testing.T) {
	// Pairs in strictly increasing UTF-16 order, as canonical string contents.
	order := []string{``, `\n`, `\n\u0000`, `\n\b`, `\n\u001f`, `\n\u001fA`, `\"`, `A`, `AB`, `\\`, "a", "a\u0080", "a😀", "a\uE000",
		"\u0080", "ö", `ö\\`, "öa", "€", "😀", `😀\n`, "😂", "\uE000", "\ufb33", "\uFFFD"}
	for i := range order {
		for j := range order {
			got := compareUTF16([]byte(order[i]), []byte(order[j]))
			if (got < 0) != (i < j) || (got == 0) != (i == j) {
				t.Errorf("compare(%q, %q) = %d", order[i], order[j], got)
			}
		}
	}
}

// FuzzAppendES compares the ECMAScript number form with encoding/json's float64 encoder, which
// implements the same rules (except that it keeps the sign of -0).
func FuzzAppendES(f *testing.F) {
	for _, tc := range rfc8785Numbers {
		f.Add(tc.bits)
	}
	f.Fuzz(func(t *testing.T, bits uint64) {
		v := math.Float64frombits(bits)
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return
		}
		got := string(appendES(nil, v))
		want, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if v == 0 {
			want = []byte("0")
		}
		if got != string(want) {
			t.Fatalf("%v (%016x): got %s, want %s", v, bits, got, want)
		}
		if back, err := strconv.ParseFloat(got, 64); err != nil || back != v {
			t.Fatalf("%s does not round-trip to %v", got, v)
		}
	})
}

// FuzzCompareUTF16 checks the key order against a reference: the strings converted to UTF-16
// and compared unit by unit.
func FuzzCompareUTF16(f *testing.F) {
	f.Add("a", "b")
	f.Add("\n", "\"")
	f.Add("😀", "\uE000")
	f.Add("ö\\", "öa")
	f.Fuzz(func(t *testing.T, a, b string) {
		a, b = strings.ToValidUTF8(a, "?"), strings.ToValidUTF8(b, "?")
		want := slices.Compare(utf16.Encode([]rune(a)), utf16.Encode([]rune(b)))
		got := compareUTF16(canonical(a), canonical(b))
		if (got < 0) != (want < 0) || (got == 0) != (want == 0) {
			t.Fatalf("compare(%q, %q) = %d, want sign of %d", a, b, got, want)
		}
	})
}

// canonical is a reference encoder of string contents in canonical form.
func canonical(s string) []byte {
	var out []byte
	for _, r := range s {
		if r < 0x20 || r == '"' || r == '\\' {
			out = appendEscaped(out, byte(r))
		} else {
			out = utf8.AppendRune(out, r)
		}
	}
	return out
}
