package proxy

import (
	"bytes"
	"io"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/mqttwaf/mqttwaf/mqttwaf"
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
