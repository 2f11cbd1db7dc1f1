package hooks

import (
	"sync"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/mqttwaf/mqttwaf/mqttwaf"
)

// deniedFilter replaces a filter the WAF refused. mochi gives OnSubscribe
// no way to refuse one filter (dropping it would leave the SUBACK one code
// short), but it asks OnACLCheck about each filter afterwards: the hook
// refuses this marker there, mochi answers 0x87 (0x80 on 3.1.1), and
// OnPacketEncode puts the WAF's precise MQTT 5 code in the SUBACK. The
// marker is a valid filter to mochi and matches no topic.
const deniedFilter = "\x00mqttwaf/denied"

// OnSubscribe runs the subscribe stage for every filter of the packet.
func (h *stack) OnSubscribe(cl *mqtt.Client, pk packets.Packet) (out packets.Packet) {
	defer func() {
		if r := recover(); r != nil {
			h.panicked(cl, mqttwaf.StageSubscribe, r)
			filters := append(packets.Subscriptions(nil), pk.Filters...)
			for i := range filters {
				filters[i].Filter = deniedFilter
			}
			out = pk
			out.Filters = filters
		}
	}()
	if cl.Net.Inline {
		return pk
	}
	s := h.sessions.get(cl)
	if s == nil {
		for i := range pk.Filters {
			pk.Filters[i].Filter = deniedFilter
		}
		return pk
	}
	names := make([]string, len(pk.Filters))
	for i, f := range pk.Filters {
		names[i] = f.Filter
	}
	s.queue.subscribing.Store(&names) // until OnSubscribed: see admitDelivery
	existing := cl.State.Subscriptions.Len()
	var filters packets.Subscriptions
	var codes []byte
	for i, f := range pk.Filters {
		sub := mqttwaf.Subscription{
			Filter: f.Filter, QoS: f.Qos, NoLocal: f.NoLocal, RetainAsPublished: f.RetainAsPublished,
			RetainHandling: f.RetainHandling, Identifier: f.Identifier,
			Existing: existing, Index: i, Count: len(pk.Filters),
		}
		v := h.waf.Subscribe(&s.client, &sub)
		if !v.Blocked() {
			existing++
			continue
		}
		if filters == nil { // copy before changing: the slice is mochi's
			filters = append(packets.Subscriptions(nil), pk.Filters...)
			codes = make([]byte, len(pk.Filters))
		}
		filters[i].Filter = deniedFilter
		codes[i] = byte(v.Code.For(mqttwaf.InSuback))
		if v.Action == mqttwaf.Disconnect || v.Action == mqttwaf.Ban {
			for j := range filters {
				filters[j].Filter = deniedFilter
			}
			h.disconnect(cl, v.Code, v.Reason)
			break
		}
	}
	if filters == nil {
		return pk
	}
	pk.Filters = filters
	s.mu.Lock()
	s.subackID, s.subackCodes = pk.PacketID, codes
	s.mu.Unlock()
	return pk
}

// OnSubscribed ends the SUBSCRIBE OnSubscribe began.
func (h *stack) OnSubscribed(cl *mqtt.Client, _ packets.Packet, _ []byte) {
	if s := h.sessions.get(cl); s != nil {
		s.queue.subscribing.Store(nil)
	}
}

// validAck keeps an acknowledgement to what MQTT 5 allows it to carry: a
// success or error reason code of its type and a reason string. mochi can
// put the publish's QoS (0x01, 0x02) in the reason code and copy the
// publish's properties into it; Install turns the copying off
// (NoInheritedPropertiesOnAck), and this holds for any server options.
func validAck(pk packets.Packet) packets.Packet {
	if pk.ReasonCode < packets.ErrUnspecifiedError.Code && pk.ReasonCode != packets.CodeNoMatchingSubscribers.Code {
		pk.ReasonCode = packets.CodeSuccess.Code
	}
	if pk.FixedHeader.Type == packets.Pubrel || pk.FixedHeader.Type == packets.Pubcomp {
		if pk.ReasonCode != packets.CodeSuccess.Code && pk.ReasonCode != packets.ErrPacketIdentifierNotFound.Code {
			pk.ReasonCode = packets.CodeSuccess.Code
		}
	}
	if len(pk.Properties.User) > 0 || pk.Properties.ContentType != "" || pk.Properties.ResponseTopic != "" ||
		pk.Properties.CorrelationData != nil || pk.Properties.PayloadFormatFlag || pk.Properties.TopicAliasFlag {
		pk.Properties = packets.Properties{ReasonString: pk.Properties.ReasonString}
	}
	return pk
}

