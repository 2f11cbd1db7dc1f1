package proxy

import (
	"bytes"
	"io"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/mqttwaf/mqttwaf/mqttwaf"
	"github.com/mqttwaf/mqttwaf/mqttwaf/frame"
)

// A broker that allows less than MQTT does (mosquitto with max_qos 1 and
// retain_available false; EMQX, HiveMQ and VerneMQ have the same
// settings): its CONNACK reaches an MQTT 5 client with Maximum QoS and
// Retain Available as it sent them, a publish beyond them is refused by
// the proxy (DISCONNECT 0x9B / 0x9A, a proxy.upstream event, nothing
// upstream) instead of by the broker, and a translated 3.1.1 client's is
// too (its connection closes). Subscriptions get the QoS the broker grants.
func TestBrokerLimits(t *testing.T) {
	up := startMosquitto(t, "allow_anonymous true", "max_qos 1", "retain_available false")
	px, ev := startProxy(t, "", up, func(o *Options) { o.UpstreamProtocol = Upstream5 })
	watcher := mustV5(t, up, "watcher", "", "")
	subscribe5(t, watcher, 1, "#")

	cases := []struct {
		name   string
		ver    byte
		pub    publish
		code   byte // DISCONNECT reason code; 0: the socket just closes (3.1.1)
		reason string
	}{
		{"QoS 2 above Maximum QoS 1", 5, publish{qos: 2, id: 1, topic: "guest/q2/x", payload: []byte("no")}, 0x9B, "qos_not_supported"},
		{"retained, Retain Available 0", 5, publish{retain: true, topic: "guest/rt/x", payload: []byte("no")}, 0x9A, "retain_not_supported"},
		{"3.1.1 QoS 2, translated", 4, publish{qos: 2, id: 1, topic: "guest/q3/x", payload: []byte("no")}, 0, "qos_not_supported"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id := []string{"q2", "rt", "q3"}[i]
			var c *raw
			if tc.ver == 5 {
				c = rawDial(t, px.Addr(), 5)
				c.send(t, (&connect{protoName: "MQTT", level: 5, clean: true, keepalive: 30, clientID: id}).encode())
				ca, err := decodeConnack(5, c.next(t))
				if err != nil || ca.code != 0 {
					t.Fatalf("CONNACK %+v %v", ca, err)
				}
				if v, ok := findProp(ca.props, propMaximumQoS); !ok || !bytes.Equal(v, []byte{1}) {
					t.Fatalf("CONNACK properties %v: Maximum QoS 1 not relayed", ca.props)
				}
				if v, ok := findProp(ca.props, propRetainAvailable); !ok || !bytes.Equal(v, []byte{0}) {
					t.Fatalf("CONNACK properties %v: Retain Available 0 not relayed", ca.props)
				}
			} else {
				c = rawClient(t, px.Addr(), 4, id)
			}
			c.send(t, tc.pub.encode(tc.ver))
			_ = c.c.SetReadDeadline(time.Now().Add(5 * time.Second))
			b, err := io.ReadAll(c.c)
			if err != nil {
				t.Fatalf("the connection did not end: %v", err)
			}
			want := []byte{}
			if tc.code != 0 {
				want = disconnect(5, tc.code)
			}
			if !bytes.Equal(b, want) {
				t.Fatalf("client read %x, want %x", b, want)
			}
		})
	}
	for _, reason := range []string{"qos_not_supported", "retain_not_supported"} {
		if e := ev.Wait(t, "proxy.upstream", reason, time.Second); e.Action != mqttwaf.Disconnect {
			t.Fatalf("event %+v", e)
		}
	}

	c := mustV5(t, px.Addr(), "ok", "", "")
	if sa := subscribe5(t, c, 2, "guest/#"); !bytes.Equal(sa.Reasons, []byte{1}) {
		t.Fatalf("SUBACK %x, want the broker's granted QoS 1", sa.Reasons)
	}
	if _, err := publish5(t, c, &paho.Publish{Topic: "guest/ok/x", QoS: 1, Payload: []byte("allowed")}); err != nil {
		t.Fatal(err)
	}
	if m := expectMsg(t, watcher.Msgs, 5*time.Second); string(m.Payload) != "allowed" {
		t.Fatalf("mosquitto got %q on %q first: a refused publish went upstream", m.Payload, m.Topic)
	}
}

