package hooks

// Tests of the strict frame validator (mqttwaf/frame) against mochi-mqtt's
// own packet decoders: whatever frame.Validate accepts, mochi must decode
// without panicking, and whatever mochi (and paho) encode, frame.Validate
// must accept.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	p5 "github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"
	mqtt3 "github.com/eclipse/paho.mqtt.golang"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/mqttwaf/mqttwaf/mqttwaf/frame"
)

// mochi501 is the SUBSCRIBE of mochi issue #501: packet id 1, property
// length 0, filter "a" and no subscription options byte.
var mochi501 = []byte{0x82, 0x06, 0x00, 0x01, 0x00, 0x00, 0x01, 0x61}

// mochiDecode decodes pkt (a whole packet) the way mochi's
// Client.ReadFixedHeader and Client.ReadPacket do for a client of protocol
// version ver, then, for a packet from a client, runs the validation
// mochi's server runs on it. It reports a panic instead of crashing.
func mochiDecode(pkt []byte, ver byte, dir frame.Direction) (pk packets.Packet, panicked any, err error) {
	server := dir == frame.FromClient
	defer func() {
		if r := recover(); r != nil {
			panicked = r
		}
	}()
	if len(pkt) == 0 {
		return pk, nil, io.EOF
	}
	var fh packets.FixedHeader
	if err := fh.Decode(pkt[0]); err != nil {
		return pk, nil, err
	}
	br := bufio.NewReader(bytes.NewReader(pkt[1:]))
	rem, n, err := packets.DecodeLength(br)
	if err != nil {
		return pk, nil, err
	}
	fh.Remaining = rem
	if 1+n+rem > len(pkt) {
		return pk, nil, io.ErrUnexpectedEOF
	}
	pk.FixedHeader = fh
	pk.ProtocolVersion = ver
	if fh.Type == packets.Connect {
		pk.ProtocolVersion = 0 // mochi reads the CONNECT before it knows the version
	}
	px := append([]byte{}, pkt[1+n:1+n+rem]...)
	switch fh.Type {
	case packets.Connect:
		err = pk.ConnectDecode(px)
		if err == nil && server {
			if code := pk.ConnectValidate(); code != packets.CodeSuccess {
				err = code
			}
		}
	case packets.Disconnect:
		err = pk.DisconnectDecode(px)
	case packets.Connack:
		err = pk.ConnackDecode(px)
	case packets.Publish:
		err = pk.PublishDecode(px)
		if err == nil && server {
			if code := pk.PublishValidate(65535); code != packets.CodeSuccess {
				err = code
			} else if mqtt.IsValidFilter(pk.TopicName, true) {
				// What mochi's processPublish then does with the topic.
				idx := mqtt.NewTopicsIndex()
				idx.Subscribe("c", packets.Subscription{Filter: "#"})
				idx.Subscribe("d", packets.Subscription{Filter: "$share/g/+/#"})
				_ = idx.Subscribers(pk.TopicName)
				idx.RetainMessage(pk)
				_ = idx.Messages("#")
			}
		}
	case packets.Puback:
		err = pk.PubackDecode(px)
	case packets.Pubrec:
		err = pk.PubrecDecode(px)
	case packets.Pubrel:
		err = pk.PubrelDecode(px)
	case packets.Pubcomp:
		err = pk.PubcompDecode(px)
	case packets.Subscribe:
		err = pk.SubscribeDecode(px)
		if err == nil && server {
			if code := pk.SubscribeValidate(); code != packets.CodeSuccess {
				err = code
			}
			// What mochi's processSubscribe then does with the filters.
			idx := mqtt.NewTopicsIndex()
			idx.RetainMessage(packets.Packet{TopicName: "a/b", Payload: []byte{1}, FixedHeader: packets.FixedHeader{Type: packets.Publish, Retain: true}})
			for _, sub := range pk.Filters {
				if mqtt.IsValidFilter(sub.Filter, false) {
					idx.Subscribe("c", sub)
					_ = idx.Messages(sub.Filter)
					_ = idx.Subscribers("a/b")
					idx.Unsubscribe(sub.Filter, "c")
				}
			}
		}
	case packets.Suback:
		err = pk.SubackDecode(px)
	case packets.Unsubscribe:
		err = pk.UnsubscribeDecode(px)
		if err == nil && server {
			if code := pk.UnsubscribeValidate(); code != packets.CodeSuccess {
				err = code
			}
			idx := mqtt.NewTopicsIndex()
			for _, sub := range pk.Filters {
				idx.Subscribe("c", sub)
				idx.Unsubscribe(sub.Filter, "c")
			}
		}
	case packets.Unsuback:
		err = pk.UnsubackDecode(px)
	case packets.Pingreq, packets.Pingresp:
	case packets.Auth:
		err = pk.AuthDecode(px)
		if err == nil && server {
			if code := pk.AuthValidate(); code != packets.CodeSuccess {
				err = code
			}
		}
	default:
		err = fmt.Errorf("invalid packet type; %v", pk.FixedHeader.Type)
	}
	if err == nil && server && !pk.ReasonCodeValid() {
		err = errors.New("reason code not valid for the packet type")
	}
	return pk, nil, err
}

