package frame

import "strings"

// seed is one packet with its expected verdict from Validate(ver, dir, pkt):
// reason "" means accepted; otherwise the Error's Reason and Offset.
type seed struct {
	name   string
	ver    byte
	dir    Direction
	pkt    []byte
	reason string
	off    int
}

// Packet builders. pk computes the remaining length.
func pk(b0 byte, parts ...[]byte) []byte {
	body := cat(parts...)
	return append(append([]byte{b0}, vbi(len(body))...), body...)
}

func vbi(n int) []byte {
	var b []byte
	for {
		c := byte(n % 128)
		n /= 128
		if n > 0 {
			c |= 0x80
		}
		b = append(b, c)
		if n == 0 {
			return b
		}
	}
}

func raw(b ...byte) []byte { return b }
func u16(v int) []byte     { return []byte{byte(v >> 8), byte(v)} }
func u32(v uint32) []byte  { return []byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)} }
func str(s string) []byte  { return append(u16(len(s)), s...) }
func cat(p ...[]byte) []byte {
	var b []byte
	for _, x := range p {
		b = append(b, x...)
	}
	return b
}

// props builds a property section: its length, then the properties.
func props(p ...[]byte) []byte { b := cat(p...); return append(vbi(len(b)), b...) }
func prop(id byte, v ...[]byte) []byte {
	return append([]byte{id}, cat(v...)...)
}
func user(k, v string) []byte { return prop(0x26, str(k), str(v)) }

// Protocol names and levels.
var (
	v3hdr = cat(str("MQIsdp"), raw(3))
	v4hdr = cat(str("MQTT"), raw(4))
	v5hdr = cat(str("MQTT"), raw(5))
)

// connect4 and connect5 are minimal valid CONNECTs (clean session, keep
// alive 60, client id "c1").
var (
	connect3 = pk(0x10, v3hdr, raw(0x02), u16(60), str("c1"))
	connect4 = pk(0x10, v4hdr, raw(0x02), u16(60), str("c1"))
	connect5 = pk(0x10, v5hdr, raw(0x02), u16(60), props(), str("c1"))
	connack4 = pk(0x20, raw(0, 0))
	connack5 = pk(0x20, raw(0, 0), props())
)

var payload1K = []byte(strings.Repeat("x", 1024))

