package hooks

import (
	"context"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/mqttwaf/mqttwaf/mqttwaf"
)

func TestOversizedTopicCannotRegisterAlias(t *testing.T) {
	b := startBroker(t, "", brokerOpts{})
	sub := mustV5(t, b.addr, "sub", "")
	sub.subscribe(t, 1, "#")
	pub := mustV5(t, b.addr, "pub", "")
	alias := uint16(1)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	long := strings.Repeat("t", 300)
	resp, err := pub.Publish(ctx, &paho.Publish{Topic: long, QoS: 1, Payload: []byte("x"),
		Properties: &paho.PublishProperties{TopicAlias: &alias}})
	if err == nil || resp == nil || resp.ReasonCode != byte(mqttwaf.CodeTopicNameInvalid) {
		t.Fatalf("oversized topic: %v %+v", err, resp)
	}
	// Using the alias now finds nothing registered: refused, not delivered.
	resp, err = pub.Publish(ctx, &paho.Publish{QoS: 1, Payload: []byte("y"),
		Properties: &paho.PublishProperties{TopicAlias: &alias}})
	if err == nil || resp == nil || resp.ReasonCode != byte(mqttwaf.CodeTopicNameInvalid) {
		t.Fatalf("alias of a refused topic: %v %+v", err, resp)
	}
	b.events.wait(t, "limits.topic", "topic_empty", time.Second)
	expectNoMsg(t, sub.msgs, 200*time.Millisecond)
	// A normal alias works end to end.
	alias = 2
	if _, err := pub.Publish(ctx, &paho.Publish{Topic: "fleet/d/t", QoS: 1, Payload: []byte("z"),
		Properties: &paho.PublishProperties{TopicAlias: &alias}}); err != nil {
		t.Fatal(err)
	}
	if _, err := pub.Publish(ctx, &paho.Publish{QoS: 1, Payload: []byte("z2"),
		Properties: &paho.PublishProperties{TopicAlias: &alias}}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"z", "z2"} {
		if m := expectMsg(t, sub.msgs, 5*time.Second); string(m.Payload) != want || m.Topic != "fleet/d/t" {
			t.Fatalf("got %q on %q", m.Payload, m.Topic)
		}
	}
}

// rawSubscriber connects with MQTT 3.1.1, subscribes to filter at QoS 0 and
// then never reads again: a consumer that cannot keep up.
func rawSubscriber(t *testing.T, addr, filter string) net.Conn {
	t.Helper()
	return stuckSubscriber(t, addr, "stuck", filter, 0)
}

// stuckSubscriber is rawSubscriber with a client ID and QoS (a clean
// session).
func stuckSubscriber(t *testing.T, addr, id, filter string, qos byte) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	rawSubscribe(t, conn, id, filter, qos)
	return conn
}

// rawSubscribe connects conn as an MQTT 3.1.1 client id (clean session)
// subscribed to filter at qos, and closes it when the test ends.
func rawSubscribe(t *testing.T, conn net.Conn, id, filter string, qos byte) {
	t.Helper()
	t.Cleanup(func() { _ = conn.Close() })
	connect := []byte{0x10, byte(12 + len(id)), 0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 60, 0, byte(len(id))}
	connect = append(connect, id...)
	sub := []byte{0x82, byte(5 + len(filter)), 0, 1, 0, byte(len(filter))}
	sub = append(sub, filter...)
	sub = append(sub, qos)
	if _, err := conn.Write(append(connect, sub...)); err != nil {
		t.Fatal(err)
	}
	ack := make([]byte, 4)
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Read(ack); err != nil || ack[0] != 0x20 || ack[3] != 0 {
		t.Fatalf("CONNACK % x: %v", ack, err)
	}
}

func TestDroppedDeliveriesAreEvents(t *testing.T) {
	b := startBroker(t, "broker: {client_write_queue: 16}\n"+strings.Replace(testRates, "rates:\n", "rates:\n  publish: {per_connection: {messages: 100000/s, bytes: 1GiB/s}}\n", 1), brokerOpts{})
	rawSubscriber(t, b.addr, "flood/#")
	b.waitSubscribed(t, "flood/#")
	pub := mustV5(t, b.addr, "flooder", "")
	payload := make([]byte, 64<<10)
	for i := 0; i < 600 && b.events.count("broker.delivery_dropped", "") == 0; i++ {
		if _, err := pub.publish(t, "flood/x", 0, payload); err != nil {
			t.Fatal(err)
		}
	}
	// Writes to the socket never wait (writeQueue), so mochi's write queue
	// does not fill: the WAF drops the deliveries once
	// broker.max_unsent_bytes wait for the stuck socket.
	e := b.events.wait(t, "broker.delivery_dropped", "subscriber_unsent_bytes", 5*time.Second)
	if e.ClientID != "stuck" || e.Topic != "flood/x" || e.Limit != 1<<20 {
		t.Fatalf("event %+v", e)
	}
	// Every drop mochi counted is an event (and a counter) of ours.
	time.Sleep(200 * time.Millisecond)
	dropped := atomic.LoadInt64(&b.server.Info.MessagesDropped)
	var queueFull, unsent uint64
	for _, c := range b.waf.Counters() {
		switch {
		case c.Rule == "broker.delivery_dropped" && c.Reason == "subscriber_queue_full":
			queueFull += c.N
		case c.Rule == "broker.delivery_dropped" && c.Reason == "subscriber_unsent_bytes":
			unsent += c.N
		}
	}
	if int64(queueFull) != dropped || unsent == 0 {
		t.Fatalf("mochi dropped %d, WAF counted %d of them (subscriber_queue_full) and dropped %d itself", dropped, queueFull, unsent)
	}
}

