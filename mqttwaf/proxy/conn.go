package proxy

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mqttwaf/mqttwaf/mqttwaf"
	"github.com/mqttwaf/mqttwaf/mqttwaf/frame"
)

// conn is one client and its upstream connection.
type conn struct {
	p      *Proxy
	raw    net.Conn    // the accepted socket
	remote string      // its "ip:port"
	cc     *frame.Conn // the client stream (TLS under it if any), validated
	up     net.Conn    // the upstream connection
	// toClient and toUp gather what goes to each side (see outBuf);
	// frame.Conn under toClient also serialises it with a refusal.
	toClient, toUp *outBuf
	client         mqttwaf.Client
	ver            byte // the client's protocol version
	// upVer is the version spoken upstream: ver, or MQTT 5 for a 3.1.x
	// client whose packets the proxy translates (translate.go).
	upVer byte
	conn  mqttwaf.Connect // the CONNECT as the WAF passed it (for the will at the end)

	keepalive time.Duration // the client read deadline's span (1.5 x keep alive), 0 = none

	clientReader *frame.Reader // validated client packets, after CONNECT
	upReader     *frame.Reader // validated broker packets, after CONNACK

	mu sync.Mutex // guards the maps below
	// aliasMax is the topic alias maximum the broker granted the client
	// (its CONNACK); aliases are the client's, resolved here.
	aliasMax uint16
	aliases  map[uint16]string
	// subacks holds, per SUBSCRIBE packet id, the codes the proxy gave
	// the filters it refused (0 for the ones sent upstream).
	subacks map[uint16][]byte
	// inQoS2 are client QoS 2 publishes the proxy refused and acknowledged
	// with PUBREC itself; their PUBREL is answered by the proxy too.
	inQoS2 map[uint16]bool
	// outQoS2 are broker deliveries the proxy refused and acknowledged
	// with PUBREC upstream; their PUBREL is answered by the proxy too.
	outQoS2 map[uint16]bool
	subs    map[string]bool // filters subscribed through this connection
	// sendQuota is how many more QoS 1/2 publishes a translated 3.1.1
	// client may have unacknowledged at the broker (the broker's Receive
	// Maximum, which the client cannot be told); queued holds its
	// publishes that wait for quota, in order (translate.go: sendUp).
	sendQuota   int
	queued      [][]byte
	queuedBytes int

	// maxQoS and noRetain are the broker's Maximum QoS and Retain
	// Available (its CONNACK): the proxy holds the client to them.
	maxQoS   byte
	noRetain bool
	// brokerMaxPacket is the broker's Maximum Packet Size (0: none): the
	// provenance stamp or the translation can make a publish larger than
	// what the client sent.
	brokerMaxPacket int
	// upPing, if set, is how often the proxy pings the broker for a
	// translated client whose keep alive is longer than the broker allows;
	// pings counts the PINGRESPs those pings still owe (not the client's).
	upPing time.Duration
	pings  atomic.Int32
	// admitted is the client as the WAF admitted it (given to Established
	// and Disconnected), keep how long its session outlives the connection
	// (0: it ends with it).
	admitted mqttwaf.Client
	keep     time.Duration

	ready     atomic.Bool // the handshake is done (ver and cc are set)
	closing   atomic.Bool
	byProxy   atomic.Bool // the proxy ended the connection (recorded already)
	clientEOF atomic.Bool // the client sent DISCONNECT
}

func (c *conn) run() {
	defer c.p.untrack(c)
	defer func() {
		if c.admitted.ID != "" {
			c.p.waf.Disconnected(&c.admitted, c.keep)
		}
	}()
	defer c.p.waf.Close(c.remote)
	defer func() { _ = c.raw.Close() }()
	if !c.handshake() {
		return
	}
	defer func() { _ = c.up.Close() }()
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.fromBroker()
		_ = c.raw.Close()
	}()
	if c.upPing > 0 {
		stop := make(chan struct{})
		defer close(stop)
		go c.pinger(stop)
	}
	c.fromClient()
	c.endUpstream()
	<-done
}

// lim is the frame validator's packet size limit: the policy's.
func (c *conn) lim() frame.Limits {
	return frame.Limits{MaxPacketSize: int(c.p.waf.Broker().MaxPacketSize)}
}

