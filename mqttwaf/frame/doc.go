// Package frame is a strict MQTT frame validator: it checks every packet a
// peer sends, structurally, for its type, direction and protocol version
// (MQTT 3.1, 3.1.1 and 5.0), before any packet decoder sees it.
//
// Packet decoders trust what they read. mochi-mqtt v2.7.9's decoder panics on
// some malformed packets (issue #501: a SUBSCRIBE whose topic filter has no
// subscription options byte indexes past the end of the packet), and a
// panic in a connection goroutine kills the whole broker. A frame.Conn in
// front of the decoder passes on only whole packets that the specification
// allows, so hostile bytes cost the sender its connection, never the broker.
//
// The package is a leaf: standard library only, no broker types, usable in
// front of any MQTT decoder, in both directions (a broker reads FromClient,
// a client or proxy reads FromServer).
//
// # Use
//
// Validate checks one whole packet and is stateless:
//
//	err := frame.Validate(5, frame.FromClient, pkt) // nil, or an *Error
//
// Reader splits a byte stream into validated packets and tracks the state
// Validate cannot see (CONNECT first, its version for the rest, no second
// CONNECT); a proxy reads each side of a connection with one:
//
//	r := frame.NewReader(conn, frame.FromClient, frame.Limits{MaxPacketSize: 1 << 20})
//	for {
//		pkt, err := r.Next() // valid until the next call
//		...
//	}
//
// Conn wraps the net.Conn a broker reads (the accepted socket, or the TLS
// or WebSocket stream) so that Read returns only bytes of accepted packets;
// a listener hands the broker frame.NewConn(c, limits) instead of c. On a
// refused packet Conn tells an MQTT 5 client why (CONNACK or DISCONNECT
// with the reason code), stops further writes, and Read fails with the
// *Error; the broker then closes the connection.
//
// # What is checked
//
// Fixed header: a packet type the direction and version allow (anything
// else is a protocol error; AUTH, and DISCONNECT from a server, exist only
// in MQTT 5); flags exactly as specified per type (0010 for PUBREL,
// SUBSCRIBE and UNSUBSCRIBE, 0000 for the others, PUBLISH QoS 3 malformed,
// DUP with QoS 0 a protocol error); a remaining length that is a minimally
// encoded Variable Byte Integer of at most 4 bytes and matches the packet
// exactly. Reader and Conn refuse a packet bigger than Limits.MaxPacketSize
// from its fixed header, before buffering its body.
//
// Every field: strings, binary data and property sections fit in the
// packet; strings are well-formed UTF-8 without U+0000 (surrogates
// included); no bytes after the last field where the packet has an end.
// MQTT 5 properties: only the identifiers allowed for the packet (or will),
// none but user property (and a server's subscription identifiers) twice,
// values in range (receive maximum, maximum packet size, topic alias and
// subscription identifier not 0; the flag-like bytes 0 or 1; a response
// topic without wildcards).
//
// Per packet: CONNECT protocol name and level (MQIsdp 3, MQTT 4 or 5),
// connect flags (reserved bit, will QoS and retain only with a will, will
// QoS not 3, in 3.1 and 3.1.1 no password without a user name), properties,
// payload fields in order; a non-empty will topic without wildcards. PUBLISH
// topic name without wildcards, non-empty unless MQTT 5 with a topic alias,
// a non-zero packet identifier at QoS 1 and 2, no subscription identifier
// from a client; the payload is opaque. Acknowledgements: a non-zero packet
// identifier, reason codes defined for the packet type. SUBSCRIBE and
// UNSUBSCRIBE: at least one topic filter, each valid ('#' alone and last,
// '+' alone in its level, shared subscriptions as $share/{name}/{filter}),
// each SUBSCRIBE filter followed by its options byte with reserved bits
// zero, QoS and retain handling below 3, no local off on a shared
// subscription. AUTH: empty, or a reason code and properties with an
// authentication method.
//
// Deliberate choices where the specification leaves room: shared
// subscription syntax is enforced for every version, because brokers honour
// $share/ for 3.1.1 clients too; MQTT 3.1 (level 3) may set DUP on PUBREL,
// SUBSCRIBE and UNSUBSCRIBE retries, as 3.1 specified; mosquitto's bridge
// levels (0x83, 0x84) are refused as unsupported versions; a payload
// format indicator of 1 is not checked against the payload (the
// specification lets the receiver choose, and it is the payload policy's
// job). Nothing is stricter than the specification: packets from
// paho.golang, paho.mqtt.golang, mosquitto_pub/sub and mochi's encoders pass
// (see the tests).
//
// # Errors
//
// Refusals are *Error values: the packet type, the byte offset of the
// offending field, a stable machine-readable Reason for security events
// and metrics, the MQTT 5 reason code, and a Detail for operators that
// names the packet and field in the specification's terms (with its
// normative statement where there is one) and never quotes client data.
//
// # Cost
//
// Validate allocates nothing unless it refuses the packet and costs about
// 20 ns for a small PUBLISH (the payload is not read). See BENCHMARKS.md and
// bench_test.go.
package frame
