package frame

import "fmt"

// Reasons reported in Error.Reason. They are stable, machine-readable labels
// for security events and metrics; values never change once released, new
// ones may be added.
const (
	// ReasonMalformed: the packet cannot be parsed as the specification
	// lays it out (a length that overruns the packet, a missing field,
	// invalid UTF-8, a reserved bit set, trailing bytes...). Code 0x81.
	ReasonMalformed = "malformed_packet"
	// ReasonProtocolError: the packet parses but carries something the
	// specification forbids (packet identifier 0, a wildcard in a topic
	// name, a property given twice, a packet type the direction does not
	// allow...). Code 0x82.
	ReasonProtocolError = "protocol_error"
	// ReasonTooLarge: the fixed header announces a packet bigger than
	// Limits.MaxPacketSize. Code 0x95.
	ReasonTooLarge = "packet_too_large"
	// ReasonFirstNotConnect: a client's first packet is not CONNECT
	// [MQTT-3.1.0-1]. Code 0x82.
	ReasonFirstNotConnect = "first_packet_not_connect"
	// ReasonSecondConnect: a client sent CONNECT twice on one connection
	// [MQTT-3.1.0-2]. Code 0x82.
	ReasonSecondConnect = "second_connect"
	// ReasonUnsupportedVersion: the CONNECT names MQTT or MQIsdp with a
	// protocol level that is not 3 (MQIsdp), 4 or 5 (MQTT); also returned
	// when Validate is called with a version other than 3, 4 or 5, or a
	// server-side Reader is used before SetVersion. Code 0x84.
	ReasonUnsupportedVersion = "unsupported_protocol_version"
	// ReasonFirstNotConnack: a server's first packet is neither CONNACK nor
	// (MQTT 5) AUTH [MQTT-3.2.0-1]. Code 0x82.
	ReasonFirstNotConnack = "first_packet_not_connack"
	// ReasonSecondConnack: a server sent CONNACK twice on one connection
	// [MQTT-3.2.0-2]. Code 0x82.
	ReasonSecondConnack = "second_connack"
)

// MQTT 5 reason codes carried in Error.Code.
const (
	CodeMalformedPacket            byte = 0x81
	CodeProtocolError              byte = 0x82
	CodeUnsupportedProtocolVersion byte = 0x84
	CodePacketTooLarge             byte = 0x95
)

// Error describes why a packet was refused. Validate, Reader and Conn
// return it as an error of type *Error; use errors.As to get it.
//
// Detail is written for operators and names the packet and field in the
// terms of the MQTT specification. It never contains client data (payload
// bytes, topic names, client identifiers, user names, passwords), only
// lengths, offsets, identifiers and values of flag and code bytes.
type Error struct {
	// Type is the MQTT control packet type (1..15) of the refused packet,
	// or 0 if its fixed header could not be read (type 0 is reserved).
	Type byte
	// Offset is the byte offset, within the packet, of the offending field
	// (0 is the first byte of the fixed header). For a missing field it is
	// where the field should have started.
	Offset int
	// Reason is one of the Reason* constants.
	Reason string
	// Detail names the packet and field, e.g. "SUBSCRIBE: filter 1 (offset
	// 5) has no subscription options byte".
	Detail string
	// Code is the MQTT 5 reason code for the refusal: 0x81 malformed
	// packet, 0x82 protocol error, 0x84 unsupported protocol version, 0x95
	// packet too large.
	Code byte
}

// Error returns "mqtt <reason>: <detail>".
func (e *Error) Error() string { return "mqtt " + e.Reason + ": " + e.Detail }

// codeOf maps a Reason to its MQTT 5 reason code.
func codeOf(reason string) byte {
	switch reason {
	case ReasonMalformed:
		return CodeMalformedPacket
	case ReasonTooLarge:
		return CodePacketTooLarge
	case ReasonUnsupportedVersion:
		return CodeUnsupportedProtocolVersion
	default:
		return CodeProtocolError
	}
}

// MQTT control packet types (MQTT 5 section 2.1.2, the same in 3.1.1):
// the high four bits of a packet's first byte.
const (
	TypeConnect     = 1
	TypeConnack     = 2
	TypePublish     = 3
	TypePuback      = 4
	TypePubrec      = 5
	TypePubrel      = 6
	TypePubcomp     = 7
	TypeSubscribe   = 8
	TypeSuback      = 9
	TypeUnsubscribe = 10
	TypeUnsuback    = 11
	TypePingreq     = 12
	TypePingresp    = 13
	TypeDisconnect  = 14
	TypeAuth        = 15
)

var typeNames = [16]string{
	"reserved packet type 0", "CONNECT", "CONNACK", "PUBLISH", "PUBACK", "PUBREC", "PUBREL", "PUBCOMP",
	"SUBSCRIBE", "SUBACK", "UNSUBSCRIBE", "UNSUBACK", "PINGREQ", "PINGRESP", "DISCONNECT", "AUTH",
}

// newError builds an Error whose Detail is the packet name followed by the
// formatted text. Only called on the refusal path.
func newError(typ byte, off int, reason, format string, args ...any) *Error {
	return &Error{
		Type:   typ,
		Offset: off,
		Reason: reason,
		Detail: typeNames[typ&15] + ": " + fmt.Sprintf(format, args...),
		Code:   codeOf(reason),
	}
}
