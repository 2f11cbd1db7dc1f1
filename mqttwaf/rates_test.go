package mqttwaf

import (
	"fmt"
	"net/netip"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mqttwaf/mqttwaf/ratelimit"
)

// Tests of the rates section (issue 5): every protection's decision, reason
// and code, bans and their expiry, escalation, detection-only, the operator
// ban API, bounded memory under a million distinct client IDs and topics,
// and what eviction does to a well-behaved client. Time is a fake clock
// throughout: nothing here sleeps.

// ratesIdentity is the identity part of every policy here: certificate
// clients (the user name is the certificate's CN) and anonymous clients from
// anywhere get a role that may publish, retain and subscribe everywhere, so
// identity and ACL rules stay out of the way. Events are not throttled.
const ratesIdentity = `events: {max_per_second: 1000000}
identity:
  anonymous: {allow: anywhere, role: all}
  certificate: {identity: cn, role: all}
roles:
  all: {publish: ["#"], retain: ["#"], subscribe: ["#"], broad_wildcards: true}
`

// ratesLifted are the rates subsections a test is not about, set so high
// that they never refuse. A test replaces whole subsections.
var ratesLifted = map[string]string{
	"publish": `{per_connection: {messages: 100000000/s, bytes: 1000GiB/s}, ` +
		`per_username: {messages: 100000000/s, bytes: 1000GiB/s}, per_ip: {messages: 100000000/s, bytes: 1000GiB/s}}`,
	"subscribe":      `{per_connection: 100000000/s, max_subscriptions: 100000, max_filters: 1000}`,
	"connect":        `{per_ip: 100000000/s, per_network: 100000000/s, per_listener: 100000000/s}`,
	"flapping":       `{off: true}`,
	"new_client_ids": `{global: 100000000/min, per_ip: 100000000/min, per_username: 100000000/min}`,
	"new_topics":     `{per_identity: 100000000/h}`,
	"escalation":     `{disconnect_after: 1000000, ban_after: 1000}`,
}

// ratesPolicyYAML is ratesIdentity, then top (e.g. "mode: detection_only\n"),
// then a rates section of the lifted subsections with over's replacing
// them ("" in over: leave that subsection at its default).
func ratesPolicyYAML(top string, over map[string]string) string {
	sections := map[string]string{}
	for k, v := range ratesLifted {
		sections[k] = v
	}
	for k, v := range over {
		sections[k] = v
	}
	var b strings.Builder
	b.WriteString(ratesIdentity + top + "rates:\n")
	keys := make([]string, 0, len(sections))
	for k := range sections {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if sections[k] != "" {
			fmt.Fprintf(&b, "  %s: %s\n", k, sections[k])
		}
	}
	return b.String()
}

// newRatesWAF builds a WAF from ratesPolicyYAML with a recording sink and a
// fake clock.
func newRatesWAF(tb testing.TB, top string, over map[string]string) *testWAF {
	tb.Helper()
	src := ratesPolicyYAML(top, over)
	p, err := ParsePolicy([]byte(src), "rates_test.yaml")
	if err != nil {
		tb.Fatalf("ParsePolicy: %v\n%s", err, src)
	}
	tw := &testWAF{events: &eventLog{}, clock: newFakeClock()}
	tw.WAF, err = New(p, Options{Sink: tw.events, Now: tw.clock.Now})
	if err != nil {
		tb.Fatalf("New: %v\n%s", err, src)
	}
	return tw
}

// rclient is a client as the adapter builds it for one connection: with a
// verified certificate for user (anonymous if user is ""), from ip, on
// listener "tcp".
func rclient(id, user, ip string) *Client {
	c := &Client{ID: id, Username: user, Listener: "tcp", Protocol: MQTT5, Auth: AuthAnonymous}
	if ip != "" {
		c.RemoteIP = netip.MustParseAddr(ip)
		c.RemoteAddr = netip.AddrPortFrom(c.RemoteIP, 40000).String()
	}
	if user != "" {
		c.Auth, c.TLS = AuthCertificate, &TLSInfo{Verified: true, CommonName: user}
	}
	return c
}

// connectClient runs CONNECT for c and, if it passes, establishes the session
// as the adapter does.
func (tw *testWAF) connectClient(c *Client) Verdict {
	v := tw.Connect(&Connect{Client: c, Clean: true, Keepalive: 60})
	if !v.Blocked() {
		tw.Established(c)
	}
	return v
}

// dial connects a new connection (a fresh Client) and returns it with the
// CONNECT verdict.
func (tw *testWAF) dial(id, user, ip string) (*Client, Verdict) {
	c := rclient(id, user, ip)
	return c, tw.connectClient(c)
}

// mustDial is dial for a connection that must be admitted.
func (tw *testWAF) mustDial(tb testing.TB, id, user, ip string) *Client {
	tb.Helper()
	c, v := tw.dial(id, user, ip)
	if v.Blocked() {
		tb.Fatalf("CONNECT %s/%s/%s refused: %+v", id, user, ip, v)
	}
	return c
}

// pub publishes size bytes (QoS 1) on topic.
func (tw *testWAF) pub(c *Client, topic string, size int) Verdict {
	v, _ := tw.Publish(c, &Message{Topic: topic, QoS: 1, Payload: make([]byte, size)})
	return v
}

// pubRetained publishes a retained message and, if the WAF lets it through,
// tells the WAF the broker stored it (as the adapter's OnRetainMessage does).
func (tw *testWAF) pubRetained(c *Client, topic string, size int) Verdict {
	m := &Message{Topic: topic, QoS: 1, Retain: true, Payload: make([]byte, size)}
	v, _ := tw.Publish(c, m)
	if !v.Blocked() {
		if size == 0 {
			tw.Retained(c, topic, 0) // deleted
		} else {
			tw.Retained(c, topic, m.Size()) // what the adapter reports
		}
	}
	return v
}

// want is the part of a verdict the tests compare.
type want struct {
	Action Action
	Rule   string
	Reason string
	Code   ReasonCode
}

func (w want) String() string {
	return fmt.Sprintf("{%s %s %s 0x%02X}", w.Action, w.Rule, w.Reason, byte(w.Code))
}

func gotOf(v Verdict) want { return want{v.Action, v.Rule, v.Reason, v.Code} }

var allowed = want{}

// refused is a Reject verdict of rule with reason and code.
func refused(rule, reason string, code ReasonCode) want {
	return want{Reject, rule, reason, code}
}

func check(tb testing.TB, what string, v Verdict, w want) {
	tb.Helper()
	if got := gotOf(v); got != w {
		tb.Fatalf("%s: verdict %v (detail %q), want %v", what, got, v.Detail, w)
	}
}

// lastEvent returns the last event recorded since the previous take and
// fails if there was none.
func (tw *testWAF) lastEvent(tb testing.TB) Event {
	tb.Helper()
	evs := tw.events.take()
	if len(evs) == 0 {
		tb.Fatal("no event recorded")
	}
	return evs[len(evs)-1]
}

// checkEvent compares the last event with w and the expected stage and
// enforcement.
func (tw *testWAF) checkEvent(tb testing.TB, stage Stage, w want, enforced bool) Event {
	tb.Helper()
	e := tw.lastEvent(tb)
	if got := (want{e.Action, e.Rule, e.Reason, e.Code}); got != w || e.Stage != stage || e.Enforced != enforced {
		tb.Fatalf("event %+v, want stage %s %v enforced=%v", e, stage, w, enforced)
	}
	return e
}

func (tw *testWAF) bans(tb testing.TB) []ratelimit.Ban {
	tb.Helper()
	l, err := tw.Bans().List(tw.clock.Now())
	if err != nil {
		tb.Fatal(err)
	}
	return l
}

