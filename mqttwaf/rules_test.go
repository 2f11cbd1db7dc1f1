package mqttwaf

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// wantVerdict is what a rule table expects: zero Action means allowed.
type wantVerdict struct {
	action       Action
	code         ReasonCode
	reason       string
	value, limit int64
	checkNumbers bool
}

func checkVerdict(t *testing.T, what string, v Verdict, want wantVerdict) {
	t.Helper()
	if v.Action != want.action || v.Code != want.code || v.Reason != want.reason {
		t.Errorf("%s = {%s %#x %q}, want {%s %#x %q}", what, v.Action, byte(v.Code), v.Reason, want.action, byte(want.code), want.reason)
	}
	if want.checkNumbers && (v.Value != want.value || v.Limit != want.limit) {
		t.Errorf("%s: value/limit = %d/%d, want %d/%d", what, v.Value, v.Limit, want.value, want.limit)
	}
}

func reject(code ReasonCode, reason string) wantVerdict {
	return wantVerdict{action: Reject, code: code, reason: reason}
}

func over(code ReasonCode, reason string, value, limit int64) wantVerdict {
	return wantVerdict{action: Reject, code: code, reason: reason, value: value, limit: limit, checkNumbers: true}
}

func TestClientIDLimits(t *testing.T) {
	tests := []struct {
		name, id string
		want     wantVerdict
	}{
		{"empty (broker assigns)", "", wantVerdict{}},
		{"plain", "device-0042", wantVerdict{}},
		{"max length", strings.Repeat("a", 16), wantVerdict{}},
		{"too long", strings.Repeat("a", 17), over(CodeClientIDNotValid, "client_id_too_long", 17, 16)},
		{"unicode", "gerät-ü✓", wantVerdict{}},
		{"space", "a b", wantVerdict{}},
		{"slash", "a/b", reject(CodeClientIDNotValid, "client_id_invalid_chars")},
		{"plus", "a+b", reject(CodeClientIDNotValid, "client_id_invalid_chars")},
		{"hash", "#", reject(CodeClientIDNotValid, "client_id_invalid_chars")},
		{"NUL", "a\x00b", reject(CodeClientIDNotValid, "client_id_invalid_chars")},
		{"newline", "a\nb", reject(CodeClientIDNotValid, "client_id_invalid_chars")},
		{"escape", "a\x1b[31m", reject(CodeClientIDNotValid, "client_id_invalid_chars")},
		{"DEL", "a\x7f", reject(CodeClientIDNotValid, "client_id_invalid_chars")},
		{"C1 NEL", "a\u0085b", reject(CodeClientIDNotValid, "client_id_invalid_chars")},
		{"C1 CSI", "a\u009b", reject(CodeClientIDNotValid, "client_id_invalid_chars")},
		{"first after C1", "a\u00a0", wantVerdict{}},
		{"invalid UTF-8", "a\xffb", reject(CodeClientIDNotValid, "client_id_invalid_chars")},
		{"lone continuation byte", "\x85", reject(CodeClientIDNotValid, "client_id_invalid_chars")},
		{"truncated UTF-8", "ab\xc3", reject(CodeClientIDNotValid, "client_id_invalid_chars")},
		{"surrogate", "\xed\xa0\x80", reject(CodeClientIDNotValid, "client_id_invalid_chars")},
		{"overlong", "\xc0\xaf", reject(CodeClientIDNotValid, "client_id_invalid_chars")},
		{"too long wins", strings.Repeat("/", 17), over(CodeClientIDNotValid, "client_id_too_long", 17, 16)},
	}
	tw := newTestWAF(t, "limits: {client_id: {max_length: 16}}\nsessions: {takeover: allow}\n")
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := tw.Connect(&Connect{Client: testClient(tc.id, "alice"), Keepalive: 60})
			checkVerdict(t, "Connect", v, tc.want)
			evs := tw.events.take()
			if tc.want.action == Allow {
				if len(evs) != 0 {
					t.Errorf("events = %+v", evs)
				}
				return
			}
			if len(evs) != 1 || evs[0].Rule != "limits.client_id" || evs[0].Stage != StageConnect || evs[0].ClientID != tc.id {
				t.Errorf("events = %+v", evs)
			}
		})
	}
}

