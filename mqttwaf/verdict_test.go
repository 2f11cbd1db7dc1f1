package mqttwaf

import (
	"encoding/json"
	"fmt"
	"testing"
)

// specCodes are the reason codes MQTT 5.0 allows in each packet, written
// out from the specification (sections 3.2.2.2, 3.4.2.1, 3.9.3, 3.14.2.1)
// independently of validCodes. Codes below 0x80 are success codes.
var specCodes = map[PacketKind][]byte{
	InConnack: {0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x8C, 0x90, 0x95, 0x97,
		0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F},
	InPuback: {0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99},
	InSuback: {0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2},
	InDisconnect: {0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D, 0x8E, 0x8F, 0x90, 0x93, 0x94, 0x95,
		0x96, 0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2},
}

var kindNames = map[PacketKind]string{InConnack: "CONNACK", InPuback: "PUBACK", InSuback: "SUBACK", InDisconnect: "DISCONNECT"}

// TestReasonCodeForAllCodes: For is how a refusal finds its code. For all
// 256 codes and every packet kind the result is an error code (>= 0x80:
// a refusal never turns into a success) that the packet admits, and an error
// code the packet admits is kept as it is.
func TestReasonCodeForAllCodes(t *testing.T) {
	for kind, codes := range specCodes {
		valid := map[ReasonCode]bool{}
		for _, c := range codes {
			valid[ReasonCode(c)] = true
		}
		for i := range 256 {
			c := ReasonCode(i)
			got := c.For(kind)
			if !valid[got] || got < 0x80 {
				t.Errorf("%#02x.For(%s) = %#02x: not an error code %s admits", i, kindNames[kind], byte(got), kindNames[kind])
			}
			if c >= 0x80 && valid[c] && got != c {
				t.Errorf("%#02x.For(%s) = %#02x: a valid code must be kept", i, kindNames[kind], byte(got))
			}
		}
	}
}

// TestReasonCodeForNearest: the closest code, not just any valid one.
func TestReasonCodeForNearest(t *testing.T) {
	tests := []struct {
		code ReasonCode
		kind PacketKind
		want ReasonCode
	}{
		{CodeBanned, InPuback, CodeNotAuthorized},
		{CodeBanned, InSuback, CodeNotAuthorized},
		{CodeBanned, InDisconnect, CodeNotAuthorized},
		{CodeBanned, InConnack, CodeBanned},
		{CodeBadUsernameOrPassword, InDisconnect, CodeNotAuthorized},
		{CodeBadAuthMethod, InPuback, CodeNotAuthorized},
		{CodeMessageRateTooHigh, InSuback, CodeQuotaExceeded},
		{CodeMessageRateTooHigh, InPuback, CodeQuotaExceeded},
		{CodeMessageRateTooHigh, InConnack, CodeQuotaExceeded},
		{CodeMessageRateTooHigh, InDisconnect, CodeMessageRateTooHigh},
		{CodeConnectionRateExceeded, InPuback, CodeQuotaExceeded},
		{CodePacketTooLarge, InPuback, CodeQuotaExceeded},
		{CodePacketTooLarge, InSuback, CodeQuotaExceeded},
		{CodePacketTooLarge, InConnack, CodePacketTooLarge},
		{CodeTopicFilterInvalid, InPuback, CodeTopicNameInvalid},
		{CodeTopicFilterInvalid, InConnack, CodeTopicNameInvalid},
		{CodeTopicNameInvalid, InSuback, CodeTopicFilterInvalid},
		{CodeClientIDNotValid, InPuback, CodeImplementationSpecific},
		{CodeServerBusy, InSuback, CodeImplementationSpecific},
		{CodeSessionTakenOver, InConnack, CodeImplementationSpecific},
		{CodeSuccess, InConnack, CodeUnspecifiedError},
		{0x10, InPuback, CodeUnspecifiedError},
		{0x7F, InDisconnect, CodeUnspecifiedError},
		{0xFF, InConnack, CodeImplementationSpecific},
	}
	for _, tc := range tests {
		if got := tc.code.For(tc.kind); got != tc.want {
			t.Errorf("%#02x.For(%s) = %#02x, want %#02x", byte(tc.code), kindNames[tc.kind], byte(got), byte(tc.want))
		}
	}
}

