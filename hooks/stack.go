package hooks

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/mqttwaf/mqttwaf/mqttwaf"
)

// stack is what the mqttwaf hooks on one mochi server share: the WAF they
// run (one engine, one mode, one event stream, one set of counters, one
// reload), the WAF's view of every admitted client, and the mapping of
// verdicts to the mochi results that really stop a packet. mochi fails open
// (a hook error on OnPublish publishes the original message; auth and ACL
// hooks are OR-ed), so every mapping here is explicit; see the package
// documentation for the table.
//
// Its first hook (the leader) answers the callbacks that happen once per
// packet (CONNECT, SUBSCRIBE, deliveries, wills, encoding); every hook runs
// its own protection's publish rules in OnPublish, in the order the hooks
// were added; the Identity hook is the server's authentication and ACL
// provider.
type stack struct {
	waf      *mqttwaf.WAF
	server   *mqtt.Server // nil in a hand-built stack without Identity or Hardening
	sessions sessions
	// handover orders session takeovers and clean-session clean-ups of one
	// client ID (handover.go).
	handover handover

	mu      sync.Mutex
	members []*member
	layers  []mqttwaf.Layer
	fixed   bool // built by Install from a policy: no hook can be added by hand
	sealed  bool // its WAF was handed out: no hook can be added
	started atomic.Bool
	build   stackBuild // what the hooks' options say beside their protections

	identity *member   // the Identity hook, if stacked
	wrap     mqtt.Hook // the application's auth hook Identity wraps, or nil

	// hooksSeen is how many hooks the server had when the stack last checked
	// that none of them decides authentication or ACL beside Identity; broken
	// is set when one does, and from then on every connection and publish is
	// refused.
	hooks     *mqtt.Hooks
	hooksSeen atomic.Int64
	broken    atomic.Bool

	// exhausted and unattributed count the in-flight drops mochi counts
	// in Info.InflightDropped that were reported from OnPacketIDExhausted
	// and from OnSysInfoTick (see queue.go).
	exhausted    atomic.Int64
	unattributed atomic.Int64
}

// bind points the stack at the server: its hooks are watched from now on
// (when Identity is stacked) and its sessions looked up for takeovers.
func (h *stack) bind(server *mqtt.Server) error {
	if server == nil || h.server == server {
		return nil
	}
	if h.server != nil {
		return errors.New("hooks: two hooks of one stack name different servers in Options.Server")
	}
	hs := serverHooks(server)
	if hs == nil {
		return errors.New("hooks: cannot read the server's hooks, so the WAF cannot check that no other hook overrides it; this mochi version is not supported")
	}
	h.server, h.hooks = server, hs
	h.hooksSeen.Store(hs.Len())
	h.sessions.held = func(cl *mqtt.Client) bool {
		cur, ok := server.Clients.Get(cl.ID)
		return ok && cur == cl
	}
	return nil
}

// overridden reports whether a hook that decides authentication or ACL was
// added beside the WAF since the last check. If so the WAF no longer
// decides alone (mochi OR-s those hooks): it records the fact once, closes
// every connection and from then on refuses every CONNECT, publish and
// delivery. The check costs an atomic load unless the server's hook count
// changed. (The server is not closed: mochi's Close panics when called
// twice, and the embedding application will call it at shutdown.)
func (h *stack) overridden() bool {
	if h.broken.Load() {
		return true
	}
	if h.identity == nil || h.hooks == nil {
		return false // the application's own auth hook decides, by design
	}
	n := h.hooks.Len()
	if n == h.hooksSeen.Load() {
		return false
	}
	ids := foreignAuthHooks(h.server)
	if len(ids) == 0 {
		h.hooksSeen.Store(n)
		return false
	}
	if h.broken.Swap(true) {
		return true
	}
	h.waf.Record(mqttwaf.StageBroker, nil, "", "", "", 0, mqttwaf.Verdict{
		Action: mqttwaf.Disconnect, Rule: "hooks.install", Reason: "foreign_auth_hook",
		Detail: fmt.Sprintf("hooks %v also decide authentication or ACL; mochi OR-s them, so the WAF would be bypassed: every client is refused until they are removed and the broker restarted", ids),
	})
	go func() {
		for _, cl := range h.server.Clients.GetAll() {
			if !cl.Net.Inline && !cl.Closed() {
				h.disconnect(cl, mqttwaf.CodeImplementationSpecific, "foreign_auth_hook")
			}
		}
	}()
	return true
}