// TestMochi501PanicsWithoutFrame pins the bug the validator exists for,
// and proves the harness catches panics: mochi v2.7.9's SubscribeDecode
// panics on mochi501 (if this test fails, mochi fixed issue #501), and
// frame.Validate refuses it.
func TestMochi501PanicsWithoutFrame(t *testing.T) {
	if _, p, _ := mochiDecode(mochi501, 5, frame.FromClient); p == nil {
		t.Errorf("mochi's decoder no longer panics on the #501 SUBSCRIBE; update the docs")
	} else {
		t.Logf("mochi panics: %v", p)
	}
	var e *frame.Error
	if err := frame.Validate(5, frame.FromClient, mochi501); !errors.As(err, &e) || e.Reason != frame.ReasonMalformed {
		t.Errorf("frame.Validate: %v", err)
	}
}

// FuzzFrameAgainstMochiDecoder: for arbitrary bytes taken as a packet (as
// they are, and re-framed: first byte kept, remaining length rewritten to
// fit the rest), of protocol version 4 or 5, in either direction: if
// frame.Validate accepts them, mochi's decoder for that packet type (and
// the validation mochi runs after it) must not panic. mochi returning an
// error is allowed.
func FuzzFrameAgainstMochiDecoder(f *testing.F) {
	for _, s := range mochiSeeds() {
		f.Add(s.ver, byte(s.dir), s.pkt)
	}
	f.Add(byte(5), byte(0), mochi501)
	// FuzzValidate's corpus has the same shape (version, direction, bytes)
	// and reaches every packet type and property.
	files, _ := filepath.Glob("../mqttwaf/frame/testdata/fuzz/FuzzValidate/*")
	for _, name := range files {
		if vals, err := readCorpusFile(name); err == nil && len(vals) == 3 {
			f.Add(vals[0][0], vals[1][0], vals[2])
		}
	}
	f.Fuzz(func(t *testing.T, ver, d byte, data []byte) {
		v := 4 + ver&1
		dir := frame.Direction(d & 1)
		check := func(pkt []byte) {
			if frame.Validate(v, dir, pkt) != nil {
				return
			}
			if _, p, _ := mochiDecode(pkt, v, dir); p != nil {
				t.Fatalf("frame accepted (v%d, %s) % X but mochi panicked: %v", v, dir, pkt, p)
			}
		}
		check(data)
		if len(data) > 0 {
			check(framePacket(data[0], data[1:]))
		}
	})
}

type mochiSeed struct {
	name string
	ver  byte
	dir  frame.Direction
	pkt  []byte
}

