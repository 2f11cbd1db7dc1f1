package hooks

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/mqttwaf/mqttwaf/mqttwaf"
	"github.com/mqttwaf/mqttwaf/mqttwaf/frame"
)

// Listener types accepted by NewListener.
const (
	TypeTCP       = "tcp" // plain TCP, or TLS when Config.TLSConfig is set
	TypeWebsocket = "ws"  // WebSocket, or secure WebSocket with TLSConfig
)

// Listener is a mochi listener with the transport protections mochi lacks:
// sockets over broker.max_connections or the per-IP cap are closed at
// accept, TLS handshakes over connections.tls_handshakes_per_ip are aborted
// before the server's key exchange, and every socket must complete its TLS
// handshake, WebSocket upgrade and CONNECT within
// connections.connect_timeout (mochi sets no deadline until after CONNECT,
// so an idle socket is held forever). Sockets that fail before CONNECT are
// reported as events; failed TLS handshakes with a reason of their own
// (rule connections.tls: certificate_expired, certificate_unknown_ca,
// no_certificate...).
//
// Create one with NewListener and add it with server.AddListener.
type Listener struct {
	id, address, typ string
	tlsConfig        *tls.Config
	waf              *mqttwaf.WAF

	log      *slog.Logger
	listen   net.Listener
	http     *http.Server
	closed   atomic.Bool
	closeMu  sync.Mutex
	upgrader *websocketUpgrader

	// The listener's own sockets and the goroutines that serve them, so
	// Close can end them without mochi's closeListenerClients (which can
	// deadlock in v2.7.9: Clients.GetByListener read-locks twice, mochi
	// issue #488) and return only when they are done (mochi's ClientsWg.Add
	// in attachClient would otherwise race its Wait in CloseAll).
	connsMu sync.Mutex
	conns   map[*guardConn]struct{}
	serving sync.WaitGroup

	// unvalidated hands mochi the raw connection, without the frame
	// validator: only the benchmark that measures the validator's cost
	// sets it.
	unvalidated bool
}

// NewListener returns a protected listener of cfg.Type (TypeTCP or
// TypeWebsocket) on cfg.Address with id cfg.ID; cfg.TLSConfig turns on TLS
// (set ClientAuth and ClientCAs for mutual TLS). Init serves a clone of it
// whose GetConfigForClient checks connections.tls_handshakes_per_ip first,
// then calls yours, if you set one.
func NewListener(w *mqttwaf.WAF, cfg listeners.Config) (*Listener, error) {
	if w == nil {
		return nil, errors.New("hooks: NewListener needs a WAF")
	}
	if cfg.ID == "" {
		return nil, errors.New("hooks: listener Config.ID is empty: give each listener an id (tcp, tls, ws...)")
	}
	switch cfg.Type {
	case "", TypeTCP:
		cfg.Type = TypeTCP
	case TypeWebsocket:
	default:
		return nil, fmt.Errorf("hooks: listener %q: unknown Type %q: use %q or %q", cfg.ID, cfg.Type, TypeTCP, TypeWebsocket)
	}
	return &Listener{id: cfg.ID, address: cfg.Address, typ: cfg.Type, tlsConfig: cfg.TLSConfig, waf: w}, nil
}

// ID returns the listener id.
func (l *Listener) ID() string { return l.id }

// Address returns the bound address once Init has run (useful with port 0).
func (l *Listener) Address() string {
	if l.listen != nil {
		return l.listen.Addr().String()
	}
	return l.address
}

// Protocol returns tcp, tls, ws or wss.
func (l *Listener) Protocol() string {
	switch {
	case l.typ == TypeTCP && l.tlsConfig != nil:
		return "tls"
	case l.typ == TypeWebsocket && l.tlsConfig != nil:
		return "wss"
	}
	return l.typ
}

