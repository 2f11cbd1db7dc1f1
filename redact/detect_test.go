package redact

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// detectorCases: for each kind, text and the match expected in it ("" for
// none). Positives and negatives side by side, so a prefilter or boundary
// change that loses one shows up here.
var detectorCases = []struct {
	kind  Kind
	text  string
	match string
}{
	// Phone: E.164, Korean mobile and landline, North American.
	{KindPhone, "+821012345678", "+821012345678"},
	{KindPhone, "call +82 10-1234-5678 now", "+82 10-1234-5678"},
	{KindPhone, "+1 (555) 123-4567", "+1 (555) 123-4567"},
	{KindPhone, "010-1234-5678", "010-1234-5678"},
	{KindPhone, "01012345678", "01012345678"},
	{KindPhone, "tel:010.1234.5678;", "010.1234.5678"},
	{KindPhone, "011-123-4567", "011-123-4567"},
	{KindPhone, "전화010-1234-5678", "010-1234-5678"},
	{KindPhone, "02-123-4567", "02-123-4567"},
	{KindPhone, "031-1234-5678", "031-1234-5678"},
	{KindPhone, "070-1234-5678", "070-1234-5678"},
	{KindPhone, "(555) 123-4567", "(555) 123-4567"},
	{KindPhone, "555-123-4567", "555-123-4567"},
	{KindPhone, "555.123.4567", "555.123.4567"},
	{KindPhone, "1-555-123-4567", "1-555-123-4567"},
	{KindPhone, "20171128134520", ""},                 // timestamp
	{KindPhone, "1511876720", ""},                     // Unix time: ten bare digits
	{KindPhone, "5551234567", ""},                     // ten bare digits
	{KindPhone, "123-456-7890", ""},                   // area code cannot start with 1
	{KindPhone, "2017-11-28", ""},                     // date
	{KindPhone, "2017-11-28 13:45:20", ""},            // date and time
	{KindPhone, "TTNU1372314SU02-2017-04978", ""},     // glued to letters
	{KindPhone, "010-8378-XXXX", ""},                  // already masked
	{KindPhone, "*********5678", ""},                  // masked by us
	{KindPhone, "010-1234-5678-99", ""},               // continues: an id
	{KindPhone, "12.0101234567", ""},                  // decimal
	{KindPhone, "v010-1234-5678", ""},                 // glued
	{KindPhone, "+0123456789", ""},                    // no country code 0
	{KindPhone, "+1234567", ""},                       // too short
	{KindPhone, "192.168.100.200", ""},                // an address
	{KindPhone, "010-1234-567", ""},                   // wrong shape
	{KindPhone, "0101234567890", ""},                  // too long for a mobile
	{KindPhone, "m5xsc24j3p3kar5y", ""},               // a pseudonym
	{KindPhone, "/api/010/1234/5678", ""},             // path
	{KindPhone, "a 010 1234 5678 b", "010 1234 5678"}, // spaces as separators
	// Look-alikes (fold.go) and other separators and plans.
	{KindPhone, "tel ０１０－８３７８－１２３４", "０１０－８３７８－１２３４"},                   // full-width
	{KindPhone, "٠١٠-٨٣٧٨-١٢٣٤", "٠١٠-٨٣٧٨-١٢٣٤"},                       // Arabic-Indic digits
	{KindPhone, "۰۱۰۸۳۷۸۱۲۳۴", "۰۱۰۸۳۷۸۱۲۳۴"},                           // extended Arabic-Indic, bare
	{KindPhone, "010\u00ad8378\u00ad1234", "010\u00ad8378\u00ad1234"},   // soft hyphens
	{KindPhone, "010\u20118378\u20111234", "010\u20118378\u20111234"},   // non-breaking hyphens
	{KindPhone, "010\u200b8378\u200b1234", "010\u200b8378\u200b1234"},   // zero-width spaces
	{KindPhone, "555\u00a0123\u00a04567", "555\u00a0123\u00a04567"},     // no-break spaces
	{KindPhone, "010/8378/1234", "010/8378/1234"},                       // slashes
	{KindPhone, "num: 0 1 0 8 3 7 8 1 2 3 4.", "0 1 0 8 3 7 8 1 2 3 4"}, // spaced out
	{KindPhone, "5 5 5 1 2 3 4 5 6 7", "5 5 5 1 2 3 4 5 6 7"},           // spaced out, North American
	{KindPhone, "06 12 34 56 78", "06 12 34 56 78"},                     // France
	{KindPhone, "06.12.34.56.78", "06.12.34.56.78"},                     // France, dots
	{KindPhone, "020 7946 0958", "020 7946 0958"},                       // UK London
	{KindPhone, "07700 900123", "07700 900123"},                         // UK mobile
	{KindPhone, "01632 960123", "01632 960123"},                         // UK geographic, 016 like a Korean prefix
	{KindPhone, "030 12345678", "030 12345678"},                         // Germany
	{KindPhone, "0049 30 12345678", "0049 30 12345678"},                 // international with 00
	{KindPhone, "2017/11/28", ""},                                       // date with slashes
	{KindPhone, "1 2 3 4 5", ""},                                        // five single digits
	{KindPhone, "1 2 3 4 5 6 7 8 9 0", ""},                              // spaced, but no plan starts with 1 then 2
	{KindPhone, "06 12 34", ""},                                         // too short
	{KindPhone, "２０１７－１１－２８", ""},                                       // full-width date
	// E-mail.
	{KindEmail, "john.doe+tag@example.co.kr", "john.doe+tag@example.co.kr"},
	{KindEmail, "mail: a@b.io.", "a@b.io"},
	{KindEmail, "<x_y%z@sub-domain.example.com>", "x_y%z@sub-domain.example.com"},
	{KindEmail, "john＠example.com", "john＠example.com"},                     // full-width at
	{KindEmail, "ｊｏｈｎ＠ｅｘａｍｐｌｅ．ｃｏｍ", "ｊｏｈｎ＠ｅｘａｍｐｌｅ．ｃｏｍ"},                     // full-width throughout
	{KindEmail, "to \"john doe\"@example.com!", "\"john doe\"@example.com"}, // quoted local part
	{KindEmail, "x\"a b\"@example.com", ""},                                 // quote glued to a word
	{KindEmail, "user@localhost", ""},
	{KindEmail, "a@b.c", ""},
	{KindEmail, "@example.com", ""},
	{KindEmail, "j***@example.com", ""},
	{KindEmail, "a@-x.com", ""},
	{KindEmail, "a@x..com", ""},
	{KindEmail, "a@x.c0m", ""},
	{KindEmail, "a@x.com_y", ""},
	// IPv4.
	{KindIPv4, "192.168.10.20", "192.168.10.20"},
	{KindIPv4, "from 10.0.0.1:8080", "10.0.0.1"},
	{KindIPv4, "ip=255.255.255.255.", "255.255.255.255"},
	{KindIPv4, "256.1.1.1", ""},
	{KindIPv4, "1.2.3", ""},
	{KindIPv4, "v1.2.3.4", ""},
	{KindIPv4, "1.2.3.4.5", ""},
	{KindIPv4, "01.02.03.04", ""},
	{KindIPv4, "37.4057689", ""},
	// IPv6.
	{KindIPv6, "2001:db8::8a2e:370:7334", "2001:db8::8a2e:370:7334"},
	{KindIPv6, "fe80::1ff:fe23:4567:890a", "fe80::1ff:fe23:4567:890a"},
	{KindIPv6, "[2001:0db8:0000:0000:0000:ff00:0042:8329]:443", "2001:0db8:0000:0000:0000:ff00:0042:8329"},
	{KindIPv6, "::ffff:192.0.2.128", "::ffff:192.0.2.128"},
	{KindIPv6, "::1", ""},
	{KindIPv6, "::", ""},
	{KindIPv6, "13:45:20", ""},
	{KindIPv6, "aa:bb:cc:dd:ee:ff", ""},
	{KindIPv6, "1:2:3:4:5:6:7:8:9", ""},
	{KindIPv6, "2001:db8:::1", ""},
	{KindIPv6, "std::vector", ""},
	// MAC.
	{KindMAC, "aa:bb:cc:dd:ee:ff", "aa:bb:cc:dd:ee:ff"},
	{KindMAC, "mac=AA-BB-CC-DD-EE-FF;", "AA-BB-CC-DD-EE-FF"},
	{KindMAC, "aabb.ccdd.eeff", "aabb.ccdd.eeff"},
	{KindMAC, "C0:0C:82", ""},
	{KindMAC, "aa:bb:cc:dd:ee:ff:00:11", ""},
	{KindMAC, "aa:bb-cc:dd:ee:ff", ""},
	{KindMAC, "AA-BB-CC*********", ""},
	// IMEI (Luhn).
	{KindIMEI, "352099001761481", "352099001761481"},
	{KindIMEI, "IMEI 35-209900-176148-1", "35-209900-176148-1"},
	{KindIMEI, "35209900-176148-1", "35209900-176148-1"},
	{KindIMEI, "352099001761482", ""},  // check digit wrong
	{KindIMEI, "3520990017614810", ""}, // 16 digits
	{KindIMEI, "x352099001761481", ""},
	// Payment cards (Luhn and issuer prefix).
	{KindCard, "4111 1111 1111 1111", "4111 1111 1111 1111"},
	{KindCard, "4111-1111-1111-1111", "4111-1111-1111-1111"},
	{KindCard, "card 5500000000000004.", "5500000000000004"},
	{KindCard, "378282246310005", "378282246310005"},
	{KindCard, "3782 822463 10005", "3782 822463 10005"},
	{KindCard, "4111111111111112", ""},        // Luhn fails
	{KindCard, "1111111111111117", ""},        // Luhn passes, no issuer starts with 1
	{KindCard, "20171128134520", ""},          // timestamp
	{KindCard, "4111 1111-1111 1111", ""},     // mixed separators
	{KindCard, "41 11 11 11 11 11 11 11", ""}, // groups too short
	{KindCard, "************1111", ""},
}

