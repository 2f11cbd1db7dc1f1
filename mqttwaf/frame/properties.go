package frame

// MQTT 5 property identifiers (section 2.2.2.2) that the validator refers
// to by name.
const (
	propPayloadFormat     = 0x01
	propResponseTopic     = 0x08
	propSubscriptionID    = 0x0B
	propSessionExpiry     = 0x11
	propAuthMethod        = 0x15
	propAuthData          = 0x16
	propReceiveMaximum    = 0x21
	propTopicAlias        = 0x23
	propUser              = 0x26
	propMaximumPacketSize = 0x27
)

// Where a property may appear: one bit per packet type or section.
const (
	inConnect uint16 = 1 << iota
	inConnack
	inPublish
	inAck // PUBACK, PUBREC, PUBREL, PUBCOMP
	inSubscribe
	inSuback
	inUnsubscribe
	inUnsuback
	inDisconnect
	inAuth
	inWill // the will properties of a CONNECT
)

// Property value types.
const (
	kindByte   = iota + 1 // a Byte whose only valid values are 0 and 1
	kindU16               // Two Byte Integer
	kindU32               // Four Byte Integer
	kindVBI               // Variable Byte Integer
	kindString            // UTF-8 Encoded String
	kindBinary            // Binary Data
	kindPair              // UTF-8 String Pair
)

type propInfo struct {
	name string
	kind uint8
	in   uint16
}

// propTable is the MQTT 5 property table (section 2.2.2.2). Identifiers absent
// here (kind 0) are not properties: a packet carrying one is malformed.
var propTable = [0x2B]propInfo{
	0x01: {"payload format indicator", kindByte, inPublish | inWill},
	0x02: {"message expiry interval", kindU32, inPublish | inWill},
	0x03: {"content type", kindString, inPublish | inWill},
	0x08: {"response topic", kindString, inPublish | inWill},
	0x09: {"correlation data", kindBinary, inPublish | inWill},
	0x0B: {"subscription identifier", kindVBI, inPublish | inSubscribe},
	0x11: {"session expiry interval", kindU32, inConnect | inConnack | inDisconnect},
	0x12: {"assigned client identifier", kindString, inConnack},
	0x13: {"server keep alive", kindU16, inConnack},
	0x15: {"authentication method", kindString, inConnect | inConnack | inAuth},
	0x16: {"authentication data", kindBinary, inConnect | inConnack | inAuth},
	0x17: {"request problem information", kindByte, inConnect},
	0x18: {"will delay interval", kindU32, inWill},
	0x19: {"request response information", kindByte, inConnect},
	0x1A: {"response information", kindString, inConnack},
	0x1C: {"server reference", kindString, inConnack | inDisconnect},
	0x1F: {"reason string", kindString, inConnack | inAck | inSuback | inUnsuback | inDisconnect | inAuth},
	0x21: {"receive maximum", kindU16, inConnect | inConnack},
	0x22: {"topic alias maximum", kindU16, inConnect | inConnack},
	0x23: {"topic alias", kindU16, inPublish},
	0x24: {"maximum QoS", kindByte, inConnack},
	0x25: {"retain available", kindByte, inConnack},
	0x26: {"user property", kindPair, inConnect | inConnack | inPublish | inAck | inSubscribe | inSuback | inUnsubscribe | inUnsuback | inDisconnect | inAuth | inWill},
	0x27: {"maximum packet size", kindU32, inConnect | inConnack},
	0x28: {"wildcard subscription available", kindByte, inConnack},
	0x29: {"subscription identifiers available", kindByte, inConnack},
	0x2A: {"shared subscription available", kindByte, inConnack},
}

// has reports whether a property set returned by properties contains id.
func has(set uint64, id byte) bool { return set&(1<<id) != 0 }

