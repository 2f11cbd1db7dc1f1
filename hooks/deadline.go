package hooks

import "time"

// The CONNECT deadline set at accept must hold until the client's CONNECT
// is accepted, whoever sets deadlines on the socket in between. net/http
// (WebSocket listeners) sets and clears read deadlines per request, replaces
// them with its header timeout and clears them after a hijack; crypto/tls
// and gorilla/websocket set their own. Any of those would otherwise let a
// client that never sends CONNECT hold the socket, and its slot under
// connections.max_connections_per_ip, for ever (keep-alive requests, a slow
// body, an upgrade followed by silence). So until then a deadline later
// than the CONNECT deadline, or none, becomes the CONNECT deadline; earlier
// ones (net/http uses a deadline in the past to interrupt a read) apply as
// given. After CONNECT they pass through: mochi sets the keepalive deadline.

// SetDeadline sets the read and write deadlines, no later than the CONNECT
// deadline before CONNECT.
// After CONNECT it sets the read deadline only: writes never wait
// (writeQueue), and the queue keeps its own write deadline.
func (g *guardConn) SetDeadline(t time.Time) error {
	if g.queued.Load() {
		return g.Conn.SetReadDeadline(t)
	}
	return g.Conn.SetDeadline(g.clamp(t))
}

// SetReadDeadline sets the read deadline, no later than the CONNECT
// deadline before CONNECT.
func (g *guardConn) SetReadDeadline(t time.Time) error { return g.Conn.SetReadDeadline(g.clamp(t)) }

// SetWriteDeadline sets the write deadline, no later than the CONNECT
// deadline before CONNECT.
// After CONNECT it does nothing: writes never wait (writeQueue).
func (g *guardConn) SetWriteDeadline(t time.Time) error {
	if g.queued.Load() {
		return nil
	}
	return g.Conn.SetWriteDeadline(g.clamp(t))
}

// clamp returns t, or the CONNECT deadline if t is later (or zero: no
// deadline) and the client has not connected yet.
func (g *guardConn) clamp(t time.Time) time.Time {
	if g.connected.Load() || !t.IsZero() && t.Before(g.deadline) {
		return t
	}
	return g.deadline
}
