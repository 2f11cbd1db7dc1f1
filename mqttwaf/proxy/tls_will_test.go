package proxy

import (
	"crypto/tls"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/mqttwaf/mqttwaf/mqttwaf"
	"github.com/mqttwaf/mqttwaf/mqttwaf/frame"
	"github.com/mqttwaf/mqttwaf/mqttwaf/testpki"
)

// Over TLS, a verified client certificate is the identity, as in the
// embedded broker: dev3's certificate may use dev3's topics only, and a
// client without one is refused at CONNECT.
func TestTLSCertificateIdentity(t *testing.T) {
	up := startMosquitto(t)
	ca := testpki.NewCA(t, "test CA")
	certPEM, keyPEM := ca.Issue(t, "proxy", true, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	serverCert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	policy := `
identity:
  anonymous: {allow: never}
  certificate: {identity: cn, role: device}
roles:
  device: {publish: ["dev/{username}/#"], subscribe: ["dev/{username}/#"]}
`
	px, ev := startProxy(t, policy, up, func(o *Options) {
		o.TLS = &tls.Config{Certificates: []tls.Certificate{serverCert}, ClientCAs: ca.Pool(),
			ClientAuth: tls.VerifyClientCertIfGiven, MinVersion: tls.VersionTLS12}
	})
	dial := func(cn string) (*v5, error) {
		cfg := &tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS12}
		if cn != "" {
			c, k := ca.Issue(t, cn, false, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
			cert, err := tls.X509KeyPair(c, k)
			if err != nil {
				t.Fatal(err)
			}
			cfg.Certificates = []tls.Certificate{cert}
		}
		nc, err := tls.Dial("tcp", px.Addr(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		return connectV5(t, nc, &paho.Connect{ClientID: "dev3", CleanStart: true})
	}
	dev3, err := dial("dev3")
	if err != nil {
		t.Fatalf("dev3 with its certificate: %v", err)
	}
	subscribe5(t, dev3, 1, "dev/dev3/#")
	if res, err := publish5(t, dev3, &paho.Publish{Topic: "dev/dev4/x", QoS: 1, Payload: []byte("no")}); err == nil && res.ReasonCode != 0x87 {
		t.Fatalf("dev3 publishing as dev4: %+v", res)
	}
	if _, err := publish5(t, dev3, &paho.Publish{Topic: "dev/dev3/x", QoS: 1, Payload: []byte("mine")}); err != nil {
		t.Fatal(err)
	}
	if m := expectMsg(t, dev3.Msgs, 5*time.Second); string(m.Payload) != "mine" {
		t.Fatalf("got %q", m.Payload)
	}
	if e, ok := ev.Find("acl", ""); !ok || e.Username != "dev3" {
		t.Fatalf("acl event %+v: want identity dev3", e)
	}
	if c, err := dial(""); err == nil || c.Connack == nil || c.Connack.ReasonCode < 0x80 {
		t.Fatalf("no certificate, anonymous never: %v %+v", err, c.Connack)
	}
}

// Wills: one that breaks the publish rules refuses the CONNECT; an
// allowed one is published by the broker when the client vanishes; one
// that a reloaded policy now refuses is discarded (the proxy ends the
// session with a normal DISCONNECT).
func TestWills(t *testing.T) {
	up := startMosquitto(t)
	px, _ := startProxy(t, "", up, nil)
	watcher := mustV5(t, up, "watcher", "", "")
	subscribe5(t, watcher, 1, "#")

	if c, err := dialV5(t, px.Addr(), &paho.Connect{ClientID: "w1", CleanStart: true, WillMessage: &paho.WillMessage{Topic: "secret/will", Payload: []byte("x")}}); err == nil || c.Connack == nil || c.Connack.ReasonCode != 0x87 {
		t.Fatalf("forbidden will: %v %+v, want CONNACK 0x87", err, c.Connack)
	}
	vanish := func(id, payload string) {
		t.Helper()
		c := rawDial(t, px.Addr(), 5)
		cp := connect{protoName: "MQTT", level: 5, clean: true, keepalive: 30, clientID: id,
			will: true, willQoS: 1, willTopic: "guest/" + id + "/will", willPayload: []byte(payload)}
		c.send(t, cp.encode())
		if pk := c.next(t); pk[0]>>4 != frame.TypeConnack || pk[3] != 0 {
			t.Fatalf("CONNACK %x", pk)
		}
		_ = c.c.Close() // no DISCONNECT: the broker sends the will, unless the proxy stops it
	}
	vanish("w2", "gone")
	if m := expectMsg(t, watcher.Msgs, 5*time.Second); m.Topic != "guest/w2/will" || string(m.Payload) != "gone" {
		t.Fatalf("got %q %q, want w2's will", m.Topic, m.Payload)
	}
	// A will checked at CONNECT, refused when sent: the policy changed.
	c := rawDial(t, px.Addr(), 5)
	cp := connect{protoName: "MQTT", level: 5, clean: true, keepalive: 30, clientID: "w3",
		will: true, willQoS: 1, willTopic: "guest/w3/will", willPayload: []byte("stale")}
	c.send(t, cp.encode())
	if pk := c.next(t); pk[0]>>4 != frame.TypeConnack || pk[3] != 0 {
		t.Fatalf("CONNACK %x", pk)
	}
	p, err := mqttwaf.ParsePolicy([]byte("roles: {guest: {publish: ['guest/{clientid}/data/#'], subscribe: ['guest/#']}}\n"), "reload.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := px.waf.Reload(p); err != nil {
		t.Fatal(err)
	}
	_ = c.c.Close()
	// Wait until the proxy has ended both of w3's connections.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if n, _ := px.waf.OpenConnections(); n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("w3's connection still open")
		}
	}
	if _, err := publish5(t, watcher, &paho.Publish{Topic: "marker", QoS: 1, Payload: []byte("end")}); err != nil {
		t.Fatal(err)
	}
	if m := expectMsg(t, watcher.Msgs, 5*time.Second); m.Topic != "marker" {
		t.Fatalf("got %q %q before the marker: a refused will was published", m.Topic, m.Payload)
	}
}

// A persistent session resumes through the proxy: the broker keeps it and
// the messages queued while the client was away, and the proxy tells an
// MQTT 5 client the keepalive the policy clamped (Server Keep Alive).
func TestSessionResumptionAndKeepalive(t *testing.T) {
	up := startMosquitto(t)
	px, _ := startProxy(t, "", up, nil)
	open := func(clean bool) (*raw, connack) {
		c := rawDial(t, px.Addr(), 5)
		cp := connect{protoName: "MQTT", level: 5, clean: clean, keepalive: 0, clientID: "persist",
			props: []prop{{propSessionExpiry, appendU32(nil, 300)}}}
		c.send(t, cp.encode())
		pk := c.next(t)
		ca, err := decodeConnack(5, pk)
		if err != nil || ca.code != 0 {
			t.Fatalf("CONNACK %x: %v", pk, err)
		}
		return c, ca
	}
	c, ca := open(true)
	if v, ok := findProp(ca.props, propServerKeepAlive); !ok || propU16(v) != 1200 {
		t.Fatalf("CONNACK properties %v: want Server Keep Alive 1200 (keepalive 0 clamped to connections.max_keepalive)", ca.props)
	}
	c.send(t, rawSubscribe(5, 1, "guest/#", 1))
	if pk := c.next(t); pk[0]>>4 != frame.TypeSuback {
		t.Fatalf("want SUBACK, got %x", pk)
	}
	c.send(t, disconnect(5, 0))
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if n, _ := px.waf.OpenConnections(); n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("connection still open")
		}
	}
	direct := mustV5(t, up, "direct", "", "")
	if _, err := publish5(t, direct, &paho.Publish{Topic: "guest/direct/q", QoS: 1, Payload: []byte("while away")}); err != nil {
		t.Fatal(err)
	}
	c, ca = open(false)
	if !ca.sessionPresent {
		t.Fatal("CONNACK: session not present")
	}
	pk := c.next(t)
	p, err := decodePublish(5, pk)
	if err != nil || p.topic != "guest/direct/q" || string(p.payload) != "while away" {
		t.Fatalf("after resuming: %x (%v)", pk, err)
	}
}

