package hooks

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/mqttwaf/mqttwaf/mqttwaf"
)

// TestMalformedPacketEndsOnlyItsConnection: over TCP, TLS and WebSocket,
// the mochi #501 SUBSCRIBE after a valid MQTT 5 CONNECT gets DISCONNECT
// 0x81 and closes that connection; a connections.protocol event names the
// packet and the offset; the broker keeps serving a client connected
// before and one connecting after.
func TestMalformedPacketEndsOnlyItsConnection(t *testing.T) {
	b := startBroker(t, "", brokerOpts{tls: true, ws: true})
	bystander := mustV5(t, b.addr, "bystander", "")
	bystander.subscribe(t, 1, "x/#")
	dials := []struct {
		name string
		dial func() net.Conn
	}{
		{"tcp", func() net.Conn {
			c, err := net.Dial("tcp", b.addr)
			if err != nil {
				t.Fatal(err)
			}
			return c
		}},
		{"tls", func() net.Conn {
			c, err := tls.Dial("tcp", b.tlsAddr, &tls.Config{RootCAs: b.tlsCA, ServerName: "127.0.0.1"})
			if err != nil {
				t.Fatal(err)
			}
			return c
		}},
		{"ws", func() net.Conn {
			ws, _, err := websocket.DefaultDialer.Dial("ws://"+b.wsAddr+"/", map[string][]string{"Sec-WebSocket-Protocol": {"mqtt"}})
			if err != nil {
				t.Fatal(err)
			}
			return mqttwaf.WebSocketConn(ws)
		}},
	}
	for i, d := range dials {
		t.Run(d.name, func(t *testing.T) {
			conn := d.dial()
			defer conn.Close()
			id := "attacker-" + d.name
			writeRaw(t, conn, rawConnect(5, id))
			if ack := readPacket(t, conn); len(ack) < 4 || ack[0] != 0x20 || ack[3] != 0 {
				t.Fatalf("CONNACK % x", ack)
			}
			writeRaw(t, conn, mochi501)
			if got, want := readPacket(t, conn), []byte{0xe0, 0x02, 0x81, 0x00}; !bytes.Equal(got, want) {
				t.Fatalf("got % x, want DISCONNECT 0x81 (% x)", got, want)
			}
			_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			if n, err := io.Copy(io.Discard, conn); n != 0 || err != nil && !isReset(err) {
				t.Fatalf("after the DISCONNECT: %d bytes, %v; want the connection closed", n, err)
			}
			b.events.waitCount(t, "connections.protocol", "malformed_packet", i+1, 5*time.Second)
			var e mqttwaf.Event
			for _, ev := range b.events.all() {
				if ev.Rule == "connections.protocol" && ev.ClientID == id {
					e = ev
				}
			}
			if e.Code != mqttwaf.CodeMalformedPacket || e.Listener != d.name || !strings.Contains(e.Detail, "SUBSCRIBE packet refused at byte 8") {
				t.Fatalf("event %+v", e)
			}
			pub := mustV5(t, b.addr, "pub-"+d.name, "")
			if _, err := pub.publish(t, "x/"+d.name, 1, []byte("still serving")); err != nil {
				t.Fatal(err)
			}
			if m := expectMsg(t, bystander.msgs, 5*time.Second); string(m.Payload) != "still serving" {
				t.Fatalf("bystander got %q", m.Payload)
			}
		})
	}
}

// isReset reports the ways a peer's close shows up: a TCP reset, or a
// WebSocket closed without a close frame.
func isReset(err error) bool {
	var ce *websocket.CloseError
	return strings.Contains(err.Error(), "reset by peer") || errors.As(err, &ce)
}

// TestFrameRefusals: what a client gets for a packet the validator refuses,
// before and after CONNECT, for both protocol versions, and the event.
func TestFrameRefusals(t *testing.T) {
	b := startBroker(t, "broker: {max_packet_size: 1KiB}\n", brokerOpts{})
	for _, tc := range []struct {
		name    string
		connect byte   // 0: none, 4 or 5: a valid CONNECT first
		packet  []byte // what the client sends
		reply   []byte // what it gets before the connection closes (nil: nothing)
		rule    string
		reason  string
	}{
		// MQTT 5 section 2.2.2.2: an identifier not valid for the packet
		// type makes the packet malformed.
		{"v5 CONNECT with a property of SUBSCRIBE", 0,
			[]byte{0x10, 0x0f, 0, 4, 'M', 'Q', 'T', 'T', 5, 0x02, 0, 30, 0x02, 0x0b, 0x01, 0, 0},
			[]byte{0x20, 0x03, 0x00, 0x81, 0x00}, "connections.protocol", "malformed_packet"},
		{"v5 CONNECT with receive maximum 0", 0,
			[]byte{0x10, 0x10, 0, 4, 'M', 'Q', 'T', 'T', 5, 0x02, 0, 30, 0x03, 0x21, 0, 0, 0, 0},
			[]byte{0x20, 0x03, 0x00, 0x82, 0x00}, "connections.protocol", "protocol_error"},
		{"unknown protocol level", 0,
			[]byte{0x10, 0x0c, 0, 4, 'M', 'Q', 'T', 'T', 9, 0x02, 0, 30, 0, 0},
			[]byte{0x20, 0x02, 0x00, 0x01}, "connections.protocol", "unsupported_protocol_version"},
		{"PUBLISH before CONNECT", 0, []byte{0x30, 0x03, 0, 1, 'a'}, nil, "connections.protocol", "first_packet_not_connect"},
		{"v3.1.1 SUBSCRIBE with reserved flags 0000", 4, []byte{0x80, 0x06, 0, 1, 0, 1, 'a', 0}, nil, "connections.protocol", "malformed_packet"},
		{"v3.1.1 second CONNECT", 4, rawConnect(4, "again"), nil, "connections.protocol", "second_connect"},
		{"v5 PUBLISH QoS 3", 5, []byte{0x36, 0x05, 0, 1, 'a', 0, 1}, []byte{0xe0, 0x02, 0x81, 0x00}, "connections.protocol", "malformed_packet"},
		{"v5 PUBLISH over the packet size", 5, []byte{0x30, 0xff, 0x7f}, []byte{0xe0, 0x02, 0x95, 0x00}, "connections.max_packet_size", "packet_too_large"},
		{"v5 topic with NUL", 5, []byte{0x30, 0x06, 0, 3, 'a', 0, 'b', 0}, []byte{0xe0, 0x02, 0x81, 0x00}, "connections.protocol", "malformed_packet"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := b.events.count(tc.rule, tc.reason)
			conn, err := net.Dial("tcp", b.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if tc.connect != 0 {
				writeRaw(t, conn, rawConnect(tc.connect, ""))
				if ack := readPacket(t, conn); len(ack) < 4 || ack[0] != 0x20 || ack[3] != 0 {
					t.Fatalf("CONNACK % x", ack)
				}
			}
			writeRaw(t, conn, tc.packet)
			_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			got, err := io.ReadAll(conn)
			if err != nil && !isReset(err) {
				t.Fatalf("read: %v (the connection must close)", err)
			}
			if !bytes.Equal(got, tc.reply) {
				t.Fatalf("got % x, want % x", got, tc.reply)
			}
			b.events.waitCount(t, tc.rule, tc.reason, before+1, 5*time.Second)
		})
	}
}
