package hooks

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/mqttwaf/mqttwaf/mqttwaf"
)

// End-to-end tests of MQTT features the WAF must not break and of MQTT 5
// properties it must hold to the policy: shared subscriptions, no-local
// request/response, acknowledgements, and the properties a client fills
// freely.

// TestSharedSubscriptions: a shared subscription is checked against the
// grants without its "$share/<group>/" prefix, and mochi delivers each
// message to one member of the group.
func TestSharedSubscriptions(t *testing.T) {
	b := startBroker(t, `identity: {anonymous: {allow: anywhere, role: reader}}
roles:
  reader: {publish: ["fleet/+/telemetry"], subscribe: ["fleet/+/telemetry"]}
`, brokerOpts{})
	m1 := mustV5(t, b.addr, "member1", "")
	m2 := mustV5(t, b.addr, "member2", "")
	all := mustV5(t, b.addr, "all", "")
	for _, m := range []*v5{m1, m2} {
		if sa := m.subscribe(t, 1, "$share/workers/fleet/+/telemetry"); sa.Reasons[0] != 1 {
			t.Fatalf("shared subscription refused: 0x%02x", sa.Reasons[0])
		}
	}
	all.subscribe(t, 1, "fleet/+/telemetry")
	// A shared filter outside the grants is still refused.
	if sa := m1.subscribe(t, 1, "$share/workers/other/#"); sa.Reasons[0] != byte(mqttwaf.CodeNotAuthorized) {
		t.Fatalf("shared subscription outside the grants: 0x%02x", sa.Reasons[0])
	}

	pub := mustV5(t, b.addr, "dev1", "")
	const n = 40
	for i := range n {
		if _, err := pub.publish(t, "fleet/dev1/telemetry", 1, fmt.Appendf(nil, `{"n":%d}`, i)); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]int{}
	got1, got2 := 0, 0
	deadline := time.After(5 * time.Second)
	for got1+got2 < n {
		select {
		case m := <-m1.msgs:
			got1++
			seen[string(m.Payload)]++
		case m := <-m2.msgs:
			got2++
			seen[string(m.Payload)]++
		case <-deadline:
			t.Fatalf("group received %d+%d of %d", got1, got2, n)
		}
	}
	expectNoMsg(t, m1.msgs, 200*time.Millisecond)
	expectNoMsg(t, m2.msgs, 10*time.Millisecond)
	for i := range n {
		if c := seen[fmt.Sprintf(`{"n":%d}`, i)]; c != 1 {
			t.Fatalf("message %d delivered %d times to the group", i, c)
		}
	}
	if got1 == 0 || got2 == 0 {
		t.Logf("mochi chose one member for all %d messages (%d/%d)", n, got1, got2)
	}
	for i := range n {
		m := expectMsg(t, all.msgs, 5*time.Second)
		if string(m.Payload) != fmt.Sprintf(`{"n":%d}`, i) {
			t.Fatalf("plain subscriber got %q, want message %d", m.Payload, i)
		}
	}
	// mosquitto_sub joins the group too.
	wait := mosquittoSub(t, b.addr, "-V", "mqttv5", "-i", "member3", "-t", "$share/workers2/fleet/+/telemetry", "-C", "1", "-W", "5")
	b.waitSubscribed(t, "$share/workers2/fleet/+/telemetry")
	if _, err := pub.publish(t, "fleet/dev1/telemetry", 1, []byte(`{"n":"m"}`)); err != nil {
		t.Fatal(err)
	}
	if out, err := wait(); err != nil || strings.TrimSpace(out) != `{"n":"m"}` {
		t.Fatalf("mosquitto_sub in a shared group: %q, %v", out, err)
	}
}

