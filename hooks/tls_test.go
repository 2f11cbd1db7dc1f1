package hooks

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"math/big"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/mochi-mqtt/server/v2/listeners"

	"github.com/mqttwaf/mqttwaf/mqttwaf"
)

// oidCN is the X.500 commonName attribute (2.5.4.3).
var oidCN = asn1.ObjectIdentifier{2, 5, 4, 3}

// rawSubject encodes a subject whose RDNs are given as lists of common
// names: [][]string{{"dev3"}, {"backend"}} is "CN=dev3, CN=backend" (two
// RDNs), [][]string{{"dev3", "backend"}} is "CN=dev3+CN=backend" (one
// multi-valued RDN). pkix.Name cannot express either.
func rawSubject(t testing.TB, rdns [][]string) []byte {
	t.Helper()
	var seq pkix.RDNSequence
	for _, rdn := range rdns {
		var set pkix.RelativeDistinguishedNameSET
		for _, cn := range rdn {
			set = append(set, pkix.AttributeTypeAndValue{Type: oidCN, Value: cn})
		}
		seq = append(seq, set)
	}
	der, err := asn1.Marshal(seq)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// issueCert returns a client certificate signed by p's CA (valid for an
// hour, client authentication), after mod has changed its template.
func (p *testPKI) issueCert(t testing.TB, mod func(*x509.Certificate)) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(100 + serial.Add(1)), Subject: pkix.Name{CommonName: "dev3"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if mod != nil {
		mod(tmpl)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// dialTLSV5 connects an MQTT 5 client over TLS to addr with cert (nil: no
// client certificate) from the local address local ("" for any).
func dialTLSV5(t testing.TB, addr, local string, pool *x509.CertPool, cert *tls.Certificate, cp *paho.Connect) (*v5, error) {
	t.Helper()
	cfg := &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	d := &net.Dialer{Timeout: 5 * time.Second}
	if local != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(local)}
	}
	conn, err := tls.DialWithDialer(d, "tcp", addr, cfg)
	if err != nil {
		return nil, err
	}
	return connectV5(t, conn, cp)
}

// TestOneIdentityPerCertificate: a certificate whose subject has several
// CNs (as separate RDNs or in one multi-valued RDN), or several SANs of the
// configured kind, is refused at CONNECT (0x87,
// certificate_identity_ambiguous) instead of authenticating as whichever
// CN crypto/x509 keeps (the last: "CN=dev3, CN=backend" was backend, the
// raw-view role).
func TestOneIdentityPerCertificate(t *testing.T) {
	b := fleetBroker(t, "", brokerOpts{tls: true})
	tests := []struct {
		name string
		rdns [][]string
	}{
		{"two RDNs, victim last", [][]string{{"dev3"}, {"backend"}}},
		{"two RDNs, victim first", [][]string{{"backend"}, {"dev3"}}},
		{"multi-valued RDN", [][]string{{"dev3", "backend"}}},
		{"the same CN twice", [][]string{{"dev3"}, {"dev3"}}},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := b.events.count("identity.authenticate", "certificate_identity_ambiguous")
			cert := b.pki.issueCert(t, func(c *x509.Certificate) { c.RawSubject = rawSubject(t, tc.rdns) })
			id := "dev3-" + string(rune('a'+i))
			c, err := dialTLSV5(t, b.tlsAddr, "", b.tlsCA, &cert, &paho.Connect{ClientID: id, CleanStart: true})
			if err == nil {
				cl, _ := b.server.Clients.Get(id)
				t.Fatalf("connected as %q", cl.Properties.Username)
			}
			if c == nil || c.connack == nil || c.connack.ReasonCode != byte(mqttwaf.CodeNotAuthorized) {
				t.Fatalf("want CONNACK 0x87, got %v", err)
			}
			b.events.waitCount(t, "identity.authenticate", "certificate_identity_ambiguous", before+1, 2*time.Second)
		})
	}
	// One CN still authenticates.
	cert := b.pki.issueCert(t, nil)
	if _, err := dialTLSV5(t, b.tlsAddr, "", b.tlsCA, &cert, &paho.Connect{ClientID: "dev3-ok", CleanStart: true}); err != nil {
		t.Fatalf("one CN: %v", err)
	}
	e, _ := b.events.find("identity.authenticate", "certificate_identity_ambiguous")
	if !strings.Contains(e.Detail, "2 CN") {
		t.Errorf("event detail %q should say how many CNs", e.Detail)
	}
}

