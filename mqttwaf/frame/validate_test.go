package frame

import (
	"errors"
	"strings"
	"testing"
)

// TestSeeds checks every seed's verdict, and that refusals are well formed.
func TestSeeds(t *testing.T) {
	names := map[string]bool{}
	for _, sd := range seeds {
		if names[sd.name] {
			t.Errorf("duplicate seed name %q", sd.name)
		}
		names[sd.name] = true
		err := Validate(sd.ver, sd.dir, sd.pkt)
		if sd.reason == "" {
			if err != nil {
				t.Errorf("%s: % X: %v, want accepted", sd.name, sd.pkt, err)
			}
			continue
		}
		var e *Error
		if !errors.As(err, &e) {
			t.Errorf("%s: % X: %v, want %s at %d", sd.name, sd.pkt, err, sd.reason, sd.off)
			continue
		}
		if e.Reason != sd.reason || e.Offset != sd.off {
			t.Errorf("%s: % X: %s at %d (%s), want %s at %d", sd.name, sd.pkt, e.Reason, e.Offset, e.Detail, sd.reason, sd.off)
		}
		checkError(t, sd.pkt, e)
	}
}

// checkError checks the invariants of every refusal.
func checkError(t *testing.T, pkt []byte, e *Error) {
	t.Helper()
	if e.Code != codeOf(e.Reason) {
		t.Errorf("% X: code 0x%02X for %s", pkt, e.Code, e.Reason)
	}
	switch e.Reason {
	case ReasonMalformed, ReasonProtocolError, ReasonTooLarge, ReasonFirstNotConnect, ReasonSecondConnect,
		ReasonUnsupportedVersion, ReasonFirstNotConnack, ReasonSecondConnack:
	default:
		t.Errorf("% X: unknown reason %q", pkt, e.Reason)
	}
	if e.Offset < 0 || e.Offset > len(pkt) {
		t.Errorf("% X: offset %d outside the packet", pkt, e.Offset)
	}
	if len(pkt) > 0 && e.Type != pkt[0]>>4 {
		t.Errorf("% X: type %d", pkt, e.Type)
	}
	if !strings.HasPrefix(e.Detail, typeNames[e.Type]+": ") || len(e.Detail) < len(typeNames[e.Type])+8 {
		t.Errorf("% X: detail %q", pkt, e.Detail)
	}
	if e.Error() != "mqtt "+e.Reason+": "+e.Detail {
		t.Errorf("Error() = %q", e.Error())
	}
}

// TestSeedsAllocs checks that accepting a packet allocates nothing.
func TestSeedsAllocs(t *testing.T) {
	for _, sd := range seeds {
		if sd.reason != "" {
			continue
		}
		if n := testing.AllocsPerRun(10, func() { _ = Validate(sd.ver, sd.dir, sd.pkt) }); n != 0 {
			t.Errorf("%s: %v allocations", sd.name, n)
		}
	}
}

// TestDetailHasNoClientData checks that refusals never quote client
// strings: every seed's strings are made of letters that must not appear
// in a Detail as a run of 3 or more.
func TestDetailHasNoClientData(t *testing.T) {
	secret := "s3cretPassw0rd"
	pkts := [][]byte{
		pk(0x10, v4hdr, raw(0xC2), u16(60), str("c"), str("u"), str(secret), raw(0)),
		pk(0x30, str(secret+"/+"), raw(1)),
		pk(0x82, u16(1), str(secret+"#"), raw(0)),
		pk(0x10, str(secret), raw(4, 2), u16(60), str("c")),
	}
	for _, p := range pkts {
		err := Validate(4, FromClient, p)
		if err == nil {
			t.Fatalf("% X accepted", p)
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("detail quotes client data: %v", err)
		}
	}
}
