package hooks

import (
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/mqttwaf/mqttwaf/mqttwaf"
)

// MQTT 3.1.1 CONNACK return codes (the tests' expectations; the mapping is
// mqttwaf.ReasonCode.MQTT311Connack).
const (
	v3IdentifierRejected  = 0x02
	v3ServerUnavailable   = 0x03
	v3BadUsernamePassword = 0x04
	v3NotAuthorized       = 0x05
)

// connackCode is the CONNACK code for a refused CONNECT: the verdict's
// code if the client speaks MQTT 5, otherwise the nearest of 3.1.1's five.
func connackCode(cl *mqtt.Client, v mqttwaf.Verdict) packets.Code {
	code := v.Code.For(mqttwaf.InConnack)
	if cl.Properties.ProtocolVersion == 5 {
		return packets.Code{Code: byte(code), Reason: v.Reason}
	}
	return packets.Code{Code: code.MQTT311Connack(), Reason: v.Reason}
}
