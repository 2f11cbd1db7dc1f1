package mqttwaf

import (
	"fmt"
	"strconv"
	"time"
)

// Action is what a rule decides to do with a connection, subscription,
// message or delivery.
type Action uint8

const (
	// Allow lets the packet through unchanged. It is the zero Verdict.
	Allow Action = iota
	// Rewrite lets it through in a changed form (payload normalised or
	// redacted, keepalive clamped, will stripped). Evaluation continues.
	Rewrite
	// Drop discards it silently (QoS 0, or a QoS>0 publish acknowledged as if
	// delivered when the protocol has no way to say no).
	Drop
	// Reject refuses it with Verdict.Code (CONNACK, PUBACK/PUBREC, SUBACK).
	Reject
	// Disconnect refuses it and closes the connection (DISCONNECT with
	// Verdict.Code on MQTT 5).
	Disconnect
	// Ban disconnects and bans the client for Verdict.BanFor.
	Ban
	numActions
)

var actionNames = [...]string{"allow", "rewrite", "drop", "reject", "disconnect", "ban"}

func (a Action) String() string {
	if int(a) < len(actionNames) {
		return actionNames[a]
	}
	return "action(" + strconv.Itoa(int(a)) + ")"
}

// MarshalText implements encoding.TextMarshaler.
func (a Action) MarshalText() ([]byte, error) { return []byte(a.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (a *Action) UnmarshalText(b []byte) error {
	for i, n := range actionNames {
		if n == string(b) {
			*a = Action(i)
			return nil
		}
	}
	return fmt.Errorf("unknown action %q", b)
}

// Blocks reports whether the action stops the packet.
func (a Action) Blocks() bool { return a >= Drop }

// ReasonCode is an MQTT 5 reason code. MQTT 3.1.1 clients receive the
// nearest 3.1.1 return code instead (see the hooks package).
type ReasonCode byte

// The reason codes the WAF uses (MQTT 5.0 section 2.4).
const (
	CodeSuccess                 ReasonCode = 0x00
	CodeUnspecifiedError        ReasonCode = 0x80
	CodeMalformedPacket         ReasonCode = 0x81
	CodeProtocolError           ReasonCode = 0x82
	CodeImplementationSpecific  ReasonCode = 0x83
	CodeClientIDNotValid        ReasonCode = 0x85
	CodeBadUsernameOrPassword   ReasonCode = 0x86
	CodeUnsupportedProtocol     ReasonCode = 0x84
	CodeNotAuthorized           ReasonCode = 0x87
	CodeServerUnavailable       ReasonCode = 0x88
	CodeServerBusy              ReasonCode = 0x89
	CodeBanned                  ReasonCode = 0x8A
	CodeBadAuthMethod           ReasonCode = 0x8C
	CodeKeepAliveTimeout        ReasonCode = 0x8D
	CodeSessionTakenOver        ReasonCode = 0x8E
	CodeTopicFilterInvalid      ReasonCode = 0x8F
	CodeTopicNameInvalid        ReasonCode = 0x90
	CodePacketTooLarge          ReasonCode = 0x95
	CodeMessageRateTooHigh      ReasonCode = 0x96
	CodeQuotaExceeded           ReasonCode = 0x97
	CodePayloadFormatInvalid    ReasonCode = 0x99
	CodeConnectionRateExceeded  ReasonCode = 0x9F
	CodeWildcardSubsUnsupported ReasonCode = 0xA2
)

var codeNames = map[ReasonCode]string{
	CodeSuccess:                 "success",
	CodeUnspecifiedError:        "unspecified error",
	CodeMalformedPacket:         "malformed packet",
	CodeProtocolError:           "protocol error",
	CodeImplementationSpecific:  "implementation specific error",
	CodeClientIDNotValid:        "client identifier not valid",
	CodeBadUsernameOrPassword:   "bad user name or password",
	CodeNotAuthorized:           "not authorized",
	CodeUnsupportedProtocol:     "unsupported protocol version",
	CodeServerUnavailable:       "server unavailable",
	CodeServerBusy:              "server busy",
	CodeBanned:                  "banned",
	CodeKeepAliveTimeout:        "keep alive timeout",
	CodeBadAuthMethod:           "bad authentication method",
	CodeSessionTakenOver:        "session taken over",
	CodeTopicFilterInvalid:      "topic filter invalid",
	CodeTopicNameInvalid:        "topic name invalid",
	CodePacketTooLarge:          "packet too large",
	CodeMessageRateTooHigh:      "message rate too high",
	CodeQuotaExceeded:           "quota exceeded",
	CodePayloadFormatInvalid:    "payload format invalid",
	CodeConnectionRateExceeded:  "connection rate exceeded",
	CodeWildcardSubsUnsupported: "wildcard subscriptions not supported",
	0x8B:                        "server shutting down",
	0x91:                        "packet identifier in use",
	0x93:                        "receive maximum exceeded",
	0x94:                        "topic alias invalid",
	0x98:                        "administrative action",
	0x9E:                        "shared subscriptions not supported",
}

// String returns the spec's name for the code.
func (c ReasonCode) String() string {
	if n, ok := codeNames[c]; ok {
		return n
	}
	return fmt.Sprintf("reason code 0x%02X", byte(c))
}

// MarshalText renders the code as "0x87" (events, JSON).
func (c ReasonCode) MarshalText() ([]byte, error) {
	return fmt.Appendf(nil, "0x%02X", byte(c)), nil
}

// UnmarshalText parses "0x87" (or "135").
func (c *ReasonCode) UnmarshalText(b []byte) error {
	n, err := strconv.ParseUint(string(b), 0, 8)
	if err != nil {
		return fmt.Errorf("invalid reason code %q: write it like 0x87", b)
	}
	*c = ReasonCode(n)
	return nil
}

// PacketKind names the packet a reason code is sent in; each admits a
// different set of codes.
type PacketKind uint8

const (
	InConnack PacketKind = iota
	InPuback             // also PUBREC
	InSuback
	InDisconnect
)

// validCodes lists, per packet kind, the error codes MQTT 5 allows in it.
var validCodes = [...]map[ReasonCode]bool{
	InConnack: {0x80: true, 0x81: true, 0x82: true, 0x83: true, 0x84: true, 0x85: true, 0x86: true,
		0x87: true, 0x88: true, 0x89: true, 0x8A: true, 0x8C: true, 0x90: true, 0x95: true,
		0x97: true, 0x99: true, 0x9A: true, 0x9B: true, 0x9C: true, 0x9D: true, 0x9F: true},
	InPuback: {0x80: true, 0x83: true, 0x87: true, 0x90: true, 0x91: true, 0x97: true, 0x99: true},
	InSuback: {0x80: true, 0x83: true, 0x87: true, 0x8F: true, 0x91: true, 0x97: true, 0x9E: true, 0xA1: true, 0xA2: true},
	InDisconnect: {0x80: true, 0x81: true, 0x82: true, 0x83: true, 0x87: true, 0x89: true, 0x8B: true,
		0x8D: true, 0x8E: true, 0x8F: true, 0x90: true, 0x93: true, 0x94: true, 0x95: true, 0x96: true,
		0x97: true, 0x98: true, 0x99: true, 0x9A: true, 0x9B: true, 0x9C: true, 0x9D: true, 0x9E: true,
		0x9F: true, 0xA0: true, 0xA1: true, 0xA2: true},
}

// For returns c if MQTT 5 allows it in packet kind k, and otherwise the
// closest code that is allowed, so a rule can say what it means without
// knowing every packet's table: 0x8A (banned) becomes 0x87 in a PUBACK,
// 0x96 (rate too high) becomes 0x97 (quota exceeded) in a SUBACK.
func (c ReasonCode) For(k PacketKind) ReasonCode {
	if int(k) >= len(validCodes) || validCodes[k][c] {
		return c
	}
	switch c {
	case CodeBanned, CodeBadUsernameOrPassword, CodeBadAuthMethod:
		return CodeNotAuthorized.For(k)
	case CodeMessageRateTooHigh, CodeConnectionRateExceeded, CodePacketTooLarge:
		return CodeQuotaExceeded.For(k)
	case CodeTopicFilterInvalid:
		if k == InPuback || k == InConnack {
			return CodeTopicNameInvalid
		}
	case CodeTopicNameInvalid:
		if k == InSuback {
			return CodeTopicFilterInvalid
		}
	}
	if c >= 0x80 && validCodes[k][CodeImplementationSpecific] {
		return CodeImplementationSpecific
	}
	return CodeUnspecifiedError
}

// Verdict is one rule's decision. The zero Verdict allows.
type Verdict struct {
	Action Action
	// Code is the MQTT 5 reason code to answer with (Reject, Disconnect,
	// Ban). The adapter maps it to a code the packet admits (ReasonCode.For)
	// and to a 3.1.1 return code for older clients.
	Code ReasonCode
	// Rule is the id of the rule that decided, e.g. "limits.topic".
	Rule string
	// Reason is a stable machine-readable reason, e.g. "topic_too_long".
	Reason string
	// Limit is the configured limit that was crossed, when there is one,
	// and Value the value that crossed it.
	Limit, Value int64
	// Detail is optional human-readable context. It must never contain
	// payload bytes or secrets.
	Detail string
	// BanFor is the ban length for Action Ban; zero means the ban list's
	// growing back-off (rates.flapping.ban, doubling per repeat).
	BanFor time.Duration
	// BanKeys says what Action Ban bans; zero means the client ID and the
	// user name.
	BanKeys BanKeys

	// explain, if set, writes Detail when the decision's event is sent: a
	// rule that decides on every message (a redaction) builds no string
	// for events the event rate or level suppresses. It may point into
	// the rule's working state, so only verdicts recorded at once (not
	// blocking ones, which are returned) carry it.
	explain explainer
}

// explainer writes the detail of a verdict (see Verdict.explain).
type explainer interface{ detail() string }

// BanKeys selects what a ban applies to.
type BanKeys uint8

const (
	BanClientID BanKeys = 1 << iota // the client identifier
	BanUsername                     // the identity (user name), if not anonymous
	BanIP                           // the remote address
)

// Blocked reports whether v stops the packet.
func (v Verdict) Blocked() bool { return v.Action.Blocks() }

// Deny returns a Reject verdict.
func Deny(rule, reason string, code ReasonCode) Verdict {
	return Verdict{Action: Reject, Rule: rule, Reason: reason, Code: code}
}

// OverLimit returns a Reject verdict for a value that crossed a limit.
func OverLimit(rule, reason string, code ReasonCode, value, limit int64) Verdict {
	return Verdict{Action: Reject, Rule: rule, Reason: reason, Code: code, Value: value, Limit: limit}
}
