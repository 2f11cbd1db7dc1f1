package hooks

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"

	"github.com/mqttwaf/mqttwaf/mqttwaf"
)

// dropsFor counts the broker.delivery_dropped events for client id, by
// reason.
func dropsFor(b *testBroker, id string) map[string]int {
	n := map[string]int{}
	for _, e := range b.events.all() {
		if e.Rule == "broker.delivery_dropped" && e.ClientID == id {
			n[e.Reason]++
		}
	}
	return n
}

// TestInflightBytesBound: a subscriber that stops reading holds at most
// broker.max_inflight_bytes of QoS 1 messages (plus the one that crossed
// the line); every further delivery is a subscriber_inflight_bytes event,
// and when its clean session ends the messages it held are session_ended
// events: every message published is accounted for.
func TestInflightBytesBound(t *testing.T) {
	b := startBroker(t, "broker: {max_inflight_bytes: 64KiB}\n"+
		strings.Replace(testRates, "rates:\n", "rates:\n  publish: {per_connection: {messages: 100000/s, bytes: 1GiB/s}}\n", 1), brokerOpts{})
	conn := stuckSubscriber(t, b.addr, "stuck", "big/#", 1)
	b.waitSubscribed(t, "big/#")
	pub := mustV5(t, b.addr, "pub", "")
	payload := make([]byte, 8<<10)
	const sent = 20
	for range sent {
		if _, err := pub.publish(t, "big/x", 1, payload); err != nil {
			t.Fatal(err)
		}
	}
	cl, ok := b.server.Clients.Get("stuck")
	if !ok {
		t.Fatal("subscriber gone")
	}
	// mochi acknowledges a publish before it delivers it: wait for the last
	// delivery to be stored or dropped.
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if cl.State.Inflight.Len()+dropsFor(b, "stuck")["subscriber_inflight_bytes"] == sent {
			break
		}
	}
	msg := int64(len("big/x") + len(payload))
	if held := heldBytes(cl); held > 64<<10+msg || held < 64<<10 {
		t.Errorf("the subscriber's store holds %d bytes, want 64 KiB up to one message more", held)
	}
	held := cl.State.Inflight.Len()
	e := b.events.wait(t, "broker.delivery_dropped", "subscriber_inflight_bytes", 5*time.Second)
	if e.ClientID != "stuck" || e.Topic != "big/x" || e.Limit != 64<<10 || e.Action != mqttwaf.Drop {
		t.Errorf("event %+v", e)
	}
	if got := dropsFor(b, "stuck")["subscriber_inflight_bytes"]; got != sent-held {
		t.Errorf("%d dropped deliveries reported, want %d (%d sent, %d held)", got, sent-held, sent, held)
	}

	// The clean session ends: what it held is discarded, and reported.
	_ = conn.Close()
	b.events.waitCount(t, "broker.delivery_dropped", "session_ended", held, 5*time.Second)
	if got := dropsFor(b, "stuck"); got["session_ended"]+got["subscriber_inflight_bytes"] != sent {
		t.Errorf("drops %v do not account for the %d messages sent", got, sent)
	}
}

// persistentV5 connects an MQTT 5 client with a persistent session of
// expiry seconds.
func persistentV5(t *testing.T, addr, id string, expiry uint32, clean bool) *v5 {
	t.Helper()
	c, err := dialV5(t, addr, &paho.Connect{ClientID: id, CleanStart: clean,
		Properties: &paho.ConnectProperties{SessionExpiryInterval: &expiry}})
	if err != nil {
		t.Fatalf("connect %s: %v", id, err)
	}
	return c
}

