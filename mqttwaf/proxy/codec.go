package proxy

import (
	"errors"

	"github.com/mqttwaf/mqttwaf/mqttwaf"
	"github.com/mqttwaf/mqttwaf/mqttwaf/frame"
)

// The codec decodes and re-encodes only the packets the proxy must look
// into or answer itself: CONNECT, CONNACK, PUBLISH, SUBSCRIBE, SUBACK,
// UNSUBSCRIBE (its filters) and the acknowledgements. Everything else is
// relayed as the bytes that arrived. Every packet reaching a decoder has
// already passed the frame validator (mqttwaf/frame), but the decoders
// still bound every read and return errShort instead of panicking: they
// are fuzzed on raw bytes (codec_fuzz_test.go).

// MQTT 5 property identifiers the proxy reads or writes.
const (
	propPayloadFormat     = 0x01
	propMessageExpiry     = 0x02
	propContentType       = 0x03
	propResponseTopic     = 0x08
	propCorrelationData   = 0x09
	propSubscriptionID    = 0x0B
	propSessionExpiry     = 0x11
	propAssignedID        = 0x12
	propServerReference   = 0x1C
	propAuthMethod        = 0x15
	propServerKeepAlive   = 0x13
	propReasonString      = 0x1F
	propReceiveMaximum    = 0x21
	propTopicAliasMax     = 0x22
	propTopicAlias        = 0x23
	propUser              = 0x26
	propMaximumPacketSize = 0x27
	propMaximumQoS        = 0x24
	propRetainAvailable   = 0x25
)

var errShort = errors.New("malformed packet: a field runs past the end of the packet")

// propKinds is the value encoding of each MQTT 5 property (section 2.2.2.2).
var propKinds = func() (k [256]byte) {
	for _, id := range []byte{0x01, 0x17, 0x19, 0x24, 0x25, 0x28, 0x29, 0x2A} {
		k[id] = kindByte
	}
	for _, id := range []byte{0x13, 0x21, 0x22, 0x23} {
		k[id] = kindU16
	}
	for _, id := range []byte{0x02, 0x11, 0x18, 0x27} {
		k[id] = kindU32
	}
	for _, id := range []byte{0x03, 0x08, 0x12, 0x15, 0x1A, 0x1C, 0x1F} {
		k[id] = kindString
	}
	k[0x09], k[0x16] = kindBinary, kindBinary
	k[0x0B] = kindVBI
	k[0x26] = kindPair
	return k
}()

const (
	kindByte = iota + 1
	kindU16
	kindU32
	kindVBI
	kindString
	kindBinary
	kindPair
)

// prop is one MQTT 5 property: its identifier and its value bytes as they
// are on the wire (length prefixes included), so it re-encodes unchanged.
type prop struct {
	id  byte
	val []byte
}

// reader walks a packet; every read is bounded by end.
type reader struct {
	b   []byte
	i   int
	end int
	err error
}

func (r *reader) fail() { r.err, r.i = errShort, r.end }

func (r *reader) byte1() byte {
	if r.err != nil || r.i >= r.end {
		r.fail()
		return 0
	}
	r.i++
	return r.b[r.i-1]
}

func (r *reader) u16() uint16 {
	if r.err != nil || r.end-r.i < 2 {
		r.fail()
		return 0
	}
	r.i += 2
	return uint16(r.b[r.i-2])<<8 | uint16(r.b[r.i-1])
}

func (r *reader) bytesN(n int) []byte {
	if r.err != nil || n < 0 || r.end-r.i < n {
		r.fail()
		return nil
	}
	r.i += n
	return r.b[r.i-n : r.i]
}

func (r *reader) binary() []byte { return r.bytesN(int(r.u16())) }

func (r *reader) str() string { return string(r.binary()) }

func (r *reader) vbi() int {
	v, n, ok := readVBI(r.b[:r.end], r.i)
	if r.err != nil || !ok {
		r.fail()
		return 0
	}
	r.i += n
	return v
}

