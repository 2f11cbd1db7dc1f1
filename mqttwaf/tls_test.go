package mqttwaf

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/mqttwaf/mqttwaf/ratelimit"
)

// handshakeSeeds are (listener, remote address) pairs and whether each is
// admitted under handshakePolicy after the ones before it, from a fresh
// WAF, all at one instant: each network has a burst of 3, the listener
// "tls" (its own section) 2.
const handshakePolicy = `connections: {tls_handshakes_per_ip: 3/min}
listeners: {tls: {tls_handshakes_per_ip: 2/min}}
`

var handshakeSeeds = []struct {
	listener, remote string
	admitted         bool
}{
	{"tcp", "192.0.2.1:1000", true},
	{"tcp", "192.0.2.1:1001", true},
	{"wss", "192.0.2.1:1002", true}, // listeners without a section share the connections budget
	{"tcp", "192.0.2.1:1003", false},
	{"tcp", "192.0.2.2:1000", true}, // another IPv4 address: its own budget
	{"tls", "192.0.2.1:1004", true}, // a listener with its own section: its own budget
	{"tls", "192.0.2.1:1005", true},
	{"tls", "192.0.2.1:1006", false},
	{"tcp", "[2001:db8::1]:1000", true},
	{"tcp", "[2001:db8::2]:1000", true},      // same /64
	{"tcp", "[2001:db8::ffff:3]:1000", true}, // same /64
	{"tcp", "[2001:db8::4]:1000", false},     // same /64: over
	{"tcp", "[2001:db8:0:1::1]:1000", true},  // another /64
	{"tcp", "[::ffff:192.0.2.2]:1000", true}, // IPv4-mapped: 192.0.2.2
	{"tcp", "[::ffff:192.0.2.2]:1001", true},
	{"tcp", "192.0.2.2:1001", false},
	{"tcp", "@unix", true}, // no IP: not limited
	{"tcp", "@unix", true},
	{"tcp", "@unix", true},
	{"tcp", "@unix", true},
}

// TestCheckTLSHandshake: each network (addresses.ipv6_prefix: /64) may start
// its section's burst of handshakes; every refusal is one event
// (connections.tls, tls_handshake_rate, 0x9F) and every admission is counted.
func TestCheckTLSHandshake(t *testing.T) {
	w := newTestWAF(t, handshakePolicy)
	refused := 0
	for i, s := range handshakeSeeds {
		v := w.CheckTLSHandshake(s.listener, s.remote)
		if v.Blocked() == s.admitted {
			t.Errorf("seed %d %s %s: verdict %+v, want admitted=%v", i, s.listener, s.remote, v, s.admitted)
		}
		if !s.admitted {
			refused++
			if v.Rule != RuleTLS || v.Reason != "tls_handshake_rate" || v.Code != CodeConnectionRateExceeded {
				t.Errorf("seed %d: verdict %+v", i, v)
			}
		}
	}
	evs := w.events.take()
	if len(evs) != refused {
		t.Fatalf("%d events for %d refusals: %+v", len(evs), refused, evs)
	}
	for _, e := range evs {
		if e.Stage != StageAccept || e.Rule != RuleTLS || e.Reason != "tls_handshake_rate" || !e.Enforced || e.RemoteIP == "" || e.Listener == "" {
			t.Errorf("event %+v", e)
		}
	}
	if e := evs[1]; e.Listener != "tls" || e.Limit != 2 || !strings.Contains(e.Detail, "listeners.tls.tls_handshakes_per_ip 2/min (burst 2)") {
		t.Errorf("event of the tls listener: %+v", e)
	}
	counts := map[Action]uint64{}
	for _, c := range w.Counters() {
		if c.Rule == RuleTLS {
			counts[c.Action] += c.N
		}
	}
	if counts[Allow] != uint64(len(handshakeSeeds)-refused) || counts[Disconnect] != uint64(refused) {
		t.Errorf("counters %v, want %d admitted and %d refused", counts, len(handshakeSeeds)-refused, refused)
	}
	// The budget refills at the rate: one more a minute later (3/min).
	w.clock.Add(20 * time.Second)
	if v := w.CheckTLSHandshake("tcp", "192.0.2.1:2000"); v.Blocked() {
		t.Errorf("after a refill: %+v", v)
	}
	if v := w.CheckTLSHandshake("tcp", "192.0.2.1:2001"); !v.Blocked() {
		t.Error("two handshakes after one refill")
	}
}

