package mqttwaf_test

import (
	"fmt"

	"github.com/mqttwaf/mqttwaf/mqttwaf"
)

// Check the HTTP requests that open MQTT-over-WebSocket connections: a
// device that uses the broker's name, a dashboard page, and a page whose
// DNS name an attacker rebound to the broker's address.
func ExampleWAF_CheckWebSocket() {
	policy, err := mqttwaf.ParsePolicy([]byte(`
listeners:
  ws:
    allowed_hosts: [broker.example.com, 192.0.2.10]
    allowed_origins: ["https://dashboard.example.com"]
`), "example.yaml")
	if err != nil {
		fmt.Println(err)
		return
	}
	waf, err := mqttwaf.New(policy, mqttwaf.Options{Sink: mqttwaf.SinkFunc(func(e mqttwaf.Event) {
		fmt.Printf("event: rule=%s reason=%s listener=%s remote=%s\n  %s\n", e.Rule, e.Reason, e.Listener, e.RemoteIP, e.Detail)
	})})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, r := range []struct{ host, origin string }{
		{"broker.example.com:8083", ""},                          // a device: no Origin
		{"Broker.Example.COM.", "https://dashboard.example.com"}, // the dashboard
		{"evil.example:8083", "http://evil.example:8083"},        // DNS rebinding
		{"192.0.2.10:8083", "https://ads.example"},               // another site's page
	} {
		var origins []string
		if r.origin != "" {
			origins = []string{r.origin}
		}
		v := waf.CheckWebSocket("ws", "198.51.100.7:50000", r.host, origins)
		fmt.Printf("Host %s: blocked=%v\n", r.host, v.Blocked())
	}
	// Output:
	// Host broker.example.com:8083: blocked=false
	// Host Broker.Example.COM.: blocked=false
	// event: rule=connections.websocket reason=host_not_allowed listener=ws remote=198.51.100.7
	//   Host "evil.example" is not in listeners.ws.allowed_hosts: add it there if clients reach the broker by that name
	// Host evil.example:8083: blocked=true
	// event: rule=connections.websocket reason=origin_not_allowed listener=ws remote=198.51.100.7
	//   Origin "https://ads.example" is not allowed by listeners.ws.allowed_origins: add it there if pages from it may connect
	// Host 192.0.2.10:8083: blocked=true
}
