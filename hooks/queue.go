package hooks

import (
	"math"
	"slices"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/mochi-mqtt/server/v2/system"

	"github.com/mqttwaf/mqttwaf/mqttwaf"
)

// Delivery accounting: every message the broker discards on its way to a
// subscriber is a broker.delivery_dropped event and counter, with the
// client and the reason. mochi discards in five places, and tells the hooks
// about only some of them:
//
//   - the subscriber's in-flight store is full (broker.max_inflight): mochi
//     counts it (Info.InflightDropped), logs it, and calls no hook. The WAF
//     checks first, in the read ACL check mochi makes just before, against
//     both max_inflight and max_inflight_bytes, and refuses the delivery
//     itself (reason subscriber_inflight_full / subscriber_inflight_bytes);
//     what still reaches mochi's own check (deliveries racing for the last
//     slot, or a stack without Identity, whose ACL check is not the WAF's)
//     is found in mochi's counter once a second (OnSysInfoTick) and
//     reported without a client;
//   - packet identifiers exhausted: OnPacketIDExhausted;
//   - the subscriber's write queue is full (broker.client_write_queue):
//     OnPublishDropped; for QoS>0 mochi also forgets the in-flight copy;
//   - an in-flight message expires (broker.max_message_expiry or the
//     message's own expiry), a clean session ends with messages in flight,
//     or a subscriber refuses a QoS 2 delivery with an error code:
//     OnQosDropped;
//   - a persistent session expires with messages queued: OnClientExpired.
//
// A QoS 0 message for a session that is offline is not queued (MQTT allows
// either) and not counted: it was never owed.

// Reasons of broker.delivery_dropped.
const (
	dropInflightFull  = "subscriber_inflight_full"
	dropInflightBytes = "subscriber_inflight_bytes"
	dropPacketIDs     = "packet_ids_exhausted"
	dropQueueFull     = "subscriber_queue_full"
	dropUnsentBytes   = "subscriber_unsent_bytes"
	dropExpired       = "message_expired"
	dropSessionEnded  = "session_ended"
	dropSessionExpiry = "session_expired"
	dropRefused       = "subscriber_refused"
)

// ruleDeliveryDropped is the rule id of every dropped delivery; the
// metrics package exports these counters by reason too.
const ruleDeliveryDropped = mqttwaf.RuleDeliveryDropped

// recountEvery bounds how often a session's in-flight bytes are recounted
// from mochi's store (O(n log n)) before a delivery is refused for them: a
// subscriber that stays full cannot make every delivery to it pay that.
const recountEvery = 100 * time.Millisecond

// queue is a session's share of the accounting: the bytes of the QoS>0
// messages mochi holds for it, kept as they are stored and acknowledged.
type queue struct {
	bytes     atomic.Int64
	recounted atomic.Int64 // unix nanoseconds of the last recount
	// subscribing holds the filters of a SUBSCRIBE being processed: mochi
	// asks the read ACL about each of them, and a full store must not
	// refuse a subscription.
	subscribing atomic.Pointer[[]string]
}

// ownInflight lifts mochi's own in-flight limit to the packet-identifier
// ceiling on a server whose read ACL check is the WAF's (Identity is
// stacked): the WAF enforces broker.max_inflight there first, with an event
// naming the client, and a limit of mochi's at the same value would drop,
// silently, the deliveries that race the WAF's check for the last slot.
// Without Identity mochi's limit stays broker.max_inflight.
func ownInflight(caps *mqtt.Capabilities) {
	if caps != nil {
		caps.MaximumInflight = math.MaxUint16
	}
}

// inflightSize is what a stored message costs the store, as counted here.
func inflightSize(pk *packets.Packet) int64 { return int64(len(pk.TopicName) + len(pk.Payload)) }

// admitDelivery is the read ACL check's share: false (and an event) when the
// subscriber's in-flight store is full, so the WAF drops the delivery
// visibly instead of mochi silently.
func (h *stack) admitDelivery(cl *mqtt.Client, s *session, topic string) bool {
	if f := s.queue.subscribing.Load(); f != nil && slices.Contains(*f, topic) {
		return true // a SUBSCRIBE's filter, not a delivery
	}
	n := cl.State.Inflight.Len()
	if n == 0 {
		s.queue.bytes.Store(0) // nothing held: heal any drift
		return true
	}
	b := h.waf.Broker()
	if n >= b.MaxInflight {
		h.dropped(cl, topic, 0, dropInflightFull, int64(b.MaxInflight))
		return false
	}
	limit := int64(b.MaxInflightBytes)
	if s.queue.bytes.Load() < limit {
		return true
	}
	// Over the byte limit by the running count: recount before refusing (a
	// deferred send mochi forgets without a hook leaves the count high).
	now := time.Now().UnixNano()
	if last := s.queue.recounted.Load(); now-last > int64(recountEvery) && s.queue.recounted.CompareAndSwap(last, now) {
		s.queue.bytes.Store(heldBytes(cl))
		if s.queue.bytes.Load() < limit {
			return true
		}
	}
	h.dropped(cl, topic, 0, dropInflightBytes, limit)
	return false
}

// heldBytes counts the QoS>0 messages mochi holds for cl.
func heldBytes(cl *mqtt.Client) int64 {
	var n int64
	for _, pk := range cl.State.Inflight.GetAll(false) {
		if pk.FixedHeader.Type == packets.Publish {
			n += inflightSize(&pk)
		}
	}
	return n
}

