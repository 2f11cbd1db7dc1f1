package mqttwaf

import (
	"errors"
	"fmt"
	"testing"

	"github.com/mqttwaf/mqttwaf/mqttwaf/frame"
)

func TestMQTT311Connack(t *testing.T) {
	for _, tc := range []struct {
		in   ReasonCode
		want byte
	}{
		{CodeClientIDNotValid, 0x02},
		{CodeBadUsernameOrPassword, 0x04},
		{CodeBadAuthMethod, 0x04},
		{CodeServerUnavailable, 0x03},
		{CodeServerBusy, 0x03},
		{CodeQuotaExceeded, 0x03},
		{CodeConnectionRateExceeded, 0x03},
		{CodeNotAuthorized, 0x05},
		{CodeBanned, 0x05},
		{CodeUnspecifiedError, 0x05},
	} {
		if got := tc.in.MQTT311Connack(); got != tc.want {
			t.Errorf("%v: 0x%02X, want 0x%02X", tc.in, got, tc.want)
		}
	}
}

func TestFrameVerdict(t *testing.T) {
	// The 8-byte SUBSCRIBE of mochi issue #501: a filter without options.
	err := frame.Validate(5, frame.FromClient, []byte{0x82, 0x08, 0, 1, 0, 0, 3, 'a', '/', 'b'})
	v, ok := FrameVerdict(fmt.Errorf("read: %w", err))
	if !ok || v.Rule != "connections.protocol" || v.Code != CodeMalformedPacket || v.Action != Disconnect || v.Reason != frame.ReasonMalformed {
		t.Fatalf("verdict %+v, %v", v, ok)
	}
	src := bytesReader([]byte{0x30, 0xFF, 0xFF, 0x7F})
	big := frame.NewReader(&src, frame.FromClient, frame.Limits{MaxPacketSize: 100})
	big.SetVersion(5)
	_, err = big.Next()
	if v, ok := FrameVerdict(err); !ok || v.Rule != "connections.max_packet_size" {
		t.Fatalf("oversized: %+v %v (%v)", v, ok, err)
	}
	if _, ok := FrameVerdict(errors.New("EOF")); ok {
		t.Fatal("a plain error is not a frame refusal")
	}
	if PacketName(8) != "SUBSCRIBE" || PacketName(99) != "unknown" {
		t.Fatal("PacketName")
	}
}

type bytesReader []byte

func (b *bytesReader) Read(p []byte) (int, error) {
	if len(*b) == 0 {
		return 0, errors.New("EOF")
	}
	n := copy(p, *b)
	*b = (*b)[n:]
	return n, nil
}
