// Command hardened-broker runs a mochi-mqtt broker with the mqttwaf firewall
// in front of every packet: the main job of this repository.
//
//	go run ./examples/hardened-broker                      # 127.0.0.1:1883, embedded default policy
//	go run ./examples/hardened-broker -policy fleet.yaml   # your policy
//	go run ./examples/hardened-broker -print-default-policy
//	go run ./examples/hardened-broker -hash-password      # asks for a person's password, prints its hash
//	go run ./examples/hardened-broker -new-device-secret    # secret for the device, hash for the file
//	go run ./examples/hardened-broker -version
//	go run ./examples/hardened-broker -admin-addr 127.0.0.1:9100 -admin-token-file admin.token  # admin API, /metrics
//
// Security events go to stderr as JSON lines (events.format json or ecs),
// and with -events-file to a file as well. SIGHUP reloads the policy file
// (for connected clients too), the TLS certificate, key and client CA, and
// reopens the events file; SIGINT or SIGTERM stops it.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"

	"github.com/mqttwaf/mqttwaf/examples/internal/cli"
	"github.com/mqttwaf/mqttwaf/hooks"
	"github.com/mqttwaf/mqttwaf/mqttwaf"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "hardened-broker:", err)
		os.Exit(2)
	}
}

type config struct {
	addr, tlsAddr, wsAddr           string
	policy                          string
	tlsCert, tlsKey, tlsClientCA    string
	printDefault, requireClientCert bool
	hashPassword, newDeviceSecret   bool
	eventsFile                      string
	version                         bool
	dataDir                         string
}

// run serves until ctx is done. Events and logs go to stderr as JSON lines;
// stdout only carries what -print-default-policy, -hash-password and
// -new-device-secret print.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return runWithInput(ctx, args, os.Stdin, stdout, stderr)
}

func runWithInput(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	var c config
	fs := flag.NewFlagSet("hardened-broker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.addr, "addr", "127.0.0.1:1883", "MQTT over TCP listen address (empty disables it); listener id \"tcp\"")
	fs.StringVar(&c.policy, "policy", "", "policy file (YAML or JSON); the embedded default policy if empty")
	fs.BoolVar(&c.printDefault, "print-default-policy", false, "print the embedded default policy and exit")
	fs.BoolVar(&c.hashPassword, "hash-password", false, "ask for a person's password (8 characters or more; not echoed, asked twice, on a terminal; else one line of stdin), print its bcrypt hash for a credentials file, and exit")
	fs.BoolVar(&c.newDeviceSecret, "new-device-secret", false, "print a new random device secret (line 1, the device's password) and its hash (line 2, for the credentials file), and exit")
	fs.StringVar(&c.tlsAddr, "tls-addr", "127.0.0.1:8883", "MQTT over TLS listen address, used with -tls-cert and -tls-key; listener id \"tls\"")
	fs.StringVar(&c.tlsCert, "tls-cert", "", "TLS certificate (PEM) for the TLS and secure WebSocket listeners")
	fs.StringVar(&c.tlsKey, "tls-key", "", "TLS private key (PEM)")
	fs.StringVar(&c.tlsClientCA, "tls-client-ca", "", "CA bundle (PEM) that client certificates must chain to (mutual TLS)")
	fs.BoolVar(&c.requireClientCert, "tls-require-client-cert", true, "with -tls-client-ca: refuse TLS clients without a valid certificate")
	fs.StringVar(&c.wsAddr, "ws-addr", "", "MQTT over WebSocket listen address (wss with -tls-cert); listener id \"ws\"")
	fs.StringVar(&c.eventsFile, "events-file", "", "also append security events to this file (JSON lines, reopened on SIGHUP for log rotation)")
	fs.BoolVar(&c.version, "version", false, "print the version (module version, VCS revision, Go version) and exit")
	fs.StringVar(&c.dataDir, "data-dir", "", "directory that keeps retained messages, persistent sessions, bans and lockouts across restarts (created 0700); empty keeps them in memory only")
	ac := adminFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if c.version {
		return printVersion(stdout)
	}
	if c.printDefault {
		_, err := stdout.Write(mqttwaf.DefaultPolicyYAML)
		return err
	}
	if c.hashPassword {
		return hashPassword(stdin, stdout, stderr)
	}
	if c.newDeviceSecret {
		return newDeviceSecret(stdout, stderr)
	}

	policy, err := mqttwaf.ReadPolicyFileOrDefault(c.policy)
	if err != nil {
		return err
	}
	stderr = cli.NewLockedWriter(stderr) // log lines and event lines, whole
	logger := slog.New(slog.NewJSONHandler(stderr, nil))
	st, err := openStore(c.dataDir)
	if err != nil {
		return err
	}
	defer st.close()
	events, err := newEventOutput(c.eventsFile, stderr, logger)
	if err != nil {
		return err
	}
	defer events.Close()
	waf, err := mqttwaf.New(policy, st.options(mqttwaf.Options{EventOutput: events}))
	if err != nil {
		return err
	}
	defer waf.Stop() // the shared state's connections (state.backend redis), after the server
	// HardenedOptions sends mochi's own log lines to stderr as JSON too, at
	// warning level, without the packet contents mochi attaches to them.
	opts := hooks.HardenedOptions(policy)
	opts.Logger = hooks.MochiLogger(stderr, slog.LevelWarn)
	server := mqtt.New(opts)
	if err := hooks.Install(server, waf); err != nil {
		return err
	}
	if err := st.install(server, waf); err != nil {
		return err
	}
	certs, err := newTLSSource(waf, c)
	if err != nil {
		return err
	}
	addrs, err := addListeners(server, waf, c, certs)
	if err != nil {
		return err
	}
	if err := server.Serve(); err != nil {
		return err
	}
	// SIGHUP re-reads the policy file and swaps it in for connected clients
	// too, reloads the certificates and reopens the events file (reload.go);
	// a part that does not load leaves its running state in force.
	reloadAll := reloader(waf, c.policy, certs, events)
	stopAdmin, err := startAdmin(ac, c, waf, server, addrs, reloadAll, logger)
	if err != nil {
		return errors.Join(err, server.Close())
	}
	defer stopAdmin()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	logger.Info("hardened-broker ready", "policy", cli.PolicyName(c.policy), "mode", waf.Policy().Mode,
		"listeners", addrs, "rules", waf.Rules())
	for {
		select {
		case <-ctx.Done():
			logger.Info("hardened-broker stopping")
			return server.Close()
		case <-hup:
			if err := reloadAll(); err != nil {
				logger.Error("reload failed; what failed stays as it was, the rest is reloaded", "error", err.Error())
			} else {
				logger.Info("policy reloaded", append([]any{"policy", cli.PolicyName(c.policy), "mode", waf.Policy().Mode}, tlsAttrs(certs)...)...)
			}
		}
	}
}