// props reads an MQTT 5 property section.
func (r *reader) props() []prop {
	n := r.vbi()
	if r.err != nil || r.end-r.i < n {
		r.fail()
		return nil
	}
	end := r.i + n
	var out []prop
	for r.i < end && r.err == nil {
		id := r.b[r.i]
		start := r.i + 1
		sub := reader{b: r.b, i: start, end: end}
		switch propKinds[id] {
		case kindByte:
			sub.byte1()
		case kindU16:
			sub.u16()
		case kindU32:
			sub.bytesN(4)
		case kindVBI:
			sub.vbi()
		case kindString, kindBinary:
			sub.binary()
		case kindPair:
			sub.binary()
			sub.binary()
		default:
			sub.fail()
		}
		if sub.err != nil {
			r.fail()
			return nil
		}
		out = append(out, prop{id: id, val: r.b[start:sub.i]})
		r.i = sub.i
	}
	return out
}

// readVBI reads a Variable Byte Integer at b[i].
func readVBI(b []byte, i int) (val, n int, ok bool) {
	for n = 0; n < 4; n++ {
		if i+n >= len(b) || i+n < 0 {
			return 0, 0, false
		}
		c := b[i+n]
		val |= int(c&0x7F) << (7 * n)
		if c < 0x80 {
			return val, n + 1, true
		}
	}
	return 0, 0, false
}

// body returns a reader over pkt after its fixed header.
func body(pkt []byte) reader {
	if len(pkt) < 2 {
		return reader{b: pkt, i: len(pkt), end: len(pkt), err: errShort}
	}
	rem, n, ok := readVBI(pkt, 1)
	if !ok || 1+n+rem != len(pkt) {
		return reader{b: pkt, i: len(pkt), end: len(pkt), err: errShort}
	}
	return reader{b: pkt, i: 1 + n, end: len(pkt)}
}

// Value accessors; each tolerates a value of the wrong length.
func propU16(v []byte) uint16 {
	if len(v) < 2 {
		return 0
	}
	return uint16(v[0])<<8 | uint16(v[1])
}

func propU32(v []byte) uint32 {
	if len(v) < 4 {
		return 0
	}
	return uint32(v[0])<<24 | uint32(v[1])<<16 | uint32(v[2])<<8 | uint32(v[3])
}

func propBinary(v []byte) []byte {
	if len(v) < 2 {
		return nil
	}
	return v[2:]
}

func propPair(v []byte) (k, val string) {
	r := reader{b: v, end: len(v)}
	k, val = r.str(), r.str()
	return k, val
}

func hasProp(ps []prop, id byte) bool {
	_, ok := findProp(ps, id)
	return ok
}

func findProp(ps []prop, id byte) ([]byte, bool) {
	for _, p := range ps {
		if p.id == id {
			return p.val, true
		}
	}
	return nil, false
}

// without returns ps without the properties of the given ids, as a new
// slice when it removes any.
func without(ps []prop, ids ...byte) []prop {
	var out []prop
	for i, p := range ps {
		drop := false
		for _, id := range ids {
			drop = drop || p.id == id
		}
		if drop && out == nil {
			out = append(make([]prop, 0, len(ps)), ps[:i]...)
		}
		if !drop && out != nil {
			out = append(out, p)
		}
	}
	if out == nil {
		return ps
	}
	return out
}

func userOf(ps []prop) []mqttwaf.UserProperty {
	var out []mqttwaf.UserProperty
	for _, p := range ps {
		if p.id == propUser {
			k, v := propPair(p.val)
			out = append(out, mqttwaf.UserProperty{Key: k, Value: v})
		}
	}
	return out
}

// withUser replaces the user properties of ps with u (after the others).
func withUser(ps []prop, u []mqttwaf.UserProperty) []prop {
	out := append([]prop(nil), without(ps, propUser)...)
	for _, p := range u {
		out = append(out, prop{id: propUser, val: appendString(appendString(nil, p.Key), p.Value)})
	}
	return out
}

// Encoding helpers.

func appendU16(b []byte, v uint16) []byte { return append(b, byte(v>>8), byte(v)) }

