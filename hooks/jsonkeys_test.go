package hooks

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
)

// These tests run JSON key matching and the deletion of retained messages
// end to end: a real broker with the WAF, paho.golang (MQTT 5) and
// mosquitto_pub/mosquitto_sub as clients.

// caseVariants is the attack: field rules check DATA.LAT and DATA.CMD, and
// a back end decoding with encoding/json (case-insensitive, last match
// wins) reads LAT 999 and CMD "reboot".
const caseVariants = `{"DATA":{"LAT":45,"lat":999,"CMD":"status","cmd":"reboot"}}`

// jsonKeysPolicy: devices publish (and retain) telemetry under their own
// name; the back end sees payloads raw, analytics redacted. entry adds keys
// to the payload entry (the opt-outs); redact replaces its redact section.
func jsonKeysPolicy(t *testing.T, entry, redact string) string {
	t.Helper()
	creds := credsFile(t, "dev1:device:dev1-pw", "backend:backend:backend-pw", "analytics:analytics:analytics-pw")
	if redact == "" {
		redact = "    redact: {rules: [{path: DATA.USER_NAME, op: remove}]}\n"
	}
	return fmt.Sprintf(`identity: {credentials_file: %s, anonymous: {allow: never}}
roles:
  device: {publish: ["fleet/{username}/#"], retain: ["fleet/{username}/#"]}
  backend: {subscribe: ["fleet/#"], view: raw}
  analytics: {subscribe: ["fleet/#"]}
rates:
  retained: {per_identity: {topics: 1, bytes: 1MiB}}
%spayloads:
  - topics: ["fleet/+/telemetry", "fleet/+/status"]
    format: json
    fields:
      - {path: DATA.LAT, max: 90}
      - {path: DATA.CMD, enum: [status]}
%s%s`, creds, ratesLifted, redact, entry)
}

// publishV5 publishes at QoS 1 and returns the PUBACK's reason code (-1 if
// there was none).
func publishV5(t *testing.T, c *v5, topic string, retain bool, payload string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := c.Publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Retain: retain, Payload: []byte(payload)})
	switch {
	case resp == nil:
		t.Fatalf("publish %s: no PUBACK: %v", topic, err)
	case err == nil && resp.ReasonCode == 0:
		return 0
	}
	return int(resp.ReasonCode)
}

// TestJSONCaseVariantKeysRefused: the case-variant payload gets PUBACK 0x99
// (MQTT 5, QoS 1) and reaches no subscriber, paho's or mosquitto_sub; the
// same message without the variants flows.
func TestJSONCaseVariantKeysRefused(t *testing.T) {
	b := startBroker(t, jsonKeysPolicy(t, "", ""), brokerOpts{})
	wait := mosquittoSub(t, b.addr, "-V", "mqttv5", "-i", "backend-mosquitto", "-u", "backend", "-P", "backend-pw",
		"-t", "fleet/+/telemetry", "-C", "1", "-W", "20", "-N")
	b.waitSubscribed(t, "fleet/+/telemetry")
	sub := mustV5Pass(t, b.addr, "backend", "backend", "backend-pw")
	sub.subscribe(t, 1, "fleet/#")
	dev := mustV5Pass(t, b.addr, "dev1", "dev1", "dev1-pw")

	for _, payload := range []string{caseVariants, `{"DATA":{"CMD":"status","ＣＭＤ":"reboot"}}`} {
		if rc := publishV5(t, dev, "fleet/dev1/telemetry", false, payload); rc != 0x99 {
			t.Fatalf("%s: PUBACK 0x%02x, want 0x99", payload, rc)
		}
	}
	e := b.events.wait(t, "payload.json", "duplicate_key", time.Second)
	if e.ClientID != "dev1" || e.Topic != "fleet/dev1/telemetry" || e.Code != 0x99 {
		t.Fatalf("event %+v", e)
	}
	expectNoMsg(t, sub.msgs, 300*time.Millisecond)

	ok := `{"DATA":{"LAT":45,"CMD":"status"}}`
	if rc := publishV5(t, dev, "fleet/dev1/telemetry", false, ok); rc != 0 {
		t.Fatalf("PUBACK 0x%02x for %s", rc, ok)
	}
	if got := expectMsg(t, sub.msgs, 5*time.Second).Payload; string(got) != ok {
		t.Fatalf("paho subscriber got %s, want %s", got, ok)
	}
	// mosquitto_sub's first message is the good one: the refused ones never came.
	if got, err := wait(); err != nil || got != ok {
		t.Fatalf("mosquitto_sub got %q, %v; want %s", got, err, ok)
	}
}

