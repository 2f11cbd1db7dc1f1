package proxy

import (
	"strconv"
	"time"

	"github.com/mqttwaf/mqttwaf/mqttwaf"
	"github.com/mqttwaf/mqttwaf/mqttwaf/frame"
)

// fromClient relays the client's packets upstream until either side ends.
func (c *conn) fromClient() {
	for {
		// Relayed packets leave when no whole packet is waiting (outBuf).
		if !c.clientReader.Ready() && c.toUp.flush() != nil {
			return
		}
		if c.keepalive > 0 {
			_ = c.raw.SetReadDeadline(time.Now().Add(c.keepalive))
		}
		pkt, err := c.clientReader.Next()
		if err != nil {
			if v, ok := mqttwaf.FrameVerdict(err); ok && !c.byProxy.Load() {
				// The frame validator refused a packet (and told an MQTT
				// 5 client with a DISCONNECT); nothing of it went upstream.
				c.p.waf.Record(mqttwaf.StageConnect, &c.client, "", "", "", 0, v)
			}
			return
		}
		if !c.clientPacket(pkt) {
			return
		}
	}
}

// clientPacket handles one client packet; false ends the connection.
func (c *conn) clientPacket(pkt []byte) bool {
	switch pkt[0] >> 4 {
	case frame.TypePublish:
		return c.clientPublish(pkt)
	case frame.TypeSubscribe:
		return c.clientSubscribe(pkt)
	case frame.TypeUnsubscribe:
		if filters, err := decodeUnsubscribe(c.ver, pkt); err == nil {
			c.mu.Lock()
			for _, f := range filters {
				delete(c.subs, f)
			}
			c.mu.Unlock()
		}
		if c.translated() {
			up, err := upgrade(pkt)
			if err != nil {
				c.protocolError("malformed_unsubscribe", mqttwaf.CodeMalformedPacket, err.Error())
				return false
			}
			pkt = up
		}
	case frame.TypePubrel:
		if id, ours := c.owned(c.inQoS2, pkt); ours { // the end of a QoS 2 publish the proxy refused: the broker never saw it
			return c.writeClient(ack(c.ver, frame.TypePubcomp, id, 0)) == nil
		}
	case frame.TypeDisconnect:
		c.clientEOF.Store(true)
		_ = c.writeUp(pkt)
		return false
	}
	return c.relayUp(pkt) == nil
}

// clientPublish runs the publish rules on a client's PUBLISH and forwards
// it, re-encoded if the rules rewrote it or it used a topic alias.
func (c *conn) clientPublish(pkt []byte) bool {
	p, err := decodePublish(c.ver, pkt)
	if err != nil { // the validator passed it: a codec bug; fail closed
		c.protocolError("malformed_publish", mqttwaf.CodeMalformedPacket, err.Error())
		return false
	}
	aliased := p.alias != 0
	if aliased && !c.resolveAlias(&p) {
		return false
	}
	if !c.withinBroker(&p) {
		return false
	}
	msg := p.message()
	v, out := c.p.waf.PublishLayers(&c.client, &msg)
	if v.Blocked() {
		return c.refusePublish(&p, v)
	}
	if out != nil {
		p.payload, p.props.User = out.Payload, out.Props.User
	}
	up := pkt // byte for byte, unless rewritten, aliased or translated
	if out != nil || aliased || c.translated() {
		up = p.encode(c.upVer)
	}
	if c.brokerMaxPacket > 0 && len(up) > c.brokerMaxPacket {
		// The stamp or the translation made it larger than the broker
		// takes (its CONNACK's Maximum Packet Size), which the broker
		// would answer by disconnecting the client.
		v := mqttwaf.Verdict{Action: mqttwaf.Reject, Rule: "proxy.upstream", Reason: "packet_too_large", Code: 0x95,
			Value: int64(len(up)), Limit: int64(c.brokerMaxPacket),
			Detail: "the PUBLISH as it would go upstream (value, bytes) is larger than the upstream broker's Maximum Packet Size (limit): " +
				"raise the broker's limit (mosquitto: max_packet_size) or keep broker.max_packet_size below it"}
		c.p.waf.Record(mqttwaf.StagePublish, &c.client, "", "", p.topic, len(p.payload), v)
		return c.refusePublish(&p, v)
	}
	if p.retain {
		// The retained budgets (rates.retained) count what the broker now
		// holds on the topic; an empty payload deletes it.
		size := 0
		if len(p.payload) > 0 {
			m := p.message()
			size = m.Size()
		}
		c.p.waf.Retained(&c.client, p.topic, size)
	}
	if c.translated() {
		return c.sendUp(p.qos, up)
	}
	return c.relayUp(up) == nil
}

