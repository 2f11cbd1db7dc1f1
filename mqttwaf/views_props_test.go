package mqttwaf

import (
	"fmt"
	"hash/maphash"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mqttwaf/mqttwaf/redact"
)

// viewPolicy is a policy with a device role that publishes and retains
// under t/, an analytics role with the redacted view, and, if raw, a
// backend role with view: raw. Messages on t/json/ are JSON and redacted
// (rules, a phone detector, a pseudonym); those on t/plain/ are not.
// entry adds keys to the t/json/ payload entry, extra top-level sections.
func viewPolicy(tb testing.TB, raw bool, entry, extra string) *Policy {
	tb.Helper()
	dir := tb.TempDir()
	creds := "dev1:device:-\nbackend:backend:-\nanalytics:analytics:-\n"
	if err := os.WriteFile(filepath.Join(dir, "devices.creds"), []byte(creds), 0o600); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "pseudonym.key"), []byte("view-test-pseudonym-key-0123456789\n"), 0o600); err != nil {
		tb.Fatal(err)
	}
	view := ""
	if raw {
		view = ", view: raw"
	}
	doc := fmt.Sprintf(`identity:
  credentials_file: devices.creds
  anonymous: {allow: never}
  certificate: {identity: cn}
roles:
  device: {publish: ["t/#"], retain: ["t/#"]}
  backend: {subscribe: ["t/#"]%s}
  analytics: {subscribe: ["t/#"]}
rates: {off: true}
provenance: {user_property: x-identity}
redaction: {pseudonym_key_file: pseudonym.key}
payloads:
  - topics: ["t/json/#"]
    format: json
    redact:
      rules:
        - {path: name, op: remove}
        - {path: id, op: pseudonym}
      detectors:
        - {kind: phone, op: mask, keep_last: 4}
%s  - topics: ["t/plain/#"]
%s`, view, entry, extra)
	path := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		tb.Fatal(err)
	}
	p, err := ReadPolicyFile(path)
	if err != nil {
		tb.Fatalf("%v\n%s", err, doc)
	}
	return p
}

func newViewWAF(tb testing.TB, p *Policy) *testWAF {
	tb.Helper()
	tw := &testWAF{events: &eventLog{}, clock: newFakeClock()}
	var err error
	if tw.WAF, err = New(p, Options{Sink: tw.events, Now: tw.clock.Now}); err != nil {
		tb.Fatal(err)
	}
	return tw
}

// personal is the seed message of the issue: personal data in the payload
// and in every property a publisher fills freely.
func personal(topic string) *Message {
	return &Message{Topic: topic, QoS: 1, Retain: true,
		Payload: []byte(`{"name":"Hong Gildong","id":"01012344321","note":"call 010-8378-1234","t":21.5}`),
		Props: Properties{
			PayloadFormat: 1, PayloadFormatSet: true, ContentType: "text/x-hong-gildong",
			ResponseTopic: "t/reply/Hong-Gildong-010-8378-1234", CorrelationData: []byte("name=Hong Gildong"),
			MessageExpiry: 60,
			User:          []UserProperty{{"owner-phone", "010-8378-1234"}, {"trace", "4bf92f35"}},
		}}
}

// stored returns what the broker keeps of m published by dev1 under w's
// policy: the WAF's rewrite, or m itself.
func stored(tb testing.TB, w *testWAF, m *Message) *Message {
	tb.Helper()
	v, out := w.Publish(testClient("dev1", "dev1"), m)
	if v.Blocked() {
		tb.Fatalf("publish refused: %+v", v)
	}
	if out == nil {
		return m
	}
	return out
}

var (
	backendSub   = testClient("backend", "backend")
	analyticsSub = testClient("analytics", "analytics")
)

const redactedSeed = `{"id":"olgpfmgslckhlnfo","note":"call *********1234","t":21.5}`

func userKeys(u []UserProperty) []string {
	var keys []string
	for _, p := range u {
		keys = append(keys, p.Key+"="+p.Value)
	}
	return keys
}