// TestJSONKeysRedactedAsBackEndsReadThem: a lone lower-case user_name, and
// DATA as an array of objects, are redacted for a subscriber with the
// redacted view (paho and mosquitto_sub), while the raw view gets them as
// published; a field rule on DATA.LAT checks a lone "lat".
func TestJSONKeysRedactedAsBackEndsReadThem(t *testing.T) {
	b := startBroker(t, jsonKeysPolicy(t, "", ""), brokerOpts{})
	wait := mosquittoSub(t, b.addr, "-V", "mqttv5", "-i", "analytics-mosquitto", "-u", "analytics", "-P", "analytics-pw",
		"-t", "fleet/+/telemetry", "-C", "2", "-W", "20")
	b.waitSubscribed(t, "fleet/+/telemetry")
	raw := mustV5Pass(t, b.addr, "backend", "backend", "backend-pw")
	raw.subscribe(t, 1, "fleet/#")
	red := mustV5Pass(t, b.addr, "analytics", "analytics", "analytics-pw")
	red.subscribe(t, 1, "fleet/#")
	dev := mustV5Pass(t, b.addr, "dev1", "dev1", "dev1-pw")

	for _, tc := range []struct{ in, redacted string }{
		{`{"DATA":{"user_name":"홍길수","LAT":37.4}}`, `{"DATA":{"LAT":37.4}}`},
		{`{"DATA":[{"USER_NAME":"x","LAT":1},{"user_name":"y"}]}`, `{"DATA":[{"LAT":1},{}]}`},
	} {
		if rc := publishV5(t, dev, "fleet/dev1/telemetry", false, tc.in); rc != 0 {
			t.Fatalf("PUBACK 0x%02x for %s", rc, tc.in)
		}
		if got := expectMsg(t, raw.msgs, 5*time.Second).Payload; string(got) != tc.in {
			t.Errorf("raw view got %s, want %s", got, tc.in)
		}
		if got := expectMsg(t, red.msgs, 5*time.Second).Payload; string(got) != tc.redacted {
			t.Errorf("redacted view got %s, want %s", got, tc.redacted)
		}
	}
	got, err := wait()
	if want := `{"DATA":{"LAT":37.4}}` + "\n" + `{"DATA":[{"LAT":1},{}]}`; err != nil || strings.TrimSpace(got) != want {
		t.Errorf("mosquitto_sub (redacted view) got %q, %v; want %q", got, err, want)
	}
	// A field rule on DATA.LAT checks a lone "lat", and the objects of an array.
	for _, in := range []string{`{"DATA":{"lat":999}}`, `{"DATA":[{"LAT":1},{"LAT":999}]}`} {
		if rc := publishV5(t, dev, "fleet/dev1/telemetry", false, in); rc != 0x99 {
			t.Errorf("%s: PUBACK 0x%02x, want 0x99", in, rc)
		}
	}
	if e := b.events.wait(t, "payload.schema", "maximum", time.Second); !strings.Contains(e.Detail, "/DATA/lat") {
		t.Errorf("event detail %q, want the place /DATA/lat", e.Detail)
	}
	expectNoMsg(t, raw.msgs, 300*time.Millisecond)
}

// TestJSONKeysExactOptOuts: with json.exact_keys, exact_field_paths and
// redact.exact_paths, keys are matched as written again: the case-variant
// payload is forwarded (the field rules see LAT 45 and CMD "status"), and a
// lower-case user_name or an array of objects is not redacted.
func TestJSONKeysExactOptOuts(t *testing.T) {
	b := startBroker(t, jsonKeysPolicy(t, "    json: {exact_keys: true}\n    exact_field_paths: true\n",
		"    redact: {rules: [{path: DATA.USER_NAME, op: remove}], exact_paths: true}\n"), brokerOpts{})
	red := mustV5Pass(t, b.addr, "analytics", "analytics", "analytics-pw")
	red.subscribe(t, 1, "fleet/#")
	wait := mosquittoSub(t, b.addr, "-V", "mqttv5", "-i", "analytics-mosquitto", "-u", "analytics", "-P", "analytics-pw",
		"-t", "fleet/+/telemetry", "-C", "3", "-W", "20")
	b.waitSubscribed(t, "fleet/+/telemetry")
	dev := mustV5Pass(t, b.addr, "dev1", "dev1", "dev1-pw")

	var all []string
	for _, tc := range []struct{ in, out string }{
		{caseVariants, caseVariants},
		{`{"DATA":{"user_name":"y","LAT":1}}`, `{"DATA":{"user_name":"y","LAT":1}}`},
		{`{"DATA":{"USER_NAME":"x","LAT":1}}`, `{"DATA":{"LAT":1}}`}, // the exact key still is
	} {
		if rc := publishV5(t, dev, "fleet/dev1/telemetry", false, tc.in); rc != 0 {
			t.Fatalf("PUBACK 0x%02x for %s", rc, tc.in)
		}
		if got := expectMsg(t, red.msgs, 5*time.Second).Payload; string(got) != tc.out {
			t.Errorf("redacted view got %s, want %s", got, tc.out)
		}
		all = append(all, tc.out)
	}
	if got, err := wait(); err != nil || strings.TrimSpace(got) != strings.Join(all, "\n") {
		t.Errorf("mosquitto_sub got %q, %v; want %q", got, err, all)
	}
}

