package mqttwaf_test

import (
	"crypto/tls"
	"errors"
	"fmt"

	"github.com/mqttwaf/mqttwaf/mqttwaf"
)

// Limit TLS handshakes per address in a TLS server of your own: ask the
// WAF in GetConfigForClient, which crypto/tls calls when the ClientHello
// has arrived and before the server's key exchange and signature, so a
// refused handshake costs almost nothing. (hooks.NewListener does this for
// mochi listeners.)
func ExampleWAF_CheckTLSHandshake() {
	policy, err := mqttwaf.ParsePolicy([]byte("connections: {tls_handshakes_per_ip: 2/s}\n"), "example.yaml")
	if err != nil {
		fmt.Println(err)
		return
	}
	waf, err := mqttwaf.New(policy, mqttwaf.Options{Sink: mqttwaf.SinkFunc(func(e mqttwaf.Event) {
		fmt.Printf("event: rule=%s reason=%s code=0x%02X remote=%s\n  %s\n", e.Rule, e.Reason, byte(e.Code), e.RemoteIP, e.Detail)
	})})
	if err != nil {
		fmt.Println(err)
		return
	}
	cfg := &tls.Config{ /* Certificates, ClientCAs... */ }
	cfg.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		if v := waf.CheckTLSHandshake("tls", hello.Conn.RemoteAddr().String()); v.Blocked() {
			return nil, errors.New("too many TLS handshakes from this address")
		}
		return nil, nil // go on with cfg
	}
	// Three handshakes from one address within a second (what
	// GetConfigForClient would be asked), then one from another address.
	for _, remote := range []string{"198.51.100.7:40001", "198.51.100.7:40002", "198.51.100.7:40003", "203.0.113.5:40001"} {
		v := waf.CheckTLSHandshake("tls", remote)
		fmt.Printf("%s: blocked=%v\n", remote, v.Blocked())
	}
	// Output:
	// 198.51.100.7:40001: blocked=false
	// 198.51.100.7:40002: blocked=false
	// event: rule=connections.tls reason=tls_handshake_rate code=0x9F remote=198.51.100.7
	//   more than connections.tls_handshakes_per_ip 2/s (burst 2) from this address: handshake aborted before the key exchange
	// 198.51.100.7:40003: blocked=true
	// 203.0.113.5:40001: blocked=false
}