// TestViewDecisions: what each subscriber receives of one message, by
// policy (raw role or not, reloads between publish and delivery, what the
// entry keeps) and subscriber. Redacted views carry the redacted payload
// and only the kept properties, whatever the stored form; the raw view the
// stored message; nobody the WAF's marker.
func TestViewDecisions(t *testing.T) {
	type want struct {
		payload string   // "" = as published (normalised)
		user    []string // key=value
		ct, rt  string
		cd      string
	}
	asSent := want{user: []string{"owner-phone=010-8378-1234", "trace=4bf92f35", "x-identity=dev1"},
		ct: "text/x-hong-gildong", rt: "t/reply/Hong-Gildong-010-8378-1234", cd: "name=Hong Gildong"}
	redacted := want{payload: redactedSeed, user: []string{"x-identity=dev1"}}
	for _, tc := range []struct {
		name         string
		raw, rawNext bool   // a backend raw role at publish, and at delivery
		entry, next  string // entry keys at publish, and at delivery
		topic        string
		sub          *Client
		want         want
		events       int // redact events at delivery
	}{
		{name: "raw role: analytics redacted", raw: true, rawNext: true, sub: analyticsSub, want: redacted},
		{name: "raw role: backend as sent", raw: true, rawNext: true, sub: backendSub, want: asSent},
		{name: "no raw role: analytics redacted", sub: analyticsSub, want: redacted},
		{name: "no raw role: backend redacted too", sub: backendSub, want: redacted},
		{name: "reload removes the raw role: stored raw, redacted at delivery", raw: true, sub: analyticsSub, want: redacted, events: 1},
		{name: "reload removes the raw role: the former raw role too", raw: true, sub: backendSub, want: redacted, events: 1},
		{name: "reload adds a raw role: stored redacted stays so", rawNext: true, sub: analyticsSub, want: redacted},
		{name: "reload adds a raw role: raw bytes are gone", rawNext: true, sub: backendSub,
			want: want{payload: redactedSeed, user: []string{"x-identity=dev1"},
				ct: "text/x-hong-gildong", rt: "t/reply/Hong-Gildong-010-8378-1234", cd: "name=Hong Gildong"}},
		{name: "keep list: trace and the response topic", raw: true, rawNext: true, sub: analyticsSub,
			entry: "      keep_properties: {user: [trace], response_topic: true}\n",
			want:  want{payload: redactedSeed, user: []string{"trace=4bf92f35", "x-identity=dev1"}, rt: "t/reply/Hong-Gildong-010-8378-1234"}},
		{name: "keep list without a raw role: kept ones are stored", sub: analyticsSub,
			entry: "      keep_properties: {user: [trace], correlation_data: true, content_type: true}\n",
			want:  want{payload: redactedSeed, user: []string{"trace=4bf92f35", "x-identity=dev1"}, ct: "text/x-hong-gildong", cd: "name=Hong Gildong"}},
		{name: "content type the allow-list admits is kept", raw: true, rawNext: true, sub: analyticsSub,
			entry: "    content_types: [text/x-hong-gildong]\n",
			want:  want{payload: redactedSeed, user: []string{"x-identity=dev1"}, ct: "text/x-hong-gildong"}},
		{name: "topic without redaction: as sent", raw: true, rawNext: true, topic: "t/plain/1", sub: analyticsSub,
			want: want{payload: string(personal("").Payload), user: asSent.user, ct: asSent.ct, rt: asSent.rt, cd: asSent.cd}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			topic := tc.topic
			if topic == "" {
				topic = "t/json/1"
			}
			next := tc.next
			if next == "" {
				next = tc.entry
			}
			w := newViewWAF(t, viewPolicy(t, tc.raw, tc.entry, ""))
			m := personal(topic)
			held := stored(t, w, m)
			if tc.raw != tc.rawNext || next != tc.entry {
				if err := w.Reload(viewPolicy(t, tc.rawNext, next, "")); err != nil {
					t.Fatal(err)
				}
			}
			w.events.take()
			for i := range 2 { // the second delivery finds the view made by the first
				got, _ := w.ViewMessage(tc.sub, held)
				wantPayload := tc.want.payload
				if wantPayload == "" {
					wantPayload = string(m.Payload)
				}
				if string(got.Payload) != wantPayload {
					t.Errorf("delivery %d: payload %s, want %s", i, got.Payload, wantPayload)
				}
				if !slices.Equal(userKeys(got.Props.User), tc.want.user) {
					t.Errorf("delivery %d: user properties %q, want %q", i, userKeys(got.Props.User), tc.want.user)
				}
				if got.Props.ContentType != tc.want.ct || got.Props.ResponseTopic != tc.want.rt || string(got.Props.CorrelationData) != tc.want.cd {
					t.Errorf("delivery %d: content type %q, response topic %q, correlation data %q; want %q, %q, %q", i,
						got.Props.ContentType, got.Props.ResponseTopic, got.Props.CorrelationData, tc.want.ct, tc.want.rt, tc.want.cd)
				}
				if got.Props.MessageExpiry != 60 || !got.Props.PayloadFormatSet {
					t.Errorf("delivery %d: lost the expiry or the format indicator: %+v", i, got.Props)
				}
			}
			n := 0
			for _, e := range w.events.take() {
				if e.Rule == "redact" {
					n++
					if e.Stage != StageDeliver || strings.Contains(e.Detail, "010-8378") || strings.Contains(e.Detail, "Hong") {
						t.Errorf("event %+v", e)
					}
				}
			}
			if n != tc.events {
				t.Errorf("%d redact events at delivery, want %d", n, tc.events)
			}
		})
	}
}