// seeds is THE seed list: the table test, the benchmarks and the fuzz
// targets all use it.
var seeds = []seed{
	// ---- Valid, MQTT 3.1.1, client to server.
	{name: "v4 CONNECT minimal", ver: 4, pkt: connect4},
	{name: "v4 CONNECT empty client id", ver: 4, pkt: pk(0x10, v4hdr, raw(0x02), u16(0), str(""))},
	{name: "v4 CONNECT will user password", ver: 4, pkt: pk(0x10, v4hdr, raw(0xEE), u16(30), str("dev-1"), str("dev/1/status"), str("offline"), str("alice"), str("s3cret"))},
	{name: "v4 CONNECT user only", ver: 4, pkt: pk(0x10, v4hdr, raw(0x82), u16(30), str("dev-1"), str("alice"))},
	{name: "v4 CONNECT empty will payload", ver: 4, pkt: pk(0x10, v4hdr, raw(0x06), u16(30), str("dev-1"), str("t"), str(""))},
	{name: "v4 PUBLISH qos0", ver: 4, pkt: pk(0x30, str("a/b"), raw('h', 'i'))},
	{name: "v4 PUBLISH qos0 1KiB", ver: 4, pkt: pk(0x30, str("sensors/42/temp"), payload1K)},
	{name: "v4 PUBLISH qos0 retain empty payload", ver: 4, pkt: pk(0x31, str("a/b"))},
	{name: "v4 PUBLISH qos1 1KiB", ver: 4, pkt: pk(0x32, str("sensors/42/temp"), u16(7), payload1K)},
	{name: "v4 PUBLISH qos2 dup", ver: 4, pkt: pk(0x3C, str("a"), u16(65535), raw(0))},
	{name: "v4 PUBLISH utf8 topic", ver: 4, pkt: pk(0x30, str("capteurs/été/😀"), raw(1))},
	{name: "v4 PUBACK", ver: 4, pkt: pk(0x40, u16(1))},
	{name: "v4 PUBREC", ver: 4, pkt: pk(0x50, u16(2))},
	{name: "v4 PUBREL", ver: 4, pkt: pk(0x62, u16(3))},
	{name: "v4 PUBCOMP", ver: 4, pkt: pk(0x70, u16(4))},
	{name: "v4 SUBSCRIBE", ver: 4, pkt: pk(0x82, u16(1), str("a/+/c"), raw(1), str("#"), raw(2), str("+"), raw(0), str("$share/g/x/#"), raw(1))},
	{name: "v4 SUBSCRIBE empty levels", ver: 4, pkt: pk(0x82, u16(1), str("/"), raw(0), str("a//b"), raw(0), str("+/+"), raw(0), str("/#"), raw(0))},
	{name: "v4 UNSUBSCRIBE", ver: 4, pkt: pk(0xA2, u16(9), str("a/+/c"), str("#"))},
	{name: "v4 PINGREQ", ver: 4, pkt: raw(0xC0, 0)},
	{name: "v4 DISCONNECT", ver: 4, pkt: raw(0xE0, 0)},

	// ---- Valid, MQTT 3.1.
	{name: "v3 CONNECT", ver: 3, pkt: connect3},
	{name: "v3 CONNECT user password", ver: 3, pkt: pk(0x10, v3hdr, raw(0xC2), u16(10), str("c"), str("u"), str("p"))},
	{name: "v3 SUBSCRIBE dup retry", ver: 3, pkt: pk(0x8A, u16(5), str("a/#"), raw(1))},
	{name: "v3 PUBREL dup retry", ver: 3, pkt: pk(0x6A, u16(5))},
	{name: "v3 CONNACK", ver: 3, dir: FromServer, pkt: connack4},

	// ---- Valid, MQTT 3.1.1, server to client.
	{name: "v4 CONNACK", ver: 4, dir: FromServer, pkt: connack4},
	{name: "v4 CONNACK session present", ver: 4, dir: FromServer, pkt: pk(0x20, raw(1, 0))},
	{name: "v4 CONNACK refused", ver: 4, dir: FromServer, pkt: pk(0x20, raw(0, 5))},
	{name: "v4 PUBLISH from server", ver: 4, dir: FromServer, pkt: pk(0x33, str("a/b"), u16(1), raw(1, 2, 3))},
	{name: "v4 PUBACK from server", ver: 4, dir: FromServer, pkt: pk(0x40, u16(1))},
	{name: "v4 PUBREC from server", ver: 4, dir: FromServer, pkt: pk(0x50, u16(1))},
	{name: "v4 PUBREL from server", ver: 4, dir: FromServer, pkt: pk(0x62, u16(1))},
	{name: "v4 PUBCOMP from server", ver: 4, dir: FromServer, pkt: pk(0x70, u16(1))},
	{name: "v4 SUBACK", ver: 4, dir: FromServer, pkt: pk(0x90, u16(1), raw(0, 1, 2, 0x80))},
	{name: "v4 UNSUBACK", ver: 4, dir: FromServer, pkt: pk(0xB0, u16(1))},
	{name: "v4 PINGRESP", ver: 4, dir: FromServer, pkt: raw(0xD0, 0)},

	// ---- Valid, MQTT 5, client to server.
	{name: "v5 CONNECT minimal", ver: 5, pkt: connect5},
	{name: "v5 CONNECT full", ver: 5, pkt: pk(0x10, v5hdr, raw(0xF6), u16(60),
		props(prop(0x11, u32(3600)), prop(0x21, u16(20)), prop(0x27, u32(1<<20)), prop(0x22, u16(10)),
			prop(0x19, raw(1)), prop(0x17, raw(0)), user("k", "v"), user("k", "v2"), prop(0x15, str("SCRAM-SHA-1")), prop(0x16, str("data"))),
		str("dev-1"),
		props(prop(0x18, u32(5)), prop(0x01, raw(1)), prop(0x02, u32(60)), prop(0x03, str("text/plain")), prop(0x08, str("reply/dev-1")), prop(0x09, str("corr")), user("a", "b")),
		str("dev/1/status"), str("offline"), str("alice"), str("s3cret"))},
	{name: "v5 CONNECT password without user", ver: 5, pkt: pk(0x10, v5hdr, raw(0x42), u16(60), props(), str("c"), str("token"))},
	{name: "v5 PUBLISH qos0", ver: 5, pkt: pk(0x30, str("a/b"), props(), raw('h', 'i'))},
	{name: "v5 PUBLISH qos0 1KiB", ver: 5, pkt: pk(0x30, str("sensors/42/temp"), props(), payload1K)},
	{name: "v5 PUBLISH qos1 1KiB", ver: 5, pkt: pk(0x32, str("sensors/42/temp"), u16(7), props(), payload1K)},
	{name: "v5 PUBLISH props", ver: 5, pkt: pk(0x34, str("a/b"), u16(7), props(prop(0x01, raw(1)), prop(0x02, u32(30)), prop(0x23, u16(3)), prop(0x08, str("r/1")), prop(0x09, str("x")), prop(0x03, str("json")), user("k", "v"), user("k", "v")), raw('{', '}'))},
	{name: "v5 PUBLISH alias only", ver: 5, pkt: pk(0x30, str(""), props(prop(0x23, u16(1))), raw(1))},
	{name: "v5 PUBACK short", ver: 5, pkt: pk(0x40, u16(1))},
	{name: "v5 PUBACK reason", ver: 5, pkt: pk(0x40, u16(1), raw(0x10))},
	{name: "v5 PUBACK reason props", ver: 5, pkt: pk(0x40, u16(1), raw(0x97), props(prop(0x1F, str("quota")), user("k", "v")))},
	{name: "v5 PUBACK empty props", ver: 5, pkt: pk(0x40, u16(1), raw(0), props())},
	{name: "v5 PUBREC", ver: 5, pkt: pk(0x50, u16(1), raw(0x80))},
	{name: "v5 PUBREL", ver: 5, pkt: pk(0x62, u16(1), raw(0x92))},
	{name: "v5 PUBCOMP", ver: 5, pkt: pk(0x70, u16(1), raw(0), props(prop(0x1F, str("ok"))))},
	{name: "v5 SUBSCRIBE", ver: 5, pkt: pk(0x82, u16(1), props(prop(0x0B, vbi(268435455)), user("k", "v")), str("a/+"), raw(0x2E), str("$share/g/#"), raw(0x01))},
	{name: "v5 SUBSCRIBE no props", ver: 5, pkt: pk(0x82, u16(1), props(), str("a"), raw(0))},
	{name: "v5 UNSUBSCRIBE", ver: 5, pkt: pk(0xA2, u16(1), props(user("k", "v")), str("a/+"), str("$share/g/#"))},
	{name: "v5 PINGREQ", ver: 5, pkt: raw(0xC0, 0)},
	{name: "v5 DISCONNECT empty", ver: 5, pkt: raw(0xE0, 0)},
	{name: "v5 DISCONNECT reason", ver: 5, pkt: pk(0xE0, raw(0x04))},
	{name: "v5 DISCONNECT props", ver: 5, pkt: pk(0xE0, raw(0), props(prop(0x11, u32(0)), prop(0x1F, str("bye")), user("k", "v")))},
	{name: "v5 AUTH empty", ver: 5, pkt: raw(0xF0, 0)},
	{name: "v5 AUTH continue", ver: 5, pkt: pk(0xF0, raw(0x18), props(prop(0x15, str("SCRAM-SHA-1")), prop(0x16, str("c=biws")), prop(0x1F, str("r")), user("k", "v")))},

	// ---- Valid, MQTT 5, server to client.
	{name: "v5 CONNACK", ver: 5, dir: FromServer, pkt: connack5},
	{name: "v5 CONNACK full", ver: 5, dir: FromServer, pkt: pk(0x20, raw(1, 0), props(prop(0x11, u32(60)), prop(0x21, u16(100)), prop(0x24, raw(1)),
		prop(0x25, raw(1)), prop(0x27, u32(65536)), prop(0x12, str("auto-1")), prop(0x22, u16(10)), prop(0x1F, str("hi")), user("k", "v"),
		prop(0x28, raw(1)), prop(0x29, raw(0)), prop(0x2A, raw(1)), prop(0x13, u16(30)), prop(0x1A, str("resp/")), prop(0x1C, str("other")),
		prop(0x15, str("m")), prop(0x16, str("d"))))},
	{name: "v5 CONNACK refused", ver: 5, dir: FromServer, pkt: pk(0x20, raw(0, 0x87), props(prop(0x1F, str("no"))))},
	{name: "v5 PUBLISH from server sub ids", ver: 5, dir: FromServer, pkt: pk(0x32, str("a/b"), u16(9), props(prop(0x0B, vbi(1)), prop(0x0B, vbi(200000))), payload1K)},
	{name: "v5 PUBACK from server", ver: 5, dir: FromServer, pkt: pk(0x40, u16(1), raw(0x87), props(prop(0x1F, str("denied"))))},
	{name: "v5 PUBREC from server", ver: 5, dir: FromServer, pkt: pk(0x50, u16(1))},
	{name: "v5 PUBREL from server", ver: 5, dir: FromServer, pkt: pk(0x62, u16(1), raw(0))},
	{name: "v5 PUBCOMP from server", ver: 5, dir: FromServer, pkt: pk(0x70, u16(1), raw(0x92))},
	{name: "v5 SUBACK", ver: 5, dir: FromServer, pkt: pk(0x90, u16(1), props(prop(0x1F, str("r"))), raw(0, 1, 2, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2))},
	{name: "v5 UNSUBACK", ver: 5, dir: FromServer, pkt: pk(0xB0, u16(1), props(), raw(0, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91))},
	{name: "v5 PINGRESP", ver: 5, dir: FromServer, pkt: raw(0xD0, 0)},
	{name: "v5 DISCONNECT from server", ver: 5, dir: FromServer, pkt: pk(0xE0, raw(0x8B), props(prop(0x1C, str("other:1883")), prop(0x1F, str("bye"))))},
	{name: "v5 AUTH from server", ver: 5, dir: FromServer, pkt: pk(0xF0, raw(0x18), props(prop(0x15, str("SCRAM-SHA-1"))))},

	// ---- Known bad: fixed header.
	{name: "mochi #501 SUBSCRIBE without options byte", ver: 5, pkt: raw(0x82, 0x06, 0x00, 0x01, 0x00, 0x00, 0x01, 0x61), reason: ReasonMalformed, off: 8},
	{name: "mochi #501 shape, v4", ver: 4, pkt: raw(0x82, 0x05, 0x00, 0x01, 0x00, 0x01, 0x61), reason: ReasonMalformed, off: 7},
	{name: "empty", ver: 4, pkt: raw(), reason: ReasonMalformed, off: 0},
	{name: "type 0", ver: 4, pkt: raw(0x00, 0x00), reason: ReasonMalformed, off: 0},
	{name: "remaining length missing", ver: 4, pkt: raw(0xC0), reason: ReasonMalformed, off: 1},
	{name: "remaining length too short", ver: 4, pkt: raw(0xC0, 0x01), reason: ReasonMalformed, off: 1},
	{name: "remaining length too long", ver: 4, pkt: pk(0x40, u16(1))[:3], reason: ReasonMalformed, off: 1},
	{name: "trailing byte after packet", ver: 4, pkt: append(pk(0x40, u16(1)), 0), reason: ReasonMalformed, off: 1},
	{name: "overlong VBI 0", ver: 4, pkt: raw(0xC0, 0x80, 0x00), reason: ReasonMalformed, off: 1},
	{name: "overlong VBI 2", ver: 4, pkt: raw(0x40, 0x82, 0x00, 0x00, 0x01), reason: ReasonMalformed, off: 1},
	{name: "five-byte VBI", ver: 4, pkt: raw(0xC0, 0x80, 0x80, 0x80, 0x80, 0x01), reason: ReasonMalformed, off: 1},
	{name: "VBI continues past end", ver: 4, pkt: raw(0xC0, 0xFF, 0xFF), reason: ReasonMalformed, off: 1},
	{name: "PUBLISH qos3", ver: 4, pkt: pk(0x36, str("a"), u16(1)), reason: ReasonMalformed, off: 0},
	{name: "PUBLISH dup qos0", ver: 5, pkt: pk(0x38, str("a"), props()), reason: ReasonProtocolError, off: 0},
	{name: "SUBSCRIBE flags 0", ver: 4, pkt: pk(0x80, u16(1), str("a"), raw(0)), reason: ReasonMalformed, off: 0},
	{name: "SUBSCRIBE dup v4", ver: 4, pkt: pk(0x8A, u16(1), str("a"), raw(0)), reason: ReasonMalformed, off: 0},
	{name: "UNSUBSCRIBE flags 3", ver: 5, pkt: pk(0xA3, u16(1), props(), str("a")), reason: ReasonMalformed, off: 0},
	{name: "PUBREL flags 0", ver: 4, pkt: pk(0x60, u16(1)), reason: ReasonMalformed, off: 0},
	{name: "PUBACK flags 2", ver: 4, pkt: pk(0x42, u16(1)), reason: ReasonMalformed, off: 0},
	{name: "PINGREQ flags", ver: 4, pkt: raw(0xC1, 0), reason: ReasonMalformed, off: 0},
	{name: "CONNECT flags", ver: 4, pkt: append([]byte{0x11}, connect4[1:]...), reason: ReasonMalformed, off: 0},
	{name: "PINGREQ with body", ver: 4, pkt: raw(0xC0, 1, 0), reason: ReasonMalformed, off: 2},

	// ---- Known bad: direction and version.
	{name: "CONNACK from client", ver: 4, pkt: connack4, reason: ReasonProtocolError, off: 0},
	{name: "SUBACK from client", ver: 5, pkt: pk(0x90, u16(1), props(), raw(0)), reason: ReasonProtocolError, off: 0},
	{name: "PINGRESP from client", ver: 4, pkt: raw(0xD0, 0), reason: ReasonProtocolError, off: 0},
	{name: "CONNECT from server", ver: 4, dir: FromServer, pkt: connect4, reason: ReasonProtocolError, off: 0},
	{name: "SUBSCRIBE from server", ver: 4, dir: FromServer, pkt: pk(0x82, u16(1), str("a"), raw(0)), reason: ReasonProtocolError, off: 0},
	{name: "PINGREQ from server", ver: 5, dir: FromServer, pkt: raw(0xC0, 0), reason: ReasonProtocolError, off: 0},
	{name: "AUTH in v4", ver: 4, pkt: raw(0xF0, 0), reason: ReasonProtocolError, off: 0},
	{name: "DISCONNECT from v4 server", ver: 4, dir: FromServer, pkt: raw(0xE0, 0), reason: ReasonProtocolError, off: 0},
	{name: "version 0", ver: 0, pkt: raw(0xC0, 0), reason: ReasonUnsupportedVersion, off: 0},
	{name: "version 6", ver: 6, pkt: raw(0xC0, 0), reason: ReasonUnsupportedVersion, off: 0},

	// ---- Known bad: CONNECT.
	{name: "CONNECT level 6", ver: 5, pkt: pk(0x10, str("MQTT"), raw(6, 2), u16(60), props(), str("c")), reason: ReasonUnsupportedVersion, off: 8},
	{name: "CONNECT MQIsdp level 4", ver: 4, pkt: pk(0x10, str("MQIsdp"), raw(4, 2), u16(60), str("c")), reason: ReasonUnsupportedVersion, off: 10},
	{name: "CONNECT MQTT level 3", ver: 4, pkt: pk(0x10, str("MQTT"), raw(3, 2), u16(60), str("c")), reason: ReasonUnsupportedVersion, off: 8},
	{name: "CONNECT bridge bit level 0x84", ver: 4, pkt: pk(0x10, str("MQTT"), raw(0x84, 2), u16(60), str("c")), reason: ReasonUnsupportedVersion, off: 8},
	{name: "CONNECT unknown protocol name", ver: 4, pkt: pk(0x10, str("HTTP"), raw(4, 2), u16(60), str("c")), reason: ReasonProtocolError, off: 2},
	{name: "CONNECT protocol name truncated", ver: 4, pkt: pk(0x10, u16(4), raw('M', 'Q')), reason: ReasonMalformed, off: 2},
	{name: "CONNECT no level", ver: 4, pkt: pk(0x10, str("MQTT")), reason: ReasonMalformed, off: 8},
	{name: "CONNECT no keep alive", ver: 4, pkt: pk(0x10, v4hdr, raw(2), raw(0)), reason: ReasonMalformed, off: 10},
	{name: "CONNECT reserved flag", ver: 4, pkt: pk(0x10, v4hdr, raw(0x03), u16(60), str("c")), reason: ReasonMalformed, off: 9},
	{name: "CONNECT will qos without will", ver: 4, pkt: pk(0x10, v4hdr, raw(0x0A), u16(60), str("c")), reason: ReasonMalformed, off: 9},
	{name: "CONNECT will retain without will", ver: 5, pkt: pk(0x10, v5hdr, raw(0x22), u16(60), props(), str("c")), reason: ReasonMalformed, off: 9},
	{name: "CONNECT will qos 3", ver: 4, pkt: pk(0x10, v4hdr, raw(0x1E), u16(60), str("c"), str("t"), str("p")), reason: ReasonMalformed, off: 9},
	{name: "CONNECT v4 password without user", ver: 4, pkt: pk(0x10, v4hdr, raw(0x42), u16(60), str("c"), str("p")), reason: ReasonProtocolError, off: 9},
	{name: "CONNECT v3 password without user", ver: 3, pkt: pk(0x10, v3hdr, raw(0x42), u16(60), str("c"), str("p")), reason: ReasonProtocolError, off: 11},
	{name: "CONNECT client id truncated", ver: 4, pkt: pk(0x10, v4hdr, raw(2), u16(60), u16(5), raw('a', 'b')), reason: ReasonMalformed, off: 12},
	{name: "CONNECT client id missing", ver: 4, pkt: pk(0x10, v4hdr, raw(2), u16(60)), reason: ReasonMalformed, off: 12},
	{name: "CONNECT client id invalid utf8", ver: 4, pkt: pk(0x10, v4hdr, raw(2), u16(60), u16(2), raw(0xC3, 0x28)), reason: ReasonMalformed, off: 12},
	{name: "CONNECT client id NUL", ver: 4, pkt: pk(0x10, v4hdr, raw(2), u16(60), str("a\x00")), reason: ReasonMalformed, off: 12},
	{name: "CONNECT client id surrogate", ver: 4, pkt: pk(0x10, v4hdr, raw(2), u16(60), u16(3), raw(0xED, 0xA0, 0x80)), reason: ReasonMalformed, off: 12},
	{name: "CONNECT client id overlong NUL", ver: 4, pkt: pk(0x10, v4hdr, raw(2), u16(60), u16(2), raw(0xC0, 0x80)), reason: ReasonMalformed, off: 12},
	{name: "CONNECT user flag no user", ver: 4, pkt: pk(0x10, v4hdr, raw(0x82), u16(60), str("c")), reason: ReasonMalformed, off: 15},
	{name: "CONNECT password flag no password", ver: 4, pkt: pk(0x10, v4hdr, raw(0xC2), u16(60), str("c"), str("u")), reason: ReasonMalformed, off: 18},
	{name: "CONNECT user name invalid utf8", ver: 4, pkt: pk(0x10, v4hdr, raw(0x82), u16(60), str("c"), u16(1), raw(0xFF)), reason: ReasonMalformed, off: 15},
	{name: "CONNECT will topic missing", ver: 4, pkt: pk(0x10, v4hdr, raw(0x06), u16(60), str("c")), reason: ReasonMalformed, off: 15},
	{name: "CONNECT will payload missing", ver: 4, pkt: pk(0x10, v4hdr, raw(0x06), u16(60), str("c"), str("t")), reason: ReasonMalformed, off: 18},
	{name: "CONNECT will topic empty", ver: 4, pkt: pk(0x10, v4hdr, raw(0x06), u16(60), str("c"), str(""), str("p")), reason: ReasonProtocolError, off: 15},
	{name: "CONNECT will topic wildcard", ver: 4, pkt: pk(0x10, v4hdr, raw(0x06), u16(60), str("c"), str("a/#"), str("p")), reason: ReasonProtocolError, off: 15},
	{name: "CONNECT trailing bytes", ver: 4, pkt: pk(0x10, v4hdr, raw(2), u16(60), str("c"), raw(0)), reason: ReasonMalformed, off: 15},
	{name: "CONNECT v5 no properties", ver: 5, pkt: pk(0x10, v5hdr, raw(2), u16(60)), reason: ReasonMalformed, off: 12},
	{name: "CONNECT v5 property length overruns", ver: 5, pkt: pk(0x10, v5hdr, raw(2), u16(60), raw(10), str("c")), reason: ReasonMalformed, off: 12},
	{name: "CONNECT v5 overlong property length", ver: 5, pkt: pk(0x10, v5hdr, raw(2), u16(60), raw(0x80, 0x00), str("c")), reason: ReasonMalformed, off: 12},
	{name: "CONNECT v5 property not allowed", ver: 5, pkt: pk(0x10, v5hdr, raw(2), u16(60), props(prop(0x23, u16(1))), str("c")), reason: ReasonMalformed, off: 13},
	{name: "CONNECT v5 unknown property", ver: 5, pkt: pk(0x10, v5hdr, raw(2), u16(60), props(prop(0x04, raw(0))), str("c")), reason: ReasonMalformed, off: 13},
	{name: "CONNECT v5 property id 0x80", ver: 5, pkt: pk(0x10, v5hdr, raw(2), u16(60), props(raw(0x80, 0x01)), str("c")), reason: ReasonMalformed, off: 13},
	{name: "CONNECT v5 duplicate session expiry", ver: 5, pkt: pk(0x10, v5hdr, raw(2), u16(60), props(prop(0x11, u32(1)), prop(0x11, u32(2))), str("c")), reason: ReasonProtocolError, off: 18},
	{name: "CONNECT v5 receive maximum 0", ver: 5, pkt: pk(0x10, v5hdr, raw(2), u16(60), props(prop(0x21, u16(0))), str("c")), reason: ReasonProtocolError, off: 13},
	{name: "CONNECT v5 maximum packet size 0", ver: 5, pkt: pk(0x10, v5hdr, raw(2), u16(60), props(prop(0x27, u32(0))), str("c")), reason: ReasonProtocolError, off: 13},
	{name: "CONNECT v5 request problem info 2", ver: 5, pkt: pk(0x10, v5hdr, raw(2), u16(60), props(prop(0x17, raw(2))), str("c")), reason: ReasonProtocolError, off: 13},
	{name: "CONNECT v5 request response info 2", ver: 5, pkt: pk(0x10, v5hdr, raw(2), u16(60), props(prop(0x19, raw(2))), str("c")), reason: ReasonProtocolError, off: 13},
	{name: "CONNECT v5 property value truncated", ver: 5, pkt: pk(0x10, v5hdr, raw(2), u16(60), props(raw(0x11, 0, 0)), str("c")), reason: ReasonMalformed, off: 14},
	{name: "CONNECT v5 string property overruns section", ver: 5, pkt: pk(0x10, v5hdr, raw(2), u16(60), raw(3, 0x15, 0, 5), str("c")), reason: ReasonMalformed, off: 14},
	{name: "CONNECT v5 user property value missing", ver: 5, pkt: pk(0x10, v5hdr, raw(2), u16(60), props(prop(0x26, str("k"))), str("c")), reason: ReasonMalformed, off: 17},
	{name: "CONNECT v5 auth data without method", ver: 5, pkt: pk(0x10, v5hdr, raw(2), u16(60), props(prop(0x16, str("d"))), str("c")), reason: ReasonProtocolError, off: 12},
	{name: "CONNECT v5 will property not allowed", ver: 5, pkt: pk(0x10, v5hdr, raw(0x06), u16(60), props(), str("c"), props(prop(0x11, u32(1))), str("t"), str("p")), reason: ReasonMalformed, off: 17},
	{name: "CONNECT v5 will delay in connect props", ver: 5, pkt: pk(0x10, v5hdr, raw(0x02), u16(60), props(prop(0x18, u32(1))), str("c")), reason: ReasonMalformed, off: 13},
	{name: "CONNECT v5 will payload format 2", ver: 5, pkt: pk(0x10, v5hdr, raw(0x06), u16(60), props(), str("c"), props(prop(0x01, raw(2))), str("t"), str("p")), reason: ReasonProtocolError, off: 17},
	{name: "CONNECT v5 will response topic wildcard", ver: 5, pkt: pk(0x10, v5hdr, raw(0x06), u16(60), props(), str("c"), props(prop(0x08, str("r/+"))), str("t"), str("p")), reason: ReasonProtocolError, off: 17},
	{name: "CONNECT v5 will properties missing", ver: 5, pkt: pk(0x10, v5hdr, raw(0x06), u16(60), props(), str("c")), reason: ReasonMalformed, off: 16},

	// ---- Known bad: PUBLISH.
	{name: "PUBLISH topic truncated", ver: 4, pkt: pk(0x30, u16(10), raw('a')), reason: ReasonMalformed, off: 2},
	{name: "PUBLISH no topic", ver: 4, pkt: pk(0x30), reason: ReasonMalformed, off: 2},
	{name: "PUBLISH empty topic v4", ver: 4, pkt: pk(0x30, str(""), raw(1)), reason: ReasonProtocolError, off: 2},
	{name: "PUBLISH empty topic v5 no alias", ver: 5, pkt: pk(0x30, str(""), props(), raw(1)), reason: ReasonProtocolError, off: 2},
	{name: "PUBLISH wildcard +", ver: 4, pkt: pk(0x30, str("a/+"), raw(1)), reason: ReasonProtocolError, off: 2},
	{name: "PUBLISH wildcard #", ver: 5, pkt: pk(0x30, str("#"), props()), reason: ReasonProtocolError, off: 2},
	{name: "PUBLISH topic NUL", ver: 4, pkt: pk(0x30, str("a\x00b"), raw(1)), reason: ReasonMalformed, off: 2},
	{name: "PUBLISH topic invalid utf8", ver: 4, pkt: pk(0x30, u16(2), raw(0xE2, 0x82), raw(1)), reason: ReasonMalformed, off: 2},
	{name: "PUBLISH qos1 packet id 0", ver: 4, pkt: pk(0x32, str("a"), u16(0), raw(1)), reason: ReasonProtocolError, off: 5},
	{name: "PUBLISH qos1 packet id missing", ver: 4, pkt: pk(0x32, str("a"), raw(1)), reason: ReasonMalformed, off: 5},
	{name: "PUBLISH v5 no properties", ver: 5, pkt: pk(0x30, str("a")), reason: ReasonMalformed, off: 5},
	{name: "PUBLISH v5 sub id from client", ver: 5, pkt: pk(0x30, str("a"), props(prop(0x0B, vbi(1)))), reason: ReasonProtocolError, off: 6},
	{name: "PUBLISH v5 topic alias 0", ver: 5, pkt: pk(0x30, str("a"), props(prop(0x23, u16(0)))), reason: ReasonProtocolError, off: 6},
	{name: "PUBLISH v5 duplicate topic alias", ver: 5, pkt: pk(0x30, str("a"), props(prop(0x23, u16(1)), prop(0x23, u16(1)))), reason: ReasonProtocolError, off: 9},
	{name: "PUBLISH v5 payload format 2", ver: 5, pkt: pk(0x30, str("a"), props(prop(0x01, raw(2)))), reason: ReasonProtocolError, off: 6},
	{name: "PUBLISH v5 response topic empty", ver: 5, pkt: pk(0x30, str("a"), props(prop(0x08, str("")))), reason: ReasonProtocolError, off: 6},
	{name: "PUBLISH v5 response topic wildcard", ver: 5, pkt: pk(0x30, str("a"), props(prop(0x08, str("r/#")))), reason: ReasonProtocolError, off: 6},
	{name: "PUBLISH v5 session expiry", ver: 5, pkt: pk(0x30, str("a"), props(prop(0x11, u32(1)))), reason: ReasonMalformed, off: 6},
	{name: "PUBLISH v5 duplicate content type", ver: 5, pkt: pk(0x30, str("a"), props(prop(0x03, str("x")), prop(0x03, str("y")))), reason: ReasonProtocolError, off: 10},
	{name: "PUBLISH v5 correlation data overruns", ver: 5, pkt: pk(0x30, str("a"), raw(3, 0x09, 0, 9)), reason: ReasonMalformed, off: 7},
	{name: "PUBLISH v5 from server sub id 0", ver: 5, dir: FromServer, pkt: pk(0x30, str("a"), props(prop(0x0B, vbi(0)))), reason: ReasonProtocolError, off: 6},
	{name: "PUBLISH v5 from server sub id overlong", ver: 5, dir: FromServer, pkt: pk(0x30, str("a"), props(prop(0x0B, raw(0x81, 0x00)))), reason: ReasonMalformed, off: 7},
	{name: "PUBLISH v5 from server sub id 5 bytes", ver: 5, dir: FromServer, pkt: pk(0x30, str("a"), props(prop(0x0B, raw(0x81, 0x80, 0x80, 0x80, 0x01)))), reason: ReasonMalformed, off: 7},

	// ---- Known bad: acknowledgements.
	{name: "PUBACK packet id 0", ver: 4, pkt: pk(0x40, u16(0)), reason: ReasonProtocolError, off: 2},
	{name: "PUBACK truncated", ver: 4, pkt: pk(0x40, raw(1)), reason: ReasonMalformed, off: 2},
	{name: "PUBACK v4 reason code", ver: 4, pkt: pk(0x40, u16(1), raw(0)), reason: ReasonMalformed, off: 4},
	{name: "PUBACK v5 bad reason", ver: 5, pkt: pk(0x40, u16(1), raw(0x92)), reason: ReasonProtocolError, off: 4},
	{name: "PUBREL v5 bad reason", ver: 5, pkt: pk(0x62, u16(1), raw(0x10)), reason: ReasonProtocolError, off: 4},
	{name: "PUBACK v5 topic alias property", ver: 5, pkt: pk(0x40, u16(1), raw(0), props(prop(0x23, u16(1)))), reason: ReasonMalformed, off: 6},
	{name: "PUBACK v5 duplicate reason string", ver: 5, pkt: pk(0x40, u16(1), raw(0), props(prop(0x1F, str("a")), prop(0x1F, str("b")))), reason: ReasonProtocolError, off: 10},
	{name: "PUBACK v5 trailing after props", ver: 5, pkt: pk(0x40, u16(1), raw(0), props(), raw(0)), reason: ReasonMalformed, off: 6},
	{name: "PUBCOMP v5 property length overruns", ver: 5, pkt: pk(0x70, u16(1), raw(0), raw(5)), reason: ReasonMalformed, off: 5},

	// ---- Known bad: SUBSCRIBE and UNSUBSCRIBE.
	{name: "SUBSCRIBE packet id 0", ver: 4, pkt: pk(0x82, u16(0), str("a"), raw(0)), reason: ReasonProtocolError, off: 2},
	{name: "SUBSCRIBE no filters v4", ver: 4, pkt: pk(0x82, u16(1)), reason: ReasonProtocolError, off: 4},
	{name: "SUBSCRIBE no filters v5", ver: 5, pkt: pk(0x82, u16(1), props()), reason: ReasonProtocolError, off: 5},
	{name: "SUBSCRIBE filter truncated", ver: 4, pkt: pk(0x82, u16(1), u16(5), raw('a')), reason: ReasonMalformed, off: 4},
	{name: "SUBSCRIBE second filter without options", ver: 4, pkt: pk(0x82, u16(1), str("a"), raw(0), str("b")), reason: ReasonMalformed, off: 11},
	{name: "SUBSCRIBE v4 qos 3", ver: 4, pkt: pk(0x82, u16(1), str("a"), raw(3)), reason: ReasonMalformed, off: 7},
	{name: "SUBSCRIBE v4 reserved bits", ver: 4, pkt: pk(0x82, u16(1), str("a"), raw(0x04)), reason: ReasonMalformed, off: 7},
	{name: "SUBSCRIBE v5 reserved bits", ver: 5, pkt: pk(0x82, u16(1), props(), str("a"), raw(0x40)), reason: ReasonMalformed, off: 8},
	{name: "SUBSCRIBE v5 qos 3", ver: 5, pkt: pk(0x82, u16(1), props(), str("a"), raw(0x03)), reason: ReasonProtocolError, off: 8},
	{name: "SUBSCRIBE v5 retain handling 3", ver: 5, pkt: pk(0x82, u16(1), props(), str("a"), raw(0x30)), reason: ReasonProtocolError, off: 8},
	{name: "SUBSCRIBE v5 no local shared", ver: 5, pkt: pk(0x82, u16(1), props(), str("$share/g/a"), raw(0x04)), reason: ReasonProtocolError, off: 17},
	{name: "SUBSCRIBE empty filter", ver: 4, pkt: pk(0x82, u16(1), str(""), raw(0)), reason: ReasonMalformed, off: 4},
	{name: "SUBSCRIBE # not last", ver: 4, pkt: pk(0x82, u16(1), str("a/#/b"), raw(0)), reason: ReasonMalformed, off: 4},
	{name: "SUBSCRIBE # not alone", ver: 4, pkt: pk(0x82, u16(1), str("a#"), raw(0)), reason: ReasonMalformed, off: 4},
	{name: "SUBSCRIBE + not alone", ver: 5, pkt: pk(0x82, u16(1), props(), str("a/b+"), raw(0)), reason: ReasonMalformed, off: 5},
	{name: "SUBSCRIBE + prefix", ver: 4, pkt: pk(0x82, u16(1), str("+a"), raw(0)), reason: ReasonMalformed, off: 4},
	{name: "SUBSCRIBE shared no filter", ver: 5, pkt: pk(0x82, u16(1), props(), str("$share/g"), raw(0)), reason: ReasonMalformed, off: 5},
	{name: "SUBSCRIBE shared empty filter", ver: 5, pkt: pk(0x82, u16(1), props(), str("$share/g/"), raw(0)), reason: ReasonMalformed, off: 5},
	{name: "SUBSCRIBE shared empty name", ver: 4, pkt: pk(0x82, u16(1), str("$share//a"), raw(0)), reason: ReasonMalformed, off: 4},
	{name: "SUBSCRIBE shared name wildcard", ver: 5, pkt: pk(0x82, u16(1), props(), str("$share/+/a"), raw(0)), reason: ReasonMalformed, off: 5},
	{name: "SUBSCRIBE shared bad filter", ver: 5, pkt: pk(0x82, u16(1), props(), str("$share/g/a#"), raw(0)), reason: ReasonMalformed, off: 5},
	{name: "SUBSCRIBE filter invalid utf8", ver: 4, pkt: pk(0x82, u16(1), u16(1), raw(0x80), raw(0)), reason: ReasonMalformed, off: 4},
	{name: "SUBSCRIBE v5 sub id 0", ver: 5, pkt: pk(0x82, u16(1), props(prop(0x0B, vbi(0))), str("a"), raw(0)), reason: ReasonProtocolError, off: 5},
	{name: "SUBSCRIBE v5 two sub ids", ver: 5, pkt: pk(0x82, u16(1), props(prop(0x0B, vbi(1)), prop(0x0B, vbi(2))), str("a"), raw(0)), reason: ReasonProtocolError, off: 7},
	{name: "SUBSCRIBE v5 reason string", ver: 5, pkt: pk(0x82, u16(1), props(prop(0x1F, str("x"))), str("a"), raw(0)), reason: ReasonMalformed, off: 5},
	{name: "UNSUBSCRIBE no filters", ver: 4, pkt: pk(0xA2, u16(1)), reason: ReasonProtocolError, off: 4},
	{name: "UNSUBSCRIBE packet id 0", ver: 5, pkt: pk(0xA2, u16(0), props(), str("a")), reason: ReasonProtocolError, off: 2},
	{name: "UNSUBSCRIBE bad filter", ver: 4, pkt: pk(0xA2, u16(1), str("a"), str("#/a")), reason: ReasonMalformed, off: 7},
	{name: "UNSUBSCRIBE filter truncated", ver: 4, pkt: pk(0xA2, u16(1), str("a"), raw(0)), reason: ReasonMalformed, off: 7},
	{name: "UNSUBSCRIBE v5 sub id", ver: 5, pkt: pk(0xA2, u16(1), props(prop(0x0B, vbi(1))), str("a")), reason: ReasonMalformed, off: 5},

	// ---- Known bad: DISCONNECT, AUTH, PING.
	{name: "DISCONNECT v4 with body", ver: 4, pkt: pk(0xE0, raw(0)), reason: ReasonMalformed, off: 2},
	{name: "DISCONNECT v5 bad reason", ver: 5, pkt: pk(0xE0, raw(0x01)), reason: ReasonProtocolError, off: 2},
	{name: "DISCONNECT v5 server session expiry", ver: 5, dir: FromServer, pkt: pk(0xE0, raw(0), props(prop(0x11, u32(1)))), reason: ReasonProtocolError, off: 4},
	{name: "DISCONNECT v5 topic alias property", ver: 5, pkt: pk(0xE0, raw(0), props(prop(0x23, u16(1)))), reason: ReasonMalformed, off: 4},
	{name: "AUTH v5 reason only", ver: 5, pkt: pk(0xF0, raw(0x18)), reason: ReasonMalformed, off: 3},
	{name: "AUTH v5 bad reason", ver: 5, pkt: pk(0xF0, raw(0x01), props(prop(0x15, str("m")))), reason: ReasonProtocolError, off: 2},
	{name: "AUTH v5 no method", ver: 5, pkt: pk(0xF0, raw(0x18), props(prop(0x16, str("d")))), reason: ReasonProtocolError, off: 3},
	{name: "AUTH v5 duplicate method", ver: 5, pkt: pk(0xF0, raw(0x18), props(prop(0x15, str("m")), prop(0x15, str("m")))), reason: ReasonProtocolError, off: 8},

	// ---- Known bad: server to client.
	{name: "CONNACK v4 reserved flags", ver: 4, dir: FromServer, pkt: pk(0x20, raw(2, 0)), reason: ReasonMalformed, off: 2},
	{name: "CONNACK v4 code 6", ver: 4, dir: FromServer, pkt: pk(0x20, raw(0, 6)), reason: ReasonProtocolError, off: 3},
	{name: "CONNACK v4 session present refused", ver: 4, dir: FromServer, pkt: pk(0x20, raw(1, 4)), reason: ReasonProtocolError, off: 2},
	{name: "CONNACK v4 trailing", ver: 4, dir: FromServer, pkt: pk(0x20, raw(0, 0, 0)), reason: ReasonMalformed, off: 4},
	{name: "CONNACK v5 no properties", ver: 5, dir: FromServer, pkt: pk(0x20, raw(0, 0)), reason: ReasonMalformed, off: 4},
	{name: "CONNACK v5 bad code", ver: 5, dir: FromServer, pkt: pk(0x20, raw(0, 0x8B), props()), reason: ReasonProtocolError, off: 3},
	{name: "CONNACK v5 maximum QoS 2", ver: 5, dir: FromServer, pkt: pk(0x20, raw(0, 0), props(prop(0x24, raw(2)))), reason: ReasonProtocolError, off: 5},
	{name: "CONNACK v5 will delay", ver: 5, dir: FromServer, pkt: pk(0x20, raw(0, 0), props(prop(0x18, u32(1)))), reason: ReasonMalformed, off: 5},
	{name: "SUBACK no codes", ver: 4, dir: FromServer, pkt: pk(0x90, u16(1)), reason: ReasonProtocolError, off: 4},
	{name: "SUBACK v4 bad code", ver: 4, dir: FromServer, pkt: pk(0x90, u16(1), raw(0, 0x87)), reason: ReasonProtocolError, off: 5},
	{name: "SUBACK v5 bad code", ver: 5, dir: FromServer, pkt: pk(0x90, u16(1), props(), raw(0x03)), reason: ReasonProtocolError, off: 5},
	{name: "SUBACK packet id 0", ver: 4, dir: FromServer, pkt: pk(0x90, u16(0), raw(0)), reason: ReasonProtocolError, off: 2},
	{name: "UNSUBACK v4 trailing", ver: 4, dir: FromServer, pkt: pk(0xB0, u16(1), raw(0)), reason: ReasonMalformed, off: 4},
	{name: "UNSUBACK v5 no codes", ver: 5, dir: FromServer, pkt: pk(0xB0, u16(1), props()), reason: ReasonProtocolError, off: 5},
	{name: "UNSUBACK v5 bad code", ver: 5, dir: FromServer, pkt: pk(0xB0, u16(1), props(), raw(0x01)), reason: ReasonProtocolError, off: 5},
	{name: "PINGRESP with body", ver: 5, dir: FromServer, pkt: raw(0xD0, 1, 0), reason: ReasonMalformed, off: 2},
}
