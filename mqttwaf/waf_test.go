package mqttwaf

import (
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestModes: Enforce stops at the first blocking verdict and returns it;
// DetectionOnly runs every rule, records each would-be block with
// Enforced=false and returns an allowing verdict.
func TestModes(t *testing.T) {
	tests := []struct {
		mode       string
		topic      string
		want       Verdict
		wantEvents []eventSummary
		wantCalls  int64 // calls of the last rule
	}{
		{
			mode: "enforce", topic: "x/y",
			want:       Verdict{Action: Reject, Rule: "test.a", Reason: "denied_topic", Code: CodeNotAuthorized},
			wantEvents: []eventSummary{{StagePublish, "test.a", Reject, true, "denied_topic", CodeNotAuthorized}},
			wantCalls:  0,
		},
		{
			mode: "enforce", topic: "$SYS/x/y",
			want:       Verdict{Action: Reject, Rule: "limits.topic", Reason: "topic_reserved", Code: CodeTopicNameInvalid},
			wantEvents: []eventSummary{{StagePublish, "limits.topic", Reject, true, "topic_reserved", CodeTopicNameInvalid}},
		},
		{
			mode: "enforce", topic: "x/ok", want: Verdict{}, wantCalls: 1,
		},
		{
			mode: "detection_only", topic: "x/y",
			want: Verdict{},
			wantEvents: []eventSummary{
				{StagePublish, "test.a", Reject, false, "denied_topic", CodeNotAuthorized},
				{StagePublish, "test.b", Reject, false, "denied_topic", CodeQuotaExceeded},
			},
			wantCalls: 1,
		},
		{
			mode: "detection_only", topic: "$SYS/x/y",
			want: Verdict{},
			wantEvents: []eventSummary{
				{StagePublish, "limits.topic", Reject, false, "topic_reserved", CodeTopicNameInvalid},
			},
			wantCalls: 1,
		},
	}
	for _, tc := range tests {
		t.Run(tc.mode+" "+tc.topic, func(t *testing.T) {
			counter := &countRule{}
			tw := newTestWAF(t, "mode: "+tc.mode+"\n",
				&denyTopicRule{id: "test.a", topic: "x/y", code: CodeNotAuthorized},
				&denyTopicRule{id: "test.b", topic: "x/y", code: CodeQuotaExceeded},
				counter)
			m := &Message{Topic: tc.topic, Payload: []byte("1")}
			v, out := tw.Publish(testClient("dev1", "alice"), m)
			if v != tc.want {
				t.Errorf("verdict = %+v, want %+v", v, tc.want)
			}
			if v.Blocked() != (tc.want.Action != Allow) {
				t.Errorf("Blocked() = %v", v.Blocked())
			}
			if out != nil {
				t.Errorf("message = %+v, want nil (unchanged)", out)
			}
			if got := summarize(tw.events.take()); !slices.Equal(got, tc.wantEvents) {
				t.Errorf("events = %+v\nwant %+v", got, tc.wantEvents)
			}
			if n := counter.n.Load(); n != tc.wantCalls {
				t.Errorf("the rule after the blocking ones ran %d times, want %d", n, tc.wantCalls)
			}
		})
	}
}

// TestSubscribeAndDeliverModes covers the subscribe and deliver stages.
func TestSubscribeAndDeliverModes(t *testing.T) {
	for _, mode := range []string{"enforce", "detection_only"} {
		t.Run(mode, func(t *testing.T) {
			tw := newTestWAF(t, "mode: "+mode+"\n",
				&denyTopicRule{id: "test.a", topic: "secret/#", code: CodeNotAuthorized},
				allowDeliverRule{prefix: "private/"})
			enforce := mode == "enforce"
			c := testClient("dev1", "alice")
			anon := testClient("dev2", "")

			v := tw.Subscribe(c, &Subscription{Filter: "secret/#", Count: 1})
			if v.Blocked() != enforce {
				t.Errorf("Subscribe(secret/#) = %+v", v)
			}
			if v := tw.Subscribe(c, &Subscription{Filter: "public/#", Count: 1}); v != (Verdict{}) {
				t.Errorf("Subscribe(public/#) = %+v", v)
			}
			if v := tw.Deliver(c, "private/a"); v != (Verdict{}) {
				t.Errorf("Deliver to alice = %+v", v)
			}
			v = tw.Deliver(anon, "private/a")
			if v.Blocked() != enforce || enforce && (v.Code != CodeNotAuthorized || v.Rule != "test.deliver") {
				t.Errorf("Deliver to anonymous = %+v", v)
			}
			want := []eventSummary{
				{StageSubscribe, "test.a", Reject, enforce, "denied_topic", CodeNotAuthorized},
				{StageDeliver, "test.deliver", Reject, enforce, "anonymous", CodeNotAuthorized},
			}
			evs := tw.events.take()
			if got := summarize(evs); !slices.Equal(got, want) {
				t.Fatalf("events = %+v\nwant %+v", got, want)
			}
			if evs[0].Topic != "secret/#" || evs[1].Topic != "private/a" || evs[1].ClientID != "dev2" {
				t.Errorf("events lack topic or client: %+v", evs)
			}
		})
	}
}

// TestDetectionOnlyUndoesConnectRewrites: in DetectionOnly the keepalive
// clamp and will stripping are recorded but not applied.
func TestDetectionOnlyUndoesConnectRewrites(t *testing.T) {
	tests := []struct {
		name, policy string
		willTopic    string
		wantEvents   []eventSummary // in DetectionOnly (Enforced=false)
	}{
		{"refuse", "", "$SYS/will", []eventSummary{
			{StageConnect, "connections.keepalive", Rewrite, false, "keepalive_clamped", 0},
			{StageConnect, "limits.topic", Reject, false, "topic_reserved", CodeTopicNameInvalid},
		}},
		{"strip", "wills: {on_violation: strip}\n", "$SYS/will", []eventSummary{
			{StageConnect, "connections.keepalive", Rewrite, false, "keepalive_clamped", 0},
			{StageConnect, "wills", Rewrite, false, "topic_reserved", 0},
		}},
		{"strip_all", "wills: {strip_all: true}\n", "ok/will", []eventSummary{
			{StageConnect, "connections.keepalive", Rewrite, false, "keepalive_clamped", 0},
			{StageConnect, "wills", Rewrite, false, "will_stripped", 0},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tw := newTestWAF(t, "mode: detection_only\n"+tc.policy)
			will := &Message{Topic: tc.willTopic, Payload: []byte("gone")}
			c := &Connect{Client: testClient("dev1", "alice"), Keepalive: 0, Will: will}
			if v := tw.Connect(c); v != (Verdict{}) {
				t.Errorf("Connect = %+v, want allow", v)
			}
			if c.Keepalive != 0 {
				t.Errorf("keepalive = %d, want the client's 0 (DetectionOnly changes nothing)", c.Keepalive)
			}
			if c.Will != will || will.Topic != tc.willTopic || string(will.Payload) != "gone" {
				t.Errorf("will = %+v, want the client's will untouched", c.Will)
			}
			if got := summarize(tw.events.take()); !slices.Equal(got, tc.wantEvents) {
				t.Errorf("events = %+v\nwant %+v", got, tc.wantEvents)
			}

			// CheckWill (at will time) is undone the same way.
			c.Will = will
			if v := tw.CheckWill(c); v != (Verdict{}) || c.Will != will {
				t.Errorf("CheckWill = %+v, will %+v", v, c.Will)
			}
			if got := summarize(tw.events.take()); len(got) != 1 || got[0] != tc.wantEvents[1] {
				t.Errorf("CheckWill events = %+v, want [%+v]", got, tc.wantEvents[1])
			}
		})
	}
}

// TestPublishRewrite: rules rewriting the payload through Scratch and
// SetPayload chain (each sees the previous one's output); Publish returns a
// fresh slice and never modifies the caller's message.
func TestPublishRewrite(t *testing.T) {
	tests := []struct {
		name  string
		mode  string
		rules []Rule
		topic string
		want  string // "" means no new message
		block bool
	}{
		{"one rewrite", "enforce", []Rule{upperRule{}}, "a/b", "HELLO, WORLD", false},
		{"two rewrites", "enforce", []Rule{upperRule{}, suffixRule{"test.s1", "!"}}, "a/b", "HELLO, WORLD!", false},
		{"three rewrites", "enforce", []Rule{suffixRule{"test.s1", "1"}, upperRule{}, suffixRule{"test.s2", "2"}}, "a/b", "HELLO, WORLD12", false},
		{"rewrite then block", "enforce", []Rule{upperRule{}, &denyTopicRule{id: "test.deny", topic: "a/b", code: CodeNotAuthorized}}, "a/b", "", true},
		{"detection only", "detection_only", []Rule{upperRule{}, suffixRule{"test.s1", "!"}}, "a/b", "", false},
		{"detection only with block", "detection_only", []Rule{upperRule{}, &denyTopicRule{id: "test.deny", topic: "a/b", code: CodeNotAuthorized}}, "a/b", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tw := newTestWAF(t, "mode: "+tc.mode+"\n", tc.rules...)
			orig := []byte("hello, world")
			m := &Message{Topic: tc.topic, QoS: 1, Payload: orig}
			before := *m
			v, out := tw.Publish(testClient("dev1", "alice"), m)
			if v.Blocked() != tc.block {
				t.Errorf("verdict = %+v, blocked want %v", v, tc.block)
			}
			var payload []byte
			if tc.want == "" {
				if out != nil {
					t.Errorf("message = %+v, want nil (unchanged)", out)
				}
			} else if out == nil {
				t.Fatalf("no new message, want payload %q", tc.want)
			} else {
				payload = out.Payload
				if string(payload) != tc.want {
					t.Errorf("payload = %q, want %q", payload, tc.want)
				}
				if out.Topic != m.Topic || out.QoS != m.QoS || out == m {
					t.Errorf("new message %+v does not carry the original's topic and QoS", out)
				}
			}
			if !reflect.DeepEqual(*m, before) || string(orig) != "hello, world" || &m.Payload[0] != &orig[0] {
				t.Errorf("the caller's message changed: %+v", m)
			}
			// The returned slice is the caller's: later publishes (which reuse
			// the scratch buffers) do not change it.
			kept := string(payload)
			for range 3 {
				tw.Publish(testClient("dev2", "bob"), &Message{Topic: tc.topic, Payload: []byte("something else entirely, and longer")})
			}
			if string(payload) != kept {
				t.Errorf("returned payload changed to %q by a later publish", payload)
			}
			for _, ev := range tw.events.take() {
				if ev.Enforced != (tc.mode == "enforce") {
					t.Errorf("event %+v: Enforced wrong for mode %s", ev, tc.mode)
				}
			}
		})
	}
}