// TestViewReloadChangedRules: a message stored as its redacted view (no
// raw role) under one rule set is redacted again under the next: the new
// rules apply, and the delivery says so in a redact event.
func TestViewReloadChangedRules(t *testing.T) {
	w := newViewWAF(t, viewPolicy(t, false, "", ""))
	m := personal("t/json/1")
	m.Payload = []byte(`{"name":"Hong Gildong","mail":"hong@example.com"}`)
	held := stored(t, w, m)
	if string(held.Payload) != `{"mail":"hong@example.com"}` {
		t.Fatalf("stored %s", held.Payload)
	}
	p := viewPolicy(t, false, "", "")
	p.Payloads[0].Redact.Detectors = append(p.Payloads[0].Redact.Detectors, redact.Detector{Kind: redact.KindEmail})
	if err := w.Reload(p); err != nil {
		t.Fatal(err)
	}
	w.events.take()
	got, changed := w.ViewMessage(analyticsSub, held)
	if !changed || strings.Contains(string(got.Payload), "hong@") {
		t.Fatalf("after the reload: %s", got.Payload)
	}
	evs := w.events.take()
	if len(evs) != 1 || evs[0].Rule != "redact" || evs[0].Reason != "redacted" ||
		!strings.Contains(evs[0].Detail, "properties_removed=3 (content_type, response_topic, correlation_data)") {
		t.Fatalf("events %+v", evs)
	}
}

// TestViewMarkerCannotBeForged: a publisher that sends the WAF's marker
// property gets nothing from it: its message is redacted for the redacted
// view, and nobody, raw view included, receives the marker.
func TestViewMarkerCannotBeForged(t *testing.T) {
	for _, raw := range []bool{true, false} {
		w := newViewWAF(t, viewPolicy(t, raw, "", ""))
		for _, forged := range [][]UserProperty{
			{{viewMarker, "x"}},
			{{viewMarker, ""}, {"a", "b"}},
			{{"a", "b"}, {viewMarker, "x"}},
			{{viewMarker, "x"}, {viewMarker, "y"}},
		} {
			m := personal("t/json/1")
			m.Props.User = forged
			held := stored(t, w, m)
			for _, sub := range []*Client{analyticsSub, backendSub} {
				got, _ := w.ViewMessage(sub, held)
				if raw && sub == backendSub {
					if string(got.Payload) != string(m.Payload) {
						t.Errorf("raw %v, %q: raw view %s", raw, forged, got.Payload)
					}
				} else if string(got.Payload) != redactedSeed {
					t.Errorf("raw %v, %q: %s view %s", raw, forged, sub.Username, got.Payload)
				}
				for _, u := range got.Props.User {
					if u.Key == viewMarker {
						t.Errorf("raw %v, %q: %s received the marker", raw, forged, sub.Username)
					}
				}
			}
		}
		// Not even with the token of the rules in force: markers are
		// dropped from what clients publish.
		m := personal("t/json/3")
		m.Props.User = []UserProperty{{viewMarker, w.engine.Load().views.payloads.entries[0].token}}
		held := stored(t, w, m)
		if got, _ := w.ViewMessage(analyticsSub, held); string(got.Payload) != redactedSeed {
			t.Errorf("raw %v, a marker with the right token: analytics view %s", raw, got.Payload)
		}
		// A stored message whose marker is not first is not trusted either.
		held = stored(t, w, personal("t/json/2"))
		if !raw {
			moved := *held
			moved.Payload = personal("").Payload // as if the stored bytes were raw
			moved.Props.User = append(slices.Clone(held.Props.User[1:]), held.Props.User[0])
			if got, _ := w.ViewMessage(analyticsSub, &moved); string(got.Payload) != redactedSeed {
				t.Errorf("marker not first: %s", got.Payload)
			}
		}
	}
}

