package mqttwaf

import (
	"net/netip"
	"os"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeClock is the WAF's clock in tests (Options.Now): time moves only when
// a test says so, so nothing sleeps.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// eventLog is a Sink that keeps every event.
type eventLog struct {
	mu  sync.Mutex
	evs []Event
}

func (l *eventLog) Emit(e Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.evs = append(l.evs, e)
}

// take returns the events emitted so far and forgets them.
func (l *eventLog) take() []Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	evs := l.evs
	l.evs = nil
	return evs
}

// testWAF is a WAF with a recording sink and a fake clock.
type testWAF struct {
	*WAF
	events *eventLog
	clock  *fakeClock
}

// testIdentity is prepended to every test policy: clients with a verified
// certificate (testClient) or anonymous ones get the role "all", which may
// publish, retain and subscribe everywhere, so the identity and ACL rules
// stay out of the way of the rules under test.
const testIdentity = `identity:
  anonymous: {allow: anywhere, role: all}
  certificate: {identity: cn, role: all}
roles:
  all:
    publish: ["#", "$SYS/#", "$mqttwaf/#"]
    retain: ["#"]
    subscribe: ["#", "$mqttwaf/#"]
    sys: true
    broad_wildcards: true
rates:
  publish:
    per_connection: {messages: 100000000/s, bytes: 1000GiB/s}
    per_username: {messages: 100000000/s, bytes: 1000GiB/s}
    per_ip: {messages: 100000000/s, bytes: 1000GiB/s}
  new_topics: {per_identity: 100000000/h}
  new_client_ids: {global: 100000000/min, per_ip: 100000000/min, per_username: 100000000/min}
  flapping: {off: true}
  connect: {per_ip: 100000000/s, per_network: 100000000/s, per_listener: 100000000/s}
`

// newTestWAF builds a WAF from a YAML policy (through ParsePolicy, as users
// do, after testIdentity) with extra custom rules.
func newTestWAF(tb testing.TB, policyYAML string, rules ...Rule) *testWAF {
	tb.Helper()
	p, err := ParsePolicy([]byte(testIdentity+policyYAML), "test.yaml")
	if err != nil {
		tb.Fatalf("ParsePolicy: %v", err)
	}
	tw := &testWAF{events: &eventLog{}, clock: newFakeClock()}
	tw.WAF, err = New(p, Options{Sink: tw.events, Now: tw.clock.Now, Rules: rules})
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	return tw
}

// newPolicyWAF builds a WAF from a YAML policy as written (no
// testIdentity), with events unthrottled.
func newPolicyWAF(tb testing.TB, policyYAML string) *testWAF {
	tb.Helper()
	p, err := ParsePolicy([]byte("events: {max_per_second: 1000000}\n"+policyYAML), "test.yaml")
	if err != nil {
		tb.Fatalf("ParsePolicy: %v", err)
	}
	tw := &testWAF{events: &eventLog{}, clock: newFakeClock()}
	if tw.WAF, err = New(p, Options{Sink: tw.events, Now: tw.clock.Now}); err != nil {
		tb.Fatalf("New: %v", err)
	}
	return tw
}

// login is a CONNECT with a user name and password from ip, as the adapter
// hands over a network client.
func (tw *testWAF) login(user, pass, ip string) Verdict {
	c := rclient(user, "", ip)
	c.Username, c.Auth = user, AuthNone
	return tw.Connect(&Connect{Client: c, Clean: true, Keepalive: 60, UsernameSet: true, Password: []byte(pass)})
}

// eventSummary is the part of an event most tests compare.
type eventSummary struct {
	Stage    Stage
	Rule     string
	Action   Action
	Enforced bool
	Reason   string
	Code     ReasonCode
}

func summarize(evs []Event) []eventSummary {
	out := make([]eventSummary, len(evs))
	for i, e := range evs {
		out[i] = eventSummary{e.Stage, e.Rule, e.Action, e.Enforced, e.Reason, e.Code}
	}
	return out
}

// testClient returns an MQTT 5 client on listener "tcp", authenticated by
// a certificate for identity user (anonymous if user is empty), as the
// adapter hands it to the WAF.
func testClient(id, user string) *Client {
	c := &Client{
		ID: id, Username: user, Listener: "tcp",
		RemoteAddr: "192.0.2.7:50123", RemoteIP: netip.MustParseAddr("192.0.2.7"),
		Protocol: MQTT5, Auth: AuthCertificate,
		TLS: &TLSInfo{Verified: true, CommonName: user},
	}
	if user == "" {
		c.Auth, c.TLS = AuthAnonymous, nil
	}
	return c
}

