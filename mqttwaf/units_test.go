package mqttwaf

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"
)

// durationSeeds is the one seed list for ParseDuration: the table test, the
// round-trip test, BenchmarkParseDuration and FuzzParseDuration all use it.
// printed is want.String(), "" for invalid inputs.
var durationSeeds = []struct {
	in      string
	want    Duration
	ok      bool
	printed string
}{
	{"0", 0, true, "0s"},
	{"0s", 0, true, "0s"},
	{"500ms", Duration(500 * time.Millisecond), true, "500ms"},
	{"10s", Duration(10 * time.Second), true, "10s"},
	{"90s", Duration(90 * time.Second), true, "1m30s"},
	{"5m", Duration(5 * time.Minute), true, "5m"},
	{"5m0s", Duration(5 * time.Minute), true, "5m"},
	{"1h", Duration(time.Hour), true, "1h"},
	{"1h30m", Duration(90 * time.Minute), true, "1h30m"},
	{"1h0m30s", Duration(time.Hour + 30*time.Second), true, "1h0m30s"},
	{"1m30.5s", Duration(90*time.Second + 500*time.Millisecond), true, "1m30.5s"},
	{"24h", Duration(24 * time.Hour), true, "1d"},
	{"36h", Duration(36 * time.Hour), true, "36h"},
	{"1d", Duration(24 * time.Hour), true, "1d"},
	{"2d", Duration(48 * time.Hour), true, "2d"},
	{"1.5d", Duration(36 * time.Hour), true, "36h"},
	{"0.5d", Duration(12 * time.Hour), true, "12h"},
	{"365d", Duration(365 * 24 * time.Hour), true, "365d"},
	{"36500d", Duration(36500 * 24 * time.Hour), true, "36500d"},
	{" 10s ", Duration(10 * time.Second), true, "10s"},
	{"-0s", 0, true, "0s"},
	{"1.5us", Duration(1500 * time.Nanosecond), true, "1.5µs"},
	{"2562047h", Duration(2562047 * time.Hour), true, "2562047h"},
	// Huge: 876600h is 36525 days, more than the 100 years the "d" form
	// accepts. String prints it as "36525d", which must parse back.
	{"876600h", Duration(876600 * time.Hour), true, "36525d"},

	{"", 0, false, ""},
	{" ", 0, false, ""},
	{"10", 0, false, ""},
	{"ten seconds", 0, false, ""},
	{"10 s", 0, false, ""},
	{"-1s", 0, false, ""},
	{"-1d", 0, false, ""},
	{"-0.5d", 0, false, ""},
	{"d", 0, false, ""},
	{"1d12h", 0, false, ""},
	{"36501d", Duration(36501 * 24 * time.Hour), true, "36501d"},
	{"106751d", Duration(106751 * 24 * time.Hour), true, "106751d"}, // the largest whole-day time.Duration
	{"106752d", 0, false, ""},
	{"1e400d", 0, false, ""},
	{"Infd", 0, false, ""},
	{"-Infd", 0, false, ""},
	{"NaNd", 0, false, ""}, // NaN days is no duration
	{"nand", 0, false, ""},
	{"9999999999h", 0, false, ""},
	{"5x", 0, false, ""},
}

func TestParseDuration(t *testing.T) {
	for _, tc := range durationSeeds {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseDuration(tc.in)
			if !tc.ok {
				if err == nil {
					t.Fatalf("ParseDuration(%q) = %d (%s), want an error", tc.in, int64(got), got)
				}
				if !strings.Contains(err.Error(), "write it like") {
					t.Errorf("error %q does not say how to write a duration", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseDuration(%q): %v", tc.in, err)
			}
			if got != tc.want {
				t.Errorf("ParseDuration(%q) = %d, want %d", tc.in, int64(got), int64(tc.want))
			}
			if s := got.String(); s != tc.printed {
				t.Errorf("String() = %q, want %q", s, tc.printed)
			}
			if d := got.D(); d != time.Duration(tc.want) {
				t.Errorf("D() = %v, want %v", d, time.Duration(tc.want))
			}
		})
	}
}

