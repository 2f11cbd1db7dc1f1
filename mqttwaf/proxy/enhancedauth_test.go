package proxy

import (
	"io"
	"net"
	"strconv"
	"testing"
	"time"
)

// A CONNECT with an Authentication Method (MQTT 5 enhanced authentication,
// e.g. SCRAM) gets CONNACK 0x8C from the proxy, as from the embedded
// broker, with an identity.authenticate event; the proxy never dials the
// broker for it (the upstream here is a closed port, which would answer
// 0x88), so the broker cannot be the one to decide who the client is.
func TestEnhancedAuthRefused(t *testing.T) {
	dead := net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
	px, ev := startProxy(t, "", dead, nil)
	r := rawDial(t, px.Addr(), 5)
	cp := connect{protoName: "MQTT", level: 5, clean: true, keepalive: 30, clientID: "ea", props: []prop{
		{propAuthMethod, appendString(nil, "SCRAM-SHA-256")}, {0x16, appendString(nil, "n,,n=dev1")}}}
	r.send(t, cp.encode())
	ca, err := decodeConnack(5, r.next(t))
	if err != nil || ca.code != 0x8C {
		t.Fatalf("CONNACK %+v %v, want 0x8C bad authentication method", ca, err)
	}
	if v, _ := findProp(ca.props, propReasonString); string(propBinary(v)) != "bad_authentication_method" {
		t.Fatalf("CONNACK properties %v", ca.props)
	}
	_ = r.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if rest, err := io.ReadAll(r.c); err != nil || len(rest) != 0 {
		t.Fatalf("after the CONNACK: %x %v, want the connection closed", rest, err)
	}
	ev.Wait(t, "identity.authenticate", "bad_authentication_method", time.Second)
	if _, ok := ev.Find("proxy.upstream", ""); ok {
		t.Fatal("the proxy dialled the broker for a refused CONNECT")
	}
}
