package proxy

import (
	"errors"
	"strconv"

	"github.com/mqttwaf/mqttwaf/mqttwaf"
	"github.com/mqttwaf/mqttwaf/mqttwaf/frame"
)

// Protocol translation: an MQTT 3.1 or 3.1.1 client behind an MQTT 5
// upstream connection. The WAF's provenance stamp and the service
// identity are MQTT 5 user properties, which a 3.1.1 connection cannot
// carry to the broker; speaking MQTT 5 upstream for such a client lets
// them through, while the client keeps seeing exactly 3.1.1. Upwards, the
// CONNECT becomes MQTT 5 (clean session -> clean start plus a session
// expiry of 0 or broker.max_session_expiry) and SUBSCRIBE, UNSUBSCRIBE and
// PUBLISH gain an empty property section (the client's acknowledgements,
// PINGREQ and DISCONNECT are valid MQTT 5 as they are). Downwards,
// properties and reason codes are dropped: CONNACK codes become 3.1.1
// return codes, SUBACK failures 0x80, acknowledgements carry only their
// packet identifier, and a DISCONNECT or AUTH from the broker ends the
// client's connection (3.1.1 has neither).

var errAliased = errors.New("a PUBLISH with a topic alias and no topic: the proxy asks brokers for no aliases")

// upstreamVersion is the protocol version the proxy speaks to the broker
// for a client of version ver.
func (p *Proxy) upstreamVersion(ver byte) byte {
	if ver == mqttwaf.MQTT5 {
		return ver
	}
	switch p.opts.UpstreamProtocol {
	case UpstreamClient:
		return ver
	case Upstream5:
		return mqttwaf.MQTT5
	}
	if p.opts.Identity.Mode == IdentityService || p.waf.Provenance().UserProperty != "" {
		return mqttwaf.MQTT5
	}
	return ver
}

// upgradeConnect turns a 3.1 or 3.1.1 CONNECT into MQTT 5 and returns its
// session expiry: 0 for a clean session, persistent (the embedded broker
// keeps a 3.1.1 session for broker.max_session_expiry) otherwise.
func upgradeConnect(c *connect, persistent uint32) (expiry uint32) {
	c.protoName, c.level = "MQTT", mqttwaf.MQTT5
	c.props, c.willProps = nil, nil
	if c.clean {
		return 0
	}
	return persistent
}

// upgrade translates a validated 3.1 or 3.1.1 client packet (not CONNECT
// or PUBLISH, which the proxy re-encodes itself) into MQTT 5.
func upgrade(pkt []byte) ([]byte, error) {
	switch pkt[0] >> 4 {
	case frame.TypeSubscribe, frame.TypeUnsubscribe:
		// The packet identifier, then an empty property section. A 3.1.1
		// subscription options byte is a QoS, which MQTT 5 reads the same
		// (no local 0, retain as published 0 as 3.1.1 behaves, send retained).
		r := body(pkt)
		r.u16()
		if r.err != nil {
			return nil, r.err
		}
		b := make([]byte, 0, len(pkt)-r.i+3)
		b = append(append(b, pkt[r.i-2:r.i]...), 0)
		return packet(pkt[0], append(b, pkt[r.i:]...)), nil
	}
	return pkt, nil // acknowledgements, PINGREQ, DISCONNECT: valid MQTT 5 as they are
}

// downgrade translates a validated MQTT 5 broker packet (not PUBLISH,
// which the proxy re-encodes through the subscriber's view) into version
// ver (3 or 4). A nil packet means there is nothing to send: the broker
// sent DISCONNECT or AUTH, which end the client's connection.
func downgrade(ver byte, pkt []byte) ([]byte, error) {
	switch typ := pkt[0] >> 4; typ {
	case frame.TypeConnack:
		ca, err := decodeConnack(mqttwaf.MQTT5, pkt)
		if err != nil {
			return nil, err
		}
		ca.code, ca.props = connackCode311(ca.code), nil
		ca.sessionPresent = ca.sessionPresent && ca.code == 0
		return ca.encode(ver), nil
	case frame.TypeSuback:
		sa, err := decodeSuback(mqttwaf.MQTT5, pkt)
		if err != nil {
			return nil, err
		}
		sa.props, sa.codes = nil, suback311(sa.codes)
		return sa.encode(ver), nil
	case frame.TypePuback, frame.TypePubrec, frame.TypePubrel, frame.TypePubcomp, frame.TypeUnsuback:
		id, err := packetID(pkt)
		if err != nil {
			return nil, err
		}
		if typ == frame.TypeUnsuback {
			return []byte{frame.TypeUnsuback << 4, 2, byte(id >> 8), byte(id)}, nil
		}
		return ack(ver, typ, id, 0), nil
	case frame.TypeDisconnect, frame.TypeAuth:
		return nil, nil
	case frame.TypePublish:
		p, err := decodePublish(mqttwaf.MQTT5, pkt)
		if err != nil {
			return nil, err
		}
		if p.topic == "" {
			return nil, errAliased
		}
		return p.encode(ver), nil
	}
	return pkt, nil // PINGRESP
}