func foreignHooksError(ids []string) error {
	return fmt.Errorf("hooks: the server already has authentication/ACL hooks %v; mochi OR-s them, so the WAF's identity and ACL would deny nothing: remove them, or keep your authentication by wrapping it (hooks.IdentityOptions{Wrap: yourHook}) so the WAF's decisions are ANDed with its", ids)
}

// OnStarted closes the stack to new hooks and re-checks, now that every
// hook is added, that no other hook can allow what the WAF denies. If one
// can, every client is refused: a WAF that another hook overrides protects
// nothing.
func (h *stack) OnStarted() {
	h.started.Store(true)
	h.overridden()
}

// OnConnect runs the WAF's connect stage. A refusal is sent as a CONNACK
// with the verdict's reason code (mapped to a 3.1.1 return code for older
// clients) before mochi closes the socket.
func (h *stack) OnConnect(cl *mqtt.Client, pk packets.Packet) (err error) {
	defer func() {
		if r := recover(); r != nil {
			h.panicked(cl, mqttwaf.StageConnect, r)
			err = packets.ErrServerUnavailable
		}
	}()
	if h.overridden() {
		code := connackCode(cl, mqttwaf.Verdict{Reason: "foreign_auth_hook", Code: mqttwaf.CodeServerUnavailable})
		_ = cl.WritePacket(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connack}, ReasonCode: code.Code})
		return code
	}
	s := &session{client: newClient(cl)}
	if g := findGuard(cl.Net.Conn); g != nil {
		g.connected.Store(true)
		end := func(reason string, record func(*mqttwaf.Client)) { h.forgetPanicked(cl, reason, record) }
		g.onPanic.Store(&end)
		g.client.Store(cl)
		closed := func(v mqttwaf.Verdict) {
			s.closedByWAF.Store(true)
			h.waf.Record(mqttwaf.StageBroker, h.sessions.clientOf(cl), "", "", "", 0, v)
		}
		g.onWAFClose.Store(&closed)
		drop := func(topic string, size int, limit int64) { h.dropped(cl, topic, size, dropUnsentBytes, limit) }
		g.onDrop.Store(&drop)
		g.armWrites()
		if pg := gateOf(cl); pg != nil && cl.Properties.ProtocolVersion == 5 && cl.Properties.Props.ReceiveMaximum > 0 {
			pg.window.Store(newSendWindow(int(cl.Properties.Props.ReceiveMaximum)))
			disableMochiQuota(cl)
		}
	}
	conn := mqttwaf.Connect{
		Client:         &s.client,
		Clean:          pk.Connect.Clean,
		Keepalive:      pk.Connect.Keepalive,
		SessionExpiry:  pk.Properties.SessionExpiryInterval,
		UsernameSet:    pk.Connect.UsernameFlag,
		Password:       pk.Connect.Password,
		UserProperties: userProps(pk.Properties.User),
		AuthMethod:     pk.Properties.AuthenticationMethod,
	}
	conn.Session, s.replaces = h.existingSession(cl.ID)
	if h.wrap != nil {
		// The application's own authentication, asked where the WAF would
		// check a password: after bans, lockouts and connect rates.
		conn.Authenticate = func() bool { return h.wrap.OnConnectAuthenticate(cl, pk) }
	}
	if cl.Properties.Will.Flag == 1 {
		w := cl.Properties.Will
		conn.Will = &mqttwaf.Message{Topic: w.TopicName, QoS: w.Qos, Retain: w.Retain, Payload: w.Payload,
			Props: mqttwaf.Properties{User: userProps(w.User)}}
	}
	will := conn.Will
	v := h.waf.Connect(&conn)
	if v.Blocked() {
		code := connackCode(cl, v)
		_ = cl.WritePacket(packets.Packet{
			FixedHeader: packets.FixedHeader{Type: packets.Connack},
			ReasonCode:  code.Code,
			Properties:  packets.Properties{ReasonString: code.Reason},
		})
		return code
	}
	if conn.Keepalive != pk.Connect.Keepalive {
		cl.State.Keepalive = conn.Keepalive
		cl.State.ServerKeepalive = true // MQTT 5 clients are told (Server Keep Alive)
	}
	switch {
	case conn.Will == nil && will != nil:
		cl.Properties.Will = mqtt.Will{} // Flag 0: never sent
	case conn.Will != will:
		cl.Properties.Will.Payload = conn.Will.Payload
		cl.Properties.Will.User = mochiProps(conn.Will.Props.User)
	}
	// No topic aliases towards this client: every outbound PUBLISH carries
	// its topic, which per-subscriber views need (and mochi can reorder an
	// alias's first use behind its later uses when several publishers
	// deliver to one subscriber at once).
	cl.Properties.Props.TopicAliasMaximum = 0
	cl.State.TopicAliases.Outbound = mqtt.NewOutboundTopicAliases(0)
	// mochi keeps the session under this name after the connection ends;
	// make it the authenticated identity (a certificate's, say), so the
	// session's owner is known later.
	cl.Properties.Username = []byte(s.client.Username)
	h.sessions.add(cl, s)
	return nil
}