// resolveAlias replaces a client's topic alias with its topic (MQTT 5
// section 3.3.2.3.4): the rules see the full topic, and the broker gets it
// (the proxy never forwards an alias).
func (c *conn) resolveAlias(p *publish) bool {
	if p.alias > c.aliasMax {
		c.protocolError("topic_alias_invalid", 0x94, "topic alias "+strconv.Itoa(int(p.alias))+
			" is above the topic alias maximum "+strconv.Itoa(int(c.aliasMax))+" the broker granted")
		return false
	}
	c.mu.Lock()
	known := true
	if p.topic != "" {
		// An alias for a topic over the topic limits is not stored (the
		// publish itself is refused by the rules): a client must not pin
		// oversized topics in the proxy's memory.
		if len(p.topic) <= c.p.waf.Limits().Topic.MaxLength {
			if c.aliases == nil {
				c.aliases = map[uint16]string{}
			}
			c.aliases[p.alias] = p.topic
		}
	} else {
		p.topic, known = c.aliases[p.alias]
	}
	c.mu.Unlock()
	if !known {
		c.protocolError("topic_alias_invalid", 0x82, "PUBLISH with an empty topic uses topic alias "+
			strconv.Itoa(int(p.alias))+", which no earlier PUBLISH set")
		return false
	}
	p.alias, p.props.TopicAlias = 0, 0
	return true
}

// refusePublish answers a refused PUBLISH as the embedded broker does
// (hooks: refusePublish); nothing of it reaches the broker.
func (c *conn) refusePublish(p *publish, v mqttwaf.Verdict) bool {
	switch v.Action {
	case mqttwaf.Disconnect, mqttwaf.Ban:
		c.kick(v.Code)
		return false
	case mqttwaf.Reject:
		if c.ver == mqttwaf.MQTT5 && p.qos > 0 {
			typ := byte(frame.TypePuback)
			if p.qos == 2 {
				typ = frame.TypePubrec // ends the exchange: no PUBREL follows an error PUBREC
			}
			return c.writeClient(ack(c.ver, typ, p.id, byte(v.Code.For(mqttwaf.InPuback)))) == nil
		}
		if p.qos > 0 && c.p.waf.Responses().MQTT311Publish == "disconnect" {
			c.kick(v.Code)
			return false
		}
	}
	// Drop, and Reject where the client cannot be told: acknowledged,
	// neither delivered nor retained.
	return c.absorb(&c.inQoS2, p, c.ver, c.writeClient)
}

// absorb acknowledges p, which the proxy refused in place of its receiver,
// to its sender (write, which speaks version ver). A QoS 2 packet id goes into *set, so that the
// sender's PUBREL is answered by the proxy too (owned).
func (c *conn) absorb(set *map[uint16]bool, p *publish, ver byte, write func([]byte) error) bool {
	switch p.qos {
	case 1:
		return write(ack(ver, frame.TypePuback, p.id, 0)) == nil
	case 2:
		c.mu.Lock()
		if *set == nil {
			*set = map[uint16]bool{}
		}
		(*set)[p.id] = true
		c.mu.Unlock()
		return write(ack(ver, frame.TypePubrec, p.id, 0)) == nil
	}
	return true
}