func TestReloadAppliesToConnectedClients(t *testing.T) {
	b := startBroker(t, "", brokerOpts{})
	sub := mustV5(t, b.addr, "sub", "")
	sub.subscribe(t, 1, "#")
	pub := mustV5(t, b.addr, "pub", "")
	if _, err := pub.publish(t, "a/b/c/d", 1, []byte("before")); err != nil {
		t.Fatal(err)
	}
	expectMsg(t, sub.msgs, 5*time.Second)
	p, err := mqttwaf.ParsePolicy([]byte(testPolicy+openAccess+testRates+"limits: {topic: {max_levels: 3}}\n"), "reload")
	if err != nil {
		t.Fatal(err)
	}
	if err := b.waf.Reload(p); err != nil {
		t.Fatal(err)
	}
	if _, err := pub.publish(t, "a/b/c/d", 1, []byte("after")); err == nil {
		t.Fatal("reloaded limit not applied to a connected client")
	}
	expectNoMsg(t, sub.msgs, 200*time.Millisecond)
}

func TestWillRecheckedWhenSent(t *testing.T) {
	b := startBroker(t, "", brokerOpts{})
	sub := mustV5(t, b.addr, "watcher", "")
	sub.subscribe(t, 1, "fleet/#")
	conn, err := net.Dial("tcp", b.addr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := connectV5(t, conn, &paho.Connect{ClientID: "dev", CleanStart: true,
		WillMessage: &paho.WillMessage{Topic: "fleet/a/b/c/dev", QoS: 1, Payload: []byte("offline")}}); err != nil {
		t.Fatal(err)
	}
	// The will was fine at CONNECT; the policy changes before it is sent.
	p, _ := mqttwaf.ParsePolicy([]byte(testPolicy+openAccess+testRates+"limits: {topic: {max_levels: 3}}\n"), "reload")
	if err := b.waf.Reload(p); err != nil {
		t.Fatal(err)
	}
	_ = conn.Close()
	expectNoMsg(t, sub.msgs, 500*time.Millisecond)
	// Nor can anyone fetch it from the reserved topic it was parked on.
	snoop := mustV5(t, b.addr, "snoop", "")
	if sa := snoop.subscribe(t, 1, mqttwaf.ReservedPrefix+"#"); sa.Reasons[0] < 0x80 {
		t.Fatalf("subscription to %s# granted", mqttwaf.ReservedPrefix)
	}
}

func TestProtocolErrorsAreEvents(t *testing.T) {
	b := startBroker(t, "", brokerOpts{})
	c := mustV5(t, b.addr, "aliaser", "")
	// Topic alias 17 is over broker.topic_alias_maximum (16): mochi refuses
	// it and disconnects; the WAF reports it.
	alias := uint16(17)
	_, _ = c.Publish(t.Context(), &paho.Publish{Topic: "a/b", QoS: 0, Payload: []byte("x"),
		Properties: &paho.PublishProperties{TopicAlias: &alias}})
	e := b.events.wait(t, "connections.protocol", "", 5*time.Second)
	if e.ClientID != "aliaser" || e.Code < 0x80 {
		t.Fatalf("event %+v", e)
	}
	// A disconnect the WAF decided itself is not reported twice.
	before := len(b.events.all())
	d := mustV5(t, b.addr, "d", "")
	p, _ := mqttwaf.ParsePolicy([]byte(testPolicy+openAccess+testRates+"limits: {topic: {max_levels: 1}}\nresponses: {mqtt311_publish: disconnect}\n"), "p")
	_ = b.waf.Reload(p)
	_, _ = d.publish(t, "x/y", 1, []byte("x")) // v5: PUBACK 0x90, stays connected
	time.Sleep(200 * time.Millisecond)
	if got := b.events.count("connections.protocol", ""); got != 1 {
		t.Fatalf("%d protocol events, want 1: %v", got, b.events.all()[before:])
	}
}
