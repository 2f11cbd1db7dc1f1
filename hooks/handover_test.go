package hooks

import (
	"bytes"
	"net"
	"strconv"
	"testing"
	"time"
)

// TestCleanReconnectKeepsSubscription races a clean session's DISCONNECT
// against a new CONNECT with the same client ID, the way a device that
// reconnects at once does. mochi v2.7.9 cleans up the old connection after
// its last hook, by client ID: without the hand-over gate, a new connection
// that took over in that window lost its subscriptions and its place in the
// client table, and never received another message.
func TestCleanReconnectKeepsSubscription(t *testing.T) {
	b := startBroker(t, testRates+"  subscribe: {per_connection: 100000/s}\n  publish: {per_connection: {messages: 100000/s}}\n", brokerOpts{})
	pub := rawConnectV5(t, b.addr, "publisher")
	rounds := 200
	if testing.Short() {
		rounds = 50
	}
	sub := rawSubscribeV5(1, 0, "handover/#")
	old := rawConnectV5(t, b.addr, "device")
	writeRaw(t, old, sub)
	if ack := readPacket(t, old); ack[0] != 0x90 || ack[len(ack)-1] != 0 {
		t.Fatalf("SUBACK % x", ack)
	}
	for i := range rounds {
		next, err := net.Dial("tcp", b.addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = next.Close() })
		// The old connection's DISCONNECT and the new CONNECT leave together.
		done := make(chan struct{})
		go func() {
			defer close(done)
			_, _ = old.Write([]byte{0xE0, 0})
		}()
		writeRaw(t, next, append(rawConnect(5, "device"), sub...))
		<-done
		if ack := readPacket(t, next); ack[0] != 0x20 || ack[3] != 0 {
			t.Fatalf("round %d: CONNACK % x", i, ack)
		}
		if ack := readPacket(t, next); ack[0] != 0x90 || ack[len(ack)-1] != 0 {
			t.Fatalf("round %d: SUBACK % x", i, ack)
		}
		_ = old.Close()
		marker := []byte("round " + strconv.Itoa(i))
		writeRaw(t, pub, rawPublishProps(0, 0, "handover/x", nil, marker))
		got := readPacketOrNil(next, 5*time.Second)
		if got == nil {
			cl, ok := b.server.Clients.Get("device")
			t.Fatalf("round %d: the reconnected device got no message (the broker holds it: %v, as this connection: %v)", i, ok, ok && cl.Net.Remote == next.LocalAddr().String())
		}
		if got[0]>>4 != 3 || !bytes.HasSuffix(got, marker) {
			t.Fatalf("round %d: the reconnected device got % x, want the PUBLISH %q", i, got, marker)
		}
		old = next
	}
}

// readPacketOrNil reads one whole MQTT packet, or returns nil if none
// arrives within d.
func readPacketOrNil(conn net.Conn, d time.Duration) []byte {
	_ = conn.SetReadDeadline(time.Now().Add(d))
	defer conn.SetReadDeadline(time.Time{})
	b, _ := readPacketErr(conn)
	return b
}

func TestHandoverHolds(t *testing.T) {
	var g handover
	release := g.acquire("a")
	other := g.acquire("b") // another ID does not wait
	got := make(chan func())
	go func() { got <- g.acquire("a") }()
	select {
	case <-got:
		t.Fatal("a second hold of the same ID did not wait")
	case <-time.After(20 * time.Millisecond):
	}
	release()
	release() // harmless
	second := <-got
	second()
	other()
	if len(g.held) != 0 {
		t.Fatalf("%d holds left after every release", len(g.held))
	}

	// Holds whose end never came expire, and the table sheds them as it
	// grows: it never holds more than twice the live ones, or 1024.
	for i := range 5000 {
		g.acquire(strconv.Itoa(i))
		g.mu.Lock()
		g.held[strconv.Itoa(i)].until = time.Now().Add(-time.Second)
		n := len(g.held)
		g.mu.Unlock()
		if n > 1024 {
			t.Fatalf("%d expired holds kept", n)
		}
	}
}
