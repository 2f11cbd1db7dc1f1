package mqttwaf

import "net/netip"

// Rule is one protection. A rule implements one or more of the stage
// interfaces (AcceptRule, ConnectRule, SubscribeRule, PublishRule,
// DeliverRule) and the engine calls it at those stages, in policy order.
//
// Rules decide; the engine applies the Mode. A rule never checks whether it
// runs in DetectionOnly: it returns its verdict and the engine records it and
// decides whether to enforce it. Rules must be safe for concurrent use and
// should not allocate on the allow path.
type Rule interface {
	// ID names the rule in events and counters, e.g. "limits.topic".
	ID() string
}

// Accept is a freshly accepted socket, before any MQTT byte was read.
type Accept struct {
	Listener   string
	RemoteAddr string
	RemoteIP   netip.Addr
	// Open is the number of open sockets on the broker and OpenFromIP the
	// number from RemoteIP, both counting this one.
	Open, OpenFromIP int
}

// AcceptRule decides on accepted sockets. Blocking verdicts close the socket
// (there is no MQTT session yet to send a reason code to).
type AcceptRule interface {
	Rule
	CheckAccept(a *Accept) Verdict
}

// ConnectRule decides on CONNECT. It may lower c.Keepalive or set c.Will to
// nil (returning a Rewrite verdict); blocking verdicts refuse the connection
// with CONNACK Verdict.Code.
type ConnectRule interface {
	Rule
	CheckConnect(c *Connect) Verdict
}

// SubscribeRule decides on each filter of a SUBSCRIBE. A blocking verdict
// refuses that filter in the SUBACK (other filters are unaffected), except
// Disconnect and Ban, which end the connection.
type SubscribeRule interface {
	Rule
	CheckSubscribe(c *Client, s *Subscription) Verdict
}

// PublishRule decides on inbound messages, and on Last Will messages at
// CONNECT (p.Will is true then). It may rewrite the payload through
// p.Scratch and p.SetPayload.
type PublishRule interface {
	Rule
	CheckPublish(p *Publish) Verdict
}

// DeliverRule decides whether one subscriber receives one message, at the
// moment of delivery, so a permission withdrawn by a policy reload takes
// effect on existing subscriptions. It is on the hottest path of the broker
// (once per message per subscriber) and must not allocate.
type DeliverRule interface {
	Rule
	CheckDeliver(c *Client, topic string) Verdict
}
