package hooks

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/mqttwaf/mqttwaf/mqttwaf"
)

const jsonPayloads = `
payloads:
  - topics: ["fleet/+/telemetry"]
    format: json
    max_size: 64KiB
  - topics: ["fleet/+/log"]
    format: text
  - topics: ["fleet/+/typed"]
    content_types: [application/json]
`

func TestJSONPayloadsAreNormalised(t *testing.T) {
	b := startBroker(t, jsonPayloads, brokerOpts{})
	sub := mustV5(t, b.addr, "sub", "")
	// mochi sends the SUBACK before it looks up retained messages, so a
	// retained publish racing that lookup reaches this subscriber twice: live
	// and as retained. Retain handling 2 (no retained messages on subscribe)
	// makes sub a live-only subscriber; the retained copy is checked on late.
	if sa, err := sub.Subscribe(t.Context(), &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{
		{Topic: "fleet/#", QoS: 1, RetainHandling: 2}}}); err != nil || !bytes.Equal(sa.Reasons, []byte{1}) {
		t.Fatalf("subscribe: %v %+v", err, sa)
	}
	pub := mustV5(t, b.addr, "dev1", "")

	in := []byte("{ \"LAT\" : 37.4057689,\n  \"NAME\": \"\\u0048ong\", \"path\": \"a\\/b\" }")
	want := `{"LAT":37.4057689,"NAME":"Hong","path":"a/b"}`
	if _, err := pub.Publish(t.Context(), &paho.Publish{Topic: "fleet/dev1/telemetry", QoS: 1, Retain: true, Payload: in}); err != nil {
		t.Fatal(err)
	}
	if m := expectMsg(t, sub.msgs, 5*time.Second); string(m.Payload) != want {
		t.Fatalf("subscriber got %q, want %q", m.Payload, want)
	}
	// The retained store holds the normalised bytes too.
	late := mustV5(t, b.addr, "late", "")
	late.subscribe(t, 1, "fleet/dev1/telemetry")
	if m := expectMsg(t, late.msgs, 5*time.Second); string(m.Payload) != want || !m.Retain {
		t.Fatalf("late subscriber got %q (retain %v), want the retained %q", m.Payload, m.Retain, want)
	}
	// Canonical input is forwarded as it came, without a rewrite event.
	before := b.events.count("payload.json", "json_normalized")
	if _, err := pub.publish(t, "fleet/dev1/telemetry", 1, []byte(want)); err != nil {
		t.Fatal(err)
	}
	if m := expectMsg(t, sub.msgs, 5*time.Second); string(m.Payload) != want {
		t.Fatalf("got %q", m.Payload)
	}
	if n := b.events.count("payload.json", "json_normalized"); n != before {
		t.Fatalf("%d rewrite events for canonical input", n-before)
	}
	// Other topics are not touched.
	if _, err := pub.publish(t, "fleet/dev1/raw", 1, in); err != nil {
		t.Fatal(err)
	}
	if m := expectMsg(t, sub.msgs, 5*time.Second); !bytes.Equal(m.Payload, in) {
		t.Fatalf("untouched topic got %q", m.Payload)
	}
}

func TestBadPayloadsRefused(t *testing.T) {
	b := startBroker(t, jsonPayloads, brokerOpts{})
	sub := mustV5(t, b.addr, "sub", "")
	sub.subscribe(t, 1, "fleet/#")
	pub := mustV5(t, b.addr, "dev1", "")
	pfi := byte(1)
	for _, tc := range []struct {
		name, topic string
		payload     []byte
		props       *paho.PublishProperties
		reason      string
		code        byte
	}{
		{"duplicate key", "fleet/dev1/telemetry", []byte(`{"role":"user","role":"admin"}`), nil, "duplicate_key", 0x99},
		{"escaped duplicate", "fleet/dev1/telemetry", []byte(`{"role":"user","\u0072ole":"admin"}`), nil, "duplicate_key", 0x99},
		{"lone surrogate", "fleet/dev1/telemetry", []byte(`{"a":"\ud800"}`), nil, "lone_surrogate", 0x99},
		{"not json", "fleet/dev1/telemetry", []byte(`{"a":1,}`), nil, "trailing_comma", 0x99},
		{"too deep", "fleet/dev1/telemetry", []byte(strings.Repeat("[", 40000)), nil, "depth_exceeded", 0x99},
		{"too big", "fleet/dev1/telemetry", []byte(`"` + strings.Repeat("x", 70<<10) + `"`), nil, "payload_too_large", 0x97},
		{"huge number", "fleet/dev1/telemetry", []byte(`{"n":12345678901234567890}`), nil, "number_too_large", 0x99},
		{"text not utf8", "fleet/dev1/log", []byte{0xff, 0xfe}, nil, "payload_not_utf8", 0x99},
		{"format indicator lies", "fleet/dev1/anything", []byte{0xc3, 0x28}, &paho.PublishProperties{PayloadFormat: &pfi}, "payload_not_utf8", 0x99},
		{"content type", "fleet/dev1/typed", []byte("<x/>"), &paho.PublishProperties{ContentType: "text/xml"}, "content_type_not_allowed", 0x99},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := pub.Publish(t.Context(), &paho.Publish{Topic: tc.topic, QoS: 1, Payload: tc.payload, Properties: tc.props})
			if err == nil || resp == nil || resp.ReasonCode != tc.code {
				t.Fatalf("%v %+v, want 0x%02x", err, resp, tc.code)
			}
			e := b.events.wait(t, payloadRule(tc.reason), tc.reason, time.Second)
			if e.Stage != mqttwaf.StagePublish || e.ClientID != "dev1" {
				t.Fatalf("event %+v", e)
			}
			expectNoMsg(t, sub.msgs, 100*time.Millisecond)
		})
	}
	// MQTT 3.1.1 (and QoS 0): dropped, with an event.
	pub3 := mustV3(t, b.addr, "dev3", "")
	before := b.events.count("payload.json", "duplicate_key")
	waitToken(t, pub3.Publish("fleet/dev3/telemetry", 1, false, `{"a":1,"a":2}`))
	waitToken(t, pub3.Publish("fleet/dev3/telemetry", 0, false, `{"a":1,"a":2}`))
	b.events.waitCount(t, "payload.json", "duplicate_key", before+2, time.Second)
	expectNoMsg(t, sub.msgs, 200*time.Millisecond)
	// A good message still flows afterwards.
	waitToken(t, pub3.Publish("fleet/dev3/telemetry", 1, false, `{"a":1}`))
	if m := expectMsg(t, sub.msgs, 5*time.Second); string(m.Payload) != `{"a":1}` {
		t.Fatalf("got %q", m.Payload)
	}
}

func TestJSONPayloadsWithMosquitto(t *testing.T) {
	b := startBroker(t, jsonPayloads, brokerOpts{})
	wait := mosquittoSub(t, b.addr, "-t", "fleet/+/telemetry", "-C", "1", "-W", "10", "-N")
	b.waitSubscribed(t, "fleet/+/telemetry")
	if out, err := mosquittoPub(t, b.addr, "-t", "fleet/m/telemetry", "-q", "1", "-m", `{ "a" : [ 1, 2 ] }`); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	got, err := wait()
	if err != nil || got != `{"a":[1,2]}` {
		t.Fatalf("mosquitto_sub got %q, %v", got, err)
	}
}

// payloadRule is the rule id of a payload refusal: one id per check.
func payloadRule(reason string) string {
	switch reason {
	case "payload_too_large":
		return "payload.size"
	case "payload_not_utf8", "content_type_not_allowed":
		return "payload.format"
	}
	return "payload.json"
}
