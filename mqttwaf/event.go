package mqttwaf

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Stage is the point of the packet lifecycle where a decision was taken.
type Stage string

// Stages, in the order a connection meets them.
const (
	StageAccept    Stage = "accept"    // a socket was accepted, no MQTT yet
	StageConnect   Stage = "connect"   // CONNECT (including its Last Will)
	StageSubscribe Stage = "subscribe" // one filter of a SUBSCRIBE
	StagePublish   Stage = "publish"   // an inbound PUBLISH
	StageDeliver   Stage = "deliver"   // one delivery of a message to one subscriber
	StageBroker    Stage = "broker"    // something the broker did on its own (a dropped delivery)
)

// Event is the structured record of one decision that was not a plain
// allow: a block, rewrite, ban or limit. Events never carry payloads or
// passwords, which are what the WAF protects.
type Event struct {
	Time   time.Time `json:"time"`
	Stage  Stage     `json:"stage"`
	Rule   string    `json:"rule"`
	Action Action    `json:"action"`
	// Enforced is false when the policy runs in DetectionOnly: the action
	// was recorded but the traffic went through unchanged.
	Enforced bool       `json:"enforced"`
	Reason   string     `json:"reason"`
	Code     ReasonCode `json:"code,omitempty"` // 0 when the action sends no reason code

	Listener string `json:"listener,omitempty"`
	ClientID string `json:"client_id,omitempty"`
	Username string `json:"username,omitempty"`
	RemoteIP string `json:"remote_ip,omitempty"`
	// RemotePort is the client's source port: with RemoteIP it tells two
	// devices behind one NAT apart in a log. 0 when unknown.
	RemotePort int    `json:"remote_port,omitempty"`
	Topic      string `json:"topic,omitempty"` // topic or filter; empty for connection-level events

	Size   int    `json:"size,omitempty"`  // payload bytes (publish) or packet bytes, when known
	Limit  int64  `json:"limit,omitempty"` // the limit crossed...
	Value  int64  `json:"value,omitempty"` // ...and the value that crossed it
	Detail string `json:"detail,omitempty"`
}

// Sink receives events. Emit is called synchronously on the packet path, so
// it must be quick and must not block; it must not retain e's slices.
// Implementations must be safe for concurrent use.
type Sink interface {
	Emit(e Event)
}

// SinkFunc adapts a function to a Sink.
type SinkFunc func(e Event)

// Emit calls f(e).
func (f SinkFunc) Emit(e Event) { f(e) }

// LogSink writes events through log/slog, one record per event, with the
// message "mqttwaf" and snake_case attributes. Blocks are logged at Warn,
// rewrites and other events at Info.
type LogSink struct {
	Logger *slog.Logger
}

// NewJSONLogSink returns a LogSink writing JSON lines to w (typically
// os.Stderr), the WAF's default.
func NewJSONLogSink(l *slog.Logger) *LogSink { return &LogSink{Logger: l} }

// Emit implements Sink.
func (s *LogSink) Emit(e Event) {
	level := slog.LevelInfo
	if e.Action.Blocks() {
		level = slog.LevelWarn
	}
	if !s.Logger.Enabled(context.Background(), level) {
		return
	}
	attrs := make([]slog.Attr, 0, 16)
	attrs = append(attrs,
		slog.String("stage", string(e.Stage)),
		slog.String("rule", e.Rule),
		slog.String("action", e.Action.String()),
		slog.Bool("enforced", e.Enforced),
		slog.String("reason", e.Reason))
	if e.Code != 0 {
		code, _ := e.Code.MarshalText()
		attrs = append(attrs, slog.String("code", string(code)))
	}
	str := func(k, v string) {
		if v != "" {
			attrs = append(attrs, slog.String(k, v))
		}
	}
	str("listener", e.Listener)
	str("client_id", e.ClientID)
	str("username", e.Username)
	str("remote_ip", e.RemoteIP)
	if e.RemotePort != 0 {
		attrs = append(attrs, slog.Int("remote_port", e.RemotePort))
	}
	str("topic", e.Topic)
	str("detail", e.Detail)
	if e.Size != 0 {
		attrs = append(attrs, slog.Int("size", e.Size))
	}
	if e.Limit != 0 || e.Value != 0 {
		attrs = append(attrs, slog.Int64("limit", e.Limit), slog.Int64("value", e.Value))
	}
	r := slog.NewRecord(e.Time, level, "mqttwaf", 0)
	r.AddAttrs(attrs...)
	_ = s.Logger.Handler().Handle(context.Background(), r)
}

func itoa(n int64) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			break
		}
	}
	return string(b[i:])
}

// Count is one counter: how many decisions a rule took with an action, for
// a reason (why a message was dropped, say, or which limit refused it).
type Count struct {
	Rule     string `json:"rule"`
	Action   Action `json:"action"`
	Reason   string `json:"reason"`
	Enforced bool   `json:"enforced"`
	N        uint64 `json:"n"`
}

type counterKey struct {
	rule     string
	action   Action
	reason   string
	enforced bool
}

// counters counts events per rule, action, reason and enforcement, for
// metrics. Keys come from the compiled policy and the rules' code (rule ids
// and reasons), never from clients, so the map stays small.
type counters struct {
	m sync.Map // counterKey -> *atomic.Uint64
}

func (c *counters) add(rule string, a Action, reason string, enforced bool) {
	k := counterKey{rule, a, reason, enforced}
	v, ok := c.m.Load(k)
	if !ok {
		v, _ = c.m.LoadOrStore(k, new(atomic.Uint64))
	}
	v.(*atomic.Uint64).Add(1)
}

// snapshot returns the counters sorted by rule, action, reason and
// enforcement.
func (c *counters) snapshot() []Count {
	var out []Count
	c.m.Range(func(k, v any) bool {
		ck := k.(counterKey)
		out = append(out, Count{Rule: ck.rule, Action: ck.action, Reason: ck.reason, Enforced: ck.enforced, N: v.(*atomic.Uint64).Load()})
		return true
	})
	slices.SortFunc(out, func(a, b Count) int {
		if c := strings.Compare(a.Rule, b.Rule); c != 0 {
			return c
		}
		if a.Action != b.Action {
			return int(a.Action) - int(b.Action)
		}
		if c := strings.Compare(a.Reason, b.Reason); c != 0 {
			return c
		}
		switch {
		case a.Enforced == b.Enforced:
			return 0
		case a.Enforced:
			return 1
		}
		return -1
	})
	return out
}
