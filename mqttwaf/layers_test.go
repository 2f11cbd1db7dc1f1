package mqttwaf

import (
	"bytes"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// TestPublishLayersMatchesLayerByLayer holds PublishLayers (every layer in
// one call, what hooks.Install's stack runs) to PublishLayer called for
// each protection and then the custom rules, each given the message the
// previous returned (what a hand-built stack runs): the same verdict, the
// same message forwarded, the same events and counters, in enforce and in
// detection-only, with and without a raw role, for messages that pass,
// are rewritten, or are refused at different layers.
func TestPublishLayersMatchesLayerByLayer(t *testing.T) {
	t.Setenv("MQTTWAF_LAYERS_PSEUDONYM_KEY", "layers-test-pseudonym-key-0123456789")
	seed := realisticMessage(t)
	msgs := map[string]*Message{
		"seed":         seed,
		"minified":     {Topic: "fleet/d1/telemetry", QoS: 1, Payload: []byte(`{"DATA":{"LAT":37.4,"LON":126.9,"USER_NAME":"x","USER_ID":"01012344321"}}`)},
		"bad json":     {Topic: "fleet/d1/telemetry", QoS: 1, Payload: []byte(`{"DATA":{"LAT":37.4,}`)},
		"bad field":    {Topic: "fleet/d1/telemetry", QoS: 1, Payload: []byte(`{ "DATA": {"LAT": 200, "LON": 1} }`)},
		"duplicate":    {Topic: "fleet/d1/telemetry", QoS: 1, Payload: []byte(`{"DATA":{"LAT":1,"LON":2},"data":{}}`)},
		"forged mark":  {Topic: "fleet/d1/telemetry", QoS: 1, Payload: []byte(`{"DATA":{"LAT":1,"LON":2}}`), Props: Properties{User: []UserProperty{{viewMarker, "forged"}, {"trace", "1"}}}},
		"other topic":  {Topic: "plain/d1", QoS: 0, Payload: []byte("not json at all")},
		"retained del": {Topic: "fleet/d1/telemetry", QoS: 1, Retain: true},
		"custom deny":  {Topic: "fleet/d1/denied", QoS: 1, Payload: []byte(`{}`)},
		"long topic":   {Topic: "fleet/" + string(bytes.Repeat([]byte("x"), 300)), QoS: 1, Payload: []byte(`{}`)},
	}
	names := []string{"seed", "minified", "bad json", "bad field", "duplicate", "forged mark", "other topic", "retained del", "custom deny", "long topic"}
	for _, mode := range []string{"enforce", "detection_only"} {
		for _, raw := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/raw=%v", mode, raw), func(t *testing.T) {
				doc := "mode: " + mode + "\n" + layersPolicy
				if raw {
					doc = strings.Replace(doc, "roles:\n", "roles:\n  backend: {subscribe: ['#'], view: raw}\n", 1)
				}
				all, each := layersWAF(t, doc), layersWAF(t, doc)
				c1, c2 := testClient("d1", "d1"), testClient("d1", "d1")
				blocked, rewritten := 0, 0 // the messages must exercise both
				for _, name := range names {
					m := msgs[name]
					v1, out1 := all.PublishLayers(c1, m)
					v2, out2 := publishEachLayer(each.WAF, c2, m)
					if !reflect.DeepEqual(v1, v2) {
						t.Errorf("%s: verdict %+v, layer by layer %+v", name, v1, v2)
					}
					if (out1 == nil) != (out2 == nil) || out1 != nil && !reflect.DeepEqual(normalized(*out1), normalized(*out2)) {
						t.Errorf("%s: forwards %+v, layer by layer %+v", name, out1, out2)
					}
					e1, e2 := all.events.take(), each.events.take()
					if !reflect.DeepEqual(e1, e2) {
						t.Errorf("%s: events\n%+v\nlayer by layer\n%+v", name, e1, e2)
					}
					for _, e := range e1 {
						switch {
						case e.Action.Blocks():
							blocked++
						case e.Action == Rewrite:
							rewritten++
						}
					}
				}
				if blocked < 4 || rewritten < 4 {
					t.Errorf("%d refusals and %d rewrites reported: the messages no longer exercise the layers", blocked, rewritten)
				}
				if a, b := all.Counters(), each.Counters(); !reflect.DeepEqual(a, b) {
					t.Errorf("counters %v, layer by layer %v", a, b)
				}
			})
		}
	}
}

// layersPolicy puts every publish protection to work on fleet/ topics.
const layersPolicy = `provenance: {user_property: x-identity}
redaction: {pseudonym_key_env: MQTTWAF_LAYERS_PSEUDONYM_KEY}
payloads:
  - topics: ["fleet/+/telemetry"]
    format: json
    fields:
      - {path: DATA.LAT, type: number, min: -90, max: 90}
    redact:
      rules:
        - {path: DATA.USER_NAME, op: remove}
        - {path: DATA.USER_ID, op: pseudonym}
        - {paths: [DATA.LAT, DATA.LON], op: coarsen, decimals: 1}
`

// layersWAF is a WAF running testIdentity and doc, with a custom rule that
// rewrites and one that refuses.
func layersWAF(tb testing.TB, doc string) *testWAF {
	tb.Helper()
	p, err := ParsePolicy([]byte(testIdentity+doc), "test.yaml")
	if err != nil {
		tb.Fatal(err)
	}
	tw := &testWAF{events: &eventLog{}, clock: newFakeClock()}
	rules := []Rule{upperRule{}, &denyTopicRule{id: "test.deny", topic: "fleet/d1/denied", code: CodeNotAuthorized}}
	// One view key for every WAF here, so the two being compared mark
	// stored views alike.
	key := bytes.Repeat([]byte("k"), minViewKey)
	if tw.WAF, err = New(p, Options{Sink: tw.events, Now: tw.clock.Now, Rules: rules, ViewKey: key}); err != nil {
		tb.Fatal(err)
	}
	return tw
}

// publishEachLayer runs w's publish rules as a hand-built stack of hooks
// does: one PublishLayer per protection, then the custom rules, each given
// the message the one before forwarded.
func publishEachLayer(w *WAF, c *Client, m *Message) (Verdict, *Message) {
	var last *Message
	for _, pr := range append(w.Layers(), "") {
		v, out := w.PublishLayer(pr, c, m)
		if v.Blocked() {
			return v, nil
		}
		if out != nil {
			m, last = out, out
		}
	}
	return Verdict{}, last
}
