// Command wrap-existing is a typical existing mochi-mqtt broker with mqttwaf
// added: the lines marked "mqttwaf:" replace mochi's AllowHook and its TCP
// listener. Everything else is the broker as mochi's README writes it.
//
//	go run ./examples/wrap-existing [-addr 127.0.0.1:1883] [-policy policy.yaml]
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

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/mqttwaf/mqttwaf/hooks"
	"github.com/mqttwaf/mqttwaf/mqttwaf"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stderr, nil); err != nil {
		fmt.Fprintln(os.Stderr, "wrap-existing:", err)
		os.Exit(2)
	}
}

// run serves until ctx is done; ready, if set, receives the bound address.
func run(ctx context.Context, args []string, stderr io.Writer, ready func(addr string)) error {
	fs := flag.NewFlagSet("wrap-existing", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:1883", "listen address")
	policyFile := fs.String("policy", "", "mqttwaf policy file (default policy if empty)")
	if err := fs.Parse(args); err != nil {
		return err
	}

	server := mqtt.New(&mqtt.Options{
		InlineClient: true,
		Logger:       slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	// Before: _ = server.AddHook(new(auth.AllowHook), nil)
	// mochi OR-s auth hooks, so the WAF replaces AllowHook and becomes the
	// server's only authentication/ACL provider (Install refuses otherwise).

	// mqttwaf: build the firewall and install it (Install also applies the
	// policy's broker limits, such as the maximum packet size, to server).
	waf, err := loadWAF(*policyFile, stderr)
	if err != nil {
		return err
	}
	if err := hooks.Install(server, waf); err != nil {
		return err
	}

	// Before: tcp := listeners.NewTCP(listeners.Config{ID: "t1", Address: *addr})
	// mqttwaf: the same listener, with a CONNECT deadline and per-IP caps.
	tcp, err := hooks.NewListener(waf, listeners.Config{ID: "t1", Address: *addr})
	if err != nil {
		return err
	}
	if err := server.AddListener(tcp); err != nil {
		return err
	}

	// The rest of the existing broker stays as it was, e.g. inline subscribers.
	_ = server.Subscribe("status/#", 1, func(*mqtt.Client, packets.Subscription, packets.Packet) {})

	if err := server.Serve(); err != nil {
		return err
	}
	if ready != nil {
		ready(tcp.Address())
	}
	<-ctx.Done()
	return server.Close()
}

// loadWAF builds the firewall from a policy file, or the default policy.
func loadWAF(path string, events io.Writer) (*mqttwaf.WAF, error) {
	policy := &mqttwaf.Policy{}
	if path != "" {
		p, err := mqttwaf.ReadPolicyFile(path)
		if err != nil {
			return nil, err
		}
		policy = p
	}
	return mqttwaf.New(policy, mqttwaf.Options{Logger: slog.New(slog.NewJSONHandler(events, nil))})
}