// connackCode311 is the 3.1.1 return code nearest to an MQTT 5 CONNACK
// reason code from the broker.
func connackCode311(code byte) byte {
	switch {
	case code == 0:
		return 0
	case code == 0x84: // unsupported protocol version
		return 0x01
	case code == 0x9C || code == 0x9D: // use another server, server moved
		return 0x03 // server unavailable
	}
	return mqttwaf.ReasonCode(code).MQTT311Connack()
}

// suback311 maps MQTT 5 SUBACK reason codes to 3.1.1's: the granted QoS,
// or 0x80 for any failure.
func suback311(codes []byte) []byte {
	out := make([]byte, len(codes))
	for i, c := range codes {
		out[i] = c
		if c >= 0x80 {
			out[i] = 0x80
		}
	}
	return out
}

// sendUp forwards a translated client's PUBLISH within the broker's
// Receive Maximum. A 3.1.1 client cannot be told it, and an MQTT 5 broker
// disconnects a client that exceeds it (HiveMQ's default is 10), so what
// would exceed it waits here, in order, until the broker acknowledges
// (quotaBack). More than broker.receive_maximum publishes, or
// broker.max_inflight_bytes, waiting ends the connection, as the embedded
// broker ends one that exceeds its receive maximum.
func (c *conn) sendUp(qos byte, pkt []byte) bool {
	c.mu.Lock()
	if len(c.queued) == 0 && (qos == 0 || c.sendQuota > 0) {
		if qos > 0 {
			c.sendQuota--
		}
		err := c.relayUp(pkt)
		c.mu.Unlock()
		return err == nil
	}
	b := c.p.waf.Broker()
	if len(c.queued) < b.ReceiveMaximum && int64(c.queuedBytes+len(pkt)) <= int64(b.MaxInflightBytes) {
		c.queued = append(c.queued, pkt)
		c.queuedBytes += len(pkt)
		c.mu.Unlock()
		return true
	}
	waiting, size := len(c.queued)+1, c.queuedBytes+len(pkt)
	c.mu.Unlock()
	c.p.waf.Record(mqttwaf.StagePublish, &c.client, "", "", "", len(pkt), mqttwaf.Verdict{Action: mqttwaf.Disconnect,
		Rule: "broker.receive_maximum", Reason: "receive_maximum_exceeded", Code: 0x93,
		Value: int64(waiting), Limit: int64(b.ReceiveMaximum),
		Detail: "more publishes (value, " + strconv.Itoa(size) + " bytes) wait for the upstream broker's Receive Maximum than " +
			"broker.receive_maximum (limit) or broker.max_inflight_bytes allow: the client publishes at QoS 1/2 faster than the broker acknowledges"})
	c.kick(0x93)
	return false
}

// brokerAck handles the broker's PUBACK, PUBREC or PUBCOMP of a translated
// client's publish. A refusal (reason code 0x80 or above) cannot reach a
// 3.1.1 client, which sees a plain acknowledgement: it is recorded instead.
// PUBACK and PUBCOMP end a publish and return its send quota. (An MQTT 5
// PUBREC with an error ends one too, but the 3.1.1 client answers it with
// PUBREL all the same, and the broker's PUBCOMP to that returns the quota.)
func (c *conn) brokerAck(pkt []byte) bool {
	if len(pkt) > 4 && pkt[4] >= 0x80 {
		id, _ := packetID(pkt)
		c.p.waf.Record(mqttwaf.StageBroker, &c.client, "", "", "", 0, mqttwaf.Verdict{Action: mqttwaf.Reject,
			Rule: "proxy.upstream", Reason: "refused_by_broker", Code: mqttwaf.ReasonCode(pkt[4]), Value: int64(id),
			Detail: "the upstream broker refused the 3.1.1 client's publish (packet id: value) with the reason code; " +
				"3.1.1 cannot carry it, so the client saw a plain " + mqttwaf.PacketName(pkt[0]>>4) + ": check the broker's ACL and limits"})
	}
	if pkt[0]>>4 == frame.TypePubrec {
		return true
	}
	return c.quotaBack()
}

// quotaBack returns one unit of send quota and sends what waited for it.
func (c *conn) quotaBack() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sendQuota++
	sent := false
	for len(c.queued) > 0 {
		pkt := c.queued[0]
		qos := pkt[0] >> 1 & 3
		if qos > 0 && c.sendQuota == 0 {
			break
		}
		if qos > 0 {
			c.sendQuota--
		}
		c.queued[0] = nil
		c.queued = c.queued[1:]
		c.queuedBytes -= len(pkt)
		if c.relayUp(pkt) != nil {
			return false
		}
		sent = true
	}
	// The client's reader flushes what it relays only when it has nothing
	// more to read; these must not wait for the client's next packet.
	return !sent || c.toUp.flush() == nil
}