// addTLSListener adds a TLS listener id with cfg to a running test broker
// and returns its address.
func addTLSListener(t testing.TB, b *testBroker, id string, cfg *tls.Config) string {
	t.Helper()
	l, err := NewListener(b.waf, listeners.Config{ID: id, Type: TypeTCP, Address: "127.0.0.1:0", TLSConfig: cfg})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.server.AddListener(l); err != nil {
		t.Fatal(err)
	}
	b.server.Listeners.Serve(id, b.server.EstablishConnection)
	return l.Address()
}

// handshake opens a TLS connection to addr that presents cert whatever the
// server asks for (nil: no certificate), as client, and returns it (nil if
// the handshake failed on the client's side too) with the error.
func handshake(addr string, pool *x509.CertPool, cert *tls.Certificate, mod func(*tls.Config)) (*tls.Conn, error) {
	cfg := &tls.Config{RootCAs: pool, ServerName: "127.0.0.1",
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			if cert == nil {
				return &tls.Certificate{}, nil
			}
			return cert, nil
		}}
	if mod != nil {
		mod(cfg)
	}
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return nil, err
	}
	// TLS 1.3: the client is done before the server has checked its
	// certificate; the server's verdict arrives with the first read.
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = c.Read(make([]byte, 1))
	return c, err
}

// TestCertificateFailureReasons: every way a client certificate can fail
// the handshake is reported with its own reason (rule connections.tls), once,
// on TCP and WebSocket TLS listeners alike; what is not a certificate
// problem is tls_handshake_failed. Before, all of them were
// connections.protocol malformed_connect (0x81).
func TestCertificateFailureReasons(t *testing.T) {
	b := startBroker(t, "", brokerOpts{tls: true})
	required := b.pki.serverTLS(t)
	required.ClientAuth = tls.RequireAndVerifyClientCert
	requiredAddr := addTLSListener(t, b, "tls-required", required)
	wssAddr := addWSS(t, b)

	hour := time.Hour
	now := time.Now()
	valid := func(from, to time.Duration) func(*x509.Certificate) {
		return func(c *x509.Certificate) { c.NotBefore, c.NotAfter = now.Add(from), now.Add(to) }
	}
	otherCA := newPKI(t)
	tests := []struct {
		name     string
		listener string
		addr     string
		cert     *tls.Certificate
		client   func(*tls.Config) // changes the client's TLS configuration
		raw      []byte            // sent over plain TCP instead of a TLS handshake
		reason   string
		code     mqttwaf.ReasonCode
	}{
		{name: "expired", listener: "tls", cert: ptr(b.pki.issueCert(t, valid(-2*hour, -hour))), reason: "certificate_expired", code: 0x87},
		{name: "not yet valid", listener: "tls", cert: ptr(b.pki.issueCert(t, valid(hour, 2*hour))), reason: "certificate_not_yet_valid", code: 0x87},
		{name: "unknown CA", listener: "tls", cert: ptr(otherCA.issueCert(t, nil)), reason: "certificate_unknown_ca", code: 0x87},
		{name: "server certificate as client certificate", listener: "tls",
			cert:   ptr(b.pki.issueCert(t, func(c *x509.Certificate) { c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth} })),
			reason: "certificate_bad_usage", code: 0x87},
		{name: "no certificate where one is required", listener: "tls-required", reason: "no_certificate", code: 0x87},
		{name: "expired, TLS 1.2", listener: "tls-required", cert: ptr(b.pki.issueCert(t, valid(-2*hour, -hour))),
			client: func(c *tls.Config) { c.MaxVersion = tls.VersionTLS12 }, reason: "certificate_expired", code: 0x87},
		{name: "expired over wss", listener: "wss", cert: ptr(b.pki.issueCert(t, valid(-2*hour, -hour))), reason: "certificate_expired", code: 0x87},
		{name: "unknown CA over wss", listener: "wss", cert: ptr(otherCA.issueCert(t, nil)), reason: "certificate_unknown_ca", code: 0x87},
		{name: "TLS 1.1", listener: "tls", client: func(c *tls.Config) { c.MinVersion, c.MaxVersion = tls.VersionTLS10, tls.VersionTLS11 },
			reason: "tls_handshake_failed", code: 0x81},
		{name: "MQTT without TLS", listener: "tls", raw: []byte{0x10, 0x0d, 0, 4, 'M', 'Q', 'T', 'T', 4, 2, 0, 30, 0, 1, 'x'},
			reason: "tls_handshake_failed", code: 0x81},
		{name: "MQTT without TLS over wss", listener: "wss", raw: []byte("GET /mqtt HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"),
			reason: "tls_handshake_failed", code: 0x81},
	}
	addrs := map[string]string{"tls": b.tlsAddr, "tls-required": requiredAddr, "wss": wssAddr}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := b.events.count(mqttwaf.RuleTLS, tc.reason)
			addr := addrs[tc.listener]
			if tc.raw != nil {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				if _, err := c.Write(tc.raw); err != nil {
					t.Fatal(err)
				}
			} else {
				c, err := handshake(addr, b.tlsCA, tc.cert, tc.client)
				if err == nil {
					t.Fatal("handshake and read succeeded")
				}
				if c != nil {
					defer c.Close()
				}
			}
			b.events.waitCount(t, mqttwaf.RuleTLS, tc.reason, before+1, 5*time.Second)
			var e mqttwaf.Event
			for _, ev := range b.events.all() {
				if ev.Rule == mqttwaf.RuleTLS && ev.Reason == tc.reason {
					e = ev // the last one
				}
			}
			if e.Listener != tc.listener || e.RemoteIP != "127.0.0.1" || e.Code != tc.code || e.Stage != mqttwaf.StageAccept || e.Action != mqttwaf.Disconnect {
				t.Errorf("event %+v", e)
			}
			if tc.cert != nil && tc.reason != "tls_handshake_failed" && !strings.Contains(e.Detail, "serial") {
				t.Errorf("detail %q does not name the certificate", e.Detail)
			}
		})
	}
	// One event per failure, and none of them is a protocol error.
	time.Sleep(100 * time.Millisecond)
	n := 0
	for _, e := range b.events.all() {
		switch {
		case e.Rule == mqttwaf.RuleTLS:
			n++
		case e.Stage == mqttwaf.StageAccept:
			t.Errorf("other event before CONNECT: %+v", e)
		}
	}
	if n != len(tests) {
		t.Errorf("%d connections.tls events for %d failed handshakes: %v", n, len(tests), b.events.all())
	}
	// A good certificate still connects on every listener.
	cert := b.pki.issueCert(t, nil)
	for _, addr := range []string{b.tlsAddr, requiredAddr} {
		if _, err := dialTLSV5(t, addr, "", b.tlsCA, &cert, &paho.Connect{ClientID: "good-" + addr, CleanStart: true}); err != nil {
			t.Errorf("%s: %v", addr, err)
		}
	}
}