// mochiSeeds are packets encoded by mochi's own encoders, for MQTT 3.1.1
// and 5, with what a broker and its clients really put in them.
func mochiSeeds() []mochiSeed {
	user := []packets.UserProperty{{Key: "k", Val: "v"}, {Key: "k", Val: "v2"}}
	connect := func(ver byte) packets.Packet {
		pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, ProtocolVersion: ver,
			Connect: packets.ConnectParams{ProtocolName: []byte("MQTT"), Clean: true, Keepalive: 30, ClientIdentifier: "dev-1",
				WillFlag: true, WillQos: 1, WillRetain: true, WillTopic: "dev/1/status", WillPayload: []byte("offline"),
				UsernameFlag: true, Username: []byte("alice"), PasswordFlag: true, Password: []byte("s3cret")}}
		if ver == 5 {
			pk.Properties = packets.Properties{SessionExpiryInterval: 3600, SessionExpiryIntervalFlag: true, ReceiveMaximum: 20,
				TopicAliasMaximum: 10, MaximumPacketSize: 1 << 20, RequestProblemInfo: 1, RequestProblemInfoFlag: true,
				RequestResponseInfo: 1, AuthenticationMethod: "SCRAM-SHA-1", AuthenticationData: []byte("n,,n=user"), User: user}
			pk.Connect.WillProperties = packets.Properties{WillDelayInterval: 5, PayloadFormat: 1, PayloadFormatFlag: true,
				MessageExpiryInterval: 60, ContentType: "text/plain", ResponseTopic: "reply/1", CorrelationData: []byte{1}, User: user}
			pk.Mods.AllowResponseInfo = true
		}
		return pk
	}
	mods := packets.Mods{AllowResponseInfo: true}
	var out []mochiSeed
	for _, ver := range []byte{4, 5} {
		props := func(p packets.Properties) packets.Properties {
			if ver < 5 {
				return packets.Properties{}
			}
			return p
		}
		list := []struct {
			name string
			dir  frame.Direction
			pk   packets.Packet
		}{
			{"CONNECT", frame.FromClient, connect(ver)},
			{"CONNECT minimal", frame.FromClient, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, ProtocolVersion: ver,
				Connect: packets.ConnectParams{ProtocolName: []byte("MQTT"), Clean: true}}},
			{"CONNACK", frame.FromServer, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connack}, ProtocolVersion: ver, SessionPresent: true, Mods: mods,
				Properties: props(packets.Properties{SessionExpiryInterval: 60, SessionExpiryIntervalFlag: true, ReceiveMaximum: 1024,
					MaximumQos: 1, MaximumQosFlag: true, RetainAvailable: 1, RetainAvailableFlag: true, MaximumPacketSize: 65536,
					AssignedClientID: "auto-1", TopicAliasMaximum: 65535, ReasonString: "hi", User: user, WildcardSubAvailable: 1,
					WildcardSubAvailableFlag: true, SubIDAvailable: 1, SubIDAvailableFlag: true, SharedSubAvailable: 1,
					SharedSubAvailableFlag: true, ServerKeepAlive: 30, ServerKeepAliveFlag: true, ResponseInfo: "resp/",
					ServerReference: "other:1883", AuthenticationMethod: "m", AuthenticationData: []byte("d")})}},
			{"CONNACK refused", frame.FromServer, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connack}, ProtocolVersion: ver,
				ReasonCode: map[byte]byte{4: 5, 5: 0x87}[ver]}},
			{"PUBLISH qos0", frame.FromClient, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish}, ProtocolVersion: ver,
				TopicName: "a/b", Payload: []byte("hi")}},
			{"PUBLISH qos1", frame.FromServer, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1, Retain: true}, ProtocolVersion: ver,
				PacketID: 7, TopicName: "sensors/42/temp", Payload: bytes.Repeat([]byte{'x'}, 1024), Mods: mods,
				Properties: props(packets.Properties{PayloadFormat: 1, PayloadFormatFlag: true, MessageExpiryInterval: 30, ContentType: "json",
					ResponseTopic: "reply/1", CorrelationData: []byte{1, 2}, SubscriptionIdentifier: []int{1, 268435455}, User: user})}},
			{"PUBLISH qos2 dup alias", frame.FromClient, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 2, Dup: true}, ProtocolVersion: ver,
				PacketID: 65535, TopicName: "a", Payload: []byte{0}, Properties: props(packets.Properties{TopicAlias: 3, TopicAliasFlag: true})}},
			{"PUBACK", frame.FromClient, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, ProtocolVersion: ver, PacketID: 1}},
			{"PUBACK reason", frame.FromServer, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, ProtocolVersion: ver, PacketID: 1,
				ReasonCode: map[byte]byte{4: 0, 5: 0x87}[ver], Properties: props(packets.Properties{ReasonString: "denied", User: user})}},
			{"PUBREC", frame.FromServer, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pubrec}, ProtocolVersion: ver, PacketID: 2}},
			{"PUBREL", frame.FromClient, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pubrel, Qos: 1}, ProtocolVersion: ver, PacketID: 2}},
			{"PUBCOMP", frame.FromServer, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pubcomp}, ProtocolVersion: ver, PacketID: 2,
				ReasonCode: map[byte]byte{4: 0, 5: 0x92}[ver]}},
			{"SUBSCRIBE", frame.FromClient, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, ProtocolVersion: ver, PacketID: 3,
				Properties: props(packets.Properties{SubscriptionIdentifier: []int{42}, User: user}),
				Filters: packets.Subscriptions{{Filter: "a/+/c", Qos: 2, NoLocal: ver == 5, RetainAsPublished: ver == 5, RetainHandling: map[byte]byte{4: 0, 5: 2}[ver]},
					{Filter: "#", Qos: 1}, {Filter: "$share/g/x/#"}}}},
			{"SUBACK", frame.FromServer, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Suback}, ProtocolVersion: ver, PacketID: 3,
				ReasonCodes: []byte{0, 1, 2, 0x80}, Properties: props(packets.Properties{ReasonString: "r", User: user})}},
			{"UNSUBSCRIBE", frame.FromClient, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Unsubscribe, Qos: 1}, ProtocolVersion: ver, PacketID: 4,
				Properties: props(packets.Properties{User: user}), Filters: packets.Subscriptions{{Filter: "a/+/c"}, {Filter: "$share/g/x/#"}}}},
			{"UNSUBACK", frame.FromServer, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Unsuback}, ProtocolVersion: ver, PacketID: 4,
				ReasonCodes: []byte{0, 0x11}}},
			{"PINGREQ", frame.FromClient, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pingreq}, ProtocolVersion: ver}},
			{"PINGRESP", frame.FromServer, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pingresp}, ProtocolVersion: ver}},
			{"DISCONNECT", frame.FromClient, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Disconnect}, ProtocolVersion: ver,
				Properties: props(packets.Properties{SessionExpiryInterval: 0, SessionExpiryIntervalFlag: true, ReasonString: "bye"})}},
		}
		if ver == 5 {
			list = append(list, []struct {
				name string
				dir  frame.Direction
				pk   packets.Packet
			}{
				{"DISCONNECT from server", frame.FromServer, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Disconnect}, ProtocolVersion: ver,
					ReasonCode: 0x8E, Properties: packets.Properties{ServerReference: "other:1883", ReasonString: "session taken over"}}},
				{"AUTH", frame.FromClient, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Auth}, ProtocolVersion: ver, ReasonCode: 0x18,
					Properties: packets.Properties{AuthenticationMethod: "SCRAM-SHA-1", AuthenticationData: []byte("c=biws")}}},
				{"AUTH from server", frame.FromServer, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Auth}, ProtocolVersion: ver, ReasonCode: 0x18,
					Properties: packets.Properties{AuthenticationMethod: "SCRAM-SHA-1", AuthenticationData: []byte("s=x")}}},
			}...)
		}
		for _, tc := range list {
			enc, err := encodeMochi(ver, tc.pk)
			if err != nil {
				panic(fmt.Sprintf("mochi encode %s: %v", tc.name, err))
			}
			out = append(out, mochiSeed{fmt.Sprintf("mochi v%d %s", ver, tc.name), ver, tc.dir, enc})
		}
	}
	return out
}