// TestNoLocalRequestResponse: two anonymous MQTT 5 clients under a
// permissive policy, both subscribed to '#' with no-local, exchange a
// request and its response; and mosquitto_rr gets its answer from a
// no-local responder.
func TestNoLocalRequestResponse(t *testing.T) {
	b := startBroker(t, "", brokerOpts{}) // openAccess: subscribe '#', broad wildcards
	ctx := context.Background()
	req := mustV5(t, b.addr, "", "")
	resp := mustV5(t, b.addr, "", "")
	for _, c := range []*v5{req, resp} {
		sa, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "#", QoS: 1, NoLocal: true}}})
		if err != nil || sa.Reasons[0] != 1 {
			t.Fatalf("subscribe: %v %+v", err, sa)
		}
	}
	go func() {
		for m := range resp.msgs {
			if m.Properties == nil || m.Properties.ResponseTopic == "" {
				continue
			}
			_, _ = resp.Publish(ctx, &paho.Publish{Topic: m.Properties.ResponseTopic, QoS: 1, Payload: append([]byte("re: "), m.Payload...),
				Properties: &paho.PublishProperties{CorrelationData: m.Properties.CorrelationData}})
		}
	}()
	if _, err := req.Publish(ctx, &paho.Publish{Topic: "svc/req", QoS: 1, Payload: []byte("ping"),
		Properties: &paho.PublishProperties{ResponseTopic: "svc/resp", CorrelationData: []byte("42")}}); err != nil {
		t.Fatal(err)
	}
	m := expectMsg(t, req.msgs, 5*time.Second)
	if m.Topic != "svc/resp" || string(m.Payload) != "re: ping" || m.Properties == nil || string(m.Properties.CorrelationData) != "42" {
		t.Fatalf("requester got %q %q %+v", m.Topic, m.Payload, m.Properties)
	}
	expectNoMsg(t, req.msgs, 200*time.Millisecond) // not its own request: no-local

	h, p := hostPort(t, b.addr)
	out, err := exec.Command(needMosquitto(t, "mosquitto_rr"), "-h", h, "-p", p, "-t", "svc/req2", "-e", "svc/resp2", "-m", "hello", "-W", "5").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "re: hello" {
		t.Fatalf("mosquitto_rr: %q, %v", out, err)
	}
	if evs := b.events.all(); len(evs) != 0 {
		t.Fatalf("events for an allowed exchange: %v", evs)
	}
}

// TestAcksAreValid: the PUBACK (QoS 1) and PUBREC (QoS 2) an MQTT 5
// publisher gets carry a valid reason code and none of the publish's
// properties, even when the WAF adds one (provenance). Read as bytes: a
// client library would hide both faults.
func TestAcksAreValid(t *testing.T) {
	b := startBroker(t, "provenance: {user_property: x-identity}\n", brokerOpts{})
	conn := rawConnectV5(t, b.addr, "acker")
	// PUBLISH QoS 1, packet id 7, topic "t/a", user property note=hi.
	writeRaw(t, conn, rawPublishV5(1, 7, "t/a", []byte("x"), "note", "hi"))
	if got, want := readPacket(t, conn), []byte{0x40, 0x02, 0x00, 0x07}; !bytes.Equal(got, want) {
		t.Fatalf("PUBACK % x, want % x (success, no properties)", got, want)
	}
	writeRaw(t, conn, rawPublishV5(2, 8, "t/a", []byte("x"), "note", "hi"))
	if got, want := readPacket(t, conn), []byte{0x50, 0x02, 0x00, 0x08}; !bytes.Equal(got, want) {
		t.Fatalf("PUBREC % x, want % x", got, want)
	}
	writeRaw(t, conn, []byte{0x62, 0x02, 0x00, 0x08}) // PUBREL
	if got, want := readPacket(t, conn), []byte{0x70, 0x02, 0x00, 0x08}; !bytes.Equal(got, want) {
		t.Fatalf("PUBCOMP % x, want % x", got, want)
	}
	// A refusal still says why: PUBACK 0x90 with a reason string.
	writeRaw(t, conn, rawPublishV5(1, 9, strings.Repeat("t", 300), []byte("x"), "note", "hi"))
	got := readPacket(t, conn)
	if len(got) < 5 || got[0] != 0x40 || got[4] != byte(mqttwaf.CodeTopicNameInvalid) || bytes.Contains(got, []byte("note")) {
		t.Fatalf("refusal PUBACK % x", got)
	}
}

