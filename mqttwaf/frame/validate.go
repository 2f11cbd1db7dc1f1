package frame

import (
	"bytes"
	"fmt"
	"unicode/utf8"
)

// Validate checks one whole packet, fixed header included, sent in
// direction dir by a peer speaking protocol version (3 = MQTT 3.1, 4 =
// MQTT 3.1.1, 5 = MQTT 5.0). It returns nil if the packet is well formed for
// that version and direction, or an *Error naming the first problem.
//
// For CONNECT, version is ignored: the packet declares its own protocol
// level. Validate is stateless: it does not know whether CONNECT was the
// first packet of its connection; Reader and Conn track that.
//
// Validate never panics, whatever the bytes, does not retain pkt and does
// not allocate unless it refuses the packet. It is safe for concurrent use.
func Validate(version byte, dir Direction, pkt []byte) error {
	if e := validate(version, dir, pkt); e != nil {
		return e
	}
	return nil
}

func validate(version byte, dir Direction, pkt []byte) *Error {
	if len(pkt) == 0 {
		return newError(0, 0, ReasonMalformed, "empty packet")
	}
	if e := checkFirstByte(version, dir, pkt[0]); e != nil {
		return e
	}
	typ := pkt[0] >> 4
	rem, hlen, st := header(pkt)
	switch {
	case st == vbiShort:
		return newError(typ, 1, ReasonMalformed, "remaining length: the packet ends inside it")
	case st == vbiBad:
		return newError(typ, 1, ReasonMalformed, "remaining length: not a minimally encoded Variable Byte Integer of at most 4 bytes [MQTT-1.5.5-1]")
	case hlen+rem != len(pkt):
		return newError(typ, 1, ReasonMalformed, "remaining length %d does not match the %d bytes after the fixed header", rem, len(pkt)-hlen)
	}
	p := parser{b: pkt, i: hlen, end: len(pkt), typ: typ, ver: version, dir: dir}
	switch typ {
	case TypeConnect:
		return p.connect()
	case TypeConnack:
		return p.connack()
	case TypePublish:
		return p.publish(pkt[0])
	case TypePuback, TypePubrec, TypePubrel, TypePubcomp:
		return p.ack()
	case TypeSubscribe:
		return p.subscribe()
	case TypeSuback:
		return p.suback()
	case TypeUnsubscribe:
		return p.unsubscribe()
	case TypeUnsuback:
		return p.unsuback()
	case TypePingreq, TypePingresp:
		return p.done("fixed header")
	case TypeDisconnect:
		return p.disconnect()
	default: // TypeAuth; checkFirstByte refused the rest
		return p.auth()
	}
}

// parser walks one whole packet. Every read is bounded by end: the end of
// the packet, or of the property section being read.
type parser struct {
	b   []byte
	i   int // next unread offset
	end int
	typ byte
	ver byte
	dir Direction
}

func (p *parser) fail(off int, reason, format string, args ...any) *Error {
	return newError(p.typ, off, reason, format, args...)
}

// done reports trailing bytes after the last field of the packet.
func (p *parser) done(last string) *Error {
	if p.i != len(p.b) {
		return p.fail(p.i, ReasonMalformed, "%d unexpected byte(s) after the %s", len(p.b)-p.i, last)
	}
	return nil
}

// name formats a field name with its 1-based index (filter 2), on the
// refusal path only.
func name(what string, idx int) string {
	if idx > 0 {
		return fmt.Sprintf("%s %d", what, idx)
	}
	return what
}

// byte1 reads one byte.
func (p *parser) byte1(what string) (byte, *Error) {
	if p.i >= p.end {
		return 0, p.fail(p.i, ReasonMalformed, "%s missing: the %s ends at offset %d", what, p.scope(), p.end)
	}
	p.i++
	return p.b[p.i-1], nil
}

// u16 reads a Two Byte Integer.
func (p *parser) u16(what string) (int, *Error) {
	if p.end-p.i < 2 {
		return 0, p.fail(p.i, ReasonMalformed, "%s missing: the %s ends at offset %d", what, p.scope(), p.end)
	}
	p.i += 2
	return int(p.b[p.i-2])<<8 | int(p.b[p.i-1]), nil
}

// packetID reads a non-zero Packet Identifier [MQTT-2.2.1-3].
func (p *parser) packetID() *Error {
	off := p.i
	id, e := p.u16("packet identifier")
	if e != nil {
		return e
	}
	if id == 0 {
		return p.fail(off, ReasonProtocolError, "packet identifier is 0 [MQTT-2.2.1-3]")
	}
	return nil
}

// binary reads Binary Data (a Two Byte Integer length and that many bytes)
// and returns it.
func (p *parser) binary(what string, idx int) ([]byte, *Error) {
	off := p.i
	if p.end-off < 2 {
		return nil, p.fail(off, ReasonMalformed, "%s missing: the %s ends at offset %d", name(what, idx), p.scope(), p.end)
	}
	n := int(p.b[off])<<8 | int(p.b[off+1])
	if n > p.end-off-2 {
		return nil, p.fail(off, ReasonMalformed, "%s (offset %d): length %d overruns the %s by %d bytes", name(what, idx), off, n, p.scope(), n-(p.end-off-2))
	}
	p.i = off + 2 + n
	return p.b[off+2 : p.i], nil
}

// str reads a UTF-8 Encoded String: well-formed UTF-8 without U+0000
// [MQTT-1.5.4-1] [MQTT-1.5.4-2].
func (p *parser) str(what string, idx int) ([]byte, *Error) {
	off := p.i
	s, e := p.binary(what, idx)
	if e != nil {
		return nil, e
	}
	if !validString(s) {
		return nil, p.fail(off, ReasonMalformed, "%s (offset %d): not well-formed UTF-8, or contains U+0000 [MQTT-1.5.4-1]", name(what, idx), off)
	}
	return s, nil
}

// scope names what end bounds, for messages.
func (p *parser) scope() string {
	if p.end != len(p.b) {
		return "property section"
	}
	return "packet"
}

// validString reports whether s is well-formed UTF-8 without U+0000.
// utf8.Valid also refuses the surrogates U+D800..U+DFFF [MQTT-1.5.4-1].
func validString(s []byte) bool {
	for i, c := range s {
		if c == 0 {
			return false
		}
		if c >= utf8.RuneSelf {
			return utf8.Valid(s[i:]) && bytes.IndexByte(s[i:], 0) < 0
		}
	}
	return true
}