func TestTopicLimitsPublish(t *testing.T) {
	long32 := strings.Repeat("t", 32)
	tests := []struct {
		name, topic string
		want        wantVerdict
	}{
		{"plain", "fleet/dev1/telemetry", wantVerdict{}},
		{"max levels", "a/b/c/d", wantVerdict{}},
		{"too many levels", "a/b/c/d/e", over(CodeTopicNameInvalid, "topic_too_many_levels", 5, 4)},
		{"empty levels count", "///", wantVerdict{}},
		{"empty levels too many", "////", over(CodeTopicNameInvalid, "topic_too_many_levels", 5, 4)},
		{"max length", long32, wantVerdict{}},
		{"too long", long32 + "x", over(CodeTopicNameInvalid, "topic_too_long", 33, 32)},
		{"length before levels", strings.Repeat("/", 40), over(CodeTopicNameInvalid, "topic_too_long", 40, 32)},
		{"unicode", "gerät/ü", wantVerdict{}},
		{"NUL", "a/\x00", reject(CodeTopicNameInvalid, "topic_invalid_chars")},
		{"tab", "a/\tb", reject(CodeTopicNameInvalid, "topic_invalid_chars")},
		{"DEL", "a/\x7f", reject(CodeTopicNameInvalid, "topic_invalid_chars")},
		{"C1", "a/\u0080", reject(CodeTopicNameInvalid, "topic_invalid_chars")},
		{"invalid UTF-8", "a/\xfe", reject(CodeTopicNameInvalid, "topic_invalid_chars")},
		{"$SYS", "$SYS/broker/load", reject(CodeTopicNameInvalid, "topic_reserved")},
		{"$mqttwaf", ReservedPrefix + "wills/dev1", reject(CodeTopicNameInvalid, "topic_reserved")},
		{"bare $", "$", reject(CodeTopicNameInvalid, "topic_reserved")},
		{"$ later is fine", "a/$b", wantVerdict{}},
		{"empty (unresolved alias)", "", reject(CodeTopicNameInvalid, "topic_empty")},
	}
	tw := newTestWAF(t, "limits: {topic: {max_length: 32, max_levels: 4}}\n")
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v, _ := tw.Publish(testClient("dev1", "alice"), &Message{Topic: tc.topic, Payload: []byte("xyz")})
			checkVerdict(t, "Publish", v, tc.want)
			evs := tw.events.take()
			if tc.want.action == Allow {
				if len(evs) != 0 {
					t.Errorf("events = %+v", evs)
				}
				return
			}
			if len(evs) != 1 || evs[0].Rule != "limits.topic" || evs[0].Topic != tc.topic || evs[0].Size != 3 {
				t.Errorf("events = %+v", evs)
			}
		})
	}
}

func TestTopicLimitsSubscribe(t *testing.T) {
	long32 := strings.Repeat("f", 32)
	tests := []struct {
		name, filter string
		want         wantVerdict
	}{
		{"wildcards", "fleet/+/telemetry", wantVerdict{}},
		{"multi-level", "#", wantVerdict{}},
		{"$SYS may be read", "$SYS/#", wantVerdict{}},
		{"$mqttwaf refused", ReservedPrefix + "#", reject(CodeNotAuthorized, "topic_reserved")},
		{"$mqttwaf itself", "$mqttwaf", reject(CodeNotAuthorized, "topic_reserved")},
		{"$mqttwaf deep", "$mqttwaf/wills/+", reject(CodeNotAuthorized, "topic_reserved")},
		{"shared $mqttwaf", "$share/g/$mqttwaf/#", reject(CodeNotAuthorized, "topic_reserved")},
		{"shared empty group $mqttwaf", "$share//$mqttwaf/x", reject(CodeNotAuthorized, "topic_reserved")},
		{"too many levels", "a/b/c/d/e", over(CodeTopicFilterInvalid, "topic_too_many_levels", 5, 4)},
		{"shared max levels", "$share/group/a/b/c/d", wantVerdict{}},
		{"shared too many levels", "$share/group/a/b/c/d/e", over(CodeTopicFilterInvalid, "topic_too_many_levels", 5, 4)},
		{"max length", long32, wantVerdict{}},
		{"too long", long32 + "f", over(CodeTopicFilterInvalid, "topic_too_long", 33, 32)},
		{"shared prefix not measured", "$share/a-long-group-name/" + long32, wantVerdict{}},
		{"shared too long", "$share/g/" + long32 + "f", over(CodeTopicFilterInvalid, "topic_too_long", 33, 32)},
		{"control", "a/\x01", reject(CodeTopicFilterInvalid, "topic_invalid_chars")},
		{"shared control", "$share/g/\x01", reject(CodeTopicFilterInvalid, "topic_invalid_chars")},
		{"invalid UTF-8", "\xc3(", reject(CodeTopicFilterInvalid, "topic_invalid_chars")},
	}
	tw := newTestWAF(t, "limits: {topic: {max_length: 32, max_levels: 4}}\n")
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := tw.Subscribe(testClient("dev1", "alice"), &Subscription{Filter: tc.filter, Count: 1})
			checkVerdict(t, "Subscribe", v, tc.want)
			evs := tw.events.take()
			if (len(evs) == 1) != (tc.want.action != Allow) || len(evs) == 1 && (evs[0].Topic != tc.filter || evs[0].Stage != StageSubscribe) {
				t.Errorf("events = %+v", evs)
			}
		})
	}
}