func appendU32(b []byte, v uint32) []byte {
	return append(b, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
}

func appendString(b []byte, s string) []byte {
	return append(appendU16(b, uint16(len(s))), s...)
}

func appendBinary(b []byte, s []byte) []byte {
	return append(appendU16(b, uint16(len(s))), s...)
}

func appendVBI(b []byte, v int) []byte {
	for {
		c := byte(v & 0x7F)
		v >>= 7
		if v > 0 {
			c |= 0x80
		}
		b = append(b, c)
		if v == 0 {
			return b
		}
	}
}

func propsLen(ps []prop) int {
	n := 0
	for _, p := range ps {
		n += 1 + len(p.val)
	}
	return n
}

func appendProps(b []byte, ps []prop) []byte {
	b = appendVBI(b, propsLen(ps))
	for _, p := range ps {
		b = append(append(b, p.id), p.val...)
	}
	return b
}

// packet frames body (the variable header and payload) behind a fixed
// header of first byte b0.
func packet(b0 byte, body []byte) []byte {
	out := appendVBI([]byte{b0}, len(body))
	return append(out, body...)
}

// connect is a decoded CONNECT.
type connect struct {
	protoName   string
	level       byte
	clean       bool
	keepalive   uint16
	props       []prop
	clientID    string
	will        bool
	willQoS     byte
	willRetain  bool
	willProps   []prop
	willTopic   string
	willPayload []byte
	hasUser     bool
	username    string
	hasPass     bool
	password    []byte
}

func decodeConnect(pkt []byte) (c connect, err error) {
	r := body(pkt)
	c.protoName = r.str()
	c.level = r.byte1()
	flags := r.byte1()
	c.keepalive = r.u16()
	if c.level == mqttwaf.MQTT5 {
		c.props = r.props()
	}
	c.clientID = r.str()
	c.clean = flags&0x02 != 0
	c.will = flags&0x04 != 0
	c.willQoS = flags >> 3 & 3
	c.willRetain = flags&0x20 != 0
	c.hasPass = flags&0x40 != 0
	c.hasUser = flags&0x80 != 0
	if c.will {
		if c.level == mqttwaf.MQTT5 {
			c.willProps = r.props()
		}
		c.willTopic = r.str()
		c.willPayload = r.binary()
	}
	if c.hasUser {
		c.username = r.str()
	}
	if c.hasPass {
		c.password = r.binary()
	}
	return c, r.err
}

func (c *connect) encode() []byte {
	var flags byte
	if c.clean {
		flags |= 0x02
	}
	if c.will {
		flags |= 0x04 | c.willQoS<<3
		if c.willRetain {
			flags |= 0x20
		}
	}
	if c.hasPass {
		flags |= 0x40
	}
	if c.hasUser {
		flags |= 0x80
	}
	b := appendString(nil, c.protoName)
	b = append(b, c.level, flags)
	b = appendU16(b, c.keepalive)
	if c.level == mqttwaf.MQTT5 {
		b = appendProps(b, c.props)
	}
	b = appendString(b, c.clientID)
	if c.will {
		if c.level == mqttwaf.MQTT5 {
			b = appendProps(b, c.willProps)
		}
		b = appendString(b, c.willTopic)
		b = appendBinary(b, c.willPayload)
	}
	if c.hasUser {
		b = appendString(b, c.username)
	}
	if c.hasPass {
		b = appendBinary(b, c.password)
	}
	return packet(frame.TypeConnect<<4, b)
}

// willMessage is the WAF's view of the will, or nil.
func (c *connect) willMessage() *mqttwaf.Message {
	if !c.will {
		return nil
	}
	m := &mqttwaf.Message{Topic: c.willTopic, QoS: c.willQoS, Retain: c.willRetain, Payload: c.willPayload}
	m.Props = propertiesOf(c.willProps)
	return m
}

// connack is a decoded CONNACK.
type connack struct {
	sessionPresent bool
	code           byte
	props          []prop
}

func decodeConnack(version byte, pkt []byte) (c connack, err error) {
	r := body(pkt)
	c.sessionPresent = r.byte1()&1 != 0
	c.code = r.byte1()
	if version == mqttwaf.MQTT5 && r.i < r.end {
		c.props = r.props()
	}
	return c, r.err
}

func (c *connack) encode(version byte) []byte {
	b := []byte{0, c.code}
	if c.sessionPresent {
		b[0] = 1
	}
	if version == mqttwaf.MQTT5 {
		b = appendProps(b, c.props)
	}
	return packet(frame.TypeConnack<<4, b)
}

// publish is a decoded PUBLISH.
type publish struct {
	dup     bool
	qos     byte
	retain  bool
	topic   string
	id      uint16
	alias   uint16
	props   mqttwaf.Properties
	subIDs  []int // subscription identifiers (server to client)
	payload []byte
}

func decodePublish(version byte, pkt []byte) (p publish, err error) {
	if len(pkt) == 0 {
		return p, errShort
	}
	p.dup, p.qos, p.retain = pkt[0]&8 != 0, pkt[0]>>1&3, pkt[0]&1 != 0
	r := body(pkt)
	p.topic = r.str()
	if p.qos > 0 {
		p.id = r.u16()
	}
	if version == mqttwaf.MQTT5 {
		ps := r.props()
		p.props = propertiesOf(ps)
		p.alias = p.props.TopicAlias
		for _, q := range ps {
			if q.id == propSubscriptionID {
				v, _, _ := readVBI(q.val, 0)
				p.subIDs = append(p.subIDs, v)
			}
		}
	}
	if r.err != nil {
		return p, r.err
	}
	p.payload = pkt[r.i:]
	return p, nil
}

// propertiesOf is the WAF's view of PUBLISH or will properties.
func propertiesOf(ps []prop) mqttwaf.Properties {
	var m mqttwaf.Properties
	for _, q := range ps {
		switch q.id {
		case propPayloadFormat:
			if len(q.val) == 1 {
				m.PayloadFormat, m.PayloadFormatSet = q.val[0], true
			}
		case propMessageExpiry:
			m.MessageExpiry = propU32(q.val)
		case propContentType:
			m.ContentType = string(propBinary(q.val))
		case propResponseTopic:
			m.ResponseTopic = string(propBinary(q.val))
		case propCorrelationData:
			m.CorrelationData = propBinary(q.val)
		case propTopicAlias:
			m.TopicAlias = propU16(q.val)
		}
	}
	m.User = userOf(ps)
	return m
}

// message is the WAF's view of p.
func (p *publish) message() mqttwaf.Message {
	return mqttwaf.Message{Topic: p.topic, QoS: p.qos, Retain: p.retain, Payload: p.payload, Props: p.props}
}

// encode writes p with its topic in full and no topic alias.
func (p *publish) encode(version byte) []byte {
	b0 := byte(frame.TypePublish<<4) | p.qos<<1
	if p.dup {
		b0 |= 8
	}
	if p.retain {
		b0 |= 1
	}
	b := appendString(make([]byte, 0, len(p.topic)+len(p.payload)+16), p.topic)
	if p.qos > 0 {
		b = appendU16(b, p.id)
	}
	if version == mqttwaf.MQTT5 {
		var ps []prop
		m := &p.props
		if m.PayloadFormatSet {
			ps = append(ps, prop{propPayloadFormat, []byte{m.PayloadFormat}})
		}
		if m.MessageExpiry != 0 {
			ps = append(ps, prop{propMessageExpiry, appendU32(nil, m.MessageExpiry)})
		}
		if m.ContentType != "" {
			ps = append(ps, prop{propContentType, appendString(nil, m.ContentType)})
		}
		if m.ResponseTopic != "" {
			ps = append(ps, prop{propResponseTopic, appendString(nil, m.ResponseTopic)})
		}
		if m.CorrelationData != nil {
			ps = append(ps, prop{propCorrelationData, appendBinary(nil, m.CorrelationData)})
		}
		for _, id := range p.subIDs {
			ps = append(ps, prop{propSubscriptionID, appendVBI(nil, id)})
		}
		ps = withUser(ps, m.User)
		b = appendProps(b, ps)
	}
	b = append(b, p.payload...)
	return packet(b0, b)
}

// filter is one topic filter of a SUBSCRIBE with its options byte.
type filter struct {
	topic string
	opts  byte
}

// subscribe is a decoded SUBSCRIBE.
type subscribe struct {
	id      uint16
	props   []prop
	filters []filter
}

func decodeSubscribe(version byte, pkt []byte) (s subscribe, err error) {
	r := body(pkt)
	s.id = r.u16()
	if version == mqttwaf.MQTT5 {
		s.props = r.props()
	}
	for r.i < r.end && r.err == nil {
		f := filter{topic: r.str()}
		f.opts = r.byte1()
		s.filters = append(s.filters, f)
	}
	if r.err == nil && len(s.filters) == 0 {
		return s, errShort
	}
	return s, r.err
}

// encode writes s with only the filters keep selects.
func (s *subscribe) encode(version byte, keep []bool) []byte {
	b := appendU16(nil, s.id)
	if version == mqttwaf.MQTT5 {
		b = appendProps(b, s.props)
	}
	for i, f := range s.filters {
		if keep[i] {
			b = append(appendString(b, f.topic), f.opts)
		}
	}
	return packet(frame.TypeSubscribe<<4|2, b)
}

// subscriptionOf is the WAF's view of filter i of s.
func (s *subscribe) subscriptionOf(i int) mqttwaf.Subscription {
	f := s.filters[i]
	sub := mqttwaf.Subscription{Filter: f.topic, QoS: f.opts & 3, NoLocal: f.opts&4 != 0,
		RetainAsPublished: f.opts&8 != 0, RetainHandling: f.opts >> 4 & 3, Index: i, Count: len(s.filters)}
	if v, ok := findProp(s.props, propSubscriptionID); ok {
		sub.Identifier, _, _ = readVBI(v, 0)
	}
	return sub
}

// suback is a decoded SUBACK.
type suback struct {
	id    uint16
	props []prop
	codes []byte
}

func decodeSuback(version byte, pkt []byte) (s suback, err error) {
	r := body(pkt)
	s.id = r.u16()
	if version == mqttwaf.MQTT5 {
		s.props = r.props()
	}
	if r.err != nil {
		return s, r.err
	}
	s.codes = pkt[r.i:]
	return s, nil
}

func (s *suback) encode(version byte) []byte {
	b := appendU16(nil, s.id)
	if version == mqttwaf.MQTT5 {
		b = appendProps(b, s.props)
	}
	return packet(frame.TypeSuback<<4, append(b, s.codes...))
}

// decodeUnsubscribe returns the filters of an UNSUBSCRIBE.
func decodeUnsubscribe(version byte, pkt []byte) ([]string, error) {
	r := body(pkt)
	r.u16()
	if version == mqttwaf.MQTT5 {
		r.props()
	}
	var out []string
	for r.i < r.end && r.err == nil {
		out = append(out, r.str())
	}
	return out, r.err
}

// packetID reads the packet identifier of an acknowledgement.
func packetID(pkt []byte) (uint16, error) {
	r := body(pkt)
	id := r.u16()
	return id, r.err
}

// ack encodes a PUBACK, PUBREC, PUBREL or PUBCOMP. MQTT 5 carries the
// reason code (omitted when 0, as the specification allows), 3.1.1 none.
func ack(version, typ byte, id uint16, code byte) []byte {
	b0 := typ << 4
	if typ == frame.TypePubrel {
		b0 |= 2
	}
	if version == mqttwaf.MQTT5 && code != 0 {
		return []byte{b0, 3, byte(id >> 8), byte(id), code}
	}
	return []byte{b0, 2, byte(id >> 8), byte(id)}
}

// disconnect encodes a DISCONNECT: MQTT 5 with a reason code, 3.1.1 bare
// (a 3.1.1 server never sends one; the proxy sends it upstream only).
func disconnect(version, code byte) []byte {
	if version == mqttwaf.MQTT5 {
		return []byte{frame.TypeDisconnect << 4, 2, code, 0}
	}
	return []byte{frame.TypeDisconnect << 4, 0}
}

// withoutServerReference returns a broker's MQTT 5 DISCONNECT without its
// Server Reference property. A broker that says 0x9C (use another server)
// or 0x9D (server moved) would otherwise send the client to another broker
// directly, around the firewall; with the reason code alone the client
// reconnects where it connected: to the proxy. (The proxy strips it from
// CONNACKs too.)
func withoutServerReference(pkt []byte) []byte {
	r := body(pkt)
	if r.end-r.i < 2 {
		return pkt // no properties
	}
	code := r.byte1()
	ps := r.props()
	if r.err != nil || !hasProp(ps, propServerReference) {
		return pkt
	}
	return packet(frame.TypeDisconnect<<4, appendProps([]byte{code}, without(ps, propServerReference)))
}

// refusal encodes the CONNACK that refuses a CONNECT: the MQTT 5 reason
// code with a reason string, or the MQTT 3.1.1 return code.
func refusal(version byte, v mqttwaf.Verdict) []byte {
	code := v.Code.For(mqttwaf.InConnack)
	if version != mqttwaf.MQTT5 {
		return []byte{frame.TypeConnack << 4, 2, 0, code.MQTT311Connack()}
	}
	var ps []prop
	if v.Reason != "" {
		ps = []prop{{propReasonString, appendString(nil, v.Reason)}}
	}
	c := connack{code: byte(code), props: ps}
	return c.encode(version)
}