// owned reports whether the PUBREL pkt ends a QoS 2 exchange the proxy
// absorbed into set, and forgets it.
func (c *conn) owned(set map[uint16]bool, pkt []byte) (uint16, bool) {
	id, _ := packetID(pkt)
	c.mu.Lock()
	defer c.mu.Unlock()
	ours := set[id]
	delete(set, id)
	return id, ours
}

// clientSubscribe runs the subscribe rules per filter. Refused filters are
// answered by the proxy (0x87 or the rule's code; 3.1.1: 0x80) and the
// rest go upstream; the broker's SUBACK is merged (brokerSuback).
func (c *conn) clientSubscribe(pkt []byte) bool {
	s, err := decodeSubscribe(c.ver, pkt)
	if err != nil {
		c.protocolError("malformed_subscribe", mqttwaf.CodeMalformedPacket, err.Error())
		return false
	}
	n := len(s.filters)
	keep, codes := make([]bool, n), make([]byte, n)
	c.mu.Lock()
	existing := len(c.subs)
	c.mu.Unlock()
	refused := 0
	for i := range s.filters {
		sub := s.subscriptionOf(i)
		sub.Existing = existing
		v := c.p.waf.Subscribe(&c.client, &sub)
		if !v.Blocked() {
			keep[i] = true
			existing++
			continue
		}
		if v.Action == mqttwaf.Disconnect || v.Action == mqttwaf.Ban {
			c.kick(v.Code)
			return false
		}
		refused++
		codes[i] = 0x80
		if c.ver == mqttwaf.MQTT5 {
			codes[i] = byte(v.Code.For(mqttwaf.InSuback))
		}
	}
	if refused == n { // nothing goes upstream
		sa := suback{id: s.id, codes: codes}
		return c.writeClient(sa.encode(c.ver)) == nil
	}
	c.mu.Lock()
	if c.subs == nil {
		c.subs = map[string]bool{}
	}
	for i, f := range s.filters {
		if keep[i] {
			c.subs[f.topic] = true
		}
	}
	if refused > 0 {
		if c.subacks == nil {
			c.subacks = map[uint16][]byte{}
		}
		c.subacks[s.id] = codes
	}
	c.mu.Unlock()
	if refused == 0 && !c.translated() {
		return c.relayUp(pkt) == nil // byte for byte
	}
	return c.relayUp(s.encode(c.upVer, keep)) == nil
}

// fromBroker relays the broker's packets to the client until either side
// ends.
func (c *conn) fromBroker() {
	for {
		if !c.upReader.Ready() && c.toClient.flush() != nil {
			return
		}
		pkt, err := c.upReader.Next()
		if err != nil {
			if v, ok := mqttwaf.FrameVerdict(err); ok {
				v.Rule, v.Detail = "proxy.upstream", "the upstream broker sent a packet the validator refused: "+v.Detail
				c.p.waf.Record(mqttwaf.StageBroker, &c.client, "", "", "", 0, v)
				c.kick(mqttwaf.CodeImplementationSpecific)
			}
			return
		}
		switch pkt[0] >> 4 {
		case frame.TypePublish:
			if !c.delivery(pkt) {
				return
			}
			continue
		case frame.TypeSuback:
			pkt = c.brokerSuback(pkt)
		case frame.TypePubrel:
			if id, ours := c.owned(c.outQoS2, pkt); ours { // a delivery the proxy refused: the client never saw it
				if c.writeUp(ack(c.upVer, frame.TypePubcomp, id, 0)) != nil {
					return
				}
				continue
			}
		case frame.TypePuback, frame.TypePubrec, frame.TypePubcomp:
			if c.translated() && !c.brokerAck(pkt) {
				return
			}
		case frame.TypePingresp:
			if c.ownPing() {
				continue
			}
		case frame.TypeDisconnect:
			if !c.translated() {
				_ = c.writeClient(withoutServerReference(pkt))
			} // else a 3.1.1 client has no DISCONNECT from the server: the connection just ends
			return
		}
		if c.translated() {
			if pkt, err = downgrade(c.ver, pkt); err != nil || pkt == nil {
				return // AUTH, which a 3.1.1 client cannot take
			}
		}
		if c.relayClient(pkt) != nil {
			return
		}
	}
}

