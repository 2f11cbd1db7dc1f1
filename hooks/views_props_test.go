package hooks

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
)

// mosquittoProps is the mosquitto_sub -F format that prints a message's
// MQTT 5 content type, correlation data, response topic and user
// properties before its payload.
const mosquittoProps = "C=%C|D=%D|R=%R|P=%P|p=%p"

// TestViewCoversProperties: dev1 publishes the seed message with personal
// data in a user property, the response topic, the correlation data and
// the content type. analytics (redacted view) receives the golden redacted
// payload and, of the properties, only the provenance one, live, with paho
// and mosquitto_sub; so does ops from the retained store; the back end
// (view: raw) receives everything as sent. The publish event names what
// redacted views remove, never the values.
func TestViewCoversProperties(t *testing.T) {
	b := fleetExample(t)
	seed := readFile(t, "..", "mqttwaf", "testdata", "komdi-alarm.json")
	golden := readFile(t, "..", "examples", "wafcheck", "testdata", "komdi-alarm.fleet-redacted.json")

	backend := mustV5Pass(t, b.addr, "backend", "backend", "backend-demo-pass")
	backend.subscribe(t, 1, "fleet/+/telemetry", "fleet/+/status")
	analytics := mustV5Pass(t, b.addr, "analytics", "analytics", "analytics-demo-pass")
	analytics.subscribe(t, 1, "fleet/+/telemetry")
	wait := mosquittoSub(t, b.addr, "-V", "mqttv5", "-i", "analytics-mosquitto", "-u", "analytics", "-P", "analytics-demo-pass",
		"-t", "fleet/+/telemetry", "-C", "1", "-W", "20", "-F", mosquittoProps)
	b.waitSubscribers(t, "fleet/+/telemetry", 3)

	dev1 := mustV5Pass(t, b.addr, "dev1", "dev1", "dev1-demo-pass")
	publishPersonal(t, dev1, "fleet/dev1/telemetry", false, seed)
	publishPersonal(t, dev1, "fleet/dev1/status", true, seed)

	// Live.
	m := expectMsg(t, analytics.msgs, 5*time.Second)
	checkRedacted(t, "analytics", m)
	if !bytes.Equal(m.Payload, golden) {
		t.Errorf("analytics payload:\n got %s\nwant %s", m.Payload, golden)
	}
	wantOut := "C=|D=|R=|P=x-identity:dev1|p=" + string(golden) + "\n"
	if got, err := wait(); err != nil || got != wantOut {
		t.Errorf("mosquitto_sub (analytics, live):\n got %q, %v\nwant %q", got, err, wantOut)
	}
	for range 2 {
		m := expectMsg(t, backend.msgs, 5*time.Second)
		checkRaw(t, "backend (live)", m)
	}

	// Retained, to a late redacted subscriber (paho, mosquitto_sub) and a
	// late raw one.
	ops := mustV5Pass(t, b.addr, "ops", "ops", "ops-demo-pass")
	ops.subscribe(t, 1, "fleet/+/status")
	m = expectMsg(t, ops.msgs, 5*time.Second)
	checkRedacted(t, "ops (retained)", m)
	if !bytes.Equal(m.Payload, golden) {
		t.Errorf("ops payload (retained):\n got %s\nwant %s", m.Payload, golden)
	}
	got, err := mosquittoSub(t, b.addr, "-V", "mqttv5", "-i", "ops-mosquitto", "-u", "ops", "-P", "ops-demo-pass",
		"-t", "fleet/dev1/status", "-C", "1", "-W", "10", "-F", mosquittoProps)()
	if err != nil || got != wantOut {
		t.Errorf("mosquitto_sub (ops, retained):\n got %q, %v\nwant %q", got, err, wantOut)
	}
	late := mustV5Pass(t, b.addr, "backend-late", "backend", "backend-demo-pass")
	late.subscribe(t, 1, "fleet/+/status")
	checkRaw(t, "backend (retained)", expectMsg(t, late.msgs, 5*time.Second))

	e := b.events.wait(t, "payload.redact", "redacted", time.Second)
	if want := "properties_removed=4 (user_property owner-phone, content_type, response_topic, correlation_data)"; !strings.Contains(e.Detail, want) {
		t.Errorf("publish event detail %q, want it to contain %q", e.Detail, want)
	}
	for _, e := range b.events.all() {
		if strings.Contains(e.Detail, "Hong") || strings.Contains(e.Detail, "010-8378") {
			t.Errorf("event with a personal value: %+v", e)
		}
	}
}

