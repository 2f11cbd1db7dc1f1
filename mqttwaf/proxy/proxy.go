// Package proxy puts the mqttwaf firewall in front of any MQTT broker
// (mosquitto, EMQX, HiveMQ, VerneMQ): clients connect to the proxy, and for
// each one the proxy opens one connection to the upstream broker and
// relays packets both ways through the same engine and policy as the
// embedded mochi broker (package hooks). Clients speak MQTT 3.1.1 or 5 over
// TCP, TLS or WebSocket; the broker is reached over TCP or TLS. It imports
// no broker code.
//
// Per client, in order: the accept rules (socket caps) and the CONNECT
// deadline; the frame validator on every packet before the proxy decodes
// it; the connect rules (identity, lockouts, rates, client-ID binding) and
// the will check; then the upstream connection. Client-to-broker PUBLISH
// runs the publish rules (a refused one is answered by the proxy and never
// reaches the broker; a rewritten one is re-encoded); SUBSCRIBE runs the
// subscribe rules per filter (refused filters get their SUBACK code from
// the proxy, merged with the broker's codes for the rest); broker-to-client
// PUBLISH runs the deliver rules and the subscriber's view (a refused
// delivery is acknowledged upstream by the proxy and never reaches the
// client). Topic aliases are resolved: the proxy accepts them from clients
// and sends full topics upstream, and asks the broker for none. Every other
// packet is relayed byte for byte. An MQTT 3.1 or 3.1.1 client can be
// served over an MQTT 5 upstream connection (Options.UpstreamProtocol;
// translate.go), so that the provenance stamp and the service identity,
// both MQTT 5 user properties, reach the broker.
package proxy

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/mqttwaf/mqttwaf/mqttwaf"
)

// Upstream identity modes (Options.Identity.Mode).
const (
	// IdentityForward sends the client's own user name and password
	// upstream, after the proxy authenticated them: the broker can keep
	// its own ACL per user. The default.
	IdentityForward = "forward"
	// IdentityService connects upstream with the proxy's service
	// credentials (Identity.Username, Identity.Password) and carries the
	// identity the proxy authenticated as an MQTT 5 user property of the
	// CONNECT (Identity.UserProperty), so the broker accepts only the
	// proxy and its clients' passwords never leave it.
	IdentityService = "service"
)

// Upstream protocol choices (Options.UpstreamProtocol): which MQTT version
// the proxy speaks to the broker for an MQTT 3.1 or 3.1.1 client (an MQTT 5
// client always gets MQTT 5).
const (
	// UpstreamAuto ("auto", the default when empty) is Upstream5 when the
	// policy stamps provenance (provenance.user_property) or the proxy
	// logs in with its service identity, both of which travel as MQTT 5
	// user properties; UpstreamClient otherwise.
	UpstreamAuto = "auto"
	// UpstreamClient speaks the client's own version: 3.1.1 packets are
	// relayed byte for byte, and carry no provenance or identity property.
	UpstreamClient = "client"
	// Upstream5 speaks MQTT 5 and translates (translate.go): the broker sees
	// every publish stamped, the client sees exactly 3.1.1.
	Upstream5 = "5"
)

// DefaultIdentityProperty names the CONNECT user property that carries the
// authenticated identity upstream in service mode.
const DefaultIdentityProperty = "x-mqttwaf-identity"

// Identity says whose credentials the proxy presents upstream.
type Identity struct {
	// Mode is IdentityForward ("forward", the default when empty) or
	// IdentityService ("service").
	Mode string `yaml:"mode" json:"mode"`
	// Username and Password are the service credentials (service mode).
	Username string `yaml:"username" json:"username"`
	Password string `yaml:"password" json:"-"`
	// UserProperty names the CONNECT user property carrying the
	// authenticated identity to the broker in service mode (MQTT 5
	// clients only); DefaultIdentityProperty when empty.
	UserProperty string `yaml:"user_property" json:"user_property"`
}

