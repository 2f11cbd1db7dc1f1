package mqttwaf

import (
	"bytes"
	"strings"
	"testing"
)

// TestViewKeyAcrossRestarts: a message stored as its redacted view (no raw
// role) and read back by a WAF with the same Options.ViewKey, as after a
// broker restart, is delivered as stored; under another key the marker is
// not trusted and the view is made again, which for a pseudonym is a
// second, different pseudonym. So a broker that keeps messages across
// restarts must keep the key with them.
func TestViewKeyAcrossRestarts(t *testing.T) {
	t.Setenv("MQTTWAF_VIEWKEY_PSEUDONYM_KEY", "viewkey-test-pseudonym-key-0123456789")
	doc := testIdentity + `redaction: {pseudonym_key_env: MQTTWAF_VIEWKEY_PSEUDONYM_KEY}
payloads:
  - topics: ["fleet/+/telemetry"]
    format: json
    redact:
      rules:
        - {path: DATA.USER_NAME, op: remove}
        - {path: DATA.USER_ID, op: pseudonym}
`
	p, err := ParsePolicy([]byte(doc), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	key := bytes.Repeat([]byte{7}, minViewKey)
	newWAF := func(k []byte) *WAF {
		t.Helper()
		w, err := New(p, Options{ViewKey: k, Sink: &eventLog{}})
		if err != nil {
			t.Fatal(err)
		}
		return w
	}
	before := newWAF(key)
	c := testClient("d1", "d1")
	m := &Message{Topic: "fleet/d1/telemetry", QoS: 1, Payload: []byte(`{"DATA":{"USER_NAME":"x","USER_ID":"01012344321"}}`)}
	v, stored := before.Publish(c, m)
	if v.Blocked() || stored == nil || len(stored.Props.User) == 0 || stored.Props.User[0].Key != viewMarker {
		t.Fatalf("publish: %+v, stored %+v: want the marked redacted view", v, stored)
	}
	live, _ := before.ViewMessage(c, stored)
	tests := []struct {
		name string
		key  []byte
		same bool // delivered exactly as the live delivery before the restart
	}{
		{"same key", key, true},
		{"other key", bytes.Repeat([]byte{8}, minViewKey), false},
		{"random key", nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, _ := newWAF(tc.key).ViewMessage(c, stored)
			if same := bytes.Equal(got.Payload, live.Payload); same != tc.same {
				t.Fatalf("after restart %s, live before %s: same = %v, want %v", got.Payload, live.Payload, same, tc.same)
			}
			for _, u := range got.Props.User {
				if u.Key == viewMarker {
					t.Fatalf("marker delivered: %+v", got.Props.User)
				}
			}
		})
	}
	if _, err := New(p, Options{ViewKey: []byte("short")}); err == nil || !strings.Contains(err.Error(), "ViewKey") {
		t.Fatalf("short key: %v", err)
	}
}