// TestPublishRewriteToEmpty: a rule that rewrites the payload to the empty
// payload must produce a new message with an empty payload; no new message
// means "unchanged" and would let the original payload through.
func TestPublishRewriteToEmpty(t *testing.T) {
	tw := newTestWAF(t, "", emptyRule{})
	m := &Message{Topic: "a/b", Payload: []byte("secret")}
	v, out := tw.Publish(testClient("dev1", "alice"), m)
	if v.Blocked() {
		t.Fatalf("verdict = %+v", v)
	}
	if out == nil || len(out.Payload) != 0 {
		t.Errorf("message = %+v, want one with an empty payload (nil tells the caller to publish the original %q)", out, m.Payload)
	}
}

// TestPublishRewriteConcurrent runs rewriting publishes in parallel (run
// with -race): pooled scratch buffers must never leak between messages.
func TestPublishRewriteConcurrent(t *testing.T) {
	tw := newTestWAF(t, "", upperRule{}, suffixRule{"test.s1", "!"})
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				in := fmt.Sprintf("msg-%d-%d-%s", g, i, strings.Repeat("x", i%50))
				_, out := tw.Publish(testClient("dev", "u"), &Message{Topic: "a/b", Payload: []byte(in)})
				if want := strings.ToUpper(in) + "!"; out == nil || string(out.Payload) != want {
					errs <- fmt.Errorf("message %+v, want payload %q", out, want)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestCounters: counters per rule, action and enforcement, sorted; they
// count every decision, also those not logged.
func TestCounters(t *testing.T) {
	tw := newTestWAF(t, "events: {level: warn}\n")
	c := testClient("dev1", "alice")
	for range 3 {
		tw.Publish(c, &Message{Topic: "$SYS/x"})
	}
	tw.Publish(c, &Message{Topic: "ok"})
	tw.Connect(&Connect{Client: c, Keepalive: 0})
	tw.Subscribe(c, &Subscription{Filter: "$mqttwaf/#"})
	if err := tw.Reload(mustParse(t, "mode: detection_only\n")); err != nil {
		t.Fatal(err)
	}
	tw.Publish(c, &Message{Topic: "$SYS/x"})
	tw.Record(StageBroker, c, "", "", "a/b", 10, Verdict{Action: Drop, Rule: "broker.dropped", Reason: "queue_full"})

	want := []Count{
		{Rule: "broker.dropped", Action: Drop, Reason: "queue_full", Enforced: true, N: 1},
		{Rule: "connections.keepalive", Action: Rewrite, Reason: "keepalive_clamped", Enforced: true, N: 1},
		{Rule: "limits.topic", Action: Reject, Reason: "topic_reserved", Enforced: false, N: 1},
		{Rule: "limits.topic", Action: Reject, Reason: "topic_reserved", Enforced: true, N: 4},
	}
	if got := tw.Counters(); !slices.Equal(got, want) {
		t.Errorf("Counters() = %+v\nwant %+v", got, want)
	}
}

// mustParse parses a test policy (after testIdentity, as newTestWAF does).
func mustParse(tb testing.TB, doc string) *Policy {
	tb.Helper()
	p, err := ParsePolicy([]byte(testIdentity+doc), "test.yaml")
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// TestEventLevel: events.level warn sends blocks only; info sends rewrites
// too; counters count both either way.
func TestEventLevel(t *testing.T) {
	for _, level := range []string{"info", "warn"} {
		t.Run(level, func(t *testing.T) {
			tw := newTestWAF(t, "events: {level: "+level+"}\n")
			c := &Connect{Client: testClient("dev1", "alice"), Keepalive: 0}
			if v := tw.Connect(c); v.Blocked() || c.Keepalive != 1200 {
				t.Fatalf("Connect = %+v, keepalive %d", v, c.Keepalive)
			}
			tw.Publish(c.Client, &Message{Topic: "$SYS/x"})
			want := []eventSummary{{StagePublish, "limits.topic", Reject, true, "topic_reserved", CodeTopicNameInvalid}}
			if level == "info" {
				want = append([]eventSummary{{StageConnect, "connections.keepalive", Rewrite, true, "keepalive_clamped", 0}}, want...)
			}
			if got := summarize(tw.events.take()); !slices.Equal(got, want) {
				t.Errorf("events = %+v\nwant %+v", got, want)
			}
			if n := len(tw.Counters()); n != 2 {
				t.Errorf("counters = %+v, want both decisions counted", tw.Counters())
			}
		})
	}
}

// TestEventRateLimit: beyond max_per_second (burst 10x) events are
// suppressed but counted, and the next event that passes says how many
// were suppressed before it.
func TestEventRateLimit(t *testing.T) {
	tw := newTestWAF(t, "events: {max_per_second: 2}\n") // burst 20
	c := testClient("dev1", "alice")
	for range 25 {
		tw.Publish(c, &Message{Topic: "$SYS/x"})
	}
	if n := len(tw.events.take()); n != 20 {
		t.Errorf("%d events passed at once, want the burst of 20", n)
	}
	if got := tw.Counters(); len(got) != 1 || got[0].N != 25 {
		t.Errorf("counters = %+v, want 25 decisions counted", got)
	}
	tw.Publish(c, &Message{Topic: "$SYS/x"})
	if n := len(tw.events.take()); n != 0 {
		t.Errorf("%d events passed with the bucket empty", n)
	}

	tw.clock.Add(time.Second) // two tokens
	tw.Publish(c, &Message{Topic: "$SYS/x"})
	tw.Publish(c, &Message{Topic: "$SYS/x"})
	evs := tw.events.take()
	if len(evs) != 2 {
		t.Fatalf("%d events after a second, want 2", len(evs))
	}
	if evs[0].Detail != "events_suppressed_before=6" {
		t.Errorf("first event after suppression: detail %q, want events_suppressed_before=6", evs[0].Detail)
	}
	if evs[1].Detail != "" {
		t.Errorf("second event: detail %q, want none", evs[1].Detail)
	}

	// A detail of its own is kept, the note appended.
	for range 5 {
		tw.Record(StageBroker, c, "", "", "a", 1, Verdict{Action: Drop, Rule: "broker.dropped", Detail: "queue full"})
	}
	tw.clock.Add(time.Second)
	tw.Record(StageBroker, c, "", "", "a", 1, Verdict{Action: Drop, Rule: "broker.dropped", Detail: "queue full"})
	if evs := tw.events.take(); len(evs) != 1 || evs[0].Detail != "queue full; events_suppressed_before=5" {
		t.Errorf("events = %+v, want one with detail %q", evs, "queue full; events_suppressed_before=5")
	}
}

func TestItoa(t *testing.T) {
	for _, n := range []int64{0, 7, 10, 1234567890, 1<<63 - 1} {
		if got, want := itoa(n), fmt.Sprint(n); got != want {
			t.Errorf("itoa(%d) = %q", n, got)
		}
	}
}

// TestCustomRuleErrors: bad custom rules are refused when the WAF is built.
func TestCustomRuleErrors(t *testing.T) {
	tests := []struct {
		name  string
		rules []Rule
		want  string
	}{
		{"nil rule", []Rule{upperRule{}, nil}, "nil rule"},
		{"duplicate custom id", []Rule{suffixRule{"test.s", "a"}, suffixRule{"test.s", "b"}}, `two rules share the id "test.s"`},
		{"duplicate built-in id", []Rule{&denyTopicRule{id: "limits.topic"}}, `two rules share the id "limits.topic"`},
		{"no stage", []Rule{stagelessRule{}}, `rule "test.stageless" implements no stage interface`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w, err := New(nil, Options{Sink: &eventLog{}, Rules: tc.rules})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New = %v, %v; want error containing %q", w, err, tc.want)
			}
		})
	}
	w, err := New(nil, Options{Sink: &eventLog{}, Rules: []Rule{upperRule{}, &countRule{}}})
	if err != nil {
		t.Fatal(err)
	}
	// Built-in rules first (their order is documented in docs/design.md),
	// custom rules last, in the order given.
	got := w.Rules()
	if n := len(got); n < 3 || got[0] != "connections.caps" || got[n-2] != "test.upper" || got[n-1] != "test.count" {
		t.Errorf("Rules() = %v, want connections.caps first and test.upper, test.count last", got)
	}
	for _, id := range []string{"identity.authenticate", "sessions.takeover", "acl", "payload.json", "payload.schema", "payload.redact", "rates.publish"} {
		if !slices.Contains(got, id) {
			t.Errorf("Rules() = %v lacks %s", got, id)
		}
	}
}

// TestReload: a reload swaps the policy and keeps the state (open
// connections, counters, claims); an invalid policy leaves the running one.
func TestReload(t *testing.T) {
	tw := newTestWAF(t, "")
	for i := range 3 {
		if v := tw.Open("tcp", fmt.Sprintf("198.51.100.1:%d", 1000+i)); v.Blocked() {
			t.Fatalf("Open %d = %+v", i, v)
		}
	}
	alice := &Connect{Client: testClient("dev1", "alice"), Keepalive: 60}
	if v := tw.Connect(alice); v.Blocked() {
		t.Fatal(v)
	}
	tw.Publish(alice.Client, &Message{Topic: "$SYS/x"})

	if err := tw.Reload(mustParse(t, "mode: detection_only\nconnections: {max_connections_per_ip: 3}\n")); err != nil {
		t.Fatal(err)
	}
	if s, ips := tw.OpenConnections(); s != 3 || ips != 1 {
		t.Errorf("after reload: %d sockets from %d IPs, want 3 from 1", s, ips)
	}
	if got := tw.Policy().Mode; got != DetectionOnly {
		t.Errorf("mode after reload = %s", got)
	}
	if got := tw.Counters(); len(got) != 1 || got[0].N != 1 {
		t.Errorf("counters after reload = %+v", got)
	}
	// The 4th socket from the IP crosses the new cap (counted before the
	// reload); DetectionOnly lets it through but records it.
	if v := tw.Open("tcp", "198.51.100.1:2000"); v.Blocked() {
		t.Errorf("Open in DetectionOnly = %+v", v)
	}
	if got := summarize(tw.events.take()); !slices.Contains(got, eventSummary{StageAccept, "connections.caps", Reject, false, "max_connections_per_ip", CodeConnectionRateExceeded}) {
		t.Errorf("events = %+v, want the per-IP cap recorded", got)
	}
	if err := tw.Reload(mustParse(t, "connections: {max_connections_per_ip: 4}\n")); err != nil {
		t.Fatal(err)
	}
	if v := tw.Open("tcp", "198.51.100.1:2001"); v.Code != CodeConnectionRateExceeded {
		t.Errorf("5th socket with cap 4 = %+v, want refused", v)
	}
	// The claim alice took before the reloads still protects dev1.
	if v := tw.Connect(&Connect{Client: testClient("dev1", "mallory"), Keepalive: 60}); v.Reason != "client_id_claimed_by_other_identity" {
		t.Errorf("claim lost across reload: %+v", v)
	}

	// An invalid policy is refused and the running one stays.
	if err := tw.Reload(&Policy{Mode: "block"}); err == nil || !strings.Contains(err.Error(), `mode: unknown value "block"`) {
		t.Errorf("Reload(invalid) = %v", err)
	}
	if got := tw.Policy(); got.Mode != Enforce || got.Connections.MaxConnectionsPerIP != 4 {
		t.Errorf("running policy after a failed reload = %+v", got)
	}
	for i := range 4 {
		tw.Close(fmt.Sprintf("198.51.100.1:%d", 1000+i))
	}
	if s, ips := tw.OpenConnections(); s != 0 || ips != 0 {
		t.Errorf("after closing all: %d sockets, %d IPs", s, ips)
	}
}

// TestReloadConcurrent reloads while other goroutines publish (run with
// -race): every publish sees one whole policy, old or new.
func TestReloadConcurrent(t *testing.T) {
	tw := newTestWAF(t, "limits: {topic: {max_levels: 2}}\n")
	strict := mustParse(t, "limits: {topic: {max_levels: 2}}\n")
	loose := mustParse(t, "limits: {topic: {max_levels: 3}}\n")
	done := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := testClient("dev", "u")
			for {
				select {
				case <-done:
					return
				default:
				}
				v, _ := tw.Publish(c, &Message{Topic: "a/b/c"})
				if v.Blocked() && v.Limit != 2 {
					t.Errorf("verdict from neither policy: %+v", v)
					return
				}
			}
		}()
	}
	for i := range 200 {
		p := strict
		if i%2 == 0 {
			p = loose
		}
		if err := tw.Reload(p); err != nil {
			t.Error(err)
		}
	}
	close(done)
	wg.Wait()
}

