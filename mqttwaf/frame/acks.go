package frame

// codeSet is a set of reason codes.
type codeSet [4]uint64

func codes(cs ...byte) (s codeSet) {
	for _, c := range cs {
		s[c>>6] |= 1 << (c & 63)
	}
	return s
}

func (s *codeSet) has(c byte) bool { return s[c>>6]&(1<<(c&63)) != 0 }

// Reason codes each packet may carry (MQTT 5 sections 3.2.2.2, 3.4.2.1,
// 3.5.2.1, 3.6.2.1, 3.7.2.1, 3.9.3, 3.11.3, 3.14.2.1, 3.15.2.1; MQTT 3.1.1
// sections 3.2.2.3 and 3.9.3).
var (
	connackCodes5    = codes(0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x8C, 0x90, 0x95, 0x97, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F)
	pubackCodes      = codes(0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99) // PUBACK and PUBREC
	pubrelCodes      = codes(0x00, 0x92)                                           // PUBREL and PUBCOMP
	subackCodes4     = codes(0x00, 0x01, 0x02, 0x80)
	subackCodes5     = codes(0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2)
	unsubackCodes5   = codes(0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91)
	disconnectCodes5 = codes(0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D, 0x8E, 0x8F, 0x90, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2)
	authCodes5       = codes(0x00, 0x18, 0x19)
)

// reasonCode reads a reason code that must be in set.
func (p *parser) reasonCode(set *codeSet) *Error {
	off := p.i
	c, e := p.byte1("reason code")
	if e != nil {
		return e
	}
	if !set.has(c) {
		return p.fail(off, ReasonProtocolError, "reason code 0x%02X is not defined for this packet", c)
	}
	return nil
}

// ack checks a PUBACK, PUBREC, PUBREL or PUBCOMP: a non-zero packet
// identifier; in MQTT 3.1.1 nothing else; in MQTT 5 optionally a reason code
// for the packet type, then optionally properties (reason string, user
// properties).
func (p *parser) ack() *Error {
	if e := p.packetID(); e != nil {
		return e
	}
	if p.ver < 5 || p.i == len(p.b) {
		return p.done("packet identifier")
	}
	set := &pubackCodes
	if p.typ == TypePubrel || p.typ == TypePubcomp {
		set = &pubrelCodes
	}
	if e := p.reasonCode(set); e != nil {
		return e
	}
	if p.i == len(p.b) {
		return nil
	}
	if _, e := p.properties(inAck, "properties"); e != nil {
		return e
	}
	return p.done("properties")
}

// connack checks a CONNACK: acknowledge flags with only bit 0 (session
// present) usable [MQTT-3.2.2-1], a return or reason code for the version,
// session present 0 when the code refuses the connection [MQTT-3.2.2-4]
// [MQTT-3.2.2-6], then (MQTT 5) properties.
func (p *parser) connack() *Error {
	flagsOff := p.i
	flags, e := p.byte1("acknowledge flags")
	if e != nil {
		return e
	}
	if flags&0xFE != 0 {
		return p.fail(flagsOff, ReasonMalformed, "acknowledge flags 0x%02X: reserved bits set [MQTT-3.2.2-1]", flags)
	}
	codeOff := p.i
	code, e := p.byte1("reason code")
	if e != nil {
		return e
	}
	if p.ver == 5 && !connackCodes5.has(code) || p.ver < 5 && code > 5 {
		return p.fail(codeOff, ReasonProtocolError, "reason code 0x%02X is not defined for this packet", code)
	}
	if flags&1 != 0 && code != 0 {
		return p.fail(flagsOff, ReasonProtocolError, "session present set with refusal code 0x%02X [MQTT-3.2.2-4]", code)
	}
	if p.ver == 5 {
		if _, e := p.properties(inConnack, "properties"); e != nil {
			return e
		}
		return p.done("properties")
	}
	return p.done("return code")
}

// suback checks a SUBACK: a non-zero packet identifier, (MQTT 5)
// properties, then one or more reason codes [MQTT-3.9.3-1].
func (p *parser) suback() *Error {
	if e := p.packetID(); e != nil {
		return e
	}
	set := &subackCodes4
	if p.ver == 5 {
		if _, e := p.properties(inSuback, "properties"); e != nil {
			return e
		}
		set = &subackCodes5
	}
	return p.codeList(set)
}

// unsuback checks an UNSUBACK: a non-zero packet identifier; in MQTT 3.1.1
// nothing else; in MQTT 5 properties and one or more reason codes.
func (p *parser) unsuback() *Error {
	if e := p.packetID(); e != nil {
		return e
	}
	if p.ver < 5 {
		return p.done("packet identifier")
	}
	if _, e := p.properties(inUnsuback, "properties"); e != nil {
		return e
	}
	return p.codeList(&unsubackCodes5)
}

// codeList reads the reason codes that fill the rest of a SUBACK or
// UNSUBACK: at least one, each in set.
func (p *parser) codeList(set *codeSet) *Error {
	if p.i == len(p.b) {
		return p.fail(p.i, ReasonProtocolError, "no reason codes")
	}
	for p.i < len(p.b) {
		if e := p.reasonCode(set); e != nil {
			return e
		}
	}
	return nil
}

// disconnect checks a DISCONNECT: empty in MQTT 3.1.1; in MQTT 5 optionally
// a reason code, then optionally properties (session expiry interval from a
// client only, reason string, user properties, server reference).
func (p *parser) disconnect() *Error {
	if p.ver < 5 || p.i == len(p.b) {
		return p.done("fixed header")
	}
	if e := p.reasonCode(&disconnectCodes5); e != nil {
		return e
	}
	if p.i == len(p.b) {
		return nil
	}
	if _, e := p.properties(inDisconnect, "properties"); e != nil {
		return e
	}
	return p.done("properties")
}

// auth checks an AUTH (MQTT 5 only): empty (success, no properties), or a
// reason code (0x00, 0x18, 0x19) and properties that include the
// authentication method [MQTT-3.15.2-1] (section 3.15.2.2.2).
func (p *parser) auth() *Error {
	if p.i == len(p.b) {
		return nil
	}
	if e := p.reasonCode(&authCodes5); e != nil {
		return e
	}
	propsOff := p.i
	seen, e := p.properties(inAuth, "properties")
	if e != nil {
		return e
	}
	if !has(seen, propAuthMethod) {
		return p.fail(propsOff, ReasonProtocolError, "properties: no authentication method")
	}
	return p.done("properties")
}
