package frame

// Direction says which side of a connection sent a packet. Packet types,
// properties and a few rules differ by direction.
type Direction uint8

const (
	// FromClient is what a broker reads: CONNECT, PUBLISH, PUBACK, PUBREC,
	// PUBREL, PUBCOMP, SUBSCRIBE, UNSUBSCRIBE, PINGREQ, DISCONNECT and (MQTT
	// 5) AUTH.
	FromClient Direction = iota
	// FromServer is what a client, or a proxy, reads from a broker:
	// CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK, UNSUBACK,
	// PINGRESP and (MQTT 5) DISCONNECT and AUTH.
	FromServer
)

// String returns "client" or "server".
func (d Direction) String() string {
	if d == FromServer {
		return "server"
	}
	return "client"
}

// MaxPacketSize is the largest packet the protocol can frame: one type
// byte, a four-byte remaining length and 268,435,455 bytes.
const MaxPacketSize = 1 + 4 + maxVBI

const maxVBI = 268435455

// Packet types each direction may send, as bit masks over the type number.
const (
	clientTypes = 1<<TypeConnect | 1<<TypePublish | 1<<TypePuback | 1<<TypePubrec | 1<<TypePubrel |
		1<<TypePubcomp | 1<<TypeSubscribe | 1<<TypeUnsubscribe | 1<<TypePingreq | 1<<TypeDisconnect
	serverTypes = 1<<TypeConnack | 1<<TypePublish | 1<<TypePuback | 1<<TypePubrec | 1<<TypePubrel |
		1<<TypePubcomp | 1<<TypeSuback | 1<<TypeUnsuback | 1<<TypePingresp
	v5Types = 1<<TypeAuth | 1<<TypeDisconnect // AUTH both ways, DISCONNECT from the server: MQTT 5 only
)

// checkFirstByte checks the packet type and flags in the first byte of a
// fixed header, for a peer of the given protocol version sending in dir.
// version is not consulted for CONNECT (it declares its own).
func checkFirstByte(version byte, dir Direction, b0 byte) *Error {
	typ, flags := b0>>4, b0&15
	if typ == 0 {
		return newError(0, 0, ReasonMalformed, "first byte 0x%02X: packet type 0 is reserved", b0)
	}
	if typ != TypeConnect && (version < 3 || version > 5) {
		return newError(typ, 0, ReasonUnsupportedVersion, "protocol version %d is not 3, 4 or 5 (the version comes from the CONNECT)", version)
	}
	allowed := uint16(clientTypes)
	if dir == FromServer {
		allowed = serverTypes
	}
	if version == 5 {
		allowed |= v5Types
	}
	if allowed&(1<<typ) == 0 {
		if typ == TypeAuth {
			return newError(typ, 0, ReasonProtocolError, "AUTH exists only in MQTT 5 (this peer speaks protocol version %d)", version)
		}
		if typ == TypeDisconnect && dir == FromServer {
			return newError(typ, 0, ReasonProtocolError, "a server sends DISCONNECT only in MQTT 5 (this peer speaks protocol version %d)", version)
		}
		return newError(typ, 0, ReasonProtocolError, "a %s must not send packet type %d", dir, typ)
	}
	switch typ {
	case TypePublish:
		qos := flags >> 1 & 3
		if qos == 3 {
			return newError(typ, 0, ReasonMalformed, "fixed header flags 0x%X: QoS 3 [MQTT-3.3.1-4]", flags)
		}
		if qos == 0 && flags&8 != 0 {
			return newError(typ, 0, ReasonProtocolError, "fixed header flags 0x%X: DUP set on a QoS 0 message [MQTT-3.3.1-2]", flags)
		}
	case TypePubrel, TypeSubscribe, TypeUnsubscribe:
		// MQTT 3.1 sends these at QoS 1 and sets DUP on a retry.
		if flags != 2 && !(version == 3 && flags == 0xA) {
			return newError(typ, 0, ReasonMalformed, "fixed header flags 0x%X, must be 0x2 [MQTT-2.2.2-1]", flags)
		}
	default:
		if flags != 0 {
			return newError(typ, 0, ReasonMalformed, "fixed header flags 0x%X, must be 0x0 [MQTT-2.2.2-1]", flags)
		}
	}
	return nil
}

// VBI read results.
const (
	vbiOK    = iota
	vbiShort // the bytes end inside the integer
	vbiBad   // more than four bytes, or not minimally encoded
)

// readVBI reads a Variable Byte Integer starting at b[i] and returns its
// value, its encoded length and a vbi* status. MQTT allows at most four
// bytes and requires the shortest encoding [MQTT-1.5.5-1]: a final byte 0x00
// after a continuation byte is an overlong encoding.
func readVBI(b []byte, i int) (val, n, status int) {
	for n = 0; n < 4; n++ {
		if i+n >= len(b) {
			return 0, n, vbiShort
		}
		c := b[i+n]
		val |= int(c&0x7F) << (7 * n)
		if c < 0x80 {
			if c == 0 && n > 0 {
				return 0, n + 1, vbiBad
			}
			return val, n + 1, vbiOK
		}
	}
	return 0, 4, vbiBad
}

// header reads the fixed header of b: the type and flags byte and the
// remaining length. It returns the header length, or 0 and a status of
// vbiShort if b ends inside the remaining length.
func header(b []byte) (rem, hlen, status int) {
	if len(b) == 0 {
		return 0, 0, vbiShort
	}
	rem, n, status := readVBI(b, 1)
	return rem, 1 + n, status
}