// addListeners adds the listeners the flags ask for and returns their bound
// addresses by listener id.
func addListeners(server *mqtt.Server, waf *mqttwaf.WAF, c config, certs *mqttwaf.TLSSource) (map[string]string, error) {
	var tlsConfig *tls.Config
	if certs != nil {
		tlsConfig = certs.Config()
	}
	var cfgs []listeners.Config
	if c.addr != "" {
		cfgs = append(cfgs, listeners.Config{ID: "tcp", Type: hooks.TypeTCP, Address: c.addr})
	}
	if tlsConfig != nil && c.tlsAddr != "" {
		cfgs = append(cfgs, listeners.Config{ID: "tls", Type: hooks.TypeTCP, Address: c.tlsAddr, TLSConfig: tlsConfig})
	}
	if c.wsAddr != "" {
		cfgs = append(cfgs, listeners.Config{ID: "ws", Type: hooks.TypeWebsocket, Address: c.wsAddr, TLSConfig: tlsConfig})
	}
	if len(cfgs) == 0 {
		return nil, errors.New("no listener: set -addr, -ws-addr, or -tls-cert with -tls-key")
	}
	addrs := map[string]string{}
	for _, cfg := range cfgs {
		l, err := hooks.NewListener(waf, cfg)
		if err != nil {
			return nil, err
		}
		if err := server.AddListener(l); err != nil {
			return nil, fmt.Errorf("listener %s on %s: %w", cfg.ID, cfg.Address, err)
		}
		addrs[cfg.ID] = l.Address()
	}
	return addrs, nil
}

// newDeviceSecret prints a new device secret and its hash, one per line,
// so a provisioning script can read both (read -r secret; read -r hash)
// and give the secret to the device and "name:role:hash" to the
// credentials file. It reads nothing: a device secret is random, never a
// password someone chose, which is what makes its fast hash safe.
func newDeviceSecret(stdout, stderr io.Writer) error {
	secret, hash, err := mqttwaf.NewDeviceSecret()
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintf(stdout, "%s\n%s\n", secret, hash); err != nil {
		return err
	}
	_, err = fmt.Fprintln(stderr, "line 1: the device's MQTT password (store it on the device only); line 2: its hash, for a credentials-file line name:role:hash")
	return err
}
