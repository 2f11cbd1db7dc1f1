package redact

import (
	"strings"
	"testing"
	"unicode"
)

// TestDigitValue: digitValue's assumption holds for Go's Unicode tables:
// every range of decimal digits has stride 1, starts at a zero and holds
// whole runs of ten.
func TestDigitValue(t *testing.T) {
	check := func(lo, hi, stride uint32) {
		if stride != 1 || (hi-lo+1)%10 != 0 {
			t.Fatalf("Nd range %U-%U stride %d: not runs of ten", lo, hi, stride)
		}
	}
	for _, r := range unicode.Nd.R16 {
		check(uint32(r.Lo), uint32(r.Hi), uint32(r.Stride))
	}
	for _, r := range unicode.Nd.R32 {
		check(r.Lo, r.Hi, r.Stride)
	}
	for _, tc := range []struct {
		r    rune
		want int
	}{{'٣', 3}, {'۷', 7}, {'९', 9}, {'７', 7}, {'𝟘', 0}, {'𝟡', 9}} {
		c, ok := foldRune(tc.r)
		if !ok || int(c-'0') != tc.want {
			t.Errorf("foldRune(%q) = %q, %v; want %d", tc.r, c, ok, tc.want)
		}
	}
}

// TestFoldedPseudonym: a phone number in full-width or Arabic-Indic
// digits gets the pseudonym of the same number in ASCII digits, and the
// text around it is left as it was.
func TestFoldedPseudonym(t *testing.T) {
	r, err := New(Options{PseudonymKey: testKey, Detectors: []Detector{{Kind: KindPhone, Action: Action{Op: OpPseudonym}}}})
	if err != nil {
		t.Fatal(err)
	}
	apply := func(in string) string {
		out, _, err := r.Apply(nil, []byte(in))
		if err != nil {
			t.Fatal(err)
		}
		return string(out)
	}
	ascii := apply(`["전화 010-8378-1234 ＃"]`)
	for _, in := range []string{`["전화 ０１０－８３７８－１２３４ ＃"]`, `["전화 ٠١٠-٨٣٧٨-١٢٣٤ ＃"]`} {
		if got := apply(in); got != ascii {
			t.Errorf("Apply(%s) = %s, want %s (the ASCII number's pseudonym)", in, got, ascii)
		}
	}
	if ascii == `["전화 010-8378-1234 ＃"]` {
		t.Fatal("the ASCII number was not pseudonymised")
	}
}

// TestPhoneRegions: a phone detector that lists regions finds their
// national numbers and international ones, and not other countries'.
func TestPhoneRegions(t *testing.T) {
	for _, tc := range []struct {
		regions []string
		text    string
		found   bool
	}{
		{[]string{"KR"}, "010-1234-5678", true},
		{[]string{"KR"}, "+33 6 12 34 56 78", true}, // international: always
		{[]string{"KR"}, "0049 30 12345678", true},
		{[]string{"KR"}, "06 12 34 56 78", false},
		{[]string{"KR"}, "555-123-4567", false},
		{[]string{"fr"}, "06 12 34 56 78", true}, // codes in either case
		{[]string{"FR"}, "01012345678", false},
		{[]string{"FR"}, "(555) 123-4567", false},
		{[]string{"US", "GB"}, "(555) 123-4567", true},
		{[]string{"US", "GB"}, "020 7946 0958", true},
		{[]string{"US", "GB"}, "02-123-4567", false},
		{nil, "02-123-4567", true}, // no list: every region
	} {
		r, err := New(Options{Detectors: []Detector{{Kind: KindPhone, Regions: tc.regions}}})
		if err != nil {
			t.Fatal(err)
		}
		_, rep, err := r.Apply(nil, []byte(`{"v":"`+tc.text+`"}`))
		if err != nil {
			t.Fatal(err)
		}
		if found := rep.Hits() > 0; found != tc.found {
			t.Errorf("regions %v, %q: found %v, want %v", tc.regions, tc.text, found, tc.found)
		}
	}
	for _, tc := range []struct {
		d    Detector
		want string
	}{
		{Detector{Kind: KindPhone, Regions: []string{"KR", "XX"}}, `detectors[0].regions[1]: unknown region "XX"; one of AT, BE, CA, CH, DE, FR, GB, IE, IT, KR, NL, US`},
		{Detector{Kind: KindEmail, Regions: []string{"KR"}}, "detectors[0].regions: only for kind phone"},
	} {
		if _, err := New(Options{Detectors: []Detector{tc.d}}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want %q", tc.d, err, tc.want)
		}
	}
}
