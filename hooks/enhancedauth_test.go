package hooks

import (
	"io"
	"net"
	"testing"
	"time"
)

// enhancedAuthConnect is an MQTT 5 CONNECT (client ID "ea", clean start,
// keep alive 30) asking for enhanced authentication: Authentication Method
// "SCRAM-SHA-256" and its first Authentication Data, plus the user name
// and password of user and pass when set.
func enhancedAuthConnect(user, pass string) []byte {
	props := []byte{0x15, 0, 13}
	props = append(props, "SCRAM-SHA-256"...)
	props = append(props, 0x16, 0, 5, 'n', ',', ',', 'n', '=')
	flags := byte(0x02)
	if user != "" {
		flags |= 0x80
	}
	if pass != "" {
		flags |= 0x40
	}
	body := []byte{0, 4, 'M', 'Q', 'T', 'T', 5, flags, 0, 30, byte(len(props))}
	body = append(body, props...)
	body = append(body, 0, 2, 'e', 'a')
	for _, s := range []string{user, pass} {
		if s != "" {
			body = append(append(body, 0, byte(len(s))), s...)
		}
	}
	return append([]byte{0x10, byte(len(body))}, body...)
}

// What the embedded broker answers a CONNECT with an Authentication Method
// (MQTT 5 enhanced authentication, e.g. SCRAM): the policy owns
// authentication and has no enhanced methods, so the answer must be CONNACK
// 0x8C Bad authentication method (MQTT 5 section 3.1.2.11.9), whatever the
// user name and password, with an event. mochi v2.7.9 ignores the method
// and answers from the password alone, with a CONNACK that lacks the
// Authentication Method a client waiting for the exchange requires.
func TestEnhancedAuthRefused(t *testing.T) {
	// The engine refuses it (identity.authenticate, mqttwaf.Connect's
	// AuthMethod, which the hook fills from mochi's packet).
	b := startBroker(t, `identity:
  credentials_file: `+credsFile(t, "dev1:device:right")+`
  anonymous: {allow: anywhere, role: device}
roles: {device: {publish: ["#"], subscribe: ["#"]}}
`, brokerOpts{})
	for _, tc := range []struct{ name, user, pass string }{
		{"anonymous", "", ""},
		{"good password", "dev1", "right"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nc, err := net.Dial("tcp", b.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			if _, err := nc.Write(enhancedAuthConnect(tc.user, tc.pass)); err != nil {
				t.Fatal(err)
			}
			_ = nc.SetReadDeadline(time.Now().Add(5 * time.Second))
			got, _ := io.ReadAll(io.LimitReader(nc, 64))
			if len(got) < 4 || got[0] != 0x20 || got[3] != 0x8C {
				t.Fatalf("answer %x, want CONNACK 0x8C (bad authentication method)", got)
			}
		})
	}
	b.events.wait(t, "identity.authenticate", "bad_authentication_method", 5*time.Second)
}
