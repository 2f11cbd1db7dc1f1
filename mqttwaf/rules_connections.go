package mqttwaf

import "time"

// connectionCaps refuses sockets beyond broker.max_connections and beyond
// the listener's max_connections_per_ip, at accept, before the socket costs
// the broker a goroutine pair and its buffers.
type connectionCaps struct{ p *Policy }

func (*connectionCaps) ID() string { return "connections.caps" }

func (r *connectionCaps) CheckAccept(a *Accept) Verdict {
	if max := r.p.Broker.MaxConnections; a.Open > max {
		return OverLimit("", "max_connections", CodeServerBusy, int64(a.Open), int64(max))
	}
	// Sockets without an IP (unix sockets, tests) share one count; the
	// per-IP cap is about hosts, so it does not apply to them.
	if max := r.p.listener(a.Listener).MaxConnectionsPerIP; a.RemoteIP.IsValid() && a.OpenFromIP > max {
		return OverLimit("", "max_connections_per_ip", CodeConnectionRateExceeded, int64(a.OpenFromIP), int64(max))
	}
	return Verdict{}
}

// keepaliveClamp grants at most max_keepalive. A keepalive of 0 means "never
// time out" to mochi, which would let an idle socket live forever, so 0 is
// clamped too. MQTT 5 clients are told the granted value (Server Keep
// Alive); 3.1.1 clients cannot be, and are disconnected when idle for 1.5
// times the granted value.
type keepaliveClamp struct{ p *Policy }

func (*keepaliveClamp) ID() string { return "connections.keepalive" }

func (r *keepaliveClamp) CheckConnect(c *Connect) Verdict {
	max := uint16(r.p.listener(c.Client.Listener).MaxKeepalive.D() / time.Second)
	if c.Keepalive != 0 && c.Keepalive <= max {
		return Verdict{}
	}
	v := Verdict{Action: Rewrite, Reason: "keepalive_clamped", Value: int64(c.Keepalive), Limit: int64(max)}
	c.Keepalive = max
	return v
}

// sessionExpiryClamp reports MQTT 5 clients asking to keep their session
// longer than broker.max_session_expiry. The broker grants the maximum and
// says so in the CONNACK; the rule lowers c.SessionExpiry to match.
type sessionExpiryClamp struct{ p *Policy }

func (*sessionExpiryClamp) ID() string { return "connections.session_expiry" }

func (r *sessionExpiryClamp) CheckConnect(c *Connect) Verdict {
	max := uint32(r.p.Broker.MaxSessionExpiry.D() / time.Second)
	if c.SessionExpiry <= max {
		return Verdict{}
	}
	v := Verdict{Action: Rewrite, Reason: "session_expiry_clamped", Value: int64(c.SessionExpiry), Limit: int64(max)}
	c.SessionExpiry = max
	return v
}
