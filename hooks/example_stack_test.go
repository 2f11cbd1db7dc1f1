package hooks_test

import (
	"fmt"
	"io"
	"log/slog"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"

	"github.com/mqttwaf/mqttwaf/hooks"
	"github.com/mqttwaf/mqttwaf/mqttwaf"
	"github.com/mqttwaf/mqttwaf/mqttwaf/schema"
	"github.com/mqttwaf/mqttwaf/redact"
)

// Protections stacked by hand on a stock mochi server that keeps its own
// authentication: the product card's snippet with the real names (Schema
// needs Normalize before it). The stack's WAF then shows what a telemetry
// message becomes on its way through.
func Example_stacked() {
	telemetry := []string{"fleet/+/telemetry"}
	quiet := mqttwaf.SinkFunc(func(mqttwaf.Event) {})

	server := mqtt.New(&mqtt.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	_ = server.AddHook(new(auth.AllowHook), nil) // their existing auth
	_ = server.AddHook(new(hooks.RateLimit), &hooks.RateLimitOptions{Shared: hooks.Shared{Sink: quiet},
		Publish: mqttwaf.PublishRates{PerConnection: mqttwaf.MessageRate{Messages: mqttwaf.Rate{N: 10, Per: time.Second}}}})
	_ = server.AddHook(new(hooks.Normalize), &hooks.NormalizeOptions{
		Payloads: []mqttwaf.PayloadPolicy{{Topics: telemetry, Format: "json"}}})
	_ = server.AddHook(new(hooks.Schema), &hooks.SchemaOptions{
		Payloads: []mqttwaf.PayloadPolicy{{Topics: telemetry, Fields: []schema.FieldRule{{Path: "lat", Type: "number", Required: true}}}}})
	_ = server.AddHook(new(hooks.Redact), &hooks.RedactOptions{
		Payloads: []mqttwaf.PayloadPolicy{{Topics: telemetry, Redact: mqttwaf.RedactPolicy{
			Rules: []redact.Rule{{Path: "phone", Action: redact.Action{Op: redact.OpMask, KeepLast: 2}}}}}}})
	flood := new(hooks.AntiFlood)
	_ = server.AddHook(flood, nil)

	waf := flood.WAF() // for hooks.NewListener, counters, reload
	fmt.Println("stack:", waf.Layers())

	c := &mqttwaf.Client{ID: "dev1", Username: "dev1"}
	_, out := waf.Publish(c, &mqttwaf.Message{Topic: "fleet/dev1/telemetry",
		Payload: []byte(`{ "lat" : 52.52, "phone": "+4915112345678" }`)})
	fmt.Printf("delivered: %s\n", out.Payload)
	v, _ := waf.Publish(c, &mqttwaf.Message{Topic: "fleet/dev1/telemetry", Payload: []byte(`{"lat": "north"}`)})
	fmt.Println("refused by:", v.Rule, v.Code)
	// Output:
	// stack: [ratelimit normalize schema redact antiflood]
	// delivered: {"lat":52.52,"phone":"************78"}
	// refused by: payload.schema payload format invalid
}

// A hook order that cannot be safe is refused when the hook is added,
// saying why and what to do.
func Example_unsafeStack() {
	server := mqtt.New(&mqtt.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	err := server.AddHook(new(hooks.Schema), &hooks.SchemaOptions{
		Payloads: []mqttwaf.PayloadPolicy{{Topics: []string{"fleet/#"}, Schema: "telemetry.json"}}})
	fmt.Println(err)
	// Output:
	// failed initialising mqttwaf.schema hook: mqttwaf: hooks.Schema needs hooks.Normalize earlier in the stack: a payload must be checked as JSON and normalised before its schema is checked (duplicate keys, escapes and case variants would otherwise reach the schema unseen); add it before hooks.Schema
}
