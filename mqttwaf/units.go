package mqttwaf

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Duration is a time.Duration written the way people say it in a policy:
// "10s", "5m", "1h30m", "2d". It also accepts Go's own syntax ("1m30s").
// The zero value means "use the default" wherever a Duration appears in a
// Policy.
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String renders d compactly ("10s", "5m0s" becomes "5m", "48h" becomes "2d").
func (d Duration) String() string {
	t := time.Duration(d)
	if t != 0 && t%(24*time.Hour) == 0 {
		return strconv.FormatInt(int64(t/(24*time.Hour)), 10) + "d"
	}
	// time.Duration prints 5m as "5m0s" and 1h as "1h0m0s"; drop the zero tails.
	s := t.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// ParseDuration parses "10s", "5m", "2h", "1d" and any time.ParseDuration
// string. Negative durations are rejected: no limit in a policy is negative.
func ParseDuration(s string) (Duration, error) {
	s = strings.TrimSpace(s)
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.ParseFloat(n, 64)
		// NaN fails every comparison, so test for it; the bound keeps the
		// result inside time.Duration (about 106,751 days).
		if err != nil || math.IsNaN(days) || days < 0 || days*float64(24*time.Hour) >= math.MaxInt64 {
			return 0, fmt.Errorf("invalid duration %q: write it like 10s, 5m, 2h or 1d", s)
		}
		return Duration(days * float64(24*time.Hour)), nil
	}
	t, err := time.ParseDuration(s)
	if err != nil || t < 0 {
		return 0, fmt.Errorf("invalid duration %q: write it like 10s, 5m, 2h or 1d", s)
	}
	return Duration(t), nil
}

// UnmarshalText implements encoding.TextUnmarshaler (used by the YAML and
// JSON policy decoders).
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// ByteSize is a number of bytes written with a unit: "512", "256KiB",
// "1MiB", "64KB" (KB, MB are decimal; KiB, MiB binary). The zero value means
// "use the default" wherever a ByteSize appears in a Policy.
type ByteSize int64

var byteUnits = []struct {
	suffix string
	mult   int64
}{
	// Longest suffixes first so "KiB" is not read as "B".
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30},
	{"KB", 1000}, {"MB", 1000 * 1000}, {"GB", 1000 * 1000 * 1000},
	{"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30},
	{"B", 1},
}

// ParseByteSize parses "512", "256KiB", "1.5MiB", "64KB".
func ParseByteSize(s string) (ByteSize, error) {
	s = strings.TrimSpace(s)
	mult := int64(1)
	num := s
	for _, u := range byteUnits {
		if n, ok := strings.CutSuffix(s, u.suffix); ok {
			num, mult = strings.TrimSpace(n), u.mult
			break
		}
	}
	bad := fmt.Errorf("invalid size %q: write it like 512, 64KiB or 1MiB", s)
	if n, err := strconv.ParseInt(num, 10, 64); err == nil { // whole numbers exactly
		if n < 0 || n > math.MaxInt64/2/mult {
			return 0, bad
		}
		return ByteSize(n * mult), nil
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || math.IsNaN(f) || f < 0 || f*float64(mult) > float64(math.MaxInt64/2) {
		return 0, bad
	}
	if b := f * float64(mult); b != math.Trunc(b) {
		return 0, fmt.Errorf("invalid size %q: not a whole number of bytes", s)
	}
	return ByteSize(f * float64(mult)), nil
}

// String renders b with the largest binary unit that divides it exactly.
func (b ByteSize) String() string {
	switch {
	case b != 0 && b%(1<<30) == 0:
		return strconv.FormatInt(int64(b>>30), 10) + "GiB"
	case b != 0 && b%(1<<20) == 0:
		return strconv.FormatInt(int64(b>>20), 10) + "MiB"
	case b != 0 && b%(1<<10) == 0:
		return strconv.FormatInt(int64(b>>10), 10) + "KiB"
	}
	return strconv.FormatInt(int64(b), 10)
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (b *ByteSize) UnmarshalText(t []byte) error {
	v, err := ParseByteSize(string(t))
	if err != nil {
		return err
	}
	*b = v
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (b ByteSize) MarshalText() ([]byte, error) { return []byte(b.String()), nil }