// dropped records one dropped delivery to cl.
func (h *stack) dropped(cl *mqtt.Client, topic string, size int, reason string, limit int64) {
	var c *mqttwaf.Client
	if cl != nil {
		c = h.sessions.clientOf(cl)
	}
	h.waf.Record(mqttwaf.StageBroker, c, "", "", topic, size, mqttwaf.Verdict{
		Action: mqttwaf.Drop, Rule: ruleDeliveryDropped, Reason: reason, Limit: limit,
	})
}

// OnQosPublish counts a QoS>0 message mochi stored for cl. mochi also calls
// it when it resends stored messages to a session that reconnected (with
// DUP set): those are counted already.
func (h *stack) OnQosPublish(cl *mqtt.Client, pk packets.Packet, _ int64, _ int) {
	if pk.FixedHeader.Type != packets.Publish || pk.FixedHeader.Dup || cl.Net.Inline {
		return
	}
	if s := h.sessions.get(cl); s != nil {
		s.queue.bytes.Add(inflightSize(&pk))
	}
}

// released uncounts the stored message ack acknowledges (PUBACK, PUBREC)
// before mochi forgets it, and reports a delivery the subscriber refused
// (a PUBREC with an error code ends a QoS 2 delivery: MQTT 5, 4.13.2).
//
// A PUBACK for a message mochi no longer holds gives the subscriber's send
// quota back: mochi sends a delivery it held back at the subscriber's
// receive maximum and forgets it at once (processPacket's NextImmediate),
// so the PUBACK finds nothing and mochi never returns the quota; after
// receive-maximum such messages (20 for mosquitto_sub) the subscriber
// would receive nothing more. The quota never exceeds the client's own
// receive maximum, so a stray PUBACK buys a client nothing.
func (h *stack) released(cl *mqtt.Client, ack *packets.Packet) {
	pk, ok := cl.State.Inflight.Get(ack.PacketID)
	if !ok {
		if ack.FixedHeader.Type == packets.Puback {
			cl.State.Inflight.IncreaseSendQuota()
		}
		return
	}
	s := h.sessions.get(cl)
	if s == nil || pk.FixedHeader.Type != packets.Publish {
		return
	}
	s.queue.bytes.Add(-inflightSize(&pk))
	if ack.FixedHeader.Type == packets.Pubrec && ack.ReasonCode >= packets.ErrUnspecifiedError.Code {
		h.dropped(cl, pk.TopicName, len(pk.Payload), dropRefused, 0)
	}
}

// OnQosDropped reports a stored message mochi discarded.
func (h *stack) OnQosDropped(cl *mqtt.Client, pk packets.Packet) {
	if cl.Net.Inline {
		return
	}
	var reason string
	switch pk.FixedHeader.Type {
	case packets.Publish:
		if cl.IsTakenOver() {
			return // moved to the connection that took the session over
		}
		if s := h.sessions.get(cl); s != nil {
			s.queue.bytes.Add(-inflightSize(&pk))
		}
		reason = dropSessionEnded
		now := time.Now().Unix()
		if max := h.waf.Broker().MaxMessageExpiry.D(); (pk.Expiry > 0 && pk.Expiry < now) ||
			(max > 0 && now-pk.Created > int64(max/time.Second)) {
			reason = dropExpired
		}
	default:
		// The broker's own PUBREC for a QoS 2 publish from cl, cleared or
		// expired (that message reached its subscribers already); a PUBREL
		// waiting for the subscriber's PUBCOMP (it has the message); a PUBREC
		// with an error code from the subscriber (reported in released); or
		// mochi's second call for an expired message (an empty packet).
		return
	}
	h.dropped(cl, pk.TopicName, len(pk.Payload), reason, 0)
}

// OnPacketIDExhausted reports a delivery dropped because all 65535 packet
// identifiers of the subscriber are in use.
func (h *stack) OnPacketIDExhausted(cl *mqtt.Client, pk packets.Packet) {
	h.exhausted.Add(1)
	h.dropped(cl, pk.TopicName, len(pk.Payload), dropPacketIDs, 65535)
}

// OnPublishDropped reports a delivery mochi dropped because the
// subscriber's write queue was full.
func (h *stack) OnPublishDropped(cl *mqtt.Client, pk packets.Packet) {
	h.dropped(cl, pk.TopicName, len(pk.Payload), dropQueueFull, int64(h.waf.Broker().ClientWriteQueue))
}

// expiredSession reports the messages a persistent session held when
// mochi expired it (mochi forgets them without a hook).
func (h *stack) expiredSession(cl *mqtt.Client) {
	if cl.Net.Inline || cl.State.Inflight.Len() == 0 {
		return
	}
	for _, pk := range cl.State.Inflight.GetAll(false) {
		if pk.FixedHeader.Type == packets.Publish {
			h.dropped(cl, pk.TopicName, len(pk.Payload), dropSessionExpiry, 0)
		}
	}
}

// OnSysInfoTick reports, once a second, in-flight drops mochi counted that
// no hook told the WAF about (see the top of this file).
// Both counts only grow: mochi counts an exhausted-identifier drop just
// after calling OnPacketIDExhausted, so a tick in between sees a negative
// difference and reports nothing until the next one.
func (h *stack) OnSysInfoTick(info *system.Info) {
	unseen := atomic.LoadInt64(&info.InflightDropped) - h.exhausted.Load() - h.unattributed.Load()
	if unseen <= 0 {
		return
	}
	h.unattributed.Add(unseen)
	for range unseen {
		h.dropped(nil, "", 0, dropInflightFull, int64(h.waf.Broker().MaxInflight))
	}
}
