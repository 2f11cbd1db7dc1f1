package hooks

import (
	"context"
	"crypto/tls"
	"io"
	"log"
	"net"
	"net/http"
	"time"

	"github.com/gorilla/websocket"
	"github.com/mochi-mqtt/server/v2/listeners"

	"github.com/mqttwaf/mqttwaf/mqttwaf"
)

// websocketUpgrader turns HTTP upgrade requests into MQTT connections.
type websocketUpgrader struct {
	l         *Listener
	up        websocket.Upgrader
	establish listeners.EstablishFn
}

type connKey struct{}

func (l *Listener) initWebsocket() {
	l.upgrader = &websocketUpgrader{l: l, up: websocket.Upgrader{
		Subprotocols: []string{"mqtt"},
		// ServeHTTP has checked Host and Origin against the listener's
		// allowed_hosts and allowed_origins; gorilla's own check (Origin's
		// host equals Host) is what DNS rebinding passes.
		CheckOrigin: func(*http.Request) bool { return true },
		Error:       refuseHTTP,
	}}
	timeout := l.waf.ConnectTimeout(l.id)
	l.http = &http.Server{
		Handler: l.upgrader,
		// The guardConn holds every socket to its CONNECT deadline whatever
		// net/http does with deadlines (deadline.go); these bound each
		// request as well.
		ReadHeaderTimeout: timeout,
		ReadTimeout:       timeout,
		IdleTimeout:       timeout,
		MaxHeaderBytes:    16 << 10,
		// Keep the accepted conn so the handler can find its guardConn.
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, connKey{}, c)
		},
		ConnState: l.websocketState,
		ErrorLog:  log.New(io.Discard, "", 0), // failures become events instead
	}
	// One request per socket: an upgrade hijacks it, anything else is
	// answered and closed, so a socket cannot idle between requests.
	l.http.SetKeepAlivesEnabled(false)
}

// refuseHTTP answers a request that is not an MQTT WebSocket upgrade with a
// short error and closes the socket.
func refuseHTTP(w http.ResponseWriter, _ *http.Request, status int, _ error) {
	h := w.Header()
	h.Set("Connection", "close")
	if status != http.StatusForbidden {
		h.Set("Sec-WebSocket-Version", "13")
	}
	http.Error(w, http.StatusText(status), status)
}

// websocketState reports sockets that closed without ever upgrading to a
// WebSocket: an idle or slow HTTP client held to the CONNECT deadline, or a
// request that was not an MQTT WebSocket upgrade.
func (l *Listener) websocketState(c net.Conn, state http.ConnState) {
	g := findGuard(c)
	if g == nil {
		return
	}
	switch state {
	case http.StateHijacked:
		g.upgraded.Store(true)
	case http.StateClosed:
		if g.upgraded.Load() || g.refused.Load() {
			return
		}
		if tc, ok := c.(*tls.Conn); ok && !tc.ConnectionState().HandshakeComplete {
			l.handshakeFailed(g, tc.Handshake()) // net/http ran it: Handshake returns how it ended
			return
		}
		v := mqttwaf.Verdict{Action: mqttwaf.Disconnect, Rule: "connections.protocol", Reason: "no_websocket_upgrade"}
		if !time.Now().Before(g.deadline) {
			v.Rule, v.Reason = "connections.connect_timeout", "connect_timeout"
			v.Limit = int64(l.waf.ConnectTimeout(l.id) / time.Millisecond)
			v.Detail = "no WebSocket upgrade within the deadline (limit in ms)"
		}
		l.waf.Record(mqttwaf.StageAccept, nil, l.id, g.remote, "", 0, v)
	}
}

func (u *websocketUpgrader) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	accepted, _ := r.Context().Value(connKey{}).(net.Conn)
	g := findGuard(accepted)
	remote := r.RemoteAddr
	if g != nil {
		remote = g.remote
	}
	// Host and Origin first, for every request: a page whose name was
	// rebound to the broker gets nothing but a 403.
	if v := u.l.waf.CheckWebSocket(u.l.id, remote, r.Host, r.Header.Values("Origin")); v.Blocked() {
		if g != nil {
			g.refused.Store(true) // reported; the close is not another event
		}
		refuseHTTP(w, r, http.StatusForbidden, nil)
		return
	}
	c, err := u.up.Upgrade(w, r, nil)
	if err != nil {
		return // Upgrade has answered with an HTTP error
	}
	if g == nil {
		// Not one of our sockets (cannot happen with Serve's listener); give
		// it a CONNECT deadline all the same.
		_ = c.UnderlyingConn().SetDeadline(time.Now().Add(u.l.waf.ConnectTimeout(u.l.id)))
	}
	// A WebSocket message carries MQTT packets; one far larger than the
	// largest packet is refused by gorilla before it is buffered.
	c.SetReadLimit(int64(2*u.l.waf.Broker().MaxPacketSize) + 1024)
	if !u.l.startServing() {
		_ = c.Close()
		return
	}
	defer u.l.serving.Done()
	u.l.establish(u.establish, mqttwaf.WebSocketConn(c), accepted)
}