// Init binds the address.
func (l *Listener) Init(log *slog.Logger) error {
	l.log = log
	raw, err := net.Listen("tcp", l.address)
	if err != nil {
		return err
	}
	var ln net.Listener = &guardListener{Listener: raw, l: l}
	if l.tlsConfig != nil {
		ln = tls.NewListener(ln, l.serverTLS(l.tlsConfig)) // handshakes limited per address (tls.go)
	}
	l.listen = ln
	if l.typ == TypeWebsocket {
		l.initWebsocket()
	}
	return nil
}

// Serve accepts connections until Close.
func (l *Listener) Serve(establish listeners.EstablishFn) {
	if l.typ == TypeWebsocket {
		l.upgrader.establish = establish
		_ = l.http.Serve(l.listen)
		return
	}
	for {
		conn, err := l.listen.Accept()
		if err != nil {
			if l.closed.Load() {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			l.log.Error("accept failed", "listener", l.id, "error", err)
			return
		}
		if !l.startServing() {
			_ = conn.Close()
			return
		}
		go func() {
			defer l.serving.Done()
			l.establish(establish, conn, conn)
		}()
	}
}

// startServing counts one more goroutine serving a socket, unless the
// listener is closing.
func (l *Listener) startServing() bool {
	l.connsMu.Lock()
	defer l.connsMu.Unlock()
	if l.closed.Load() {
		return false
	}
	l.serving.Add(1)
	return true
}

// track adds g to the listener's sockets, or reports that it is closing.
func (l *Listener) track(g *guardConn) bool {
	l.connsMu.Lock()
	defer l.connsMu.Unlock()
	if l.closed.Load() {
		return false
	}
	if l.conns == nil {
		l.conns = make(map[*guardConn]struct{})
	}
	l.conns[g] = struct{}{}
	return true
}

func (l *Listener) untrack(g *guardConn) {
	l.connsMu.Lock()
	delete(l.conns, g)
	l.connsMu.Unlock()
}

// establish hands conn to mochi and, when it returns, reports sockets that
// never got as far as CONNECT. guard is the net.Conn the guardListener
// returned (conn may wrap it in TLS or WebSocket framing).
//
// mochi reads and decodes a connection's packets, and calls the hooks, in
// this goroutine. A panic here (a decoder bug, a panicking hook of the
// application's) would kill the whole process; it is recovered, reported,
// and ends this connection only.
func (l *Listener) establish(establish listeners.EstablishFn, conn, guard net.Conn) {
	g := findGuard(guard)
	defer func() {
		if r := recover(); r != nil {
			l.recovered(conn, g, r)
		}
	}()
	// Every packet is checked by the frame validator before mochi's
	// decoder sees it; a malformed one ends this connection (see
	// frame.Conn), reported below or, after CONNECT, by the hook.
	mqttConn := net.Conn(frame.NewConn(conn, frame.Limits{MaxPacketSize: int(l.waf.Broker().MaxPacketSize)}))
	if l.unvalidated {
		mqttConn = conn
	}
	if g != nil {
		mqttConn = &publishGate{Conn: mqttConn, g: g} // QoS 0 to a client that does not keep up (writequeue.go)
	}
	err := establish(l.id, mqttConn)
	if g == nil || g.connected.Load() || err == nil {
		return
	}
	if tc := findTLS(conn); tc != nil && !tc.ConnectionState().HandshakeComplete {
		// The handshake failed (mochi's first read ran it): its own
		// reasons. Handshake returns the failure it ended with.
		l.handshakeFailed(g, tc.Handshake())
		return
	}
	if v, ok := mqttwaf.FrameVerdict(err); ok {
		l.waf.Record(mqttwaf.StageAccept, nil, l.id, g.remote, "", 0, v)
		return
	}
	rule, reason, code := "connections.protocol", "", mqttwaf.ReasonCode(0)
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		rule, reason = "connections.connect_timeout", "connect_timeout"
	case errors.Is(err, packets.ErrPacketTooLarge):
		rule, reason, code = "connections.max_packet_size", "packet_too_large", mqttwaf.CodePacketTooLarge
	case errors.Is(err, packets.ErrProtocolViolationRequireFirstConnect):
		reason, code = "first_packet_not_connect", mqttwaf.CodeProtocolError
	case peerWentAway(err):
		return // port scanners and health checks, not an attack
	default:
		reason, code = "malformed_connect", mqttwaf.CodeMalformedPacket
	}
	v := mqttwaf.Verdict{Action: mqttwaf.Disconnect, Rule: rule, Reason: reason, Code: code, Detail: err.Error()}
	if reason == "connect_timeout" {
		v.Limit = int64(l.waf.ConnectTimeout(l.id) / time.Millisecond)
		v.Detail = "no complete CONNECT within the deadline (limit in ms)"
	}
	l.waf.Record(mqttwaf.StageAccept, nil, l.id, g.remote, "", 0, v)
}

