package redact

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base32"
	"encoding/json"
	"os"
	"strings"
)

// This file holds the one seed list shared by the table test
// (TestApplySeeds), the benchmarks and the fuzz target, and the rule sets
// they use.

const testKey = "test-key-0123456789abcdef" // fixed: the golden file depends on it

// goldenRules is the rule set of the brief, for the seed message.
func goldenRules() []Rule {
	return []Rule{
		{Path: "DATA.USER_NAME", Action: Action{Op: OpRemove}},
		{Path: "DATA.USER_MOBILE", Action: Action{Op: OpMask, KeepLast: 4}},
		{Path: "DATA.USER_ID", Action: Action{Op: OpPseudonym}},
		{Paths: []string{"DATA.LAT", "DATA.LON"}, Action: Action{Op: OpCoarsen, CellMetres: 1000}},
		{Path: "DATA.NUMBER_PLATE", Action: Action{Op: OpMask, KeepFirst: 3}},
	}
}

func goldenOptions() Options {
	return Options{PseudonymKey: testKey, Rules: goldenRules()}
}

// allDetectors uses every detector kind, with a variety of operators.
func allDetectors() []Detector {
	return []Detector{
		{Kind: KindPhone, Action: Action{Op: OpMask, KeepLast: 4}},
		{Kind: KindEmail},
		{Kind: KindIPv4},
		{Kind: KindIPv6},
		{Kind: KindMAC, Action: Action{Op: OpMask, KeepFirst: 8}},
		{Kind: KindIMEI, Action: Action{Op: OpReplace, Value: "IMEI"}},
		{Kind: KindCard, Action: Action{Op: OpRemove}},
		{ID: "employee", Kind: KindRegex, Pattern: `\bEMP-[0-9]{5}\b`, Action: Action{Op: OpPseudonym}},
	}
}

// tableOptions is the golden rule set plus one rule for every other
// operator and path form, plus all detectors.
func tableOptions() Options {
	o := goldenOptions()
	o.MaxDepth = 16
	o.Rules = append(o.Rules,
		Rule{Path: "readings.#.phone", Action: Action{Op: OpMask, KeepLast: 4}},
		Rule{Path: "readings.#.temp", Action: Action{Op: OpRound, Decimals: 1}},
		Rule{Path: "person.age", Action: Action{Op: OpBucket, Boundaries: []float64{0, 18, 30, 50}}},
		Rule{Path: "note", Action: Action{Op: OpTruncate, Length: 10}},
		Rule{Path: "secret.*", Action: Action{Op: OpReplace, Value: "[redacted]"}},
		Rule{Path: "tags.1", Action: Action{Op: OpRemove}},
		Rule{Paths: []string{"pos.lat", "pos.lon"}, Action: Action{Op: OpCoarsen, Decimals: 2}},
		Rule{Path: "owner", Action: Action{Op: OpMask, KeepFirst: 1}},
		Rule{Paths: []string{"geometry.coordinates.1", "geometry.coordinates.0"}, Action: Action{Op: OpCoarsen, CellMetres: 1000}},
	)
	o.Detectors = allDetectors()
	return o
}

// ref computes a pseudonym independently of the code under test.
func ref(v string) string {
	m := hmac.New(sha256.New, []byte(testKey))
	m.Write([]byte(v))
	return strings.ToLower(base32.StdEncoding.EncodeToString(m.Sum(nil)))[:16]
}

// komdiRaw is the seed message as received (with spaces); komdi is its
// normalised form, what the engine sees behind the normalize package.
var komdiRaw, komdi = func() (string, string) {
	b, err := os.ReadFile("testdata/komdi-alarm.json")
	if err != nil {
		panic(err)
	}
	var c bytes.Buffer
	if err := json.Compact(&c, b); err != nil {
		panic(err)
	}
	return string(b), c.String()
}()

const golden = "golden" // want: compare with testdata/komdi-alarm.redacted.json

type seed struct {
	name string
	in   string
	want string // output under tableOptions; "" = Apply must fail
}