func TestUserPropertyLimits(t *testing.T) {
	props := func(n, size int) []UserProperty {
		out := make([]UserProperty, n)
		for i := range out {
			out[i] = UserProperty{Key: "k", Value: strings.Repeat("v", size/n-1)}
		}
		return out
	}
	tests := []struct {
		name  string
		props []UserProperty
		want  wantVerdict
	}{
		{"none", nil, wantVerdict{}},
		{"max count and bytes", props(2, 16), wantVerdict{}},
		{"too many", props(3, 6), over(CodePacketTooLarge, "too_many_user_properties", 3, 2)},
		{"too large", props(1, 17), over(CodePacketTooLarge, "user_properties_too_large", 17, 16)},
		{"keys count", []UserProperty{{Key: strings.Repeat("k", 17)}}, over(CodePacketTooLarge, "user_properties_too_large", 17, 16)},
	}
	tw := newTestWAF(t, "limits: {user_properties: {max_count: 2, max_bytes: 16}}\nsessions: {takeover: allow}\n")
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := tw.Connect(&Connect{Client: testClient("dev1", "alice"), Keepalive: 60, UserProperties: tc.props})
			checkVerdict(t, "Connect", v, tc.want)
			v, _ = tw.Publish(testClient("dev1", "alice"), &Message{Topic: "a", Props: Properties{User: tc.props}})
			checkVerdict(t, "Publish", v, tc.want)
			evs := tw.events.take()
			if tc.want.action != Allow && (len(evs) != 2 || evs[0].Rule != "limits.user_properties" || evs[1].Rule != "limits.user_properties") {
				t.Errorf("events = %+v", evs)
			}
		})
	}
}

func TestKeepaliveClamp(t *testing.T) {
	tests := []struct {
		listener  string
		asked     uint16
		granted   uint16
		rewritten bool
	}{
		{"tcp", 0, 1200, true},
		{"tcp", 1, 1, false},
		{"tcp", 60, 60, false},
		{"tcp", 1200, 1200, false},
		{"tcp", 1201, 1200, true},
		{"tcp", 65535, 1200, true},
		{"ws", 0, 30, true},
		{"ws", 30, 30, false},
		{"ws", 31, 30, true},
		{"unknown", 0, 1200, true},
	}
	tw := newTestWAF(t, "listeners: {ws: {max_keepalive: 30s}}\nsessions: {takeover: allow}\n")
	for _, tc := range tests {
		c := testClient("dev1", "alice")
		c.Listener = tc.listener
		cn := &Connect{Client: c, Keepalive: tc.asked}
		if v := tw.Connect(cn); v != (Verdict{}) {
			t.Errorf("%s %d: verdict %+v, want allow", tc.listener, tc.asked, v)
		}
		if cn.Keepalive != tc.granted {
			t.Errorf("%s %d: granted %d, want %d", tc.listener, tc.asked, cn.Keepalive, tc.granted)
		}
		evs := tw.events.take()
		if !tc.rewritten {
			if len(evs) != 0 {
				t.Errorf("%s %d: events %+v", tc.listener, tc.asked, evs)
			}
			continue
		}
		if len(evs) != 1 || evs[0].Rule != "connections.keepalive" || evs[0].Action != Rewrite ||
			evs[0].Value != int64(tc.asked) || evs[0].Limit != int64(tc.granted) || evs[0].Listener != tc.listener {
			t.Errorf("%s %d: events %+v", tc.listener, tc.asked, evs)
		}
	}
}

