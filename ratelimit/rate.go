package ratelimit

import (
	"strconv"
	"strings"
	"time"

	"golang.org/x/time/rate"
)

// Rate is an amount per period, written the way people say it: "100/s",
// "512KiB/s", "20/min", "15/10m". N is a count of events or, for byte limits,
// of bytes. The zero Rate means "not set": options replace it with their
// default. Rate is a plain value, safe to copy and share.
//
// Rate implements encoding.TextMarshaler and TextUnmarshaler, so it reads from
// and writes to YAML and JSON as the string form.
type Rate struct {
	N   int64         // amount per Per, > 0
	Per time.Duration // period, > 0
}

// maxRateN keeps N exactly representable as a float64 token count.
const maxRateN = 1 << 50

// maxRateInput bounds the text ParseRate will look at.
const maxRateInput = 64

// PerSecond returns the rate as a golang.org/x/time/rate limit.
func (r Rate) PerSecond() rate.Limit {
	if r.Per <= 0 {
		return 0
	}
	return rate.Limit(float64(r.N) / r.Per.Seconds())
}

// IsZero reports whether r is unset.
func (r Rate) IsZero() bool { return r == Rate{} }

// String returns the canonical text form, which ParseRate reads back to the
// same Rate: the amount as a plain integer, then "/s", "/min", "/h", "/d" or a
// Go duration ("/10s", "/1m30s"). The zero Rate prints as "".
func (r Rate) String() string {
	if r.IsZero() {
		return ""
	}
	var per string
	switch r.Per {
	case time.Second:
		per = "s"
	case time.Minute:
		per = "min"
	case time.Hour:
		per = "h"
	case 24 * time.Hour:
		per = "d"
	default:
		per = r.Per.String()
	}
	return strconv.FormatInt(r.N, 10) + "/" + per
}

// MarshalText implements encoding.TextMarshaler.
func (r Rate) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler. Empty text gives the zero
// (unset) Rate.
func (r *Rate) UnmarshalText(b []byte) error {
	if len(b) == 0 {
		*r = Rate{}
		return nil
	}
	v, err := ParseRate(string(b))
	if err != nil {
		return err
	}
	*r = v
	return nil
}

var amountUnits = map[string]int64{
	"": 1, "B": 1,
	"k": 1000, "K": 1000, "kB": 1000, "KB": 1000,
	"Ki": 1 << 10, "KiB": 1 << 10,
	"M": 1000 * 1000, "MB": 1000 * 1000,
	"Mi": 1 << 20, "MiB": 1 << 20,
	"G": 1000 * 1000 * 1000, "GB": 1000 * 1000 * 1000,
	"Gi": 1 << 30, "GiB": 1 << 30,
}

var periodUnits = map[string]time.Duration{
	"ms": time.Millisecond,
	"s":  time.Second, "sec": time.Second, "second": time.Second, "seconds": time.Second,
	"m": time.Minute, "min": time.Minute, "minute": time.Minute, "minutes": time.Minute,
	"h": time.Hour, "hr": time.Hour, "hour": time.Hour, "hours": time.Hour,
	"d": 24 * time.Hour, "day": 24 * time.Hour, "days": 24 * time.Hour,
}

// maxRatePeriod bounds the period; longer windows are almost certainly typos
// and would make a "per period" budget meaningless.
const maxRatePeriod = 366 * 24 * time.Hour

// ParseRate reads "AMOUNT/PERIOD". AMOUNT is a non-negative integer with an
// optional size unit (k, K, KB = 1000; Ki, KiB = 1024; M, MB, Mi, MiB, G, GB,
// Gi, GiB; B = 1). PERIOD is a unit name (ms, s, sec, second, m, min, minute,
// h, hour, d, day, plurals too), an integer and a unit name ("10min"), or a Go
// duration ("10s", "1m30s"). Spaces around the parts are ignored. N must be
// between 1 and 2^50 and the period between 1ns and 366 days.
func ParseRate(s string) (Rate, error) {
	if len(s) > maxRateInput {
		return Rate{}, parseErr("rate", s, "longer than 64 bytes")
	}
	amount, period, ok := strings.Cut(s, "/")
	if !ok {
		return Rate{}, parseErr("rate", s, `want AMOUNT/PERIOD, e.g. "100/s" or "512KiB/s"`)
	}
	n, err := parseAmount(strings.TrimSpace(amount))
	if err != "" {
		return Rate{}, parseErr("rate", s, err)
	}
	per, err := parsePeriod(strings.TrimSpace(period))
	if err != "" {
		return Rate{}, parseErr("rate", s, err)
	}
	return Rate{N: n, Per: per}, nil
}

func parseAmount(s string) (int64, string) {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i == 0 {
		return 0, "amount must start with digits"
	}
	n, err := strconv.ParseInt(s[:i], 10, 64)
	if err != nil || n > maxRateN {
		return 0, "amount too large (max 2^50)"
	}
	mult, ok := amountUnits[strings.TrimSpace(s[i:])]
	if !ok {
		return 0, "unknown amount unit (want B, k, KB, KiB, M, MB, MiB, G, GB, GiB)"
	}
	if n == 0 {
		return 0, "amount must be at least 1 (to refuse everything, do not configure a limit but deny)"
	}
	if n > maxRateN/mult {
		return 0, "amount too large (max 2^50)"
	}
	return n * mult, ""
}

func parsePeriod(s string) (time.Duration, string) {
	if d, ok := periodUnits[s]; ok {
		return d, ""
	}
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i == 0 {
		return 0, "unknown period (want s, min, h, d, 10s, 1m30s, ...)"
	}
	var d time.Duration
	if unit, ok := periodUnits[strings.TrimSpace(s[i:])]; ok {
		k, err := strconv.ParseInt(s[:i], 10, 64)
		if err != nil || k > int64(maxRatePeriod/unit) {
			return 0, "period longer than 366 days"
		}
		d = time.Duration(k) * unit
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return 0, "unknown period (want s, min, h, d, 10s, 1m30s, ...)"
		}
	}
	if d <= 0 {
		return 0, "period must be positive"
	}
	if d > maxRatePeriod {
		return 0, "period longer than 366 days"
	}
	return d, ""
}
