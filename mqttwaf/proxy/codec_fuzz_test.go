package proxy

import (
	"bytes"
	"reflect"
	"testing"

	"github.com/mqttwaf/mqttwaf/mqttwaf"
	"github.com/mqttwaf/mqttwaf/mqttwaf/frame"
)

// codecSeeds are one packet of every kind the codec decodes, per version,
// plus truncated and hostile ones. They seed FuzzDecode and run as
// TestCodecSeeds.
func codecSeeds() []struct {
	ver   byte
	dir   frame.Direction
	pkt   []byte
	valid bool // the frame validator accepts it
} {
	pub5 := publish{qos: 1, id: 9, topic: "a/b", payload: []byte("x"), subIDs: []int{3, 200}}
	pub5.props = mqttwaf.Properties{PayloadFormat: 1, PayloadFormatSet: true, MessageExpiry: 60, ContentType: "t",
		ResponseTopic: "r", CorrelationData: []byte{1}, User: []mqttwaf.UserProperty{{Key: "k", Value: "v"}}}
	pub4 := publish{qos: 2, id: 1, topic: "a", payload: []byte{0, 1}, retain: true, dup: true}
	conn5 := connect{protoName: "MQTT", level: 5, clean: true, keepalive: 10, clientID: "c",
		props: []prop{{propSessionExpiry, appendU32(nil, 30)}, {propTopicAliasMax, appendU16(nil, 5)}},
		will:  true, willQoS: 1, willRetain: true, willTopic: "w", willPayload: []byte("bye"),
		willProps: []prop{{propUser, appendString(appendString(nil, "a"), "b")}},
		hasUser:   true, username: "u", hasPass: true, password: []byte("p")}
	conn4 := connect{protoName: "MQTT", level: 4, keepalive: 60, clientID: "c4", hasUser: true, username: "u"}
	sub5 := subscribe{id: 4, props: []prop{{propSubscriptionID, appendVBI(nil, 7)}}, filters: []filter{{"a/#", 2}, {"b", 0x1D}}}
	sub4 := subscribe{id: 4, filters: []filter{{"a/+", 1}}}
	ack5 := connack{code: 0, sessionPresent: true, props: []prop{{propTopicAliasMax, appendU16(nil, 10)}, {propAssignedID, appendString(nil, "id")}}}
	sa5 := suback{id: 4, props: []prop{{propReasonString, appendString(nil, "r")}}, codes: []byte{0, 0x87}}
	type seed = struct {
		ver   byte
		dir   frame.Direction
		pkt   []byte
		valid bool
	}
	s := []seed{
		{5, frame.FromServer, pub5.encode(5), true}, // subscription identifiers: server to client
		{4, frame.FromClient, pub4.encode(4), true},
		{5, frame.FromClient, conn5.encode(), true},
		{4, frame.FromClient, conn4.encode(), true},
		{5, frame.FromClient, sub5.encode(5, []bool{true, true}), true},
		{4, frame.FromClient, sub4.encode(4, []bool{true}), true},
		{5, frame.FromServer, ack5.encode(5), true},
		{4, frame.FromServer, []byte{0x20, 2, 0, 0}, true},
		{5, frame.FromServer, sa5.encode(5), true},
		{5, frame.FromClient, []byte{0xA2, 6, 0, 1, 0, 0, 1, 'a'}, true}, // UNSUBSCRIBE
		{5, frame.FromClient, ack(5, frame.TypePubrel, 3, 0), true},
		// For the 3.1.1 translation: what an MQTT 5 broker sends that
		// 3.1.1 has no room for, and 3.1.1 client packets to upgrade.
		{5, frame.FromServer, []byte{0xB0, 6, 0, 2, 0, 0, 0x11, 0x87}, true},                          // UNSUBACK with reason codes
		{5, frame.FromServer, []byte{0x40, 8, 0, 3, 0x97, 4, 0x1F, 0, 1, 'q'}, true},                  // PUBACK 0x97 with a reason string
		{5, frame.FromServer, []byte{0x62, 3, 0, 3, 0x92}, true},                                      // PUBREL 0x92
		{5, frame.FromServer, []byte{0x20, 3, 0, 0x87, 0}, true},                                      // CONNACK refusal
		{5, frame.FromServer, []byte{0x20, 3, 0, 0x84, 0}, true},                                      // unsupported protocol version
		{5, frame.FromServer, []byte{0x20, 12, 1, 0, 9, 0x24, 1, 0x25, 0, 0x13, 0, 5, 0x2A, 0}, true}, // session present, broker limits
		{5, frame.FromServer, []byte{0xE0, 2, 0x8E, 0}, true},                                         // DISCONNECT session taken over
		{5, frame.FromServer, []byte{0x90, 6, 0, 1, 0, 1, 0x87, 0xA2}, true},                          // SUBACK with failures
		{4, frame.FromClient, []byte{0xA2, 5, 0, 7, 0, 1, 'a'}, true},                                 // UNSUBSCRIBE
		{4, frame.FromClient, []byte{0x62, 2, 0, 7}, true},                                            // PUBREL
		{4, frame.FromClient, []byte{0xC0, 0}, true},                                                  // PINGREQ
		{4, frame.FromClient, []byte{0xE0, 0}, true},                                                  // DISCONNECT
		{4, frame.FromClient, (&connect{protoName: "MQTT", level: 4, keepalive: 5, clientID: "p", will: true, // persistent, with a will
			willQoS: 2, willTopic: "w", willPayload: []byte("x"), hasUser: true, username: "u", hasPass: true, password: []byte("p")}).encode(), true},
		// Hostile: truncated, overrunning lengths, unknown properties.
		{5, frame.FromClient, []byte{0x32, 5, 0, 9, 'a'}, false},
		{5, frame.FromClient, []byte{0x30, 4, 0, 1, 'a', 7}, false},
		{5, frame.FromClient, []byte{0x30, 5, 0, 1, 'a', 1, 0xFF}, false},
		{5, frame.FromClient, []byte{0x10, 3, 0, 4, 'M'}, false},
		{5, frame.FromClient, []byte{0x82, 0x08, 0, 1, 0, 0, 3, 'a', '/', 'b'}, false},
		{5, frame.FromServer, []byte{0x90, 3, 0, 1, 9}, false},
		{4, frame.FromClient, []byte{0x30}, false},
		{4, frame.FromClient, nil, false},
	}
	return s
}