// TestTakeoverGuard walks through the session-takeover protection with a
// fake clock: each step is a CONNECT (or an Established, or time passing)
// and its expected outcome.
func TestTakeoverGuard(t *testing.T) {
	const (
		owned   = "session_owned_by_other_identity"
		claimed = "client_id_claimed_by_other_identity"
		full    = "connect_claims_full"
	)
	type step struct {
		op       string // connect, established, wait
		id, user string
		session  *SessionInfo
		wait     time.Duration
		want     wantVerdict
	}
	ok := wantVerdict{}
	tests := []struct {
		name   string
		policy string
		steps  []step
	}{
		{"existing session of another identity", "", []step{
			{op: "connect", id: "dev1", user: "bob", session: &SessionInfo{Owner: "alice"}, want: reject(CodeClientIDNotValid, owned)},
			{op: "connect", id: "dev1", user: "bob", session: &SessionInfo{Owner: "alice", Connected: true}, want: reject(CodeClientIDNotValid, owned)},
			{op: "connect", id: "dev1", user: "", session: &SessionInfo{Owner: "alice"}, want: reject(CodeClientIDNotValid, owned)},
			{op: "connect", id: "dev1", user: "alice", session: &SessionInfo{Owner: "alice"}, want: ok},
		}},
		{"concurrent claim", "", []step{
			{op: "connect", id: "dev1", user: "alice", want: ok},
			{op: "connect", id: "dev1", user: "bob", want: reject(CodeClientIDNotValid, claimed)},
			{op: "connect", id: "dev1", user: "alice", want: ok}, // same identity again
			{op: "connect", id: "dev2", user: "bob", want: ok},   // other client IDs are free
			{op: "established", id: "dev1", user: "bob"},         // not bob's claim: no effect
			{op: "connect", id: "dev1", user: "bob", want: reject(CodeClientIDNotValid, claimed)},
			{op: "established", id: "dev1", user: "alice"},
			{op: "connect", id: "dev1", user: "bob", want: ok},
		}},
		{"claim expires after the connect timeout", "connections: {connect_timeout: 10s}\n", []step{
			{op: "connect", id: "dev1", user: "alice", want: ok},
			{op: "wait", wait: 10*time.Second - time.Nanosecond},
			{op: "connect", id: "dev1", user: "bob", want: reject(CodeClientIDNotValid, claimed)},
			{op: "wait", wait: time.Nanosecond},
			{op: "connect", id: "dev1", user: "bob", want: ok},
			{op: "connect", id: "dev1", user: "alice", want: reject(CodeClientIDNotValid, claimed)},
		}},
		{"claim renewed by the same identity", "connections: {connect_timeout: 10s}\n", []step{
			{op: "connect", id: "dev1", user: "alice", want: ok},
			{op: "wait", wait: 6 * time.Second},
			{op: "connect", id: "dev1", user: "alice", want: ok},
			{op: "wait", wait: 6 * time.Second},
			{op: "connect", id: "dev1", user: "bob", want: reject(CodeClientIDNotValid, claimed)},
		}},
		{"table full", "broker: {max_connections: 1}\nconnections: {max_connections_per_ip: 1, connect_timeout: 10s}\n", []step{
			{op: "connect", id: "x1", user: "alice", want: ok},
			{op: "connect", id: "x2", user: "alice", want: ok},
			{op: "connect", id: "x3", user: "alice", want: reject(CodeServerBusy, full)},
			{op: "connect", id: "x1", user: "alice", want: ok}, // renewing a held claim needs no room
			{op: "established", id: "x2", user: "alice"},
			{op: "connect", id: "x3", user: "alice", want: ok},
			{op: "connect", id: "x4", user: "bob", want: reject(CodeServerBusy, full)},
			{op: "wait", wait: 10 * time.Second}, // every claim expired: evicted
			{op: "connect", id: "x4", user: "bob", want: ok},
			{op: "connect", id: "x5", user: "bob", want: ok},
		}},
		{"anonymous clients share one identity", "", []step{
			{op: "connect", id: "dev1", user: "", want: ok},
			{op: "connect", id: "dev1", user: "", session: &SessionInfo{Owner: ""}, want: ok},
			{op: "connect", id: "dev1", user: "alice", want: reject(CodeClientIDNotValid, claimed)},
		}},
		{"takeover allowed", "sessions: {takeover: allow}\n", []step{
			{op: "connect", id: "dev1", user: "alice", want: ok},
			{op: "connect", id: "dev1", user: "bob", session: &SessionInfo{Owner: "alice", Connected: true}, want: ok},
		}},
		{"detection only", "mode: detection_only\n", []step{
			{op: "connect", id: "dev1", user: "alice", want: ok},
			{op: "connect", id: "dev1", user: "bob", want: ok}, // recorded, not enforced
			{op: "connect", id: "dev1", user: "bob", session: &SessionInfo{Owner: "alice"}, want: ok},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tw := newTestWAF(t, tc.policy)
			for i, s := range tc.steps {
				switch s.op {
				case "wait":
					tw.clock.Add(s.wait)
				case "established":
					tw.Established(testClient(s.id, s.user))
				case "connect":
					v := tw.Connect(&Connect{Client: testClient(s.id, s.user), Keepalive: 60, Session: s.session})
					checkVerdict(t, fmt.Sprintf("step %d: Connect(%s, %s)", i, s.id, s.user), v, s.want)
					evs := tw.events.take()
					if s.want.action != Allow && (len(evs) != 1 || evs[0].Rule != "sessions.takeover" || evs[0].Username != s.user) {
						t.Errorf("step %d: events %+v", i, evs)
					}
				}
			}
		})
	}
	t.Run("rules", func(t *testing.T) {
		for policy, want := range map[string]bool{"": true, "sessions: {takeover: allow}\n": false} {
			if got := slices.Contains(newTestWAF(t, policy).Rules(), "sessions.takeover"); got != want {
				t.Errorf("policy %q: takeover guard present = %v", policy, got)
			}
		}
	})
}

