package mqttwaf

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/mqttwaf/mqttwaf/ratelimit"
)

// WAF is a running firewall: a compiled policy plus the state that outlives
// it (open-connection counts, counters, session claims). Adapters such as
// the hooks package call its stage methods for every socket, CONNECT,
// SUBSCRIBE filter, PUBLISH and delivery.
//
// The compiled policy is immutable and swapped atomically by Reload, so a
// reload applies to connected clients at their next packet, without a
// restart. A WAF is safe for concurrent use. The zero value is not usable;
// create one with New or LoadFile.
type WAF struct {
	engine atomic.Pointer[engine]
	st     *state
	opts   Options
	mu     sync.Mutex // serialises Reload: compile and commit
	// layers are the stack's protections in its order, fixed for the
	// WAF's lifetime (a policy runs all of them, in Protections' order).
	layers []Protection
}

// Options are the parts of a WAF that are code, not policy.
type Options struct {
	// Sink receives events. Nil means the policy's events.log destination
	// as JSON lines (through Logger if set).
	Sink Sink
	// Logger, if set, is used by the default sink instead of a JSON handler
	// on stderr/stdout, for events.format json (slog's own keys are not
	// ECS's: events.format ecs writes to EventOutput or events.log).
	Logger *slog.Logger
	// EventOutput, if set, is where the default sink writes its JSON lines
	// (in events.format) instead of events.log's stderr or stdout; events.log
	// off still turns events off. Each event is one Write of one whole
	// line, but sinks of successive reloads may write concurrently: the
	// writer must be safe for concurrent use and keep each Write whole. A
	// slow or failing writer slows or fails nothing else only if it says so
	// itself (buffer, count errors): the sink does not look at the result.
	EventOutput io.Writer
	// Rules are custom rules, evaluated after the built-in ones in the
	// order given.
	Rules []Rule
	// Now is the clock (time.Now if nil); tests set it.
	Now func() time.Time
	// ViewKey keys the marker of stored redacted views (see ViewMessage):
	// a broker that keeps retained and queued messages across restarts
	// passes the same key (at least 32 random bytes, kept with its stored
	// messages) to every WAF it runs, so a message stored as its redacted
	// view is recognised after a restart instead of being redacted again (a
	// second pseudonym would no longer join the first). Empty: a random key
	// of this WAF, right for a broker that stores nothing.
	ViewKey []byte
	// LocalState runs the WAF on state in memory whatever the policy's
	// state section says (the section is still validated): for dry runs
	// and tools (wafcheck), which must neither spend nor change what
	// several running nodes share.
	LocalState bool
}

// New compiles p (nil means the default policy) into a WAF running every
// protection.
func New(p *Policy, o Options) (*WAF, error) {
	if p == nil {
		p = &Policy{}
	}
	return NewStack(policyLayers(p), o)
}