// TestPropertiesOnTheWire: properties count and obey the rules, with real
// clients: correlation data is bounded, the retained budget counts it, a
// response topic is a topic, a content type is printable.
func TestPropertiesOnTheWire(t *testing.T) {
	b := startBroker(t, `limits: {correlation_data: {max_bytes: 60000}}
rates:
  connect: {per_ip: 100000/s, per_network: 100000/s}
  flapping: {off: true}
  new_client_ids: {per_ip: 100000/min, per_username: 100000/min, global: 100000/min}
  publish: {per_connection: {messages: 1000/s, bytes: 10MiB/s}}
  retained: {per_identity: {topics: 1000, bytes: 1MiB}}
`, brokerOpts{})
	guest := mustV5(t, b.addr, "guest", "")
	sub := mustV5(t, b.addr, "snoop", "")
	sub.subscribe(t, 1, "#")
	ctx := context.Background()
	publish := func(p *paho.Publish) byte {
		t.Helper()
		res, err := guest.Publish(ctx, p)
		if res == nil {
			t.Fatalf("publish: %v", err)
		}
		return res.ReasonCode
	}
	// 1-byte payloads with 60,000 bytes of correlation data, retained: the
	// 1 MiB budget holds 17 of them (each counts 60,000 + topic + payload).
	accepted := map[string]bool{}
	for i := range 30 {
		topic := fmt.Sprintf("r/%d", i)
		rc := publish(&paho.Publish{Topic: topic, QoS: 1, Retain: true, Payload: []byte("x"),
			Properties: &paho.PublishProperties{CorrelationData: make([]byte, 60000)}})
		if rc == 0 {
			accepted[topic] = true
		} else if rc != byte(mqttwaf.CodeQuotaExceeded) {
			t.Fatalf("retained publish %d: 0x%02x", i, rc)
		}
	}
	if len(accepted) != 17 {
		t.Fatalf("%d retained messages with 60,000 bytes of correlation data accepted, want 17 (1 MiB)", len(accepted))
	}
	b.events.wait(t, "rates.retained", "retained_bytes_per_identity", time.Second)
	if rc := publish(&paho.Publish{Topic: "c", QoS: 1, Payload: []byte("x"),
		Properties: &paho.PublishProperties{CorrelationData: make([]byte, 60001)}}); rc != byte(mqttwaf.CodeQuotaExceeded) {
		t.Fatalf("correlation data over the limit: 0x%02x", rc)
	}
	for _, tc := range []struct {
		name  string
		props *paho.PublishProperties
		code  mqttwaf.ReasonCode
	}{
		{"response topic: long, deep, $SYS, escapes", &paho.PublishProperties{ResponseTopic: "$SYS/" + strings.Repeat("\x1b[2J/", 22) + strings.Repeat("x", 59900)}, mqttwaf.CodeTopicNameInvalid},
		{"response topic too long", &paho.PublishProperties{ResponseTopic: strings.Repeat("x", 300)}, mqttwaf.CodeTopicNameInvalid},
		{"response topic with escapes", &paho.PublishProperties{ResponseTopic: "replies/\x1b[2J"}, mqttwaf.CodeTopicNameInvalid},
		{"content type with escapes", &paho.PublishProperties{ContentType: "text/plain\x1b]0;pwned\x07"}, mqttwaf.CodePayloadFormatInvalid},
		{"content type too long", &paho.PublishProperties{ContentType: strings.Repeat("c", 129)}, mqttwaf.CodeQuotaExceeded},
	} {
		if rc := publish(&paho.Publish{Topic: "t", QoS: 1, Payload: []byte("x"), Properties: tc.props}); rc != byte(tc.code) {
			t.Fatalf("%s: 0x%02x, want 0x%02x", tc.name, rc, byte(tc.code))
		}
	}
	// None of the refused messages reached the subscriber; every accepted
	// one did (QoS 1 allows a duplicate, which is not a refused message).
	got := map[string]bool{}
	for len(got) < len(accepted) {
		m := expectMsg(t, sub.msgs, 5*time.Second)
		if !accepted[m.Topic] {
			t.Fatalf("subscriber got %q, which was refused", m.Topic)
		}
		got[m.Topic] = true
	}
	deadline := time.After(300 * time.Millisecond)
	for {
		select {
		case m := <-sub.msgs:
			if !accepted[m.Topic] {
				t.Fatalf("subscriber got %q, which was refused", m.Topic)
			}
		case <-deadline:
			return
		}
	}
}

