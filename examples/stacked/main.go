// Command stacked is a stock mochi-mqtt server that keeps its own
// authentication hook, with three mqttwaf protections stacked by hand in
// front of its telemetry.
//
//	go run ./examples/stacked [-addr 127.0.0.1:1883]
//
// There is no hooks.Identity here: the application keeps mochi's auth.Hook
// and its ledger (sensor1/s3cret may publish under fleet/, ops/ops-pass may
// subscribe to it). mochi OR-s authentication and ACL hooks (the first one
// that allows, allows), and the stack below adds none, so the ledger alone
// decides who connects and what they may publish or subscribe to. To put
// mqttwaf's identity and ACL in charge instead, stack hooks.Identity and
// keep the ledger by wrapping it (hooks.IdentityOptions.Wrap): a WAF
// identity next to another auth hook would deny nothing, and is refused.
//
// The stacked protections, in the order they run on a PUBLISH:
//
//   - hooks.RateLimit: at most 20 messages a second per client ID (burst
//     20); the excess is refused and never delivered. Its events say 0x96
//     (message rate too high), which MQTT 5 allows only in a DISCONNECT: a
//     PUBACK carries 0x97 (quota exceeded). A client refused 50 times in a
//     minute is disconnected with 0x96, and banned after repeated
//     disconnects. It comes first, so a flood is refused before any payload
//     is parsed.
//   - hooks.Normalize: payloads on fleet/+/telemetry must be strict JSON
//     (no duplicate or case-variant keys, no bad escapes, bounded nesting
//     and numbers) and are forwarded re-encoded compactly, one spelling per
//     document; anything else is refused with 0x99 (payload format invalid).
//   - hooks.Redact: on fleet/+/telemetry, "phone" is masked but for its last
//     four characters and the "lat"/"lon" pair is coarsened to the centre of
//     its 1 km grid cell. With no role that may see raw payloads (roles come
//     from hooks.Identity), every subscriber gets the redacted message.
//
// The order matters: Redact must come after Normalize (AddHook refuses it
// otherwise, saying why), so an escaped key such as "ph\u006fne" is decoded
// before the redaction rules look for "phone".
//
// The listener comes from the stack's WAF, taken after the last mqttwaf hook
// is added (WAF seals the stack): it validates MQTT frames before mochi
// decodes them (the first packet must be a CONNECT, none over 256 KiB) and
// closes sockets that send no CONNECT within 10 seconds, which mochi never
// does. Connection caps (per IP and broker-wide) are rules of
// hooks.Hardening, which this stack leaves out. The WAF's events are JSON
// lines on stderr, next to mochi's own warnings.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"

	"github.com/mqttwaf/mqttwaf/hooks"
	"github.com/mqttwaf/mqttwaf/mqttwaf"
	"github.com/mqttwaf/mqttwaf/redact"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stderr, nil); err != nil {
		fmt.Fprintln(os.Stderr, "stacked:", err)
		os.Exit(2)
	}
}

// telemetry are the topics whose payloads are normalised and redacted.
var telemetry = []string{"fleet/+/telemetry"}

// ledger is the application's own authentication and ACL (mochi's auth
// package): DEMO passwords, in clear as mochi's ledger holds them.
func ledger() *auth.Ledger {
	return &auth.Ledger{
		Auth: auth.AuthRules{
			{Username: "sensor1", Password: "s3cret", Allow: true},
			{Username: "ops", Password: "ops-pass", Allow: true},
		},
		ACL: auth.ACLRules{
			{Username: "sensor1", Filters: auth.Filters{"fleet/#": auth.WriteOnly}},
			{Username: "ops", Filters: auth.Filters{"fleet/#": auth.ReadOnly}},
		},
	}
}

// run serves until ctx is done; ready, if set, receives the bound address.
func run(ctx context.Context, args []string, stderr io.Writer, ready func(addr string)) error {
	fs := flag.NewFlagSet("stacked", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:1883", "listen address")
	if err := fs.Parse(args); err != nil {
		return err
	}

	server := mqtt.New(&mqtt.Options{
		InlineClient: true,
		Logger:       slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})

	// Their existing authentication, unchanged.
	if err := server.AddHook(new(auth.Hook), &auth.Options{Ledger: ledger()}); err != nil {
		return err
	}

	// mqttwaf: three protections, stacked in the order they should run.
	// Settings every hook of the stack shares (here: where events go) are
	// set on one hook only.
	events := mqttwaf.NewJSONLogSink(slog.New(slog.NewJSONHandler(stderr, nil)))
	if err := server.AddHook(new(hooks.RateLimit), &hooks.RateLimitOptions{
		Shared: hooks.Shared{Sink: events},
		Publish: mqttwaf.PublishRates{
			PerConnection: mqttwaf.MessageRate{Messages: mqttwaf.Rate{N: 20, Per: time.Second}},
		},
	}); err != nil {
		return err
	}
	if err := server.AddHook(new(hooks.Normalize), &hooks.NormalizeOptions{
		Payloads: []mqttwaf.PayloadPolicy{{Topics: telemetry, Format: "json"}},
	}); err != nil {
		return err
	}
	redactions := new(hooks.Redact)
	if err := server.AddHook(redactions, &hooks.RedactOptions{
		Payloads: []mqttwaf.PayloadPolicy{{Topics: telemetry, Redact: mqttwaf.RedactPolicy{Rules: []redact.Rule{
			{Path: "phone", Action: redact.Action{Op: redact.OpMask, KeepLast: 4}},
			{Paths: []string{"lat", "lon"}, Action: redact.Action{Op: redact.OpCoarsen, CellMetres: 1000}},
		}}}},
	}); err != nil {
		return err
	}

	// mqttwaf: after the last mqttwaf hook, the listener from the stack's
	// WAF (frame validation, CONNECT deadline) instead of listeners.NewTCP.
	tcp, err := hooks.NewListener(redactions.WAF(), listeners.Config{ID: "t1", Address: *addr})
	if err != nil {
		return err
	}
	if err := server.AddListener(tcp); err != nil {
		return err
	}

	if err := server.Serve(); err != nil {
		return err
	}
	if ready != nil {
		ready(tcp.Address())
	}
	<-ctx.Done()
	return server.Close()
}