// recovered ends a connection whose goroutine panicked: it closes the
// socket, lets the hook forget the client as mochi would have (mochi's own
// clean-up after its read loop never ran), and records a broker.panic
// event. The Last Will is not sent: mochi can no longer tell whether the
// client ended the session cleanly.
func (l *Listener) recovered(conn net.Conn, g *guardConn, r any) {
	v := mqttwaf.Verdict{Action: mqttwaf.Disconnect, Rule: "broker.panic", Reason: "connection_panicked",
		Code: mqttwaf.CodeImplementationSpecific, Detail: fmt.Sprint(r)}
	record := func(c *mqttwaf.Client) {
		remote := conn.RemoteAddr().String()
		if g != nil {
			remote = g.remote
		}
		l.waf.Record(mqttwaf.StageBroker, c, l.id, remote, "", 0, v)
	}
	if g != nil {
		if end := g.onPanic.Load(); end != nil {
			(*end)(v.Detail, record) // records, then ends the session
			return
		}
	}
	record(nil)
	_ = conn.Close()
}

// Close stops accepting and closes the listener's clients.
//
// It stops accepting, then ends every connection of this listener (MQTT 5
// clients get DISCONNECT 0x8B, server shutting down) and waits, at most
// closeWait, until mochi has finished with them. It does not use
// closeClients: mochi's version can deadlock (see Listener.conns).
func (l *Listener) Close(_ listeners.CloseFn) {
	l.closeMu.Lock()
	defer l.closeMu.Unlock()
	l.connsMu.Lock()
	if l.closed.Swap(true) {
		l.connsMu.Unlock()
		return
	}
	open := make([]*guardConn, 0, len(l.conns))
	for g := range l.conns {
		open = append(open, g)
	}
	l.connsMu.Unlock()
	if l.http != nil {
		_ = l.http.Close()
	}
	if l.listen != nil {
		_ = l.listen.Close()
	}
	for _, g := range open {
		g.shutDown()
	}
	done := make(chan struct{})
	go func() { l.serving.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(closeWait):
		l.log.Warn("listener closed with connections still ending", "listener", l.id)
	}
}

// closeWait bounds how long Close waits for its connections to end.
const closeWait = 5 * time.Second

// guardListener admits sockets through the WAF's accept rules and arms the
// CONNECT deadline on each one.
type guardListener struct {
	net.Listener
	l *Listener
}

func (gl *guardListener) Accept() (net.Conn, error) {
	for {
		c, err := gl.Listener.Accept()
		if err != nil {
			return nil, err
		}
		remote := c.RemoteAddr().String()
		if v := gl.l.waf.Open(gl.l.id, remote); v.Blocked() {
			_ = c.Close()
			continue
		}
		g := &guardConn{Conn: c, waf: gl.l.waf, l: gl.l, remote: remote}
		g.deadline = time.Now().Add(gl.l.waf.ConnectTimeout(gl.l.id))
		_ = c.SetDeadline(g.deadline)
		if !gl.l.track(g) {
			_ = g.Close()
			return nil, net.ErrClosed
		}
		return g, nil
	}
}