// TestViewFailsClosed: a stored payload the view cannot be made of (JSON
// stored before a reload made the topic JSON-redacted... here: not JSON at
// all) reaches a redacted view empty and without properties, with a
// redaction_failed event; an empty retained message (a deletion) stays
// empty and still loses its properties.
func TestViewFailsClosed(t *testing.T) {
	w := newViewWAF(t, viewPolicy(t, true, "", ""))
	m := personal("t/json/1")
	m.Payload = []byte("Hong Gildong 010-8378-1234")
	got, changed := w.ViewMessage(analyticsSub, m)
	if !changed || got.Payload != nil || len(got.Props.User) != 0 || got.Props.ResponseTopic != "" || got.Props.CorrelationData != nil {
		t.Fatalf("failed view: %q %+v", got.Payload, got.Props)
	}
	evs := w.events.take()
	if len(evs) != 1 || evs[0].Rule != "redact" || evs[0].Action != Drop || evs[0].Reason != "redaction_failed" || strings.Contains(evs[0].Detail, "Hong") {
		t.Fatalf("events %+v", evs)
	}
	m.Payload = nil
	got, changed = w.ViewMessage(analyticsSub, m)
	if !changed || len(got.Payload) != 0 || len(got.Props.User) != 0 || got.Props.ResponseTopic != "" {
		t.Fatalf("deletion: %q %+v", got.Payload, got.Props)
	}
	// Nothing is written into the caller's message.
	if m.Props.ResponseTopic == "" || len(m.Props.User) != 2 || m.Props.User[0].Key != "owner-phone" {
		t.Fatalf("the stored message changed: %+v", m.Props)
	}
}

// TestViewDetectionOnly: in detection_only nothing is redacted at publish or
// delivery, and the marker of a message stored under enforce is removed.
func TestViewDetectionOnly(t *testing.T) {
	w := newViewWAF(t, viewPolicy(t, false, "", ""))
	held := stored(t, w, personal("t/json/1"))
	if err := w.Reload(viewPolicy(t, false, "", "mode: detection_only\n")); err != nil {
		t.Fatal(err)
	}
	got, _ := w.ViewMessage(analyticsSub, held)
	if string(got.Payload) != redactedSeed || slices.ContainsFunc(got.Props.User, func(u UserProperty) bool { return u.Key == viewMarker }) {
		t.Fatalf("stored view: %s %q", got.Payload, got.Props.User)
	}
	raw := personal("t/json/2")
	if got, _ := w.ViewMessage(analyticsSub, stored(t, w, raw)); string(got.Payload) != string(raw.Payload) || len(got.Props.User) != 2 {
		t.Fatalf("detection_only: %s %q", got.Payload, got.Props.User)
	}
}