// existingSession describes the session mochi holds for a client ID, and
// returns its client.
func (h *stack) existingSession(id string) (*mqttwaf.SessionInfo, *mqtt.Client) {
	if h.server == nil { // a stack without Identity or Hardening: no takeover check
		return nil, nil
	}
	old, ok := h.server.Clients.Get(id)
	if !ok {
		return nil, nil
	}
	owner := string(old.Properties.Username)
	if s := h.sessions.get(old); s != nil {
		owner = s.client.Username
	}
	return &mqttwaf.SessionInfo{Owner: owner, Connected: !old.Closed()}, old
}

// forgetPanicked does for a client whose connection goroutine panicked what
// mochi does when a connection ends (its own clean-up never ran): it stops
// the client and, unless the session persists, removes its subscriptions,
// in-flight messages and the client itself, so no delivery queues up for a
// dead connection. record reports the panic first, with the WAF's view of
// the client.
func (h *stack) forgetPanicked(cl *mqtt.Client, reason string, record func(*mqttwaf.Client)) {
	record(h.sessions.clientOf(cl))
	err := fmt.Errorf("connection goroutine panicked: %s", reason)
	cl.Stop(err)
	expire := (cl.Properties.ProtocolVersion == 5 && cl.Properties.Props.SessionExpiryInterval == 0) ||
		(cl.Properties.ProtocolVersion < 5 && cl.Properties.Clean)
	if s := h.sessions.get(cl); s != nil {
		s.closedByWAF.Store(true) // recorded by the listener
	}
	h.OnDisconnect(cl, err, expire)
	if h.server == nil {
		return
	}
	if cur, ok := h.server.Clients.Get(cl.ID); ok && cur == cl && expire && !cl.IsTakenOver() {
		cl.ClearInflights()
		h.server.UnsubscribeClient(cl)
		h.server.Clients.Delete(cl.ID)
	}
}

// OnConnectAuthenticate allows exactly the clients OnConnect admitted.
func (h *stack) OnConnectAuthenticate(cl *mqtt.Client, _ packets.Packet) bool {
	return h.sessions.get(cl) != nil && !cl.Closed() && !h.broken.Load()
}

// OnSessionEstablish holds the client ID while mochi takes over its old
// session (see handover).
func (h *stack) OnSessionEstablish(cl *mqtt.Client, _ packets.Packet) {
	if s := h.sessions.get(cl); s != nil && h.server != nil {
		s.handoverDone = h.handover.acquire(cl.ID)
	}
}

// OnSessionEstablished releases the client-ID claim taken at CONNECT and
// forgets the session this one took over.
func (h *stack) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	if s := h.sessions.get(cl); s != nil {
		if s.handoverDone != nil {
			s.handoverDone()
			s.handoverDone = nil
		}
		h.waf.Established(&s.client)
		if cl.State.Inflight.Len() > 0 { // messages inherited from the session taken over
			s.queue.bytes.Store(heldBytes(cl))
		}
		if s.replaces != nil && s.replaces != cl {
			h.sessions.remove(s.replaces)
			s.replaces = nil
		}
	}
}

// OnClientExpired reports the messages a persistent session mochi expired
// still held, and forgets the session.
func (h *stack) OnClientExpired(cl *mqtt.Client) {
	h.expiredSession(cl)
	h.sessions.remove(cl)
}

