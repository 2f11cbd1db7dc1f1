package schema

import (
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/tidwall/gjson"
)

// FieldRule is one fast check on the raw payload, evaluated with gjson
// without decoding the document. It models a small subset of JSON Schema
// for the hot path: presence, type, numeric range, string length and
// pattern, enumeration. The zero value (with a Path) checks nothing but is
// accepted; set at least one constraint. FieldRule is plain data, compiled
// by New.
//
// Constraints apply to the value Path names; a missing value fails only
// Required. Constraints imply a type, so that a wrong type fails closed
// instead of slipping past: Min and Max imply "number", MinLength,
// MaxLength and Pattern imply "string" (Type may narrow "number" to
// "integer"; mixing numeric and string constraints is refused).
type FieldRule struct {
	// Path names the value in gjson syntax: keys separated by '.', array
	// indexes, '#' for every element of an array ("readings.#.temp"),
	// '\' to escape a special character. Wildcards, queries, modifiers and
	// pipes are refused. Required. Unless Options.ExactPaths, a key matches
	// the way case-insensitive back ends read it, and a key applied to an
	// array applies to its objects (see Options.ExactPaths).
	Path string `yaml:"path" json:"path"`
	// Required makes a missing value an error (keyword "required"). With
	// '#', every element must have it; an empty array passes. A key applied
	// to an array: every object in it must have it, and an array without
	// objects fails.
	Required bool `yaml:"required" json:"required"`
	// Type is one of string, number, integer, boolean, object, array, null;
	// "" accepts any type unless another constraint implies one.
	// Integer means a number with no fractional part (1.0 counts).
	Type string `yaml:"type" json:"type"`
	// Min and Max bound a number, inclusive (keywords "minimum",
	// "maximum"). Nil means no bound.
	Min *float64 `yaml:"min" json:"min"`
	Max *float64 `yaml:"max" json:"max"`
	// MinLength and MaxLength bound a string's length in Unicode characters
	// (code points, after JSON unescaping), not bytes. 0 means no bound.
	MinLength int `yaml:"min_length" json:"min_length"`
	MaxLength int `yaml:"max_length" json:"max_length"`
	// Pattern is a Go regular expression (RE2 syntax: linear time, no
	// backtracking) the string must contain a match of; anchor it with ^
	// and $ to match the whole string, as in JSON Schema.
	Pattern string `yaml:"pattern" json:"pattern"`
	// Enum lists the allowed values, strings and numbers (compared by type
	// and value: the string "3" does not match the number 3).
	Enum []any `yaml:"enum" json:"enum"`
}

type jsonType uint8

const (
	anyType jsonType = iota
	stringType
	numberType
	integerType
	booleanType
	objectType
	arrayType
	nullType
)

var typeNames = map[string]jsonType{
	"string": stringType, "number": numberType, "integer": integerType, "boolean": booleanType,
	"object": objectType, "array": arrayType, "null": nullType,
}

// maxFieldRules and maxEnum bound the work one payload can cost.
const (
	maxFieldRules = 1000
	maxEnum       = 1000
	maxRuleLength = 1 << 20
)

// fieldRule is a compiled FieldRule. Messages are built once, so that a
// failing payload costs one small allocation (the error).
type fieldRule struct {
	path            path
	required        bool
	typ             jsonType
	min, max        float64
	hasMin, hasMax  bool
	minLen, maxLen  int
	re              *regexp.Regexp
	enumStr         []string
	enumNum         []float64
	hasEnum         bool
	msgType, msgMin string
	msgMax, msgMinL string
	msgMaxL, msgPat string
	msgEnum, msgReq string
	typeName        string
}

