package frame

import "bytes"

var (
	nameMQTT   = []byte("MQTT")
	nameMQIsdp = []byte("MQIsdp")
)

// protocolLevel reads the protocol name and level of a CONNECT whose
// variable header starts at b[i], as far as b goes. ok is false if b ends
// before the level byte.
func protocolLevel(b []byte, i int) (name []byte, level byte, ok bool) {
	if i < 0 || len(b)-i < 2 {
		return nil, 0, false
	}
	n := int(b[i])<<8 | int(b[i+1])
	if len(b)-i-2 <= n {
		return nil, 0, false
	}
	return b[i+2 : i+2+n], b[i+2+n], true
}

// knownName reports whether name is one of the protocol names of MQTT.
func knownName(name []byte) bool { return bytes.Equal(name, nameMQTT) || bytes.Equal(name, nameMQIsdp) }

// supported reports whether a CONNECT's protocol name and level name a
// version this package speaks [MQTT-3.1.2-1] [MQTT-3.1.2-2].
func supported(name []byte, level byte) bool {
	switch level {
	case 4, 5:
		return bytes.Equal(name, nameMQTT)
	case 3:
		return bytes.Equal(name, nameMQIsdp)
	}
	return false
}

// connect checks a CONNECT (MQTT 5 section 3.1, MQTT 3.1.1 section 3.1):
// protocol name and level, connect flags, keep alive, MQTT 5 properties,
// then the payload fields in order (client identifier, will properties,
// will topic, will payload, user name, password) and nothing after them.
func (p *parser) connect() *Error {
	nameOff := p.i
	name, e := p.binary("protocol name", 0)
	if e != nil {
		return e
	}
	levelOff := p.i
	level, e := p.byte1("protocol level")
	if e != nil {
		return e
	}
	if !supported(name, level) {
		if knownName(name) {
			return p.fail(levelOff, ReasonUnsupportedVersion, "protocol level %d with protocol name %q is not supported (MQIsdp 3 is MQTT 3.1, MQTT 4 is 3.1.1, MQTT 5 is 5.0)", level, name)
		}
		return p.fail(nameOff, ReasonProtocolError, "protocol name (%d bytes) is neither MQTT nor MQIsdp [MQTT-3.1.2-1]", len(name))
	}
	p.ver = level
	flagsOff := p.i
	flags, e := p.byte1("connect flags")
	if e != nil {
		return e
	}
	will, willQoS, willRetain := flags&0x04 != 0, flags>>3&3, flags&0x20 != 0
	password, user := flags&0x40 != 0, flags&0x80 != 0
	switch {
	case flags&1 != 0:
		return p.fail(flagsOff, ReasonMalformed, "connect flags 0x%02X: reserved bit 0 is set [MQTT-3.1.2-3]", flags)
	case !will && willQoS != 0:
		return p.fail(flagsOff, ReasonMalformed, "connect flags 0x%02X: will QoS without the will flag [MQTT-3.1.2-11]", flags)
	case !will && willRetain:
		return p.fail(flagsOff, ReasonMalformed, "connect flags 0x%02X: will retain without the will flag [MQTT-3.1.2-13]", flags)
	case willQoS == 3:
		return p.fail(flagsOff, ReasonMalformed, "connect flags 0x%02X: will QoS 3 [MQTT-3.1.2-12]", flags)
	case password && !user && level < 5:
		return p.fail(flagsOff, ReasonProtocolError, "connect flags 0x%02X: password flag without the user name flag [MQTT-3.1.2-22]", flags)
	}
	if _, e := p.u16("keep alive"); e != nil {
		return e
	}
	if level == 5 {
		seen, e := p.properties(inConnect, "properties")
		if e != nil {
			return e
		}
		if has(seen, propAuthData) && !has(seen, propAuthMethod) {
			return p.fail(flagsOff+3, ReasonProtocolError, "properties: authentication data without an authentication method")
		}
	}
	if _, e := p.str("client identifier", 0); e != nil {
		return e
	}
	if will {
		if level == 5 {
			if _, e := p.properties(inWill, "will properties"); e != nil {
				return e
			}
		}
		topicOff := p.i
		topic, e := p.str("will topic", 0)
		if e != nil {
			return e
		}
		if len(topic) == 0 {
			return p.fail(topicOff, ReasonProtocolError, "will topic is empty [MQTT-4.7.3-1]")
		}
		if hasWildcard(topic) {
			return p.fail(topicOff, ReasonProtocolError, "will topic contains a wildcard ('+' or '#')")
		}
		if _, e := p.binary("will payload", 0); e != nil {
			return e
		}
	}
	if user {
		if _, e := p.str("user name", 0); e != nil {
			return e
		}
	}
	if password {
		if _, e := p.binary("password", 0); e != nil {
			return e
		}
	}
	return p.done("last field of the payload")
}