// guardConn is an accepted socket. It gives its slot back to the connection
// caps when it closes, and remembers whether the client got as far as
// CONNECT (the hook marks it) so failures before that are reported.
type guardConn struct {
	net.Conn
	waf       *mqttwaf.WAF
	l         *Listener
	remote    string
	deadline  time.Time // the CONNECT deadline
	connected atomic.Bool
	upgraded  atomic.Bool // WebSocket listeners: the HTTP upgrade happened
	refused   atomic.Bool // refused and reported already (a WebSocket request, a TLS handshake)
	closeOnce sync.Once
	// onPanic, set by the hook once CONNECT is accepted, forgets the client
	// after its goroutine panicked, and returns the WAF's view of it.
	onPanic atomic.Pointer[func(reason string, record func(*mqttwaf.Client))]
	// client is the mochi client once CONNECT is accepted.
	client atomic.Pointer[mqtt.Client]
	// out holds what the socket does not take at once, after CONNECT
	// (writequeue.go); queued says it is in use.
	out    writeQueue
	queued atomic.Bool
	// onWAFClose, set by the hook once CONNECT is accepted, records a
	// disconnection the listener decided (a client that does not read)
	// with the WAF's view of the client, and marks it as reported.
	onWAFClose atomic.Pointer[func(mqttwaf.Verdict)]
	// onDrop, set by the hook, reports a QoS 0 delivery publishGate dropped.
	onDrop atomic.Pointer[func(topic string, size int, limit int64)]
}

// Write writes to the socket; after CONNECT it never waits (writeQueue).
func (g *guardConn) Write(b []byte) (int, error) {
	if g.queued.Load() {
		return g.out.write(g, b)
	}
	return g.Conn.Write(b)
}

// stalled records v, the disconnection of a client that does not read,
// and closes its socket; mochi's read loop then ends the session as for
// any lost connection. No DISCONNECT is sent: the socket takes nothing.
func (g *guardConn) stalled(v mqttwaf.Verdict) {
	if f := g.onWAFClose.Load(); f != nil {
		(*f)(v)
	} else {
		g.waf.Record(mqttwaf.StageBroker, nil, g.l.id, g.remote, "", 0, v)
	}
	_ = g.Conn.Close()
}

func (g *guardConn) Close() error {
	err := g.Conn.Close()
	g.closeOnce.Do(func() {
		g.waf.Close(g.remote)
		g.l.untrack(g)
	})
	return err
}

// shutDown ends the connection because the listener closes: an MQTT 5
// client is told (DISCONNECT 0x8B), within a second.
func (g *guardConn) shutDown() {
	cl := g.client.Load()
	if cl == nil {
		_ = g.Close()
		return
	}
	if cl.Properties.ProtocolVersion == 5 {
		_ = g.SetWriteDeadline(time.Now().Add(time.Second))
		_ = cl.WritePacket(packets.Packet{
			FixedHeader: packets.FixedHeader{Type: packets.Disconnect},
			ReasonCode:  packets.ErrServerShuttingDown.Code,
		})
	}
	cl.Stop(packets.ErrServerShuttingDown)
}

// findGuard finds the guardConn under c's TLS or WebSocket wrapping.
func findGuard(c net.Conn) *guardConn {
	for c != nil {
		switch x := c.(type) {
		case *guardConn:
			return x
		case interface{ NetConn() net.Conn }:
			c = x.NetConn()
		default:
			return nil
		}
	}
	return nil
}

// findTLS finds the *tls.Conn under c's WebSocket wrapping, if any.
func findTLS(c net.Conn) *tls.Conn {
	for c != nil {
		switch x := c.(type) {
		case *tls.Conn:
			return x
		case interface{ NetConn() net.Conn }:
			c = x.NetConn()
		default:
			return nil
		}
	}
	return nil
}