// A translated 3.1.1 client cannot be told the broker's Receive Maximum
// (mosquitto: max_inflight_messages), and a broker answers what exceeds it
// with 0x97 (which 3.1.1 cannot carry: the message is lost) or a
// disconnection. The proxy holds what would exceed it until the broker
// acknowledges, so three pipelined QoS 2 publishes against a Receive
// Maximum of 1 all arrive, in order; more than broker.receive_maximum
// waiting ends the connection with an event.
func TestTranslatedReceiveMaximum(t *testing.T) {
	up := startMosquitto(t, "allow_anonymous true", "max_inflight_messages 1")
	px, ev := startProxy(t, "broker: {receive_maximum: 2}\n", up, func(o *Options) { o.UpstreamProtocol = Upstream5 })
	watcher := mustV5(t, up, "watcher", "", "")
	subscribe5(t, watcher, 2, "guest/#")

	c := rawClient(t, px.Addr(), 4, "burst")
	for id := uint16(1); id <= 3; id++ {
		c.send(t, (&publish{qos: 2, id: id, topic: "guest/burst/x", payload: []byte{'0' + byte(id)}}).encode(4))
	}
	for done := 0; done < 3; {
		pk := c.next(t)
		switch pk[0] >> 4 {
		case frame.TypePubrec:
			c.send(t, ack(4, frame.TypePubrel, uint16(pk[2])<<8|uint16(pk[3]), 0))
		case frame.TypePubcomp:
			done++
		default:
			t.Fatalf("got %x", pk)
		}
	}
	for _, want := range []string{"1", "2", "3"} {
		if m := expectMsg(t, watcher.Msgs, 5*time.Second); string(m.Payload) != want {
			t.Fatalf("mosquitto got %q, want %q: a publish beyond its Receive Maximum was lost", m.Payload, want)
		}
	}

	// One in flight, two waiting (broker.receive_maximum), the fourth is
	// too many: nothing acknowledges while the client sends no PUBREL.
	c = rawClient(t, px.Addr(), 4, "flood")
	for id := uint16(1); id <= 4; id++ {
		c.send(t, (&publish{qos: 2, id: id, topic: "guest/flood/x", payload: []byte("f")}).encode(4))
	}
	_ = c.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	// (mosquitto's PUBREC for the first may or may not reach the client
	// before the proxy closes the connection.)
	if b, err := io.ReadAll(c.c); err != nil || len(b) > 0 && !bytes.Equal(b, []byte{0x50, 2, 0, 1}) {
		t.Fatalf("client read %x, %v; want at most PUBREC 1, then the connection closed", b, err)
	}
	if e := ev.Wait(t, "broker.receive_maximum", "receive_maximum_exceeded", time.Second); e.Value != 3 || e.Limit != 2 {
		t.Fatalf("event %+v", e)
	}
}

// Shared subscriptions ($share/<group>/<filter>, MQTT 5, and 3.1.1 on
// brokers that accept them, as mosquitto, EMQX, HiveMQ and VerneMQ do)
// pass the proxy: the filter is checked against the grants of the filter it
// shares, and the broker gives each message to one member of the group.
func TestSharedSubscriptions(t *testing.T) {
	up := startMosquitto(t)
	px, _ := startProxy(t, "", up, nil)
	a := mustV5(t, px.Addr(), "share-a", "", "")
	b := mustV5(t, px.Addr(), "share-b", "", "")
	for _, c := range []*v5{a, b} {
		if sa := subscribe5(t, c, 1, "$share/g/guest/#", "$share/g/secret/#"); !bytes.Equal(sa.Reasons, []byte{1, 0x87}) {
			t.Fatalf("SUBACK %x, want 01 87 (secret/# is not the guests')", sa.Reasons)
		}
	}
	pub := mustV5(t, px.Addr(), "share-pub", "", "")
	const n = 6
	for i := 0; i < n; i++ {
		if _, err := publish5(t, pub, &paho.Publish{Topic: "guest/share-pub/x", QoS: 1, Payload: []byte{byte('0' + i)}}); err != nil {
			t.Fatal(err)
		}
	}
	seen, got := map[string]bool{}, 0
	for len(seen) < n {
		select {
		case m := <-a.Msgs:
			seen[string(m.Payload)] = true
		case m := <-b.Msgs:
			seen[string(m.Payload)] = true
		case <-time.After(5 * time.Second):
			t.Fatalf("%d of %d messages delivered to the group", len(seen), n)
		}
		if got++; got > len(seen) {
			t.Fatalf("a message was delivered to both members of the group")
		}
	}
}

