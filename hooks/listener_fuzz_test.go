package hooks

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/mqttwaf/mqttwaf/mqttwaf"
)

// The wire fuzz target: arbitrary bytes, before or after a valid CONNECT
// of either protocol version, through a real listener into a real mochi
// server with the WAF. Whatever the bytes, the broker must not panic (a
// recovered panic in a connection goroutine counts as a failure: the frame
// validator is there so mochi's decoder never sees what makes it panic),
// must close the connection when the peer goes away, must keep serving
// other clients, and must keep its memory bounded.

// wireSeed is one input: Mode says what precedes Data on the connection.
type wireSeed struct {
	name string
	mode byte // 0: nothing (Data is the first packet); 4: an MQTT 3.1.1 CONNECT; 5: an MQTT 5 CONNECT
	data []byte
}

// mochiPacket encodes pk with mochi's own encoder, for protocol version v.
func mochiPacket(v byte, pk packets.Packet) []byte {
	b, err := encodeMochi(v, pk)
	if err != nil {
		panic(err)
	}
	return b
}

// encodeMochi encodes a packet of any type with mochi's encoder.
func encodeMochi(v byte, pk packets.Packet) ([]byte, error) {
	pk.ProtocolVersion = v
	var buf bytes.Buffer
	var err error
	switch pk.FixedHeader.Type {
	case packets.Connect:
		err = pk.ConnectEncode(&buf)
	case packets.Connack:
		err = pk.ConnackEncode(&buf)
	case packets.Publish:
		err = pk.PublishEncode(&buf)
	case packets.Puback:
		err = pk.PubackEncode(&buf)
	case packets.Pubrec:
		err = pk.PubrecEncode(&buf)
	case packets.Pubrel:
		err = pk.PubrelEncode(&buf)
	case packets.Pubcomp:
		err = pk.PubcompEncode(&buf)
	case packets.Subscribe:
		err = pk.SubscribeEncode(&buf)
	case packets.Suback:
		err = pk.SubackEncode(&buf)
	case packets.Unsubscribe:
		err = pk.UnsubscribeEncode(&buf)
	case packets.Unsuback:
		err = pk.UnsubackEncode(&buf)
	case packets.Pingreq:
		err = pk.PingreqEncode(&buf)
	case packets.Pingresp:
		err = pk.PingrespEncode(&buf)
	case packets.Disconnect:
		err = pk.DisconnectEncode(&buf)
	case packets.Auth:
		err = pk.AuthEncode(&buf)
	default:
		err = fmt.Errorf("no encoder for packet type %d", pk.FixedHeader.Type)
	}
	return buf.Bytes(), err
}

