package mqttwaf

import (
	"bufio"
	"bytes"
	"encoding/json"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"
)

// logLines decodes JSON lines written by a slog JSON handler.
func logLines(t *testing.T, buf *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(buf)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("log line %q is not JSON: %v", sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}

// TestLogSink: one JSON record per event, message "mqttwaf", the
// documented snake_case keys (empty ones left out), blocks at WARN and
// rewrites at INFO.
func TestLogSink(t *testing.T) {
	full := Event{
		Time: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC), Stage: StagePublish, Rule: "limits.topic", Action: Reject,
		Enforced: true, Reason: "topic_too_long", Code: CodeTopicNameInvalid, Listener: "tls", ClientID: "dev1",
		Username: "alice", RemoteIP: "192.0.2.7", RemotePort: 50123, Topic: "a/b", Size: 42, Limit: 256, Value: 300, Detail: "context",
	}
	tests := []struct {
		name      string
		ev        Event
		level     string
		wantAttrs map[string]any
	}{
		{"block with every field", full, "WARN", map[string]any{
			"stage": "publish", "rule": "limits.topic", "action": "reject", "enforced": true, "reason": "topic_too_long",
			"code": "0x90", "listener": "tls", "client_id": "dev1", "username": "alice", "remote_ip": "192.0.2.7",
			"remote_port": 50123.0, "topic": "a/b", "size": 42.0, "limit": 256.0, "value": 300.0, "detail": "context",
		}},
		{"rewrite", Event{Stage: StageConnect, Rule: "connections.keepalive", Action: Rewrite, Enforced: false, Reason: "keepalive_clamped", ClientID: "dev1", Limit: 1200}, "INFO", map[string]any{
			"stage": "connect", "rule": "connections.keepalive", "action": "rewrite", "enforced": false,
			"reason": "keepalive_clamped", "client_id": "dev1", "limit": 1200.0, "value": 0.0,
		}},
		{"drop", Event{Stage: StageBroker, Rule: "broker.dropped", Action: Drop, Enforced: true}, "WARN", map[string]any{
			"stage": "broker", "rule": "broker.dropped", "action": "drop", "enforced": true, "reason": "",
		}},
		{"ban", Event{Stage: StageConnect, Rule: "r", Action: Ban, Enforced: true, Code: CodeBanned}, "WARN", map[string]any{
			"stage": "connect", "rule": "r", "action": "ban", "enforced": true, "reason": "", "code": "0x8A",
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			sink := NewJSONLogSink(slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
			sink.Emit(tc.ev)
			lines := logLines(t, &buf)
			if len(lines) != 1 {
				t.Fatalf("%d log lines, want 1", len(lines))
			}
			got := lines[0]
			if got["level"] != tc.level || got["msg"] != "mqttwaf" {
				t.Errorf("level %v msg %v, want %s mqttwaf", got["level"], got["msg"], tc.level)
			}
			delete(got, "level")
			delete(got, "msg")
			delete(got, "time")
			if !maps.Equal(got, tc.wantAttrs) {
				t.Errorf("attributes\n%v\nwant\n%v", got, tc.wantAttrs)
			}
		})
	}

	t.Run("logger level", func(t *testing.T) {
		var buf bytes.Buffer
		sink := &LogSink{Logger: slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn}))}
		sink.Emit(Event{Action: Rewrite, Rule: "r"})
		sink.Emit(Event{Action: Reject, Rule: "r"})
		if lines := logLines(t, &buf); len(lines) != 1 || lines[0]["action"] != "reject" {
			t.Errorf("lines = %v, want only the block", lines)
		}
	})
}

// TestEventJSON: an Event marshals with the same snake_case keys as the log
// and reads back.
func TestEventJSON(t *testing.T) {
	e := Event{
		Time: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC), Stage: StageSubscribe, Rule: "limits.topic", Action: Reject,
		Enforced: true, Reason: "topic_reserved", Code: CodeNotAuthorized, Listener: "ws", ClientID: "c", Username: "u",
		RemoteIP: "2001:db8::1", RemotePort: 8883, Topic: "$mqttwaf/#", Size: 1, Limit: 2, Value: 3, Detail: "d",
	}
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	want := []string{"action", "client_id", "code", "detail", "enforced", "limit", "listener", "reason", "remote_ip", "remote_port", "rule", "size", "stage", "time", "topic", "username", "value"}
	if got := slices.Sorted(maps.Keys(m)); !slices.Equal(got, want) {
		t.Errorf("JSON keys %v\nwant %v", got, want)
	}
	if m["code"] != "0x87" || m["action"] != "reject" {
		t.Errorf("code %v action %v", m["code"], m["action"])
	}
	var back Event
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back != e {
		t.Errorf("round trip: %+v\nwant %+v", back, e)
	}
}

// TestEventsNeverCarrySecrets runs refused CONNECTs and PUBLISHes carrying
// a password, a will payload and a message payload through a WAF logging
// through the default LogSink: none of them may reach the log.
func TestEventsNeverCarrySecrets(t *testing.T) {
	const (
		password    = "hunter2-PASSWORD"
		payload     = "PAYLOAD-4111111111111111"
		willPayload = "WILL-PAYLOAD-secret"
		corrData    = "CORRELATION-secret"
		userValue   = "USERPROP-secret"
	)
	var buf bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	w, err := New(mustParse(t, "wills: {on_violation: strip}\n"), Options{Logger: logger, Rules: []Rule{upperRule{}}})
	if err != nil {
		t.Fatal(err)
	}
	c := testClient("dev1", "alice")
	props := Properties{CorrelationData: []byte(corrData), User: slices.Repeat([]UserProperty{{Key: "k", Value: userValue}}, 20)}
	w.Connect(&Connect{Client: c, Password: []byte(password), Keepalive: 0,
		Will: &Message{Topic: "$SYS/x", Payload: []byte(willPayload), Props: props}})
	w.Connect(&Connect{Client: testClient("dev1", "mallory"), Password: []byte(password), Keepalive: 60, UserProperties: props.User})
	w.Publish(c, &Message{Topic: "$SYS/x", Payload: []byte(payload), Props: props})
	w.Publish(c, &Message{Topic: "a/b", Payload: []byte(payload), Props: props})
	w.Publish(c, &Message{Topic: "a/b", Payload: []byte(strings.ToLower(payload))})

	out := buf.String()
	if n := len(logLines(t, bytes.NewBufferString(out))); n < 5 {
		t.Fatalf("only %d events logged:\n%s", n, out)
	}
	for _, secret := range []string{password, payload, strings.ToLower(payload), willPayload, corrData, userValue} {
		if strings.Contains(out, secret) {
			t.Errorf("the log contains %q:\n%s", secret, out)
		}
	}
}
