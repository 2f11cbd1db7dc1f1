package normalize

import (
	"encoding/json"
	"testing"
	"unicode/utf8"
)

// unescapeSeeds are JSON string bodies (between the quotes) shared by the
// table test and the fuzz target.
var unescapeSeeds = []string{
	`plain`, `\"\\\/\b\f\n\r\t`, `\u00e9t\u00E9`, `\ud83d\ude00 smile`, `\ud800 lone`, `\udc00`,
	`\ud800\u0041`, `\ud800\ud800\udc00`, `a\u0000b`, `홍길수 \u0031\u0030`, ``, `\\u0041`,
}

// checkUnescape compares AppendUnescaped with encoding/json on one body
// that is a valid JSON string; it reports false for bodies that are not.
func checkUnescape(t *testing.T, body string) bool {
	t.Helper()
	var want string
	if !utf8.ValidString(body) || json.Unmarshal([]byte(`"`+body+`"`), &want) != nil {
		return false
	}
	if got := string(AppendUnescaped([]byte("x"), []byte(body))); got != "x"+want {
		t.Errorf("%q: got %q, want %q", body, got[1:], want)
	}
	return true
}

func TestAppendUnescaped(t *testing.T) {
	for _, b := range unescapeSeeds {
		if !checkUnescape(t, b) {
			t.Fatalf("seed %q is not a valid JSON string body", b)
		}
	}
}

// FuzzAppendUnescaped holds AppendUnescaped to encoding/json on every
// valid JSON string body the fuzzer finds.
func FuzzAppendUnescaped(f *testing.F) {
	for _, b := range unescapeSeeds {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, body string) { checkUnescape(t, body) })
}