// wireSeeds: one valid packet of every type a client sends, for both
// protocol versions, a CONNECT for the "before CONNECT" mode, and every
// input that ever crashed or stalled the broker (found by the fuzzer or
// reported), kept as permanent regression seeds.
func wireSeeds() []wireSeed {
	var seeds []wireSeed
	for _, v := range []byte{4, 5} {
		props := packets.Properties{}
		if v == 5 {
			props.User = []packets.UserProperty{{Key: "k", Val: "v"}}
		}
		fh := func(t byte) packets.FixedHeader { return packets.FixedHeader{Type: t} }
		pub := func(qos byte) packets.Packet {
			return packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: qos}, TopicName: "fz/t", PacketID: uint16(qos), Payload: []byte(`{"a":1}`), Properties: props}
		}
		for _, s := range []struct {
			name string
			pk   packets.Packet
		}{
			{"publish qos0", pub(0)},
			{"publish qos1", pub(1)},
			{"publish qos2", pub(2)},
			{"puback", packets.Packet{FixedHeader: fh(packets.Puback), PacketID: 1}},
			{"pubrec", packets.Packet{FixedHeader: fh(packets.Pubrec), PacketID: 1}},
			{"pubrel", packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pubrel, Qos: 1}, PacketID: 2}},
			{"pubcomp", packets.Packet{FixedHeader: fh(packets.Pubcomp), PacketID: 1}},
			{"subscribe", packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, PacketID: 3,
				Filters: packets.Subscriptions{{Filter: "fz/#", Qos: 1}, {Filter: "$share/g/fz/+", Qos: 0}}, Properties: props}},
			{"unsubscribe", packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Unsubscribe, Qos: 1}, PacketID: 4,
				Filters: packets.Subscriptions{{Filter: "fz/#"}}, Properties: props}},
			{"pingreq", packets.Packet{FixedHeader: fh(packets.Pingreq)}},
			{"disconnect", packets.Packet{FixedHeader: fh(packets.Disconnect)}},
		} {
			seeds = append(seeds, wireSeed{name: s.name + " v" + string('0'+v), mode: v, data: mochiPacket(v, s.pk)})
		}
		seeds = append(seeds, wireSeed{name: "connect v" + string('0'+v), mode: 0, data: rawConnect(v, "fz-first")})
	}
	seeds = append(seeds,
		wireSeed{name: "auth v5", mode: 5, data: mochiPacket(5, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Auth}, ReasonCode: 0x18,
			Properties: packets.Properties{AuthenticationMethod: "x"}})},
		// mochi issue #501: a v5 SUBSCRIBE without its options byte panics
		// SubscribeDecode (index out of range [6] with length 6).
		wireSeed{name: "mochi#501 subscribe without options", mode: 5, data: []byte{0x82, 0x06, 0x00, 0x01, 0x00, 0x00, 0x01, 0x61}},
		wireSeed{name: "second connect", mode: 4, data: rawConnect(4, "again")},
		wireSeed{name: "fixed header announcing 256 MB", mode: 5, data: []byte{0x30, 0xff, 0xff, 0xff, 0x7f}},
		wireSeed{name: "truncated publish", mode: 4, data: []byte{0x30, 0x05, 0x00, 0x09, 'a'}},
		// A Receive Maximum of 1, a subscription to its own QoS 1 messages
		// and two of them: the second waits in the send window
		// (sendwindow.go) until the PUBACK.
		wireSeed{name: "receive maximum 1, self-delivery", mode: 0, data: bytes.Join([][]byte{
			framePacket(0x10, []byte{0, 4, 'M', 'Q', 'T', 'T', 5, 0x02, 0, 30, 3, 0x21, 0, 1, 0, 2, 'r', 'm'}),
			rawSubscribeV5(1, 1, "fz/#"),
			rawPublishProps(1, 1, "fz/t", nil, []byte("a")),
			rawPublishProps(1, 2, "fz/t", nil, []byte("b")),
			{0x40, 2, 0, 1},
		}, nil)},
	)
	return seeds
}

// wireBroker is a broker for the wire tests: anything goes topic-wise, no
// rates, short CONNECT deadline, and a sink that counts instead of keeping
// events (the fuzzer runs millions of inputs).
type wireBroker struct {
	*testBroker
	panics    atomic.Int64
	lastPanic atomic.Pointer[string]
}

func startWireBroker(tb testing.TB) *wireBroker {
	tb.Helper()
	wb := &wireBroker{}
	p, err := mqttwaf.ParsePolicy([]byte(openAccess+`events: {max_per_second: 1000000}
connections: {connect_timeout: 2s, max_connections_per_ip: 10000}
broker: {max_packet_size: 64KiB}
rates: {off: true}
`), "wire.yaml")
	if err != nil {
		tb.Fatal(err)
	}
	// Count panics; keep no other event.
	sink := mqttwaf.SinkFunc(func(e mqttwaf.Event) {
		if e.Rule == "broker.panic" {
			d := e.Detail
			wb.lastPanic.Store(&d)
			wb.panics.Add(1)
		}
	})
	wb.testBroker = startBrokerWith(tb, p, brokerOpts{sink: sink})
	return wb
}

