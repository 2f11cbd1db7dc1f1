//go:build unix

package hooks

import (
	"context"
	"fmt"
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
// everything; deliveries to the stuck client beyond its limits are dropped
// and reported (QoS 1: its in-flight bytes, QoS 0: broker.max_unsent_bytes);
// what waits for its socket stays bounded; and it is disconnected after
// broker.write_timeout.
func TestSlowReaderDoesNotStallPublishers(t *testing.T) {
	for _, tc := range []struct {
		qos    byte
		reason string
		limit  int64
	}{
		{1, "subscriber_inflight_bytes", 4 << 20},
		{0, "subscriber_unsent_bytes", 256 << 10},
	} {
		t.Run(fmt.Sprintf("qos%d", tc.qos), func(t *testing.T) { slowReader(t, tc.qos, tc.reason, tc.limit) })
	}
}

func slowReader(t *testing.T, qos byte, reason string, limit int64) {
	b := startBroker(t, "broker: {max_unsent_bytes: 256KiB, write_timeout: 5s, max_inflight_bytes: 4MiB}\n"+
		`rates:
  publish: {per_connection: {messages: 100000/s, bytes: 1GiB/s}, per_ip: {messages: 100000/s, bytes: 1GiB/s}}
`, brokerOpts{})
	tinyReader(t, b.addr, "stuck", "flood/#", qos)
	b.waitSubscribed(t, "flood/#")
	reader := mustV5(t, b.addr, "reader", "")
	reader.subscribe(t, 1, "flood/#")
	b.waitSubscribers(t, "flood/#", 2)
	pub := mustV5(t, b.addr, "flooder", "")

	const n = 320 // 20 MiB: more than the stuck client's limits and socket buffers hold
	payload := make([]byte, 64<<10)
	peak := make(chan int64, 1)
	stop := make(chan struct{})
	go func() { // what waits for the stuck socket, at its highest
		var most int64
		defer func() { peak <- most }()
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
			if cl, ok := b.server.Clients.Get("stuck"); ok {
				if g := findGuard(cl.Net.Conn); g != nil {
					most = max(most, g.out.Unsent())
				}
			}
		}
	}()
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
	e := b.events.wait(t, "broker.delivery_dropped", reason, 5*time.Second)
	if e.ClientID != "stuck" || e.Limit != limit {
		t.Fatalf("drop event %+v", e)
	}
	for _, e := range b.events.all() {
		if e.Rule == "broker.delivery_dropped" && e.ClientID != "stuck" {
			t.Fatalf("a delivery to another client was dropped: %+v", e)
		}
	}
	// The write timeout is long enough for the flood to reach the limits
	// first, under -race too.
	e = b.events.wait(t, "broker.write_timeout", "write_timeout", 15*time.Second)
	if e.ClientID != "stuck" || e.Value <= 0 || e.Limit != 5000 {
		t.Fatalf("write timeout event %+v", e)
	}
	b.waitGone(t, "stuck")
	close(stop)
	if got, bound := <-peak, unsentHardLimit(b.waf.Broker()); got > bound || got == 0 {
		t.Fatalf("%d bytes waited for the stuck socket at most; want some, within %d", got, bound)
	}
}