// TestTLSHandshakeBudgetAcrossReloads: a reload that leaves a section's
// settings alone keeps its budgets (a reload must not refill an attacker's
// bucket); one that changes them starts afresh. Sections a reload removed
// are forgotten, so the table stays bounded by the policy.
func TestTLSHandshakeBudgetAcrossReloads(t *testing.T) {
	w := newTestWAF(t, handshakePolicy)
	spend := func(listener string) int {
		n := 0
		for w.CheckTLSHandshake(listener, "192.0.2.9:1").Action == Allow {
			n++
			if n > 100 {
				t.Fatal("no limit")
			}
		}
		return n
	}
	if n := spend("tcp"); n != 3 {
		t.Fatalf("burst %d, want 3", n)
	}
	spend("tls")
	reload := func(extra string) {
		t.Helper()
		p, err := ParsePolicy([]byte(testIdentity+extra), "reload.yaml")
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Reload(p); err != nil {
			t.Fatal(err)
		}
	}
	reload(handshakePolicy + "mode: detection_only\n")
	if v := w.CheckTLSHandshake("tcp", "192.0.2.9:1"); v.Action != Allow {
		t.Fatalf("detection_only returned %+v", v)
	}
	if e := w.events.take(); len(e) == 0 || e[len(e)-1].Enforced || e[len(e)-1].Reason != "tls_handshake_rate" {
		t.Fatalf("detection_only: the refusal must be recorded, not enforced: %+v", e)
	}
	reload(handshakePolicy) // unchanged sections: still spent
	if v := w.CheckTLSHandshake("tcp", "192.0.2.9:1"); !v.Blocked() {
		t.Error("a reload refilled the connections budget")
	}
	if v := w.CheckTLSHandshake("tls", "192.0.2.9:1"); !v.Blocked() {
		t.Error("a reload refilled the tls listener's budget")
	}
	reload("connections: {tls_handshakes_per_ip: 3/min, tls_handshake_burst: 4}\n") // changed; the tls section is gone
	if n := spend("tcp"); n != 4 {
		t.Errorf("after changing the section: burst %d, want a fresh 4", n)
	}
	if n := spend("tls"); n != 0 { // now under connections, spent above
		t.Errorf("tls listener without its section: %d more, want 0", n)
	}
	w.st.handshakes.mu.Lock()
	n := len(w.st.handshakes.m)
	w.st.handshakes.mu.Unlock()
	if n != 1 {
		t.Errorf("%d handshake limiters held for a policy with one section", n)
	}
}