// OnPacketEncode gives each subscriber its view of a PUBLISH (see
// mqttwaf.WAF.ViewMessage: on topics whose payload entry redacts, the
// redacted payload and only the properties the entry keeps, unless the
// subscriber's role has view: raw), and puts the WAF's reason codes into
// the SUBACK of a SUBSCRIBE whose filters it refused (MQTT 5 only; 3.1.1 has
// a single failure code). It is called for every outbound packet, live,
// retained or queued for a persistent session, so the view always follows
// the policy in force; it returns at once for other packets.
func (h *stack) OnPacketEncode(cl *mqtt.Client, pk packets.Packet) (res packets.Packet) {
	if pk.FixedHeader.Type == packets.Publish {
		defer func() {
			if r := recover(); r != nil {
				h.panicked(cl, mqttwaf.StageDeliver, r)
				res = pk // never the stored payload or properties when the view failed
				res.Payload = nil
				res.Properties.User, res.Properties.CorrelationData = nil, nil
				res.Properties.ResponseTopic, res.Properties.ContentType = "", ""
			}
		}()
		if cl.Net.Inline {
			return pk
		}
		return h.view(cl, pk)
	}
	switch pk.FixedHeader.Type {
	case packets.Puback, packets.Pubrec, packets.Pubrel, packets.Pubcomp:
		return validAck(pk)
	case packets.Connack:
		// A session taken over has just reset mochi's send quota
		// (inheritClientSession); the window does that job (sendwindow.go).
		if pg := gateOf(cl); pg != nil && pg.window.Load() != nil {
			disableMochiQuota(cl)
		}
	}
	if pk.FixedHeader.Type != packets.Suback || cl.Properties.ProtocolVersion != 5 {
		return pk
	}
	s := h.sessions.get(cl)
	if s == nil {
		return pk
	}
	s.mu.Lock()
	codes := s.subackCodes
	match := codes != nil && s.subackID == pk.PacketID
	if match {
		s.subackCodes = nil
	}
	s.mu.Unlock()
	if !match {
		return pk
	}
	out := append([]byte(nil), pk.ReasonCodes...)
	for i, c := range codes {
		if c != 0 && i < len(out) && out[i] >= packets.ErrUnspecifiedError.Code {
			out[i] = c
		}
	}
	pk.ReasonCodes = out
	return pk
}

// view gives cl its view of pk. The topic is always there: OnConnect turns
// outbound topic aliases off. pk is mochi's copy for this write, whose
// slices may be shared with the stored and in-flight copies, so its fields
// are replaced, never written into.
func (h *stack) view(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	m := mqttwaf.Message{Topic: pk.TopicName, Payload: pk.Payload, Props: mqttwaf.Properties{
		ContentType: pk.Properties.ContentType, ResponseTopic: pk.Properties.ResponseTopic,
		CorrelationData: pk.Properties.CorrelationData,
	}}
	if len(pk.Properties.User) > 0 {
		buf := userPropsPool.Get().(*[]mqttwaf.UserProperty)
		defer func() {
			clear(*buf) // drop the strings, so the pool holds no message data
			userPropsPool.Put(buf)
		}()
		*buf = appendUserProps((*buf)[:0], pk.Properties.User)
		m.Props.User = *buf
	}
	out, changed := h.waf.ViewMessage(h.sessions.clientOf(cl), &m)
	if !changed {
		return pk
	}
	pk.Payload = out.Payload
	pk.Properties.ContentType = out.Props.ContentType
	pk.Properties.ResponseTopic = out.Props.ResponseTopic
	pk.Properties.CorrelationData = out.Props.CorrelationData
	pk.Properties.User = keptProps(pk.Properties.User, out.Props.User)
	return pk
}

// userPropsPool holds the buffers view converts user properties into: a
// delivery is on the hot path, and most messages carry some (provenance).
var userPropsPool = sync.Pool{New: func() any { return new([]mqttwaf.UserProperty) }}

// appendUserProps appends mochi's user properties to dst as the WAF's.
func appendUserProps(dst []mqttwaf.UserProperty, in []packets.UserProperty) []mqttwaf.UserProperty {
	for _, p := range in {
		dst = append(dst, mqttwaf.UserProperty{Key: p.Key, Value: p.Val})
	}
	return dst
}

// keptProps returns the user properties out (a view's, chosen from in) as
// mochi's: the tail of in when out is one (the WAF's marker goes first, so
// usually it is), without allocating; else a new slice.
func keptProps(in []packets.UserProperty, out []mqttwaf.UserProperty) []packets.UserProperty {
	if len(out) == 0 {
		return nil
	}
	tail := in[len(in)-min(len(out), len(in)):]
	if len(tail) == len(out) {
		same := true
		for i, u := range out {
			same = same && tail[i].Key == u.Key && tail[i].Val == u.Value
		}
		if same {
			return tail
		}
	}
	return mochiProps(out)
}
