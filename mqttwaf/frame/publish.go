package frame

// publish checks a PUBLISH (MQTT 5 section 3.3, MQTT 3.1.1 section 3.3):
// a topic name without wildcards, a non-zero packet identifier when QoS > 0,
// MQTT 5 properties. The topic name may be empty only in MQTT 5 with a
// topic alias. The payload is opaque: a payload format indicator of 1 is not
// checked against it (the specification lets the receiver choose).
func (p *parser) publish(b0 byte) *Error {
	topicOff := p.i
	topic, e := p.str("topic name", 0)
	if e != nil {
		return e
	}
	if hasWildcard(topic) {
		return p.fail(topicOff, ReasonProtocolError, "topic name contains a wildcard ('+' or '#') [MQTT-3.3.2-2]")
	}
	if b0&0x06 != 0 {
		if e := p.packetID(); e != nil {
			return e
		}
	}
	alias := false
	if p.ver == 5 {
		seen, e := p.properties(inPublish, "properties")
		if e != nil {
			return e
		}
		alias = has(seen, propTopicAlias)
	}
	if len(topic) == 0 && !alias {
		if p.ver == 5 {
			return p.fail(topicOff, ReasonProtocolError, "topic name is empty and there is no topic alias [MQTT-3.3.2-1]")
		}
		return p.fail(topicOff, ReasonProtocolError, "topic name is empty [MQTT-4.7.3-1]")
	}
	return nil
}