// pahoSeeds are packets encoded by paho.golang (MQTT 5) as its client
// sends them.
func pahoSeeds(t *testing.T) []mochiSeed {
	u32 := func(v uint32) *uint32 { return &v }
	u16 := func(v uint16) *uint16 { return &v }
	b := func(v byte) *byte { return &v }
	user := []p5.User{{Key: "k", Value: "v"}}
	list := []struct {
		name string
		pkt  interface {
			WriteTo(io.Writer) (int64, error)
		}
	}{
		{"CONNECT", &p5.Connect{ProtocolName: "MQTT", ProtocolVersion: 5, ClientID: "dev-1", CleanStart: true, KeepAlive: 30,
			UsernameFlag: true, Username: "alice", PasswordFlag: true, Password: []byte("s3cret"),
			WillFlag: true, WillTopic: "dev/1/status", WillMessage: []byte("offline"), WillQOS: 1,
			WillProperties: &p5.Properties{WillDelayInterval: u32(5)},
			Properties:     &p5.Properties{SessionExpiryInterval: u32(3600), ReceiveMaximum: u16(20), RequestProblemInfo: b(1), User: user}}},
		{"PUBLISH", &p5.Publish{Topic: "a/b", QoS: 1, PacketID: 7, Payload: []byte("{}"),
			Properties: &p5.Properties{PayloadFormat: b(1), MessageExpiry: u32(30), ContentType: "json", ResponseTopic: "r/1", CorrelationData: []byte{1}, User: user}}},
		{"SUBSCRIBE", &p5.Subscribe{PacketID: 3, Properties: &p5.Properties{SubscriptionIdentifier: func() *int { i := 9; return &i }()},
			Subscriptions: []p5.SubOptions{{Topic: "a/+", QoS: 2, NoLocal: true, RetainHandling: 1}}}},
		{"UNSUBSCRIBE", &p5.Unsubscribe{PacketID: 4, Topics: []string{"a/+"}}},
		{"PUBACK", &p5.Puback{PacketID: 7}},
		{"PUBREC", &p5.Pubrec{PacketID: 7}},
		{"PUBREL", &p5.Pubrel{PacketID: 7}},
		{"PUBCOMP", &p5.Pubcomp{PacketID: 7}},
		{"PINGREQ", &p5.Pingreq{}},
		{"DISCONNECT", &p5.Disconnect{ReasonCode: 0x04}},
		{"AUTH", &p5.Auth{ReasonCode: 0x19, Properties: &p5.Properties{AuthMethod: "SCRAM-SHA-1"}}},
	}
	var out []mochiSeed
	for _, tc := range list {
		var buf bytes.Buffer
		if _, err := tc.pkt.WriteTo(&buf); err != nil {
			t.Fatal(err)
		}
		out = append(out, mochiSeed{"paho " + tc.name, 5, frame.FromClient, buf.Bytes()})
	}
	return out
}