// TestOpenClose: connection caps per IP (per listener) and in total.
func TestOpenClose(t *testing.T) {
	tw := newTestWAF(t, "broker: {max_connections: 4}\nconnections: {max_connections_per_ip: 2}\nlisteners: {ws: {max_connections_per_ip: 3}}\n")
	steps := []struct {
		op, listener, addr string
		want               ReasonCode // 0: allowed
		reason             string
	}{
		{"open", "tcp", "192.0.2.1:1", 0, ""},
		{"open", "tcp", "192.0.2.1:2", 0, ""},
		{"open", "tcp", "192.0.2.1:3", CodeConnectionRateExceeded, "max_connections_per_ip"},
		{"open", "ws", "192.0.2.1:3", 0, ""}, // ws allows 3 per IP
		{"open", "ws", "192.0.2.1:4", CodeConnectionRateExceeded, "max_connections_per_ip"},
		{"open", "tcp", "[::ffff:192.0.2.1]:5", CodeConnectionRateExceeded, "max_connections_per_ip"}, // mapped: same host
		{"open", "tcp", "[2001:db8::1]:1", 0, ""},
		{"open", "tcp", "192.0.2.2:1", CodeServerBusy, "max_connections"}, // 5th socket
		{"close", "", "192.0.2.1:1", 0, ""},
		{"open", "tcp", "192.0.2.2:1", 0, ""},
		{"open", "tcp", "192.0.2.3:1", CodeServerBusy, "max_connections"},
	}
	for i, s := range steps {
		if s.op == "close" {
			tw.Close(s.addr)
			continue
		}
		v := tw.Open(s.listener, s.addr)
		if v.Code != s.want || v.Reason != s.reason {
			t.Errorf("step %d: Open(%s, %s) = %+v, want code %#x reason %q", i, s.listener, s.addr, v, byte(s.want), s.reason)
		}
		if s.want != 0 {
			evs := tw.events.take()
			if len(evs) != 1 || evs[0].Stage != StageAccept || evs[0].Listener != s.listener ||
				evs[0].RemoteIP != ParseRemoteIP(s.addr).String() || evs[0].ClientID != "" {
				t.Errorf("step %d: events = %+v", i, evs)
			}
		}
	}
	if sockets, ips := tw.OpenConnections(); sockets != 4 || ips != 3 {
		t.Errorf("OpenConnections = %d, %d; want 4 sockets from 3 IPs", sockets, ips)
	}
}

