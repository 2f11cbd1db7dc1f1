package mqttwaf

import "time"

// BrokerInfo is what a broker says about itself, for metrics: mochi-mqtt's
// system.Info without importing mochi (hooks.BrokerInfo fills it). Totals
// count since the broker started.
type BrokerInfo struct {
	Started             time.Time
	ClientsConnected    int64
	ClientsDisconnected int64 // persistent sessions whose client is away
	ClientsMaximum      int64
	MessagesReceived    int64
	MessagesSent        int64
	MessagesDropped     int64 // deliveries dropped to slow subscribers
	InflightDropped     int64
	Retained            int64
	Inflight            int64
	Subscriptions       int64
	BytesReceived       int64
	BytesSent           int64
	PacketsReceived     int64
	PacketsSent         int64
}

// RuleDeliveryDropped is the rule id under which adapters record every
// delivery the broker dropped (events and counters, one reason each).
const RuleDeliveryDropped = "broker.delivery_dropped"