// OnDisconnect forgets a connection whose session ends with it (a
// persistent session is kept until mochi expires it or it is taken over),
// and reports packets mochi refused for their size after CONNECT (it closes
// the socket without telling the hooks why otherwise).
func (h *stack) OnDisconnect(cl *mqtt.Client, err error, expire bool) {
	s := h.sessions.get(cl)
	if expire {
		h.sessions.remove(cl)
		if h.server != nil && !cl.IsTakenOver() {
			h.handover.ending(h.server, cl)
		}
	}
	if s == nil {
		return
	}
	// The session's owner record (state.backend redis) lives as long as
	// the session: none when it ends now, else its expiry (the WAF bounds
	// it by broker.max_session_expiry; 3.1.1 sessions last that long).
	var keep time.Duration
	switch {
	case expire:
	case cl.Properties.ProtocolVersion == 5:
		keep = time.Duration(cl.Properties.Props.SessionExpiryInterval) * time.Second
	default:
		keep = h.waf.Broker().MaxSessionExpiry.D()
	}
	h.waf.Disconnected(&s.client, keep)
	var code packets.Code
	if v, ok := mqttwaf.FrameVerdict(err); ok {
		// The frame validator refused a packet (and told an MQTT 5
		// client with a DISCONNECT); mochi only saw its read fail.
		h.waf.Record(mqttwaf.StageConnect, &s.client, "", "", "", 0, v)
		return
	}
	switch {
	case errors.Is(err, packets.ErrPacketTooLarge):
		h.waf.Record(mqttwaf.StageConnect, &s.client, "", "", "", 0, mqttwaf.Verdict{
			Action: mqttwaf.Disconnect, Rule: "connections.max_packet_size", Reason: "packet_too_large",
			Code: mqttwaf.CodePacketTooLarge, Limit: int64(h.waf.Broker().MaxPacketSize),
		})
	case errors.As(err, &code) && code.Code >= packets.ErrUnspecifiedError.Code && !s.closedByWAF.Load():
		// mochi refused a packet itself (a malformed packet, a topic alias
		// over the maximum, a protocol violation) and closed the connection.
		h.waf.Record(mqttwaf.StageConnect, &s.client, "", "", "", 0, mqttwaf.Verdict{
			Action: mqttwaf.Disconnect, Rule: "connections.protocol", Reason: code.Reason,
			Code: mqttwaf.ReasonCode(code.Code),
		})
	}
}

// OnPacketRead stops a PUBLISH whose topic breaks the topic limits from
// registering a topic alias: mochi stores the alias before any publish hook
// runs, so without this a client could pin topic_alias_maximum oversized
// topics in memory. The publish itself is then refused in OnPublish.
//
// It also uncounts a delivery the subscriber acknowledges (PUBACK, PUBREC),
// while mochi still holds it and its size can be read.
func (h *stack) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	switch pk.FixedHeader.Type {
	case packets.Publish:
		if pk.Properties.TopicAliasFlag && len(pk.TopicName) > h.waf.Limits().Topic.MaxLength {
			pk.Properties.TopicAliasFlag = false
			pk.Properties.TopicAlias = 0
		}
	case packets.Puback, packets.Pubrec, packets.Pubcomp:
		if pk.FixedHeader.Type != packets.Pubcomp {
			h.released(cl, &pk)
		}
		if endsDelivery(&pk) {
			if pg := gateOf(cl); pg != nil {
				pg.acked(pk.PacketID)
			}
		}
	}
	return pk, nil
}

// OnACLCheck: writes are decided in OnPublish, on the resolved topic (MQTT
// 5 topic aliases reach this hook as ""); reads run the deliver stage once
// per message per subscriber, and refuse the filters OnSubscribe marked.
func (h *stack) OnACLCheck(cl *mqtt.Client, topic string, write bool) (ok bool) {
	defer func() {
		if r := recover(); r != nil {
			h.panicked(cl, mqttwaf.StageDeliver, r)
			ok = false
		}
	}()
	if cl.Net.Inline {
		return true // the embedding application itself
	}
	if topic == deniedFilter || h.overridden() {
		return false
	}
	if write {
		ok = h.sessions.get(cl) != nil
	} else {
		// mochi asks about each filter of a SUBSCRIBE here too, after
		// OnSubscribe admitted it; Deliver reads a shared subscription's
		// filter without its "$share/<group>/" prefix.
		s := h.sessions.get(cl)
		if s == nil {
			ok = !h.waf.Deliver(h.sessions.clientOf(cl), topic).Blocked()
		} else {
			ok = !h.waf.Deliver(&s.client, topic).Blocked() && h.admitDelivery(cl, s, topic)
		}
	}
	// A wrapped auth hook's ACL is ANDed with the WAF's.
	return ok && (h.wrap == nil || h.wrap.OnACLCheck(cl, topic, write))
}