func TestParseRemoteIP(t *testing.T) {
	tests := []struct{ in, want string }{
		{"192.0.2.1:1883", "192.0.2.1"},
		{"192.0.2.1", "192.0.2.1"},
		{"[2001:db8::1]:8883", "2001:db8::1"},
		{"2001:db8::1", "2001:db8::1"},
		{"[::ffff:192.0.2.1]:1883", "192.0.2.1"},
		{"::ffff:192.0.2.1", "192.0.2.1"},
		{"[fe80::1%eth0]:1883", "fe80::1%eth0"},
		{"", ""},
		{"pipe", ""},
		{"@/tmp/mqtt.sock", ""},
		{"localhost:1883", ""},
		{"192.0.2.1:99999", ""},
		{"999.0.0.1:1", ""},
		{"[192.0.2.1]:1883", ""},
	}
	for _, tc := range tests {
		got := ParseRemoteIP(tc.in)
		if tc.want == "" {
			if got.IsValid() {
				t.Errorf("ParseRemoteIP(%q) = %v, want the zero Addr", tc.in, got)
			}
			continue
		}
		if got != netip.MustParseAddr(tc.want) {
			t.Errorf("ParseRemoteIP(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

// TestRecord: decisions the adapter took itself are recorded as enforced,
// whatever the mode, with the IP taken from the address when there is no
// client.
func TestRecord(t *testing.T) {
	tw := newTestWAF(t, "mode: detection_only\n")
	tw.Record(StageAccept, nil, "tls", "[2001:db8::7]:4000", "", 0, Verdict{Action: Disconnect, Rule: "connections.connect_timeout", Reason: "no_connect"})
	evs := tw.events.take()
	if len(evs) != 1 {
		t.Fatalf("events = %+v", evs)
	}
	e := evs[0]
	if !e.Enforced || e.Listener != "tls" || e.RemoteIP != "2001:db8::7" || e.Code != CodeUnspecifiedError || !e.Time.Equal(tw.clock.Now()) {
		t.Errorf("event = %+v", e)
	}
}

// TestWAFPolicyAccessors: the accessors report the running policy.
func TestWAFPolicyAccessors(t *testing.T) {
	tw := newTestWAF(t, "broker: {max_packet_size: 1MiB}\nlimits: {topic: {max_levels: 5}}\nresponses: {mqtt311_publish: disconnect}\n")
	if got := tw.Broker().MaxPacketSize; got != 1<<20 {
		t.Errorf("Broker().MaxPacketSize = %v", got)
	}
	if got := tw.Limits().Topic.MaxLevels; got != 5 {
		t.Errorf("Limits().Topic.MaxLevels = %d", got)
	}
	if got := tw.Responses().MQTT311Publish; got != "disconnect" {
		t.Errorf("Responses() = %q", got)
	}
	if w, err := New(nil, Options{Sink: &eventLog{}}); err != nil || !reflect.DeepEqual(w.Policy(), Defaults()) {
		t.Errorf("New(nil) policy = %+v, %v; want Defaults()", w.Policy(), err)
	}
}

// TestEventsOff: events.log off without a Sink emits nothing but still counts.
func TestEventsOff(t *testing.T) {
	w, err := New(mustParse(t, "events: {log: off}\n"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if s := w.engine.Load().out.sink; s != nil {
		t.Errorf("events.log off: sink = %T, want none", s)
	}
	w.Publish(testClient("a", "b"), &Message{Topic: "$SYS/x"})
	if got := w.Counters(); len(got) != 1 || got[0].N != 1 {
		t.Errorf("counters = %+v", got)
	}
}

// Benchmarks. The allow paths of Publish and Deliver must not allocate.

// benchPolicy is the default policy plus what a real fleet adds: devices
// authenticate with certificates and may publish under their own name.
const benchPolicy = `identity:
  anonymous: {allow: never}
  certificate: {identity: cn, role: device}
roles:
  device:
    publish: ["fleet/{username}/#"]
    subscribe: ["fleet/{username}/cmd/#"]
# Rates high enough that a benchmark loop measures the limiters' allow path
# rather than their refusals.
rates:
  publish:
    per_connection: {messages: 1000000000/s, bytes: 10000GiB/s}
    per_username: {messages: 1000000000/s, bytes: 10000GiB/s}
    per_ip: {messages: 1000000000/s, bytes: 10000GiB/s}
  subscribe: {per_connection: 1000000000/s}
  connect: {per_ip: 1000000000/s, per_network: 1000000000/s, per_listener: 1000000000/s}
  flapping: {off: true}
  new_client_ids: {global: 1000000000/min, per_ip: 1000000000/min, per_username: 1000000000/min}
`

// benchDevice is a device as the adapter hands it over after CONNECT.
func benchDevice() *Client {
	return &Client{
		ID: "device-0042", Username: "device-0042", Listener: "tls", Auth: AuthCertificate, Role: "device",
		RemoteAddr: "198.51.100.42:50123", RemoteIP: netip.MustParseAddr("198.51.100.42"), Protocol: MQTT5,
		TLS: &TLSInfo{Verified: true, CommonName: "device-0042"},
	}
}

func newBenchWAF(tb testing.TB, rules ...Rule) *WAF {
	tb.Helper()
	p, err := ParsePolicy([]byte(benchPolicy), "bench.yaml")
	if err != nil {
		tb.Fatal(err)
	}
	w, err := New(p, Options{Sink: &eventLog{}, Rules: rules})
	if err != nil {
		tb.Fatal(err)
	}
	return w
}

func BenchmarkPublishAllow(b *testing.B) {
	w, c, m := newBenchWAF(b), benchDevice(), realisticMessage(b)
	b.ReportAllocs()
	b.SetBytes(int64(len(m.Payload)))
	for b.Loop() {
		if v, out := w.Publish(c, m); v.Blocked() || out != nil {
			b.Fatal(v)
		}
	}
}

func BenchmarkPublishReject(b *testing.B) {
	w, c, m := newBenchWAF(b), benchDevice(), realisticMessage(b)
	m.Topic = "fleet/device-0043/telemetry" // another device's topic
	b.ReportAllocs()
	for b.Loop() {
		if v, _ := w.Publish(c, m); !v.Blocked() {
			b.Fatal(v)
		}
	}
}

func BenchmarkPublishRewrite(b *testing.B) {
	w, c, m := newBenchWAF(b, upperRule{}, suffixRule{"test.s1", "\n"}), benchDevice(), realisticMessage(b)
	b.ReportAllocs()
	b.SetBytes(int64(len(m.Payload)))
	for b.Loop() {
		if _, out := w.Publish(c, m); out == nil {
			b.Fatal("no rewrite")
		}
	}
}

func BenchmarkDeliverAllow(b *testing.B) {
	w, c := newBenchWAF(b), benchDevice()
	b.ReportAllocs()
	for b.Loop() {
		if v := w.Deliver(c, "fleet/device-0042/cmd/reboot"); v.Blocked() {
			b.Fatal(v)
		}
	}
}

func BenchmarkSubscribe(b *testing.B) {
	w, c := newBenchWAF(b), benchDevice()
	sub := &Subscription{Filter: "fleet/device-0042/cmd/#", QoS: 1, Count: 1}
	b.ReportAllocs()
	for b.Loop() {
		if v := w.Subscribe(c, sub); v.Blocked() {
			b.Fatal(v)
		}
	}
}

// BenchmarkConnect: a certificate-authenticated CONNECT with a will, then
// the session is established (releasing the client-ID claim).
func BenchmarkConnect(b *testing.B) {
	w, c := newBenchWAF(b), benchDevice()
	will := &Message{Topic: "fleet/device-0042/status", QoS: 1, Payload: []byte(`{"online":false}`)}
	b.ReportAllocs()
	for b.Loop() {
		c.Username, c.Auth, c.Role = "", AuthNone, ""
		cn := Connect{Client: c, Clean: true, Keepalive: 60, Will: will}
		if v := w.Connect(&cn); v.Blocked() {
			b.Fatal(v)
		}
		w.Established(c)
	}
}

func BenchmarkOpenClose(b *testing.B) {
	w := newBenchWAF(b)
	b.ReportAllocs()
	for b.Loop() {
		if v := w.Open("tcp", "192.0.2.1:50000"); v.Blocked() {
			b.Fatal(v)
		}
		w.Close("192.0.2.1:50000")
	}
}

// TestAllowPathAllocsNoRace pins the zero-allocation allow paths the benchmarks
// measure (sync.Pool drops items at random under -race, so it is skipped
// there).
func TestAllowPathAllocsNoRace(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under -race; run without it: go test -run NoRace")
	}
	w, c, m := newBenchWAF(t), benchDevice(), realisticMessage(t)
	sub := &Subscription{Filter: "fleet/device-0042/cmd/#", QoS: 1, Count: 1}
	tests := []struct {
		name string
		f    func() bool
	}{
		{"Publish", func() bool { v, out := w.Publish(c, m); return v == Verdict{} && out == nil }},
		{"PublishLayers", func() bool { v, out := w.PublishLayers(c, m); return v == Verdict{} && out == nil }},
		{"Deliver", func() bool { return w.Deliver(c, "fleet/device-0042/cmd/reboot") == Verdict{} }},
		{"Subscribe", func() bool { return w.Subscribe(c, sub) == Verdict{} }},
	}
	for _, tc := range tests {
		if !tc.f() {
			t.Errorf("%s: not allowed", tc.name)
			continue
		}
		if n := testing.AllocsPerRun(1000, func() { tc.f() }); n != 0 {
			t.Errorf("%s allow path: %v allocs/op, want 0", tc.name, n)
		}
	}
}