func compileField(i int, fr FieldRule) (fieldRule, error) {
	field := fmt.Sprintf("Options.Fields[%d]", i)
	p, err := parsePath(fr.Path, true)
	if err != nil {
		return fieldRule{}, optErr(field+".Path", "%v (got %q)", err, fr.Path)
	}
	r := fieldRule{path: p, required: fr.Required, minLen: fr.MinLength, maxLen: fr.MaxLength}
	if fr.Type != "" {
		t, ok := typeNames[fr.Type]
		if !ok {
			return fieldRule{}, optErr(field+".Type", "must be one of string, number, integer, boolean, object, array, null; got %q", fr.Type)
		}
		r.typ = t
	}
	numeric := fr.Min != nil || fr.Max != nil
	textual := fr.MinLength != 0 || fr.MaxLength != 0 || fr.Pattern != ""
	switch {
	case numeric && textual:
		return fieldRule{}, optErr(field, "mixes numeric (Min, Max) and string (MinLength, MaxLength, Pattern) constraints; split it into two rules")
	case numeric && r.typ == anyType:
		r.typ = numberType
	case numeric && r.typ != numberType && r.typ != integerType:
		return fieldRule{}, optErr(field+".Type", "Min and Max apply to numbers, but Type is %q; use number or integer", fr.Type)
	case textual && r.typ == anyType:
		r.typ = stringType
	case textual && r.typ != stringType:
		return fieldRule{}, optErr(field+".Type", "MinLength, MaxLength and Pattern apply to strings, but Type is %q; use string", fr.Type)
	}
	if fr.Min != nil {
		if math.IsNaN(*fr.Min) || math.IsInf(*fr.Min, 0) {
			return fieldRule{}, optErr(field+".Min", "must be a finite number, got %v", *fr.Min)
		}
		r.min, r.hasMin = *fr.Min, true
	}
	if fr.Max != nil {
		if math.IsNaN(*fr.Max) || math.IsInf(*fr.Max, 0) {
			return fieldRule{}, optErr(field+".Max", "must be a finite number, got %v", *fr.Max)
		}
		r.max, r.hasMax = *fr.Max, true
	}
	if r.hasMin && r.hasMax && r.min > r.max {
		return fieldRule{}, optErr(field+".Min", "must not exceed Max (%v), got %v", r.max, r.min)
	}
	if fr.MinLength < 0 {
		return fieldRule{}, optErr(field+".MinLength", "must be >= 0, got %d", fr.MinLength)
	}
	if fr.MaxLength < 0 {
		return fieldRule{}, optErr(field+".MaxLength", "must be >= 0 (0 = no limit), got %d", fr.MaxLength)
	}
	if fr.MaxLength != 0 && fr.MinLength > fr.MaxLength {
		return fieldRule{}, optErr(field+".MinLength", "must not exceed MaxLength (%d), got %d", fr.MaxLength, fr.MinLength)
	}
	if fr.Pattern != "" {
		if len(fr.Pattern) > maxRuleLength {
			return fieldRule{}, optErr(field+".Pattern", "longer than %d bytes", maxRuleLength)
		}
		re, err := regexp.Compile(fr.Pattern)
		if err != nil {
			return fieldRule{}, optErr(field+".Pattern", "invalid regular expression: %v", err)
		}
		r.re = re
	}
	if fr.Enum != nil {
		if len(fr.Enum) == 0 || len(fr.Enum) > maxEnum {
			return fieldRule{}, optErr(field+".Enum", "must list between 1 and %d values, got %d", maxEnum, len(fr.Enum))
		}
		r.hasEnum = true
		for j, v := range fr.Enum {
			f, isNum, err := enumNumber(v)
			switch {
			case err != nil:
				return fieldRule{}, optErr(fmt.Sprintf("%s.Enum[%d]", field, j), "%v", err)
			case isNum:
				r.enumNum = append(r.enumNum, f)
			default:
				s, ok := v.(string)
				if !ok {
					return fieldRule{}, optErr(fmt.Sprintf("%s.Enum[%d]", field, j), "must be a string or a number, got %T", v)
				}
				r.enumStr = append(r.enumStr, s)
			}
		}
	}
	r.typeName = fr.Type
	if r.typ != anyType && fr.Type == "" {
		r.typeName = map[jsonType]string{numberType: "number", stringType: "string"}[r.typ]
	}
	r.msgReq = "missing"
	r.msgType = "must be of type " + r.typeName
	r.msgMin = "must be >= " + strconv.FormatFloat(r.min, 'g', -1, 64)
	r.msgMax = "must be <= " + strconv.FormatFloat(r.max, 'g', -1, 64)
	r.msgMinL = "must be at least " + strconv.Itoa(r.minLen) + " characters long"
	r.msgMaxL = "must be at most " + strconv.Itoa(r.maxLen) + " characters long"
	if r.re != nil {
		r.msgPat = "must match " + quoteCut(fr.Pattern)
	}
	r.msgEnum = "must be one of the " + strconv.Itoa(len(fr.Enum)) + " allowed values"
	return r, nil
}