// exactWants is the output under tableOptions with ExactPaths, where it
// differs from the seed's want: paths then match keys byte for byte and not
// through arrays, as gjson reads them.
var exactWants = map[string]string{
	"path-through-root-array":     `[{"person":{"age":42}}]`,
	"case-variant-keys":           `{"data":{"user_name":"홍길수","User_Mobile":"*********5678","lat":37.4057689,"LON":"126.9720319","Number_Plate":"14구9999"}}`,
	"fullwidth-and-escaped-keys":  `{"DATA":{"ＵＳＥＲ_ＮＡＭＥ":"x","\u0055SER_MOBILE":"******6789","n":1}}`,
	"array-of-objects":            `{"DATA":[{"USER_NAME":"x","NUMBER_PLATE":"14구9999"},{"user_name":"y","n":2},3,"USER_NAME"]}`,
	"nested-array-of-objects":     `{"DATA":[[{"USER_NAME":"x"}],[]],"readings":[[{"phone":"*********5678"}]]}`,
	"coarsen-in-array-of-objects": `{"DATA":[{"LAT":37.4057689,"LON":"126.9720319"},{"lon":126.9720319}]}`,
	"wildcard-folded":             `{"SECRET":{"A":1},"Secret":2}`,
	"index-not-through":           `{"tags":[["a","b"],null,{"1":"d"}]}`,
}

