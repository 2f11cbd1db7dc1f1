package schema

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"

	"github.com/tidwall/sjson"
)

// This file holds the one seed list shared by the table test
// (TestValidateSeeds), the benchmarks and the fuzz targets, and the rule
// sets they use.

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

const komdiSchema = "testdata/komdi-alarm.schema.json"

func f64(f float64) *float64 { return &f }

// komdiFields are field rules equivalent to testdata/komdi-alarm.schema.json.
func komdiFields() []FieldRule {
	return []FieldRule{
		{Path: "TYPE", Required: true, Type: "string", Enum: []any{"MALARM_INFO", "MALARM_CLEAR"}},
		{Path: "DATA", Required: true, Type: "object"},
		{Path: "DATA.UKEY", Required: true, MinLength: 1, MaxLength: 64},
		{Path: "DATA.STS", Required: true, Type: "string", Enum: []any{"S", "E", "M"}},
		{Path: "DATA.ALARM_FLAG", Required: true, Type: "string", Enum: []any{"Y", "N"}},
		{Path: "DATA.ALARM_GRADE", Required: true, Type: "integer", Min: f64(0), Max: f64(5)},
		{Path: "DATA.REPORT_TIME", Required: true, Pattern: `^[0-9]{14}$`},
		{Path: "DATA.REPORT_COUNT", Required: true, Type: "integer", Min: f64(0)},
		{Path: "DATA.LAT", Required: true, Min: f64(-90), Max: f64(90)},
		{Path: "DATA.LON", Required: true, Min: f64(-180), Max: f64(180)},
		{Path: "DATA.ALT", Min: f64(-500), Max: f64(10000)},
		{Path: "DATA.SPEED", Min: f64(0), Max: f64(300)},
		{Path: "DATA.SG_CONTNO", Required: true, Pattern: `^[A-Z]{4}[0-9]{7}$`},
		{Path: "DATA.NUMBER_PLATE", MinLength: 1, MaxLength: 12},
		{Path: "DATA.TEMPERATURE", MaxLength: 8},
	}
}

// set and del edit the normalised seed message (sjson is independent of the
// code under test).
func set(path string, v any) string {
	s, err := sjson.Set(komdi, path, v)
	if err != nil {
		panic(err)
	}
	return s
}

func setRaw(path, raw string) string {
	s, err := sjson.SetRaw(komdi, path, raw)
	if err != nil {
		panic(err)
	}
	return s
}

func del(path string) string {
	s, err := sjson.Delete(komdi, path)
	if err != nil {
		panic(err)
	}
	return s
}

// verdict is an expected outcome; the zero verdict means "accepted".
type verdict struct{ path, keyword string }

type seed struct {
	name    string
	payload string
	want    verdict  // under the JSON Schema (and the field rules unless fields is set)
	fields  *verdict // under komdiFields, where the two engines report differently
	secret  string   // a payload value that must not appear in the error
}

func v(path, keyword string) verdict   { return verdict{path, keyword} }
func vp(path, keyword string) *verdict { return &verdict{path, keyword} }