// TestDetectorFind runs each detector on the folded view of the text, as
// detect does, and maps the match back to the text's own bytes.
func TestDetectorFind(t *testing.T) {
	var s state
	for _, tc := range detectorCases {
		d := detector{kind: tc.kind}
		view, folded := s.fold([]byte(tc.text))
		st, en := d.find(view, 0)
		got := ""
		if st >= 0 {
			sp := [][2]int{{st, en}}
			if folded {
				s.unfold(sp)
			}
			got = tc.text[sp[0][0]:sp[0][1]]
		}
		if got != tc.match {
			t.Errorf("%s in %q: found %q, want %q", tc.kind, tc.text, got, tc.match)
		}
		var m summary
		m.of(view)
		if tc.match != "" && (!d.maybe(&m, view) || !m.any()) {
			t.Errorf("%s prefilter dismisses %q", tc.kind, tc.text)
		}
	}
}

// TestDetectorsInJSON runs every case through Apply in four places: a
// plain string, the same string written with \u escapes, an array, and a
// nested object. A match must be masked everywhere, a non-match untouched.
func TestDetectorsInJSON(t *testing.T) {
	for _, tc := range detectorCases {
		r, err := New(Options{Detectors: []Detector{{Kind: tc.kind}}})
		if err != nil {
			t.Fatal(err)
		}
		plain := marshalNoHTML(tc.text)
		want := tc.text
		if tc.match != "" {
			want = strings.Replace(tc.text, tc.match, strings.Repeat("*", len([]rune(tc.match))), 1)
		}
		wantJSON := marshalNoHTML(want)
		for _, shape := range []struct {
			format  string
			escaped bool
		}{{`{"v":%s}`, false}, {`{"v":%s}`, true}, {`[1,[%s]]`, false}, {`{"a":{"b":[{"c":%s}]}}`, false}} {
			val := string(plain)
			if shape.escaped {
				val = escapeAll(tc.text) // every character as \uXXXX
			}
			in := fmt.Sprintf(shape.format, val)
			w := in
			if tc.match != "" {
				w = fmt.Sprintf(shape.format, wantJSON)
			}
			out, rep, err := r.Apply(nil, []byte(in))
			if err != nil {
				t.Fatalf("%s: Apply(%s): %v", tc.kind, in, err)
			}
			if string(out) != w {
				t.Errorf("%s: Apply(%s)\n got %s\nwant %s", tc.kind, in, out, w)
			}
			if fired := rep.Count("detect:"+string(tc.kind)) == 1; fired != (tc.match != "") {
				t.Errorf("%s: Apply(%s) report %v, want fired=%v", tc.kind, in, rep.Hits(), tc.match != "")
			}
		}
	}
}