// NewStack builds a WAF that runs the protections of layers, in their
// order, each with its own settings; protections not listed do not run.
// It refuses a stack that cannot be safe (a payload checked before it is
// normalised, redacted before it is validated, a protection listed twice),
// saying why and what to do. The hooks package builds one from the hooks
// a developer adds to a mochi server; New builds one from a policy.
func NewStack(layers []Layer, o Options) (*WAF, error) {
	if err := checkStack(layers); err != nil {
		return nil, err
	}
	p, err := compose(layers)
	if err != nil {
		return nil, err
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if len(o.ViewKey) > 0 && len(o.ViewKey) < minViewKey {
		return nil, fmt.Errorf("mqttwaf: Options.ViewKey: %d bytes, want at least %d random bytes", len(o.ViewKey), minViewKey)
	}
	w := &WAF{st: &state{viewKey: viewKeyOr(o.ViewKey)}, opts: o}
	for _, l := range layers {
		w.layers = append(w.layers, l.Protection)
	}
	if err := p.Validate(); err != nil {
		return nil, errors.Join(errors.New("mqttwaf: invalid policy"), err)
	}
	full := p.WithDefaults()
	w.st.addrs = newAddressing(full.Addresses)
	lo, err := newLockouts(full.Identity.Lockout, w.st.addrs, o.Now)
	if err != nil {
		return nil, fmt.Errorf("mqttwaf: identity.lockout: %w", err)
	}
	w.st.lockouts = lo
	w.st.passwords = newPasswordChecker(o.Now)
	f := full.Rates.Flapping
	if w.st.bans, err = ratelimit.NewBanList(ratelimit.BanOptions{Duration: f.Ban.D(), MaxDuration: f.MaxBan.D(), MaxBans: f.MaxBanCount}); err != nil {
		return nil, fmt.Errorf("mqttwaf: rates.flapping: %w", err)
	}
	if err := w.openState(full); err != nil {
		return nil, fmt.Errorf("mqttwaf: %w", err)
	}
	if err := w.load(p); err != nil {
		_ = w.Stop()
		return nil, err
	}
	if w.st.shared != nil {
		w.st.shared.Start()
	}
	return w, nil
}

// LoadFile reads the policy at path and returns a WAF running it with
// default Options.
func LoadFile(path string) (*WAF, error) {
	p, err := ReadPolicyFile(path)
	if err != nil {
		return nil, err
	}
	return New(p, Options{})
}

// Reload validates and compiles p and swaps it in atomically. On error the
// running policy stays in force and nothing changes: compiling has no side
// effects, and state the new policy needs (fresh rate limiters for a changed
// rates section) replaces the running state only after the whole policy
// compiled, under the same lock as the swap. Broker capabilities (the
// broker section) are applied only when a server is created; they need a
// restart.
//
// In a stack built by NewStack, p's sections configure the protections the
// stack has; the stack itself (which protections, in which order) stays.
func (w *WAF) Reload(p *Policy) error {
	if p == nil {
		p = &Policy{}
	}
	var ls []Layer
	for _, pr := range w.layers {
		ls = append(ls, Layer{Protection: pr, Policy: p})
	}
	q, err := compose(ls)
	if err == nil {
		err = w.load(q)
	}
	if err != nil {
		w.st.reloadsFailed.Add(1)
		return err
	}
	w.st.reloadsOK.Add(1)
	return nil
}

// load validates and compiles the composed policy p and swaps it in.
func (w *WAF) load(p *Policy) error {
	q := p.clone()
	q.applyDefaults()
	if err := q.validate(); err != nil {
		return errors.Join(errors.New("mqttwaf: invalid policy"), err)
	}
	if err := w.st.addrs.checkUnchanged(q.Addresses); err != nil {
		return err
	}
	if err := w.st.checkStateUnchanged(q.State); err != nil {
		return err
	}
	out := &output{sink: w.opts.Sink, blocksOnly: q.Events.Level == "warn",
		lim: rate.NewLimiter(rate.Limit(q.Events.MaxPerSecond), 10*q.Events.MaxPerSecond)}
	if out.sink == nil {
		out.sink = defaultSink(q.Events, w.opts)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	e, rs, err := compile(q, w.layers, w.st, out, w.opts.Rules, w.opts.Now)
	if err != nil {
		return err
	}
	e.info = newPolicyInfo(q, w.opts.Now())
	w.st.commitRates(rs)
	w.engine.Store(e)
	w.st.passwords.prune(e.id.creds) // verified passwords of changed or removed credentials
	return nil
}

// defaultSink is the sink of the events section when Options has none:
// events.format on Options.EventOutput, through Options.Logger, or on
// events.log's stream, in that order.
func defaultSink(ev EventsPolicy, o Options) Sink {
	var out io.Writer
	switch {
	case o.EventOutput != nil:
		if ev.Log == "off" {
			return nil
		}
		out = o.EventOutput
	case o.Logger != nil && ev.Format != "ecs":
		return &LogSink{Logger: o.Logger}
	case ev.Log == "stdout":
		out = os.Stdout
	case ev.Log == "stderr":
		out = os.Stderr
	default:
		return nil
	}
	if ev.Format == "ecs" {
		return NewECSSink(out)
	}
	return &LogSink{Logger: slog.New(slog.NewJSONHandler(out, nil))}
}

// Policy returns a copy of the running policy with every default filled in.
func (w *WAF) Policy() *Policy { return w.engine.Load().policy.clone() }

// Bans is the ban list: flapping and escalation bans land here, and the
// CONNECT of anything on it is refused with 0x8A. Operators list, add and
// remove bans through it at run time. It lives in memory: a restart clears
// it unless it is saved and restored (ratelimit.SaveBans and RestoreBans;
// hooks.Storage does both). A reload keeps it;
// its ban durations are those of the policy the WAF started with.
//
// Removing a ban also forgives its target: its strikes (so a new offence
// starts again at the first ban length) and its flapping and escalation
// counts (so its next CONNECT is not banned again at once).
func (w *WAF) Bans() ratelimit.BanStore { return operatorBans{w.st.bans, w.st} }

// operatorBans is the ban list as operators see it.
type operatorBans struct {
	banStore
	st *state
}

func (b operatorBans) Remove(t ratelimit.Target) (bool, error) {
	ok, err := b.banStore.Remove(t)
	b.banStore.Forgive(t)
	b.st.forgiveBan(t)
	return ok, err
}

// Retained tells the WAF that c's message of size bytes (Message.Size: topic,
// payload and properties) is now retained on topic (size 0: the retained
// message was deleted), so the retained budgets (rates.retained) count it.
// Adapters call it when the broker stores it.
func (w *WAF) Retained(c *Client, topic string, size int) {
	owner := "broker"
	if c != nil {
		owner = c.limitKeys(w.st.addrs).identity
	}
	w.st.retained.set(owner, topic, size)
}

// Counters returns how many decisions each rule took, per action, sorted.
func (w *WAF) Counters() []Count { return w.st.counters.snapshot() }

// Rules lists the ids of the compiled rules in evaluation order.
func (w *WAF) Rules() []string { return w.engine.Load().ruleIDs() }

// Responses returns how refusals are expressed (the responses section).
func (w *WAF) Responses() ResponsesPolicy { return w.engine.Load().policy.Responses }

// Broker returns the running broker section.
func (w *WAF) Broker() BrokerPolicy { return w.engine.Load().policy.Broker }

// Provenance returns the running provenance section.
func (w *WAF) Provenance() ProvenancePolicy { return w.engine.Load().policy.Provenance }

// Limits returns the running limits section.
func (w *WAF) Limits() LimitsPolicy { return w.engine.Load().policy.Limits }

// ConnectTimeout is the CONNECT deadline of a listener.
func (w *WAF) ConnectTimeout(listener string) time.Duration {
	return w.engine.Load().policy.listener(listener).ConnectTimeout.D()
}

// Open runs the accept rules for a new socket from remoteAddr ("ip:port")
// and counts it as open. If the verdict blocks, the socket must be closed
// and is no longer counted; otherwise the caller must call Close(remoteAddr)
// exactly once when the socket closes.
func (w *WAF) Open(listener, remoteAddr string) Verdict {
	e := w.engine.Load()
	a := Accept{Listener: listener, RemoteAddr: remoteAddr, RemoteIP: ParseRemoteIP(remoteAddr)}
	network := w.st.addrs.network(a.RemoteIP)
	a.Open, a.OpenFromIP = w.st.conns.add(network)
	v := stage(e, StageAccept, e.accept, subject{listener: listener, ip: a.RemoteIP, addr: remoteAddr}, func(r AcceptRule) Verdict {
		return r.CheckAccept(&a)
	})
	if v.Blocked() {
		w.st.conns.remove(network)
	}
	return v
}

// Close forgets a socket that Open let through.
func (w *WAF) Close(remoteAddr string) {
	w.st.conns.remove(w.st.addrs.network(ParseRemoteIP(remoteAddr)))
}

// OpenConnections returns the number of open sockets and of distinct remote
// IPs they come from.
func (w *WAF) OpenConnections() (sockets, ips int) { return w.st.conns.len() }

// Connect runs the connect rules, then checks the Last Will against the
// publish rules (wills bypass the broker's publish path entirely). Rules may
// lower c.Keepalive, strip c.Will or rewrite its payload; in DetectionOnly
// those changes are undone before Connect returns. A blocking verdict must
// refuse the connection with CONNACK Verdict.Code.
func (w *WAF) Connect(c *Connect) Verdict {
	e := w.engine.Load()
	keepalive, will, expiry := c.Keepalive, c.Will, c.SessionExpiry
	if c.Will != nil {
		if user, _ := unmark(c.Will.Props.User); len(user) != len(c.Will.Props.User) {
			w := *c.Will // a client cannot bring the WAF's view marker (see dropMarkers)
			w.Props.User = user
			c.Will = &w
		}
	}
	s := subject{client: c.Client}
	v := stage(e, StageConnect, e.connect, s, func(r ConnectRule) Verdict { return r.CheckConnect(c) })
	if !v.Blocked() && c.Will != nil {
		v = e.checkWill(c)
	}
	if !e.enforce {
		c.Keepalive, c.Will, c.SessionExpiry = keepalive, will, expiry
	}
	if v.Blocked() && c.claimed {
		w.st.claims.release(c.Client.ID, c.Client.Username)
		c.claimed = false
		if c.sharedClaim {
			w.st.owners.Release(c.Client.ID, c.Client.Username)
			c.sharedClaim = false
		}
	}
	return v
}

// CheckWill holds c.Will to the publish rules and the wills policy alone,
// as Connect does after the connect rules. Adapters call it when a will is
// finally sent, so a policy reloaded since CONNECT still applies. c.Will is
// set to nil if the will is to be dropped, or replaced if its payload was
// rewritten (never in DetectionOnly).
func (w *WAF) CheckWill(c *Connect) Verdict {
	if c.Will == nil {
		return Verdict{}
	}
	e := w.engine.Load()
	will := c.Will
	v := e.checkWill(c)
	if !e.enforce {
		c.Will = will
	}
	return v
}

// Established tells the WAF that c's session is now live in the broker, so
// the client-ID claim taken at CONNECT (see sessions.takeover) can go. With
// state.backend redis the session's owner is recorded for the other nodes
// until Disconnected is called with the same c.
func (w *WAF) Established(c *Client) {
	w.st.claims.release(c.ID, c.Username)
	if w.st.owners != nil && c.ID != "" && w.engine.Load().policy.Sessions.Takeover == "same_identity" {
		w.st.owners.Established(c.ID, c.Username, c)
	}
}

// Abandoned tells the WAF that a CONNECT it admitted never became a
// session (the broker refused it, or could not be reached): the client-ID
// claims taken at CONNECT go, and no owner is recorded. Adapters call it in
// place of Established.
func (w *WAF) Abandoned(c *Client) {
	w.st.claims.release(c.ID, c.Username)
	if w.st.owners != nil && c.ID != "" {
		w.st.owners.Release(c.ID, c.Username)
	}
}

// Disconnected tells the WAF that the connection of c (the pointer given
// to Established) closed and its session lives on for keep (0: it ended
// with the connection). With state.backend redis the owner record the
// other nodes check is kept that long, at most broker.max_session_expiry.
// A connection that was taken over changes nothing.
func (w *WAF) Disconnected(c *Client, keep time.Duration) {
	if w.st.owners == nil || c.ID == "" {
		return
	}
	w.st.owners.Ended(c.ID, c.Username, c, min(keep, w.engine.Load().policy.Broker.MaxSessionExpiry.D()))
}

// checkWill holds the will to the publish rules, then applies wills policy.
func (e *engine) checkWill(c *Connect) Verdict {
	s := subject{client: c.Client, topic: c.Will.Topic, size: len(c.Will.Payload)}
	if e.policy.Wills.StripAll {
		v := Verdict{Action: Rewrite, Rule: "wills", Reason: "will_stripped", Detail: "wills.strip_all"}
		e.record(StageConnect, nil, &v, s)
		c.Will = nil
		return Verdict{}
	}
	p := getPublish(c.Client, c.Will, true)
	defer putPublish(p)
	// Run the publish rules without recording their blocks: the will's fate
	// is one decision, recorded below.
	var block Verdict
	var blockRule Rule
	for _, r := range e.publish {
		v := r.CheckPublish(p)
		if v.Action == Allow {
			continue
		}
		if !v.Blocked() {
			e.record(StageConnect, r, &v, s)
			continue
		}
		block, blockRule = v, r
		break
	}
	if block.Action == Allow {
		if p.Changed() || p.userChanged {
			c.Will = p.result()
		}
		return Verdict{}
	}
	if block.Rule == "" {
		block.Rule = blockRule.ID()
	}
	if e.policy.Wills.OnViolation == "strip" {
		v := Verdict{Action: Rewrite, Rule: "wills", Reason: block.Reason, Limit: block.Limit, Value: block.Value,
			Detail: "last will stripped: " + block.Rule}
		e.record(StageConnect, nil, &v, s)
		c.Will = nil
		return Verdict{}
	}
	block.Detail = joinDetail("last will", block.Detail)
	e.record(StageConnect, nil, &block, s)
	if !e.enforce {
		return Verdict{}
	}
	return verdictFor(block)
}

func joinDetail(a, b string) string {
	if b == "" {
		return a
	}
	return a + ": " + b
}

// Subscribe runs the subscribe rules for one filter.
func (w *WAF) Subscribe(c *Client, sub *Subscription) Verdict {
	e := w.engine.Load()
	return stage(e, StageSubscribe, e.subscribe, subject{client: c, topic: sub.Filter}, func(r SubscribeRule) Verdict {
		return r.CheckSubscribe(c, sub)
	})
}

// Publish runs the publish rules on m. It returns the verdict and, when the
// rules changed the message (payload or user properties) and the mode
// enforces, the message to forward instead, which the caller owns; out is
// nil when m passes unchanged. m itself is never modified.
func (w *WAF) Publish(c *Client, m *Message) (v Verdict, out *Message) {
	e := w.engine.Load()
	if len(e.publish) == 0 {
		return Verdict{}, nil
	}
	p := getPublish(c, m, false)
	defer putPublish(p)
	dropMarkers(p)
	v = stage(e, StagePublish, e.publish, subject{client: c, topic: m.Topic, size: len(m.Payload)}, func(r PublishRule) Verdict {
		return r.CheckPublish(p)
	})
	if v.Blocked() || !e.enforce || !p.Changed() && !p.userChanged {
		return v, nil
	}
	return v, p.result()
}

// Layers lists the stack's protections in its order.
func (w *WAF) Layers() []Protection { return slices.Clone(w.layers) }

// PublishLayer runs the publish rules of one protection of the stack on m,
// as Publish runs them all: an adapter that stacks one hook per protection
// calls it from each hook, in the stack's order, and passes each the
// message the previous one returned. The empty protection runs the custom
// rules (Options.Rules), which come after every protection. The first
// protection of the stack also removes view markers a client sent.
func (w *WAF) PublishLayer(pr Protection, c *Client, m *Message) (v Verdict, out *Message) {
	e := w.engine.Load()
	i := len(e.layers)
	if pr != "" {
		i = slices.Index(e.layers, pr)
	}
	if i < 0 {
		return Verdict{}, nil
	}
	return e.publishSteps(c, m, i, i)
}

// PublishLayers runs the publish rules of every protection of the stack,
// then the custom rules, with the same verdicts, events and result as
// PublishLayer called for each in turn, each passed the message the
// previous one returned. An adapter whose hooks of one stack follow each
// other, with nothing in between (hooks.Install), calls it once per
// message instead of once per hook: one working copy, one conversion.
func (w *WAF) PublishLayers(c *Client, m *Message) (v Verdict, out *Message) {
	e := w.engine.Load()
	return e.publishSteps(c, m, 0, len(e.layers))
}

// publishSteps runs steps from to to (e.steps; the last one holds the
// custom rules) as consecutive PublishLayer calls would. Each step gets
// what the step before passed on: in enforce the message as it rewrote it,
// in detection-only the original (rewrites are never forwarded there), and
// either way what the normalize protection found of it (c.stepJSON
// carries that between separate calls). Each step's events name the size
// of the message it got.
func (e *engine) publishSteps(c *Client, m *Message, from, to int) (v Verdict, out *Message) {
	var p *Publish // taken from the pool by the first step that runs
	defer func() {
		if p != nil {
			putPublish(p)
		}
	}()
	json := c.stepJSON.of(m.Payload)
	rewrote := false // some step changed the message (enforce)
	for i := from; i <= to; i++ {
		if len(e.steps[i]) == 0 && i != 0 {
			continue
		}
		switch {
		case p == nil:
			p = getPublish(c, m, false)
		case !e.enforce:
			p.reset(c, m, false)
		default:
			rewrote = rewrote || p.changed || p.userChanged
			p.changed, p.userChanged = false, false
		}
		if i == 0 {
			dropMarkers(p)
		} else {
			p.json = json
		}
		// The stage loop (see stage), written out: a hot path, and the
		// generic one with its closure cost a tenth of an allow decision.
		s := subject{client: c, topic: p.Message.Topic, size: len(p.Message.Payload)}
		for _, r := range e.steps[i] {
			if v = r.CheckPublish(p); v.Action != Allow && e.decided(StagePublish, r, &v, s) {
				c.stepJSON = jsonOf{}
				return v, nil
			}
		}
		json = p.json
	}
	v = Verdict{}
	if p == nil {
		return Verdict{}, nil
	}
	if !e.enforce || !rewrote && !p.changed && !p.userChanged {
		c.stepJSON.set(m.Payload, json)
		return v, nil
	}
	out = p.result()
	c.stepJSON.set(out.Payload, json)
	return v, out
}

// jsonOf is what the normalize protection found of the payload a stacked
// hook passed on, so the next hook's schema and redaction know the bytes
// they get were checked; bytes that are not the very slice passed on (a
// hook in between changed them) count as unchecked. A client's publishes
// are checked one at a time, so it needs no lock.
type jsonOf struct {
	at    *byte
	n     int
	state jsonState
}

func (j *jsonOf) set(b []byte, s jsonState) {
	*j = jsonOf{n: len(b), state: s}
	if len(b) > 0 {
		j.at = &b[0]
	}
}

func (j jsonOf) of(b []byte) jsonState {
	if len(b) != j.n || len(b) > 0 && &b[0] != j.at {
		return jsonUnchecked
	}
	return j.state
}

// dropMarkers removes view markers (viewMarker) from a client's message
// before any rule sees it: only the WAF makes them, and a message carrying
// a valid one is delivered as stored, so a client that learnt a token (from
// a broker's storage, say) must not be able to mark raw data as redacted.
func dropMarkers(p *Publish) {
	if user, _ := unmark(p.Message.Props.User); len(user) != len(p.Message.Props.User) {
		p.SetUserProperties(user)
	}
}

// Deliver runs the deliver rules for one message to one subscriber. It is
// called once per message per subscriber and allocates nothing when the
// rules allow. Brokers that check a subscription's read permission here
// too (mochi) may pass a shared subscription's filter: it is read without
// its "$share/<group>/" prefix, as topic names never start with "$share/".
func (w *WAF) Deliver(c *Client, topic string) Verdict {
	e := w.engine.Load()
	if len(e.deliver) == 0 {
		return Verdict{}
	}
	topic = sharedFilter(topic)
	// The stage loop written out, as in publishSteps: once per delivery.
	s := subject{client: c, topic: topic}
	for _, r := range e.deliver {
		if v := r.CheckDeliver(c, topic); v.Action != Allow && e.decided(StageDeliver, r, &v, s) {
			return v
		}
	}
	return Verdict{}
}

// Record counts and emits a decision the adapter took itself (a socket
// that never completed CONNECT, a delivery the broker dropped). The mode
// does not apply: these report what already happened.
func (w *WAF) Record(stage Stage, c *Client, listener, remoteAddr, topic string, size int, v Verdict) {
	s := subject{client: c, listener: listener, topic: topic, size: size}
	if c == nil {
		s.ip, s.addr = ParseRemoteIP(remoteAddr), remoteAddr
	}
	w.engine.Load().emit(stage, &v, s, true)
}

// ParseRemoteIP extracts the IP of an "ip:port" address; it returns the
// zero Addr for anything else. IPv4-mapped IPv6 addresses are unmapped so
// one host has one key.
func ParseRemoteIP(addr string) netip.Addr {
	if ap, err := netip.ParseAddrPort(addr); err == nil {
		return ap.Addr().Unmap()
	}
	if a, err := netip.ParseAddr(addr); err == nil {
		return a.Unmap()
	}
	return netip.Addr{}
}

// result copies the working message out of p for the caller to keep: the
// payload may live in p's scratch buffers, which go back to the pool.
func (p *Publish) result() *Message {
	m := *p.Message
	if p.cur >= 0 { // in a scratch buffer
		m.Payload = append([]byte(nil), m.Payload...)
	}
	return &m
}

var publishPool = sync.Pool{New: func() any { return &Publish{cur: -1} }}

func getPublish(c *Client, m *Message, will bool) *Publish {
	p := publishPool.Get().(*Publish)
	p.reset(c, m, will)
	return p
}

// putPublish returns p to the pool. Buffers that grew beyond 1 MiB are
// dropped so one huge message does not pin memory forever.
func putPublish(p *Publish) {
	for i := range p.bufs {
		if cap(p.bufs[i]) > 1<<20 {
			p.bufs[i] = nil
		}
	}
	p.Client, p.Message, p.msg, p.redacted = nil, nil, Message{}, redactNote{}
	publishPool.Put(p)
}

// ReloadFile re-reads the policy at path (the embedded default if path is
// empty) and swaps it in, as Reload does; a policy that does not load
// leaves the running one in force.
func (w *WAF) ReloadFile(path string) error {
	p, err := ReadPolicyFileOrDefault(path)
	if err != nil {
		return err
	}
	return w.Reload(p)
}