// decodeAll runs the decoder for pkt's type and, when it succeeds,
// checks that re-encoding and decoding again gives the same packet.
func decodeAll(t *testing.T, ver byte, pkt []byte, valid bool) error {
	if len(pkt) == 0 {
		_, err := decodePublish(ver, pkt)
		return err
	}
	switch pkt[0] >> 4 {
	case frame.TypeConnect:
		c, err := decodeConnect(pkt)
		if valid && err == nil {
			again, err2 := decodeConnect(c.encode())
			if err2 != nil || !reflect.DeepEqual(norm(c), norm(again)) {
				t.Fatalf("CONNECT round trip: %+v -> %+v (%v)", c, again, err2)
			}
		}
		return err
	case frame.TypeConnack:
		c, err := decodeConnack(ver, pkt)
		if valid && err == nil && ver == 5 {
			again, err2 := decodeConnack(ver, c.encode(ver))
			if err2 != nil || !reflect.DeepEqual(c, again) {
				t.Fatalf("CONNACK round trip: %+v -> %+v (%v)", c, again, err2)
			}
		}
		return err
	case frame.TypePublish:
		p, err := decodePublish(ver, pkt)
		if valid && err == nil && p.alias == 0 {
			again, err2 := decodePublish(ver, p.encode(ver))
			if err2 != nil || !reflect.DeepEqual(p.message(), again.message()) || p.id != again.id || p.dup != again.dup ||
				!reflect.DeepEqual(p.subIDs, again.subIDs) {
				t.Fatalf("PUBLISH round trip: %+v -> %+v (%v)", p, again, err2)
			}
		}
		return err
	case frame.TypeSubscribe:
		s, err := decodeSubscribe(ver, pkt)
		if valid && err == nil {
			keep := make([]bool, len(s.filters))
			for i := range keep {
				keep[i] = true
			}
			if again := s.encode(ver, keep); !bytes.Equal(again, pkt) {
				t.Fatalf("SUBSCRIBE re-encoded %x, was %x", again, pkt)
			}
			for i := range s.filters {
				_ = s.subscriptionOf(i)
			}
		}
		return err
	case frame.TypeSuback:
		s, err := decodeSuback(ver, pkt)
		if valid && err == nil {
			if again := s.encode(ver); !bytes.Equal(again, pkt) {
				t.Fatalf("SUBACK re-encoded %x, was %x", again, pkt)
			}
		}
		return err
	case frame.TypeUnsubscribe:
		_, err := decodeUnsubscribe(ver, pkt)
		return err
	case frame.TypePuback, frame.TypePubrec, frame.TypePubrel, frame.TypePubcomp:
		_, err := packetID(pkt)
		return err
	}
	return nil // relayed as they are: never decoded
}

