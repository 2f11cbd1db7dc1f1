package redact

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"testing"
)

func TestMask(t *testing.T) {
	for _, tc := range []struct {
		v           string
		first, last int
		mask        string
		want        string
	}{
		{"홍길수", 1, 0, "*", "홍**"},
		{"홍길수", 0, 1, "*", "**수"},
		{"010-8378-1234", 0, 4, "*", "*********1234"},
		{"14구9999", 3, 0, "*", "14구****"},
		{"1234", 0, 4, "*", "****"}, // nothing would be hidden: mask all
		{"12345", 0, 4, "*", "*2345"},
		{"ab", 1, 1, "#", "##"},
		{"", 0, 0, "*", ""},
		{"secret", 0, 0, "●", "●●●●●●"},
		{"e\u0301t\u00e9", 1, 0, "*", "e***"}, // code points, not graphemes
	} {
		got := string(appendMask(nil, []byte(tc.v), tc.first, tc.last, []byte(tc.mask)))
		if got != tc.want {
			t.Errorf("mask(%q, %d, %d, %q) = %q, want %q", tc.v, tc.first, tc.last, tc.mask, got, tc.want)
		}
		if again := string(appendMask(nil, []byte(got), tc.first, tc.last, []byte(tc.mask))); again != got {
			t.Errorf("mask is not idempotent on %q: %q", got, again)
		}
	}
}

func TestTruncate(t *testing.T) {
	for _, tc := range []struct {
		v    string
		n    int
		want string
	}{
		{"홍길수", 1, "홍"},
		{"홍길수", 3, "홍길수"},
		{"홍길수", 10, "홍길수"},
		{"abcdef", 4, "abcd"},
	} {
		if got := string(appendTruncate(nil, []byte(tc.v), tc.n)); got != tc.want {
			t.Errorf("truncate(%q, %d) = %q, want %q", tc.v, tc.n, got, tc.want)
		}
	}
}

func TestPseudonym(t *testing.T) {
	opts := func(enc string, n int) Options {
		return Options{PseudonymKey: testKey, Rules: []Rule{{Path: "#", Action: Action{Op: OpPseudonym, Encoding: enc, Length: n}}}}
	}
	apply := func(o Options, in string) string {
		r, err := New(o)
		if err != nil {
			t.Fatal(err)
		}
		out, _, err := r.Apply(nil, []byte(in))
		if err != nil {
			t.Fatal(err)
		}
		return string(out)
	}
	// The escaped and plain forms of a value, and a number and its text,
	// get the same pseudonym: the HMAC runs on the unescaped value.
	in := `["01012344321","\u0030\u0031\u0030\u0031\u0032\u0033\u0034\u0034\u0033\u0032\u0031",1012344321,"1012344321",true,null]`
	p, q := ref("01012344321"), ref("1012344321")
	want := `["` + p + `","` + p + `","` + q + `","` + q + `",true,null]`
	if got := apply(opts("", 0), in); got != want {
		t.Fatalf("base32: got %s, want %s", got, want)
	}
	// A new Redactor (a restart) gives the same pseudonyms.
	if got := apply(opts("", 0), in); got != want {
		t.Fatalf("not stable across Redactors: %s", got)
	}
	m := hmac.New(sha256.New, []byte(testKey))
	m.Write([]byte("01012344321"))
	hx := hex.EncodeToString(m.Sum(nil))
	if got := apply(opts("hex", 64), `["01012344321"]`); got != `["`+hx+`"]` {
		t.Fatalf("hex/64: got %s, want %q", got, hx)
	}
	if got := apply(opts("hex", 8), `["01012344321"]`); got != `["`+hx[:8]+`"]` {
		t.Fatalf("hex/8: got %s, want %q", got, hx[:8])
	}
	other := opts("", 0)
	other.PseudonymKey = "another-key-0123456789"
	if got := apply(other, `["01012344321"]`); got == `["`+p+`"]` {
		t.Fatal("a different key gave the same pseudonym")
	}
}