// Options configure a Proxy. The zero value listens on 127.0.0.1:1883 and
// needs only Upstream.
type Options struct {
	// Listen is the address clients connect to; "127.0.0.1:1883" when empty.
	Listen string `yaml:"listen" json:"listen"`
	// ListenerID names the listener in the policy (listeners.<id>) and in
	// events; "ws" with WebSocket, "tls" when TLS is set, "tcp" otherwise.
	ListenerID string `yaml:"listener_id" json:"listener_id"`
	// TLS, if set, serves TLS to clients (set ClientAuth and ClientCAs for
	// mutual TLS; a verified certificate can be the identity).
	TLS *tls.Config `yaml:"-" json:"-"`
	// WebSocket serves MQTT over WebSocket (wss with TLS) instead of plain
	// MQTT: one HTTP upgrade request per socket, Host and Origin checked
	// against connections.allowed_hosts and allowed_origins, all within the
	// CONNECT deadline.
	WebSocket bool `yaml:"websocket" json:"websocket"`
	// Upstream is the broker's address, host:port. Required.
	Upstream string `yaml:"upstream" json:"upstream"`
	// UpstreamTLS, if set, connects to the broker over TLS.
	UpstreamTLS *tls.Config `yaml:"-" json:"-"`
	// Identity chooses the upstream credentials; forward by default.
	Identity Identity `yaml:"identity" json:"identity"`
	// UpstreamProtocol is UpstreamAuto ("auto", the default when empty),
	// UpstreamClient ("client") or Upstream5 ("5").
	UpstreamProtocol string `yaml:"upstream_protocol" json:"upstream_protocol"`
	// Logger receives operational logs (not security events: the WAF's
	// sink has those); slog.Default() when nil.
	Logger *slog.Logger `yaml:"-" json:"-"`
}

// Proxy is a running firewall proxy. Create one with New, then Start it.
type Proxy struct {
	waf  *mqttwaf.WAF
	opts Options
	log  *slog.Logger

	ln     net.Listener
	mu     sync.Mutex
	closed bool
	conns  map[*conn]struct{}
	// live maps the client IDs connected through this proxy to their
	// identity, for the WAF's session takeover check (sessions.takeover).
	live map[string]*conn
	wg   sync.WaitGroup
}

// New checks o and returns a proxy that runs w in front of o.Upstream.
func New(w *mqttwaf.WAF, o Options) (*Proxy, error) {
	if w == nil {
		return nil, errors.New("proxy: New needs a WAF (mqttwaf.New or mqttwaf.LoadFile)")
	}
	if o.Upstream == "" {
		return nil, errors.New("proxy: no upstream broker: set -upstream (Options.Upstream) to the broker's host:port")
	}
	if _, _, err := net.SplitHostPort(o.Upstream); err != nil {
		return nil, fmt.Errorf("proxy: upstream %q is not host:port: %w", o.Upstream, err)
	}
	switch o.Identity.Mode {
	case "":
		o.Identity.Mode = IdentityForward
	case IdentityForward:
	case IdentityService:
		if o.Identity.Username == "" {
			return nil, errors.New("proxy: upstream identity mode service needs the service user name (-upstream-username)")
		}
	default:
		return nil, fmt.Errorf("proxy: upstream identity mode %q: use %q or %q", o.Identity.Mode, IdentityForward, IdentityService)
	}
	switch o.UpstreamProtocol {
	case "":
		o.UpstreamProtocol = UpstreamAuto
	case UpstreamAuto, UpstreamClient, Upstream5:
	default:
		return nil, fmt.Errorf("proxy: upstream protocol %q: use %q, %q or %q (-upstream-protocol)",
			o.UpstreamProtocol, UpstreamAuto, UpstreamClient, Upstream5)
	}
	if o.Identity.UserProperty == "" {
		o.Identity.UserProperty = DefaultIdentityProperty
	}
	if o.Listen == "" {
		o.Listen = "127.0.0.1:1883"
	}
	if o.ListenerID == "" {
		switch {
		case o.WebSocket:
			o.ListenerID = "ws"
		case o.TLS != nil:
			o.ListenerID = "tls"
		default:
			o.ListenerID = "tcp"
		}
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return &Proxy{waf: w, opts: o, log: o.Logger, conns: map[*conn]struct{}{}, live: map[string]*conn{}}, nil
}

// Start binds the listen address and serves clients in the background
// until Close.
func (p *Proxy) Start() error {
	ln, err := net.Listen("tcp", p.opts.Listen)
	if err != nil {
		return fmt.Errorf("proxy: listen %s: %w", p.opts.Listen, err)
	}
	p.ln = ln
	p.wg.Add(1)
	go p.serve()
	return nil
}

// Addr is the bound listen address (useful with port 0).
func (p *Proxy) Addr() string {
	if p.ln == nil {
		return p.opts.Listen
	}
	return p.ln.Addr().String()
}

// Close stops accepting, closes every client and upstream connection
// (MQTT 5 clients get DISCONNECT 0x8B, server shutting down) and waits for
// them to end.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	open := make([]*conn, 0, len(p.conns))
	for c := range p.conns {
		open = append(open, c)
	}
	p.mu.Unlock()
	var err error
	if p.ln != nil {
		err = p.ln.Close()
	}
	for _, c := range open {
		c.shutDown()
	}
	p.wg.Wait()
	return err
}