const (
	ipA = "192.0.2.1"
	ipB = "192.0.2.2"
	ipC = "192.0.2.3"
	ipD = "192.0.2.4"
)

var (
	msgRate  = func(r string) want { return refused("rates.publish", r, CodeMessageRateTooHigh) }
	quota    = func(rule, r string) want { return refused(rule, r, CodeQuotaExceeded) }
	connRate = func(r string) want { return refused("rates.connect", r, CodeConnectionRateExceeded) }
	banned   = refused("bans", "banned", CodeBanned)
)

// TestRatesPublishLimits covers the per-connection, per-user-name, per-IP
// and per-topic publish limits: a burst passes, the next message is refused
// with 0x96 and the reason of the limit that bit, the bucket refills at the
// configured rate and never beyond its burst, and only what shares the key
// is affected.
func TestRatesPublishLimits(t *testing.T) {
	type step struct {
		advance time.Duration
		c       int // index into the test's clients
		topic   string
		size    int
		n       int // how many such publishes (default 1)
		want    want
	}
	tests := []struct {
		name    string
		publish string
		clients [][3]string // id, user, ip; all connected first
		steps   []step
	}{{
		name:    "per connection messages with burst",
		publish: `{per_connection: {messages: 10/s, burst: 5}}`,
		clients: [][3]string{{"dev1", "alice", ipA}, {"dev2", "alice", ipA}},
		steps: []step{
			{c: 0, topic: "t", n: 5},
			{c: 0, topic: "t", want: msgRate("connection_message_rate")},
			{c: 1, topic: "t", n: 5}, // another connection of the same identity and IP has its own bucket
			{advance: 100 * time.Millisecond, c: 0, topic: "t"},
			{c: 0, topic: "t", want: msgRate("connection_message_rate")},
			{advance: 10 * time.Second, c: 0, topic: "t", n: 5},          // refilled to the burst...
			{c: 0, topic: "t", want: msgRate("connection_message_rate")}, // ...not beyond it
		},
	}, {
		name:    "per connection bytes with burst",
		publish: `{per_connection: {messages: 1000/s, bytes: 1KiB/s, burst_bytes: 2KiB}}`,
		clients: [][3]string{{"dev1", "", ipA}, {"dev2", "", ipA}},
		steps: []step{
			// Sizes are payloads; the 1-byte topic counts too.
			{c: 0, topic: "t", size: 1023, n: 2},
			{c: 0, topic: "t", size: 1, want: msgRate("connection_byte_rate")},
			{c: 1, topic: "t", size: 2047},
			{advance: 500 * time.Millisecond, c: 0, topic: "t", size: 511},
			{c: 0, topic: "t", size: 1, want: msgRate("connection_byte_rate")},
			{advance: time.Minute, c: 0, topic: "t", size: 2047},
			{c: 0, topic: "t", size: 1, want: msgRate("connection_byte_rate")},
		},
	}, {
		name: "per user name across connections",
		publish: `{per_username: {messages: 10/s, bytes: 10KiB/s}, ` +
			`per_connection: {messages: 1000/s, bytes: 1GiB/s}, per_ip: {messages: 1000/s, bytes: 1GiB/s}}`,
		clients: [][3]string{{"a1", "alice", ipA}, {"a2", "alice", ipB}, {"b1", "bob", ipA}},
		steps: []step{
			{c: 0, topic: "t", n: 6},
			{c: 1, topic: "t", n: 4},
			{c: 1, topic: "t", want: msgRate("username_message_rate")},
			{c: 0, topic: "t", want: msgRate("username_message_rate")},
			{c: 2, topic: "t", n: 10},                                      // bob, same IP as a1: not affected
			{advance: 10 * time.Second, c: 0, topic: "t", size: 6<<10 - 1}, // +1 byte of topic
			{c: 1, topic: "t", size: 4<<10 - 1},
			{c: 1, topic: "t", size: 1, want: msgRate("username_byte_rate")},
			{c: 2, topic: "t", size: 10<<10 - 1},
		},
	}, {
		name: "per IP across identities",
		publish: `{per_ip: {messages: 10/s, bytes: 10KiB/s}, ` +
			`per_connection: {messages: 1000/s, bytes: 1GiB/s}, per_username: {messages: 1000/s, bytes: 1GiB/s}}`,
		clients: [][3]string{{"anon1", "", ipA}, {"anon2", "", ipA}, {"carol", "carol", ipA}, {"anon3", "", ipB}},
		steps: []step{
			{c: 0, topic: "t", n: 4},
			{c: 1, topic: "t", n: 4},
			{c: 2, topic: "t", n: 2},
			{c: 0, topic: "t", want: msgRate("ip_message_rate")},
			{c: 2, topic: "t", want: msgRate("ip_message_rate")},
			{c: 3, topic: "t", n: 10}, // another address
			{advance: 10 * time.Second, c: 0, topic: "t", size: 10 << 10},
			{c: 1, topic: "t", size: 1, want: msgRate("ip_byte_rate")},
			{c: 3, topic: "t", size: 10 << 10},
		},
	}, {
		name: "per topic, only on matching topics, per client",
		publish: `{topics: [{topics: ["fleet/+/telemetry", "fleet/{clientid}/alarm"], messages: 1/s, burst: 2}], ` +
			`per_connection: {messages: 1000/s, bytes: 1GiB/s}}`,
		clients: [][3]string{{"dev1", "alice", ipA}, {"dev2", "alice", ipA}},
		steps: []step{
			{c: 0, topic: "fleet/dev1/telemetry", n: 2},
			{c: 0, topic: "fleet/dev1/telemetry", want: msgRate("topic_message_rate")},
			{c: 0, topic: "fleet/other/telemetry", want: msgRate("topic_message_rate")}, // one bucket per entry and client
			{c: 0, topic: "fleet/dev1/alarm", want: msgRate("topic_message_rate")},
			{c: 0, topic: "fleet/dev2/alarm", n: 20}, // {clientid} is dev1: not covered
			{c: 0, topic: "fleet/dev1/status", n: 20},
			{c: 0, topic: "other/dev1/telemetry", n: 20},
			{c: 1, topic: "fleet/dev2/telemetry", n: 2},
			{c: 1, topic: "fleet/dev2/alarm", want: msgRate("topic_message_rate")},
			{advance: time.Second, c: 0, topic: "fleet/dev1/alarm"},
			{c: 0, topic: "fleet/dev1/telemetry", want: msgRate("topic_message_rate")},
		},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tw := newRatesWAF(t, "", map[string]string{"publish": tc.publish})
			var clients []*Client
			for _, c := range tc.clients {
				clients = append(clients, tw.mustDial(t, c[0], c[1], c[2]))
			}
			tw.events.take()
			for i, s := range tc.steps {
				tw.clock.Add(s.advance)
				for j := range max(s.n, 1) {
					v := tw.pub(clients[s.c], s.topic, s.size)
					check(t, fmt.Sprintf("step %d, publish %d by %s on %s", i, j, clients[s.c].ID, s.topic), v, s.want)
					if s.want == allowed {
						if evs := tw.events.take(); len(evs) != 0 {
							t.Fatalf("step %d: allowed publish produced events %+v", i, summarize(evs))
						}
					} else {
						e := tw.checkEvent(t, StagePublish, s.want, true)
						if e.ClientID != clients[s.c].ID || e.Topic != s.topic {
							t.Fatalf("step %d: event %+v", i, e)
						}
					}
				}
			}
			if evs := tw.events.take(); len(evs) != 0 {
				t.Fatalf("unexpected events: %+v", summarize(evs))
			}
		})
	}
}

