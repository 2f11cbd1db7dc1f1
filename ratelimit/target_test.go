package ratelimit

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

// targetSeeds is the one seed list for ParseTarget (table test, benchmark,
// fuzz target). want is the canonical form, written by hand; "" means error.
var targetSeeds = []struct{ in, want string }{
	{"client:sensor-42", "client:sensor-42"},
	{"client:a:b:c", "client:a:b:c"},
	{"client:TTNU1372314", "client:TTNU1372314"},
	{"user:alice", "user:alice"},
	{"user:홍길수", "user:홍길수"},
	{"ip:192.0.2.1", "ip:192.0.2.1"},
	{"ip:192.0.2.1/32", "ip:192.0.2.1"},
	{"ip:192.0.2.77/24", "ip:192.0.2.0/24"},
	{"ip:10.1.2.3/8", "ip:10.0.0.0/8"},
	{"ip:0.0.0.0/0", "ip:0.0.0.0/0"},
	{"ip:::ffff:192.0.2.1", "ip:192.0.2.1"},
	{"ip:::ffff:10.0.0.0/104", "ip:10.0.0.0/8"},
	{"ip:2001:db8::1", "ip:2001:db8::1"},
	{"ip:2001:db8:1:2:3:4:5:6/64", "ip:2001:db8:1:2::/64"},
	{"ip:fe80::1%eth0", "ip:fe80::1"},
	{"ip:::/0", "ip:::/0"},
	{"", ""},
	{"client", ""},
	{"client:", ""},
	{"user:", ""},
	{"host:example.com", ""},
	{"CLIENT:x", ""},
	{"ip:", ""},
	{"ip:300.1.1.1", ""},
	{"ip:192.0.2.0/33", ""},
	{"ip:2001:db8::/129", ""},
	{"ip:example.com", ""},
	{"ip:fe80::1%eth0/64", ""},
	{"client:nul\x00byte", ""},
	{"client:\xff\xfe", ""},
	{"client:" + strings.Repeat("x", 256), "client:" + strings.Repeat("x", 256)},
	{"client:" + strings.Repeat("x", 257), ""},
}

func TestParseTarget(t *testing.T) {
	for _, tc := range targetSeeds {
		got, err := ParseTarget(tc.in)
		if tc.want == "" {
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Errorf("ParseTarget(%q) = %v, %v; want a *ParseError", tc.in, got, err)
			}
			continue
		}
		if err != nil || got.String() != tc.want {
			t.Errorf("ParseTarget(%q) = %q, %v; want %q", tc.in, got.String(), err, tc.want)
			continue
		}
		if err := got.Validate(); err != nil {
			t.Errorf("ParseTarget(%q) is not valid: %v", tc.in, err)
		}
	}
}

func TestTargetConstructors(t *testing.T) {
	tests := []struct {
		t    Target
		want string
	}{
		{ClientIDTarget("c1"), "client:c1"},
		{UsernameTarget("bob"), "user:bob"},
		{IPTarget(netip.MustParseAddr("::ffff:203.0.113.9")), "ip:203.0.113.9"},
		{IPTarget(netip.MustParseAddr("2001:db8::9%wlan0")), "ip:2001:db8::9"},
		{PrefixTarget(netip.MustParsePrefix("203.0.113.9/24")), "ip:203.0.113.0/24"},
	}
	for _, tc := range tests {
		if got := tc.t.String(); got != tc.want {
			t.Errorf("String() = %q, want %q", got, tc.want)
		}
		if err := tc.t.Validate(); err != nil {
			t.Errorf("%q: %v", tc.want, err)
		}
	}
	bad := []Target{
		{},
		{Kind: KindIP},
		{Kind: KindIP, Prefix: netip.MustParsePrefix("10.1.2.3/8")},
		{Kind: KindClientID, Value: "x", Prefix: netip.MustParsePrefix("10.0.0.0/8")},
		{Kind: KindIP, Value: "x", Prefix: netip.MustParsePrefix("10.0.0.0/8")},
		{Kind: 9, Value: "x"},
	}
	for _, b := range bad {
		if b.Validate() == nil {
			t.Errorf("%#v validated", b)
		}
	}
}

func BenchmarkParseTarget(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		for _, tc := range targetSeeds {
			_, _ = ParseTarget(tc.in)
		}
	}
}

func FuzzParseTarget(f *testing.F) {
	for _, tc := range targetSeeds {
		f.Add(tc.in)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got, err := ParseTarget(in)
		if err != nil {
			return
		}
		if err := got.Validate(); err != nil {
			t.Fatalf("ParseTarget(%q) = %#v, invalid: %v", in, got, err)
		}
		back, err := ParseTarget(got.String())
		if err != nil || back != got {
			t.Fatalf("round trip %q -> %q -> %#v, %v", in, got.String(), back, err)
		}
		// A parsed target must be bannable and then found by Check.
		bl, _ := NewBanList(BanOptions{})
		if err := bl.Add(t0, Ban{Target: got}); err != nil {
			t.Fatalf("Add(%q): %v", got, err)
		}
		var ban Ban
		var ok bool
		switch got.Kind {
		case KindClientID:
			ban, ok = bl.Check(t0, got.Value, "", netip.Addr{})
		case KindUsername:
			ban, ok = bl.Check(t0, "", got.Value, netip.Addr{})
		case KindIP:
			ban, ok = bl.Check(t0, "", "", got.Prefix.Addr())
		}
		if !ok || ban.Target != got {
			t.Fatalf("Check after Add(%q) = %v, %v", got, ban, ok)
		}
	})
}