// TestViewWillNotRedactedTwice: a Last Will redacted at CONNECT (no raw
// role) and checked again when it is sent keeps its pseudonyms.
func TestViewWillNotRedactedTwice(t *testing.T) {
	w := newViewWAF(t, viewPolicy(t, false, "", ""))
	c := &Connect{Client: testClient("dev1", "dev1"), Will: personal("t/json/will")}
	if v := w.CheckWill(c); v.Blocked() {
		t.Fatal(v)
	}
	once := c.Will
	if v := w.CheckWill(c); v.Blocked() {
		t.Fatal(v)
	}
	if string(c.Will.Payload) != redactedSeed || string(once.Payload) != redactedSeed {
		t.Fatalf("will: %s, then %s", once.Payload, c.Will.Payload)
	}
}

// TestKeepUser: the user properties a view keeps, as a suffix of the input
// when they are one (no allocation), never written into the input.
func TestKeepUser(t *testing.T) {
	p := func(keys ...string) []UserProperty {
		var out []UserProperty
		for _, k := range keys {
			out = append(out, UserProperty{Key: k, Value: "v" + k})
		}
		return out
	}
	keep := func(k string) bool { return !strings.HasPrefix(k, "x") }
	for _, tc := range []struct {
		in     []UserProperty
		want   []string
		suffix bool // the result shares the input's tail
	}{
		{nil, nil, false},
		{p("a", "b"), []string{"a", "b"}, true},
		{p("x1", "a", "b"), []string{"a", "b"}, true},
		{p("x1", "x2", "a"), []string{"a"}, true},
		{p("a", "x1", "b"), []string{"a", "b"}, false},
		{p("x1", "a", "x2"), []string{"a"}, false},
		{p("x1", "x2"), nil, false},
	} {
		before := userKeys(tc.in)
		got := keepUser(tc.in, keep)
		var keys []string
		for _, u := range got {
			keys = append(keys, u.Key)
		}
		if !slices.Equal(keys, tc.want) {
			t.Errorf("%q: got %q, want %q", before, keys, tc.want)
		}
		if shared := len(got) > 0 && &got[len(got)-1] == &tc.in[len(tc.in)-1]; shared != tc.suffix {
			t.Errorf("%q: shares the input %v, want %v", before, shared, tc.suffix)
		}
		if !slices.Equal(userKeys(tc.in), before) {
			t.Errorf("%q: input changed to %q", before, userKeys(tc.in))
		}
	}
}

// TestKeepPropertiesPolicyErrors: keep_properties is checked in policy
// terms.
func TestKeepPropertiesPolicyErrors(t *testing.T) {
	for _, tc := range []struct{ doc, want string }{
		{"payloads: [{topics: [t/#], format: json, redact: {keep_properties: {user: [trace]}}}]\n",
			"payloads[0].redact.keep_properties: applies to redacted views, and this entry redacts nothing"},
		{"payloads: [{topics: [t/#], format: json, redact: {detectors: [{kind: email}], keep_properties: {user: [\"\"]}}}]\n",
			"payloads[0].redact.keep_properties.user[0]: must be a user property name"},
		{"payloads: [{topics: [t/#], format: json, redact: {detectors: [{kind: email}], keep_properties: {user: [\"a\\tb\"]}}}]\n",
			"payloads[0].redact.keep_properties.user[0]: must be a user property name"},
		{"payloads: [{topics: [t/#], format: json, redact: {detectors: [{kind: email}], keep_properties: {user: [ok, \"mqttwaf:view\"]}}}]\n",
			`payloads[0].redact.keep_properties.user[1]: "mqttwaf:view" is reserved`},
		{"payloads: [{topics: [t/#], format: json, redact: {detectors: [{kind: email}], keep_properties: {headers: true}}}]\n",
			`unknown key "headers"`},
	} {
		_, err := ParsePolicy([]byte(testIdentity+tc.doc), "test.yaml")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want an error containing %q", tc.doc, err, tc.want)
		}
	}
	p, err := ParsePolicy([]byte(testIdentity+"provenance: {user_property: \"mqttwaf:view\"}\n"), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(p, Options{}); err == nil || !strings.Contains(err.Error(), `provenance.user_property: "mqttwaf:view" is reserved`) {
		t.Fatalf("provenance named like the marker: %v", err)
	}
}