// publish runs one protection's publish rules (m's) and maps the verdict;
// see the package documentation for the table. The last hook of the stack
// also runs the custom rules.
func (h *stack) publish(m *member, cl *mqtt.Client, pk packets.Packet) (res packets.Packet, err error) {
	defer func() {
		if r := recover(); r != nil {
			h.panicked(cl, mqttwaf.StagePublish, r)
			res, err = pk, packets.ErrRejectPacket
		}
	}()
	if cl.Net.Inline {
		return pk, nil
	}
	if h.overridden() { // another hook overrides the WAF's ACL: nothing passes
		return pk, packets.ErrRejectPacket
	}
	s := h.sessions.get(cl)
	if s == nil { // cannot happen for a client OnConnect admitted: fail closed
		h.disconnect(cl, mqttwaf.CodeNotAuthorized, "unknown client")
		return pk, packets.ErrRejectPacket
	}
	if h.fixed { // Install's hooks follow each other: the leader runs every layer (see member.Provides)
		return h.publishLayer(s, "", true, cl, pk)
	}
	if pk, err = h.publishLayer(s, m.prot, false, cl, pk); err != nil || !m.last {
		return pk, err
	}
	return h.publishLayer(s, "", false, cl, pk)
}

// publishLayer runs the publish rules of protection pr (the custom rules
// if ""), or of every layer and then the custom rules if all, and maps the
// verdict.
func (h *stack) publishLayer(s *session, pr mqttwaf.Protection, all bool, cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	msg := messageOf(pk)
	var v mqttwaf.Verdict
	var out *mqttwaf.Message
	if all {
		v, out = h.waf.PublishLayers(&s.client, &msg)
	} else {
		v, out = h.waf.PublishLayer(pr, &s.client, &msg)
	}
	if !v.Blocked() {
		if out != nil {
			pk.Payload = out.Payload
			pk.Properties.User = mochiProps(out.Props.User)
		}
		return pk, nil
	}
	return pk, h.refusePublish(cl, pk, v)
}

// messageOf is the WAF's view of a PUBLISH.
func messageOf(pk packets.Packet) mqttwaf.Message {
	return mqttwaf.Message{
		Topic: pk.TopicName, QoS: pk.FixedHeader.Qos, Retain: pk.FixedHeader.Retain, Payload: pk.Payload,
		Props: mqttwaf.Properties{
			PayloadFormat: pk.Properties.PayloadFormat, PayloadFormatSet: pk.Properties.PayloadFormatFlag,
			ContentType: pk.Properties.ContentType, ResponseTopic: pk.Properties.ResponseTopic,
			CorrelationData: pk.Properties.CorrelationData, MessageExpiry: pk.Properties.MessageExpiryInterval,
			TopicAlias: pk.Properties.TopicAlias, User: userProps(pk.Properties.User),
		},
	}
}

// refusePublish returns the error that makes mochi stop pk as v says.
func (h *stack) refusePublish(cl *mqtt.Client, pk packets.Packet, v mqttwaf.Verdict) error {
	qos := pk.FixedHeader.Qos
	switch v.Action {
	case mqttwaf.Disconnect, mqttwaf.Ban:
		h.disconnect(cl, v.Code, v.Reason)
		return packets.ErrRejectPacket
	case mqttwaf.Reject:
		if cl.Properties.ProtocolVersion == 5 && qos > 0 {
			code := packets.Code{Code: byte(v.Code.For(mqttwaf.InPuback)), Reason: v.Reason}
			if qos == 1 {
				return code // mochi answers with a PUBACK carrying code
			}
			// For QoS 2 mochi would answer with a PUBACK, which the client
			// does not expect; send the PUBREC that ends the exchange.
			_ = cl.WritePacket(packets.Packet{
				FixedHeader: packets.FixedHeader{Type: packets.Pubrec},
				PacketID:    pk.PacketID, ReasonCode: code.Code,
				Properties: packets.Properties{ReasonString: code.Reason},
			})
			return packets.ErrRejectPacket
		}
		if qos > 0 && h.waf.Responses().MQTT311Publish == "disconnect" {
			h.disconnect(cl, v.Code, v.Reason)
			return packets.ErrRejectPacket
		}
	}
	// Drop, and Reject where the client cannot be told.
	if qos == 0 {
		return packets.ErrRejectPacket // nothing to acknowledge
	}
	return packets.CodeSuccessIgnore // acknowledged, neither delivered nor retained
}