// TestRatesReconnectKeepsBucket: the per-connection bucket is keyed by
// client ID, so reconnecting does not refill it.
func TestRatesReconnectKeepsBucket(t *testing.T) {
	tw := newRatesWAF(t, "", map[string]string{"publish": `{per_connection: {messages: 10/s, burst: 3}}`})
	c := tw.mustDial(t, "dev1", "alice", ipA)
	for range 3 {
		check(t, "burst", tw.pub(c, "t", 1), allowed)
	}
	check(t, "drained", tw.pub(c, "t", 1), msgRate("connection_message_rate"))
	c = tw.mustDial(t, "dev1", "alice", ipA)
	check(t, "after reconnect", tw.pub(c, "t", 1), msgRate("connection_message_rate"))
}

// TestRatesSubscribe covers max_filters, max_subscriptions and the
// subscribe rate, all refused with 0x97 (quota exceeded).
func TestRatesSubscribe(t *testing.T) {
	tw := newRatesWAF(t, "", map[string]string{"subscribe": `{per_connection: 5/s, max_subscriptions: 3, max_filters: 2}`})
	c := tw.mustDial(t, "dev1", "alice", ipA)
	sub := func(existing, count int) Verdict {
		return tw.Subscribe(c, &Subscription{Filter: "a/b", QoS: 1, Existing: existing, Count: count, Index: 0})
	}
	v := sub(0, 3)
	check(t, "3 filters", v, quota("rates.subscribe", "too_many_filters"))
	if v.Value != 3 || v.Limit != 2 {
		t.Fatalf("too_many_filters value/limit %d/%d, want 3/2", v.Value, v.Limit)
	}
	tw.checkEvent(t, StageSubscribe, quota("rates.subscribe", "too_many_filters"), true)
	v = sub(3, 1)
	check(t, "fourth subscription", v, quota("rates.subscribe", "too_many_subscriptions"))
	if v.Value != 4 || v.Limit != 3 {
		t.Fatalf("too_many_subscriptions value/limit %d/%d, want 4/3", v.Value, v.Limit)
	}
	// Refusals above spent no rate: five filters pass, the sixth is refused.
	for i := range 5 {
		check(t, fmt.Sprintf("filter %d", i), sub(2, 2), allowed)
	}
	check(t, "sixth filter in a second", sub(0, 1), quota("rates.subscribe", "subscribe_rate"))
	tw.checkEvent(t, StageSubscribe, quota("rates.subscribe", "subscribe_rate"), true)
	other := tw.mustDial(t, "dev2", "alice", ipA)
	check(t, "another connection", tw.Subscribe(other, &Subscription{Filter: "a/b", Count: 1}), allowed)
	tw.clock.Add(200 * time.Millisecond)
	check(t, "after 200ms", sub(0, 1), allowed)
	check(t, "again", sub(0, 1), quota("rates.subscribe", "subscribe_rate"))
}

// TestRatesConnect covers the CONNECT rates per remote IP and per listener
// (CONNACK 0x9F).
func TestRatesConnect(t *testing.T) {
	t.Run("per IP", func(t *testing.T) {
		tw := newRatesWAF(t, "", map[string]string{"connect": `{per_ip: 3/s, per_listener: 1000000/s}`})
		for i := range 3 {
			tw.mustDial(t, "a"+strconv.Itoa(i), "", ipA)
		}
		_, v := tw.dial("a3", "", ipA)
		check(t, "fourth from A", v, connRate("ip_connect_rate"))
		tw.checkEvent(t, StageConnect, connRate("ip_connect_rate"), true)
		_, v = tw.dial("a0", "alice", ipA) // a known client, another identity: same address
		check(t, "known client from A", v, connRate("ip_connect_rate"))
		tw.mustDial(t, "b0", "", ipB)
		tw.clock.Add(340 * time.Millisecond) // one token at 3/s
		tw.mustDial(t, "a3", "", ipA)
		_, v = tw.dial("a4", "", ipA)
		check(t, "after one token", v, connRate("ip_connect_rate"))
	})
	t.Run("per listener", func(t *testing.T) {
		tw := newRatesWAF(t, "", map[string]string{"connect": `{per_ip: 1000000/s, per_listener: 5/s}`})
		ips := []string{ipA, ipB, ipC, ipD, "198.51.100.1"}
		for i, ip := range ips {
			tw.mustDial(t, "c"+strconv.Itoa(i), "", ip)
		}
		_, v := tw.dial("c5", "", "198.51.100.2")
		check(t, "sixth on tcp", v, connRate("listener_connect_rate"))
		tw.checkEvent(t, StageConnect, connRate("listener_connect_rate"), true)
		ws := rclient("c5", "", "198.51.100.2")
		ws.Listener = "ws"
		check(t, "on another listener", tw.connectClient(ws), allowed)
	})
}

// TestRatesFlapping: the 16th CONNECT of a client ID within a minute is a
// Ban (0x8A), the next CONNECT is refused by the bans rule, the ban expires
// with the clock and grows for a repeat offender; flapping user names and
// addresses are banned as such.
func TestRatesFlapping(t *testing.T) {
	t.Run("client ID, growing bans", func(t *testing.T) {
		tw := newRatesWAF(t, "", map[string]string{"flapping": `{connects: 15/min, ban: 5m, max_ban: 15m}`})
		w := want{Ban, "rates.flapping", "flapping", CodeBanned}
		for round, dur := range []time.Duration{5 * time.Minute, 10 * time.Minute, 15 * time.Minute, 15 * time.Minute} {
			// Start each round in a fresh minute, two minutes after the
			// last CONNECT, so the sliding count starts from zero.
			now := tw.clock.Now()
			tw.clock.Add(2*time.Minute + now.Truncate(time.Minute).Add(time.Minute).Sub(now))
			for i := range 15 {
				if _, v := tw.dial("flappy", "", ipA); v.Blocked() {
					t.Fatalf("round %d: CONNECT %d refused: %+v", round, i+1, v)
				}
				tw.clock.Add(time.Second)
			}
			_, v := tw.dial("flappy", "", ipA)
			check(t, fmt.Sprintf("round %d: 16th CONNECT in a minute", round), v, w)
			tw.checkEvent(t, StageConnect, w, true)
			bans := tw.bans(t)
			if len(bans) != 1 || bans[0].Target != ratelimit.ClientIDTarget("flappy") || bans[0].Reason != "flapping" ||
				bans[0].Until.Sub(bans[0].Since) != dur || bans[0].Strikes != round+1 {
				t.Fatalf("round %d: bans %+v, want client:flappy for %v, strike %d", round, bans, dur, round+1)
			}
			_, v = tw.dial("flappy", "", ipA)
			check(t, "banned", v, banned)
			if e := tw.checkEvent(t, StageConnect, banned, true); !strings.Contains(e.Detail, "client:flappy") {
				t.Fatalf("ban event detail %q", e.Detail)
			}
			tw.mustDial(t, "steady", "", ipA) // only the client ID is banned
			tw.clock.Add(dur - time.Second)
			_, v = tw.dial("flappy", "", ipA)
			check(t, "a second before the ban ends", v, banned)
			tw.clock.Add(time.Second)
			tw.mustDial(t, "flappy", "", ipA)
			if bans := tw.bans(t); len(bans) != 0 {
				t.Fatalf("expired bans listed: %+v", bans)
			}
		}
	})
	t.Run("user name", func(t *testing.T) {
		tw := newRatesWAF(t, "", map[string]string{"flapping": `{connects: 15/min}`})
		for i := range 15 {
			tw.mustDial(t, "m"+strconv.Itoa(i), "mallory", "198.51.100."+strconv.Itoa(i+1))
		}
		_, v := tw.dial("m15", "mallory", ipA)
		check(t, "16th CONNECT of mallory", v, want{Ban, "rates.flapping", "flapping", CodeBanned})
		if bans := tw.bans(t); len(bans) != 1 || bans[0].Target != ratelimit.UsernameTarget("mallory") {
			t.Fatalf("bans %+v, want user:mallory only", bans)
		}
		_, v = tw.dial("fresh", "mallory", ipB)
		check(t, "mallory with a new client ID", v, banned)
		tw.mustDial(t, "b1", "bob", ipA)
	})
	t.Run("IP", func(t *testing.T) {
		tw := newRatesWAF(t, "", map[string]string{"flapping": `{connects: 15/min, per_ip: 20/min}`})
		for i := range 20 {
			tw.mustDial(t, "anon"+strconv.Itoa(i), "", ipA)
		}
		_, v := tw.dial("anon20", "", ipA)
		check(t, "21st CONNECT from A", v, want{Ban, "rates.flapping", "flapping", CodeBanned})
		if bans := tw.bans(t); len(bans) != 1 || bans[0].Target != ratelimit.IPTarget(netip.MustParseAddr(ipA)) {
			t.Fatalf("bans %+v, want ip:%s only", bans, ipA)
		}
		_, v = tw.dial("carol-1", "carol", ipA)
		check(t, "anyone from A", v, banned)
		tw.mustDial(t, "carol-1", "carol", ipB)
	})
	t.Run("off", func(t *testing.T) {
		tw := newRatesWAF(t, "", map[string]string{"flapping": `{connects: 2/min, off: true}`})
		for range 50 {
			tw.mustDial(t, "flappy", "", ipA)
		}
	})
}