// TestMochiEncodedPacketsPass: what mochi's encoders and paho.golang's
// produce passes frame.Validate, and mochi decodes it back.
func TestMochiEncodedPacketsPass(t *testing.T) {
	for _, s := range append(mochiSeeds(), pahoSeeds(t)...) {
		if err := frame.Validate(s.ver, s.dir, s.pkt); err != nil {
			t.Errorf("%s: % X: %v", s.name, s.pkt, err)
			continue
		}
		if _, p, err := mochiDecode(s.pkt, s.ver, s.dir); p != nil || err != nil {
			t.Errorf("%s: mochi decode: %v, panic %v", s.name, err, p)
		}
	}
}

// TestMochiDecodeErrorsOnAccepted lists, from the fuzz corpora, the
// classes of packets frame.Validate accepts and mochi's decoder or
// validation refuses (an error, not a panic). Run with -v to see them.
func TestMochiDecodeErrorsOnAccepted(t *testing.T) {
	var inputs [][]byte
	for _, dir := range []string{"testdata/fuzz/FuzzFrameAgainstMochiDecoder", "../mqttwaf/frame/testdata/fuzz/FuzzValidate"} {
		files, _ := filepath.Glob(filepath.Join(dir, "*"))
		for _, f := range files {
			vals, err := readCorpusFile(f)
			if err != nil || len(vals) != 3 {
				t.Fatalf("%s: %v", f, err)
			}
			inputs = append(inputs, append([]byte{vals[0][0], vals[1][0]}, vals[2]...))
		}
	}
	// Known classes, beside what the fuzzers found: empty AUTH (allowed by
	// MQTT 5 section 3.15.2.1), an empty will payload or an empty password
	// (zero-length binary data is valid).
	inputs = append(inputs,
		[]byte{5, 0, 0xF0, 0x00},
		append([]byte{4, 0}, framePacket(0x10, []byte{0, 4, 'M', 'Q', 'T', 'T', 4, 0x06, 0, 30, 0, 1, 'c', 0, 1, 't', 0, 0})...),
		append([]byte{4, 0}, framePacket(0x10, []byte{0, 4, 'M', 'Q', 'T', 'T', 4, 0xC2, 0, 30, 0, 1, 'c', 0, 1, 'u', 0, 0})...),
	)
	classes := map[string]int{}
	for _, in := range inputs {
		v, dir, data := 4+in[0]&1, frame.Direction(in[1]&1), in[2:]
		if len(data) == 0 {
			continue
		}
		for _, pkt := range [][]byte{data, framePacket(data[0], data[1:])} {
			if frame.Validate(v, dir, pkt) != nil {
				continue
			}
			pk, p, err := mochiDecode(pkt, v, dir)
			if p != nil {
				t.Errorf("mochi panicked on accepted % X: %v", pkt, p)
			}
			if err != nil {
				classes[fmt.Sprintf("v%d %s %s: %v", v, dir, packets.PacketNames[pk.FixedHeader.Type], err)]++
			}
		}
	}
	keys := make([]string, 0, len(classes))
	for k := range classes {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		t.Logf("%5d  %s", classes[k], k)
	}
}

