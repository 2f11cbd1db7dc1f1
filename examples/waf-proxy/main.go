// Command waf-proxy puts the mqttwaf firewall in front of any MQTT broker
// (mosquitto, EMQX, HiveMQ, VerneMQ): clients connect to the proxy, the
// proxy connects to the broker, and every packet goes through the same
// policy as the embedded hardened-broker.
//
//	go run ./examples/waf-proxy -upstream 127.0.0.1:1884                     # listens on 127.0.0.1:1883, default policy
//	go run ./examples/waf-proxy -upstream 127.0.0.1:1884 -policy fleet.yaml
//	go run ./examples/waf-proxy -upstream 127.0.0.1:1884 -ws-listen 127.0.0.1:8080    # MQTT over WebSocket too
//	go run ./examples/waf-proxy -upstream broker:8883 -upstream-ca ca.pem \
//	    -upstream-identity service -upstream-username waf-proxy -upstream-password-file proxy.pass
//
// MQTT 3.1.1 clients get MQTT 5 upstream when the policy stamps provenance
// or the service identity is used, so that both reach the broker
// (-upstream-protocol auto, the default; client or 5 to choose).
//
// Security events go to stderr as JSON lines. SIGHUP reloads the policy
// (for connected clients too) and the TLS certificate, key and client CA;
// SIGINT or SIGTERM stops it.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/mqttwaf/mqttwaf/examples/internal/cli"
	"github.com/mqttwaf/mqttwaf/mqttwaf"
	"github.com/mqttwaf/mqttwaf/mqttwaf/proxy"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr, nil); err != nil {
		fmt.Fprintln(os.Stderr, "waf-proxy:", err)
		os.Exit(2)
	}
}

type config struct {
	listen, wsListen, upstream, policy string
	tlsCert, tlsKey, tlsClientCA       string
	requireClientCert, printDefault    bool
	upstreamTLS                        bool
	upstreamCA, upstreamServerName     string
	identity, upstreamUser, passFile   string
	identityProperty, upstreamProtocol string
}