// TestRefusedConnectReleasesClaim: a CONNECT refused after the takeover
// guard claimed its client ID (by its will, or by a later rule) gives the
// claim back, so the refused client cannot lock the ID for others.
func TestRefusedConnectReleasesClaim(t *testing.T) {
	tw := newTestWAF(t, "")
	v := tw.Connect(&Connect{Client: testClient("dev1", "mallory"), Keepalive: 60, Will: &Message{Topic: "$SYS/x"}})
	if v.Code != CodeTopicNameInvalid {
		t.Fatalf("Connect with a bad will = %+v", v)
	}
	if n := tw.st.claims.len(); n != 0 {
		t.Errorf("%d claims held after a refused CONNECT", n)
	}
	if v := tw.Connect(&Connect{Client: testClient("dev1", "alice"), Keepalive: 60}); v.Blocked() {
		t.Errorf("the refused client's claim blocks others: %+v", v)
	}

	tw2 := newTestWAF(t, "", &refuseConnectRule{})
	if v := tw2.Connect(&Connect{Client: testClient("dev1", "mallory"), Keepalive: 60}); v.Reason != "refused" {
		t.Fatalf("Connect = %+v", v)
	}
	if n := tw2.st.claims.len(); n != 0 {
		t.Errorf("%d claims held after a CONNECT refused by a later rule", n)
	}
}

type refuseConnectRule struct{}

func (*refuseConnectRule) ID() string { return "test.refuse" }

func (*refuseConnectRule) CheckConnect(*Connect) Verdict {
	return Verdict{Action: Ban, Reason: "refused", BanFor: time.Minute}
}

