package normalize

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
)

// want is one expected result: the exact output, or the rejection reason.
type want struct {
	out    string
	reason Reason
}

func ok(out string) want    { return want{out: out} }
func fail(r Reason) want    { return want{reason: r} }
func (w want) isZero() bool { return w == want{} }

// seedCase is one input with its expected results under three configurations. A zero jcs or
// rfc means "same as compact" (an accepted output is never empty, so zero is unambiguous).
type seedCase struct {
	name    string
	in      string
	compact want // Options{}: I-JSON, compact. Output validate must give the same verdict.
	jcs     want // Options{Output: OutputJCS}
	rfc     want // Options{Profile: ProfileRFC8259}
}

// seeds is THE seed list: the table test, the benchmarks and the fuzz targets all use it.
var seeds = []seedCase{
	{name: "komdi-alarm", in: komdi, compact: ok(refCompact(komdi)), jcs: ok(refJCS(komdi))},
	{name: "komdi-alarm minified", in: refCompact(komdi), compact: ok(refCompact(komdi)), jcs: ok(refJCS(komdi))},
	{name: "telemetry-64k", in: telemetry64k, compact: ok(refCompact(telemetry64k)), jcs: ok(refJCS(telemetry64k))},
	{name: "whitespace", in: " \t{\"a\" : [ 1 , true , false , null ] }\r\n ", compact: ok(`{"a":[1,true,false,null]}`)},
	{name: "top-level string", in: ` "x" `, compact: ok(`"x"`)},
	{name: "top-level number", in: "\n12\n", compact: ok(`12`)},
	{name: "top-level null", in: `null`, compact: ok(`null`)},
	{name: "empty containers", in: `[ {}, [ ], { } ]`, compact: ok(`[{},[],{}]`)},

	// Strings: unnecessary escapes decoded, required ones in one form.
	{name: "escapes decoded", in: `["\u00e9\/\u0041\u20AC"]`, compact: ok(`["é/A€"]`)},
	{name: "escapes canonical", in: `["\"\\\b\f\n\r\t\u0000\u001F\u007f"]`, compact: ok(`["\"\\\b\f\n\r\t\u0000\u001f` + "\x7f" + `"]`)},
	{name: "short escapes via u", in: `["\u0008\u000c\u000A\u000D\u0009\u0022\u005C"]`, compact: ok(`["\b\f\n\r\t\"\\"]`)},
	{name: "NUL escape kept", in: `["A\u0000B"]`, compact: ok(`["A\u0000B"]`)},
	{name: "surrogate pair", in: `["\ud83d\ude00 \uD834\uDD1E"]`, compact: ok(`["😀 𝄞"]`)},
	{name: "line separator", in: `["\u2028` + "\u2029" + `"]`, compact: ok("[\"\u2028\u2029\"]")},
	{name: "raw UTF-8", in: "[\"홍길수 é 😀\"]", compact: ok("[\"홍길수 é 😀\"]")},

	// Duplicate keys.
	{name: "duplicate key", in: `{"a":1,"a":2}`, compact: fail(ReasonDuplicateKey), rfc: ok(`{"a":1,"a":2}`)},
	{name: "duplicate via escape", in: `{"a":1,"\u0061":2}`, compact: fail(ReasonDuplicateKey), rfc: ok(`{"a":1,"a":2}`)},
	{name: "duplicate via slash escape", in: `{"a/b":1,"a\/b":2}`, compact: fail(ReasonDuplicateKey), rfc: ok(`{"a/b":1,"a/b":2}`)},
	{name: "duplicate nested", in: `{"x":{"b":1,"b":2}}`, compact: fail(ReasonDuplicateKey), rfc: ok(`{"x":{"b":1,"b":2}}`)},
	{name: "duplicate after nested", in: `{"a":{"x":1},"b":2,"a":3}`, compact: fail(ReasonDuplicateKey), rfc: ok(`{"a":{"x":1},"b":2,"a":3}`)},
	{name: "same key in siblings", in: `{"a":{"k":1},"b":{"k":2},"c":[{"k":3},{"k":4}]}`, compact: ok(`{"a":{"k":1},"b":{"k":2},"c":[{"k":3},{"k":4}]}`)},
	{name: "case differs", in: `{"admin":1,"Admin":2}`, compact: fail(ReasonDuplicateKey), rfc: ok(`{"admin":1,"Admin":2}`)}, // keys compared folded
	{name: "case differs in an array of objects", in: `{"DATA":[{"USER_NAME":"a"},{"user_name":"b","User_Name":"c"}]}`, compact: fail(ReasonDuplicateKey),
		rfc: ok(`{"DATA":[{"USER_NAME":"a"},{"user_name":"b","User_Name":"c"}]}`)},
	{name: "40 members", in: members(40, -1), compact: ok(members(40, -1)), jcs: ok(sortedMembers(40))},
	{name: "40 members duplicate", in: members(40, 7), compact: fail(ReasonDuplicateKey), rfc: ok(members(40, 7))},
	{name: "1000 members duplicate", in: members(999, 998), compact: fail(ReasonDuplicateKey), rfc: ok(members(999, 998))},
	{name: "1001 members", in: members(1001, -1), compact: fail(ReasonMembers)},

	// Invalid UTF-8 and surrogates: rejected by I-JSON, replaced by U+FFFD in RFC 8259 output.
	{name: "lone surrogate", in: `["\ud800"]`, compact: fail(ReasonLoneSurrogate), rfc: ok("[\"\uFFFD\"]")},
	{name: "lone low surrogate", in: `["\udc00x"]`, compact: fail(ReasonLoneSurrogate), rfc: ok("[\"\uFFFDx\"]")},
	{name: "high then escape", in: `["\ud800\u0041"]`, compact: fail(ReasonLoneSurrogate), rfc: ok("[\"\uFFFDA\"]")},
	{name: "high high low", in: `["\ud800\ud800\udc00"]`, compact: fail(ReasonLoneSurrogate), rfc: ok("[\"\uFFFD\U00010000\"]")},
	{name: "raw surrogate", in: "[\"\xed\xa0\x80\"]", compact: fail(ReasonLoneSurrogate), rfc: ok("[\"\uFFFD\uFFFD\uFFFD\"]")},
	{name: "invalid byte", in: "[\"a\xffb\"]", compact: fail(ReasonInvalidUTF8), rfc: ok("[\"a\uFFFDb\"]")},
	{name: "overlong", in: "[\"\xc0\xaf\"]", compact: fail(ReasonInvalidUTF8), rfc: ok("[\"\uFFFD\uFFFD\"]")},
	{name: "beyond U+10FFFF", in: "[\"\xf4\x90\x80\x80\"]", compact: fail(ReasonInvalidUTF8), rfc: ok("[\"\uFFFD\uFFFD\uFFFD\uFFFD\"]")},
	{name: "truncated sequence", in: "[\"\xe6\x97\"]", compact: fail(ReasonInvalidUTF8), rfc: ok("[\"\uFFFD\uFFFD\"]")},
	{name: "invalid key", in: "{\"\xff\":1}", compact: fail(ReasonInvalidUTF8), rfc: ok("{\"\uFFFD\":1}")},
	{name: "invalid outside string", in: "[\xff]", compact: fail(ReasonSyntax)},

	// Numbers.
	{name: "numbers", in: `[0, -0, 1.0, 2.50, 1E6, 1e-7, 0.000001, 1e21, 1.5E300, -1.5e-9, 9007199254740991.0]`,
		compact: ok(`[0,-0,1.0,2.50,1E6,1e-7,0.000001,1e21,1.5E300,-1.5e-9,9007199254740991.0]`),
		jcs:     ok(`[0,0,1,2.5,1000000,1e-7,0.000001,1e+21,1.5e+300,-1.5e-9,9007199254740991]`)},
	{name: "float printed as unsafe integer", in: `[1.2345678901234568e20]`, compact: ok(`[1.2345678901234568e20]`), jcs: fail(ReasonNumberTooLarge)},
	{name: "largest safe integer", in: `[9007199254740991,-9007199254740991]`, compact: ok(`[9007199254740991,-9007199254740991]`)},
	{name: "2^53", in: `[9007199254740992]`, compact: fail(ReasonNumberTooLarge)},
	{name: "-2^53", in: `[-9007199254740992]`, compact: fail(ReasonNumberTooLarge)},
	{name: "2^53 as float", in: `[9007199254740992.0]`, compact: ok(`[9007199254740992.0]`), jcs: fail(ReasonNumberTooLarge)},
	{name: "largest double", in: `[1.7976931348623157e308]`, compact: ok(`[1.7976931348623157e308]`), jcs: ok(`[1.7976931348623157e+308]`)},
	{name: "double overflow near limit", in: `[1.7976931348623159e308]`, compact: fail(ReasonNumberTooLarge)},
	{name: "double overflow", in: `[-1e400]`, compact: fail(ReasonNumberTooLarge)},
	{name: "huge exponent", in: `[1e999999999999999999]`, compact: fail(ReasonNumberTooLarge)},
	{name: "zero huge exponent", in: `[0.0e999999999]`, compact: ok(`[0.0e999999999]`), jcs: ok(`[0]`)},
	{name: "underflow", in: `[1e-400]`, compact: ok(`[1e-400]`), jcs: ok(`[0]`)},
	{name: "101 digits", in: "[0." + strings.Repeat("0", 99) + "1]", compact: fail(ReasonNumberTooLong)},
	{name: "leading zero", in: `[01]`, compact: fail(ReasonInvalidNumber)},
	{name: "no fraction digits", in: `[1.]`, compact: fail(ReasonInvalidNumber)},
	{name: "no exponent digits", in: `[1e+]`, compact: fail(ReasonInvalidNumber)},
	{name: "lone minus", in: `[-]`, compact: fail(ReasonInvalidNumber)},
	{name: "plus sign", in: `[+1]`, compact: fail(ReasonInvalidNumber)},
	{name: "NaN", in: `[NaN]`, compact: fail(ReasonNonFinite)},
	{name: "-Infinity", in: `[-Infinity]`, compact: fail(ReasonNonFinite)},

	// JCS ordering (RFC 8785 section 3.2.3): UTF-16 code units, escapes decoded first.
	{name: "jcs nested sort", in: `{"b":1,"a":2,"c":{"z":[{"y":1,"x":2}],"y":2}}`,
		compact: ok(`{"b":1,"a":2,"c":{"z":[{"y":1,"x":2}],"y":2}}`),
		jcs:     ok(`{"a":2,"b":1,"c":{"y":2,"z":[{"x":2,"y":1}]}}`)},
	{name: "jcs utf16 order", in: "{\"\uE000\":1,\"😀\":2,\"\\n\":3,\"A\":4,\"\\\"\":5}",
		compact: ok("{\"\uE000\":1,\"😀\":2,\"\\n\":3,\"A\":4,\"\\\"\":5}"),
		jcs:     ok("{\"\\n\":3,\"\\\"\":5,\"A\":4,\"😀\":2,\"\uE000\":1}")},
	{name: "jcs rfc8785 example", in: `{"numbers":[333333333.33333329,1E30,4.50,2e-3,0.000000000000000000000000001],"string":"\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/","literals":[null,true,false]}`,
		compact: ok(`{"numbers":[333333333.33333329,1E30,4.50,2e-3,0.000000000000000000000000001],"string":"€$\u000f\nA'B\"\\\\\"/","literals":[null,true,false]}`),
		jcs:     ok(`{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}`)},

	// Structure and limits.
	{name: "depth 32", in: nest(32), compact: ok(nest(32))},
	{name: "depth 33", in: nest(33), compact: fail(ReasonDepth)},
	{name: "1 MiB of [", in: strings.Repeat("[", 1<<20), compact: fail(ReasonDepth)},
	{name: "object depth 33", in: strings.Repeat(`{"a":`, 33) + "1" + strings.Repeat("}", 33), compact: fail(ReasonDepth)},
	{name: "too large", in: strings.Repeat(" ", 1<<20) + "1", compact: fail(ReasonTooLarge)},
	{name: "trailing data", in: `{} x`, compact: fail(ReasonTrailingData)},
	{name: "two values", in: `[1] [2]`, compact: fail(ReasonTrailingData)},
	{name: "trailing comma array", in: `[1,]`, compact: fail(ReasonTrailingComma)},
	{name: "trailing comma object", in: `{"a":1,}`, compact: fail(ReasonTrailingComma)},
	{name: "block comment", in: `[1 /* c */]`, compact: fail(ReasonComment)},
	{name: "line comment", in: "// c\n1", compact: fail(ReasonComment)},
	{name: "utf-8 bom", in: "\xef\xbb\xbf{}", compact: fail(ReasonBOM)},
	{name: "utf-16 bom", in: "\xff\xfe[\x00]\x00", compact: fail(ReasonBOM)},
	{name: "empty", in: ``, compact: fail(ReasonUnexpectedEnd)},
	{name: "only space", in: "  \n", compact: fail(ReasonUnexpectedEnd)},
	{name: "truncated object", in: `{"a":`, compact: fail(ReasonUnexpectedEnd)},
	{name: "truncated string", in: `["abc`, compact: fail(ReasonUnexpectedEnd)},
	{name: "truncated literal", in: `[tru`, compact: fail(ReasonUnexpectedEnd)},
	{name: "bad literal", in: `[trUe]`, compact: fail(ReasonSyntax)},
	{name: "raw tab in string", in: "[\"a\tb\"]", compact: fail(ReasonControlChar)},
	{name: "invalid escape", in: `["\x"]`, compact: fail(ReasonInvalidEscape)},
	{name: "invalid hex", in: `["\u12G4"]`, compact: fail(ReasonInvalidEscape)},
	{name: "missing colon", in: `{"a" 1}`, compact: fail(ReasonMissingColon)},
	{name: "missing comma", in: `[1 2]`, compact: fail(ReasonMissingComma)},
	{name: "key not string", in: `{1:2}`, compact: fail(ReasonKeyNotString)},
	{name: "mismatched bracket", in: `[1}`, compact: fail(ReasonSyntax)},
}