// norm makes nil and empty slices compare equal.
func norm(c connect) connect {
	if len(c.props) == 0 {
		c.props = nil
	}
	if len(c.willProps) == 0 {
		c.willProps = nil
	}
	if len(c.willPayload) == 0 {
		c.willPayload = nil
	}
	if len(c.password) == 0 {
		c.password = nil
	}
	return c
}

func TestCodecSeeds(t *testing.T) {
	for i, s := range codecSeeds() {
		valid := frame.Validate(s.ver, s.dir, s.pkt) == nil
		if valid != s.valid {
			t.Errorf("seed %d %x: validator says valid=%v, the table %v", i, s.pkt, valid, s.valid)
		}
		err := decodeAll(t, s.ver, s.pkt, valid)
		if valid && err != nil {
			t.Errorf("seed %d %x: valid, but the codec refuses it: %v", i, s.pkt, err)
		}
		if valid {
			translateAll(t, s.ver, s.dir, s.pkt)
		}
	}
}

// FuzzDecode: whatever the bytes, the decoders never panic; whatever the
// frame validator accepts, they decode, and what they decode re-encodes to
// the same packet; and the 3.1.1 translation (translateAll) turns every
// valid packet into a valid one of the other version with the same meaning.
//
//	go test -run '^$' -fuzz FuzzDecode -fuzztime 1m ./proxy/
func FuzzDecode(f *testing.F) {
	for _, s := range codecSeeds() {
		f.Add(s.ver, s.dir == frame.FromServer, s.pkt)
	}
	f.Fuzz(func(t *testing.T, ver byte, fromServer bool, pkt []byte) {
		ver = 4 + ver%2
		dir := frame.FromClient
		if fromServer {
			dir = frame.FromServer
		}
		valid := frame.Validate(ver, dir, pkt) == nil
		if err := decodeAll(t, ver, pkt, valid); valid && err != nil {
			t.Fatalf("valid packet %x refused by the codec: %v", pkt, err)
		}
		if valid {
			translateAll(t, ver, dir, pkt)
		}
	})
}

