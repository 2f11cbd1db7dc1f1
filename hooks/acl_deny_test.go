package hooks

import (
	"bytes"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	mqtt3 "github.com/eclipse/paho.mqtt.golang"

	"github.com/mqttwaf/mqttwaf/mqttwaf"
)

// TestDeniedTopicNeitherPublishedNorReceived runs roles.<name>.deny through
// a real broker: the role dev may publish, retain and read all of fleet/#
// except fleet/secret/# and its own fleet/{username}/keys. The role ops has
// the same grants without the deny list, so it both feeds the denied topics
// and shows that what dev is refused would otherwise flow.
func TestDeniedTopicNeitherPublishedNorReceived(t *testing.T) {
	creds := credsFile(t, "alice:dev:alice-pw", "bob:dev:bob-pw", "ops:ops:ops-pw")
	b := startBroker(t, "identity: {credentials_file: "+creds+", anonymous: {allow: never}}\n"+`roles:
  dev:
    publish: ["fleet/#"]
    subscribe: ["fleet/#"]
    retain: ["fleet/#"]
    deny: ["fleet/secret/#", "fleet/{username}/keys"]
  ops:
    publish: ["fleet/#"]
    subscribe: ["fleet/#"]
    retain: ["fleet/#"]
`, brokerOpts{})
	ops := mustV5Pass(t, b.addr, "ops", "ops", "ops-pw")
	ops.subscribe(t, 1, "fleet/#")
	alice := mustV5Pass(t, b.addr, "alice", "alice", "alice-pw")
	bob := mustV5Pass(t, b.addr, "bob", "bob", "bob-pw")

	// Subscribing: a filter inside the deny list is refused; one that only
	// overlaps it (fleet/#) is granted, and filtered at delivery below.
	if sa := alice.subscribe(t, 1, "fleet/#", "fleet/secret/#", "fleet/alice/keys"); !bytes.Equal(sa.Reasons, []byte{1, 0x87, 0x87}) {
		t.Fatalf("alice SUBACK %x, want 01 87 87", sa.Reasons)
	}
	b.events.wait(t, "acl", "subscribe_denied", time.Second)
	bob.subscribe(t, 1, "fleet/#")
	c3, _, err := dialV3(t, b.addr, "alice3", "alice", func(o *mqtt3.ClientOptions) { o.SetPassword("alice-pw") })
	if err != nil {
		t.Fatal(err)
	}
	tok := c3.Subscribe("fleet/secret/#", 1, nil)
	waitToken(t, tok)
	if code := tok.(*mqtt3.SubscribeToken).Result()["fleet/secret/#"]; code != 0x80 {
		t.Fatalf("3.1.1 SUBACK for a denied filter: 0x%02x, want 0x80", code)
	}

	// Publishing: refused with 0x87, retained or not, and nobody receives it
	// (ops would: it reads fleet/# with no deny list).
	for _, tc := range []struct {
		topic  string
		retain bool
	}{{"fleet/secret/plan", false}, {"fleet/secret/plan", true}, {"fleet/alice/keys", false}} {
		resp, err := alice.Publish(t.Context(), &paho.Publish{Topic: tc.topic, QoS: 1, Retain: tc.retain, Payload: []byte("leak")})
		if err == nil || resp == nil || resp.ReasonCode != byte(mqttwaf.CodeNotAuthorized) {
			t.Fatalf("alice publishing %s (retain %v): %v %+v, want 0x87", tc.topic, tc.retain, err, resp)
		}
	}
	e := b.events.wait(t, "acl", "publish_denied", time.Second)
	if e.Stage != mqttwaf.StagePublish || e.ClientID != "alice" || !e.Enforced {
		t.Fatalf("event %+v", e)
	}
	// A granted topic still flows from alice, and is the first thing anyone
	// receives from her.
	if _, err := alice.publish(t, "fleet/alice/status", 1, []byte("ok")); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*v5{ops, alice, bob} {
		if m := expectMsg(t, c.msgs, 5*time.Second); m.Topic != "fleet/alice/status" {
			t.Fatalf("%s got %q %q: a denied publish went through", c.ClientID(), m.Topic, m.Payload)
		}
	}

	// Receiving: ops publishes on the denied topics (retaining the secret)
	// and on allowed ones. One publisher's messages reach a subscriber in
	// order, so getting exactly the allowed ones, in order, means the denied
	// ones were dropped, not delayed.
	publish := func(topic string, retain bool) {
		t.Helper()
		if _, err := ops.Publish(t.Context(), &paho.Publish{Topic: topic, QoS: 1, Retain: retain, Payload: []byte(topic)}); err != nil {
			t.Fatalf("ops publishing %s: %v", topic, err)
		}
	}
	before := b.events.count("acl", "read_denied")
	sent := []string{"fleet/secret/plan", "fleet/alice/keys", "fleet/bob/keys", "fleet/public/status"}
	for i, topic := range sent {
		publish(topic, i == 0 || i == 3)
	}
	for _, r := range []struct {
		c    *v5
		want []string
	}{
		{ops, sent}, // control: no deny list
		{alice, []string{"fleet/bob/keys", "fleet/public/status"}}, // {username}: only her own keys are denied
		{bob, []string{"fleet/alice/keys", "fleet/public/status"}}, // and only his
	} {
		for _, topic := range r.want {
			if m := expectMsg(t, r.c.msgs, 5*time.Second); m.Topic != topic {
				t.Fatalf("%s received %q, want %q", r.c.ClientID(), m.Topic, topic)
			}
		}
	}
	b.events.waitCount(t, "acl", "read_denied", before+4, time.Second) // secret and own keys, for alice and bob
	expectNoMsg(t, alice.msgs, 100*time.Millisecond)
	expectNoMsg(t, bob.msgs, 10*time.Millisecond)

	// Retained: a new subscription to fleet/# gets the retained public
	// status, never the retained secret.
	alice2 := mustV5Pass(t, b.addr, "alice-2", "alice", "alice-pw")
	alice2.subscribe(t, 1, "fleet/#")
	if m := expectMsg(t, alice2.msgs, 5*time.Second); m.Topic != "fleet/public/status" || !m.Retain {
		t.Fatalf("new subscriber got %q (retain %v), want the retained fleet/public/status", m.Topic, m.Retain)
	}
	expectNoMsg(t, alice2.msgs, 200*time.Millisecond)
	late := mustV5Pass(t, b.addr, "ops-2", "ops", "ops-pw") // control: the retained secret is there
	late.subscribe(t, 1, "fleet/secret/#")
	if m := expectMsg(t, late.msgs, 5*time.Second); m.Topic != "fleet/secret/plan" || string(m.Payload) != "fleet/secret/plan" || !m.Retain {
		t.Fatalf("ops got %q (retain %v), want the retained fleet/secret/plan", m.Topic, m.Retain)
	}
}