// What brokers differ on, and the proxy does not pass on: topic aliases
// are the proxy's to grant (it resolves them and never forwards one), so a
// broker that allows none (mosquitto max_topic_alias 0)
// changes nothing for clients; and a publish the provenance stamp makes
// larger than the broker's Maximum Packet Size is refused by the proxy
// (PUBACK with an error) rather than sent to a broker that would disconnect.
func TestBrokerDifferences(t *testing.T) {
	up := startMosquitto(t, "allow_anonymous true", "max_topic_alias 0", "max_packet_size 120")
	px, ev := startProxy(t, "provenance: {user_property: x-identity}\n", up, nil)
	watcher := mustV5(t, up, "watcher", "", "")
	subscribe5(t, watcher, 1, "guest/#")

	c := rawDial(t, px.Addr(), 5)
	c.send(t, (&connect{protoName: "MQTT", level: 5, clean: true, keepalive: 30, clientID: "al"}).encode())
	ca, err := decodeConnack(5, c.next(t))
	if err != nil || ca.code != 0 {
		t.Fatalf("CONNACK %+v %v", ca, err)
	}
	if v, ok := findProp(ca.props, propTopicAliasMax); !ok || propU16(v) != 16 {
		t.Fatalf("CONNACK properties %v: want Topic Alias Maximum 16 (broker.topic_alias_maximum)", ca.props)
	}
	if v, ok := findProp(ca.props, propMaximumPacketSize); !ok || propU32(v) != 120 {
		t.Fatalf("CONNACK properties %v: want the broker's Maximum Packet Size 120", ca.props)
	}
	set := publish{qos: 1, id: 1, topic: "guest/al/t", alias: 1, payload: []byte("aliased")}
	c.send(t, encodeAliased(set))
	use := publish{qos: 1, id: 2, alias: 1, payload: []byte("again")}
	c.send(t, encodeAliased(use))
	for _, want := range []string{"aliased", "again"} {
		if pk := c.next(t); pk[0]>>4 != frame.TypePuback || len(pk) > 4 && pk[4] >= 0x80 {
			t.Fatalf("got %x, want PUBACK success", pk)
		}
		if m := expectMsg(t, watcher.Msgs, 5*time.Second); m.Topic != "guest/al/t" || string(m.Payload) != want {
			t.Fatalf("mosquitto got %q %q", m.Topic, m.Payload)
		}
	}
	// 100 bytes as sent; the x-identity:anonymous stamp adds 24. PUBACK
	// has no 0x95 (packet too large): the engine's nearest PUBACK code.
	big := publish{qos: 1, id: 3, topic: "guest/al/t", payload: bytes.Repeat([]byte("b"), 100-2-2-10-1-2)}
	if n := len(big.encode(5)); n != 100 {
		t.Fatalf("test packet is %d bytes", n)
	}
	c.send(t, big.encode(5))
	code := byte(mqttwaf.ReasonCode(0x95).For(mqttwaf.InPuback))
	if pk := c.next(t); !bytes.Equal(pk, []byte{0x40, 3, 0, 3, code}) {
		t.Fatalf("got %x, want PUBACK %#x", pk, code)
	}
	if e := ev.Wait(t, "proxy.upstream", "packet_too_large", time.Second); e.Value != 124 || e.Limit != 120 {
		t.Fatalf("event %+v", e)
	}
}

// A broker's redirection (Server Reference, with DISCONNECT or CONNACK
// 0x9C use another server / 0x9D server moved) would send the client to a
// broker directly, around the firewall: the proxy passes the reason code
// and drops the reference.
func TestWithoutServerReference(t *testing.T) {
	ref := prop{propServerReference, appendString(nil, "broker2:1883")}
	reason := prop{propReasonString, appendString(nil, "moved")}
	for _, tc := range []struct{ in, want []byte }{
		{packet(0xE0, appendProps([]byte{0x9D}, []prop{ref, reason})), packet(0xE0, appendProps([]byte{0x9D}, []prop{reason}))},
		{packet(0xE0, appendProps([]byte{0x9C}, []prop{ref})), packet(0xE0, appendProps([]byte{0x9C}, nil))},
		{packet(0xE0, appendProps([]byte{0x8B}, []prop{reason})), packet(0xE0, appendProps([]byte{0x8B}, []prop{reason}))},
		{[]byte{0xE0, 1, 0x8E}, []byte{0xE0, 1, 0x8E}},
		{[]byte{0xE0, 0}, []byte{0xE0, 0}},
	} {
		if got := withoutServerReference(tc.in); !bytes.Equal(got, tc.want) {
			t.Errorf("%x: got %x, want %x", tc.in, got, tc.want)
		}
		if err := frame.Validate(5, frame.FromServer, withoutServerReference(tc.in)); err != nil {
			t.Errorf("%x: %v", tc.in, err)
		}
	}
}