// translateAll checks the 3.1.1 translation of a packet the validator
// accepted: an MQTT 5 broker packet downgraded, or a 3.1.1 client packet
// upgraded, is valid in the other version and means the same.
func translateAll(t *testing.T, ver byte, dir frame.Direction, pkt []byte) {
	typ := pkt[0] >> 4
	switch {
	case ver == 5 && dir == frame.FromServer:
		out, err := downgrade(4, pkt)
		if err != nil {
			if p, _ := decodePublish(5, pkt); typ == frame.TypePublish && p.topic == "" {
				return // an alias, which the proxy refuses before it would downgrade
			}
			t.Fatalf("downgrade %x: %v", pkt, err)
		}
		if out == nil {
			if typ != frame.TypeDisconnect && typ != frame.TypeAuth {
				t.Fatalf("downgrade %x: dropped", pkt)
			}
			return
		}
		if err := frame.Validate(4, frame.FromServer, out); err != nil {
			t.Fatalf("downgrade %x -> %x: not valid 3.1.1: %v", pkt, out, err)
		}
		if out[0]>>4 != typ {
			t.Fatalf("downgrade %x -> %x: another packet type", pkt, out)
		}
		switch typ {
		case frame.TypePublish:
			a, _ := decodePublish(5, pkt)
			b, _ := decodePublish(4, out)
			if a.topic != b.topic || a.qos != b.qos || a.id != b.id || a.retain != b.retain || a.dup != b.dup || !bytes.Equal(a.payload, b.payload) {
				t.Fatalf("downgrade PUBLISH %+v -> %+v", a, b)
			}
		case frame.TypeSuback:
			a, _ := decodeSuback(5, pkt)
			b, _ := decodeSuback(4, out)
			for i := range a.codes {
				if a.id != b.id || len(b.codes) != len(a.codes) || (a.codes[i] < 0x80) != (b.codes[i] < 0x80) {
					t.Fatalf("downgrade SUBACK %+v -> %+v", a, b)
				}
			}
		case frame.TypeConnack:
			a, _ := decodeConnack(5, pkt)
			b, _ := decodeConnack(4, out)
			if (a.code == 0) != (b.code == 0) || a.sessionPresent != b.sessionPresent && a.code == 0 {
				t.Fatalf("downgrade CONNACK %+v -> %+v", a, b)
			}
		default:
			if a, _ := packetID(pkt); typ != frame.TypePingresp && len(out) != 4 {
				t.Fatalf("downgrade %x -> %x: want the packet id %d alone", pkt, out, a)
			}
		}
	case ver == 4 && dir == frame.FromClient:
		var out []byte
		switch typ {
		case frame.TypeConnect:
			c, _ := decodeConnect(pkt)
			up := c
			upgradeConnect(&up, 60)
			out = up.encode()
			again, err := decodeConnect(out)
			if err != nil || again.clientID != c.clientID || again.username != c.username || !bytes.Equal(again.password, c.password) ||
				again.clean != c.clean || again.willTopic != c.willTopic || !bytes.Equal(again.willPayload, c.willPayload) {
				t.Fatalf("upgrade CONNECT %+v -> %+v (%v)", c, again, err)
			}
		case frame.TypePublish:
			p, _ := decodePublish(4, pkt)
			out = p.encode(5)
			if again, err := decodePublish(5, out); err != nil || !reflect.DeepEqual(p.message(), again.message()) || p.id != again.id {
				t.Fatalf("upgrade PUBLISH %+v -> %+v (%v)", p, again, err)
			}
		default:
			var err error
			if out, err = upgrade(pkt); err != nil {
				t.Fatalf("upgrade %x: %v", pkt, err)
			}
		}
		if err := frame.Validate(5, frame.FromClient, out); err != nil {
			t.Fatalf("upgrade %x -> %x: not valid MQTT 5: %v", pkt, out, err)
		}
		switch typ {
		case frame.TypeSubscribe:
			a, _ := decodeSubscribe(4, pkt)
			b, _ := decodeSubscribe(5, out)
			if !reflect.DeepEqual(a.filters, b.filters) || a.id != b.id {
				t.Fatalf("upgrade SUBSCRIBE %+v -> %+v", a, b)
			}
		case frame.TypeUnsubscribe:
			a, _ := decodeUnsubscribe(4, pkt)
			b, _ := decodeUnsubscribe(5, out)
			if !reflect.DeepEqual(a, b) {
				t.Fatalf("upgrade UNSUBSCRIBE %q -> %q", a, b)
			}
		}
	}
}