func marshalNoHTML(s string) string {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)
	return strings.TrimSpace(b.String())
}

// escapeAll writes s as a JSON string with every character escaped.
func escapeAll(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		if r > 0xffff {
			b.WriteString(string(r))
			continue
		}
		fmt.Fprintf(&b, `\u%04x`, r)
	}
	b.WriteByte('"')
	return b.String()
}

// Detectors look at strings only, unless Numbers is set: readings and
// timestamps are numbers too.
func TestDetectorNumbers(t *testing.T) {
	in := `{"imei":352099001761481,"ts":20171128134520,"n":-352099001761481,"f":352099001761481.0}`
	off, _ := New(Options{Detectors: []Detector{{Kind: KindIMEI}, {Kind: KindPhone}}})
	if out, _, _ := off.Apply(nil, []byte(in)); string(out) != in {
		t.Fatalf("numbers inspected without Numbers: %s", out)
	}
	on, _ := New(Options{Detectors: []Detector{{Kind: KindIMEI, Numbers: true}, {Kind: KindPhone}}})
	out, rep, err := on.Apply(nil, []byte(in))
	want := `{"imei":"***************","ts":20171128134520,"n":-352099001761481,"f":352099001761481.0}`
	if err != nil || string(out) != want || rep.Count("detect:imei") != 1 {
		t.Fatalf("got %s (%v), want %s", out, err, want)
	}
}

