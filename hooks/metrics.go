package hooks

import (
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"

	"github.com/mqttwaf/mqttwaf/mqttwaf"
)

// BrokerInfo gives the metrics collector mochi's own figures (server.Info,
// what mochi publishes under $SYS), read when scraped, so the core and
// the metrics package need not import mochi:
//
//	metrics.New(waf, metrics.Options{Broker: hooks.BrokerInfo(server)})
//
// mochi keeps the connection, message and byte figures current; it
// updates Retained, Subscriptions and the disconnected-client count on its
// $SYS tick (every second).
func BrokerInfo(server *mqtt.Server) func() mqttwaf.BrokerInfo {
	return func() mqttwaf.BrokerInfo {
		i := server.Info.Clone()
		return mqttwaf.BrokerInfo{
			Started:             time.Unix(i.Started, 0),
			ClientsConnected:    i.ClientsConnected,
			ClientsDisconnected: i.ClientsDisconnected,
			ClientsMaximum:      i.ClientsMaximum,
			MessagesReceived:    i.MessagesReceived,
			MessagesSent:        i.MessagesSent,
			MessagesDropped:     i.MessagesDropped,
			InflightDropped:     i.InflightDropped,
			Retained:            i.Retained,
			Inflight:            i.Inflight,
			Subscriptions:       i.Subscriptions,
			BytesReceived:       i.BytesReceived,
			BytesSent:           i.BytesSent,
			PacketsReceived:     i.PacketsReceived,
			PacketsSent:         i.PacketsSent,
		}
	}
}