// TestDefaultPolicyShowsKeepProperties: the commented payload example of
// default-policy.yaml (which TestDefaultPolicyPayloadExample parses) shows
// every key of keep_properties.
func TestDefaultPolicyShowsKeepProperties(t *testing.T) {
	doc := string(DefaultPolicyYAML)
	for _, key := range []string{"#      keep_properties:", "#        user: []", "#        content_type: false",
		"#        response_topic: false", "#        correlation_data: false"} {
		if !strings.Contains(doc, key+" ") && !strings.Contains(doc, key+"\n") {
			t.Errorf("default-policy.yaml does not show %q", key)
		}
	}
}

// BenchmarkViewMessage: one delivery's view of the seed message with the
// personal properties, to a redacted and to a raw subscriber, with the
// broker storing it raw (some role is raw: the view comes from the cache)
// and stored as its view (no raw role: the marker says so). The redacted
// views remove leading user properties only, so none allocates.
//
//	go test -run '^$' -bench ViewMessage ./mqttwaf/
func BenchmarkViewMessage(b *testing.B) {
	seed, err := os.ReadFile("testdata/komdi-alarm.json")
	if err != nil {
		b.Fatal(err)
	}
	for _, raw := range []bool{true, false} {
		w := newViewWAF(b, viewPolicy(b, raw, "", ""))
		m := personal("t/json/1")
		m.Payload = seed
		m.Props.User = m.Props.User[:1] // owner-phone, then x-identity
		held := stored(b, w, m)
		for _, sub := range []*Client{analyticsSub, backendSub} {
			name := fmt.Sprintf("stored_raw=%v/%s", raw, sub.Username)
			b.Run(name, func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(held.Payload)))
				for b.Loop() {
					w.ViewMessage(sub, held)
				}
			})
		}
	}
}

// TestRedactPublishEventDetail pins the detail of the redaction's event at
// publish (written only when the event is sent): the rules and detectors
// that fired, the properties the view removes, and, when the message is
// stored raw, for whom the view is made.
func TestRedactPublishEventDetail(t *testing.T) {
	const fired = "remove:name=1, pseudonym:id=1, detect:phone=1; " +
		"properties_removed=5 (user_property owner-phone, user_property trace, content_type, response_topic, correlation_data)"
	for _, raw := range []bool{false, true} {
		w := newViewWAF(t, viewPolicy(t, raw, "", ""))
		stored(t, w, personal("t/json/1"))
		want := fired
		if raw {
			want = "for subscribers without a raw view: " + fired
		}
		var got []string
		for _, e := range w.events.take() {
			if e.Rule == "payload.redact" {
				got = append(got, e.Detail)
			}
		}
		if len(got) != 1 || got[0] != want {
			t.Errorf("raw role %v: details %q, want [%q]", raw, got, want)
		}
	}
}

// BenchmarkViewKey: the view cache's key of the seed message, computed at
// publish and at every delivery, against the streaming maphash.Hash it
// replaced (topic, a zero byte and the payload, under two seeds).
func BenchmarkViewKey(b *testing.B) {
	seed, err := os.ReadFile("testdata/komdi-alarm.json")
	if err != nil {
		b.Fatal(err)
	}
	v := compileViews(viewPolicy(b, true, "", ""), nil, &payloads{entries: []*payloadEntry{{redactor: &redact.Redactor{}}}})
	const topic = "fleet/dev1/telemetry"
	b.Run("oneshot", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			v.key(topic, seed)
		}
	})
	b.Run("baseline-streaming", func(b *testing.B) {
		s1, s2 := maphash.MakeSeed(), maphash.MakeSeed()
		b.ReportAllocs()
		for b.Loop() {
			var h maphash.Hash
			h.SetSeed(s1)
			h.WriteString(topic)
			h.WriteByte(0)
			h.Write(seed)
			k := viewKey{h1: h.Sum64(), n: len(seed)}
			h.SetSeed(s2)
			h.WriteString(topic)
			h.WriteByte(0)
			h.Write(seed)
			k.h2 = h.Sum64()
		}
	})
}