// realisticMessage is a telemetry publish of the kind the WAF sees most,
// with the project's shared realistic payload (testdata/komdi-alarm.json).
func realisticMessage(tb testing.TB) *Message {
	payload, err := os.ReadFile("testdata/komdi-alarm.json")
	if err != nil {
		tb.Fatal(err)
	}
	return &Message{
		Topic:   "fleet/device-0042/telemetry",
		QoS:     1,
		Payload: payload,
		Props: Properties{
			PayloadFormat: 1, PayloadFormatSet: true, ContentType: "application/json",
			User: []UserProperty{{Key: "schema", Value: "telemetry/v3"}, {Key: "trace", Value: "4bf92f3577b34da6"}},
		},
	}
}

// Custom rules used across the tests.

// denyTopicRule rejects publishes and subscriptions to one topic.
type denyTopicRule struct {
	id, topic string
	code      ReasonCode
}

func (r *denyTopicRule) ID() string { return r.id }

func (r *denyTopicRule) CheckPublish(p *Publish) Verdict {
	if p.Message.Topic == r.topic {
		return Deny("", "denied_topic", r.code)
	}
	return Verdict{}
}

func (r *denyTopicRule) CheckSubscribe(_ *Client, s *Subscription) Verdict {
	if s.Filter == r.topic {
		return Deny("", "denied_topic", r.code)
	}
	return Verdict{}
}

// upperRule rewrites the payload to upper case through Scratch/SetPayload.
type upperRule struct{}

func (upperRule) ID() string { return "test.upper" }

func (upperRule) CheckPublish(p *Publish) Verdict {
	out := p.Scratch()
	for _, c := range p.Message.Payload {
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		out = append(out, c)
	}
	p.SetPayload(out)
	return Verdict{Action: Rewrite, Reason: "upper"}
}

// suffixRule appends a suffix through Scratch/SetPayload.
type suffixRule struct{ id, suffix string }

func (r suffixRule) ID() string { return r.id }

func (r suffixRule) CheckPublish(p *Publish) Verdict {
	out := append(p.Scratch(), p.Message.Payload...)
	out = append(out, r.suffix...)
	p.SetPayload(out)
	return Verdict{Action: Rewrite, Reason: "suffix"}
}

// emptyRule rewrites every payload to the empty payload.
type emptyRule struct{}

func (emptyRule) ID() string { return "test.empty" }

func (emptyRule) CheckPublish(p *Publish) Verdict {
	p.SetPayload(p.Scratch())
	return Verdict{Action: Rewrite, Reason: "emptied"}
}

// allowDeliverRule allows every delivery (for the deliver-path benchmark).
type allowDeliverRule struct{ prefix string }

func (allowDeliverRule) ID() string { return "test.deliver" }

func (r allowDeliverRule) CheckDeliver(c *Client, topic string) Verdict {
	if strings.HasPrefix(topic, r.prefix) && c.Username == "" {
		return Verdict{Action: Reject, Reason: "anonymous", Code: CodeNotAuthorized}
	}
	return Verdict{}
}

// countRule counts its calls at every stage and allows.
type countRule struct{ n atomic.Int64 }

func (*countRule) ID() string { return "test.count" }

func (r *countRule) CheckConnect(*Connect) Verdict { r.n.Add(1); return Verdict{} }

func (r *countRule) CheckPublish(*Publish) Verdict { r.n.Add(1); return Verdict{} }

func (r *countRule) CheckSubscribe(*Client, *Subscription) Verdict { r.n.Add(1); return Verdict{} }

// stagelessRule implements no stage interface.
type stagelessRule struct{}

func (stagelessRule) ID() string { return "test.stageless" }

// normalized returns a deep copy of v's value in which empty slices and maps
// are nil: YAML writes a nil list as [] and reads [] back as an empty list,
// the same policy.
func normalized[T any](v T) T {
	return normalizeValue(reflect.ValueOf(v)).Interface().(T)
}

func normalizeValue(v reflect.Value) reflect.Value {
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return v
		}
		out := reflect.New(v.Type().Elem())
		out.Elem().Set(normalizeValue(v.Elem()))
		return out
	case reflect.Struct:
		out := reflect.New(v.Type()).Elem()
		out.Set(v) // unexported fields as they are
		for i := 0; i < v.NumField(); i++ {
			if out.Field(i).CanSet() {
				out.Field(i).Set(normalizeValue(v.Field(i)))
			}
		}
		return out
	case reflect.Slice:
		if v.Len() == 0 {
			return reflect.Zero(v.Type())
		}
		out := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
		for i := 0; i < v.Len(); i++ {
			out.Index(i).Set(normalizeValue(v.Index(i)))
		}
		return out
	case reflect.Map:
		if v.Len() == 0 {
			return reflect.Zero(v.Type())
		}
		out := reflect.MakeMapWithSize(v.Type(), v.Len())
		for it := v.MapRange(); it.Next(); {
			out.SetMapIndex(it.Key(), normalizeValue(it.Value()))
		}
		return out
	}
	return v
}