// TestRatesNewClientIDs covers the new-client-ID budgets: global, per IP,
// per user name and per prefix. A client ID seen recently reconnects freely,
// a refused one is not remembered, and the budget slides with the window.
func TestRatesNewClientIDs(t *testing.T) {
	const lifted = "per_ip: 1000000/min, per_username: 1000000/min"
	tests := []struct {
		name    string
		budget  string
		admit   [][3]string // id, user, ip: the three the budget allows
		refuse  [3]string
		another [3]string // not in the refused one's group
	}{
		{"global", `{global: 3/min, ` + lifted + `}`,
			[][3]string{{"a1", "alice", ipA}, {"b1", "bob", ipB}, {"c1", "", ipC}}, [3]string{"d1", "dave", ipD}, [3]string{}},
		{"per IP", `{global: 1000000/min, per_ip: 3/min, per_username: 1000000/min}`,
			[][3]string{{"a1", "alice", ipA}, {"b1", "bob", ipA}, {"c1", "", ipA}}, [3]string{"d1", "dave", ipA}, [3]string{"d2", "dave", ipB}},
		{"per user name", `{global: 1000000/min, per_ip: 1000000/min, per_username: 3/min}`,
			[][3]string{{"a1", "alice", ipA}, {"a2", "alice", ipB}, {"a3", "alice", ipC}}, [3]string{"a4", "alice", ipD}, [3]string{"b1", "bob", ipA}},
		{"per prefix", `{global: 1000000/min, ` + lifted + `, per_prefix: 3/min, prefix_length: 7}`,
			[][3]string{{"sensor-1", "alice", ipA}, {"sensor-2", "bob", ipB}, {"sensor-3", "", ipC}}, [3]string{"sensor-4", "dave", ipD}, [3]string{"device-1", "dave", ipD}},
	}
	w := quota("rates.new_client_ids", "new_client_id_budget")
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tw := newRatesWAF(t, "", map[string]string{"new_client_ids": tc.budget})
			for _, a := range tc.admit {
				tw.mustDial(t, a[0], a[1], a[2])
			}
			r := tc.refuse
			_, v := tw.dial(r[0], r[1], r[2])
			check(t, "over budget", v, w)
			tw.checkEvent(t, StageConnect, w, true)
			_, v = tw.dial(r[0], r[1], r[2])
			check(t, "retried", v, w)
			for range 10 { // known client IDs come back freely
				for _, a := range tc.admit {
					tw.mustDial(t, a[0], a[1], a[2])
				}
			}
			if a := tc.another; a[0] != "" {
				tw.mustDial(t, a[0], a[1], a[2])
			}
			tw.clock.Add(30 * time.Second)
			_, v = tw.dial(r[0], r[1], r[2])
			check(t, "half a window later", v, w)
			// A minute later the admissions are sliding out of the window
			// and there is room for one more; the known client IDs, seen in
			// the previous window, still reconnect without spending budget.
			tw.clock.Add(time.Minute)
			tw.mustDial(t, r[0], r[1], r[2])
			for range 3 {
				for _, a := range tc.admit {
					tw.mustDial(t, a[0], a[1], a[2])
				}
			}
		})
	}
}

// TestRatesNewTopics: an identity may publish to a budgeted number of new
// topics per window; topics it already used keep flowing after the budget
// is spent, from any of its connections, and other identities have their own
// budget. The budget is larger than the per-connection cache of recent
// topics (8), so "known" comes from the novelty table too.
func TestRatesNewTopics(t *testing.T) {
	tw := newRatesWAF(t, "", map[string]string{"new_topics": `{per_identity: 12/h}`})
	w := quota("rates.new_topics", "new_topic_budget")
	a1 := tw.mustDial(t, "a1", "alice", ipA)
	topic := func(i int) string { return "fleet/alice/t" + strconv.Itoa(i) }
	for i := range 12 {
		check(t, topic(i), tw.pub(a1, topic(i), 10), allowed)
	}
	check(t, "13th topic", tw.pub(a1, topic(12), 10), w)
	tw.checkEvent(t, StagePublish, w, true)
	for round := range 5 {
		for i := range 12 {
			check(t, fmt.Sprintf("round %d, known %s", round, topic(i)), tw.pub(a1, topic(i), 10), allowed)
		}
	}
	a2 := tw.mustDial(t, "a2", "alice", ipB)
	for i := 11; i >= 0; i-- {
		check(t, "second connection, known "+topic(i), tw.pub(a2, topic(i), 10), allowed)
	}
	check(t, "second connection, new topic", tw.pub(a2, topic(13), 10), w)
	b1 := tw.mustDial(t, "b1", "bob", ipA)
	check(t, "bob's first topic", tw.pub(b1, "fleet/bob/t0", 10), allowed)
	// Refusals of the topic budget are not rate violations: no escalation.
	for range 100 {
		check(t, "refused again", tw.pub(a1, topic(99), 10), w)
	}
	tw.clock.Add(2 * time.Hour)
	check(t, "next window", tw.pub(a1, topic(12), 10), allowed)
}