// TestViewKeepsListedProperties: a payload entry's keep_properties lets
// the listed user properties and the response topic through to redacted
// views (a request/response client that must be able to answer), and only
// those; mosquitto_sub agrees with paho.
func TestViewKeepsListedProperties(t *testing.T) {
	creds := credsFile(t, "dev1:device:dev1-pw", "analytics:analytics:analytics-pw")
	b := startBroker(t, `identity: {credentials_file: `+creds+`, anonymous: {allow: never}}
roles:
  device: {publish: ["fleet/{username}/#"]}
  analytics: {subscribe: ["fleet/#"]}
provenance: {user_property: x-identity}
payloads:
  - topics: ["fleet/+/telemetry"]
    format: json
    content_types: [application/json]
    redact:
      rules: [{path: DATA.USER_NAME, op: remove}]
      keep_properties: {user: [trace-id], response_topic: true}
`, brokerOpts{})
	analytics := mustV5Pass(t, b.addr, "analytics", "analytics", "analytics-pw")
	analytics.subscribe(t, 1, "fleet/#")
	wait := mosquittoSub(t, b.addr, "-V", "mqttv5", "-i", "analytics-mosquitto", "-u", "analytics", "-P", "analytics-pw",
		"-t", "fleet/#", "-C", "1", "-W", "20", "-F", mosquittoProps)
	b.waitSubscribers(t, "fleet/#", 2)
	dev1 := mustV5Pass(t, b.addr, "dev1", "dev1", "dev1-pw")
	props := &paho.PublishProperties{
		User:          paho.UserProperties{{Key: "owner-phone", Value: "010-8378-1234"}, {Key: "trace-id", Value: "4bf92f35"}},
		ResponseTopic: "fleet/dev1/reply", CorrelationData: []byte("name=Hong Gildong"), ContentType: "application/json",
	}
	if res, err := dev1.Publish(t.Context(), &paho.Publish{Topic: "fleet/dev1/telemetry", QoS: 1, Properties: props,
		Payload: []byte(`{"DATA":{"USER_NAME":"Hong Gildong","LAT":1}}`)}); err != nil || res.ReasonCode != 0 {
		t.Fatalf("publish: %v %+v", err, res)
	}
	m := expectMsg(t, analytics.msgs, 5*time.Second)
	p := m.Properties
	if string(m.Payload) != `{"DATA":{"LAT":1}}` || p == nil ||
		!slices.Equal(p.User, paho.UserProperties{{Key: "trace-id", Value: "4bf92f35"}, {Key: "x-identity", Value: "dev1"}}) ||
		p.ResponseTopic != "fleet/dev1/reply" || p.CorrelationData != nil || p.ContentType != "application/json" {
		t.Fatalf("analytics got %s %+v", m.Payload, p)
	}
	want := `C=application/json|D=|R=fleet/dev1/reply|P=trace-id:4bf92f35 x-identity:dev1|p={"DATA":{"LAT":1}}` + "\n"
	if got, err := wait(); err != nil || got != want {
		t.Errorf("mosquitto_sub:\n got %q, %v\nwant %q", got, err, want)
	}
}

// checkRaw fails unless m is the raw view of a publishPersonal message:
// the seed as published (normalised) and every property as sent.
func checkRaw(t *testing.T, who string, m *paho.Publish) {
	t.Helper()
	if !bytes.Contains(m.Payload, []byte("홍길수")) || !bytes.Contains(m.Payload, []byte(`"LAT":37.4057689`)) {
		t.Errorf("%s: payload %s", who, m.Payload)
	}
	p := m.Properties
	if p == nil {
		t.Errorf("%s: no properties", who)
		return
	}
	if want := (paho.UserProperties{{Key: "owner-phone", Value: "010-8378-1234"}, {Key: "x-identity", Value: "dev1"}}); !slices.Equal(p.User, want) {
		t.Errorf("%s: user properties %q, want %q", who, p.User, want)
	}
	if p.ResponseTopic != personalProps.ResponseTopic || !bytes.Equal(p.CorrelationData, personalProps.CorrelationData) || p.ContentType != personalProps.ContentType {
		t.Errorf("%s: response topic %q, correlation data %q, content type %q", who, p.ResponseTopic, p.CorrelationData, p.ContentType)
	}
}