// handshake runs everything up to the relayed CONNACK, within the CONNECT
// deadline. It reports whether the connection is established.
func (c *conn) handshake() bool {
	w, id := c.p.waf, c.p.opts.ListenerID
	timeout := w.ConnectTimeout(id)
	deadline := time.Time{}
	if timeout > 0 {
		deadline = time.Now().Add(timeout)
	}
	_ = c.raw.SetDeadline(deadline)
	stream := c.raw
	var tc *tls.Conn
	if c.p.opts.TLS != nil {
		tc = tls.Server(c.raw, c.p.serverTLS(c.remote))
		if err := tc.Handshake(); err != nil {
			c.recordEarly(err)
			return false
		}
		stream = tc
	}
	if c.p.opts.WebSocket {
		if stream = c.upgrade(stream); stream == nil {
			return false
		}
	}
	c.cc = frame.NewConn(stream, c.lim())
	c.toClient = &outBuf{conn: c.cc, timeout: w.Broker().WriteTimeout.D(), stalled: c.stalled}
	rd := frame.NewReader(c.cc, frame.FromClient, c.lim())
	pkt, err := rd.Next()
	if err != nil {
		c.recordEarly(err)
		return false
	}
	cp, err := decodeConnect(pkt)
	if err != nil { // the validator passed it: a codec bug; fail closed
		c.recordEarly(err)
		return false
	}
	c.ver = cp.level
	c.client = mqttwaf.Client{ID: cp.clientID, Username: cp.username, Listener: id, RemoteAddr: c.remote,
		RemoteIP: mqttwaf.ParseRemoteIP(c.remote), Protocol: cp.level}
	if tc != nil {
		c.client.TLS = mqttwaf.TLSInfoOf(tc.ConnectionState())
	}
	c.conn = mqttwaf.Connect{Client: &c.client, Clean: cp.clean, Keepalive: cp.keepalive,
		UsernameSet: cp.hasUser, Password: cp.password, Will: cp.willMessage(), UserProperties: userOf(cp.props)}
	if v, ok := findProp(cp.props, propSessionExpiry); ok {
		c.conn.SessionExpiry = propU32(v)
	}
	if v, ok := findProp(cp.props, propAuthMethod); ok {
		c.conn.AuthMethod = string(propBinary(v)) // refused by identity.authenticate (0x8C)
	}
	if cp.clientID != "" {
		c.conn.Session = c.p.session(cp.clientID)
	}
	will := c.conn.Will
	if v := w.Connect(&c.conn); v.Blocked() {
		_ = c.writeClient(refusal(c.ver, v))
		return false
	}
	c.upVer = c.p.upstreamVersion(c.ver)
	if c.translated() && cp.clientID == "" && !cp.clean {
		// 3.1.1 refuses this (MQTT-3.1.3-8); an MQTT 5 broker would assign
		// an identifier the client never learns, for a session it can never
		// resume.
		v := mqttwaf.Verdict{Action: mqttwaf.Reject, Rule: "connections.protocol", Reason: "empty_client_id_persistent",
			Code:   mqttwaf.CodeClientIDNotValid,
			Detail: "an MQTT 3.1.1 client with an empty client ID must ask for a clean session: set a client ID, or clean session"}
		w.Record(mqttwaf.StageConnect, &c.client, "", "", "", 0, v)
		_ = c.writeClient(refusal(c.ver, v))
		return false
	}
	// The client-ID claim Connect took (sessions.takeover) goes once the
	// broker has answered, or failed to: whatever happens next.
	c.admitted = c.client
	defer func() {
		if c.ready.Load() {
			w.Established(&c.admitted)
			return
		}
		// The broker refused the CONNECT or could not be reached: no
		// session, so no owner to record (and none to forget later).
		w.Abandoned(&c.admitted)
		c.admitted.ID = ""
	}()
	// The CONNECT the broker gets: the WAF's keep alive, session expiry and
	// will; no topic aliases towards the proxy.
	up := cp
	expiry := c.conn.SessionExpiry
	if c.translated() {
		expiry = upgradeConnect(&up, uint32(w.Broker().MaxSessionExpiry.D()/time.Second))
	}
	switch {
	case c.upVer == mqttwaf.MQTT5:
		c.keep = time.Duration(expiry) * time.Second
	case !cp.clean:
		c.keep = w.Broker().MaxSessionExpiry.D()
	}
	switch {
	case c.conn.Will == nil:
		up.will, up.willQoS, up.willRetain = false, 0, false
	case c.conn.Will != will:
		up.willPayload = c.conn.Will.Payload
		up.willProps = withUser(cp.willProps, c.conn.Will.Props.User)
	}
	keepalive := c.conn.Keepalive
	if c.upVer == mqttwaf.MQTT5 {
		if c.ver == mqttwaf.MQTT5 {
			up.keepalive = keepalive // the client is told in the CONNACK (server keep alive)
		}
		up.props = without(up.props, propTopicAliasMax, propSessionExpiry, propMaximumPacketSize)
		// The broker must not send what the validator would refuse on the
		// way back: at most broker.max_packet_size, or less if the client
		// asked for less.
		most := uint32(c.lim().MaxPacketSize)
		if v, ok := findProp(cp.props, propMaximumPacketSize); ok && (most == 0 || propU32(v) < most) {
			most = propU32(v)
		}
		if most > 0 {
			up.props = append(up.props, prop{propMaximumPacketSize, appendU32(nil, most)})
		}
		if expiry != 0 {
			up.props = append(up.props, prop{propSessionExpiry, appendU32(nil, expiry)})
		}
	}
	if c.p.opts.Identity.Mode == IdentityService {
		ident := c.p.opts.Identity
		up.hasUser, up.username = true, ident.Username
		up.hasPass, up.password = ident.Password != "", []byte(ident.Password)
		if c.upVer == mqttwaf.MQTT5 {
			up.props = append(without(up.props, propUser), prop{propUser,
				appendString(appendString(nil, ident.UserProperty), c.client.Username)})
		}
	}
	if !c.dial(deadline) {
		return false
	}
	if _, err := c.up.Write(up.encode()); err != nil {
		c.upstreamDown(err)
		return false
	}
	ur := frame.NewReader(c.up, frame.FromServer, c.lim())
	ur.SetVersion(c.upVer)
	pkt, err = ur.Next()
	if err == nil && pkt[0]>>4 != frame.TypeConnack {
		err = errors.New("the broker answered CONNECT with " + mqttwaf.PacketName(pkt[0]>>4) +
			" (enhanced authentication, which the firewall refuses; in detection_only the CONNECT reached the broker)")
	}
	var ca connack
	if err == nil {
		ca, err = decodeConnack(c.upVer, pkt)
	}
	if err != nil {
		c.upstreamDown(err)
		return false
	}
	if ca.code != 0 {
		switch {
		case c.translated():
			pkt, _ = downgrade(c.ver, pkt)
		case hasProp(ca.props, propServerReference):
			ca.props = without(ca.props, propServerReference)
			pkt = ca.encode(c.ver)
		}
		_ = c.writeClient(pkt) // the broker's own refusal, as it sent it
		return false
	}
	c.brokerLimits(ca.props)
	if v, ok := findProp(ca.props, propAssignedID); ok {
		c.client.ID = string(propBinary(v))
	}
	rewrite := false
	// The client's topic aliases are resolved here and never reach the
	// broker, so the proxy grants them itself, whatever the broker allows
	// (mosquitto 10 by default, EMQX 65535, none where a broker is set so):
	// up to broker.topic_alias_maximum, which bounds what they cost the
	// proxy.
	if most := c.p.waf.Broker().TopicAliasMaximum; c.ver == mqttwaf.MQTT5 {
		c.aliasMax = uint16(min(most, 65535))
		if v, ok := findProp(ca.props, propTopicAliasMax); !ok && most > 0 || ok && propU16(v) != c.aliasMax {
			ca.props = without(ca.props, propTopicAliasMax)
			if most > 0 {
				ca.props = append(ca.props, prop{propTopicAliasMax, appendU16(nil, c.aliasMax)})
			}
			rewrite = true
		}
	}
	if hasProp(ca.props, propServerReference) {
		ca.props = without(ca.props, propServerReference) // see withoutServerReference
		rewrite = true
	}
	if v, ok := findProp(ca.props, propServerKeepAlive); ok && c.translated() {
		// A 3.1.1 client cannot be told the broker's keep alive: the
		// proxy keeps the upstream connection alive for it (pinger).
		if ska := propU16(v); ska > 0 && (cp.keepalive == 0 || ska < cp.keepalive) {
			c.upPing = time.Duration(ska) * time.Second / 2
		}
	} else if ok {
		keepalive = propU16(v)
	} else if c.ver == mqttwaf.MQTT5 && keepalive != cp.keepalive {
		ca.props = append(ca.props, prop{propServerKeepAlive, appendU16(nil, keepalive)})
		rewrite = true
	}
	switch {
	case c.translated():
		ca.props = nil
		pkt = ca.encode(c.ver)
	case rewrite:
		pkt = ca.encode(c.ver)
	}
	if keepalive > 0 {
		c.keepalive = time.Duration(keepalive) * 1500 * time.Millisecond
	}
	c.upReader = ur
	c.clientReader = rd
	_ = c.raw.SetDeadline(time.Time{})
	_ = c.up.SetDeadline(time.Time{})
	if c.client.ID != "" {
		c.p.established(c)
	}
	c.ready.Store(true)
	return c.writeClient(pkt) == nil
}