var seeds = []seed{
	{name: "komdi-alarm", payload: komdi},
	{name: "komdi-alarm-raw", payload: komdiRaw},
	{name: "extra-fields-allowed", payload: set("DATA.EXTRA", 1)},
	{name: "clear-type", payload: set("TYPE", "MALARM_CLEAR")},
	{name: "lat-too-big", payload: set("DATA.LAT", 91.25), want: v("/DATA/LAT", "maximum"), secret: "91.25"},
	{name: "lat-huge", payload: setRaw("DATA.LAT", "1e400"), want: v("/DATA/LAT", "maximum")},
	{name: "lat-string", payload: set("DATA.LAT", "37.4057689"), want: v("/DATA/LAT", "type"), secret: "37.4057689"},
	{name: "lat-null", payload: setRaw("DATA.LAT", "null"), want: v("/DATA/LAT", "type")},
	{name: "lat-missing", payload: del("DATA.LAT"), want: v("/DATA/LAT", "required")},
	{name: "lon-too-small", payload: set("DATA.LON", -180.5), want: v("/DATA/LON", "minimum")},
	{name: "lat-escaped-key", payload: strings.Replace(set("DATA.LAT", 95), `"LAT"`, `"L\u0041T"`, 1), want: v("/DATA/LAT", "maximum")},
	{name: "data-missing", payload: del("DATA"), want: v("/DATA", "required")},
	{name: "data-array", payload: setRaw("DATA", "[1,2]"), want: v("/DATA", "type")},
	{name: "type-not-allowed", payload: set("TYPE", "HACKED_TYPE"), want: v("/TYPE", "enum"), secret: "HACKED_TYPE"},
	{name: "grade-fraction", payload: set("DATA.ALARM_GRADE", 3.5), want: v("/DATA/ALARM_GRADE", "type")},
	{name: "grade-integral-float", payload: setRaw("DATA.ALARM_GRADE", "3.0")},
	{name: "grade-exponent", payload: setRaw("DATA.ALARM_GRADE", "2e0")},
	{name: "grade-too-high", payload: set("DATA.ALARM_GRADE", 6), want: v("/DATA/ALARM_GRADE", "maximum")},
	{name: "count-negative", payload: set("DATA.REPORT_COUNT", -1), want: v("/DATA/REPORT_COUNT", "minimum")},
	{name: "flag-bool", payload: set("DATA.ALARM_FLAG", true), want: v("/DATA/ALARM_FLAG", "type")},
	{name: "flag-not-allowed", payload: set("DATA.ALARM_FLAG", "MAYBE"), want: v("/DATA/ALARM_FLAG", "enum"), secret: "MAYBE"},
	{name: "report-time-pattern", payload: set("DATA.REPORT_TIME", "2017-11-28T13:45"), want: v("/DATA/REPORT_TIME", "pattern"), secret: "2017-11-28T13:45"},
	{name: "contno-pattern", payload: set("DATA.SG_CONTNO", "TTNU137231X"), want: v("/DATA/SG_CONTNO", "pattern"), secret: "TTNU137231X"},
	{name: "ukey-too-long", payload: set("DATA.UKEY", strings.Repeat("K", 65)), want: v("/DATA/UKEY", "maxLength"), secret: strings.Repeat("K", 65)},
	{name: "ukey-empty", payload: set("DATA.UKEY", ""), want: v("/DATA/UKEY", "minLength")},
	// 12 Hangul syllables are 36 bytes: the limit counts characters.
	{name: "plate-12-hangul", payload: set("DATA.NUMBER_PLATE", strings.Repeat("구", 12))},
	{name: "plate-13-chars", payload: set("DATA.NUMBER_PLATE", "14구9999-ABCDE"), want: v("/DATA/NUMBER_PLATE", "maxLength"), secret: "14구9999-ABCDE"},
	{name: "plate-escaped-12", payload: strings.Replace(set("DATA.NUMBER_PLATE", "x"), `"x"`, `"`+strings.Repeat(`\uad6c`, 12)+`"`, 1)},
	{name: "temperature-number", payload: set("DATA.TEMPERATURE", 21.5), want: v("/DATA/TEMPERATURE", "type")},
	{name: "top-level-array", payload: `[1]`, want: v("", "type"), fields: vp("/TYPE", "required")},
	{name: "empty-object", payload: `{}`, want: v("/DATA", "required"), fields: vp("/TYPE", "required")},
	{name: "top-level-string", payload: `"MALARM_INFO"`, want: v("", "type"), fields: vp("/TYPE", "required")},
	{name: "duplicate-key", payload: strings.Replace(komdi, `"LAT":`, `"LAT":91,"LAT":`, 1), want: v("", "duplicateKey")},
	{name: "duplicate-key-escaped", payload: strings.Replace(komdi, `"LAT":`, `"LAT":91,"L\u0041T":`, 1), want: v("", "duplicateKey")},
	{name: "duplicate-key-top", payload: `{"TYPE":"MALARM_INFO","TYPE":"X"}`, want: v("", "duplicateKey")},
	{name: "invalid-truncated", payload: komdi[:len(komdi)-1], want: v("", "json")},
	{name: "invalid-trailing-comma", payload: `{"TYPE":"MALARM_INFO",}`, want: v("", "json")},
	{name: "invalid-trailing-data", payload: komdi + ` {}`, want: v("", "json")},
	{name: "invalid-utf8", payload: strings.Replace(komdi, `"S"`, "\"x\xffy\"", 1), want: v("", "json")},
	{name: "invalid-lone-surrogate", payload: strings.Replace(komdi, `"S"`, `"\ud800"`, 1), want: v("", "json")},
	{name: "invalid-control-char", payload: strings.Replace(komdi, `"S"`, "\"\x01\"", 1), want: v("", "json")},
	{name: "invalid-number", payload: setRaw("DATA.LAT", "01"), want: v("", "json")},
	{name: "invalid-number-dot", payload: setRaw("DATA.LAT", "1."), want: v("", "json")},
	{name: "invalid-literal", payload: setRaw("DATA.LAT", "nul"), want: v("", "json")},
	{name: "invalid-empty", payload: ``, want: v("", "json")},
	{name: "invalid-escape", payload: strings.Replace(komdi, `"S"`, `"\x"`, 1), want: v("", "json")},
	{name: "number-exponent-1000", payload: setRaw("DATA.ALT", "1e-1000")},
	{name: "number-exponent-too-big", payload: setRaw("DATA.LAT", "1e999999999"), want: v("", "number")},
	{name: "number-exponent-too-small", payload: setRaw("DATA.LAT", "-0.5E-1001"), want: v("", "number")},
	{name: "number-too-long", payload: setRaw("DATA.ALT", "1"+strings.Repeat("0", 1000)), want: v("", "number")},
	{name: "number-long-fraction", payload: setRaw("DATA.ALT", "0."+strings.Repeat("1", 997))},
	{name: "too-deep", payload: strings.Repeat("[", 65) + strings.Repeat("]", 65), want: v("", "depth")},
	{name: "deep-enough", payload: strings.Replace(komdi, `"STS"`, `"X":`+strings.Repeat("[", 62)+strings.Repeat("]", 62)+`,"STS"`, 1)},
}

func sjsonSet(doc, path string, v any) (string, error) { return sjson.Set(doc, path, v) }