func TestReasonCodeText(t *testing.T) {
	tests := []struct {
		code       ReasonCode
		name, text string
	}{
		{CodeNotAuthorized, "not authorized", "0x87"},
		{CodeSuccess, "success", "0x00"},
		{CodeBanned, "banned", "0x8A"},
		{CodeWildcardSubsUnsupported, "wildcard subscriptions not supported", "0xA2"},
		{0x84, "unsupported protocol version", "0x84"},
		{0x9C, "reason code 0x9C", "0x9C"},
		{0x05, "reason code 0x05", "0x05"},
	}
	for _, tc := range tests {
		if got := tc.code.String(); got != tc.name {
			t.Errorf("%#02x.String() = %q, want %q", byte(tc.code), got, tc.name)
		}
		if got, err := tc.code.MarshalText(); err != nil || string(got) != tc.text {
			t.Errorf("%#02x.MarshalText() = %q, %v, want %q", byte(tc.code), got, err, tc.text)
		}
	}
}

func TestAction(t *testing.T) {
	tests := []struct {
		a      Action
		name   string
		blocks bool
	}{
		{Allow, "allow", false},
		{Rewrite, "rewrite", false},
		{Drop, "drop", true},
		{Reject, "reject", true},
		{Disconnect, "disconnect", true},
		{Ban, "ban", true},
		{numActions, fmt.Sprintf("action(%d)", numActions), true},
	}
	for _, tc := range tests {
		if got := tc.a.String(); got != tc.name {
			t.Errorf("Action(%d).String() = %q, want %q", tc.a, got, tc.name)
		}
		if got := tc.a.Blocks(); got != tc.blocks {
			t.Errorf("%s.Blocks() = %v", tc.a, got)
		}
		if got := (Verdict{Action: tc.a}).Blocked(); got != tc.blocks {
			t.Errorf("Verdict{%s}.Blocked() = %v", tc.a, got)
		}
	}
	b, err := json.Marshal(Count{Rule: "r", Action: Reject, Reason: "why", Enforced: true, N: 3})
	if err != nil || string(b) != `{"rule":"r","action":"reject","reason":"why","enforced":true,"n":3}` {
		t.Errorf("Count JSON = %s, %v", b, err)
	}
}

func TestVerdictConstructors(t *testing.T) {
	if got, want := Deny("r", "why", CodeNotAuthorized), (Verdict{Action: Reject, Rule: "r", Reason: "why", Code: CodeNotAuthorized}); got != want {
		t.Errorf("Deny = %+v, want %+v", got, want)
	}
	if got, want := OverLimit("r", "big", CodePacketTooLarge, 10, 5), (Verdict{Action: Reject, Rule: "r", Reason: "big", Code: CodePacketTooLarge, Value: 10, Limit: 5}); got != want {
		t.Errorf("OverLimit = %+v, want %+v", got, want)
	}
}

// TestVerdictCodeDefaults: the engine never returns a blocking verdict
// without a code (Ban means banned), and events carry the code only for
// actions that send one.
func TestVerdictCodeDefaults(t *testing.T) {
	tests := []struct {
		action    Action
		code      ReasonCode
		wantCode  ReasonCode // verdict returned by the engine
		eventCode ReasonCode
	}{
		{Reject, 0, CodeUnspecifiedError, CodeUnspecifiedError},
		{Disconnect, 0, CodeUnspecifiedError, CodeUnspecifiedError},
		{Ban, 0, CodeBanned, CodeBanned}, // the event must show the code the client gets
		{Ban, CodeNotAuthorized, CodeNotAuthorized, CodeNotAuthorized},
		{Drop, 0, CodeUnspecifiedError, 0},
		{Reject, CodeQuotaExceeded, CodeQuotaExceeded, CodeQuotaExceeded},
	}
	for _, tc := range tests {
		tw := newTestWAF(t, "", &fixedRule{v: Verdict{Action: tc.action, Code: tc.code, Reason: "fixed"}})
		v, _ := tw.Publish(testClient("dev1", "alice"), &Message{Topic: "a"})
		if v.Action != tc.action || v.Code != tc.wantCode || v.Rule != "test.fixed" {
			t.Errorf("%s/%#x: verdict %+v, want code %#x", tc.action, byte(tc.code), v, byte(tc.wantCode))
		}
		if evs := tw.events.take(); len(evs) != 1 || evs[0].Code != tc.eventCode {
			t.Errorf("%s/%#x: events %+v, want code %#x", tc.action, byte(tc.code), evs, byte(tc.eventCode))
		}
	}
}

type fixedRule struct{ v Verdict }

func (*fixedRule) ID() string { return "test.fixed" }

func (r *fixedRule) CheckPublish(*Publish) Verdict { return r.v }
