package ratelimit

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

// rateSeeds is the one seed list for ParseRate: the table test, the
// benchmark and the fuzz target all start from it. want is written by hand.
var rateSeeds = []struct {
	in   string
	want Rate
	err  bool
}{
	{in: "100/s", want: Rate{100, time.Second}},
	{in: "512KiB/s", want: Rate{512 * 1024, time.Second}},
	{in: "512 KiB / s", want: Rate{512 * 1024, time.Second}},
	{in: "20/min", want: Rate{20, time.Minute}},
	{in: "20/m", want: Rate{20, time.Minute}},
	{in: "15/minute", want: Rate{15, time.Minute}},
	{in: "1000/1m", want: Rate{1000, time.Minute}},
	{in: "5/10s", want: Rate{5, 10 * time.Second}},
	{in: "5/10min", want: Rate{5, 10 * time.Minute}},
	{in: "3/1m30s", want: Rate{3, 90 * time.Second}},
	{in: "1/h", want: Rate{1, time.Hour}},
	{in: "7/d", want: Rate{7, 24 * time.Hour}},
	{in: "2/2days", want: Rate{2, 48 * time.Hour}},
	{in: "1MB/s", want: Rate{1000000, time.Second}},
	{in: "1MiB/s", want: Rate{1 << 20, time.Second}},
	{in: "2GiB/h", want: Rate{2 << 30, time.Hour}},
	{in: "10k/s", want: Rate{10000, time.Second}},
	{in: "250/500ms", want: Rate{250, 500 * time.Millisecond}},
	{in: "1125899906842624/s", want: Rate{1 << 50, time.Second}},
	{in: "", err: true},
	{in: "100", err: true},
	{in: "/s", err: true},
	{in: "0/s", err: true},
	{in: "-5/s", err: true},
	{in: "1.5/s", err: true},
	{in: "100/", err: true},
	{in: "100/fortnight", err: true},
	{in: "100/0s", err: true},
	{in: "100/-1s", err: true},
	{in: "100/367d", err: true},
	{in: "100/9999999999999999999h", err: true},
	{in: "1125899906842625/s", err: true},
	{in: "2000000TiB/s", err: true},
	{in: "1048576GiB/s", want: Rate{1 << 50, time.Second}},
	{in: "1048577GiB/s", err: true},
	{in: "99999999999999999999/s", err: true},
	{in: "100/s/s", err: true},
	{in: "100xB/s", err: true},
	{in: strings.Repeat("9", 65) + "/s", err: true},
}

func TestParseRate(t *testing.T) {
	for _, tc := range rateSeeds {
		got, err := ParseRate(tc.in)
		if tc.err {
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Errorf("ParseRate(%q) = %v, %v; want a *ParseError", tc.in, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseRate(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			continue
		}
		back, err := ParseRate(got.String())
		if err != nil || back != got {
			t.Errorf("round trip of %q via %q = %v, %v", tc.in, got.String(), back, err)
		}
	}
}

func TestRateStringAndLimit(t *testing.T) {
	tests := []struct {
		r      Rate
		str    string
		perSec float64
	}{
		{Rate{100, time.Second}, "100/s", 100},
		{Rate{20, time.Minute}, "20/min", 20.0 / 60},
		{Rate{15, time.Hour}, "15/h", 15.0 / 3600},
		{Rate{1, 24 * time.Hour}, "1/d", 1.0 / 86400},
		{Rate{5, 10 * time.Second}, "5/10s", 0.5},
		{Rate{524288, time.Second}, "524288/s", 524288},
		{Rate{}, "", 0},
	}
	for _, tc := range tests {
		if got := tc.r.String(); got != tc.str {
			t.Errorf("%#v.String() = %q, want %q", tc.r, got, tc.str)
		}
		if got := float64(tc.r.PerSecond()); got != tc.perSec {
			t.Errorf("%#v.PerSecond() = %v, want %v", tc.r, got, tc.perSec)
		}
	}
}

func TestRateJSON(t *testing.T) {
	var opts LimiterOptions
	if err := json.Unmarshal([]byte(`{"rate":"512KiB/s","burst":1048576}`), &opts); err != nil {
		t.Fatal(err)
	}
	if opts.Rate != (Rate{512 << 10, time.Second}) || opts.Burst != 1<<20 {
		t.Fatalf("decoded %+v", opts)
	}
	out, err := json.Marshal(LimiterOptions{Rate: Rate{20, time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"rate":"20/min","burst":0,"max_keys":0,"shards":0,"debt_memory":0}`; string(out) != want {
		t.Fatalf("encoded %s, want %s", out, want)
	}
	if err := json.Unmarshal([]byte(`{"rate":"fast"}`), &opts); err == nil {
		t.Fatal("bad rate decoded without error")
	}
	if err := json.Unmarshal([]byte(`{"rate":""}`), &opts); err != nil || !opts.Rate.IsZero() {
		t.Fatalf("empty rate: %v, %v", opts.Rate, err)
	}
}

func BenchmarkParseRate(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		for _, tc := range rateSeeds {
			_, _ = ParseRate(tc.in)
		}
	}
}

func FuzzParseRate(f *testing.F) {
	for _, tc := range rateSeeds {
		f.Add(tc.in)
	}
	f.Fuzz(func(t *testing.T, in string) {
		r, err := ParseRate(in)
		if err != nil {
			if r != (Rate{}) {
				t.Fatalf("error with non-zero rate %v", r)
			}
			return
		}
		if len(in) > maxRateInput || r.N < 1 || r.N > maxRateN || r.Per <= 0 || r.Per > maxRatePeriod {
			t.Fatalf("ParseRate(%q) accepted out-of-range %#v", in, r)
		}
		back, err := ParseRate(r.String())
		if err != nil || back != r {
			t.Fatalf("round trip %q -> %q -> %v, %v", in, r.String(), back, err)
		}
	})
}