// enumNumber converts the number types YAML and JSON decoders produce.
func enumNumber(v any) (float64, bool, error) {
	var f float64
	switch n := v.(type) {
	case float64:
		f = n
	case float32:
		f = float64(n)
	case int:
		f = float64(n)
	case int8:
		f = float64(n)
	case int16:
		f = float64(n)
	case int32:
		f = float64(n)
	case int64:
		f = float64(n)
	case uint:
		f = float64(n)
	case uint8:
		f = float64(n)
	case uint16:
		f = float64(n)
	case uint32:
		f = float64(n)
	case uint64:
		f = float64(n)
	case json.Number:
		var err error
		if f, err = strconv.ParseFloat(string(n), 64); err != nil {
			return 0, false, fmt.Errorf("not a number: %q", string(n))
		}
	default:
		return 0, false, nil
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, false, fmt.Errorf("must be finite, got %v", f)
	}
	return f, true, nil
}

// quoteCut quotes s for a message, cut to 64 bytes.
func quoteCut(s string) string {
	if len(s) > 64 {
		s = s[:61] + "..."
	}
	return strconv.Quote(s)
}

// missing reports the rule's value as missing. at is where the walk
// stopped, after resolving the first from components: the pointer is at's,
// followed by the rest of the path as written for a path without '#', or
// by the one missing component.
func (fr *fieldRule) missing(at trail, from int) *ValidationError {
	end := from + 1
	if !fr.path.each {
		end = len(fr.path.keys)
	}
	return verr(fr.pointer(at, fr.path.keys[from:end]), "required", fr.msgReq)
}

// pointer is the JSON pointer of at followed by suffix (the rest of the
// rule's path): the precomputed pointer of the path as written when the
// walk is exactly there, as it nearly always is, else built.
func (fr *fieldRule) pointer(at trail, suffix []string) string {
	p := &fr.path
	if p.each || len(at)+len(suffix) != len(p.keys) {
		return at.pointer(suffix)
	}
	for i, s := range at {
		if s.idx >= 0 && s.idx != p.index[i] || s.idx < 0 && s.key != p.keys[i] {
			return at.pointer(suffix)
		}
	}
	return p.fixed
}

// check evaluates the rule on r, the value its path names, found at at.
func (fr *fieldRule) check(r gjson.Result, at trail) *ValidationError {
	if fr.typ != anyType && !hasType(r, fr.typ) {
		return verr(fr.pointer(at, nil), "type", fr.msgType)
	}
	if fr.hasEnum && !fr.inEnum(r) {
		return verr(fr.pointer(at, nil), "enum", fr.msgEnum)
	}
	if r.Type == gjson.Number {
		if fr.hasMin && r.Num < fr.min {
			return verr(fr.pointer(at, nil), "minimum", fr.msgMin)
		}
		if fr.hasMax && r.Num > fr.max {
			return verr(fr.pointer(at, nil), "maximum", fr.msgMax)
		}
	}
	if r.Type == gjson.String {
		if fr.minLen > 0 || fr.maxLen > 0 {
			n := utf8.RuneCountInString(r.Str)
			if n < fr.minLen {
				return verr(fr.pointer(at, nil), "minLength", fr.msgMinL)
			}
			if fr.maxLen > 0 && n > fr.maxLen {
				return verr(fr.pointer(at, nil), "maxLength", fr.msgMaxL)
			}
		}
		if fr.re != nil && !fr.re.MatchString(r.Str) {
			return verr(fr.pointer(at, nil), "pattern", fr.msgPat)
		}
	}
	return nil
}

func hasType(r gjson.Result, t jsonType) bool {
	switch t {
	case stringType:
		return r.Type == gjson.String
	case numberType:
		return r.Type == gjson.Number
	case integerType:
		if r.Type != gjson.Number {
			return false
		}
		if !strings.ContainsAny(r.Raw, ".eE") {
			return true
		}
		return !math.IsInf(r.Num, 0) && r.Num == math.Trunc(r.Num)
	case booleanType:
		return r.Type == gjson.True || r.Type == gjson.False
	case objectType:
		return r.IsObject()
	case arrayType:
		return r.IsArray()
	case nullType:
		return r.Type == gjson.Null
	}
	return true
}

func (fr *fieldRule) inEnum(r gjson.Result) bool {
	switch r.Type {
	case gjson.String:
		for _, s := range fr.enumStr {
			if s == r.Str {
				return true
			}
		}
	case gjson.Number:
		for _, f := range fr.enumNum {
			if f == r.Num {
				return true
			}
		}
	}
	return false
}