func ptr[T any](v T) *T { return &v }

// TestTLSHandshakeFloodLimitedPerAddress: one address may start
// connections.tls_handshakes_per_ip handshakes; the rest are aborted when
// their ClientHello arrives, before the server's key exchange (the client
// never sees the server's certificate), each with one event, and counted.
// Another address still connects.
func TestTLSHandshakeFloodLimitedPerAddress(t *testing.T) {
	const budget, attempts = 5, 20
	b := startBroker(t, "connections: {tls_handshakes_per_ip: 5/min}\n", brokerOpts{tls: true})
	var serverCerts atomic.Int32
	ok, refused := 0, 0
	for i := 0; i < attempts; i++ {
		cfg := &tls.Config{RootCAs: b.tlsCA, ServerName: "127.0.0.1",
			VerifyConnection: func(tls.ConnectionState) error { serverCerts.Add(1); return nil }}
		d := &net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
		c, err := tls.DialWithDialer(d, "tcp", b.tlsAddr, cfg)
		if err != nil {
			if !strings.Contains(err.Error(), "internal error") {
				t.Errorf("handshake %d: %v, want the internal_error alert", i, err)
			}
			refused++
			continue
		}
		ok++
		_ = c.Close()
	}
	if ok != budget || refused != attempts-budget {
		t.Fatalf("%d handshakes completed, %d refused; want %d and %d", ok, refused, budget, attempts-budget)
	}
	if n := serverCerts.Load(); n != budget {
		t.Errorf("the client saw the server's certificate %d times, want %d: refused handshakes must end before the server's key exchange", n, budget)
	}
	b.events.waitCount(t, mqttwaf.RuleTLS, "tls_handshake_rate", attempts-budget, 2*time.Second)
	for _, e := range b.events.all() {
		if e.Rule == mqttwaf.RuleTLS && (e.Reason != "tls_handshake_rate" || e.RemoteIP != "127.0.0.2" || e.Listener != "tls" || e.Code != 0x9F || e.Limit != budget) {
			t.Errorf("event %+v", e)
		}
	}
	counts := map[mqttwaf.Action]uint64{}
	for _, c := range b.waf.Counters() {
		if c.Rule == mqttwaf.RuleTLS {
			counts[c.Action] += c.N
		}
	}
	if counts[mqttwaf.Allow] != budget || counts[mqttwaf.Disconnect] != attempts-budget {
		t.Errorf("counters %v: want %d admitted and %d refused", counts, budget, attempts-budget)
	}
	// A secure WebSocket listener without a listeners section shares the
	// address's budget: refused too, with one event and no other.
	wss := addWSS(t, b)
	d := &net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
	if c, err := tls.DialWithDialer(d, "tcp", wss, &tls.Config{RootCAs: b.tlsCA, ServerName: "127.0.0.1"}); err == nil {
		_ = c.Close()
		t.Fatal("wss handshake from the flooding address completed")
	}
	b.events.waitCount(t, mqttwaf.RuleTLS, "tls_handshake_rate", attempts-budget+1, 2*time.Second)
	// Another address is not affected, over TLS and MQTT.
	for i := 0; i < budget; i++ {
		c, err := dialTLSV5(t, b.tlsAddr, "127.0.0.1", b.tlsCA, nil, &paho.Connect{ClientID: fmt.Sprintf("legit-%d", i), CleanStart: true})
		if err != nil {
			t.Fatalf("127.0.0.1 during the flood: %v", err)
		}
		_ = c.Disconnect(&paho.Disconnect{})
	}
	time.Sleep(100 * time.Millisecond)
	if n, all := b.events.count(mqttwaf.RuleTLS, ""), len(b.events.all()); n != attempts-budget+1 || all != n {
		t.Errorf("%d connections.tls events of %d, want %d (one per refusal, nothing else): %v", n, all, attempts-budget+1, b.events.all())
	}
}

