package hooks

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/mqttwaf/mqttwaf/mqttwaf"
)

// fleetExample starts a broker with examples/hardened-broker/fleet.yaml,
// the README's worked example, with its demo credentials and pseudonym key.
func fleetExample(t *testing.T) *testBroker {
	t.Helper()
	p, err := mqttwaf.ReadPolicyFile(filepath.Join("..", "examples", "hardened-broker", "fleet.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return startBrokerWith(t, p, brokerOpts{})
}

func readFile(t *testing.T, parts ...string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(parts...))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestPerSubscriberViews: one publish, two views. The back end (view: raw)
// gets the message as published (normalised), the analytics subscriber the
// redacted one, byte for byte what wafcheck prints for the same policy.
func TestPerSubscriberViews(t *testing.T) {
	b := fleetExample(t)
	seed := readFile(t, "..", "mqttwaf", "testdata", "komdi-alarm.json")
	golden := readFile(t, "..", "examples", "wafcheck", "testdata", "komdi-alarm.fleet-redacted.json")

	backend := mustV5Pass(t, b.addr, "backend", "backend", "backend-demo-pass")
	backend.subscribe(t, 1, "fleet/+/telemetry")
	analytics := mustV5Pass(t, b.addr, "analytics", "analytics", "analytics-demo-pass")
	analytics.subscribe(t, 1, "fleet/+/telemetry")
	wait := mosquittoSub(t, b.addr, "-i", "analytics-mosquitto", "-u", "analytics", "-P", "analytics-demo-pass",
		"-t", "fleet/+/telemetry", "-C", "1", "-W", "20", "-N")
	b.waitSubscribed(t, "fleet/+/telemetry")
	b.waitSubscribers(t, "fleet/+/telemetry", 3)

	dev1 := mustV5Pass(t, b.addr, "dev1", "dev1", "dev1-demo-pass")
	if _, err := dev1.publish(t, "fleet/dev1/telemetry", 1, seed); err != nil {
		t.Fatal(err)
	}
	raw := expectMsg(t, backend.msgs, 5*time.Second).Payload
	if !bytes.Contains(raw, []byte("홍길수")) || !bytes.Contains(raw, []byte(`"LAT":37.4057689`)) || bytes.Contains(raw, []byte(": ")) {
		t.Fatalf("raw view: %s", raw)
	}
	if got := expectMsg(t, analytics.msgs, 5*time.Second).Payload; !bytes.Equal(got, golden) {
		t.Fatalf("redacted view (paho):\n got %s\nwant %s", got, golden)
	}
	got, err := wait()
	if err != nil {
		t.Fatal(err)
	}
	if got != string(golden) {
		t.Fatalf("redacted view (mosquitto_sub):\n got %s\nwant %s", got, golden)
	}
	e := b.events.wait(t, "payload.redact", "redacted", time.Second)
	if !strings.Contains(e.Detail, "pseudonym:DATA.USER_ID=1") || strings.Contains(e.Detail, "01012344321") {
		t.Fatalf("event detail %q", e.Detail)
	}
	// The redaction was done once, at publish: the deliveries found it cached.
	if n := b.events.count("redact", ""); n != 0 {
		t.Fatalf("%d deliveries redacted again", n)
	}
}

// TestRetainedViews: a late subscriber to a retained message gets its own
// view, as a live one does.
func TestRetainedViews(t *testing.T) {
	b := fleetExample(t)
	status := []byte(`{"DATA":{"USER_NAME":"홍길수","LAT":37.4057689,"LON":126.9720319},"note":"call 010-1234-5678"}`)
	dev1 := mustV5Pass(t, b.addr, "dev1", "dev1", "dev1-demo-pass")
	if _, err := dev1.Publish(t.Context(), &paho.Publish{Topic: "fleet/dev1/status", QoS: 1, Retain: true, Payload: status}); err != nil {
		t.Fatal(err)
	}
	// Evict the publish-time redaction from the cache's point of view: a
	// retained message may be fetched long after; the view is made again.
	backend := mustV5Pass(t, b.addr, "backend", "backend", "backend-demo-pass")
	backend.subscribe(t, 1, "fleet/+/status")
	if got := expectMsg(t, backend.msgs, 5*time.Second).Payload; !bytes.Equal(got, status) {
		t.Fatalf("raw view of the retained message: %s", got)
	}
	ops := mustV5Pass(t, b.addr, "ops", "ops", "ops-demo-pass")
	ops.subscribe(t, 1, "fleet/#")
	got := expectMsg(t, ops.msgs, 5*time.Second).Payload
	for _, secret := range []string{"홍길수", "37.4057689", "010-1234-5678"} {
		if bytes.Contains(got, []byte(secret)) {
			t.Fatalf("redacted view of the retained message contains %q: %s", secret, got)
		}
	}
	if !bytes.Contains(got, []byte("5678")) { // the phone detector keeps the last 4
		t.Fatalf("redacted view: %s", got)
	}
}

// TestRedactionWithoutViews: with no raw view anywhere, the redacted payload
// replaces the message itself, stored and delivered; the WAF's marker of a
// stored view reaches nobody.
func TestRedactionWithoutViews(t *testing.T) {
	b := startBroker(t, `
payloads:
  - topics: ["t/#"]
    format: json
    redact:
      rules: [{path: name, op: remove}]
      detectors: [{kind: email}]
`, brokerOpts{})
	sub := mustV5(t, b.addr, "sub", "")
	sub.subscribe(t, 1, "t/#")
	pub := mustV5(t, b.addr, "pub", "")
	if _, err := pub.Publish(t.Context(), &paho.Publish{Topic: "t/1", QoS: 1, Retain: true,
		Payload: []byte(`{"name":"Kim","contact":"kim@example.com","t":21.5}`)}); err != nil {
		t.Fatal(err)
	}
	want := `{"contact":"***************","t":21.5}`
	m := expectMsg(t, sub.msgs, 5*time.Second)
	if string(m.Payload) != want || m.Properties != nil && len(m.Properties.User) > 0 {
		t.Fatalf("got %s %+v, want %s and no user properties", m.Payload, m.Properties, want)
	}
	late := mustV5(t, b.addr, "late", "")
	late.subscribe(t, 1, "t/1")
	m = expectMsg(t, late.msgs, 5*time.Second)
	if string(m.Payload) != want || m.Properties != nil && len(m.Properties.User) > 0 {
		t.Fatalf("retained: got %s %+v, want %s and no user properties", m.Payload, m.Properties, want)
	}
}