// TestCertificateIdentityCandidates: a certificate names one identity; any
// other count of values in the configured field is refused, the several
// values with their own reason, whatever their order.
func TestCertificateIdentityCandidates(t *testing.T) {
	two := []string{"dev3", "backend"}
	tests := []struct {
		name   string
		field  string
		tls    TLSInfo
		reason string // "" = authenticated as want
		want   string
	}{
		{"one CN", "cn", TLSInfo{CommonName: "dev3", CommonNames: []string{"dev3"}}, "", "dev3"},
		{"CommonName only (an adapter without CommonNames)", "cn", TLSInfo{CommonName: "dev3"}, "", "dev3"},
		{"two CNs", "cn", TLSInfo{CommonNames: two}, "certificate_identity_ambiguous", ""},
		{"two CNs, CommonName set by a careless adapter", "cn", TLSInfo{CommonName: "backend", CommonNames: two}, "certificate_identity_ambiguous", ""},
		{"the same CN twice", "cn", TLSInfo{CommonNames: []string{"dev3", "dev3"}}, "certificate_identity_ambiguous", ""},
		{"no CN", "cn", TLSInfo{DNSNames: []string{"dev3"}}, "certificate_identity_invalid", ""},
		{"one DNS SAN", "san_dns", TLSInfo{CommonNames: two, DNSNames: []string{"dev3"}}, "", "dev3"},
		{"two DNS SANs", "san_dns", TLSInfo{DNSNames: []string{"dev3", "backend"}}, "certificate_identity_ambiguous", ""},
		{"two e-mail SANs", "san_email", TLSInfo{Emails: []string{"dev3@example.com", "backend@example.com"}}, "certificate_identity_ambiguous", ""},
		{"two URI SANs", "san_uri", TLSInfo{URIs: []string{"urn:dev3", "urn:backend"}}, "certificate_identity_ambiguous", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := newTestWAF(t, "")
			if err := w.Reload(mustPolicy(t, strings.Replace(testIdentity, "identity: cn", "identity: "+tc.field, 1))); err != nil {
				t.Fatal(err)
			}
			info := tc.tls
			info.Verified = true
			c := &Client{ID: "x", Listener: "tls", RemoteAddr: "192.0.2.7:1", RemoteIP: netip.MustParseAddr("192.0.2.7"), Protocol: MQTT5, TLS: &info}
			v := w.Connect(&Connect{Client: c, Clean: true, Keepalive: 30})
			if tc.reason == "" {
				if v.Blocked() || c.Username != tc.want || c.Auth != AuthCertificate {
					t.Fatalf("verdict %+v, identity %q (%s), want %q", v, c.Username, c.Auth, tc.want)
				}
				return
			}
			if !v.Blocked() || v.Reason != tc.reason || v.Code != CodeNotAuthorized || c.Username != "" {
				t.Fatalf("verdict %+v, identity %q; want %s", v, c.Username, tc.reason)
			}
			evs := w.events.take()
			if len(evs) != 1 || evs[0].Rule != "identity.authenticate" || evs[0].Reason != tc.reason {
				t.Fatalf("events %+v", evs)
			}
			if tc.reason == "certificate_identity_ambiguous" && (!strings.Contains(evs[0].Detail, "needs exactly one") || evs[0].Value < 2) {
				t.Errorf("detail %q value %d", evs[0].Detail, evs[0].Value)
			}
		})
	}
}

func mustPolicy(t testing.TB, doc string) *Policy {
	t.Helper()
	p, err := ParsePolicy([]byte(doc), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// BenchmarkCheckTLSHandshake: the cost of the handshake check per
// handshake (the seed addresses, round robin), admitted and refused,
// against the accept check every socket already pays (Open and Close).
// Both are small beside a handshake's signature (about 1 ms for RSA-2048).
//
// go test -run '^$' -bench BenchmarkCheckTLSHandshake ./mqttwaf/
func BenchmarkCheckTLSHandshake(b *testing.B) {
	for _, bc := range []struct{ name, policy string }{
		{"accept-baseline", ""},
		{"admitted", "connections: {tls_handshakes_per_ip: 1000000/s}\n"},
		{"refused", "connections: {tls_handshakes_per_ip: 1/d, tls_handshake_burst: 1}\n"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			w := newTestWAF(b, bc.policy)
			for _, s := range handshakeSeeds { // spend the refused budgets
				w.CheckTLSHandshake(s.listener, s.remote)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				s := handshakeSeeds[i%len(handshakeSeeds)]
				if bc.name == "accept-baseline" {
					if !w.Open(s.listener, s.remote).Blocked() {
						w.Close(s.remote)
					}
					continue
				}
				w.CheckTLSHandshake(s.listener, s.remote)
			}
		})
	}
}

// TestTLSHandshakeRefusedForBannedAddress: a banned address costs no
// handshake.
func TestTLSHandshakeRefusedForBannedAddress(t *testing.T) {
	w := newTestWAF(t, handshakePolicy)
	target, err := ratelimit.ParseTarget("ip:192.0.2.0/24")
	if err != nil {
		t.Fatal(err)
	}
	now := w.clock.Now()
	if err := w.Bans().Add(now, ratelimit.Ban{Target: target, Reason: "operator", Since: now, Until: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if v := w.CheckTLSHandshake("tcp", "192.0.2.77:4000"); v.Reason != "banned" || v.Code != CodeBanned {
		t.Fatalf("banned address: %+v", v)
	}
	if v := w.CheckTLSHandshake("tcp", "198.51.100.1:4000"); v.Blocked() {
		t.Fatalf("another address: %+v", v)
	}
}