// TestQueuedMessagesAccounted follows QoS 1 messages queued for offline
// persistent sessions: a message whose expiry passes is message_expired, a
// session that expires with messages queued reports them as
// session_expired, and a session resumed by a new connection (a takeover)
// delivers them without any drop reported.
func TestQueuedMessagesAccounted(t *testing.T) {
	b := startBroker(t, "", brokerOpts{})
	for _, id := range []string{"expiring-msg", "expiring-session", "resumed"} {
		expiry := uint32(3600)
		if id == "expiring-session" {
			expiry = 1
		}
		c := persistentV5(t, b.addr, id, expiry, true)
		c.subscribe(t, 1, "q/"+id)
		_ = c.Disconnect(&paho.Disconnect{})
	}
	pub := mustV5(t, b.addr, "pub", "")
	one := uint32(1)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, p := range []*paho.Publish{
		{Topic: "q/expiring-msg", QoS: 1, Payload: []byte("short-lived"), Properties: &paho.PublishProperties{MessageExpiry: &one}},
		{Topic: "q/expiring-session", QoS: 1, Payload: []byte("orphan")},
		{Topic: "q/resumed", QoS: 1, Payload: []byte("kept")},
	} {
		if _, err := pub.Publish(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	e := b.events.wait(t, "broker.delivery_dropped", "message_expired", 10*time.Second)
	if e.ClientID != "expiring-msg" || e.Topic != "q/expiring-msg" || e.Size != len("short-lived") {
		t.Errorf("expired: %+v", e)
	}
	e = b.events.wait(t, "broker.delivery_dropped", "session_expired", 10*time.Second)
	if e.ClientID != "expiring-session" || e.Topic != "q/expiring-session" {
		t.Errorf("session expired: %+v", e)
	}

	// The resumed session gets its message, and no drop is reported for it
	// (mochi moves the store to the new connection and then clears the
	// old one's, which is not a loss).
	c := persistentV5(t, b.addr, "resumed", 3600, false)
	if m := expectMsg(t, c.msgs, 5*time.Second); string(m.Payload) != "kept" {
		t.Fatalf("resumed session got %q", m.Payload)
	}
	if d := dropsFor(b, "resumed"); len(d) > 0 {
		t.Errorf("drops reported for a resumed session: %v", d)
	}
}

// TestUnattributedInflightDrops: in a stack without Identity the read ACL
// check is not the WAF's, so mochi's own in-flight limit (set to
// broker.max_inflight) drops the delivery without telling any hook; the
// WAF finds it in mochi's counters within a second and reports it.
func TestUnattributedInflightDrops(t *testing.T) {
	rec := newRecorder()
	p, err := mqttwaf.ParsePolicy([]byte(testPolicy+"broker: {max_inflight: 4}\n"), t.Name())
	if err != nil {
		t.Fatal(err)
	}
	opts := HardenedOptions(p)
	opts.SysTopicResendInterval = 1
	opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	server := mqtt.New(opts)
	if err := server.AddHook(new(auth.AllowHook), nil); err != nil {
		t.Fatal(err)
	}
	if err := server.AddHook(new(Hardening), &HardeningOptions{Server: server, Shared: Shared{Sink: rec, Events: p.Events}, Broker: p.Broker}); err != nil {
		t.Fatal(err)
	}
	l := listeners.NewTCP(listeners.Config{ID: "t", Address: "127.0.0.1:0"})
	if err := server.AddListener(l); err != nil {
		t.Fatal(err)
	}
	if err := server.Serve(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = server.Close() })
	if got := server.Options.Capabilities.MaximumInflight; got != 4 {
		t.Fatalf("mochi's in-flight limit %d, want broker.max_inflight 4", got)
	}
	stuckSubscriber(t, l.Address(), "stuck", "s/#", 1)
	b := &testBroker{server: server, events: rec}
	b.waitSubscribed(t, "s/#")
	pub := mustV5(t, l.Address(), "pub", "")
	for range 10 {
		if _, err := pub.publish(t, "s/x", 1, []byte("m")); err != nil {
			t.Fatal(err)
		}
	}
	rec.waitCount(t, "broker.delivery_dropped", "subscriber_inflight_full", 6, 5*time.Second)
	if mochi := server.Info.InflightDropped; mochi != 6 {
		t.Errorf("mochi dropped %d, want 6", mochi)
	}
}

// TestQoS2Accounting: a subscriber that refuses a QoS 2 delivery (PUBREC
// with an error code) is reported (subscriber_refused); a completed QoS 2
// delivery, and a publisher that leaves in the middle of its own QoS 2
// flow (the broker's stored PUBREC is cleared), are not drops.
func TestQoS2Accounting(t *testing.T) {
	b := startBroker(t, "", brokerOpts{})
	sub := rawConnectV5(t, b.addr, "r-sub")
	writeRaw(t, sub, framePacket(0x82, append([]byte{0, 1, 0, 0, 3}, "r/#\x02"...)))
	if ack := readPacket(t, sub); ack[0] != 0x90 || ack[len(ack)-1] != 2 {
		t.Fatalf("SUBACK % x", ack)
	}
	pub := rawConnectV5(t, b.addr, "r-pub")
	// The delivery of "refuse": PUBREC 0x80.
	deliver := func(payload string) uint16 {
		writeRaw(t, pub, rawPublishV5(2, 7, "r/x", []byte(payload), "k", "v"))
		if rec := readPacket(t, pub); rec[0] != 0x50 {
			t.Fatalf("publisher got % x, want PUBREC", rec)
		}
		writeRaw(t, pub, []byte{0x62, 2, 0, 7}) // PUBREL
		if comp := readPacket(t, pub); comp[0] != 0x70 {
			t.Fatalf("publisher got % x, want PUBCOMP", comp)
		}
		p := readPacket(t, sub)
		if p[0]&0xf0 != 0x30 || !strings.HasSuffix(string(p), payload) {
			t.Fatalf("subscriber got % x", p)
		}
		topicLen := int(p[2])<<8 | int(p[3])
		return uint16(p[4+topicLen])<<8 | uint16(p[5+topicLen])
	}
	id := deliver("refuse")
	writeRaw(t, sub, []byte{0x50, 3, byte(id >> 8), byte(id), 0x80})
	e := b.events.wait(t, "broker.delivery_dropped", "subscriber_refused", 5*time.Second)
	if e.ClientID != "r-sub" || e.Topic != "r/x" || e.Size != len("refuse") {
		t.Errorf("refused: %+v", e)
	}
	id = deliver("accept")
	writeRaw(t, sub, []byte{0x50, 2, byte(id >> 8), byte(id)})
	if rel := readPacket(t, sub); rel[0] != 0x62 {
		t.Fatalf("subscriber got % x, want PUBREL", rel)
	}
	writeRaw(t, sub, []byte{0x70, 2, byte(id >> 8), byte(id)})
	// The publisher starts a QoS 2 flow and leaves before its PUBREL.
	writeRaw(t, pub, rawPublishV5(2, 8, "r/y", []byte("half"), "k", "v"))
	if rec := readPacket(t, pub); rec[0] != 0x50 {
		t.Fatalf("publisher got % x, want PUBREC", rec)
	}
	_ = readPacket(t, sub) // "half", which the subscriber leaves unacknowledged
	_ = pub.Close()
	_ = sub.Close()
	// The subscriber's clean session ends with "half" unacknowledged: that
	// is a drop; the publisher's unfinished flow is not.
	e = b.events.wait(t, "broker.delivery_dropped", "session_ended", 5*time.Second)
	if e.ClientID != "r-sub" || e.Topic != "r/y" {
		t.Errorf("session ended: %+v", e)
	}
	time.Sleep(300 * time.Millisecond)
	if got := dropsFor(b, "r-sub"); len(got) != 2 || got["subscriber_refused"] != 1 || got["session_ended"] != 1 {
		t.Errorf("drops for the subscriber %v, want one refused and one at session end", got)
	}
	if got := dropsFor(b, "r-pub"); len(got) > 0 {
		t.Errorf("drops reported for the publisher's own flow: %v", got)
	}
}

// TestReceiveMaximumDoesNotStall: mochi holds back deliveries beyond an
// MQTT 5 subscriber's receive maximum and sends them as acknowledgements
// come in, but it forgets each such message once sent, so its PUBACK never
// gives the send quota back (mochi v2.7.9): after receive-maximum of them
// the subscriber received nothing more, ever (mosquitto_sub's receive
// maximum is 20). The hook gives the quota back; the subscriber receives
// everything.
func TestReceiveMaximumDoesNotStall(t *testing.T) {
	b := startBroker(t, "", brokerOpts{})
	conn := connectReceiveMax(t, b.addr, "small-window", 2)
	writeRaw(t, conn, framePacket(0x82, append([]byte{0, 1, 0, 0, 3}, "w/#\x01"...)))
	if ack := readPacket(t, conn); ack[0] != 0x90 {
		t.Fatalf("SUBACK % x", ack)
	}
	pub := mustV5(t, b.addr, "pub", "")
	const n = 12
	for i := range n {
		if _, err := pub.publish(t, "w/x", 1, []byte{byte('a' + i)}); err != nil {
			t.Fatal(err)
		}
	}
	// Read and acknowledge, one at a time, as a client with a window of 2.
	got := map[byte]bool{}
	for len(got) < n {
		p := readPacket(t, conn) // fails the test after 5 s without a packet
		if p[0]&0xf0 != 0x30 {
			t.Fatalf("got % x, want PUBLISH", p)
		}
		topicLen := int(p[2])<<8 | int(p[3])
		pid := p[4+topicLen : 6+topicLen]
		got[p[len(p)-1]] = true
		writeRaw(t, conn, []byte{0x40, 2, pid[0], pid[1]})
	}
}
