package mqttwaf

import (
	"bufio"
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// flatten turns a decoded JSON object into dotted keys ("event.action"),
// the names ECS documents its fields by.
func flatten(prefix string, v any, out map[string]any) {
	m, ok := v.(map[string]any)
	if !ok {
		out[prefix] = v
		return
	}
	for k, x := range m {
		if prefix != "" {
			k = prefix + "." + k
		}
		flatten(k, x, out)
	}
}

// ecsFields decodes one ECS line into its dotted fields.
func ecsFields(t *testing.T, line []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(line, &m); err != nil {
		t.Fatalf("ECS line %q is not JSON: %v", line, err)
	}
	out := map[string]any{}
	flatten("", m, out)
	return out
}

// TestECSSink: each event is one line whose ECS fields carry the event:
// the decision in event.* and rule.id, the peer in source.* and user.name,
// what ECS has no field for under mqtt.*.
func TestECSSink(t *testing.T) {
	at := time.Date(2025, 1, 2, 3, 4, 5, 600_000_000, time.FixedZone("CET", 3600))
	tests := []struct {
		name string
		ev   Event
		want map[string]any
		none []string // fields that must be absent
	}{
		{"enforced block", Event{
			Time: at, Stage: StagePublish, Rule: "limits.topic", Action: Reject, Enforced: true,
			Reason: "topic_too_long", Code: CodeTopicNameInvalid, Listener: "tls", ClientID: "dev1", Username: "alice",
			RemoteIP: "192.0.2.7", RemotePort: 50123, Topic: "a/b", Size: 42, Limit: 256, Value: 300, Detail: "context",
		}, map[string]any{
			"@timestamp": "2025-01-02T02:04:05.6Z", "ecs.version": ECSVersion, "log.level": "warn",
			"event.kind": "event", "event.action": "reject", "event.reason": "topic_too_long", "event.outcome": "failure",
			"event.type": []any{"denied"}, "event.category": []any{"network"}, "event.module": "mqttwaf",
			"event.dataset": "mqttwaf.events", "rule.id": "limits.topic", "rule.ruleset": "mqttwaf",
			"source.ip": "192.0.2.7", "source.port": 50123.0, "user.name": "alice",
			"observer.product": "mqttwaf", "observer.type": "firewall", "network.protocol": "mqtt", "network.transport": "tcp",
			"mqtt.stage": "publish", "mqtt.enforced": true, "mqtt.client_id": "dev1", "mqtt.topic": "a/b", "mqtt.listener": "tls",
			"mqtt.reason_code": "0x90", "mqtt.reason_code_name": "topic name invalid", "mqtt.size": 42.0,
			"mqtt.limit": 256.0, "mqtt.value": 300.0, "mqtt.detail": "context",
			"message": "mqttwaf reject publish: limits.topic (topic_too_long): context",
		}, nil},
		{"detection only: the client's attempt went through", Event{
			Time: at, Stage: StageConnect, Rule: "identity.client_id", Action: Disconnect, Enforced: false,
			Reason: "client_id_mismatch", Code: CodeClientIDNotValid, RemoteIP: "2001:db8::1",
		}, map[string]any{
			"log.level": "warn", "event.action": "disconnect", "event.outcome": "success", "event.type": []any{"info"},
			"event.category": []any{"network", "authentication"}, "source.ip": "2001:db8::1", "mqtt.enforced": false,
			"message": "mqttwaf disconnect connect: identity.client_id (client_id_mismatch) [detection_only: not enforced]",
		}, []string{"source.port", "user.name", "mqtt.client_id"}},
		{"rewrite", Event{Time: at, Stage: StageDeliver, Rule: "payloads.redact", Action: Rewrite, Enforced: true, Reason: "redacted"},
			map[string]any{"log.level": "info", "event.action": "rewrite", "event.outcome": "success", "event.type": []any{"change"}},
			[]string{"source.ip", "mqtt.reason_code"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			NewECSSink(&buf).Emit(tc.ev)
			if n := bytes.Count(buf.Bytes(), []byte("\n")); n != 1 || !bytes.HasSuffix(buf.Bytes(), []byte("\n")) {
				t.Fatalf("%d lines, want one ending in a newline: %q", n, buf.String())
			}
			got := ecsFields(t, buf.Bytes())
			for k, want := range tc.want {
				if g, ok := got[k]; !ok || !equalAny(g, want) {
					t.Errorf("%s = %#v, want %#v", k, g, want)
				}
			}
			for _, k := range tc.none {
				if g, ok := got[k]; ok {
					t.Errorf("%s = %#v, want no such field", k, g)
				}
			}
			if !strings.HasPrefix(buf.String(), `{"@timestamp":`) {
				t.Errorf("line does not start with @timestamp: %s", buf.String())
			}
		})
	}
}

func equalAny(a, b any) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return bytes.Equal(ja, jb)
}

// TestEventsFormatECS: a policy with events.format ecs makes the WAF's own
// sink write ECS lines to Options.EventOutput, from a real decision (a
// refused publish, with the client's address and port), and a reload back
// to json switches the format.
func TestEventsFormatECS(t *testing.T) {
	var out bytes.Buffer // written synchronously by the calls below
	w, err := New(mustParse(t, "events: {format: ecs}\nlimits: {topic: {max_levels: 2}}\n"), Options{EventOutput: &out})
	if err != nil {
		t.Fatal(err)
	}
	c := testClient("dev1", "alice")
	if v, _ := w.Publish(c, &Message{Topic: "a/b/c/d", Payload: []byte("x")}); !v.Blocked() {
		t.Fatalf("a 4-level topic passed: %+v", v)
	}
	sc := bufio.NewScanner(bytes.NewReader(out.Bytes()))
	if !sc.Scan() {
		t.Fatal("no event written")
	}
	got := ecsFields(t, sc.Bytes())
	for k, want := range map[string]any{
		"event.action": "reject", "event.reason": "topic_too_many_levels", "event.outcome": "failure", "rule.id": "limits.topic",
		"source.ip": "192.0.2.7", "source.port": 50123.0, "user.name": "alice", "mqtt.client_id": "dev1", "mqtt.topic": "a/b/c/d",
		"ecs.version": ECSVersion,
	} {
		if g := got[k]; !equalAny(g, want) {
			t.Errorf("%s = %#v, want %#v", k, g, want)
		}
	}

	if err := w.Reload(mustParse(t, "limits: {topic: {max_levels: 2}}\n")); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	w.Publish(c, &Message{Topic: "a/b/c/d", Payload: []byte("x")})
	var line map[string]any
	if err := json.Unmarshal(out.Bytes(), &line); err != nil || line["msg"] != "mqttwaf" || line["remote_port"] != 50123.0 {
		t.Fatalf("after a reload to events.format json: %v %s", err, out.String())
	}

	if _, err := ParsePolicy([]byte("events: {format: cef}\n"), "p.yaml"); err == nil || !strings.Contains(err.Error(), "events.format") {
		t.Fatalf("events.format cef: error %v, want one naming events.format", err)
	}
}
