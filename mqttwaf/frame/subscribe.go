package frame

// subscribe checks a SUBSCRIBE (MQTT 5 section 3.8, MQTT 3.1.1 section
// 3.8): a non-zero packet identifier, (MQTT 5) properties, then one or more
// topic filters [MQTT-3.8.3-3], each a valid filter followed by its
// subscription options byte.
//
// Options, MQTT 3.1.1: the upper six bits are reserved and the QoS is 0, 1
// or 2, or the packet is malformed [MQTT-3-8.3-4]. MQTT 5: bits 6 and 7 are
// reserved (malformed [MQTT-3.8.3-5]); QoS 3 and retain handling 3 are
// protocol errors, as is no local on a shared subscription [MQTT-3.8.3-4].
func (p *parser) subscribe() *Error {
	if e := p.filtersStart(inSubscribe, "[MQTT-3.8.3-3]"); e != nil {
		return e
	}
	for k := 1; p.i < len(p.b); k++ {
		off := p.i
		f, e := p.filter(k)
		if e != nil {
			return e
		}
		if p.i == len(p.b) {
			return p.fail(p.i, ReasonMalformed, "filter %d (offset %d) has no subscription options byte", k, off)
		}
		optOff := p.i
		o := p.b[p.i]
		p.i++
		if p.ver < 5 {
			if o > 2 {
				return p.fail(optOff, ReasonMalformed, "filter %d (offset %d): requested QoS byte 0x%02X, must be 0, 1 or 2 [MQTT-3.8.3-4]", k, off, o)
			}
			continue
		}
		switch {
		case o&0xC0 != 0:
			return p.fail(optOff, ReasonMalformed, "filter %d (offset %d): subscription options 0x%02X: reserved bits 6-7 set [MQTT-3.8.3-5]", k, off, o)
		case o&3 == 3:
			return p.fail(optOff, ReasonProtocolError, "filter %d (offset %d): subscription options 0x%02X: maximum QoS 3", k, off, o)
		case o>>4&3 == 3:
			return p.fail(optOff, ReasonProtocolError, "filter %d (offset %d): subscription options 0x%02X: retain handling 3", k, off, o)
		case o&4 != 0 && isShared(f):
			return p.fail(optOff, ReasonProtocolError, "filter %d (offset %d): no local set on a shared subscription [MQTT-3.8.3-4]", k, off)
		}
	}
	return nil
}

// unsubscribe checks an UNSUBSCRIBE: a non-zero packet identifier, (MQTT 5)
// properties, then one or more valid topic filters [MQTT-3.10.3-2].
func (p *parser) unsubscribe() *Error {
	if e := p.filtersStart(inUnsubscribe, "[MQTT-3.10.3-2]"); e != nil {
		return e
	}
	for k := 1; p.i < len(p.b); k++ {
		if _, e := p.filter(k); e != nil {
			return e
		}
	}
	return nil
}

// filter reads the k-th topic filter of a SUBSCRIBE or UNSUBSCRIBE and
// checks its syntax.
func (p *parser) filter(k int) ([]byte, *Error) {
	off := p.i
	f, e := p.str("filter", k)
	if e != nil {
		return nil, e
	}
	if why := filterProblem(f); why != "" {
		return nil, p.fail(off, ReasonMalformed, "filter %d (offset %d) %s", k, off, why)
	}
	return f, nil
}

// filtersStart checks what SUBSCRIBE and UNSUBSCRIBE share before their
// filters: a non-zero packet identifier, (MQTT 5) the properties of packet
// kind in, and at least one filter (rule cites the spec).
func (p *parser) filtersStart(in uint16, rule string) *Error {
	if e := p.packetID(); e != nil {
		return e
	}
	if p.ver == 5 {
		if _, e := p.properties(in, "properties"); e != nil {
			return e
		}
	}
	if p.i == len(p.b) {
		return p.fail(p.i, ReasonProtocolError, "no topic filter %s", rule)
	}
	return nil
}