// TestRatesRetained covers the retained budgets per identity (topics and
// bytes) and in total; replacing and deleting a retained message frees
// budget; publishes that are not retained are not counted.
func TestRatesRetained(t *testing.T) {
	tw := newRatesWAF(t, "", map[string]string{"retained": `{per_identity: {topics: 3, bytes: 1KiB}, total: {topics: 5, bytes: 2KiB}}`})
	alice := tw.mustDial(t, "a1", "alice", ipA)
	bob := tw.mustDial(t, "b1", "bob", ipA)
	carol := tw.mustDial(t, "c1", "carol", ipA)
	perTopics := quota("rates.retained", "retained_topics_per_identity")

	for i := range 3 {
		check(t, "alice retains", tw.pubRetained(alice, "r/a"+strconv.Itoa(i), 100), allowed)
	}
	v := tw.pubRetained(alice, "r/a3", 100)
	check(t, "alice's fourth topic", v, perTopics)
	if v.Value != 4 || v.Limit != 3 {
		t.Fatalf("value/limit %d/%d, want 4/3", v.Value, v.Limit)
	}
	tw.checkEvent(t, StagePublish, perTopics, true)
	check(t, "not retained", tw.pub(alice, "r/a3", 100), allowed)
	check(t, "replacing her own", tw.pubRetained(alice, "r/a0", 200), allowed)
	// A second connection of the same identity shares the budget.
	alice2 := tw.mustDial(t, "a2", "alice", ipB)
	check(t, "alice's second connection", tw.pubRetained(alice2, "r/a4", 100), perTopics)
	// Deleting (an empty retained message) frees a topic.
	check(t, "delete", tw.pubRetained(alice, "r/a1", 0), allowed)
	check(t, "after delete", tw.pubRetained(alice2, "r/a4", 100), allowed)

	// Bytes per identity count topic and payload: alice holds
	// (4+200)+(4+100)+(4+100) = 412 of 1024.
	check(t, "bytes over", tw.pubRetained(alice, "r/a0", 1024-208-4+1), quota("rates.retained", "retained_bytes_per_identity"))
	check(t, "bytes at the cap", tw.pubRetained(alice, "r/a0", 1024-208-4), allowed)

	// Total topics: alice holds 3, bob takes 2 more, carol gets none.
	check(t, "bob 1", tw.pubRetained(bob, "r/b0", 10), allowed)
	check(t, "bob 2", tw.pubRetained(bob, "r/b1", 10), allowed)
	check(t, "carol", tw.pubRetained(carol, "r/c0", 10), quota("rates.retained", "retained_topics_total"))
	check(t, "bob deletes", tw.pubRetained(bob, "r/b1", 0), allowed)
	check(t, "carol now", tw.pubRetained(carol, "r/c0", 10), allowed)
	// Messages the broker stores itself (a nil client) are counted too.
	tw.Retained(nil, "r/broker", 10)
	check(t, "after the broker's own", tw.pubRetained(carol, "r/c1", 10), quota("rates.retained", "retained_topics_total"))
	tw.Retained(nil, "r/broker", 0)

	// Total bytes: 1024 (alice) + 4+10 (bob) + 4+10 (carol) held of 2048;
	// carol grows her message (within her own 1 KiB).
	check(t, "carol's bytes over the total", tw.pubRetained(carol, "r/c0", 1007), quota("rates.retained", "retained_bytes_total"))
	check(t, "carol's bytes at the total", tw.pubRetained(carol, "r/c0", 1006), allowed)
}

// TestRatesRetainedTakeover: a retained message that replaces another
// identity's on the same topic leaves the store's totals as they were plus
// the size difference, so a full total must not refuse it.
func TestRatesRetainedTakeover(t *testing.T) {
	t.Run("total bytes", func(t *testing.T) {
		tw := newRatesWAF(t, "", map[string]string{"retained": `{per_identity: {topics: 5, bytes: 1MiB}, total: {topics: 10, bytes: 1000}}`})
		alice := tw.mustDial(t, "a1", "alice", ipA)
		bob := tw.mustDial(t, "b1", "bob", ipA)
		check(t, "alice", tw.pubRetained(alice, "shared/state", 600), allowed)
		check(t, "bob replaces it with as many bytes (total stays 600 of 1000)", tw.pubRetained(bob, "shared/state", 600), allowed)
		check(t, "bob grows it to 900", tw.pubRetained(bob, "shared/state", 900), allowed)
		check(t, "alice, 101 more bytes", tw.pubRetained(alice, "alice/x", 101), quota("rates.retained", "retained_bytes_total"))
	})
	t.Run("total topics", func(t *testing.T) {
		tw := newRatesWAF(t, "", map[string]string{"retained": `{per_identity: {topics: 2, bytes: 1MiB}, total: {topics: 2, bytes: 1MiB}}`})
		alice := tw.mustDial(t, "a1", "alice", ipA)
		bob := tw.mustDial(t, "b1", "bob", ipA)
		check(t, "alice 1", tw.pubRetained(alice, "shared/state", 10), allowed)
		check(t, "alice 2", tw.pubRetained(alice, "alice/x", 10), allowed)
		check(t, "bob replaces shared/state (total stays 2 of 2)", tw.pubRetained(bob, "shared/state", 10), allowed)
		check(t, "bob, a new topic", tw.pubRetained(bob, "bob/x", 10), quota("rates.retained", "retained_topics_total"))
	})
}

// TestRatesEscalation: rate refusals beyond disconnect_after within a minute
// turn into DISCONNECT 0x96; the count then starts again, and the
// disconnects beyond ban_after within ten minutes turn into a ban of the
// client ID and user name, which the next CONNECT meets (0x8A).
func TestRatesEscalation(t *testing.T) {
	tw := newRatesWAF(t, "", map[string]string{
		"publish":    `{per_connection: {messages: 1/s, burst: 1}}`,
		"escalation": `{disconnect_after: 3, ban_after: 2}`,
	})
	reject := msgRate("connection_message_rate")
	disconnect := want{Disconnect, "rates.publish", "connection_message_rate", CodeMessageRateTooHigh}
	ban := want{Ban, "rates.publish", "connection_message_rate", CodeBanned}
	c := tw.mustDial(t, "dev1", "alice", ipA)
	check(t, "first", tw.pub(c, "t", 1), allowed)
	for round, last := range []want{disconnect, disconnect, ban} {
		for i := range 3 {
			check(t, fmt.Sprintf("round %d, refusal %d", round, i+1), tw.pub(c, "t", 1), reject)
			tw.checkEvent(t, StagePublish, reject, true)
		}
		v := tw.pub(c, "t", 1)
		check(t, fmt.Sprintf("round %d, refusal 4", round), v, last)
		e := tw.checkEvent(t, StagePublish, last, true)
		if e.Detail == "" {
			t.Fatalf("escalation event without detail: %+v", e)
		}
		if last.Action == Ban {
			break
		}
		// The adapter closed the connection; the client comes straight
		// back, with its bucket still empty.
		c = tw.mustDial(t, "dev1", "alice", ipA)
	}
	bans := tw.bans(t)
	targets := []ratelimit.Target{}
	for _, b := range bans {
		targets = append(targets, b.Target)
		if b.Until.Sub(b.Since) != 5*time.Minute {
			t.Fatalf("ban %+v: want the flapping ban duration (5m)", b)
		}
	}
	if !slices.Equal(targets, []ratelimit.Target{ratelimit.ClientIDTarget("dev1"), ratelimit.UsernameTarget("alice")}) {
		t.Fatalf("bans %+v, want client:dev1 and user:alice", bans)
	}
	_, v := tw.dial("dev1", "alice", ipA)
	check(t, "reconnect", v, banned)
	_, v = tw.dial("dev9", "alice", ipB)
	check(t, "another client of alice", v, banned)
	tw.mustDial(t, "dev2", "bob", ipA)
}