// rsaServerTLS is serverTLS with an RSA-2048 server key: the common
// deployment, and the expensive one to sign with (a flood of handshakes
// spends the server's CPU on those signatures).
func (p *testPKI) rsaServerTLS(tb testing.TB) *tls.Config {
	tb.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(100 + serial.Add(1)), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, p.caKey)
	if err != nil {
		tb.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, MinVersion: tls.VersionTLS12,
		ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: p.pool}
}

// BenchmarkTLSHandshakeFlood measures what one address can do to a TLS
// listener with an RSA-2048 certificate: floodWorkers sockets from
// 127.0.0.2 start handshakes as fast as they can (no client certificate
// needed), while a legitimate client on 127.0.0.1 logs in (TCP, TLS,
// MQTT 5 CONNECT to CONNACK) ten times a second. Reported: the legitimate
// login latency (ns/op is its mean; p50-ms, p99-ms), logins that failed,
// and the handshakes per second the flood completed (flood-hs/s: each cost
// the server a signature) and had refused (refused-hs/s).
//
//	quiet            no flood: the baseline
//	flood/unlimited  tls_handshakes_per_ip 1000000/s: no per-address limit (before)
//	flood/limited    the default, 20/s (after)
//
// go test -run '^$' -bench BenchmarkTLSHandshakeFlood -benchtime 100x ./hooks/
func BenchmarkTLSHandshakeFlood(b *testing.B) {
	const floodWorkers = 32
	for _, bc := range []struct {
		name, policy string
		flood        bool
	}{
		{"quiet", "", false},
		{"flood/unlimited", "connections: {tls_handshakes_per_ip: 1000000/s}\n", true},
		{"flood/limited", "", true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			tb := startBroker(b, bc.policy, brokerOpts{bench: true})
			pki := newPKI(b)
			addr := addTLSListener(b, tb, "tls", pki.rsaServerTLS(b))
			stop := make(chan struct{})
			var completed, refused atomic.Int64
			var wg sync.WaitGroup
			if bc.flood {
				for range floodWorkers {
					wg.Add(1)
					go func() {
						defer wg.Done()
						cfg := &tls.Config{RootCAs: pki.pool, ServerName: "127.0.0.1"}
						d := &net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
						for {
							select {
							case <-stop:
								return
							default:
							}
							c, err := tls.DialWithDialer(d, "tcp", addr, cfg)
							if err != nil {
								refused.Add(1)
								continue
							}
							completed.Add(1)
							_ = c.Close()
						}
					}()
				}
				time.Sleep(500 * time.Millisecond) // let the flood reach its pace
			}
			legit := &net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}}
			cfg := &tls.Config{RootCAs: pki.pool, ServerName: "127.0.0.1"}
			lat := make([]time.Duration, 0, b.N)
			failed := 0
			completed.Store(0)
			refused.Store(0)
			start := time.Now()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				t0 := time.Now()
				conn, err := tls.DialWithDialer(legit, "tcp", addr, cfg)
				if err == nil {
					var c *v5
					if c, err = connectV5(b, conn, &paho.Connect{ClientID: "legit", CleanStart: true}); err == nil {
						lat = append(lat, time.Since(t0))
						_ = c.Disconnect(&paho.Disconnect{})
					}
				}
				if err != nil {
					failed++
				}
				b.StopTimer()
				time.Sleep(time.Until(t0.Add(100 * time.Millisecond))) // a device logs in now and then, not in a loop
				b.StartTimer()
			}
			b.StopTimer()
			elapsed := time.Since(start)
			close(stop)
			wg.Wait()
			slices.Sort(lat)
			pct := func(p float64) float64 {
				if len(lat) == 0 {
					return 0
				}
				return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))]) / float64(time.Millisecond)
			}
			b.ReportMetric(pct(0.50), "p50-ms")
			b.ReportMetric(pct(0.99), "p99-ms")
			b.ReportMetric(float64(failed), "failed-logins")
			b.ReportMetric(float64(completed.Load())/elapsed.Seconds(), "flood-hs/s")
			b.ReportMetric(float64(refused.Load())/elapsed.Seconds(), "refused-hs/s")
		})
	}
}