// Close ends every connection; MQTT 5 clients are told (DISCONNECT 0x8B).
func TestCloseTellsClients(t *testing.T) {
	up := startMosquitto(t)
	px, _ := startProxy(t, "", up, nil)
	c := mustV5(t, px.Addr(), "told", "", "")
	if err := px.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case d := <-c.Discon:
		if d.ReasonCode != 0x8B {
			t.Fatalf("DISCONNECT 0x%02X, want 0x8B", d.ReasonCode)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no DISCONNECT")
	}
	if n, _ := px.waf.OpenConnections(); n != 0 {
		t.Fatalf("%d sockets still counted after Close", n)
	}
}

// Session takeover through the proxy: another identity may not take over a
// client ID connected through it (0x85); the same identity may, and the
// connection taken over ends (mosquitto 2.0 closes it without a
// DISCONNECT, directly as through the proxy).
func TestSessionTakeover(t *testing.T) {
	up := startMosquitto(t)
	dir := t.TempDir()
	secretA, hashA, err := mqttwaf.NewDeviceSecret()
	if err != nil {
		t.Fatal(err)
	}
	secretB, hashB, err := mqttwaf.NewDeviceSecret()
	if err != nil {
		t.Fatal(err)
	}
	creds := filepath.Join(dir, "devices.creds")
	if err := os.WriteFile(creds, []byte("a:device:"+hashA+"\nb:device:"+hashB+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := mqttwaf.ParsePolicy([]byte(`
identity: {credentials_file: `+creds+`, anonymous: {allow: never}}
roles: {device: {publish: ["dev/{username}/#"], subscribe: ["dev/{username}/#"]}}
`), "takeover.yaml")
	if err != nil {
		t.Fatal(err)
	}
	px, _ := startProxyWith(t, p, up, nil)
	first := mustV5(t, px.Addr(), "shared", "a", secretA)
	if c, err := dialV5(t, px.Addr(), &paho.Connect{ClientID: "shared", Username: "b", Password: []byte(secretB), CleanStart: true}); err == nil || c.Connack == nil || c.Connack.ReasonCode != 0x85 {
		t.Fatalf("b taking over a's client ID: %v %+v, want CONNACK 0x85", err, c.Connack)
	}
	mustV5(t, px.Addr(), "shared", "a", secretA)
	select {
	case <-first.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the connection taken over is still open")
	}
}