// properties reads a property section (a Variable Byte Integer length and
// that many bytes of properties) allowed in where, and returns the set of
// identifiers seen. section names it in messages ("properties", "will
// properties").
//
// It refuses, as malformed: a length that is not a valid Variable Byte
// Integer or overruns the packet, an identifier that is not a property of
// this packet [MQTT-2.2.2-2 / 2.2.2.2], a value that overruns the section,
// invalid UTF-8. As protocol errors: a property other than user property
// (and subscription identifier in a server's PUBLISH) given twice, and the
// values the specification forbids: 0 for receive maximum, maximum packet
// size, topic alias and subscription identifier; anything but 0 or 1 for
// the byte-valued ones; a response topic that is not a valid topic name; a
// subscription identifier in a client's PUBLISH [MQTT-3.3.4-6]; a session
// expiry interval in a server's DISCONNECT [MQTT-3.14.2-2].
func (p *parser) properties(where uint16, section string) (uint64, *Error) {
	off := p.i
	n, vlen, st := readVBI(p.b[:p.end], off)
	if st != vbiOK {
		return 0, p.fail(off, ReasonMalformed, "%s length: missing, or not a minimally encoded Variable Byte Integer", section)
	}
	p.i += vlen
	if n > p.end-p.i {
		return 0, p.fail(off, ReasonMalformed, "%s length %d overruns the packet by %d bytes", section, n, n-(p.end-p.i))
	}
	// Values are read against the section's end; on refusal the parser is
	// abandoned, so only the success path restores the packet's end.
	outer := p.end
	p.end = p.i + n
	var seen uint64
	for p.i < p.end {
		at := p.i
		id := p.b[at]
		p.i++
		if int(id) >= len(propTable) || propTable[id].in&where == 0 {
			if int(id) < len(propTable) && propTable[id].kind != 0 {
				return 0, p.fail(at, ReasonMalformed, "%s: property 0x%02X (%s) is not allowed here", section, id, propTable[id].name)
			}
			return 0, p.fail(at, ReasonMalformed, "%s: 0x%02X is not a property identifier", section, id)
		}
		info := &propTable[id]
		repeatable := id == propUser || id == propSubscriptionID && where == inPublish
		if has(seen, id) && !repeatable {
			return 0, p.fail(at, ReasonProtocolError, "%s: property 0x%02X (%s) appears more than once", section, id, info.name)
		}
		seen |= 1 << id
		switch info.kind {
		case kindByte:
			v, e := p.byte1(info.name)
			if e != nil {
				return 0, e
			}
			if v > 1 {
				return 0, p.fail(at, ReasonProtocolError, "%s: %s is %d, must be 0 or 1", section, info.name, v)
			}
		case kindU16:
			v, e := p.u16(info.name)
			if e != nil {
				return 0, e
			}
			if v == 0 && (id == propReceiveMaximum || id == propTopicAlias) {
				return 0, p.fail(at, ReasonProtocolError, "%s: %s is 0", section, info.name)
			}
		case kindU32:
			if p.end-p.i < 4 {
				return 0, p.fail(p.i, ReasonMalformed, "%s: %s value missing: the property section ends at offset %d", section, info.name, p.end)
			}
			zero := p.b[p.i]|p.b[p.i+1]|p.b[p.i+2]|p.b[p.i+3] == 0
			p.i += 4
			if zero && id == propMaximumPacketSize {
				return 0, p.fail(at, ReasonProtocolError, "%s: %s is 0", section, info.name)
			}
			if id == propSessionExpiry && where == inDisconnect && p.dir == FromServer {
				return 0, p.fail(at, ReasonProtocolError, "%s: a server must not send a session expiry interval [MQTT-3.14.2-2]", section)
			}
		case kindVBI: // subscription identifier
			v, vl, st := readVBI(p.b[:p.end], p.i)
			if st != vbiOK {
				return 0, p.fail(p.i, ReasonMalformed, "%s: %s: missing, or not a minimally encoded Variable Byte Integer", section, info.name)
			}
			p.i += vl
			if v == 0 {
				return 0, p.fail(at, ReasonProtocolError, "%s: %s is 0", section, info.name)
			}
			if where == inPublish && p.dir == FromClient {
				return 0, p.fail(at, ReasonProtocolError, "%s: a client's PUBLISH must not carry a subscription identifier [MQTT-3.3.4-6]", section)
			}
		case kindString:
			s, e := p.str(info.name, 0)
			if e != nil {
				return 0, e
			}
			if id == propResponseTopic {
				if len(s) == 0 {
					return 0, p.fail(at, ReasonProtocolError, "%s: response topic is empty", section)
				}
				if hasWildcard(s) {
					return 0, p.fail(at, ReasonProtocolError, "%s: response topic contains a wildcard [MQTT-3.3.2-14]", section)
				}
			}
		case kindBinary:
			if _, e := p.binary(info.name, 0); e != nil {
				return 0, e
			}
		case kindPair:
			if _, e := p.str("user property name", 0); e != nil {
				return 0, e
			}
			if _, e := p.str("user property value", 0); e != nil {
				return 0, e
			}
		}
	}
	p.end = outer
	return seen, nil
}
