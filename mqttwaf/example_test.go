package mqttwaf_test

import (
	"bytes"
	"fmt"
	"net/netip"
	"strings"

	"github.com/mqttwaf/mqttwaf/mqttwaf"
)

// printEvents is a Sink that prints the essentials of each event.
var printEvents = mqttwaf.SinkFunc(func(e mqttwaf.Event) {
	fmt.Printf("event: rule=%s action=%s reason=%s enforced=%v client=%s topic=%q\n",
		e.Rule, e.Action, e.Reason, e.Enforced, e.ClientID, e.Topic)
})

// Build a WAF from a YAML policy and run a device through it: its CONNECT
// (the certificate makes the identity), then publishes the policy allows
// and rejects.
func ExampleNew() {
	policy, err := mqttwaf.ParsePolicy([]byte(`
mode: enforce
identity:
  anonymous: {allow: never}
  certificate: {identity: cn, role: device}
roles:
  device:
    publish: ["fleet/{username}/#"]
limits:
  topic: {max_levels: 4}
`), "example.yaml")
	if err != nil {
		fmt.Println(err)
		return
	}
	waf, err := mqttwaf.New(policy, mqttwaf.Options{Sink: printEvents})
	if err != nil {
		fmt.Println(err)
		return
	}
	// What the adapter knows about the connection.
	device := &mqttwaf.Client{
		ID: "device-42", Listener: "tls", RemoteAddr: "198.51.100.7:50123",
		RemoteIP: netip.MustParseAddr("198.51.100.7"), Protocol: mqttwaf.MQTT5,
		TLS: &mqttwaf.TLSInfo{Verified: true, CommonName: "device-42"},
	}
	v := waf.Connect(&mqttwaf.Connect{Client: device, Keepalive: 60})
	fmt.Printf("connect: %s as %s (role %s)\n", v.Action, device.Username, device.Role)

	v, _ = waf.Publish(device, &mqttwaf.Message{Topic: "fleet/device-42/telemetry", Payload: []byte(`{"t":21.5}`)})
	fmt.Println("own telemetry:", v.Action)

	v, _ = waf.Publish(device, &mqttwaf.Message{Topic: "fleet/device-43/telemetry", Payload: []byte(`{"t":99}`)})
	fmt.Printf("another device's topic: %s, %s\n", v.Action, v.Code)

	v, _ = waf.Publish(device, &mqttwaf.Message{Topic: "fleet/device-42/a/b/c", Payload: []byte(`{}`)})
	fmt.Printf("deep topic: %s, %s (%s: %d levels, limit %d)\n", v.Action, v.Code, v.Reason, v.Value, v.Limit)
	// Output:
	// connect: allow as device-42 (role device)
	// own telemetry: allow
	// event: rule=acl action=reject reason=publish_not_permitted enforced=true client=device-42 topic="fleet/device-43/telemetry"
	// another device's topic: reject, not authorized
	// event: rule=limits.topic action=reject reason=topic_too_many_levels enforced=true client=device-42 topic="fleet/device-42/a/b/c"
	// deep topic: reject, topic name invalid (topic_too_many_levels: 5 levels, limit 4)
}

// maskDigits is a custom rule: it replaces every digit of payloads on
// "pii/" topics with '#'. It writes the new payload into p.Scratch() and
// installs it with p.SetPayload, so the allow path allocates nothing and
// the caller's message is never modified.
type maskDigits struct{}

func (maskDigits) ID() string { return "example.mask_digits" }

func (maskDigits) CheckPublish(p *mqttwaf.Publish) mqttwaf.Verdict {
	if !strings.HasPrefix(p.Message.Topic, "pii/") || !bytes.ContainsAny(p.Message.Payload, "0123456789") {
		return mqttwaf.Verdict{}
	}
	out := p.Scratch()
	for _, c := range p.Message.Payload {
		if '0' <= c && c <= '9' {
			c = '#'
		}
		out = append(out, c)
	}
	p.SetPayload(out)
	return mqttwaf.Verdict{Action: mqttwaf.Rewrite, Reason: "digits_masked"}
}

// localClient is an anonymous client on the loopback interface.
func localClient(id string) *mqttwaf.Client {
	return &mqttwaf.Client{ID: id, Listener: "tcp", RemoteAddr: "127.0.0.1:40000",
		RemoteIP: netip.MustParseAddr("127.0.0.1"), Protocol: mqttwaf.MQTT5}
}