// dial connects to the broker by the CONNECT deadline. A broker that
// cannot be reached gets the client a CONNACK 0x88 (server unavailable;
// 3.1.1: 0x03), never a hang.
func (c *conn) dial(deadline time.Time) bool {
	d := net.Dialer{Timeout: upstreamTimeout, Deadline: deadline}
	var err error
	if c.p.opts.UpstreamTLS != nil {
		td := tls.Dialer{NetDialer: &d, Config: c.p.opts.UpstreamTLS}
		c.up, err = td.Dial("tcp", c.p.opts.Upstream)
	} else {
		c.up, err = d.Dial("tcp", c.p.opts.Upstream)
	}
	if err != nil {
		c.upstreamDown(err)
		return false
	}
	c.toUp = &outBuf{conn: c.up}
	if deadline.IsZero() {
		deadline = time.Now().Add(upstreamTimeout)
	}
	_ = c.up.SetDeadline(deadline)
	return true
}

// upstreamDown refuses the client because the broker failed it before the
// CONNACK, and records why.
func (c *conn) upstreamDown(err error) {
	v := mqttwaf.Verdict{Action: mqttwaf.Reject, Rule: "proxy.upstream", Reason: "upstream_unavailable",
		Code: mqttwaf.CodeServerUnavailable,
		Detail: "the upstream broker " + c.p.opts.Upstream + " did not accept the connection: " + err.Error() +
			"; check that it runs and that -upstream names it"}
	c.p.waf.Record(mqttwaf.StageConnect, &c.client, "", "", "", 0, v)
	_ = c.writeClient(refusal(c.ver, v))
}

