package frame

import (
	"bytes"
	"io"
	"testing"

	p5 "github.com/eclipse/paho.golang/packets"
	p3 "github.com/eclipse/paho.mqtt.golang/packets"
)

func ptr[T any](v T) *T { return &v }

// TestPahoPacketsPass encodes packets with paho.golang (MQTT 5) and
// paho.mqtt.golang (MQTT 3.1 and 3.1.1), as real clients and brokers send
// them, and checks that every one passes, in its direction.
func TestPahoPacketsPass(t *testing.T) {
	type wt interface {
		WriteTo(io.Writer) (int64, error)
	}
	user := []p5.User{{Key: "k", Value: "v"}, {Key: "k", Value: "v2"}}
	v5 := []struct {
		name string
		dir  Direction
		pkt  wt
	}{
		{"CONNECT minimal", FromClient, &p5.Connect{ProtocolName: "MQTT", ProtocolVersion: 5, ClientID: "c", CleanStart: true, KeepAlive: 30}},
		{"CONNECT full", FromClient, &p5.Connect{ProtocolName: "MQTT", ProtocolVersion: 5, ClientID: "dev-1", CleanStart: true, KeepAlive: 30,
			UsernameFlag: true, Username: "alice", PasswordFlag: true, Password: []byte("s3cret"),
			WillFlag: true, WillTopic: "dev/1/status", WillMessage: []byte("offline"), WillQOS: 1, WillRetain: true,
			WillProperties: &p5.Properties{WillDelayInterval: ptr(uint32(5)), User: user},
			Properties: &p5.Properties{SessionExpiryInterval: ptr(uint32(3600)), ReceiveMaximum: ptr(uint16(20)), TopicAliasMaximum: ptr(uint16(10)),
				MaximumPacketSize: ptr(uint32(1 << 20)), RequestProblemInfo: ptr(byte(1)), RequestResponseInfo: ptr(byte(1)),
				AuthMethod: "SCRAM-SHA-1", AuthData: []byte("n,,n=user"), User: user}}},
		{"CONNECT password only", FromClient, &p5.Connect{ProtocolName: "MQTT", ProtocolVersion: 5, ClientID: "", PasswordFlag: true, Password: []byte("jwt")}},
		{"CONNACK", FromServer, &p5.Connack{}},
		{"CONNACK full", FromServer, &p5.Connack{SessionPresent: true, Properties: &p5.Properties{SessionExpiryInterval: ptr(uint32(60)),
			ReceiveMaximum: ptr(uint16(100)), MaximumQOS: ptr(byte(1)), RetainAvailable: ptr(byte(1)), MaximumPacketSize: ptr(uint32(65536)),
			AssignedClientID: "auto-1", TopicAliasMaximum: ptr(uint16(10)), ReasonString: "welcome", User: user,
			WildcardSubAvailable: ptr(byte(1)), SubIDAvailable: ptr(byte(1)), SharedSubAvailable: ptr(byte(0)), ServerKeepAlive: ptr(uint16(60)),
			ResponseInfo: "resp/", ServerReference: "other:1883", AuthMethod: "m", AuthData: []byte("d")}}},
		{"CONNACK refused", FromServer, &p5.Connack{ReasonCode: 0x86, Properties: &p5.Properties{ReasonString: "bad credentials"}}},
		{"PUBLISH qos0", FromClient, &p5.Publish{Topic: "a/b", Payload: []byte("hi")}},
		{"PUBLISH qos1", FromClient, &p5.Publish{Topic: "a/b", QoS: 1, PacketID: 7, Payload: payload1K}},
		{"PUBLISH qos2 dup retain props", FromClient, &p5.Publish{Topic: "a/b", QoS: 2, PacketID: 65535, Duplicate: true, Retain: true,
			Properties: &p5.Properties{PayloadFormat: ptr(byte(1)), MessageExpiry: ptr(uint32(30)), ContentType: "application/json",
				ResponseTopic: "reply/1", CorrelationData: []byte{1, 2}, TopicAlias: ptr(uint16(3)), User: user}, Payload: []byte("{}")}},
		{"PUBLISH alias", FromClient, &p5.Publish{Topic: "", Properties: &p5.Properties{TopicAlias: ptr(uint16(3))}, Payload: []byte("x")}},
		{"PUBLISH from server", FromServer, &p5.Publish{Topic: "a/b", QoS: 1, PacketID: 1, Properties: &p5.Properties{SubscriptionIdentifier: ptr(42)}}},
		{"PUBACK", FromClient, &p5.Puback{PacketID: 1}},
		{"PUBACK props", FromServer, &p5.Puback{PacketID: 1, ReasonCode: 0x87, Properties: &p5.Properties{ReasonString: "denied", User: user}}},
		{"PUBREC", FromClient, &p5.Pubrec{PacketID: 1, ReasonCode: 0x10}},
		{"PUBREL", FromServer, &p5.Pubrel{PacketID: 1}},
		{"PUBREL not found", FromClient, &p5.Pubrel{PacketID: 1, ReasonCode: 0x92}},
		{"PUBCOMP", FromServer, &p5.Pubcomp{PacketID: 1}},
		{"SUBSCRIBE", FromClient, &p5.Subscribe{PacketID: 3, Properties: &p5.Properties{SubscriptionIdentifier: ptr(268435455), User: user},
			Subscriptions: []p5.SubOptions{{Topic: "a/+/c", QoS: 2, NoLocal: true, RetainAsPublished: true, RetainHandling: 2}, {Topic: "#", QoS: 1}, {Topic: "$share/g/x/#", QoS: 0}}}},
		{"SUBACK", FromServer, &p5.Suback{PacketID: 3, Reasons: []byte{0, 1, 2, 0x80, 0x87, 0x9E}, Properties: &p5.Properties{ReasonString: "r"}}},
		{"UNSUBSCRIBE", FromClient, &p5.Unsubscribe{PacketID: 4, Topics: []string{"a/+/c", "$share/g/x/#"}, Properties: &p5.Properties{User: user}}},
		{"UNSUBACK", FromServer, &p5.Unsuback{PacketID: 4, Reasons: []byte{0, 0x11}}},
		{"PINGREQ", FromClient, &p5.Pingreq{}},
		{"PINGRESP", FromServer, &p5.Pingresp{}},
		{"DISCONNECT", FromClient, &p5.Disconnect{}},
		{"DISCONNECT will", FromClient, &p5.Disconnect{ReasonCode: 0x04, Properties: &p5.Properties{SessionExpiryInterval: ptr(uint32(0)), ReasonString: "bye"}}},
		{"DISCONNECT from server", FromServer, &p5.Disconnect{ReasonCode: 0x9C, Properties: &p5.Properties{ServerReference: "other:1883", ReasonString: "moved"}}},
		{"AUTH", FromClient, &p5.Auth{ReasonCode: 0x18, Properties: &p5.Properties{AuthMethod: "SCRAM-SHA-1", AuthData: []byte("c=biws")}}},
		{"AUTH from server", FromServer, &p5.Auth{ReasonCode: 0x18, Properties: &p5.Properties{AuthMethod: "SCRAM-SHA-1", AuthData: []byte("s=x"), ReasonString: "continue"}}},
	}
	for _, tc := range v5 {
		var buf bytes.Buffer
		if _, err := tc.pkt.WriteTo(&buf); err != nil {
			t.Fatal(err)
		}
		if err := Validate(5, tc.dir, buf.Bytes()); err != nil {
			t.Errorf("paho.golang %s: % X: %v", tc.name, buf.Bytes(), err)
		}
	}

	type w3 interface{ Write(io.Writer) error }
	mk := func(typ byte, set func(p3.ControlPacket)) p3.ControlPacket {
		cp := p3.NewControlPacket(typ)
		set(cp)
		return cp
	}
	v3 := []struct {
		name string
		ver  byte
		dir  Direction
		pkt  p3.ControlPacket
	}{
		{"CONNECT 3.1.1", 4, FromClient, mk(p3.Connect, func(c p3.ControlPacket) {
			p := c.(*p3.ConnectPacket)
			p.ProtocolName, p.ProtocolVersion, p.CleanSession, p.Keepalive, p.ClientIdentifier = "MQTT", 4, true, 30, "dev-1"
			p.WillFlag, p.WillQos, p.WillRetain, p.WillTopic, p.WillMessage = true, 2, true, "dev/1/status", []byte("offline")
			p.UsernameFlag, p.Username, p.PasswordFlag, p.Password = true, "alice", true, []byte("s3cret")
		})},
		{"CONNECT 3.1", 3, FromClient, mk(p3.Connect, func(c p3.ControlPacket) {
			p := c.(*p3.ConnectPacket)
			p.ProtocolName, p.ProtocolVersion, p.CleanSession, p.Keepalive, p.ClientIdentifier = "MQIsdp", 3, true, 30, "dev-1"
		})},
		{"CONNACK", 4, FromServer, mk(p3.Connack, func(c p3.ControlPacket) { c.(*p3.ConnackPacket).SessionPresent = true })},
		{"CONNACK refused", 4, FromServer, mk(p3.Connack, func(c p3.ControlPacket) { c.(*p3.ConnackPacket).ReturnCode = 5 })},
		{"PUBLISH qos0", 4, FromClient, mk(p3.Publish, func(c p3.ControlPacket) {
			p := c.(*p3.PublishPacket)
			p.TopicName, p.Payload = "a/b", []byte("hi")
		})},
		{"PUBLISH qos2 retain", 4, FromServer, mk(p3.Publish, func(c p3.ControlPacket) {
			p := c.(*p3.PublishPacket)
			p.TopicName, p.Payload, p.Qos, p.Retain, p.Dup, p.MessageID = "a/b", payload1K, 2, true, true, 9
		})},
		{"PUBACK", 4, FromClient, mk(p3.Puback, func(c p3.ControlPacket) { c.(*p3.PubackPacket).MessageID = 1 })},
		{"PUBREC", 4, FromServer, mk(p3.Pubrec, func(c p3.ControlPacket) { c.(*p3.PubrecPacket).MessageID = 1 })},
		{"PUBREL", 4, FromClient, mk(p3.Pubrel, func(c p3.ControlPacket) { c.(*p3.PubrelPacket).MessageID = 1 })},
		{"PUBCOMP", 4, FromServer, mk(p3.Pubcomp, func(c p3.ControlPacket) { c.(*p3.PubcompPacket).MessageID = 1 })},
		{"SUBSCRIBE", 4, FromClient, mk(p3.Subscribe, func(c p3.ControlPacket) {
			p := c.(*p3.SubscribePacket)
			p.MessageID, p.Topics, p.Qoss = 2, []string{"a/+/c", "#", "$share/g/x"}, []byte{0, 1, 2}
		})},
		{"SUBACK", 4, FromServer, mk(p3.Suback, func(c p3.ControlPacket) {
			p := c.(*p3.SubackPacket)
			p.MessageID, p.ReturnCodes = 2, []byte{0, 1, 0x80}
		})},
		{"UNSUBSCRIBE", 4, FromClient, mk(p3.Unsubscribe, func(c p3.ControlPacket) {
			p := c.(*p3.UnsubscribePacket)
			p.MessageID, p.Topics = 3, []string{"a/+/c", "#"}
		})},
		{"UNSUBACK", 4, FromServer, mk(p3.Unsuback, func(c p3.ControlPacket) { c.(*p3.UnsubackPacket).MessageID = 3 })},
		{"PINGREQ", 4, FromClient, p3.NewControlPacket(p3.Pingreq)},
		{"PINGRESP", 4, FromServer, p3.NewControlPacket(p3.Pingresp)},
		{"DISCONNECT", 4, FromClient, p3.NewControlPacket(p3.Disconnect)},
	}
	for _, tc := range v3 {
		var buf bytes.Buffer
		if err := tc.pkt.(w3).Write(&buf); err != nil {
			t.Fatal(err)
		}
		if err := Validate(tc.ver, tc.dir, buf.Bytes()); err != nil {
			t.Errorf("paho.mqtt.golang %s: % X: %v", tc.name, buf.Bytes(), err)
		}
	}
}
