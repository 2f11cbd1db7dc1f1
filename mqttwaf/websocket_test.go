package mqttwaf

import (
	"net/url"
	"strings"
	"testing"
)

// Policies the WebSocket seeds run against.
const (
	wsBroker   = "connections: {allowed_hosts: [broker.example]}\n"
	wsAnyHost  = `connections: {allowed_hosts: ["*"]}` + "\n"
	wsOrigins  = `connections: {allowed_origins: ["https://app.example", "http://[::1]:8080"]}` + "\n"
	wsIDNA     = `connections: {allowed_hosts: [bücher.example., "[2001:db8::1]", 192.0.2.10]}` + "\n"
	wsListener = "listeners: {ws: {allowed_hosts: [broker.example]}}\n"
)

// wsSeeds is shared by TestCheckWebSocket, FuzzCheckWebSocket and
// BenchmarkCheckWebSocket. Requests are on listener "ws" unless listener
// says otherwise; want is the refusal reason, "" for allowed.
var wsSeeds = []struct {
	name, policy, listener, host string
	origins                      []string
	want, detail                 string // detail: a substring of the event's detail
}{
	// The default: this machine only.
	{name: "device by IP", host: "127.0.0.1:1883"},
	{name: "no port", host: "127.0.0.1"},
	{name: "localhost", host: "localhost:8080"},
	{name: "case and trailing dot", host: "LocalHost.:8080"},
	{name: "IPv6 loopback", host: "[::1]:80"},
	{name: "IPv6 without brackets", host: "::1"},
	{name: "IPv6 long form", host: "[0:0:0:0:0:0:0:1]"},
	{name: "IPv4-mapped loopback", host: "[::ffff:127.0.0.1]:80"},
	{name: "DNS rebinding", host: "evil.example:1883", origins: []string{"http://evil.example:1883"},
		want: "host_not_allowed", detail: `Host "evil.example" is not in connections.allowed_hosts`},
	{name: "unknown host without Origin", host: "evil.example", want: "host_not_allowed"},
	{name: "loopback suffix", host: "localhost.evil.example", want: "host_not_allowed"},
	{name: "other loopback address", host: "127.0.0.2", want: "host_not_allowed"},
	{name: "short IPv4", host: "127.1", want: "host_not_allowed", detail: "not a host name"},
	{name: "empty host", host: "", want: "host_not_allowed"},
	{name: "bad port", host: "localhost:99999", want: "host_not_allowed"},
	{name: "port not a number", host: "localhost:http", want: "host_not_allowed"},
	{name: "control characters", host: "local\r\nhost", want: "host_not_allowed", detail: `Host "local\r\nhost"`},
	{name: "long host", host: strings.Repeat("a", 300) + ".example", want: "host_not_allowed", detail: `"` + strings.Repeat("a", 64) + `"...`},
	{name: "page on localhost, other port", host: "127.0.0.1", origins: []string{"http://localhost:3000"}},
	{name: "https page", host: "127.0.0.1", origins: []string{"https://127.0.0.1"}},
	{name: "origin case", host: "127.0.0.1", origins: []string{"HTTP://LOCALHOST"}},
	{name: "origin with slash", host: "127.0.0.1", origins: []string{"http://localhost/"}},
	{name: "cross-site page", host: "127.0.0.1", origins: []string{"http://evil.example"},
		want: "origin_not_allowed", detail: `Origin "http://evil.example" is not allowed by connections.allowed_origins`},
	{name: "null origin", host: "127.0.0.1", origins: []string{"null"}, want: "origin_not_allowed"},
	{name: "file origin", host: "127.0.0.1", origins: []string{"file://"}, want: "origin_not_allowed"},
	{name: "extension origin", host: "127.0.0.1", origins: []string{"chrome-extension://abcdef"}, want: "origin_not_allowed"},
	{name: "two origins", host: "127.0.0.1", origins: []string{"http://localhost", "http://localhost"}, want: "origin_not_allowed"},
	{name: "empty origin", host: "127.0.0.1", origins: []string{""}, want: "origin_not_allowed"},
	{name: "origin with path", host: "127.0.0.1", origins: []string{"http://localhost/x"}, want: "origin_not_allowed"},
	{name: "origin with user", host: "127.0.0.1", origins: []string{"http://evil@localhost"}, want: "origin_not_allowed"},

	// allowed_hosts names the broker.
	{name: "named broker", policy: wsBroker, host: "broker.example:443"},
	{name: "named broker, case and dot", policy: wsBroker, host: "Broker.Example."},
	{name: "named broker, its page", policy: wsBroker, host: "broker.example", origins: []string{"https://broker.example:8443"}},
	{name: "named broker, by IP", policy: wsBroker, host: "127.0.0.1", want: "host_not_allowed"},
	{name: "named broker, localhost page", policy: wsBroker, host: "broker.example", origins: []string{"http://localhost"}, want: "origin_not_allowed"},

	// "*": DNS rebinding re-opened, other sites still refused.
	{name: "any host", policy: wsAnyHost, host: "evil.example"},
	{name: "any host, same-host page", policy: wsAnyHost, host: "evil.example:1883", origins: []string{"http://evil.example:8080"}},
	{name: "any host, not a host name", policy: wsAnyHost, host: "127.1"},
	{name: "any host, not a host name, a page", policy: wsAnyHost, host: "127.1", origins: []string{"http://127.0.0.1"}, want: "origin_not_allowed"},
	{name: "any host, other page", policy: wsAnyHost, host: "broker.example", origins: []string{"https://evil.example"}, want: "origin_not_allowed"},

	// allowed_origins replaces the default origins.
	{name: "listed origin", policy: wsOrigins, host: "localhost", origins: []string{"https://app.example"}},
	{name: "listed origin, default port", policy: wsOrigins, host: "localhost", origins: []string{"https://app.example:443"}},
	{name: "listed IPv6 origin", policy: wsOrigins, host: "localhost", origins: []string{"http://[::1]:8080"}},
	{name: "listed origin, other port", policy: wsOrigins, host: "localhost", origins: []string{"https://app.example:8443"}, want: "origin_not_allowed"},
	{name: "listed origin, other scheme", policy: wsOrigins, host: "localhost", origins: []string{"http://app.example"}, want: "origin_not_allowed"},
	{name: "unlisted loopback page", policy: wsOrigins, host: "localhost", origins: []string{"http://localhost"}, want: "origin_not_allowed"},
	{name: "listed origin, wrong host", policy: wsOrigins, host: "evil.example", origins: []string{"https://app.example"}, want: "host_not_allowed"},

	// Internationalised names and addresses.
	{name: "A-label", policy: wsIDNA, host: "xn--bcher-kva.example:80"},
	{name: "U-label", policy: wsIDNA, host: "BÜCHER.example"},
	{name: "IPv6 entry", policy: wsIDNA, host: "[2001:db8::1]:8883"},
	{name: "IPv6 entry without brackets", policy: wsIDNA, host: "2001:db8:0::1"},
	{name: "IPv4 entry", policy: wsIDNA, host: "192.0.2.10:80"},
	{name: "replaced default", policy: wsIDNA, host: "localhost", want: "host_not_allowed"},

	// A listener section overrides connections for that listener only.
	{name: "listener override", policy: wsListener, host: "broker.example"},
	{name: "listener override refuses", policy: wsListener, host: "127.0.0.1", want: "host_not_allowed", detail: "listeners.ws.allowed_hosts"},
	{name: "other listener", policy: wsListener, listener: "wss", host: "127.0.0.1"},
}