// TestRatesEscalationCountsAllRateLimits: refusals by any publish rate
// (here a topic rate and the byte rate) count towards escalation, and only
// those within the last minute do.
func TestRatesEscalationCountsAllRateLimits(t *testing.T) {
	tw := newRatesWAF(t, "", map[string]string{
		"publish":    `{per_connection: {messages: 1000/s, bytes: 100/s}, topics: [{topics: ["slow/#"], messages: 1/min, burst: 1}]}`,
		"escalation": `{disconnect_after: 4, ban_after: 10}`,
	})
	topicRate, byteRate := msgRate("topic_message_rate"), msgRate("connection_byte_rate")
	disconnect := want{Disconnect, "rates.publish", "topic_message_rate", CodeMessageRateTooHigh}
	c := tw.mustDial(t, "dev1", "", ipA)
	for i, s := range []struct {
		topic string
		size  int
		want  want
	}{
		// Sizes are payloads; each message also counts its 6-byte topic.
		{"slow/x", 1, allowed}, {"slow/x", 1, topicRate}, {"slow/x", 1, topicRate}, // 79 bytes left
		{"fast/x", 66, allowed}, {"fast/x", 66, byteRate}, {"fast/x", 66, byteRate}, // 7 bytes left
		{"slow/x", 1, disconnect}, // the fifth refusal within a minute
	} {
		check(t, fmt.Sprintf("publish %d on %s", i, s.topic), tw.pub(c, s.topic, s.size), s.want)
	}

	d := tw.mustDial(t, "dev2", "", ipB)
	check(t, "dev2 slow", tw.pub(d, "slow/x", 1), allowed)
	for i := range 4 {
		check(t, fmt.Sprintf("dev2 refusal %d", i+1), tw.pub(d, "slow/x", 1), topicRate)
	}
	tw.clock.Add(3 * time.Minute) // those four have slid out of the minute
	check(t, "dev2 slow after 3 minutes", tw.pub(d, "slow/x", 1), allowed)
	for i := range 4 {
		check(t, fmt.Sprintf("dev2 refusal %d after a quiet period", i+1), tw.pub(d, "slow/x", 1), topicRate)
	}
	check(t, "dev2 fifth refusal in a minute", tw.pub(d, "slow/x", 1), disconnect)
}

// TestRatesDetectionOnly: with every protection tight and the mode
// detection_only, nothing is refused and nothing is banned, and every
// would-be block is an event with Enforced=false.
func TestRatesDetectionOnly(t *testing.T) {
	tw := newRatesWAF(t, "mode: detection_only\n", map[string]string{
		"publish":        `{per_connection: {messages: 1/s, burst: 1}}`,
		"subscribe":      `{per_connection: 1/s, max_subscriptions: 1, max_filters: 1}`,
		"connect":        `{per_ip: 1/s, per_listener: 1000/s}`,
		"flapping":       `{connects: 2/min}`,
		"new_client_ids": `{global: 1/min, per_ip: 1/min, per_username: 1/min}`,
		"new_topics":     `{per_identity: 1/h}`,
		"retained":       `{per_identity: {topics: 1, bytes: 1KiB}, total: {topics: 1, bytes: 1KiB}}`,
		"escalation":     `{disconnect_after: 2, ban_after: 1}`,
	})
	var clients []*Client
	for i := range 5 {
		c, v := tw.dial("dev1", "alice", ipA)
		check(t, fmt.Sprintf("CONNECT %d", i), v, allowed)
		clients = append(clients, c)
		_, v = tw.dial("dev"+strconv.Itoa(i+2), "alice", ipA)
		check(t, fmt.Sprintf("new client ID %d", i), v, allowed)
	}
	c := clients[len(clients)-1]
	for i := range 10 {
		check(t, fmt.Sprintf("publish %d", i), tw.pub(c, "t/"+strconv.Itoa(i), 10), allowed)
		check(t, fmt.Sprintf("retained %d", i), tw.pubRetained(c, "r/"+strconv.Itoa(i), 10), allowed)
		check(t, fmt.Sprintf("subscribe %d", i), tw.Subscribe(c, &Subscription{Filter: "a", Count: 3, Existing: 5}), allowed)
	}
	if bans := tw.bans(t); len(bans) != 0 {
		t.Fatalf("detection_only banned: %+v", bans)
	}
	check(t, "CONNECT after the would-be bans", tw.connectClient(rclient("dev1", "alice", ipA)), allowed)
	seen := map[string]bool{}
	for _, e := range tw.events.take() {
		if e.Enforced {
			t.Fatalf("enforced event in detection_only: %+v", e)
		}
		if e.Rule == "bans" {
			t.Fatalf("a ban was applied: %+v", e)
		}
		seen[e.Rule+"/"+e.Action.String()+"/"+e.Reason] = true
	}
	for _, k := range []string{
		"rates.connect/reject/ip_connect_rate",
		"rates.flapping/ban/flapping",
		"rates.new_client_ids/reject/new_client_id_budget",
		"rates.publish/reject/connection_message_rate",
		"rates.publish/disconnect/connection_message_rate",
		"rates.publish/ban/connection_message_rate",
		"rates.new_topics/reject/new_topic_budget",
		"rates.retained/reject/retained_topics_per_identity",
		"rates.subscribe/reject/too_many_filters",
	} {
		if !seen[k] {
			t.Errorf("no event %s; saw %v", k, seen)
		}
	}
}

// TestRatesOperatorBans: bans added through WAF.Bans() apply from the next
// CONNECT, List shows them, and removing one lets the client back in.
func TestRatesOperatorBans(t *testing.T) {
	tw := newRatesWAF(t, "", nil)
	now := tw.clock.Now()
	dev1 := tw.mustDial(t, "dev1", "alice", ipA) // connected before the ban
	bans := []ratelimit.Ban{
		{Target: ratelimit.ClientIDTarget("dev1"), Reason: "operator: stolen device", Until: now.Add(time.Hour)},
		{Target: ratelimit.UsernameTarget("mallory"), Reason: "operator"}, // permanent
		{Target: ratelimit.PrefixTarget(netip.MustParsePrefix("198.51.100.0/24")), Reason: "operator", Until: now.Add(time.Minute)},
	}
	for _, b := range bans {
		if err := tw.Bans().Add(now, b); err != nil {
			t.Fatal(err)
		}
	}
	if l := tw.bans(t); len(l) != 3 {
		t.Fatalf("List: %+v", l)
	}
	// A ban does not touch a live connection (the adapter closes nothing on
	// its own); it applies from the next CONNECT.
	check(t, "dev1 still publishing", tw.pub(dev1, "t", 1), allowed)
	cases := []struct {
		id, user, ip string
		want         want
		detail       string
	}{
		{"dev1", "alice", ipA, banned, "until"},
		{"dev1", "", ipB, banned, "stolen device"},
		{"m1", "mallory", ipA, banned, "permanently"},
		{"x1", "", "198.51.100.77", banned, "ip:198.51.100.0/24"},
		{"x1", "bob", "198.51.101.77", allowed, ""},
		{"dev2", "alice", ipA, allowed, ""},
	}
	for _, c := range cases {
		_, v := tw.dial(c.id, c.user, c.ip)
		check(t, c.id+"/"+c.user+"/"+c.ip, v, c.want)
		if c.want == banned && !strings.Contains(v.Detail, c.detail) {
			t.Fatalf("%s: detail %q, want it to mention %q", c.id, v.Detail, c.detail)
		}
	}
	if ok, err := tw.Bans().Remove(ratelimit.ClientIDTarget("dev1")); !ok || err != nil {
		t.Fatalf("Remove: %v %v", ok, err)
	}
	tw.mustDial(t, "dev1", "alice", ipA)
	if ok, _ := tw.Bans().Remove(ratelimit.ClientIDTarget("dev1")); ok {
		t.Fatal("removed twice")
	}
	tw.clock.Add(time.Minute) // the network ban ends
	tw.mustDial(t, "x1", "", "198.51.100.77")
	_, v := tw.dial("m1", "mallory", ipA)
	check(t, "permanent ban", v, banned)
	if l := tw.bans(t); len(l) != 1 || l[0].Target != ratelimit.UsernameTarget("mallory") {
		t.Fatalf("List: %+v", l)
	}
}

// TestRatesPublishAllowAllocsNoRace pins the zero-allocation allow path with every
// rate protection at its default (a known client within its rates).
func TestRatesPublishAllowAllocsNoRace(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under -race; run without it: go test -run NoRace")
	}
	w, c, m := newRatesBenchWAF(t, "defaults")
	if n := testing.AllocsPerRun(1000, func() {
		if v, out := w.Publish(c, m); v.Blocked() || out != nil {
			t.Fatal(v)
		}
	}); n != 0 {
		t.Fatalf("publish allow path with default rates: %v allocations", n)
	}
}