// readCorpusFile reads a "go test fuzz v1" file of byte and []byte values.
func readCorpusFile(name string) ([][]byte, error) {
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) == 0 || lines[0] != "go test fuzz v1" {
		return nil, errors.New("not a fuzz corpus file")
	}
	var vals [][]byte
	for _, l := range lines[1:] {
		switch {
		case strings.HasPrefix(l, "byte('") && strings.HasSuffix(l, "')"):
			r, _, tail, err := strconv.UnquoteChar(l[6:len(l)-2], '\'')
			if err != nil || tail != "" || r > 255 {
				return nil, fmt.Errorf("%q: %v", l, err)
			}
			vals = append(vals, []byte{byte(r)})
		case strings.HasPrefix(l, "[]byte(") && strings.HasSuffix(l, ")"):
			s, err := strconv.Unquote(l[7 : len(l)-1])
			if err != nil {
				return nil, fmt.Errorf("%q: %v", l, err)
			}
			vals = append(vals, []byte(s))
		default:
			return nil, fmt.Errorf("unknown line %q", l)
		}
	}
	return vals, nil
}

// frameListener is a TCP listener that hands mochi frame.Conn-wrapped
// connections, as the mochi adapter will.
type frameListener struct {
	id, addr string
	ln       net.Listener
	lim      frame.Limits
	refused  chan *frame.Error
	wg       sync.WaitGroup
}

func (l *frameListener) ID() string       { return l.id }
func (l *frameListener) Address() string  { return l.ln.Addr().String() }
func (l *frameListener) Protocol() string { return "tcp" }
func (l *frameListener) Init(*slog.Logger) (err error) {
	l.ln, err = net.Listen("tcp", l.addr)
	return err
}

func (l *frameListener) Serve(establish listeners.EstablishFn) {
	for {
		c, err := l.ln.Accept()
		if err != nil {
			return
		}
		l.wg.Go(func() {
			fc := frame.NewConn(c, l.lim)
			_ = establish(l.id, fc)
			if e := fc.Err(); e != nil {
				select {
				case l.refused <- e:
				default:
				}
			}
		})
	}
}

func (l *frameListener) Close(closeClients listeners.CloseFn) {
	closeClients(l.id)
	_ = l.ln.Close()
	l.wg.Wait()
}