// TestEmptyRetainedDeletesOnJSONTopic: an empty retained PUBLISH on a JSON
// topic (with fields and redaction) deletes the retained message, from
// paho and from mosquitto_pub -r -n: a later subscriber receives nothing
// retained, and the publisher's retained budget (one topic here) is free
// again. A non-retained empty payload is still refused.
func TestEmptyRetainedDeletesOnJSONTopic(t *testing.T) {
	b := startBroker(t, jsonKeysPolicy(t, "", ""), brokerOpts{})
	dev := mustV5Pass(t, b.addr, "dev1", "dev1", "dev1-pw")
	status := `{"DATA":{"USER_NAME":"홍길수","LAT":37.4}}`
	if rc := publishV5(t, dev, "fleet/dev1/status", true, status); rc != 0 {
		t.Fatalf("retain: PUBACK 0x%02x", rc)
	}
	if rc := publishV5(t, dev, "fleet/dev1/telemetry", true, `{"DATA":{"LAT":1}}`); rc != 0x97 {
		t.Fatalf("a second retained topic: PUBACK 0x%02x, want 0x97 (budget of one topic)", rc)
	}
	retained := func(id string) map[string]string {
		c := mustV5Pass(t, b.addr, id, "backend", "backend-pw")
		c.subscribe(t, 1, "fleet/#")
		out := map[string]string{}
		for {
			select {
			case m := <-c.msgs:
				// Only retained copies: a live message still being
				// delivered when the subscription arrives (the deletion
				// itself, say) is not what the store holds.
				if m.Retain {
					out[m.Topic] = string(m.Payload)
				}
			case <-time.After(300 * time.Millisecond):
				_ = c.Disconnect(&paho.Disconnect{})
				return out
			}
		}
	}
	if got := retained("backend"); len(got) != 1 || got["fleet/dev1/status"] != status {
		t.Fatalf("retained before the delete: %v", got)
	}
	// A current subscriber gets the deletion as an empty message, not an error.
	red := mustV5Pass(t, b.addr, "analytics", "analytics", "analytics-pw")
	red.subscribe(t, 1, "fleet/#")
	expectMsg(t, red.msgs, 5*time.Second) // the retained message

	if rc := publishV5(t, dev, "fleet/dev1/status", false, ""); rc != 0x99 {
		t.Fatalf("non-retained empty payload: PUBACK 0x%02x, want 0x99", rc)
	}
	if rc := publishV5(t, dev, "fleet/dev1/status", true, ""); rc != 0 {
		t.Fatalf("delete: PUBACK 0x%02x, want 0", rc)
	}
	if m := expectMsg(t, red.msgs, 5*time.Second); len(m.Payload) != 0 {
		t.Fatalf("current subscriber got %q, want the empty deletion", m.Payload)
	}
	if n := b.events.count("redact", "redaction_failed"); n != 0 {
		t.Fatalf("%d redaction_failed events for the empty payload", n)
	}
	if got := retained("backend-2"); len(got) != 0 {
		t.Fatalf("retained after the delete: %v, want nothing", got)
	}
	// The budget share is free: another topic may be retained now.
	if rc := publishV5(t, dev, "fleet/dev1/telemetry", true, `{"DATA":{"LAT":1}}`); rc != 0 {
		t.Fatalf("retain after the delete: PUBACK 0x%02x, want 0", rc)
	}
	if got := retained("backend-3"); len(got) != 1 || got["fleet/dev1/telemetry"] != `{"DATA":{"LAT":1}}` {
		t.Fatalf("retained: %v", got)
	}
	// The same with mosquitto_pub's null message (-n), MQTT 5 and 3.1.1.
	for _, version := range []string{"mqttv5", "mqttv311"} {
		if out, err := mosquittoPub(t, b.addr, "-V", version, "-i", "dev1-"+version, "-u", "dev1", "-P", "dev1-pw",
			"-t", "fleet/dev1/telemetry", "-q", "1", "-r", "-n"); err != nil {
			t.Fatalf("mosquitto_pub -r -n (%s): %v %s", version, err, out)
		}
		if got := retained("backend-4-" + version); len(got) != 0 {
			t.Fatalf("retained after mosquitto_pub -r -n (%s): %v, want nothing", version, got)
		}
		if rc := publishV5(t, dev, "fleet/dev1/telemetry", true, `{"DATA":{"LAT":1}}`); rc != 0 {
			t.Fatalf("retain after mosquitto's delete (%s): PUBACK 0x%02x, want 0", version, rc)
		}
	}
}