// TestCheckWebSocket: each seed's Host and Origin are allowed or refused as
// the policy says, and a refusal is one accept-stage event with the
// listener, the remote IP and a detail naming the policy key.
func TestCheckWebSocket(t *testing.T) {
	for _, tc := range wsSeeds {
		t.Run(tc.name, func(t *testing.T) {
			w := newTestWAF(t, tc.policy)
			listener := tc.listener
			if listener == "" {
				listener = "ws"
			}
			v := w.CheckWebSocket(listener, "192.0.2.7:50123", tc.host, tc.origins)
			evs := w.events.take()
			if v.Reason != tc.want || v.Blocked() != (tc.want != "") {
				t.Fatalf("CheckWebSocket(%q, %q) = %+v, want reason %q", tc.host, tc.origins, v, tc.want)
			}
			if tc.want == "" {
				if len(evs) != 0 {
					t.Fatalf("allowed, yet events %+v", evs)
				}
				return
			}
			if len(evs) != 1 {
				t.Fatalf("events %+v, want one", evs)
			}
			e := evs[0]
			if e.Stage != StageAccept || e.Rule != "connections.websocket" || e.Reason != tc.want || !e.Enforced ||
				e.Listener != listener || e.RemoteIP != "192.0.2.7" {
				t.Fatalf("event %+v", e)
			}
			if !strings.Contains(e.Detail, tc.detail) {
				t.Fatalf("detail %q does not contain %q", e.Detail, tc.detail)
			}
		})
	}
}

