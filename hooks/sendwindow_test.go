package hooks

import (
	"bytes"
	"net"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestSendWindowUnit drives a window of 2 with whole packets as mochi
// writes them: QoS 0 and acknowledgements always pass, QoS>0 PUBLISH
// packets beyond the window wait in order, a resend of a counted packet
// passes, and each acknowledgement lets exactly one waiting packet out.
func TestSendWindowUnit(t *testing.T) {
	pub := func(qos byte, id uint16) []byte { return rawPublishProps(qos, id, "t", nil, []byte{byte(id)}) }
	puback := []byte{0x40, 2, 0, 9}
	w := newSendWindow(2)
	steps := []struct {
		name  string
		write []byte
		ack   int // packet id acknowledged instead of a write; 0: none
		want  []byte
	}{
		{"two fit", append(pub(1, 1), pub(2, 2)...), 0, append(pub(1, 1), pub(2, 2)...)},
		{"the third waits, QoS 0 and acks pass", bytes.Join([][]byte{pub(1, 3), pub(0, 0), puback}, nil), 0, append(pub(0, 0), puback...)},
		{"a fourth waits behind it", pub(1, 4), 0, nil},
		{"a resend of a counted one waits behind them too", pub(1, 1), 0, nil},
		{"an ack for an unknown id frees nothing", nil, 77, nil},
		{"acking 1 lets 3 out", nil, 1, pub(1, 3)},
		{"acking 1 twice frees nothing", nil, 1, nil},
		{"acking 2 lets 4 out; the window is full again", nil, 2, pub(1, 4)},
		{"acking 3 lets the resend of 1 out", nil, 3, pub(1, 1)},
		{"a partial packet passes as it is", []byte{0x32, 9, 0}, 0, []byte{0x32, 9, 0}},
	}
	for _, s := range steps {
		var got []byte
		if s.ack != 0 {
			got = w.acked(uint16(s.ack))
		} else {
			got = w.filter(s.write)
		}
		if !bytes.Equal(got, s.want) {
			t.Fatalf("%s: wrote % x, want % x", s.name, got, s.want)
		}
	}
	if w.heldBytes() != 0 || len(w.open) != 2 {
		t.Fatalf("held %d bytes, %d open; want 0 and 2", w.heldBytes(), len(w.open))
	}
}

// TestReceiveMaximumKept: an MQTT 5 subscriber with Receive Maximum 2
// never has more than 2 unacknowledged QoS 1 or 2 deliveries, gets the
// rest in order as it acknowledges (QoS 2: at PUBCOMP, not PUBREC), and
// loses none. The broker keeps the window in its write path instead of
// mochi's quota, whose in-flight lock can deadlock (sendwindow.go).
func TestReceiveMaximumKept(t *testing.T) {
	for _, qos := range []byte{1, 2} {
		t.Run("qos"+strconv.Itoa(int(qos)), func(t *testing.T) { receiveMaximumKept(t, qos) })
	}
}

func receiveMaximumKept(t *testing.T, qos byte) {
	b := startBroker(t, "", brokerOpts{})
	conn := connectReceiveMax(t, b.addr, "window-2", 2)
	writeRaw(t, conn, rawSubscribeV5(1, qos, "w/#"))
	if ack := readPacket(t, conn); ack[0] != 0x90 || ack[len(ack)-1] != qos {
		t.Fatalf("SUBACK % x", ack)
	}
	pub := mustV5(t, b.addr, "pub", "")
	const n = 10
	for i := range n {
		if _, err := pub.publish(t, "w/x", qos, []byte{byte('a' + i)}); err != nil {
			t.Fatal(err)
		}
	}
	// next reads the next PUBLISH, answering PUBRELs with PUBCOMP on the
	// way when asked to.
	next := func() []byte {
		t.Helper()
		p := readPacket(t, conn)
		if p[0]&0xf0 != 0x30 {
			t.Fatalf("got % x, want PUBLISH", p)
		}
		return p
	}
	pidOf := func(p []byte) []byte {
		topicLen := int(p[2])<<8 | int(p[3])
		return p[4+topicLen : 6+topicLen]
	}
	var open [][]byte
	got := 0
	for got < n {
		for len(open) < 2 && got+len(open) < n {
			p := next()
			if want := byte('a' + got + len(open)); p[len(p)-1] != want {
				t.Fatalf("message %q arrived where %q was due", p[len(p)-1], want)
			}
			open = append(open, pidOf(p))
		}
		if got+len(open) < n {
			if p := readPacketOrNil(conn, 200*time.Millisecond); p != nil {
				t.Fatalf("a third unacknowledged delivery arrived: % x", p)
			}
		}
		pid := open[0]
		open = open[1:]
		if qos == 1 {
			writeRaw(t, conn, []byte{0x40, 2, pid[0], pid[1]})
		} else {
			writeRaw(t, conn, []byte{0x50, 2, pid[0], pid[1]}) // PUBREC
			if rel := readPacket(t, conn); rel[0] != 0x62 {
				t.Fatalf("got % x, want PUBREL", rel)
			}
			writeRaw(t, conn, []byte{0x70, 2, pid[0], pid[1]}) // PUBCOMP
		}
		got++
	}
	if p := readPacketOrNil(conn, 200*time.Millisecond); p != nil {
		t.Fatalf("more than %d deliveries: % x", n, p)
	}
}

// TestInflightLockStressNoRace floods a subscriber that set a Receive Maximum
// with QoS 1 messages from four publishers while it acknowledges them and
// sends PINGREQs without pause: every packet it sends makes mochi look
// for held-back messages (Inflight.NextImmediate, two nested read locks)
// while the publishers' deliveries take the write lock. With mochi's own
// flow control that deadlocks the subscriber and its publishers sooner or
// later; with the window nothing of it runs. It passes if every publish is
// acknowledged within the deadline.
func TestInflightLockStressNoRace(t *testing.T) {
	b := startBroker(t, testRates+"  publish: {per_connection: {messages: 1000000/s, bytes: 1GiB/s}, per_ip: {messages: 1000000/s, bytes: 1GiB/s}}\n", brokerOpts{})
	conn := connectReceiveMax(t, b.addr, "pinger", 60000)
	writeRaw(t, conn, rawSubscribeV5(1, 1, "stress/#"))
	if ack := readPacket(t, conn); ack[0] != 0x90 {
		t.Fatalf("SUBACK % x", ack)
	}
	stop := make(chan struct{})
	defer close(stop)
	go func() { // acknowledge every delivery, with PINGREQs between
		pings := bytes.Repeat([]byte{0xc0, 0}, 32)
		for {
			p, err := readPacketErr(conn)
			if err != nil {
				return
			}
			out := pings
			if p[0]&0xf0 == 0x30 {
				topicLen := int(p[2])<<8 | int(p[3])
				out = append([]byte{0x40, 2, p[4+topicLen], p[5+topicLen]}, pings...)
			}
			select {
			case <-stop:
				return
			default:
			}
			rawMu.Lock()
			_, err = conn.Write(out)
			rawMu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	n := 4000
	if raceEnabled || testing.Short() {
		n = 300 // the race detector slows the broker tenfold; the full run is without it
	}
	errs := make(chan error, 4)
	for i := range 4 {
		p := mustV5(t, b.addr, "stress-pub-"+strconv.Itoa(i), "")
		go func() {
			for range n {
				if _, err := p.publish(t, "stress/x", 1, []byte("x")); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range 4 {
		select {
		case err := <-errs:
			if err != nil {
				t.Fatalf("a publisher stalled: %v\n%s", err, inflightStacks())
			}
		case <-time.After(60 * time.Second):
			t.Fatalf("the publishers stalled: the broker deadlocked\n%s", inflightStacks())
		}
	}
}

// inflightStacks returns the stacks of the goroutines that are in mochi's
// in-flight store, to tell a deadlock from a slow machine.
func inflightStacks() string {
	buf := make([]byte, 8<<20)
	var out []string
	for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
		if strings.Contains(g, "Inflight") {
			out = append(out, g)
		}
	}
	return strings.Join(out, "\n\n")
}

// connectReceiveMax connects an MQTT 5 client id (clean start) that sets
// Receive Maximum rm, and closes it when the test ends.
func connectReceiveMax(t *testing.T, addr, id string, rm uint16) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	vh := []byte{0, 4, 'M', 'Q', 'T', 'T', 5, 0x02, 0, 30, 3, 0x21, byte(rm >> 8), byte(rm)}
	vh = append(vh, 0, byte(len(id)))
	writeRaw(t, conn, framePacket(0x10, append(vh, id...)))
	if ack := readPacket(t, conn); ack[0] != 0x20 || ack[3] != 0 {
		t.Fatalf("CONNACK % x", ack)
	}
	return conn
}