// TestDurationRoundTrip: every duration ParseDuration accepts prints as a
// string ParseDuration reads back to the same value.
func TestDurationRoundTrip(t *testing.T) {
	for _, tc := range durationSeeds {
		d, err := ParseDuration(tc.in)
		if err != nil {
			continue
		}
		back, err := ParseDuration(d.String())
		if err != nil || back != d {
			t.Errorf("ParseDuration(%q) = %d; its String() %q parses to %d, %v", tc.in, int64(d), d.String(), int64(back), err)
		}
	}
	for _, d := range []time.Duration{time.Nanosecond, time.Second, 61 * time.Minute, 25 * time.Hour, 7 * 24 * time.Hour, 365 * 24 * time.Hour} {
		back, err := ParseDuration(Duration(d).String())
		if err != nil || back.D() != d {
			t.Errorf("%v: String %q parses to %v, %v", d, Duration(d).String(), back.D(), err)
		}
	}
}

func TestDurationText(t *testing.T) {
	var d Duration
	if err := d.UnmarshalText([]byte("2d")); err != nil || d != Duration(48*time.Hour) {
		t.Fatalf("UnmarshalText(2d) = %v, %v", d, err)
	}
	if err := d.UnmarshalText([]byte("soon")); err == nil {
		t.Fatal("UnmarshalText(soon) succeeded")
	}
	if d != Duration(48*time.Hour) {
		t.Errorf("a failed UnmarshalText changed the value to %v", d)
	}
	b, err := Duration(90 * time.Minute).MarshalText()
	if err != nil || string(b) != "1h30m" {
		t.Errorf("MarshalText = %q, %v; want 1h30m", b, err)
	}
	j, err := json.Marshal(struct{ D Duration }{Duration(5 * time.Minute)})
	if err != nil || string(j) != `{"D":"5m"}` {
		t.Errorf("json.Marshal = %s, %v", j, err)
	}
}

// byteSizeSeeds is the one seed list for ParseByteSize (table test, round
// trip, benchmark and fuzz target). printed is want.String().
var byteSizeSeeds = []struct {
	in      string
	want    ByteSize
	ok      bool
	printed string
}{
	{"0", 0, true, "0"},
	{"512", 512, true, "512"},
	{"512B", 512, true, "512"},
	{"1536", 1536, true, "1536"},
	{"1024", 1024, true, "1KiB"},
	{"64KiB", 64 << 10, true, "64KiB"},
	{"64KB", 64000, true, "64000"},
	{"64K", 64 << 10, true, "64KiB"},
	{"256KiB", 256 << 10, true, "256KiB"},
	{"1MiB", 1 << 20, true, "1MiB"},
	{"1.5MiB", 3 << 19, true, "1536KiB"},
	{"1MB", 1000 * 1000, true, "1000000"},
	{"2M", 2 << 20, true, "2MiB"},
	{"1GiB", 1 << 30, true, "1GiB"},
	{"1GB", 1000 * 1000 * 1000, true, "1000000000"},
	{"3G", 3 << 30, true, "3GiB"},
	{"1 MiB", 1 << 20, true, "1MiB"},
	{" 4KiB ", 4 << 10, true, "4KiB"},
	{"1e3", 1000, true, "1000"},
	{"0.5KiB", 512, true, "512"},
	{"-0", 0, true, "0"},
	{"4294967295GiB", 4294967295 << 30, true, "4294967295GiB"},
	{"4294967296GiB", 0, false, ""}, // sizes stop below 2^62 bytes

	{"", 0, false, ""},
	{"B", 0, false, ""},
	{"KiB", 0, false, ""},
	{"-1", 0, false, ""},
	{"-1KiB", 0, false, ""},
	{"1kib", 0, false, ""},
	{"1TiB", 0, false, ""},
	{"1 K iB", 0, false, ""},
	{"ten", 0, false, ""},
	{"Inf", 0, false, ""},
	{"NaN", 0, false, ""},
	{"NaNKiB", 0, false, ""},
	{"1e400", 0, false, ""},
	{"4294967297GiB", 0, false, ""},
	{"9223372036854775807", 0, false, ""},
	{"0x10", 0, false, ""},
}