// run serves until ctx is done; ready, if set, gets the bound address.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, ready func(addr string)) error {
	var c config
	fs := flag.NewFlagSet("waf-proxy", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.listen, "listen", "127.0.0.1:1883", "address clients connect to (MQTT over TCP, or TLS with -tls-cert); listener id \"tcp\" or \"tls\"")
	fs.StringVar(&c.wsListen, "ws-listen", "", "also serve MQTT over WebSocket on this address (wss with -tls-cert); listener id \"ws\"")
	fs.StringVar(&c.upstream, "upstream", "", "the broker's host:port (required)")
	fs.StringVar(&c.policy, "policy", "", "policy file (YAML or JSON); the embedded default policy if empty")
	fs.BoolVar(&c.printDefault, "print-default-policy", false, "print the embedded default policy and exit")
	fs.StringVar(&c.tlsCert, "tls-cert", "", "TLS certificate (PEM): serve TLS to clients")
	fs.StringVar(&c.tlsKey, "tls-key", "", "TLS private key (PEM)")
	fs.StringVar(&c.tlsClientCA, "tls-client-ca", "", "CA bundle (PEM) that client certificates must chain to (mutual TLS)")
	fs.BoolVar(&c.requireClientCert, "tls-require-client-cert", true, "with -tls-client-ca: refuse TLS clients without a valid certificate")
	fs.BoolVar(&c.upstreamTLS, "upstream-tls", false, "connect to the broker over TLS (implied by -upstream-ca)")
	fs.StringVar(&c.upstreamCA, "upstream-ca", "", "CA bundle (PEM) the broker's certificate must chain to; the system roots if empty")
	fs.StringVar(&c.upstreamServerName, "upstream-server-name", "", "name to verify the broker's certificate against; the -upstream host if empty")
	fs.StringVar(&c.identity, "upstream-identity", proxy.IdentityForward, "whose credentials go upstream: forward (the client's, after the proxy checked them) or service (-upstream-username, with the client's identity as a CONNECT user property)")
	fs.StringVar(&c.upstreamUser, "upstream-username", "", "service mode: the proxy's user name at the broker")
	fs.StringVar(&c.passFile, "upstream-password-file", "", "service mode: file holding the proxy's password at the broker (first line)")
	fs.StringVar(&c.identityProperty, "upstream-identity-property", proxy.DefaultIdentityProperty, "service mode: the CONNECT user property carrying the client's identity (MQTT 5)")
	fs.StringVar(&c.upstreamProtocol, "upstream-protocol", proxy.UpstreamAuto, "the MQTT version spoken upstream for 3.1/3.1.1 clients: client (theirs, relayed byte for byte), 5 (translated, so provenance and the service identity reach the broker), or auto (5 when the policy sets provenance.user_property or -upstream-identity is service)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if c.printDefault {
		_, err := stdout.Write(mqttwaf.DefaultPolicyYAML)
		return err
	}
	policy, err := mqttwaf.ReadPolicyFileOrDefault(c.policy)
	if err != nil {
		return err
	}
	stderr = cli.NewLockedWriter(stderr)
	logger := slog.New(slog.NewJSONHandler(stderr, nil))
	waf, err := mqttwaf.New(policy, mqttwaf.Options{EventOutput: stderr})
	if err != nil {
		return err
	}
	defer waf.Stop() // the shared state's connections (state.backend redis), after the server
	opts := proxy.Options{Listen: c.listen, Upstream: c.upstream, Logger: logger, UpstreamProtocol: c.upstreamProtocol,
		Identity: proxy.Identity{Mode: c.identity, Username: c.upstreamUser, UserProperty: c.identityProperty}}
	if c.passFile != "" {
		b, err := os.ReadFile(c.passFile)
		if err != nil {
			return fmt.Errorf("-upstream-password-file: %w", err)
		}
		opts.Identity.Password = strings.TrimRight(strings.SplitN(string(b), "\n", 2)[0], "\r")
	}
	var certs *mqttwaf.TLSSource
	if c.tlsCert != "" || c.tlsKey != "" || c.tlsClientCA != "" {
		if c.tlsCert == "" || c.tlsKey == "" {
			return errors.New("-tls-cert and -tls-key go together: set both (and -tls-client-ca only with them)")
		}
		certs, err = mqttwaf.NewTLSSource(waf, mqttwaf.TLSFiles{
			Cert: c.tlsCert, Key: c.tlsKey, ClientCA: c.tlsClientCA, ClientCertOptional: !c.requireClientCert,
			CertName: "-tls-cert", KeyName: "-tls-key", ClientCAName: "-tls-client-ca",
		})
		if err != nil {
			return err
		}
		opts.TLS = certs.Config()
	}
	if opts.UpstreamTLS, err = upstreamTLS(c); err != nil {
		return err
	}
	p, err := proxy.New(waf, opts)
	if err != nil {
		return err
	}
	if err := p.Start(); err != nil {
		return err
	}
	defer p.Close()
	listening := []any{"listen", p.Addr()}
	if c.wsListen != "" {
		wo := opts
		wo.Listen, wo.WebSocket, wo.ListenerID = c.wsListen, true, ""
		wp, err := proxy.New(waf, wo)
		if err != nil {
			return err
		}
		if err := wp.Start(); err != nil {
			return err
		}
		defer wp.Close()
		listening = append(listening, "ws_listen", wp.Addr())
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	logger.Info("waf-proxy ready", append(listening, "upstream", c.upstream, "upstream_identity", opts.Identity.Mode, "upstream_protocol", c.upstreamProtocol,
		"policy", cli.PolicyName(c.policy), "mode", waf.Policy().Mode)...)
	if ready != nil {
		ready(p.Addr())
	}
	for {
		select {
		case <-ctx.Done():
			logger.Info("waf-proxy stopping")
			return nil
		case <-hup:
			err := waf.ReloadFile(c.policy)
			if certs != nil {
				err = errors.Join(err, certs.Reload())
			}
			if err != nil {
				logger.Error("reload failed; what failed stays as it was, the rest is reloaded", "error", err.Error())
			} else {
				logger.Info("policy reloaded", "policy", cli.PolicyName(c.policy), "mode", waf.Policy().Mode)
			}
		}
	}
}

// upstreamTLS is the TLS configuration towards the broker, or nil.
func upstreamTLS(c config) (*tls.Config, error) {
	if !c.upstreamTLS && c.upstreamCA == "" {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.upstreamServerName}
	if c.upstreamCA != "" {
		pem, err := os.ReadFile(c.upstreamCA)
		if err != nil {
			return nil, fmt.Errorf("-upstream-ca: %w", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("-upstream-ca %s: no PEM certificate in it", c.upstreamCA)
		}
	}
	return cfg, nil
}