// A custom Rule runs after the built-in ones. When rules change a message,
// Publish returns the message to forward instead (nil: unchanged).
func ExampleRule() {
	policy, err := mqttwaf.ParsePolicy([]byte(`
identity:
  anonymous: {allow: loopback, role: crm}
roles:
  crm: {publish: ["pii/#"]}
`), "crm.yaml")
	if err != nil {
		fmt.Println(err)
		return
	}
	waf, err := mqttwaf.New(policy, mqttwaf.Options{Sink: printEvents, Rules: []mqttwaf.Rule{maskDigits{}}})
	if err != nil {
		fmt.Println(err)
		return
	}
	crm := localClient("crm-1")
	waf.Connect(&mqttwaf.Connect{Client: crm, Keepalive: 60})
	msg := &mqttwaf.Message{Topic: "pii/contacts", Payload: []byte("call 555-0100")}

	v, out := waf.Publish(crm, msg)
	fmt.Printf("%s: %q (the original is still %q)\n", v.Action, out.Payload, msg.Payload)

	_, out = waf.Publish(crm, &mqttwaf.Message{Topic: "pii/contacts", Payload: []byte("no digits")})
	fmt.Println("unchanged:", out == nil)
	rules := waf.Rules()
	fmt.Println("custom rules run last:", rules[len(rules)-1])
	// Output:
	// event: rule=example.mask_digits action=rewrite reason=digits_masked enforced=true client=crm-1 topic="pii/contacts"
	// allow: "call ###-####" (the original is still "call 555-0100")
	// unchanged: true
	// custom rules run last: example.mask_digits
}

// In DetectionOnly every rule runs and every decision is recorded
// (enforced=false), and the traffic passes exactly as it would without the
// WAF: nothing is blocked, no keepalive is clamped, no payload is rewritten.
func ExampleDetectionOnly() {
	policy, err := mqttwaf.ParsePolicy([]byte("mode: detection_only\n"), "rollout.yaml")
	if err != nil {
		fmt.Println(err)
		return
	}
	waf, err := mqttwaf.New(policy, mqttwaf.Options{Sink: printEvents, Rules: []mqttwaf.Rule{maskDigits{}}})
	if err != nil {
		fmt.Println(err)
		return
	}
	device := localClient("device-7") // anonymous: the default guest role

	connect := &mqttwaf.Connect{Client: device, Keepalive: 0}
	v := waf.Connect(connect)
	fmt.Printf("connect: %s, keepalive still %d\n", v.Action, connect.Keepalive)

	v, _ = waf.Publish(device, &mqttwaf.Message{Topic: "$SYS/broker/version", Payload: []byte("spoofed")})
	fmt.Println("publish to $SYS:", v.Action)

	v, out := waf.Publish(device, &mqttwaf.Message{Topic: "pii/x", Payload: []byte("42")})
	fmt.Println("publish to pii/x:", v.Action, "changed:", out != nil)
	// Output:
	// event: rule=connections.keepalive action=rewrite reason=keepalive_clamped enforced=false client=device-7 topic=""
	// connect: allow, keepalive still 0
	// event: rule=limits.topic action=reject reason=topic_reserved enforced=false client=device-7 topic="$SYS/broker/version"
	// event: rule=acl action=reject reason=publish_not_permitted enforced=false client=device-7 topic="$SYS/broker/version"
	// publish to $SYS: allow
	// event: rule=acl action=reject reason=publish_not_permitted enforced=false client=device-7 topic="pii/x"
	// event: rule=example.mask_digits action=rewrite reason=digits_masked enforced=false client=device-7 topic="pii/x"
	// publish to pii/x: allow changed: false
}

// Counters count every decision per rule, action and enforcement, whether
// or not its event was logged: the numbers to export as metrics.
func ExampleWAF_Counters() {
	policy, err := mqttwaf.ParsePolicy([]byte("events: {log: off}\n"), "quiet.yaml")
	if err != nil {
		fmt.Println(err)
		return
	}
	waf, err := mqttwaf.New(policy, mqttwaf.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	device := localClient("device-9") // anonymous: may use guest/device-9/#
	waf.Connect(&mqttwaf.Connect{Client: device, Keepalive: 3600})
	for _, topic := range []string{"$SYS/a", "$SYS/b", "guest/device-9/telemetry", "fleet/device-9/telemetry"} {
		waf.Publish(device, &mqttwaf.Message{Topic: topic})
	}
	waf.Subscribe(device, &mqttwaf.Subscription{Filter: "$mqttwaf/#"})

	for _, c := range waf.Counters() {
		fmt.Printf("%s %s enforced=%v: %d\n", c.Rule, c.Action, c.Enforced, c.N)
	}
	// Output:
	// acl reject enforced=true: 1
	// connections.keepalive rewrite enforced=true: 1
	// limits.topic reject enforced=true: 3
}
