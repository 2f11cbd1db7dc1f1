// This file is mqttwaf's addition to santhosh-tekuri/jsonschema v6.0.3 (see
// MQTTWAF.md); the rest of the package is upstream's.

package jsonschema

import (
	"encoding/json"
	"math"
	"math/big"
	"strconv"
	"strings"
)

// Upstream turns every number it checks into a big.Rat through fmt.Sprint
// and Rat.SetString, once for "type": "integer" and again for the numeric
// keywords: about 40% of validating a telemetry message. The functions
// here decide the common cases with float64 arithmetic where that is
// provably exact, and otherwise say "don't know", so that upstream's code
// runs unchanged. They never decide a failure: a value that fails a
// keyword always takes upstream's path, which builds the error.

// fastBounds are a schema's numeric keywords as float64, set at compile
// time only when every keyword present converts exactly.
type fastBounds struct {
	min, max, xmin, xmax       float64
	hasMin, hasMax, hasX, hasY bool    // hasX: xmin, hasY: xmax
	multipleOf                 float64 // 0: none; else an integer of at most 2^53
}

// maxExact is the largest magnitude below which every integer is a float64.
const maxExact = 1 << 53

// compileFastBounds returns s's bounds, or nil when one of them has no
// exact float64 (then every number takes upstream's path).
func compileFastBounds(s *Schema) *fastBounds {
	if s.Minimum == nil && s.Maximum == nil && s.ExclusiveMinimum == nil && s.ExclusiveMaximum == nil && s.MultipleOf == nil {
		return nil
	}
	var b fastBounds
	exact := func(r *big.Rat, f *float64, has *bool) bool {
		if r == nil {
			return true
		}
		v, _ := r.Float64()
		*f, *has = v, true
		// Checked by converting back rather than trusting Float64's exact
		// flag, which reports 1/2^2000 (rounded to 0) as exact.
		return !math.IsInf(v, 0) && new(big.Rat).SetFloat64(v).Cmp(r) == 0
	}
	if !exact(s.Minimum, &b.min, &b.hasMin) || !exact(s.Maximum, &b.max, &b.hasMax) ||
		!exact(s.ExclusiveMinimum, &b.xmin, &b.hasX) || !exact(s.ExclusiveMaximum, &b.xmax, &b.hasY) {
		return nil
	}
	if m := s.MultipleOf; m != nil {
		f, _ := m.Float64()
		if !m.IsInt() || f <= 0 || f > maxExact || new(big.Rat).SetFloat64(f).Cmp(m) != 0 {
			return nil
		}
		b.multipleOf = f
	}
	return &b
}

// fastFloat returns v as a float64 x, correctly rounded (so v < w implies
// x <= fl(w)), and whether x equals v exactly. ok is false for types and
// texts left to upstream.
func fastFloat(v any) (x float64, exact, ok bool) {
	switch v := v.(type) {
	case int64:
		return float64(v), v > -maxExact && v < maxExact, true
	case int:
		return float64(v), v > -maxExact && v < maxExact, true
	case json.Number:
		s := string(v)
		// ParseFloat also reads forms JSON does not ("0x1p3", "Inf",
		// "1_000"): leave them to upstream.
		for i := 0; i < len(s); i++ {
			if c := s[i]; (c < '0' || c > '9') && c != '-' && c != '+' && c != '.' && c != 'e' && c != 'E' {
				return 0, false, false
			}
		}
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsInf(f, 0) {
			return 0, false, false
		}
		// An integer literal of at most 15 digits is exact.
		digits := strings.TrimPrefix(s, "-")
		return f, len(digits) <= 15 && isDigits(digits), true
	}
	return 0, false, false
}

// isDigits reports whether s is only ASCII digits ("" is).
func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// fastIsInteger reports whether v is an integer, when that is clear
// without big.Rat: integer types, and literals of only digits.
func fastIsInteger(v any) (isInt, known bool) {
	switch v := v.(type) {
	case int, int64:
		return true, true
	case json.Number:
		if s := strings.TrimPrefix(string(v), "-"); s != "" && isDigits(s) {
			return true, true
		}
	}
	return false, false
}

// passes reports whether v certainly satisfies every numeric keyword of
// the schema. false means "fails or don't know": upstream decides.
//
// With x = fl(v) correctly rounded and a bound b = B exactly, rounding is
// monotone: v <= B implies x <= b, so x > b proves v > B (and x < b
// proves v < B). Only x == b needs v itself, which is known when x is
// exact.
func (b *fastBounds) passes(v any) bool {
	x, exact, ok := fastFloat(v)
	if !ok {
		return false
	}
	if b.hasMin && !(x > b.min || exact && x == b.min) {
		return false
	}
	if b.hasMax && !(x < b.max || exact && x == b.max) {
		return false
	}
	if b.hasX && !(x > b.xmin) {
		return false
	}
	if b.hasY && !(x < b.xmax) {
		return false
	}
	if b.multipleOf != 0 {
		// Exact integers below 2^53 divided by an integer: math.Mod is
		// exact on such operands.
		if !exact || math.Mod(x, b.multipleOf) != 0 {
			return false
		}
	}
	return true
}