// TestSeveralCNsGiveNoCNTemplate: where the identity comes from a SAN, a
// subject with several CNs has no {cn}: templates using it match nothing
// (crypto/x509's CommonName, the last CN, would have let the device pick
// whose topics {cn} grants).
func TestSeveralCNsGiveNoCNTemplate(t *testing.T) {
	b := startBroker(t, `identity: {anonymous: {allow: never}, certificate: {identity: san_dns, role: device}}
roles: {device: {publish: ["fleet/{cn}/telemetry", "fleet/{username}/status"]}}
`, brokerOpts{tls: true})
	publish := func(c *v5, topic string) byte {
		t.Helper()
		resp, err := c.publish(t, topic, 1, []byte("{}"))
		if resp == nil {
			t.Fatalf("publish %s: %v", topic, err)
		}
		return resp.ReasonCode
	}
	two := b.pki.issueCert(t, func(c *x509.Certificate) {
		c.RawSubject, c.DNSNames = rawSubject(t, [][]string{{"dev3"}, {"backend"}}), []string{"dev3"}
	})
	c, err := dialTLSV5(t, b.tlsAddr, "", b.tlsCA, &two, &paho.Connect{ClientID: "dev3", CleanStart: true})
	if err != nil {
		t.Fatal(err)
	}
	for topic, want := range map[string]byte{"fleet/backend/telemetry": 0x87, "fleet/dev3/telemetry": 0x87, "fleet/dev3/status": 0} {
		if got := publish(c, topic); got != want {
			t.Errorf("two CNs, %s: 0x%02x, want 0x%02x", topic, got, want)
		}
	}
	one := b.pki.issueCert(t, func(c *x509.Certificate) { c.DNSNames = []string{"dev4"}; c.Subject.CommonName = "dev4" })
	c, err = dialTLSV5(t, b.tlsAddr, "", b.tlsCA, &one, &paho.Connect{ClientID: "dev4", CleanStart: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := publish(c, "fleet/dev4/telemetry"); got != 0 {
		t.Errorf("one CN, its own {cn} topic: 0x%02x", got)
	}
}
