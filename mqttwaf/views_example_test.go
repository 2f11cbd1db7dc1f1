package mqttwaf_test

import (
	"fmt"

	"github.com/mqttwaf/mqttwaf/mqttwaf"
)

// What a subscriber without a raw view receives of a message: the payload
// redacted, and of the MQTT 5 properties only those the payload entry keeps
// (unit) and the provenance one. The adapter calls ViewMessage for every
// delivery (live, retained, queued), so the policy in force decides.
func ExampleWAF_ViewMessage() {
	policy, err := mqttwaf.ParsePolicy([]byte(`
identity:
  anonymous: {allow: anywhere, role: site}
  certificate: {identity: cn, role: site}
roles:
  site: {publish: ["site/#"], subscribe: ["site/#"]}
provenance: {user_property: x-identity}
payloads:
  - topics: ["site/+/reading"]
    format: json
    redact:
      detectors: [{kind: email}]
      keep_properties: {user: [unit]}
`), "example.yaml")
	if err != nil {
		fmt.Println(err)
		return
	}
	waf, err := mqttwaf.New(policy, mqttwaf.Options{Sink: mqttwaf.SinkFunc(func(mqttwaf.Event) {})})
	if err != nil {
		fmt.Println(err)
		return
	}
	sensor := &mqttwaf.Client{ID: "sensor-1", Username: "sensor-1", Protocol: mqttwaf.MQTT5, Auth: mqttwaf.AuthCertificate,
		TLS: &mqttwaf.TLSInfo{Verified: true, CommonName: "sensor-1"}}
	m := &mqttwaf.Message{Topic: "site/1/reading", QoS: 1, Payload: []byte(`{"t":21.5,"by":"kim@example.com"}`),
		Props: mqttwaf.Properties{ResponseTopic: "site/1/reply/kim", User: []mqttwaf.UserProperty{
			{Key: "unit", Value: "C"}, {Key: "operator", Value: "kim@example.com"}}}}
	v, stored := waf.Publish(sensor, m) // no raw role: the broker stores the redacted view
	if v.Blocked() {
		fmt.Println(v)
		return
	}
	subscriber := &mqttwaf.Client{ID: "dashboard", Protocol: mqttwaf.MQTT5, Auth: mqttwaf.AuthAnonymous}
	view, _ := waf.ViewMessage(subscriber, stored)
	fmt.Printf("%s\n", view.Payload)
	for _, u := range view.Props.User {
		fmt.Printf("%s: %s\n", u.Key, u.Value)
	}
	fmt.Printf("response topic: %q\n", view.Props.ResponseTopic)
	// Output:
	// {"t":21.5,"by":"***************"}
	// unit: C
	// x-identity: sensor-1
	// response topic: ""
}
