package mqttwaf

import (
	"crypto/tls"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"

	"github.com/mqttwaf/mqttwaf/mqttwaf/frame"
)

// Helpers every front end (the mochi hooks, the proxy) needs to speak MQTT
// about the WAF's decisions the same way. They live here so that no front
// end re-implements them (hooks and the proxy both use them).

// MQTT 3.1.1 CONNACK return codes.
const (
	v311IdentifierRejected  = 0x02
	v311ServerUnavailable   = 0x03
	v311BadUsernamePassword = 0x04
	v311NotAuthorized       = 0x05
)

// MQTT311Connack is the nearest of MQTT 3.1.1's five CONNACK return codes
// to c, for a CONNECT refused with c (a CONNACK code: see For).
func (c ReasonCode) MQTT311Connack() byte {
	switch c {
	case CodeClientIDNotValid:
		return v311IdentifierRejected
	case CodeBadUsernameOrPassword, CodeBadAuthMethod:
		return v311BadUsernamePassword
	case CodeServerBusy, CodeServerUnavailable, CodeQuotaExceeded, CodeConnectionRateExceeded, CodeMessageRateTooHigh:
		return v311ServerUnavailable
	}
	return v311NotAuthorized
}

// oidCommonName is the X.500 commonName attribute type, 2.5.4.3.
var oidCommonName = asn1.ObjectIdentifier{2, 5, 4, 3}

// TLSInfoOf is the WAF's view of a TLS connection's peer, or nil when the
// handshake has not completed.
func TLSInfoOf(st tls.ConnectionState) *TLSInfo {
	if !st.HandshakeComplete {
		return nil
	}
	info := &TLSInfo{Verified: len(st.VerifiedChains) > 0}
	if len(st.PeerCertificates) > 0 {
		leaf := st.PeerCertificates[0]
		info.CommonNames = subjectCNs(leaf.Subject.Names)
		if len(info.CommonNames) == 1 {
			info.CommonName = info.CommonNames[0] // not Subject.CommonName: the last of several
		}
		info.DNSNames = leaf.DNSNames
		info.Emails = leaf.EmailAddresses
		for _, u := range leaf.URIs {
			info.URIs = append(info.URIs, u.String())
		}
	}
	return info
}

// subjectCNs returns every CN of a parsed subject, multi-valued RDNs
// included; a CN that is not a string counts as an empty one.
func subjectCNs(names []pkix.AttributeTypeAndValue) []string {
	var out []string
	for _, atv := range names {
		if atv.Type.Equal(oidCommonName) {
			s, _ := atv.Value.(string)
			out = append(out, s)
		}
	}
	return out
}

// FrameVerdict describes a packet the frame validator refused, if err is
// such a refusal: rule connections.protocol (connections.max_packet_size
// for an oversized one), the validator's reason and code, and a detail
// naming the packet type, the offset and the field.
func FrameVerdict(err error) (Verdict, bool) {
	var fe *frame.Error
	if !errors.As(err, &fe) {
		return Verdict{}, false
	}
	v := Verdict{Action: Disconnect, Rule: "connections.protocol", Reason: fe.Reason,
		Code: ReasonCode(fe.Code), Value: int64(fe.Offset),
		Detail: fmt.Sprintf("%s packet refused at byte %d: %s", PacketName(fe.Type), fe.Offset, fe.Detail)}
	if fe.Reason == frame.ReasonTooLarge {
		v.Rule = "connections.max_packet_size"
	}
	return v, true
}

// PacketName is the MQTT name of a control packet type.
func PacketName(t byte) string {
	names := [...]string{"reserved", "CONNECT", "CONNACK", "PUBLISH", "PUBACK", "PUBREC", "PUBREL", "PUBCOMP",
		"SUBSCRIBE", "SUBACK", "UNSUBSCRIBE", "UNSUBACK", "PINGREQ", "PINGRESP", "DISCONNECT", "AUTH"}
	if int(t) < len(names) {
		return names[t]
	}
	return "unknown"
}