func (p *Proxy) serve() {
	defer p.wg.Done()
	for {
		nc, err := p.ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			p.mu.Lock()
			closed := p.closed
			p.mu.Unlock()
			if !closed {
				p.log.Error("accept failed", "listener", p.opts.ListenerID, "error", err)
			}
			return
		}
		remote := nc.RemoteAddr().String()
		if v := p.waf.Open(p.opts.ListenerID, remote); v.Blocked() {
			_ = nc.Close() // the WAF recorded the refusal
			continue
		}
		c := &conn{p: p, raw: nc, remote: remote}
		if !p.track(c) {
			_ = nc.Close()
			p.waf.Close(remote)
			return
		}
		go c.run()
	}
}

// track adds c to the open connections, unless the proxy is closing.
func (p *Proxy) track(c *conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.conns[c] = struct{}{}
	p.wg.Add(1)
	return true
}

func (p *Proxy) untrack(c *conn) {
	p.mu.Lock()
	delete(p.conns, c)
	if c.client.ID != "" && p.live[c.client.ID] == c {
		delete(p.live, c.client.ID)
	}
	p.mu.Unlock()
	p.wg.Done()
}

// session describes the connection already using a client ID, if any.
func (p *Proxy) session(id string) *mqttwaf.SessionInfo {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.live[id]; ok {
		return &mqttwaf.SessionInfo{Owner: c.client.Username, Connected: true}
	}
	return nil
}

// established records c as the live connection of its client ID.
func (p *Proxy) established(c *conn) {
	p.mu.Lock()
	p.live[c.client.ID] = c
	p.mu.Unlock()
}

// serverTLS is the client-facing TLS configuration: the handshake limit
// per address (connections.tls_handshakes_per_ip) is checked before the
// server's key exchange.
func (p *Proxy) serverTLS(remote string) *tls.Config {
	cfg := p.opts.TLS.Clone()
	base := p.opts.TLS.GetConfigForClient
	cfg.GetConfigForClient = func(h *tls.ClientHelloInfo) (*tls.Config, error) {
		if v := p.waf.CheckTLSHandshake(p.opts.ListenerID, remote); v.Blocked() {
			return nil, fmt.Errorf("proxy: TLS handshake refused: %s", v.Reason)
		}
		if base != nil {
			return base(h)
		}
		return nil, nil
	}
	return cfg
}

// upstreamTimeout bounds the dial to the broker when the CONNECT deadline
// is off (0).
const upstreamTimeout = 10 * time.Second