// recordEarly reports a socket that failed before its CONNECT was read, as
// the hooks listener does.
func (c *conn) recordEarly(err error) {
	w, id := c.p.waf, c.p.opts.ListenerID
	if v, ok := mqttwaf.FrameVerdict(err); ok {
		w.Record(mqttwaf.StageAccept, nil, id, c.remote, "", 0, v)
		return
	}
	v := mqttwaf.Verdict{Action: mqttwaf.Disconnect, Rule: "connections.protocol", Reason: "malformed_connect",
		Code: mqttwaf.CodeMalformedPacket, Detail: err.Error()}
	var re tls.RecordHeaderError
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		v.Rule, v.Reason, v.Code = "connections.connect_timeout", "connect_timeout", 0
		v.Limit = int64(w.ConnectTimeout(id) / time.Millisecond)
		v.Detail = "no complete CONNECT within the deadline (limit in ms)"
	case errors.As(err, &re) || isTLSAlert(err):
		v.Rule, v.Reason, v.Code = mqttwaf.RuleTLS, "tls_handshake_failed", 0
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed),
		errors.Is(err, os.ErrClosed) || isReset(err):
		return // port scanners and health checks, not an attack
	}
	w.Record(mqttwaf.StageAccept, nil, id, c.remote, "", 0, v)
}

func isTLSAlert(err error) bool {
	var a tls.AlertError
	return errors.As(err, &a)
}

func isReset(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe) && !oe.Timeout()
}

// writeClient writes one whole packet to the client now, with whatever
// relayed packets are queued before it.
func (c *conn) writeClient(pkt []byte) error {
	if c.toClient == nil {
		_, err := c.raw.Write(pkt)
		return err
	}
	return c.toClient.write(pkt, true)
}

// writeUp writes one whole packet to the broker now.
func (c *conn) writeUp(pkt []byte) error { return c.toUp.write(pkt, true) }

// relayClient and relayUp queue a relayed packet; the relay loop flushes
// when its reader has no whole packet ready (outBuf).
func (c *conn) relayClient(pkt []byte) error { return c.toClient.write(pkt, false) }

func (c *conn) relayUp(pkt []byte) error { return c.toUp.write(pkt, false) }

// writeTimeout bounds one write to either side: a peer that stops reading
// ends its connection instead of holding the other direction forever.
const writeTimeout = 30 * time.Second