// komdi is the realistic seed payload (see testdata/README.txt).
var komdi = mustRead("testdata/komdi-alarm.json")

// telemetry64k is a deterministic ~64 KiB realistic document: an array of sensor readings.
var telemetry64k = func() string {
	var b strings.Builder
	b.WriteString("{\"device\":\"TTNU1372314\",\"fw\":\"2.4.1\",\"readings\":[")
	for i := 0; b.Len() < 64<<10-300; i++ {
		if i > 0 {
			b.WriteString(",\n  ")
		}
		fmt.Fprintf(&b, `{"seq":%d,"ts":"2017-11-28T13:%02d:%02dZ","lat":%.7f,"lon":%.7f,"temp":%.2f,"ok":%t,"tags":["gps","beacon-%d"],"note":"cell é #%d"}`,
			i, i/60%60, i%60, 37.4057689+float64(i)*1e-5, 126.9720319-float64(i)*1e-5, -18.5+float64(i%40)*0.25, i%7 != 0, i%5, i)
	}
	b.WriteString("]}")
	return b.String()
}()

func mustRead(name string) string {
	b, err := os.ReadFile(name)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// refCompact is the reference compact form for inputs without escapes worth decoding:
// encoding/json's whitespace removal, which leaves everything else as written.
func refCompact(in string) string {
	var b bytes.Buffer
	if err := json.Compact(&b, []byte(in)); err != nil {
		panic(err)
	}
	return b.String()
}

// refJCS is the reference RFC 8785 form for inputs whose keys are ASCII and whose strings need
// no HTML-sensitive or U+2028 escapes: encoding/json sorts map keys and formats float64 the way
// ECMAScript does.
func refJCS(in string) string {
	var v any
	if err := json.Unmarshal([]byte(in), &v); err != nil {
		panic(err)
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic(err)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// members builds {"k0":0,...} with n members; dup >= 0 appends key "k<dup>" once more.
func members(n, dup int) string {
	var b strings.Builder
	b.WriteByte('{')
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"k%d":%d`, i, i)
	}
	if dup >= 0 {
		fmt.Fprintf(&b, `,"k%d":-1`, dup)
	}
	b.WriteByte('}')
	return b.String()
}

// sortedMembers is members(n, -1) with keys in sort.Strings order (for ASCII, UTF-16 order).
func sortedMembers(n int) string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprint("k", i)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"%s":%s`, k, k[1:])
	}
	b.WriteByte('}')
	return b.String()
}

// nest builds n nested arrays around 1.
func nest(n int) string { return strings.Repeat("[", n) + "1" + strings.Repeat("]", n) }
