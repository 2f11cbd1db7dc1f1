// mqttwaf's tests of fastnum.go.

package jsonschema

import (
	"encoding/json"
	"fmt"
	"math/big"
	"strconv"
	"testing"
)

// fastNumSeeds are (value, bound) literals around the edges of float64:
// bounds that are exact doubles and ones that are not, values that round
// onto a bound, integers beyond 2^53, underflow and overflow.
var fastNumSeeds = []struct{ v, bound string }{
	{"90", "90"}, {"90.0", "90"}, {"90.000000000000000001", "90"}, {"89.99999999999999999", "90"},
	{"90.00000000000001", "90"}, {"-90.0000000000000000001", "-90"}, {"37.5665", "37.5665"},
	{"0.5", "0.5"}, {"0.49999999999999999999", "0.5"}, {"1e-400", "0"}, {"-0", "0"}, {"1e400", "1"},
	{"9007199254740993", "9007199254740992"}, {"9007199254740992", "9007199254740993"},
	{"123456789012345", "123456789012344"}, {"1234567890123456", "1234567890123455"},
	{"0.1", "0.1"}, {"0.30000000000000004", "0.30000000000000004"}, {"6", "3"}, {"7", "3"}, {"-9", "3"},
	{"0", "1p-2000"}, {"0", "1e-400"}, {"3e0", "3"}, {"1E2", "100"}, {"0x10", "16"}, {"Inf", "1"}, {"1_0", "10"}, {"", "1"}, {"-", "1"},
}

// checkFastNum fails if the fast path says a value passes a keyword that
// big.Rat, upstream's arithmetic, says it fails, or says it is an integer
// when it is not.
func checkFastNum(t *testing.T, v, bound string) {
	r, ok := new(big.Rat).SetString(bound)
	if !ok {
		return
	}
	var vals []any
	if _, ok := new(big.Rat).SetString(v); ok {
		vals = append(vals, json.Number(v))
	}
	if i, err := strconv.ParseInt(v, 10, 64); err == nil {
		vals = append(vals, i, int(i))
	}
	for _, val := range vals {
		x, _ := new(big.Rat).SetString(fmt.Sprint(val))
		if isInt, known := fastIsInteger(val); known && isInt != x.IsInt() {
			t.Fatalf("fastIsInteger(%T %v) = %v, big.Rat says %v", val, val, isInt, x.IsInt())
		}
		cases := []struct {
			s    Schema
			pass bool
		}{
			{Schema{Minimum: r}, x.Cmp(r) >= 0},
			{Schema{Maximum: r}, x.Cmp(r) <= 0},
			{Schema{ExclusiveMinimum: r}, x.Cmp(r) > 0},
			{Schema{ExclusiveMaximum: r}, x.Cmp(r) < 0},
			{Schema{MultipleOf: r}, r.Sign() > 0 && new(big.Rat).Quo(x, r).IsInt()},
		}
		for i, c := range cases {
			b := compileFastBounds(&c.s)
			if b != nil && b.passes(val) && !c.pass {
				t.Fatalf("keyword %d with bound %s: the fast path passes %T %v, big.Rat fails it", i, bound, val, val)
			}
		}
	}
}

func TestFastNum(t *testing.T) {
	for _, s := range fastNumSeeds {
		t.Run(s.v+"/"+s.bound, func(t *testing.T) { checkFastNum(t, s.v, s.bound) })
	}
	// The fast path must actually decide the common case.
	b := compileFastBounds(&Schema{Minimum: big.NewRat(-90, 1), Maximum: big.NewRat(90, 1)})
	for _, v := range []any{json.Number("37.5665"), json.Number("90"), int64(-90), json.Number("-89.9999")} {
		if b == nil || !b.passes(v) {
			t.Fatalf("the fast path does not decide %v in [-90, 90]", v)
		}
	}
}

func FuzzFastNum(f *testing.F) {
	for _, s := range fastNumSeeds {
		f.Add(s.v, s.bound)
	}
	f.Fuzz(func(t *testing.T, v, bound string) {
		if len(v) > 64 || len(bound) > 64 || hugeExponent(v) || hugeExponent(bound) {
			return // big.Rat's cost grows with the exponent; the decoder refuses those
		}
		checkFastNum(t, v, bound)
	})
}

// hugeExponent reports an exponent of more than three digits.
func hugeExponent(s string) bool {
	run, inExp := 0, false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == 'e' || c == 'E':
			inExp, run = true, 0
		case inExp && c >= '0' && c <= '9':
			if run++; run > 3 {
				return true
			}
		case inExp && (c == '+' || c == '-'):
		default:
			inExp = false
		}
	}
	return false
}
