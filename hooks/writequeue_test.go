//go:build unix

package hooks

import (
	"context"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
)

// tinyReader is a raw MQTT 3.1.1 subscriber that subscribes to filter at
// qos and then never reads: a receive buffer of a few KiB fills at once,
// so the broker's writes to it stop being taken almost immediately.
func tinyReader(t *testing.T, addr, id, filter string, qos byte) net.Conn {
	t.Helper()
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var err error
		_ = c.Control(func(fd uintptr) { err = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		return err
	}}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	rawSubscribe(t, conn, id, filter, qos)
	return conn
}

// TestSlowReaderDoesNotStallPublishers: a client that subscribes and never
// reads does not slow anyone else down. Without the write queue mochi's
// writer blocks on the full socket holding the client's lock, the next
// QoS 1 delivery to it waits for that lock in the publisher's read loop,
// and the publisher gets no more PUBACKs (nor does anyone else its
// messages). With it the publisher and a reading subscriber get
// everything, the deliveries to the stuck client over
// broker.max_unsent_bytes are dropped and reported, and the stuck client
// is disconnected after broker.write_timeout.
func TestSlowReaderDoesNotStallPublishers(t *testing.T) {
	b := startBroker(t, "broker: {max_unsent_bytes: 256KiB, write_timeout: 1s, max_inflight_bytes: 64MiB}\n"+
		`rates:
  publish: {per_connection: {messages: 100000/s, bytes: 1GiB/s}, per_ip: {messages: 100000/s, bytes: 1GiB/s}}
`, brokerOpts{})
	tinyReader(t, b.addr, "stuck", "flood/#", 1)
	b.waitSubscribed(t, "flood/#")
	reader := mustV5(t, b.addr, "reader", "")
	reader.subscribe(t, 1, "flood/#")
	b.waitSubscribers(t, "flood/#", 2)
	pub := mustV5(t, b.addr, "flooder", "")

	const n = 160 // 10 MiB: far more than the stuck socket's buffers hold
	payload := make([]byte, 64<<10)
	for i := range n {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := pub.Publish(ctx, &paho.Publish{Topic: "flood/x", QoS: 1, Payload: payload})
		cancel()
		if err != nil {
			t.Fatalf("publish %d of %d: %v (the publisher stalled behind the stuck subscriber)", i+1, n, err)
		}
	}
	for i := range n {
		if m := expectMsg(t, reader.msgs, 5*time.Second); len(m.Payload) != len(payload) {
			t.Fatalf("message %d: %d bytes", i, len(m.Payload))
		}
	}
	e := b.events.wait(t, "broker.delivery_dropped", "subscriber_unsent_bytes", 5*time.Second)
	if e.ClientID != "stuck" || e.Limit != 256<<10 {
		t.Fatalf("drop event %+v", e)
	}
	for _, e := range b.events.all() {
		if e.Rule == "broker.delivery_dropped" && e.ClientID != "stuck" {
			t.Fatalf("a delivery to another client was dropped: %+v", e)
		}
	}
	// Never more than twice the limit plus a packet waits for the socket.
	if cl, ok := b.server.Clients.Get("stuck"); ok {
		if g := findGuard(cl.Net.Conn); g == nil || g.out.Unsent() > 2*(256<<10)+(256<<10) {
			t.Fatalf("stuck client: guard %v, unsent over the bound", g)
		}
	}
	e = b.events.wait(t, "broker.write_timeout", "write_timeout", 5*time.Second)
	if e.ClientID != "stuck" || e.Value <= 0 || e.Limit != 1000 {
		t.Fatalf("write timeout event %+v", e)
	}
	b.waitGone(t, "stuck")
}