// Bounded memory.

const mib = 1 << 20

// ratesMemCap is the live heap a WAF may hold for its rate state, whatever
// clients do.
const ratesMemCap = 64 * mib

func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// distinctCounts: 100,000 always; 1,000,000 except under -race or -short.
func distinctCounts() []int {
	if raceEnabled || testing.Short() {
		return []int{100_000}
	}
	return []int{100_000, 1_000_000}
}

// ipOf is a distinct IPv4 address per n (10.0.0.0/8).
func ipOf(n int) netip.Addr {
	return netip.AddrFrom4([4]byte{10, byte(n >> 16), byte(n >> 8), byte(n)})
}

func num(prefix string, n int) string {
	return string(strconv.AppendInt([]byte(prefix), int64(n), 10))
}

// checkTables fails if a rate table holds more keys than max_keys.
func checkTables(tb testing.TB, w *WAF) {
	tb.Helper()
	rs := w.st.currentRates()
	maxKeys := rs.policy.MaxKeys
	for name, n := range map[string]int{
		"connMsgs": rs.connMsgs.Len(), "connBytes": rs.connBytes.Len(), "userMsgs": rs.userMsgs.Len(),
		"userBytes": rs.userBytes.Len(), "ipMsgs": rs.ipMsgs.Len(), "ipBytes": rs.ipBytes.Len(),
		"connectsIP": rs.connectsIP.Len(), "flapClient": rs.flapClient.Len(), "flapUser": rs.flapUser.Len(),
		"flapIP": rs.flapIP.Len(), "violations": rs.violations.Len(), "claims": w.st.claims.len(),
	} {
		if n > maxKeys {
			tb.Errorf("%s holds %d keys, max_keys %d", name, n, maxKeys)
		}
	}
}

// TestRatesBoundedMemoryClientIDsNoRace drives distinct client IDs (CONNECT and
// one PUBLISH each, from 1 address per 8 clients and 1 user name per 20)
// through a WAF with the default rates, except new_client_ids.global, raised
// from 5000/min to 100000/min, and rates.connect.per_network (the addresses
// are consecutive), so that the churn (1000 CONNECTs a second, the default
// per-listener rate) is admitted. Every CONNECT and PUBLISH must pass,
// so every table sees every key, and the live heap must stay under 64 MiB.
func TestRatesBoundedMemoryClientIDsNoRace(t *testing.T) {
	for _, n := range distinctCounts() {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			clock := newFakeClock()
			p, err := ParsePolicy([]byte(ratesIdentity+"rates: {new_client_ids: {global: 100000/min}, connect: {per_network: 100000/s}}\n"), "mem.yaml")
			if err != nil {
				t.Fatal(err)
			}
			before := liveHeap()
			w, err := New(p, Options{Now: clock.Now, Sink: SinkFunc(func(Event) {})})
			if err != nil {
				t.Fatal(err)
			}
			base := liveHeap()
			payload := make([]byte, 64)
			m := &Message{Topic: "", QoS: 1, Payload: payload}
			var topic []byte
			for i := range n {
				clock.Add(time.Millisecond)
				c := &Client{
					ID: num("sensor-", i), Username: num("user-", i%(n/20)), Listener: "tcp", Protocol: MQTT5,
					RemoteIP: ipOf(i / 8), Auth: AuthCertificate,
				}
				c.TLS = &TLSInfo{Verified: true, CommonName: c.Username}
				if v := w.Connect(&Connect{Client: c, Clean: true, Keepalive: 60}); v.Blocked() {
					t.Fatalf("CONNECT %d refused: %+v", i, v)
				}
				w.Established(c)
				topic = append(append(append(topic[:0], "fleet/"...), c.ID...), "/telemetry"...)
				m.Topic = string(topic)
				if v, _ := w.Publish(c, m); v.Blocked() {
					t.Fatalf("PUBLISH %d refused: %+v", i, v)
				}
			}
			after := liveHeap()
			used := after - min(base, after)
			checkTables(t, w)
			runtime.KeepAlive(w)
			t.Logf("%d client IDs: %.1f MiB live above the fresh WAF (which holds %.1f MiB)",
				n, float64(used)/mib, float64(base-min(before, base))/mib)
			if used > ratesMemCap {
				t.Fatalf("%d distinct client IDs: %.1f MiB live, cap %d MiB", n, float64(used)/mib, ratesMemCap/mib)
			}
		})
	}
}

// TestRatesBoundedMemoryTopicsNoRace drives distinct topics from one identity (one
// connection, publishing about 90 messages a second, within the default
// per-connection rate) through a WAF with the default rates, except
// new_topics.per_identity, raised from 10000/h to 10000000/h so that every
// new topic is admitted. Every PUBLISH must pass and the live heap must stay
// under 64 MiB.
func TestRatesBoundedMemoryTopicsNoRace(t *testing.T) {
	for _, n := range distinctCounts() {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			clock := newFakeClock()
			p, err := ParsePolicy([]byte(ratesIdentity+"rates: {new_topics: {per_identity: 10000000/h}}\n"), "mem.yaml")
			if err != nil {
				t.Fatal(err)
			}
			before := liveHeap()
			w, err := New(p, Options{Now: clock.Now, Sink: SinkFunc(func(Event) {})})
			if err != nil {
				t.Fatal(err)
			}
			base := liveHeap()
			c := rclient("sensor-1", "sensor", ipA)
			if v := w.Connect(&Connect{Client: c, Clean: true, Keepalive: 60}); v.Blocked() {
				t.Fatal(v)
			}
			w.Established(c)
			m := &Message{QoS: 1, Payload: make([]byte, 64)}
			for i := range n {
				clock.Add(11 * time.Millisecond)
				m.Topic = num("fleet/sensor/metric-", i)
				if v, _ := w.Publish(c, m); v.Blocked() {
					t.Fatalf("PUBLISH %d refused: %+v", i, v)
				}
			}
			after := liveHeap()
			used := after - min(base, after)
			checkTables(t, w)
			runtime.KeepAlive(w)
			t.Logf("%d topics: %.1f MiB live above the fresh WAF (which holds %.1f MiB)",
				n, float64(used)/mib, float64(base-min(before, base))/mib)
			if used > ratesMemCap {
				t.Fatalf("%d distinct topics: %.1f MiB live, cap %d MiB", n, float64(used)/mib, ratesMemCap/mib)
			}
		})
	}
}