// disconnect closes cl, telling MQTT 5 clients why.
func (h *stack) disconnect(cl *mqtt.Client, code mqttwaf.ReasonCode, reason string) {
	c := packets.Code{Code: byte(code.For(mqttwaf.InDisconnect)), Reason: reason}
	if s := h.sessions.get(cl); s != nil {
		s.closedByWAF.Store(true) // the decision is already recorded
	}
	if cl.Properties.ProtocolVersion == 5 {
		_ = cl.WritePacket(packets.Packet{
			FixedHeader: packets.FixedHeader{Type: packets.Disconnect},
			ReasonCode:  c.Code,
			Properties:  packets.Properties{ReasonString: c.Reason},
		})
	}
	cl.Stop(c)
}

// OnWill re-checks the Last Will against the policy in force when it is
// sent (it was checked at CONNECT, but the policy may have been reloaded
// since). mochi cannot veto a will, so a refused will is redirected to a
// reserved topic no client may subscribe to, and not retained.
func (h *stack) OnWill(cl *mqtt.Client, will mqtt.Will) (out mqtt.Will, err error) {
	defer func() {
		if r := recover(); r != nil {
			h.panicked(nil, mqttwaf.StageConnect, r)
			out, err = mqtt.Will{TopicName: mqttwaf.ReservedPrefix + "discarded-will", Flag: will.Flag}, nil
		}
	}()
	m := &mqttwaf.Message{Topic: will.TopicName, QoS: will.Qos, Retain: will.Retain, Payload: will.Payload,
		Props: mqttwaf.Properties{User: userProps(will.User)}}
	conn := mqttwaf.Connect{Client: h.sessions.clientOf(cl), Will: m}
	if v := h.waf.CheckWill(&conn); v.Blocked() || conn.Will == nil {
		return mqtt.Will{TopicName: mqttwaf.ReservedPrefix + "discarded-will", Flag: will.Flag}, nil
	}
	if conn.Will != m { // rewritten (payload normalised, identity stamped)
		will.Payload = conn.Will.Payload
		will.User = mochiProps(conn.Will.Props.User)
	}
	return will, nil
}

// OnRetainMessage keeps the WAF's retained budgets in step with mochi's
// retained store (a message retained, replaced or deleted).
func (h *stack) OnRetainMessage(cl *mqtt.Client, pk packets.Packet, _ int64) {
	var c *mqttwaf.Client
	if cl != nil && !cl.Net.Inline {
		c = h.sessions.clientOf(cl)
	}
	size := 0 // an empty payload deletes the retained message
	if len(pk.Payload) > 0 {
		m := messageOf(pk)
		size = m.Size()
	}
	h.waf.Retained(c, pk.TopicName, size)
}

// OnRetainedExpired forgets a retained message mochi expired.
func (h *stack) OnRetainedExpired(topic string) { h.waf.Retained(nil, topic, 0) }

// panicked reports a panic inside the WAF and stops the client: a bug in a
// rule (a custom one, say) must not let traffic through, nor take the broker
// down with it. The caller turns the panic into a refusal.
func (h *stack) panicked(cl *mqtt.Client, stage mqttwaf.Stage, r any) {
	var c *mqttwaf.Client
	if cl != nil {
		c = h.sessions.clientOf(cl)
	}
	h.waf.Record(stage, c, "", "", "", 0, mqttwaf.Verdict{Action: mqttwaf.Disconnect, Rule: "mqttwaf.panic",
		Reason: "internal_error", Code: mqttwaf.CodeImplementationSpecific, Detail: fmt.Sprint(r)})
	if cl != nil {
		h.disconnect(cl, mqttwaf.CodeImplementationSpecific, "internal_error")
	}
}
