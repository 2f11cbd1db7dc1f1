package proxy

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	mqtt3 "github.com/eclipse/paho.mqtt.golang"

	"github.com/mqttwaf/mqttwaf/mqttwaf"
	"github.com/mqttwaf/mqttwaf/mqttwaf/frame"
)

// A 3.1.1 publisher (paho.mqtt.golang) behind the proxy gets the same
// provenance as an MQTT 5 one: with provenance configured the proxy speaks
// MQTT 5 upstream, so the fleet back end (paho.golang, through the proxy)
// and a watcher on mosquitto itself see x-identity:dev1 at every QoS.
// With -upstream-protocol client the 3.1.1 connection is relayed as it is,
// and the stamp cannot travel.
func TestTranslatedProvenance(t *testing.T) {
	up := startMosquitto(t)
	p, err := mqttwaf.ReadPolicyFile(filepath.Join("..", "..", "examples", "hardened-broker", "fleet.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	seed, err := os.ReadFile(filepath.Join("..", "testdata", "komdi-alarm.json"))
	if err != nil {
		t.Fatal(err)
	}
	px, _ := startProxyWith(t, p, up, nil)
	plain, _ := startProxyWith(t, p, up, func(o *Options) { o.UpstreamProtocol = UpstreamClient })
	watcher := mustV5(t, up, "watcher", "", "")
	subscribe5(t, watcher, 2, "fleet/#")
	backend := mustV5(t, px.Addr(), "backend", "backend", "backend-demo-pass")
	subscribe5(t, backend, 2, "fleet/+/telemetry")

	dev1, _, err := dialV3(t, px.Addr(), "dev1", "dev1", "dev1-demo-pass")
	if err != nil {
		t.Fatal(err)
	}
	for qos := byte(0); qos <= 2; qos++ {
		waitToken(t, dev1.Publish("fleet/dev1/telemetry", qos, false, seed))
		w := expectMsg(t, watcher.Msgs, 5*time.Second)
		b := expectMsg(t, backend.Msgs, 5*time.Second)
		for who, m := range map[string]*paho.Publish{"mosquitto": w, "back end": b} {
			if m.Topic != "fleet/dev1/telemetry" || m.QoS != qos || m.Properties.User.Get("x-identity") != "dev1" {
				t.Fatalf("QoS %d, %s got %q QoS %d with %v, want x-identity dev1", qos, who, m.Topic, m.QoS, m.Properties.User)
			}
		}
		if !bytes.Contains(b.Payload, []byte("홍길수")) {
			t.Fatalf("back end (raw view): %s", b.Payload)
		}
	}

	dev2, _, err := dialV3(t, plain.Addr(), "dev2", "dev2", "dev2-demo-pass")
	if err != nil {
		t.Fatal(err)
	}
	waitToken(t, dev2.Publish("fleet/dev2/telemetry", 1, false, seed))
	if m := expectMsg(t, watcher.Msgs, 5*time.Second); m.Topic != "fleet/dev2/telemetry" || m.Properties.User.Get("x-identity") != "" {
		t.Fatalf("upstream protocol client: mosquitto got %q with %v, want no stamp (3.1.1 upstream)", m.Topic, m.Properties.User)
	}
}

// Everything a translated 3.1.1 client receives is 3.1.1 (the raw client's
// frame reader validates each packet as version 4): SUBACK with 0x80 for a
// refused filter, the QoS 2 exchange both ways with bare acknowledgements,
// UNSUBACK, PINGRESP, retained messages, and session resumption with clean
// session 0. What mosquitto receives is stamped.
func TestTranslatedFlows(t *testing.T) {
	up := startMosquitto(t)
	px, _ := startProxy(t, "provenance: {user_property: x-identity}\n", up, nil)
	watcher := mustV5(t, up, "watcher", "", "")
	subscribe5(t, watcher, 2, "guest/#")

	c := rawClient(t, px.Addr(), 4, "r4")
	c.send(t, (&subscribe{id: 1, filters: []filter{{"guest/#", 2}, {"secret/x", 1}}}).encode(4, []bool{true, true}))
	if pk := c.next(t); !bytes.Equal(pk, []byte{0x90, 4, 0, 1, 2, 0x80}) {
		t.Fatalf("SUBACK %x, want 90 04 0001 02 80", pk)
	}
	// QoS 2 publish: PUBREC, PUBREL, PUBCOMP, each four bytes.
	c.send(t, (&publish{qos: 2, id: 5, topic: "guest/r4/t", payload: []byte("q2")}).encode(4))
	var delivery []byte
	want := [][]byte{{0x50, 2, 0, 5}, {0x70, 2, 0, 5}}
	for len(want) > 0 {
		pk := c.next(t)
		switch {
		case pk[0]>>4 == frame.TypePublish:
			delivery = pk // its own message, through guest/#: may come before the PUBCOMP
			continue
		case !bytes.Equal(pk, want[0]):
			t.Fatalf("got %x, want %x", pk, want[0])
		}
		if want = want[1:]; len(want) == 1 {
			c.send(t, ack(4, frame.TypePubrel, 5, 0))
		}
	}
	if delivery == nil {
		delivery = c.next(t)
	}
	d, err := decodePublish(4, delivery)
	if err != nil || d.topic != "guest/r4/t" || d.qos != 2 || string(d.payload) != "q2" {
		t.Fatalf("delivery %x: %+v %v", delivery, d, err)
	}
	c.send(t, ack(4, frame.TypePubrec, d.id, 0))
	if pk := c.next(t); !bytes.Equal(pk, ack(4, frame.TypePubrel, d.id, 0)) {
		t.Fatalf("got %x, want PUBREL %d", pk, d.id)
	}
	c.send(t, ack(4, frame.TypePubcomp, d.id, 0))
	if m := expectMsg(t, watcher.Msgs, 5*time.Second); m.Properties.User.Get("x-identity") != "anonymous" || string(m.Payload) != "q2" {
		t.Fatalf("mosquitto got %q with %v, want the stamp", m.Payload, m.Properties.User)
	}
	c.send(t, []byte{0xC0, 0})
	if pk := c.next(t); !bytes.Equal(pk, []byte{0xD0, 0}) {
		t.Fatalf("got %x, want PINGRESP", pk)
	}
	c.send(t, []byte{0xA2, 11, 0, 9, 0, 7, 'g', 'u', 'e', 's', 't', '/', '#'})
	if pk := c.next(t); !bytes.Equal(pk, []byte{0xB0, 2, 0, 9}) {
		t.Fatalf("got %x, want UNSUBACK 9 (3.1.1: no reason codes)", pk)
	}

	// Retained, from paho.mqtt.golang, read by a later 3.1.1 subscriber.
	pub, _, err := dialV3(t, px.Addr(), "p3", "", "")
	if err != nil {
		t.Fatal(err)
	}
	waitToken(t, pub.Publish("guest/p3/status", 1, true, "kept"))
	if m := expectMsg(t, watcher.Msgs, 5*time.Second); string(m.Payload) != "kept" || m.Properties.User.Get("x-identity") != "anonymous" {
		t.Fatalf("mosquitto got %q with %v", m.Payload, m.Properties.User)
	}
	late, _, err := dialV3(t, px.Addr(), "late", "", "")
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan mqtt3.Message, 4)
	waitToken(t, late.Subscribe("guest/p3/status", 1, func(_ mqtt3.Client, m mqtt3.Message) { got <- m }))
	select {
	case m := <-got:
		if !m.Retained() || string(m.Payload()) != "kept" {
			t.Fatalf("retained: %q retained=%v", m.Payload(), m.Retained())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no retained message")
	}

	// Session resumption: clean session 0, subscribe, go away, a message
	// is queued by mosquitto, come back: session present, message delivered.
	resume := func() *raw {
		r := rawDial(t, px.Addr(), 4)
		cp := connect{protoName: "MQTT", level: 4, keepalive: 30, clientID: "keeper"}
		r.send(t, cp.encode())
		return r
	}
	k := resume()
	if pk := k.next(t); !bytes.Equal(pk, []byte{0x20, 2, 0, 0}) {
		t.Fatalf("first CONNACK %x, want no session present", pk)
	}
	k.send(t, rawSubscribe(4, 1, "guest/p3/q", 1))
	if pk := k.next(t); pk[0]>>4 != frame.TypeSuback {
		t.Fatalf("got %x, want SUBACK", pk)
	}
	k.send(t, []byte{0xE0, 0})
	_ = k.c.Close()
	waitToken(t, pub.Publish("guest/p3/q", 1, false, "while away"))
	expectMsg(t, watcher.Msgs, 5*time.Second)
	k = resume()
	if pk := k.next(t); !bytes.Equal(pk, []byte{0x20, 2, 1, 0}) {
		t.Fatalf("CONNACK %x on resumption, want session present", pk)
	}
	pk := k.next(t)
	if d, err := decodePublish(4, pk); err != nil || string(d.payload) != "while away" || d.qos != 1 {
		t.Fatalf("queued message %x: %+v %v", pk, d, err)
	}
}

// A broker that ends a translated client's connection with DISCONNECT (here
// a session takeover directly on mosquitto) closes the 3.1.1 client's
// socket: 3.1.1 has no DISCONNECT from the server, so nothing is written.
func TestTranslatedServerDisconnect(t *testing.T) {
	up := startMosquitto(t)
	px, _ := startProxy(t, "", up, func(o *Options) { o.UpstreamProtocol = Upstream5 })
	c := rawClient(t, px.Addr(), 4, "taken")
	mustV5(t, up, "taken", "", "") // the same client ID, straight into mosquitto
	_ = c.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(c.c)
	if err != nil || len(b) != 0 {
		t.Fatalf("after the broker's DISCONNECT the client read %x, %v; want a clean close and no bytes", b, err)
	}
}

// A broker refusal is translated to the 3.1.1 return code: mosquitto wants
// a password the anonymous client does not have (0x87 -> 0x05).
func TestTranslatedConnackRefusal(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "passwd")
	if err := os.WriteFile(pw, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	up := startMosquitto(t, "allow_anonymous false", "password_file "+pw)
	px, _ := startProxy(t, "", up, func(o *Options) { o.UpstreamProtocol = Upstream5 })
	r := rawDial(t, px.Addr(), 4)
	r.send(t, (&connect{protoName: "MQTT", level: 4, clean: true, keepalive: 30, clientID: "anon"}).encode())
	if pk := r.next(t); !bytes.Equal(pk, []byte{0x20, 2, 0, 5}) {
		t.Fatalf("CONNACK %x, want 20 02 00 05 (not authorised)", pk)
	}
	// 3.1.1 refuses an empty client ID without a clean session (0x02);
	// MQTT 5 would not, so the proxy does.
	r = rawDial(t, px.Addr(), 4)
	r.send(t, (&connect{protoName: "MQTT", level: 4, keepalive: 30}).encode())
	if pk := r.next(t); !bytes.Equal(pk, []byte{0x20, 2, 0, 2}) {
		t.Fatalf("CONNACK %x, want 20 02 00 02 (identifier rejected)", pk)
	}
}

// When the broker's keep alive (Server Keep Alive in its CONNACK) is
// shorter than a translated 3.1.1 client's, which cannot be told, the proxy
// pings the broker itself and keeps those PINGRESPs from the client. The
// upstream here is a scripted MQTT 5 server, because mosquitto's shortest
// max_keepalive is 10 s.
func TestTranslatedKeepAlivePings(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	pinged := make(chan error, 1)
	go func() {
		s, err := ln.Accept()
		if err != nil {
			pinged <- err
			return
		}
		defer s.Close()
		rd := frame.NewReader(s, frame.FromClient, frame.Limits{})
		cp, err := rd.Next()
		if err != nil || cp[0]>>4 != frame.TypeConnect {
			pinged <- errors.New("no CONNECT")
			return
		}
		ca := connack{props: []prop{{propServerKeepAlive, appendU16(nil, 1)}}}
		_, _ = s.Write(ca.encode(5))
		_ = s.SetReadDeadline(time.Now().Add(5 * time.Second))
		pk, err := rd.Next()
		if err != nil || !bytes.Equal(pk, []byte{0xC0, 0}) {
			pinged <- errors.New("no PINGREQ from the proxy within 5 s")
			return
		}
		_, _ = s.Write([]byte{0xD0, 0})
		marker := publish{topic: "guest/after-ping", payload: []byte("m")}
		_, _ = s.Write(marker.encode(5))
		pinged <- nil
		_, _ = io.Copy(io.Discard, s)
	}()
	px, _ := startProxy(t, "", ln.Addr().String(), func(o *Options) { o.UpstreamProtocol = Upstream5 })
	c := rawClient(t, px.Addr(), 4, "sleepy") // keep alive 30 s
	if err := <-pinged; err != nil {
		t.Fatal(err)
	}
	if pk := c.next(t); pk[0]>>4 != frame.TypePublish {
		t.Fatalf("the client got %x first, want the PUBLISH: the proxy's PINGRESP leaked", pk)
	}
}

// A publish the broker refuses (here mosquitto's own ACL: PUBACK or PUBREC
// 0x87) reaches a translated 3.1.1 client as the plain acknowledgement
// 3.1.1 has, as it would from a 3.1.1 broker, and is recorded
// (proxy.upstream refused_by_broker) since the client cannot be told; the
// QoS 2 exchange completes and gives its quota back.
func TestTranslatedBrokerRefusal(t *testing.T) {
	acl := filepath.Join(t.TempDir(), "acl")
	if err := os.WriteFile(acl, []byte("topic readwrite guest/ok/#\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	up := startMosquitto(t, "allow_anonymous true", "acl_file "+acl)
	policy := "identity: {anonymous: {allow: anywhere, role: open}}\nroles: {open: {publish: ['guest/#']}}\n"
	px, ev := startProxy(t, policy, up, func(o *Options) { o.UpstreamProtocol = Upstream5 })
	c := rawClient(t, px.Addr(), 4, "ok")
	c.send(t, (&publish{qos: 1, id: 1, topic: "guest/ok-not/x", payload: []byte("no")}).encode(4))
	if pk := c.next(t); !bytes.Equal(pk, []byte{0x40, 2, 0, 1}) {
		t.Fatalf("got %x, want a plain PUBACK 1", pk)
	}
	if e := ev.Wait(t, "proxy.upstream", "refused_by_broker", 5*time.Second); e.Code != 0x87 {
		t.Fatalf("event %+v", e)
	}
	for id := uint16(2); id <= 4; id++ { // one at a time within mosquitto's Receive Maximum 20: no waiting
		c.send(t, (&publish{qos: 2, id: id, topic: "guest/ok-not/x", payload: []byte("no")}).encode(4))
		if pk := c.next(t); !bytes.Equal(pk, []byte{0x50, 2, 0, byte(id)}) {
			t.Fatalf("got %x, want a plain PUBREC %d", pk, id)
		}
		c.send(t, ack(4, frame.TypePubrel, id, 0))
		if pk := c.next(t); !bytes.Equal(pk, []byte{0x70, 2, 0, byte(id)}) {
			t.Fatalf("got %x, want a plain PUBCOMP %d", pk, id)
		}
	}
	c.send(t, (&publish{qos: 1, id: 5, topic: "guest/ok/x", payload: []byte("yes")}).encode(4))
	if pk := c.next(t); !bytes.Equal(pk, []byte{0x40, 2, 0, 5}) {
		t.Fatalf("got %x, want PUBACK 5", pk)
	}
}