// delivery runs the deliver rules and the subscriber's view on a message
// the broker delivers. A refused delivery is acknowledged upstream by the
// proxy and never reaches the client.
func (c *conn) delivery(pkt []byte) bool {
	p, err := decodePublish(c.upVer, pkt)
	if err != nil {
		return false
	}
	if p.topic == "" { // an alias: the proxy asked the broker for none
		c.p.waf.Record(mqttwaf.StageBroker, &c.client, "", "", "", 0, mqttwaf.Verdict{Action: mqttwaf.Disconnect,
			Rule: "proxy.upstream", Reason: "topic_alias_invalid", Code: 0x94,
			Detail: "the upstream broker used a topic alias although the proxy's CONNECT allowed none"})
		c.kick(mqttwaf.CodeImplementationSpecific)
		return false
	}
	if v := c.p.waf.Deliver(&c.client, p.topic); v.Blocked() {
		return c.absorb(&c.outQoS2, &p, c.upVer, c.writeUp)
	}
	msg := p.message()
	view, changed := c.p.waf.ViewMessage(&c.client, &msg)
	if !changed && p.alias == 0 && !c.translated() {
		return c.relayClient(pkt) == nil // byte for byte
	}
	p.payload, p.props = view.Payload, view.Props
	p.props.TopicAlias = 0
	return c.relayClient(p.encode(c.ver)) == nil
}

// brokerSuback merges the broker's codes for the filters the proxy sent
// with the proxy's own for the filters it refused.
func (c *conn) brokerSuback(pkt []byte) []byte {
	s, err := decodeSuback(c.upVer, pkt)
	if err != nil {
		return pkt
	}
	c.mu.Lock()
	codes, ok := c.subacks[s.id]
	delete(c.subacks, s.id)
	c.mu.Unlock()
	if !ok {
		return pkt
	}
	merged, j := make([]byte, len(codes)), 0
	for i, code := range codes {
		switch {
		case code != 0:
			merged[i] = code
		case j < len(s.codes):
			merged[i] = s.codes[j]
			j++
		default:
			merged[i] = 0x80 // the broker answered fewer filters than it was sent
		}
	}
	s.codes = merged
	return s.encode(c.upVer)
}

// ownPing reports whether a PINGRESP answers one of the proxy's own pings
// (pinger), which the client must not see.
func (c *conn) ownPing() bool {
	for {
		n := c.pings.Load()
		if n <= 0 {
			return false
		}
		if c.pings.CompareAndSwap(n, n-1) {
			return true
		}
	}
}

// withinBroker holds a client's PUBLISH to the broker's Maximum QoS and
// Retain Available (its CONNACK). The broker would disconnect the client
// for either; the proxy does it first, before the publish rules count the
// message, and records why.
func (c *conn) withinBroker(p *publish) bool {
	switch {
	case p.qos > c.maxQoS:
		c.beyondBroker(p, "qos_not_supported", 0x9B, "a PUBLISH at QoS "+strconv.Itoa(int(p.qos))+
			" is above the upstream broker's Maximum QoS "+strconv.Itoa(int(c.maxQoS))+
			": publish at a lower QoS, or raise the broker's maximum (mosquitto: max_qos)")
		return false
	case p.retain && c.noRetain:
		c.beyondBroker(p, "retain_not_supported", 0x9A, "a retained PUBLISH, but the upstream broker does not "+
			"keep retained messages (Retain Available 0): publish without retain, or enable it on the broker "+
			"(mosquitto: retain_available true)")
		return false
	}
	return true
}

func (c *conn) beyondBroker(p *publish, reason string, code mqttwaf.ReasonCode, detail string) {
	c.p.waf.Record(mqttwaf.StagePublish, &c.client, "", "", p.topic, len(p.payload), mqttwaf.Verdict{Action: mqttwaf.Disconnect,
		Rule: "proxy.upstream", Reason: reason, Code: code, Detail: detail})
	c.kick(code)
}