func TestParseByteSize(t *testing.T) {
	for _, tc := range byteSizeSeeds {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseByteSize(tc.in)
			if !tc.ok {
				if err == nil {
					t.Fatalf("ParseByteSize(%q) = %d, want an error", tc.in, int64(got))
				}
				if !strings.Contains(err.Error(), "write it like") {
					t.Errorf("error %q does not say how to write a size", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseByteSize(%q): %v", tc.in, err)
			}
			if got != tc.want {
				t.Errorf("ParseByteSize(%q) = %d, want %d", tc.in, int64(got), int64(tc.want))
			}
			if s := got.String(); s != tc.printed {
				t.Errorf("String() = %q, want %q", s, tc.printed)
			}
		})
	}
}

func TestByteSizeRoundTrip(t *testing.T) {
	for _, tc := range byteSizeSeeds {
		b, err := ParseByteSize(tc.in)
		if err != nil {
			continue
		}
		back, err := ParseByteSize(b.String())
		if err != nil || back != b {
			t.Errorf("ParseByteSize(%q) = %d; its String() %q parses to %d, %v", tc.in, int64(b), b.String(), int64(back), err)
		}
	}
	// Every size a policy can hold (validation caps sizes at 256 MiB) prints
	// and parses back exactly.
	for _, b := range []ByteSize{1, 63, 64, 1000, 1023, 1025, 4 << 10, 256<<10 + 1, 256 << 20, 1<<53 - 1} {
		back, err := ParseByteSize(b.String())
		if err != nil || back != b {
			t.Errorf("%d: String %q parses to %d, %v", int64(b), b.String(), int64(back), err)
		}
	}
}

func TestByteSizeText(t *testing.T) {
	var b ByteSize
	if err := b.UnmarshalText([]byte("1.5MiB")); err != nil || b != 3<<19 {
		t.Fatalf("UnmarshalText(1.5MiB) = %d, %v", int64(b), err)
	}
	if err := b.UnmarshalText([]byte("lots")); err == nil {
		t.Fatal("UnmarshalText(lots) succeeded")
	}
	if b != 3<<19 {
		t.Errorf("a failed UnmarshalText changed the value to %d", int64(b))
	}
	m, err := ByteSize(256 << 10).MarshalText()
	if err != nil || string(m) != "256KiB" {
		t.Errorf("MarshalText = %q, %v", m, err)
	}
}