// rawConnectV5 opens a TCP connection and completes an MQTT 5 CONNECT.
func rawConnectV5(t testing.TB, addr, clientID string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	writeRaw(t, conn, rawConnect(5, clientID))
	if ack := readPacket(t, conn); len(ack) < 4 || ack[0] != 0x20 || ack[3] != 0 {
		t.Fatalf("CONNACK % x", ack)
	}
	return conn
}

// rawConnect is a CONNECT for protocol level 4 or 5 with a clean start and
// a 30 s keepalive.
func rawConnect(level byte, clientID string) []byte {
	return rawConnectKeepalive(level, clientID, 30)
}

// rawConnectKeepalive is rawConnect with a keepalive in seconds.
func rawConnectKeepalive(level byte, clientID string, keepalive uint16) []byte {
	var vh []byte
	vh = append(vh, 0, 4, 'M', 'Q', 'T', 'T', level, 0x02, byte(keepalive>>8), byte(keepalive))
	if level == 5 {
		vh = append(vh, 0) // no properties
	}
	vh = append(vh, byte(len(clientID)>>8), byte(len(clientID)))
	vh = append(vh, clientID...)
	return framePacket(0x10, vh)
}

// rawPublishV5 is an MQTT 5 PUBLISH with one user property.
func rawPublishV5(qos byte, id uint16, topic string, payload []byte, key, val string) []byte {
	var props []byte
	props = append(props, 0x26, byte(len(key)>>8), byte(len(key)))
	props = append(props, key...)
	props = append(props, byte(len(val)>>8), byte(len(val)))
	props = append(props, val...)
	return rawPublishProps(qos, id, topic, props, payload)
}

// rawPublishProps is an MQTT 5 PUBLISH with the encoded properties props.
func rawPublishProps(qos byte, id uint16, topic string, props, payload []byte) []byte {
	var b []byte
	b = append(b, byte(len(topic)>>8), byte(len(topic)))
	b = append(b, topic...)
	if qos > 0 {
		b = append(b, byte(id>>8), byte(id))
	}
	b = appendVarint(b, len(props))
	b = append(b, props...)
	b = append(b, payload...)
	return framePacket(0x30|qos<<1, b)
}

// framePacket prefixes body with a fixed header.
func framePacket(first byte, body []byte) []byte {
	return append(appendVarint([]byte{first}, len(body)), body...)
}

func appendVarint(b []byte, n int) []byte {
	for {
		c := byte(n % 128)
		n /= 128
		if n > 0 {
			c |= 0x80
		}
		b = append(b, c)
		if n == 0 {
			return b
		}
	}
}

var rawMu sync.Mutex

func writeRaw(t testing.TB, conn net.Conn, b []byte) {
	t.Helper()
	rawMu.Lock()
	defer rawMu.Unlock()
	_ = conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write(b); err != nil {
		t.Fatal(err)
	}
}

// readPacket reads one whole MQTT packet (fixed header included).
func readPacket(t testing.TB, conn net.Conn) []byte {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	hdr := make([]byte, 1, 5)
	if _, err := io.ReadFull(conn, hdr); err != nil {
		t.Fatalf("read fixed header: %v", err)
	}
	n, mult := 0, 1
	for {
		var c [1]byte
		if _, err := io.ReadFull(conn, c[:]); err != nil {
			t.Fatalf("read remaining length: %v", err)
		}
		hdr = append(hdr, c[0])
		n += int(c[0]&0x7f) * mult
		mult *= 128
		if c[0]&0x80 == 0 {
			break
		}
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(conn, body); err != nil {
		t.Fatalf("read body: %v", err)
	}
	return append(hdr, body...)
}