// TestFrameConnShieldsMochi runs a real mochi broker whose listener wraps
// every connection in a frame.Conn: the #501 SUBSCRIBE gets a DISCONNECT
// 0x81 instead of killing the process, and real clients (paho.golang for
// MQTT 5, paho.mqtt.golang for 3.1.1, mosquitto_pub and mosquitto_sub for
// 3.1, 3.1.1 and 5) work through it.
func TestFrameConnShieldsMochi(t *testing.T) {
	server := mqtt.New(&mqtt.Options{InlineClient: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err := server.AddHook(new(auth.AllowHook), nil); err != nil {
		t.Fatal(err)
	}
	fl := &frameListener{id: "frame", addr: "127.0.0.1:0", lim: frame.Limits{MaxPacketSize: 1 << 20}, refused: make(chan *frame.Error, 16)}
	if err := server.AddListener(fl); err != nil {
		t.Fatal(err)
	}
	if err := server.Serve(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = server.Close() })
	addr := fl.Address()

	// The #501 SUBSCRIBE, and other hostile packets, after a valid CONNECT.
	hostile := []struct {
		name   string
		ver    byte
		pkt    []byte
		reason string
		reply  []byte // after the CONNACK
	}{
		{"mochi #501", 5, mochi501, frame.ReasonMalformed, []byte{0xE0, 2, 0x81, 0}},
		{"mochi #501 shape v4", 4, []byte{0x82, 0x05, 0x00, 0x01, 0x00, 0x01, 0x61}, frame.ReasonMalformed, nil},
		{"too large", 5, []byte{0x30, 0xFF, 0xFF, 0xFF, 0x7F}, frame.ReasonTooLarge, []byte{0xE0, 2, 0x95, 0}},
		{"second CONNECT", 5, nil, frame.ReasonSecondConnect, []byte{0xE0, 2, 0x82, 0}},
	}
	for _, h := range hostile {
		t.Run(h.name, func(t *testing.T) {
			connect := framePacket(0x10, append([]byte{0, 4, 'M', 'Q', 'T', 'T', h.ver, 2, 0, 30}, map[byte][]byte{4: {0, 1, 'x'}, 5: {0, 0, 1, 'x'}}[h.ver]...))
			pkt := h.pkt
			if pkt == nil {
				pkt = connect
			}
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			if _, err := c.Write(connect); err != nil {
				t.Fatal(err)
			}
			// The broker's side is read with a FromServer frame.Reader: mochi's
			// CONNACK and DISCONNECT must pass it too.
			r := frame.NewReader(c, frame.FromServer, frame.Limits{})
			r.SetVersion(h.ver)
			if connack, err := r.Next(); err != nil || connack[0] != 0x20 || connack[3] != 0 {
				t.Fatalf("CONNACK % X, %v", connack, err)
			}
			if _, err := c.Write(pkt); err != nil {
				t.Fatal(err)
			}
			if h.reply != nil {
				if got, err := r.Next(); err != nil || !bytes.Equal(got, h.reply) {
					t.Fatalf("after the hostile packet the client got % X, %v; want % X", got, err, h.reply)
				}
			}
			if got, err := r.Next(); err != io.EOF {
				t.Fatalf("after the refusal: % X, %v; want EOF", got, err)
			}
			select {
			case e := <-fl.refused:
				if e.Reason != h.reason {
					t.Fatalf("refused %v, want %s", e, h.reason)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("no refusal recorded")
			}
		})
	}

	// Real clients, after the attacks: the broker is alive.
	t.Run("paho.golang v5", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		got := make(chan *paho.Publish, 1)
		cm := paho.NewClient(paho.ClientConfig{
			Conn: p5.NewThreadSafeConn(conn),
			OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
				got <- pr.Packet
				return true, nil
			}},
		})
		if _, err := cm.Connect(ctx, &paho.Connect{ClientID: "frame-v5", CleanStart: true, KeepAlive: 30, UsernameFlag: true, Username: "u",
			WillMessage:    &paho.WillMessage{Topic: "frame/will", Payload: []byte("gone"), QoS: 1},
			WillProperties: &paho.WillProperties{WillDelayInterval: func() *uint32 { v := uint32(1); return &v }()},
			Properties: &paho.ConnectProperties{SessionExpiryInterval: func() *uint32 { v := uint32(60); return &v }(), ReceiveMaximum: func() *uint16 { v := uint16(10); return &v }(),
				RequestProblemInfo: true, User: paho.UserProperties{{Key: "k", Value: "v"}}}}); err != nil {
			t.Fatal(err)
		}
		defer cm.Disconnect(&paho.Disconnect{ReasonCode: 0})
		if _, err := cm.Subscribe(ctx, &paho.Subscribe{Properties: &paho.SubscribeProperties{SubscriptionIdentifier: ptrInt(7), User: paho.UserProperties{{Key: "k", Value: "v"}}},
			Subscriptions: []paho.SubscribeOptions{{Topic: "frame/+/v5", QoS: 2, NoLocal: false, RetainHandling: 1}, {Topic: "$share/g/frame/x", QoS: 1}}}); err != nil {
			t.Fatal(err)
		}
		if _, err := cm.Publish(ctx, &paho.Publish{Topic: "frame/1/v5", QoS: 1, Payload: []byte("hello"),
			Properties: &paho.PublishProperties{ContentType: "text/plain", ResponseTopic: "frame/reply", CorrelationData: []byte{1}, User: paho.UserProperties{{Key: "k", Value: "v"}}}}); err != nil {
			t.Fatal(err)
		}
		select {
		case p := <-got:
			if string(p.Payload) != "hello" {
				t.Fatalf("got %q", p.Payload)
			}
		case <-ctx.Done():
			t.Fatal("no message")
		}
		if _, err := cm.Unsubscribe(ctx, &paho.Unsubscribe{Topics: []string{"frame/+/v5"}}); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("paho.mqtt.golang v3.1.1", func(t *testing.T) {
		got := make(chan string, 1)
		opts := mqtt3.NewClientOptions().AddBroker("tcp://"+addr).SetClientID("frame-v4").SetUsername("u").SetPassword("p").
			SetWill("frame/will", "gone", 1, true).SetAutoReconnect(false)
		cl := mqtt3.NewClient(opts)
		if tok := cl.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("connect: %v", tok.Error())
		}
		defer cl.Disconnect(100)
		if tok := cl.Subscribe("frame/+/v4", 2, func(_ mqtt3.Client, m mqtt3.Message) { got <- string(m.Payload()) }); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("subscribe: %v", tok.Error())
		}
		if tok := cl.Publish("frame/1/v4", 2, false, "hello"); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("publish: %v", tok.Error())
		}
		select {
		case p := <-got:
			if p != "hello" {
				t.Fatalf("got %q", p)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no message")
		}
		if tok := cl.Unsubscribe("frame/+/v4"); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("unsubscribe: %v", tok.Error())
		}
	})
	for _, v := range []string{"31", "311", "5"} {
		t.Run("mosquitto "+v, func(t *testing.T) {
			topic := "frame/mosq/" + v
			args := []string{"-V", v, "-t", topic, "-q", "2", "-C", "1", "-W", "10", "-i", "sub-" + v, "-u", "u", "-P", "p"}
			if v == "5" {
				args = append(args, "-D", "subscribe", "user-property", "k", "v", "-D", "connect", "session-expiry-interval", "60")
			}
			wait := mosquittoSub(t, addr, args...)
			waitFilter(t, server, topic)
			pub := []string{"-V", v, "-t", topic, "-q", "2", "-m", "hello " + v, "-r", "-i", "pub-" + v,
				"--will-topic", "frame/will", "--will-payload", "gone", "--will-qos", "1"}
			if v == "5" {
				pub = append(pub, "-D", "publish", "content-type", "text/plain", "-D", "publish", "user-property", "k", "v",
					"-D", "publish", "message-expiry-interval", "60", "-D", "connect", "receive-maximum", "10")
			}
			if out, err := mosquittoPub(t, addr, pub...); err != nil {
				t.Fatalf("mosquitto_pub: %v: %s", err, out)
			}
			if out, err := wait(); err != nil || strings.TrimSpace(out) != "hello "+v {
				t.Fatalf("mosquitto_sub: %q, %v", out, err)
			}
		})
	}
	select {
	case e := <-fl.refused:
		t.Fatalf("a real client was refused: %v", e)
	default:
	}
}

func ptrInt(i int) *int { return &i }

// waitFilter waits until some client of server subscribes to filter.
func waitFilter(t *testing.T, server *mqtt.Server, filter string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, cl := range server.Clients.GetAll() {
			if _, ok := cl.State.Subscriptions.Get(filter); ok {
				return
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("nobody subscribed to %q", filter)
}