// TestCheckWebSocketDetectionOnly: in detection_only a refusal is recorded,
// not enforced.
func TestCheckWebSocketDetectionOnly(t *testing.T) {
	w := newTestWAF(t, "mode: detection_only\n")
	if v := w.CheckWebSocket("ws", "192.0.2.7:1", "evil.example", []string{"http://evil.example"}); v.Blocked() {
		t.Fatalf("detection_only blocked: %+v", v)
	}
	evs := w.events.take()
	if len(evs) != 1 || evs[0].Enforced || evs[0].Reason != "host_not_allowed" {
		t.Fatalf("events %+v, want one unenforced host_not_allowed", evs)
	}
}

// FuzzCheckWebSocket: no panic; with the default policy an allowed request
// named a loopback host and, if it had an Origin, an http(s) one on a
// loopback host; an event's detail is short and has no control characters
// whatever the client sent.
func FuzzCheckWebSocket(f *testing.F) {
	for _, tc := range wsSeeds {
		origin := ""
		if len(tc.origins) > 0 {
			origin = tc.origins[0]
		}
		f.Add(tc.host, origin)
	}
	p := Defaults()
	loopback := map[hostKey]bool{}
	for _, h := range loopbackHosts() {
		k, err := parseHostEntry(h)
		if err != nil {
			f.Fatal(err)
		}
		loopback[k] = true
	}
	f.Fuzz(func(t *testing.T, host, origin string) {
		var origins []string
		if origin != "" {
			origins = []string{origin}
		}
		v := p.checkWebSocket("ws", host, origins)
		if !v.Blocked() {
			h, _, _ := splitHostPort(host)
			k, err := parseHost(h)
			if err != nil || !loopback[k] {
				t.Fatalf("Host %q allowed: %v %v", host, k, err)
			}
			if origin != "" {
				o, err := parseOrigin(origin)
				if err != nil || !loopback[o.host] || o.scheme != "http" && o.scheme != "https" {
					t.Fatalf("Origin %q allowed: %+v %v", origin, o, err)
				}
			}
			return
		}
		if len(v.Detail) > 400 || strings.ContainsFunc(v.Detail, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			t.Fatalf("detail %q", v.Detail)
		}
	})
}

// BenchmarkCheckWebSocket measures the check of one upgrade request (over
// the seeds, each with its own policy) against the check it replaces,
// gorilla's default: allow requests without Origin, else parse the Origin
// and compare its host with Host.
func BenchmarkCheckWebSocket(b *testing.B) {
	policies := make([]*Policy, len(wsSeeds))
	for i, tc := range wsSeeds {
		p, err := ParsePolicy([]byte(tc.policy), "bench.yaml")
		if err != nil {
			b.Fatal(err)
		}
		policies[i] = p.WithDefaults()
	}
	perRequest := func(b *testing.B) {
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(wsSeeds)), "ns/request")
	}
	b.Run("policy", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			for i, tc := range wsSeeds {
				_ = policies[i].checkWebSocket("ws", tc.host, tc.origins)
			}
		}
		perRequest(b)
	})
	// The common request: a device (no Origin) by address, default policy.
	b.Run("device", func(b *testing.B) {
		b.ReportAllocs()
		p := policies[0]
		for b.Loop() {
			if p.checkWebSocket("ws", wsSeeds[0].host, nil).Blocked() {
				b.Fatal("refused")
			}
		}
	})
	b.Run("baseline=gorilla-same-origin", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			for _, tc := range wsSeeds {
				if len(tc.origins) == 0 {
					continue
				}
				u, err := url.Parse(tc.origins[0])
				_ = err == nil && strings.EqualFold(u.Host, tc.host)
			}
		}
		perRequest(b)
	})
}
