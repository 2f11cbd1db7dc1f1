package main

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mqttwaf/mqttwaf/hooks"
	"github.com/mqttwaf/mqttwaf/mqttwaf"
	"github.com/mqttwaf/mqttwaf/mqttwaf/admin"
	"github.com/mqttwaf/mqttwaf/mqttwaf/metrics"
)

// The admin listener: the admin API (mqttwaf/admin) and Prometheus metrics
// on one HTTP(S) address, off unless -admin-addr is set. It should stay on
// loopback (or a management network): it can lift bans and reload the
// policy. Authentication is a bearer token from -admin-token-file, a client
// certificate chaining to -admin-client-ca (mutual TLS), or both.

type adminConfig struct {
	addr, tokenFile, clientCA, cert, key string
}

// adminFlags registers the admin listener's flags on fs.
func adminFlags(fs *flag.FlagSet) *adminConfig {
	var a adminConfig
	fs.StringVar(&a.addr, "admin-addr", "", "admin API and /metrics listen address, e.g. 127.0.0.1:9100 (off when empty); keep it on loopback")
	fs.StringVar(&a.tokenFile, "admin-token-file", "", "file holding the admin API's bearer token (not readable by other users)")
	fs.StringVar(&a.clientCA, "admin-client-ca", "", "CA bundle (PEM) that admin clients' certificates must chain to (mutual TLS on the admin listener)")
	fs.StringVar(&a.cert, "admin-tls-cert", "", "TLS certificate (PEM) for the admin listener; with -admin-client-ca, -tls-cert if empty")
	fs.StringVar(&a.key, "admin-tls-key", "", "TLS private key (PEM) for the admin listener; with -admin-client-ca, -tls-key if empty")
	return &a
}

// startAdmin serves the admin listener if a.addr is set. reload is what
// SIGHUP runs. It returns a function that stops the listener.
func startAdmin(a *adminConfig, c config, waf *mqttwaf.WAF, server *mqtt.Server, listeners map[string]string,
	reload func() error, logger *slog.Logger) (stop func(), err error) {
	if a.addr == "" {
		if a.tokenFile != "" || a.clientCA != "" {
			return nil, errors.New("-admin-token-file and -admin-client-ca need -admin-addr")
		}
		return func() {}, nil
	}
	opts := admin.Options{Version: version(), ClientCert: a.clientCA != "",
		Listeners: func() map[string]string { return maps.Clone(listeners) },
		Clients:   func() int64 { return atomic.LoadInt64(&server.Info.ClientsConnected) },
		Reload:    reload}
	if a.tokenFile != "" {
		if opts.Token, err = admin.LoadToken(a.tokenFile); err != nil {
			return nil, fmt.Errorf("-admin-token-file: %w", err)
		}
	}
	tlsCfg, err := adminTLS(waf, a, c)
	if err != nil {
		return nil, err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(metrics.New(waf, metrics.Options{Broker: hooks.BrokerInfo(server)}),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	opts.Metrics = promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError, Timeout: 10 * time.Second})
	h, err := admin.New(waf, opts)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", a.addr)
	if err != nil {
		return nil, fmt.Errorf("-admin-addr %s: %w", a.addr, err)
	}
	srv := admin.NewServer(a.addr, h)
	srv.ErrorLog = slog.NewLogLogger(logger.Handler(), slog.LevelWarn)
	scheme := "http"
	if tlsCfg != nil {
		srv.TLSConfig, scheme = tlsCfg, "https"
		ln = tls.NewListener(ln, tlsCfg)
	}
	if ip, err := listenIP(ln.Addr()); err == nil && !ip.IsLoopback() && tlsCfg == nil {
		logger.Warn("the admin API listens beyond loopback without TLS: tokens cross the network in clear; use -admin-client-ca or -admin-tls-cert, or a loopback -admin-addr",
			"admin", ln.Addr().String())
	}
	go func() { _ = srv.Serve(ln) }()
	logger.Info("admin API ready", "admin", ln.Addr().String(), "scheme", scheme, "token", opts.Token != nil, "client_ca", a.clientCA != "")
	return func() { _ = srv.Close() }, nil
}

func listenIP(a net.Addr) (net.IP, error) {
	t, ok := a.(*net.TCPAddr)
	if !ok {
		return nil, errors.New("not TCP")
	}
	return t.IP, nil
}

// adminTLS is the admin listener's TLS configuration: none without a
// certificate; with -admin-client-ca, client certificates are required
// (optional when a token file is given too: either proof will do), and the
// broker's -tls-cert/-tls-key serve unless -admin-tls-cert is set. The
// files are read once, at start.
func adminTLS(waf *mqttwaf.WAF, a *adminConfig, c config) (*tls.Config, error) {
	f := mqttwaf.TLSFiles{Cert: a.cert, Key: a.key, ClientCA: a.clientCA, ClientCertOptional: a.tokenFile != "",
		CertName: "-admin-tls-cert", KeyName: "-admin-tls-key", ClientCAName: "-admin-client-ca"}
	if a.clientCA != "" && f.Cert == "" && f.Key == "" {
		f.Cert, f.Key, f.CertName, f.KeyName = c.tlsCert, c.tlsKey, "-tls-cert", "-tls-key"
	}
	switch {
	case f.Cert == "" && f.Key == "" && a.clientCA != "":
		return nil, errors.New("-admin-client-ca needs a certificate for the admin listener: -admin-tls-cert and -admin-tls-key, or -tls-cert and -tls-key")
	case f.Cert == "" && f.Key == "":
		return nil, nil
	case f.Cert == "" || f.Key == "":
		return nil, errors.New("-admin-tls-cert and -admin-tls-key go together: set both")
	}
	src, err := mqttwaf.NewTLSSource(waf, f)
	if err != nil {
		return nil, err
	}
	return src.Config(), nil
}