func TestDetectorOperators(t *testing.T) {
	r, err := New(Options{
		PseudonymKey: testKey,
		Detectors: []Detector{
			{Kind: KindEmail, Action: Action{Op: OpPseudonym}},
			{Kind: KindPhone, Action: Action{Op: OpReplace, Value: map[string]any{"redacted": "phone"}}},
			{Kind: KindIPv4, Action: Action{Op: OpRemove}},
			{Kind: KindMAC, Action: Action{Op: OpMask, KeepLast: 2, MaskChar: "#"}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	in := `{"a":"to x@example.com and y@example.org","b":["010-1234-5678"],"c":"10.1.2.3","d":["10.1.2.3"],"e":"aa:bb:cc:dd:ee:ff"}`
	want := `{"a":"to ` + ref("x@example.com") + ` and ` + ref("y@example.org") + `","b":[{"redacted":"phone"}],"d":[null],"e":"###############ff"}`
	out, _, err := r.Apply(nil, []byte(in))
	if err != nil || string(out) != want {
		t.Fatalf("got  %s (%v)\nwant %s", out, err, want)
	}
}

// A custom pattern that also matches the mask output makes the value
// fall back to a full mask, then to null: a result never matches again.
func TestDetectorFallback(t *testing.T) {
	r, err := New(Options{Detectors: []Detector{
		{ID: "glued", Kind: KindRegex, Pattern: `y\*`}, // runs before "word" masks
		{ID: "word", Kind: KindRegex, Pattern: `secret\w*`},
		{ID: "21", Kind: KindRegex, Pattern: `^\*{21}$`}, // New probes other lengths
	}})
	if err != nil {
		t.Fatal(err)
	}
	out, rep, err := r.Apply(nil, []byte(`["mysecret","secretsecretsecret123","a secret"]`))
	if err != nil || string(out) != `["********",null,"a ******"]` || rep.Nulled != 1 || rep.Changed != 3 {
		t.Fatalf("got %s, %+v, %v", out, rep, err)
	}
	again, rep, err := r.Apply(nil, out)
	if err != nil || string(again) != string(out) || rep.Hits() != 0 {
		t.Fatalf("second pass: %s, %+v, %v", again, rep, err)
	}
}