// stalled records the disconnection of a client that stopped reading
// (broker.write_timeout), as the embedded broker does; the failed write
// then ends the connection.
func (c *conn) stalled(waiting int) {
	if !c.ready.Load() || c.byProxy.Swap(true) {
		return
	}
	timeout := c.p.waf.Broker().WriteTimeout.D()
	c.p.waf.Record(mqttwaf.StageBroker, &c.client, "", "", "", 0, mqttwaf.Verdict{Action: mqttwaf.Disconnect,
		Rule: "broker.write_timeout", Reason: "write_timeout", Code: mqttwaf.CodeKeepAliveTimeout,
		Value: int64(waiting), Limit: int64(timeout / time.Millisecond),
		Detail: "the client's socket took nothing for broker.write_timeout (limit, ms) with " +
			strconv.Itoa(waiting) + " bytes waiting (value): it stopped reading"})
	_ = c.raw.Close()
}

// shutDown ends the connection because the proxy closes: an MQTT 5 client
// is told (DISCONNECT 0x8B, server shutting down).
func (c *conn) shutDown() {
	c.closing.Store(true)
	if c.ready.Load() && c.ver == mqttwaf.MQTT5 {
		_ = c.writeClient(disconnect(c.ver, 0x8B))
	}
	_ = c.raw.Close()
}

// kick ends the connection for a verdict the WAF recorded: an MQTT 5
// client is told why.
func (c *conn) kick(code mqttwaf.ReasonCode) {
	c.byProxy.Store(true)
	if c.ver == mqttwaf.MQTT5 {
		_ = c.writeClient(disconnect(c.ver, byte(code.For(mqttwaf.InDisconnect))))
	}
	_ = c.raw.Close()
}

// protocolError ends a connection whose client broke a rule the proxy
// checks itself (topic aliases), and records it.
func (c *conn) protocolError(reason string, code mqttwaf.ReasonCode, detail string) {
	c.p.waf.Record(mqttwaf.StageConnect, &c.client, "", "", "", 0, mqttwaf.Verdict{Action: mqttwaf.Disconnect,
		Rule: "connections.protocol", Reason: reason, Code: code, Detail: detail})
	c.kick(code)
}

// endUpstream ends the upstream connection once the client is gone. A
// client that vanished without DISCONNECT makes the broker publish its
// will; the will is checked again first (the policy may have been reloaded
// since CONNECT) and, if it is now refused or rewritten, the proxy ends
// the session with a normal DISCONNECT so the broker discards it.
func (c *conn) endUpstream() {
	if c.clientEOF.Load() {
		return // the client's DISCONNECT went upstream as it was
	}
	if c.closing.Load() || c.conn.Will == nil {
		_ = c.up.Close()
		return
	}
	will := c.conn.Will
	check := mqttwaf.Connect{Client: &c.client, Will: will}
	if v := c.p.waf.CheckWill(&check); v.Blocked() || check.Will == nil ||
		!bytes.Equal(check.Will.Payload, will.Payload) {
		_ = c.writeUp(disconnect(c.upVer, 0))
	}
	_ = c.up.Close()
}

// translated reports whether the proxy translates between a 3.1.x client
// and an MQTT 5 upstream connection (translate.go).
func (c *conn) translated() bool { return c.upVer != c.ver }

// brokerLimits notes what the broker's CONNACK properties forbid (MQTT 5
// section 3.2.2.3): publishes above its Maximum QoS, or retained when
// Retain Available is 0, would make the broker disconnect; the proxy
// refuses them itself, with an event (relay.go: beyondBroker).
func (c *conn) brokerLimits(ps []prop) {
	if v, ok := findProp(ps, propMaximumPacketSize); ok {
		c.brokerMaxPacket = int(propU32(v))
	}
	c.sendQuota = 65535 // MQTT 5 section 3.2.2.3.3: absent means 65,535
	if v, ok := findProp(ps, propReceiveMaximum); ok && propU16(v) > 0 {
		c.sendQuota = int(propU16(v))
	}
	c.maxQoS = 2
	if v, ok := findProp(ps, propMaximumQoS); ok && len(v) == 1 && v[0] < 2 {
		c.maxQoS = v[0]
	}
	if v, ok := findProp(ps, propRetainAvailable); ok && len(v) == 1 {
		c.noRetain = v[0] == 0
	}
}

// pinger sends PINGREQ upstream whenever nothing went to the broker for
// upPing, until stop: the broker's keep alive is shorter than the one a
// translated 3.1.1 client pings at.
func (c *conn) pinger(stop <-chan struct{}) {
	t := time.NewTicker(c.upPing / 2)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			if time.Since(c.toUp.lastSent()) < c.upPing {
				continue
			}
			c.pings.Add(1)
			if c.writeUp([]byte{frame.TypePingreq << 4, 0}) != nil {
				return
			}
		}
	}
}
