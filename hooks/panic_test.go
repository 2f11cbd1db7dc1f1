package hooks

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// panicHook is an application's hook with a bug: it panics on a PUBLISH
// to "boom" and on a CONNECT from client "boom-connect", in the
// connection's goroutine, where mochi does not recover.
type panicHook struct{ mqtt.HookBase }

func (*panicHook) ID() string { return "buggy-app-hook" }
func (*panicHook) Provides(b byte) bool {
	return bytes.Contains([]byte{mqtt.OnPacketRead, mqtt.OnConnect}, []byte{b})
}
func (*panicHook) OnPacketRead(_ *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if pk.FixedHeader.Type == packets.Publish && pk.TopicName == "boom" {
		panic(fmt.Sprintf("application hook failed on %d bytes", len(pk.Payload)))
	}
	return pk, nil
}
func (*panicHook) OnConnect(cl *mqtt.Client, _ packets.Packet) error {
	if cl.ID == "boom-connect" {
		panic("application hook failed")
	}
	return nil
}

// TestConnectionPanicEndsOneConnection: a panic in a connection's
// goroutine ends that connection, not the broker: it is reported, the
// client's session is cleaned up as mochi would, and every other client
// keeps being served.
func TestConnectionPanicEndsOneConnection(t *testing.T) {
	b := startBroker(t, "", brokerOpts{})
	if err := b.server.AddHook(new(panicHook), nil); err != nil {
		t.Fatal(err)
	}
	bystander := mustV5(t, b.addr, "bystander", "")
	bystander.subscribe(t, 1, "t/#")
	victim := mustV5(t, b.addr, "victim", "")
	victim.subscribe(t, 1, "t/#")
	_, _ = victim.Publish(t.Context(), &paho.Publish{Topic: "boom", QoS: 0, Payload: []byte("x")})
	select {
	case <-victim.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the panicking connection was not closed")
	}
	e := b.events.wait(t, "broker.panic", "connection_panicked", 5*time.Second)
	if e.ClientID != "victim" || e.Code != 0x83 {
		t.Fatalf("event %+v", e)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, ok := b.server.Clients.Get("victim"); !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("mochi still holds the panicked client")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// A panic before the session exists.
	if c, err := dialV5(t, b.addr, &paho.Connect{ClientID: "boom-connect", CleanStart: true}); err == nil {
		t.Fatalf("CONNECT through a panicking hook succeeded: %+v", c.connack)
	}
	b.events.waitCount(t, "broker.panic", "connection_panicked", 2, 5*time.Second)

	// Everyone else is still served.
	pub := mustV5(t, b.addr, "pub", "")
	if _, err := pub.publish(t, "t/x", 1, []byte("still here")); err != nil {
		t.Fatal(err)
	}
	if m := expectMsg(t, bystander.msgs, 5*time.Second); string(m.Payload) != "still here" {
		t.Fatalf("bystander got %q", m.Payload)
	}
	if n := b.events.count("broker.delivery_dropped", ""); n != 0 {
		t.Fatalf("%d deliveries dropped (queued for the dead client?)", n)
	}
}