// TestUnitsThroughParsePolicy: durations and sizes in a policy go through
// their TextUnmarshaler, in YAML and JSON alike, and a bad one names its
// line and field.
func TestUnitsThroughParsePolicy(t *testing.T) {
	tests := []struct {
		name, doc string
		check     func(p *Policy) bool
		errHas    []string
	}{
		{
			name: "yaml units",
			doc:  "broker:\n  max_packet_size: 1.5MiB\n  max_session_expiry: 2d\nconnections:\n  connect_timeout: 1m30s\n",
			check: func(p *Policy) bool {
				return p.Broker.MaxPacketSize == 3<<19 && p.Broker.MaxSessionExpiry == Duration(48*time.Hour) && p.Connections.ConnectTimeout == Duration(90*time.Second)
			},
		},
		{
			name: "json units",
			doc:  `{"broker": {"max_packet_size": "1.5MiB", "max_session_expiry": "2d"}, "connections": {"connect_timeout": "1m30s"}}`,
			check: func(p *Policy) bool {
				return p.Broker.MaxPacketSize == 3<<19 && p.Broker.MaxSessionExpiry == Duration(48*time.Hour) && p.Connections.ConnectTimeout == Duration(90*time.Second)
			},
		},
		{
			name:  "plain number is bytes",
			doc:   "broker: {max_packet_size: 65536}\n",
			check: func(p *Policy) bool { return p.Broker.MaxPacketSize == 64<<10 },
		},
		{
			name:  "json number is bytes",
			doc:   `{"limits": {"user_properties": {"max_bytes": 2048}}}`,
			check: func(p *Policy) bool { return p.Limits.UserProperties.MaxBytes == 2048 },
		},
		{
			name:   "bad duration",
			doc:    "mode: enforce\nconnections:\n  connect_timeout: soon\n",
			errHas: []string{"test.yaml:3", "connections.connect_timeout", `"soon"`, "write it like"},
		},
		{
			name:   "duration without unit",
			doc:    "connections: {max_keepalive: 60}\n",
			errHas: []string{"test.yaml:1", "connections.max_keepalive", `"60"`},
		},
		{
			name:   "negative size",
			doc:    "\nbroker:\n  max_packet_size: -1KiB\n",
			errHas: []string{"test.yaml:3", "broker.max_packet_size", "write it like"},
		},
		{
			name:   "size as a mapping",
			doc:    "broker:\n  max_packet_size: {KiB: 1}\n",
			errHas: []string{"test.yaml:2", "broker.max_packet_size", "expected a single value"},
		},
		{
			name:   "listener duration",
			doc:    "listeners:\n  ws:\n    connect_timeout: 5 minutes\n",
			errHas: []string{"test.yaml:3", "listeners.ws.connect_timeout"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := ParsePolicy([]byte(tc.doc), "test.yaml")
			if tc.errHas != nil {
				if err == nil {
					t.Fatalf("no error; policy %+v", p)
				}
				for _, s := range tc.errHas {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q does not contain %q", err, s)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(p) {
				t.Errorf("wrong values: %+v", p)
			}
		})
	}
}

func BenchmarkParseDuration(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		for _, tc := range durationSeeds {
			_, _ = ParseDuration(tc.in)
		}
	}
}

func BenchmarkParseByteSize(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		for _, tc := range byteSizeSeeds {
			_, _ = ParseByteSize(tc.in)
		}
	}
}

// FuzzParseDuration: no panic; an accepted duration is never negative; its
// String parses back to it; where Go's time.ParseDuration accepts the input
// (and it is not negative) both agree.
func FuzzParseDuration(f *testing.F) {
	for _, tc := range durationSeeds {
		f.Add(tc.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDuration(s)
		if err != nil {
			if d != 0 {
				t.Errorf("ParseDuration(%q) returned %d with error %v", s, int64(d), err)
			}
			return
		}
		if d < 0 {
			t.Fatalf("ParseDuration(%q) = %d: negative", s, int64(d))
		}
		back, err := ParseDuration(d.String())
		if err != nil || back != d {
			t.Fatalf("ParseDuration(%q) = %d; String %q parses to %d, %v", s, int64(d), d.String(), int64(back), err)
		}
		if g, gerr := time.ParseDuration(strings.TrimSpace(s)); gerr == nil && g >= 0 && time.Duration(d) != g {
			t.Fatalf("ParseDuration(%q) = %v, time.ParseDuration = %v", s, d.D(), g)
		}
	})
}

// FuzzParseByteSize: no panic; an accepted size is never negative and at
// most MaxInt64/2; its String parses back to it.
func FuzzParseByteSize(f *testing.F) {
	for _, tc := range byteSizeSeeds {
		f.Add(tc.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b, err := ParseByteSize(s)
		if err != nil {
			if b != 0 {
				t.Errorf("ParseByteSize(%q) returned %d with error %v", s, int64(b), err)
			}
			return
		}
		if b < 0 || b > math.MaxInt64/2+1 {
			t.Fatalf("ParseByteSize(%q) = %d: out of range", s, int64(b))
		}
		back, err := ParseByteSize(b.String())
		if err != nil || back != b {
			t.Fatalf("ParseByteSize(%q) = %d; String %q parses to %d, %v", s, int64(b), b.String(), int64(back), err)
		}
	})
}
