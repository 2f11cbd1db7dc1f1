package redact

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// telemetryValues makes n string values of the kinds ordinary telemetry
// carries and no detector should flag: timestamps in the usual forms,
// counters and numeric ids, UUIDs and hex serials, container and order
// numbers, readings with and without units, firmware versions,
// coordinates, durations and key=value status lines. Deterministic (seed),
// so a count that changes is a change in the detectors.
func telemetryValues(n int, seed uint64) []string {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	hex := func(k int) string {
		var b strings.Builder
		for range k {
			b.WriteByte("0123456789abcdef"[r.IntN(16)])
		}
		return b.String()
	}
	digits := func(k int) string {
		var b strings.Builder
		b.WriteByte(byte('1' + r.IntN(9)))
		for range k - 1 {
			b.WriteByte(byte('0' + r.IntN(10)))
		}
		return b.String()
	}
	kinds := []func() string{
		func() string {
			return fmt.Sprint(base.Add(time.Duration(r.Int64N(int64(365 * 24 * time.Hour)))).Unix())
		},
		func() string {
			return fmt.Sprint(base.Add(time.Duration(r.Int64N(int64(365 * 24 * time.Hour)))).UnixMilli())
		},
		func() string {
			return base.Add(time.Duration(r.Int64N(int64(365 * 24 * time.Hour)))).Format(time.RFC3339)
		},
		func() string {
			return base.Add(time.Duration(r.Int64N(int64(365 * 24 * time.Hour)))).Format("20060102150405")
		},
		func() string {
			return base.Add(time.Duration(r.Int64N(int64(365 * 24 * time.Hour)))).Format("2006/01/02 15:04:05")
		},
		func() string {
			return base.Add(time.Duration(r.Int64N(int64(365 * 24 * time.Hour)))).Format("02.01.2006 15:04")
		},
		func() string { return digits(1 + r.IntN(12)) }, // counters, numeric ids
		func() string { return hex(8) + "-" + hex(4) + "-4" + hex(3) + "-a" + hex(3) + "-" + hex(12) },
		func() string { return strings.ToUpper(hex(12)) },
		func() string { return "TTNU" + digits(7) },
		func() string { return fmt.Sprintf("SU%02d-%d-%05d", r.IntN(100), 2000+r.IntN(30), r.IntN(100000)) },
		func() string { return fmt.Sprintf("%.2f", r.Float64()*200-50) },
		func() string { return fmt.Sprintf("%.1f hPa", 950+r.Float64()*100) },
		func() string { return fmt.Sprintf("%.2fV", 3+r.Float64()) },
		func() string { return fmt.Sprintf("v%d.%d.%d", r.IntN(10), r.IntN(30), r.IntN(200)) },
		func() string { return fmt.Sprintf("%d.%d.%d.%d", 10, r.IntN(20), r.IntN(30000), r.IntN(10)) }, // Windows-style build numbers
		func() string { return fmt.Sprintf("%.7f", r.Float64()*180-90) },
		func() string { return fmt.Sprintf("%.7f,%.7f", r.Float64()*180-90, r.Float64()*360-180) },
		func() string { return fmt.Sprintf("%02d:%02d:%02d", r.IntN(24), r.IntN(60), r.IntN(60)) },
		func() string {
			return fmt.Sprintf("temp=%.1f;hum=%d;bat=%.2f", r.Float64()*40, r.IntN(100), 3+r.Float64())
		},
		func() string { return fmt.Sprintf("%d %d %d", r.IntN(4001)-2000, r.IntN(4001)-2000, r.IntN(4001)-2000) }, // accelerometer x y z
		func() string { return fmt.Sprintf("fw-%s-%d", hex(7), r.IntN(1000)) },
	}
	out := make([]string, n)
	for i := range out {
		out[i] = kinds[r.IntN(len(kinds))]()
	}
	return out
}

// TestFalsePositivesOnTelemetryNoRace measures how many ordinary telemetry
// values each built-in detector flags (every one a false positive: the
// corpus holds no personal data) and holds the rate to the figures in
// BENCHMARKS.md.
func TestFalsePositivesOnTelemetryNoRace(t *testing.T) {
	const n = 200_000
	values := telemetryValues(n, 1)
	for _, tc := range []struct {
		d     Detector
		limit float64 // the highest rate accepted
	}{
		{Detector{Kind: KindPhone}, 0.0005},
		{Detector{Kind: KindPhone, Regions: []string{"KR"}}, 0},
		{Detector{Kind: KindEmail}, 0},
		{Detector{Kind: KindIMEI}, 0},
		{Detector{Kind: KindCard}, 0},
	} {
		kind, limit := fmt.Sprint(tc.d.Kind, tc.d.Regions), tc.limit
		r, err := New(Options{Detectors: []Detector{tc.d}})
		if err != nil {
			t.Fatal(err)
		}
		hits, examples := 0, []string{}
		for _, v := range values {
			_, rep, err := r.Apply(nil, []byte(`"`+v+`"`))
			if err != nil {
				t.Fatal(err)
			}
			if rep.Hits() > 0 {
				hits++
				if len(examples) < 5 {
					examples = append(examples, v)
				}
			}
		}
		rate := float64(hits) / n
		t.Logf("%s: %d of %d telemetry values flagged (%.4f%%), e.g. %q", kind, hits, n, 100*rate, examples)
		if rate > limit {
			t.Errorf("%s flags %.4f%% of ordinary telemetry, above %.4f%%: %q", kind, 100*rate, 100*limit, examples)
		}
	}
}
