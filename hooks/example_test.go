package hooks_test

import (
	"fmt"
	"io"
	"log/slog"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"

	"github.com/mqttwaf/mqttwaf/hooks"
	"github.com/mqttwaf/mqttwaf/mqttwaf"
)

// A hardened broker from a policy: capabilities, the WAF hook, a protected
// listener.
func Example() {
	policy, err := mqttwaf.ParsePolicy([]byte("limits: {topic: {max_levels: 6}}\n"), "policy.yaml")
	if err != nil {
		fmt.Println(err)
		return
	}
	waf, err := mqttwaf.New(policy, mqttwaf.Options{Sink: mqttwaf.SinkFunc(func(mqttwaf.Event) {})})
	if err != nil {
		fmt.Println(err)
		return
	}
	opts := hooks.HardenedOptions(policy)
	opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	server := mqtt.New(opts)
	if err := hooks.Install(server, waf); err != nil {
		fmt.Println(err)
		return
	}
	l, err := hooks.NewListener(waf, listeners.Config{ID: "tcp", Address: "127.0.0.1:0"})
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := server.AddListener(l); err != nil {
		fmt.Println(err)
		return
	}
	if err := server.Serve(); err != nil {
		fmt.Println(err)
		return
	}
	defer server.Close()
	fmt.Println("max packet size:", server.Options.Capabilities.MaximumPacketSize)
	fmt.Println("listener:", l.Protocol())
	// Output:
	// max packet size: 262144
	// listener: tcp
}

// Install refuses a server where another hook could allow what the WAF
// denies: mochi OR-s authentication hooks.
func ExampleInstall() {
	waf, _ := mqttwaf.New(nil, mqttwaf.Options{Sink: mqttwaf.SinkFunc(func(mqttwaf.Event) {})})
	server := mqtt.New(&mqtt.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	_ = server.AddHook(new(auth.AllowHook), nil)
	err := hooks.Install(server, waf)
	fmt.Println(err != nil)
	// Output: true
}