// TestWills: a will that breaks a publish rule is refused with that rule's
// code, or stripped; strip_all strips every will; each case records exactly
// one event; DetectionOnly records and changes nothing.
func TestWills(t *testing.T) {
	badTopic := &Message{Topic: "$SYS/fake", Payload: []byte("offline")}
	tooManyProps := &Message{Topic: "dev/status", Props: Properties{User: make([]UserProperty, 17)}}
	custom := &Message{Topic: "dev/forbidden", Payload: []byte("x")}
	good := &Message{Topic: "dev/status", QoS: 1, Retain: true, Payload: []byte("offline")}
	tests := []struct {
		name, policy string
		will         *Message
		wantVerdict  wantVerdict
		wantStripped bool
		wantEvent    *eventSummary // nil: no event
		wantDetail   string
	}{
		{"good will", "", good, wantVerdict{}, false, nil, ""},
		{"refuse bad topic", "", badTopic, reject(CodeTopicNameInvalid, "topic_reserved"), false,
			&eventSummary{StageConnect, "limits.topic", Reject, true, "topic_reserved", CodeTopicNameInvalid}, "last will"},
		{"refuse user properties", "", tooManyProps, reject(CodePacketTooLarge, "too_many_user_properties"), false,
			&eventSummary{StageConnect, "limits.user_properties", Reject, true, "too_many_user_properties", CodePacketTooLarge}, "last will"},
		{"refuse with custom rule code", "", custom, reject(CodePayloadFormatInvalid, "denied_topic"), false,
			&eventSummary{StageConnect, "test.deny", Reject, true, "denied_topic", CodePayloadFormatInvalid}, "last will"},
		{"strip bad topic", "wills: {on_violation: strip}\n", badTopic, wantVerdict{}, true,
			&eventSummary{StageConnect, "wills", Rewrite, true, "topic_reserved", 0}, "last will stripped: limits.topic"},
		{"strip custom", "wills: {on_violation: strip}\n", custom, wantVerdict{}, true,
			&eventSummary{StageConnect, "wills", Rewrite, true, "denied_topic", 0}, "last will stripped: test.deny"},
		{"strip keeps good will", "wills: {on_violation: strip}\n", good, wantVerdict{}, false, nil, ""},
		{"strip_all good will", "wills: {strip_all: true}\n", good, wantVerdict{}, true,
			&eventSummary{StageConnect, "wills", Rewrite, true, "will_stripped", 0}, "wills.strip_all"},
		{"strip_all bad will", "wills: {strip_all: true}\n", badTopic, wantVerdict{}, true,
			&eventSummary{StageConnect, "wills", Rewrite, true, "will_stripped", 0}, "wills.strip_all"},
		{"detection only refuse", "mode: detection_only\n", badTopic, wantVerdict{}, false,
			&eventSummary{StageConnect, "limits.topic", Reject, false, "topic_reserved", CodeTopicNameInvalid}, "last will"},
		{"detection only strip", "mode: detection_only\nwills: {on_violation: strip}\n", badTopic, wantVerdict{}, false,
			&eventSummary{StageConnect, "wills", Rewrite, false, "topic_reserved", 0}, "last will stripped: limits.topic"},
	}
	for _, tc := range tests {
		for _, method := range []string{"Connect", "CheckWill"} {
			t.Run(tc.name+"/"+method, func(t *testing.T) {
				tw := newTestWAF(t, tc.policy, &denyTopicRule{id: "test.deny", topic: "dev/forbidden", code: CodePayloadFormatInvalid})
				before := *tc.will
				c := &Connect{Client: testClient("dev1", "alice"), Keepalive: 60, Will: tc.will}
				var v Verdict
				if method == "Connect" {
					v = tw.Connect(c)
				} else {
					v = tw.CheckWill(c)
				}
				checkVerdict(t, method, v, tc.wantVerdict)
				if tc.wantStripped && c.Will != nil {
					t.Errorf("will kept: %+v", c.Will)
				}
				if !tc.wantStripped && c.Will != tc.will {
					t.Errorf("will = %+v, want the client's will", c.Will)
				}
				if tc.will.Topic != before.Topic || string(tc.will.Payload) != string(before.Payload) {
					t.Errorf("the client's will was modified: %+v", tc.will)
				}
				evs := tw.events.take()
				if tc.wantEvent == nil {
					if len(evs) != 0 {
						t.Errorf("events = %+v, want none", evs)
					}
					return
				}
				if len(evs) != 1 {
					t.Fatalf("events = %+v, want exactly one", summarize(evs))
				}
				if got := summarize(evs)[0]; got != *tc.wantEvent {
					t.Errorf("event = %+v\nwant %+v", got, *tc.wantEvent)
				}
				if evs[0].Detail != tc.wantDetail || evs[0].Topic != tc.will.Topic || evs[0].Size != len(tc.will.Payload) || evs[0].ClientID != "dev1" {
					t.Errorf("event = %+v, want detail %q, topic and size of the will", evs[0], tc.wantDetail)
				}
			})
		}
	}
	t.Run("no will", func(t *testing.T) {
		tw := newTestWAF(t, "wills: {strip_all: true}\n")
		c := &Connect{Client: testClient("dev1", "alice"), Keepalive: 60}
		if v := tw.CheckWill(c); v != (Verdict{}) || c.Will != nil || len(tw.events.take()) != 0 {
			t.Errorf("CheckWill without a will = %+v", v)
		}
	})
	t.Run("CheckWill after reload", func(t *testing.T) {
		tw := newTestWAF(t, "")
		c := &Connect{Client: testClient("dev1", "alice"), Keepalive: 60, Will: &Message{Topic: "a/b/c"}}
		if v := tw.Connect(c); v.Blocked() {
			t.Fatal(v)
		}
		if err := tw.Reload(mustParse(t, "limits: {topic: {max_levels: 2}}\n")); err != nil {
			t.Fatal(err)
		}
		if v := tw.CheckWill(c); v.Reason != "topic_too_many_levels" {
			t.Errorf("CheckWill after a stricter reload = %+v", v)
		}
	})
}