// run feeds one input through a fresh connection and checks the broker.
func (wb *wireBroker) run(tb testing.TB, mode byte, data []byte) {
	tb.Helper()
	before := wb.panics.Load()
	conn, err := net.DialTimeout("tcp", wb.addr, 5*time.Second)
	if err != nil {
		tb.Fatalf("dial: %v", err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if mode == 4 || mode == 5 {
		if _, err := conn.Write(rawConnect(mode, "")); err != nil {
			tb.Fatalf("write CONNECT: %v", err)
		}
		if ack, err := readPacketErr(conn); err != nil || len(ack) < 4 || ack[0] != 0x20 || ack[3] != 0 {
			tb.Fatalf("CONNACK % x, %v", ack, err)
		}
	}
	_, _ = conn.Write(data) // the broker may close early
	_ = conn.(*net.TCPConn).CloseWrite()
	// The broker must end the connection once the peer is gone (or at the
	// CONNECT deadline): read until EOF or reset.
	if _, err := io.Copy(io.Discard, conn); errors.Is(err, os.ErrDeadlineExceeded) {
		tb.Fatalf("broker did not close the connection after EOF: %v", err)
	}
	if wb.panics.Load() > before {
		tb.Fatalf("a connection goroutine panicked: %s", *wb.lastPanic.Load())
	}
	// Still serving: a new client completes CONNECT.
	live, err := net.DialTimeout("tcp", wb.addr, 5*time.Second)
	if err != nil {
		tb.Fatalf("broker no longer accepts: %v", err)
	}
	defer live.Close()
	_ = live.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := live.Write(rawConnect(5, "")); err != nil {
		tb.Fatalf("liveness CONNECT: %v", err)
	}
	if ack, err := readPacketErr(live); err != nil || len(ack) < 4 || ack[0] != 0x20 || ack[3] != 0 {
		tb.Fatalf("liveness CONNACK % x, %v", ack, err)
	}
}

// readPacketErr reads one whole MQTT packet.
func readPacketErr(conn io.Reader) ([]byte, error) {
	hdr := make([]byte, 1, 5)
	if _, err := io.ReadFull(conn, hdr); err != nil {
		return nil, err
	}
	n, mult := 0, 1
	for i := 0; ; i++ {
		var c [1]byte
		if _, err := io.ReadFull(conn, c[:]); err != nil {
			return nil, err
		}
		hdr = append(hdr, c[0])
		n += int(c[0]&0x7f) * mult
		mult *= 128
		if c[0]&0x80 == 0 || i == 3 {
			break
		}
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(conn, body); err != nil {
		return nil, err
	}
	return append(hdr, body...), nil
}

// TestWireSeeds runs every wire seed through a real broker: part of the
// normal test suite, so a crasher found once stays fixed.
func TestWireSeeds(t *testing.T) {
	wb := startWireBroker(t)
	for _, s := range wireSeeds() {
		t.Run(s.name, func(t *testing.T) { wb.run(t, s.mode, s.data) })
	}
}

// FuzzWire is the coverage-guided wire fuzzer:
//
//	go test -run '^$' -fuzz FuzzWire -fuzztime 10m ./hooks/
//
// Its corpus in testdata/fuzz/FuzzWire runs with the normal tests.
func FuzzWire(f *testing.F) {
	for _, s := range wireSeeds() {
		f.Add(s.mode, s.data)
	}
	wb := startWireBroker(f)
	var runs atomic.Int64
	f.Fuzz(func(t *testing.T, mode byte, data []byte) {
		switch mode {
		case 0, 4, 5:
		default:
			mode = []byte{0, 4, 5}[mode%3]
		}
		wb.run(t, mode, data)
		if runs.Add(1)%256 == 0 {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > 512<<20 {
				t.Fatalf("heap in use %d MiB after %d inputs", ms.HeapInuse>>20, runs.Load())
			}
		}
	})
}