// TestRatesEvictionSparesWellBehavedNoRace: twice max_keys attacker client IDs churn
// through the tables, each from its own address and user name: it connects,
// drains its byte bucket with one 512 KiB message and is refused once more
// (so its evicted state is a debt and a violation). Meanwhile well-behaved
// clients publish 200-byte messages within their rates: one every 100ms of
// fake time, which keeps it in the tables, and twenty that publish so rarely
// that the churn evicts them between messages. None may ever be refused.
// Only the budgets that would refuse the churn are raised: CONNECTs per
// listener and per network, and new client IDs globally. The subtests vary how fast the churn
// is: a bucket evicted within a second of being drained leaves a debt.
//
// Under -race and -short the scene is scaled down (max_keys 10,000 and
// 20,000 attackers), which keeps the proportions: the race detector makes
// the full run slow, and this is not a concurrency test.
func TestRatesEvictionSparesWellBehavedNoRace(t *testing.T) {
	maxKeys := 20_000 // the default
	if raceEnabled || testing.Short() {
		maxKeys = 10_000
	}
	attackers := 2 * maxKeys
	for _, pace := range []int{10_000, 400_000} { // attackers per second
		t.Run(strconv.Itoa(pace)+"/s", func(t *testing.T) {
			clock := newFakeClock()
			src := ratesIdentity + "rates: {connect: {per_listener: 1000000/s, per_network: 1000000/s}, new_client_ids: {global: 100000000/min}"
			if maxKeys != 20_000 {
				src += ", max_keys: " + strconv.Itoa(maxKeys)
			}
			p, err := ParsePolicy([]byte(src+"}\n"), "evict.yaml")
			if err != nil {
				t.Fatal(err)
			}
			w, err := New(p, Options{Now: clock.Now, Sink: SinkFunc(func(Event) {})})
			if err != nil {
				t.Fatal(err)
			}
			step := time.Second / time.Duration(pace)
			// A slow client publishes once per 1.5*max_keys attackers: each
			// shard of a table has seen about 1.5 times its room in new keys
			// since.
			slowEvery := time.Duration(maxKeys) * 3 / 2 * step
			type good struct {
				c     *Client
				every time.Duration
				next  time.Time
				sent  int
			}
			var goods []*good
			for i := range 21 {
				every := slowEvery
				if i == 0 {
					every = 100 * time.Millisecond
				}
				id := num("good-", i)
				c := rclient(id, id, "203.0.113."+strconv.Itoa(i+1))
				if v := w.Connect(&Connect{Client: c, Clean: true, Keepalive: 60}); v.Blocked() {
					t.Fatal(v)
				}
				w.Established(c)
				// The slow ones start staggered across the first quarter
				// of the churn, so each publishes at least twice.
				next := clock.Now().Add(time.Duration(i) * step * time.Duration(attackers/80))
				goods = append(goods, &good{c: c, every: every, next: next})
			}
			big := &Message{Topic: "attack/x", QoS: 1, Payload: make([]byte, 512<<10)}
			small := &Message{Topic: "attack/x", QoS: 1, Payload: make([]byte, 10)}
			telemetry := &Message{QoS: 1, Payload: make([]byte, 200)}
			refusals, drained := 0, 0
			for i := range attackers {
				clock.Add(step)
				now := clock.Now()
				id := num("attacker-", i)
				a := &Client{ID: id, Username: id, Listener: "tcp", Protocol: MQTT5, RemoteIP: ipOf(i), Auth: AuthCertificate,
					TLS: &TLSInfo{Verified: true, CommonName: id}}
				if v := w.Connect(&Connect{Client: a, Clean: true, Keepalive: 60}); v.Blocked() {
					t.Fatalf("attacker %d refused at CONNECT (the test wants churn): %+v", i, v)
				}
				w.Established(a)
				// Under the fastest churn some new attacker keys inherit
				// debts of evicted ones and are refused at once: that is
				// the eviction memory failing closed, and is not checked.
				if v, _ := w.Publish(a, big); !v.Blocked() {
					drained++
					if v, _ := w.Publish(a, small); !v.Blocked() {
						t.Fatalf("attacker %d: drained bucket not refused", i)
					}
				}
				for _, g := range goods {
					if now.Before(g.next) {
						continue
					}
					telemetry.Topic = "fleet/" + g.c.ID + "/telemetry"
					if v, _ := w.Publish(g.c, telemetry); v.Blocked() {
						refusals++
						t.Errorf("well-behaved %s (one message per %v) refused after %d messages, %d attackers in: %s/%s",
							g.c.ID, g.every, g.sent, i, v.Rule, v.Reason)
					}
					g.sent++
					g.next = now.Add(g.every)
				}
			}
			checkTables(t, w)
			sent := 0
			for _, g := range goods {
				sent += g.sent
			}
			t.Logf("well-behaved clients: %d messages, %d refused (fast one: %d messages); attackers: %d of %d let drain their bucket",
				sent, refusals, goods[0].sent, drained, attackers)
			if drained < attackers/2 {
				t.Fatalf("only %d attackers drained their bucket: the churn did not happen as intended", drained)
			}
		})
	}
}

// Benchmarks.

// stepClock is a clock that moves forward by step at every reading, so a
// benchmark loop publishes at 1/step per second of fake time, whatever its
// real speed.
type stepClock struct {
	base time.Time
	ns   atomic.Int64
	step int64
}

func (c *stepClock) Now() time.Time { return c.base.Add(time.Duration(c.ns.Add(c.step))) }

// newRatesBenchWAF is a policy of certificate devices with the rates of
// mode: "defaults", every rate protection at its default; "raised", the
// rates raised so that they never bite; "none", the raised policy with the
// rate rules taken out of the compiled engine, the baseline of what the rest
// of the publish path costs. The clock moves 11ms per reading: each client
// stays within the default 100 messages a second however fast the loop runs.
func newRatesBenchWAF(tb testing.TB, mode string) (*WAF, *Client, *Message) {
	tb.Helper()
	src := ratesIdentity
	if mode != "defaults" {
		src = ratesPolicyYAML("", nil)
	}
	p, err := ParsePolicy([]byte(src), "bench.yaml")
	if err != nil {
		tb.Fatal(err)
	}
	clock := &stepClock{base: newFakeClock().Now(), step: int64(11 * time.Millisecond)}
	w, err := New(p, Options{Sink: SinkFunc(func(Event) {}), Now: clock.Now})
	if err != nil {
		tb.Fatal(err)
	}
	if mode == "none" {
		e := *w.engine.Load()
		e.publish = slices.DeleteFunc(slices.Clone(e.publish), func(r PublishRule) bool { return strings.HasPrefix(r.ID(), "rates.") })
		w.engine.Store(&e)
	}
	c, v := benchClient(w, 0)
	if v.Blocked() {
		tb.Fatal(v)
	}
	m := realisticMessage(tb)
	m.Topic = "fleet/" + c.ID + "/telemetry"
	return w, c, m
}

// benchClient connects device n (its own client ID, user name and address).
func benchClient(w *WAF, n int) (*Client, Verdict) {
	id := num("device-", n)
	c := &Client{ID: id, Username: id, Listener: "tls", Auth: AuthCertificate, Protocol: MQTT5,
		RemoteIP: ipOf(n + 1), TLS: &TLSInfo{Verified: true, CommonName: id}}
	v := w.Connect(&Connect{Client: c, Clean: true, Keepalive: 60})
	if !v.Blocked() {
		w.Established(c)
	}
	return c, v
}

// BenchmarkRatesPublishAllow measures the publish allow path of a known
// client within its rates with every rate protection at its default, beside
// the same WAF with the rates raised so they never refuse, and without the
// rate rules at all (the baselines): the difference is what the rate
// protections cost. Parallel: one client per goroutine, one WAF.
func BenchmarkRatesPublishAllow(b *testing.B) {
	for _, mode := range []string{"none", "raised", "defaults"} {
		b.Run(mode+"/serial", func(b *testing.B) {
			w, c, m := newRatesBenchWAF(b, mode)
			b.ReportAllocs()
			for b.Loop() {
				if v, _ := w.Publish(c, m); v.Blocked() {
					b.Fatal(v)
				}
			}
		})
		b.Run(mode+"/parallel", func(b *testing.B) {
			w, _, m0 := newRatesBenchWAF(b, mode)
			var next atomic.Int64
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				c, v := benchClient(w, int(next.Add(1)))
				if v.Blocked() {
					b.Error(v)
					return
				}
				m := *m0
				m.Topic = "fleet/" + c.ID + "/telemetry"
				for pb.Next() {
					if v, _ := w.Publish(c, &m); v.Blocked() {
						b.Error(v)
						return
					}
				}
			})
		})
	}
}