// TestWillRewrite: a rule that rewrites the will's payload gives the
// CONNECT a new will; the client's will is not modified; DetectionOnly
// keeps the client's will.
func TestWillRewrite(t *testing.T) {
	for _, mode := range []string{"enforce", "detection_only"} {
		t.Run(mode, func(t *testing.T) {
			tw := newTestWAF(t, "mode: "+mode+"\n", upperRule{})
			will := &Message{Topic: "dev/status", QoS: 1, Payload: []byte("offline")}
			c := &Connect{Client: testClient("dev1", "alice"), Keepalive: 60, Will: will}
			if v := tw.Connect(c); v != (Verdict{}) {
				t.Fatalf("Connect = %+v", v)
			}
			if string(will.Payload) != "offline" {
				t.Errorf("client's will payload modified: %q", will.Payload)
			}
			if mode == "detection_only" {
				if c.Will != will {
					t.Errorf("DetectionOnly replaced the will: %+v", c.Will)
				}
				return
			}
			if c.Will == will || c.Will == nil || string(c.Will.Payload) != "OFFLINE" || c.Will.Topic != "dev/status" || c.Will.QoS != 1 {
				t.Errorf("will = %+v, want a new will with payload OFFLINE", c.Will)
			}
			// The new will's payload is its own, not a pooled buffer.
			got := string(c.Will.Payload)
			for range 3 {
				tw.Publish(testClient("dev2", "bob"), &Message{Topic: "x", Payload: []byte("other payload")})
			}
			if string(c.Will.Payload) != got {
				t.Errorf("will payload changed by later publishes: %q", c.Will.Payload)
			}
		})
	}
}

// TestTakeoverRefusalsDoNotFlapTheOwner: another identity's CONNECTs with
// a client ID whose session it may not take over are refused before they
// count as flapping, so they cannot get the owner's client ID banned.
func TestTakeoverRefusalsDoNotFlapTheOwner(t *testing.T) {
	tests := []struct {
		name    string
		session *SessionInfo // what the attacker's CONNECTs find
	}{
		{"session held here", &SessionInfo{Owner: "alice", Connected: true}},
		{"CONNECT under way", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tw := newRatesWAF(t, "", map[string]string{"flapping": `{connects: 3/min}`})
			if v := tw.Connect(&Connect{Client: testClient("dev1", "alice"), Keepalive: 60}); v.Blocked() {
				t.Fatalf("alice's first CONNECT: %+v", v)
			}
			for i := range 10 {
				v := tw.Connect(&Connect{Client: testClient("dev1", "bob"), Keepalive: 60, Session: tc.session})
				if v.Rule != "sessions.takeover" || v.Code != CodeClientIDNotValid {
					t.Fatalf("bob's CONNECT %d as dev1: %+v, want a sessions.takeover refusal (0x85)", i+1, v)
				}
			}
			if v := tw.Connect(&Connect{Client: testClient("dev1", "alice"), Keepalive: 60, Session: &SessionInfo{Owner: "alice"}}); v.Blocked() {
				t.Fatalf("alice reconnecting after bob's attempts: %+v, want allowed", v)
			}
		})
	}
}