var seeds = []seed{
	{"komdi-alarm", komdi, golden},
	{"komdi-alarm-raw", komdiRaw, golden}, // detectors visit every value: output compact
	{"escaped-phone", `{"msg":"\u0030\u0031\u0030-1234-5678"}`, `{"msg":"*********5678"}`},
	{"escaped-quote-kept", `{"msg":"say \"hi\"\n"}`, `{"msg":"say \"hi\"\n"}`},
	{"nested-arrays", `{"a":[{"b":["x","010 1234 5678"]}],"c":[[["+821012345678"]]]}`,
		`{"a":[{"b":["x","*********5678"]}],"c":[[["*********5678"]]]}`},
	{"phone-like-numbers",
		`{"ts":20171128134520,"id":1012345678,"r":"20171128134520","u":1511876720,"v":"1511876720","d":"2017-11-28","t":"13:45:20","x":"TTNU1372314SU02-2017-04978"}`,
		`{"ts":20171128134520,"id":1012345678,"r":"20171128134520","u":1511876720,"v":"1511876720","d":"2017-11-28","t":"13:45:20","x":"TTNU1372314SU02-2017-04978"}`},
	{"readings", `{"readings":[{"phone":"01012345678","temp":21.456},{"phone":"+82 10 9999 8888","temp":"19.04"}]}`,
		`{"readings":[{"phone":"*******5678","temp":21.5},{"phone":"************8888","temp":"19"}]}`},
	{"bucket", `{"person":{"age":42}}`, `{"person":{"age":30}}`},
	{"bucket-boundary", `{"person":{"age":18}}`, `{"person":{"age":18}}`},
	{"bucket-below-first", `{"person":{"age":-1}}`, `{"person":{"age":null}}`},
	{"bucket-numeric-string", `{"person":{"age":"7"}}`, `{"person":{"age":"0"}}`},
	{"bucket-above-last", `{"person":{"age":99.5}}`, `{"person":{"age":50}}`},
	{"path-through-root-array", `[{"person":{"age":42}}]`, `[{"person":{"age":30}}]`}, // a batch of messages
	// Keys as case-insensitive back ends read them (Options.ExactPaths off).
	{"case-variant-keys", `{"data":{"user_name":"홍길수","User_Mobile":"010-1234-5678","lat":37.4057689,"LON":"126.9720319","Number_Plate":"14구9999"}}`,
		`{"data":{"User_Mobile":"*********5678","lat":37.40558,"LON":"126.9679","Number_Plate":"14구****"}}`},
	{"fullwidth-and-escaped-keys", `{"DATA":{"ＵＳＥＲ_ＮＡＭＥ":"x","\u0055SER_MOBILE":"0123456789","n":1}}`, `{"DATA":{"\u0055SER_MOBILE":"******6789","n":1}}`},
	{"array-of-objects", `{"DATA":[{"USER_NAME":"x","NUMBER_PLATE":"14구9999"},{"user_name":"y","n":2},3,"USER_NAME"]}`,
		`{"DATA":[{"NUMBER_PLATE":"14구****"},{"n":2},3,"USER_NAME"]}`},
	{"nested-array-of-objects", `{"DATA":[[{"USER_NAME":"x"}],[]],"readings":[[{"phone":"010-1234-5678"}]]}`,
		`{"DATA":[[{}],[]],"readings":[[{"phone":"*********5678"}]]}`},
	{"coarsen-in-array-of-objects", `{"DATA":[{"LAT":37.4057689,"LON":"126.9720319"},{"lon":126.9720319}]}`,
		`{"DATA":[{"LAT":37.40558,"LON":"126.9679"},{"lon":null}]}`},
	{"index-not-through", `{"tags":[["a","b"],"c",{"1":"d"}]}`, `{"tags":[["a","b"],null,{}]}`}, // an index is not, a key is
	{"wildcard-folded", `{"SECRET":{"A":1},"Secret":2}`, `{"SECRET":{"A":"[redacted]"},"Secret":2}`},
	{"truncate", `{"note":"홍길수 called from the depot"}`, `{"note":"홍길수 called"}`},
	{"truncate-then-detect", `{"note":"10.0.0.1 is the gateway"}`, `{"note":"******** i"}`},
	{"replace-wildcard", `{"secret":{"a":1,"b":{"c":2}},"other":1}`, `{"secret":{"a":"[redacted]","b":"[redacted]"},"other":1}`},
	{"remove-array-element", `{"tags":["a","b","c"]}`, `{"tags":["a",null,"c"]}`},
	{"coarsen-degrees", `{"pos":{"lon":"126.97203","lat":37.4057689}}`, `{"pos":{"lon":"126.97","lat":37.41}}`},
	{"mask-container", `{"owner":{"name":"Hong","ids":[12345,true,null]}}`, `{"owner":{"name":"H***","ids":["1****",true,null]}}`},
	{"number-op-fails-closed", `{"readings":[{"temp":"warm"},{"temp":{"c":3}},{"temp":true},{"temp":null}]}`,
		`{"readings":[{"temp":null},{"temp":{"c":3}},{"temp":null},{"temp":null}]}`},
	{"coarsen-without-latitude", `{"DATA":{"LON":126.97}}`, `{"DATA":{"LON":null}}`},
	{"coarsen-latitude-first", `{"DATA":{"LAT":37.4057689,"LON":"126.9720319"}}`, `{"DATA":{"LAT":37.40558,"LON":"126.9679"}}`},
	{"coarsen-bad-latitude", `{"DATA":{"LON":126.9720319,"x":1,"LAT":"north"}}`, `{"DATA":{"LON":null,"x":1,"LAT":null}}`},
	{"coarsen-geojson", `{"geometry":{"type":"Point","coordinates":[126.9720319,37.4057689,12.5]}}`,
		`{"geometry":{"type":"Point","coordinates":[126.9679,37.40558,12.5]}}`},
	{"coarsen-geojson-no-latitude", `{"geometry":{"coordinates":[126.9720319]}}`, `{"geometry":{"coordinates":[null]}}`},
	{"coarsen-bad-longitude", `{"DATA":{"LON":200,"LAT":37.4}}`, `{"DATA":{"LON":null,"LAT":37.39658}}`},
	{"email-ip", `{"log":"login by john.doe+x@example.co.kr from 192.168.10.20 via 2001:db8::8a2e:370:7334."}`,
		`{"log":"login by ************************ from ************* via ***********************."}`},
	{"mac", `{"dev":"AA-BB-CC-DD-EE-FF","beacon":"C0:0C:82"}`, `{"dev":"AA-BB-CC*********","beacon":"C0:0C:82"}`},
	{"imei-card", `{"imei":"35-209900-176148-1","card":"4111-1111-1111-1111","x":["4111111111111111",1]}`,
		`{"imei":"IMEI","x":[null,1]}`},
	{"regex-pseudonym", `{"emp":"badge EMP-12345 ok"}`, `{"emp":"badge ` + ref("EMP-12345") + ` ok"}`},
	{"top-level-string", `"010-1234-5678"`, `"*********5678"`},
	{"top-level-card", `"4111111111111111"`, `null`},
	{"masked-email-stays", `{"m":"j***@example.com"}`, `{"m":"j***@example.com"}`},
	{"keys-not-scanned", `{"010-1234-5678":"x"}`, `{"010-1234-5678":"x"}`},
	{"whitespace", " {\"a\" : [ 1 , \"b\" ] }\n", `{"a":[1,"b"]}`},
	{"empty-containers", `{"DATA":{},"readings":[],"tags":[]}`, `{"DATA":{},"readings":[],"tags":[]}`},
	{"invalid-trailing-comma", `{"a":1,}`, ""},
	{"invalid-control-char", "{\"a\":\"\x01\"}", ""},
	{"invalid-utf8", "{\"a\":\"\xff\"}", ""},
	{"invalid-unterminated", `[1,2`, ""},
	{"invalid-empty", ``, ""},
	{"invalid-trailing-data", `{"a":1} x`, ""},
	{"invalid-number", `{"a":01}`, ""},
	{"invalid-escape", `{"a":"\x"}`, ""},
	{"too-deep", strings.Repeat("[", 17) + strings.Repeat("]", 17), ""},
	{"deep-enough", strings.Repeat("[", 16) + strings.Repeat("]", 16), strings.Repeat("[", 16) + strings.Repeat("]", 16)},
}
