package mqttwaf

import (
	"fmt"
	"net/netip"
	"slices"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/mqttwaf/mqttwaf/ratelimit"
)

// engine is a compiled policy: the rules of each stage in evaluation order.
// It is immutable once built; the WAF swaps whole engines on reload.
type engine struct {
	policy  *Policy // with defaults applied
	enforce bool    // Mode == Enforce
	st      *state  // shared with the engines before and after a reload
	out     *output
	now     func() time.Time
	info    policyInfo // hash and load time, for operators

	views *views    // per-subscriber redaction, or nil
	id    *identity // the compiled identity section

	// layers are the stack's protections in its order; steps[i] are the
	// publish rules of layers[i], and the last step the custom ones.
	layers []Protection
	steps  [][]PublishRule

	rules     []Rule
	accept    []AcceptRule
	connect   []ConnectRule
	subscribe []SubscribeRule
	publish   []PublishRule
	deliver   []DeliverRule
}

// output is where decisions go: the sink, honouring the event level and
// the event rate. The rate is checked before an event is built, so a flood
// of refused packets costs a counter increment each, not an event: an
// attacker who makes every packet fail cannot turn the log into a
// disk-filling flood or a CPU sink. The next event that passes says how
// many were suppressed before it.
type output struct {
	sink       Sink
	blocksOnly bool
	lim        *rate.Limiter
	suppressed atomic.Int64
}

// compile builds the engine for p (defaults already applied) running the
// protections of layers: the built-in rules of those protections, then the
// custom rules, and the rate state they run on. CONNECT, SUBSCRIBE and
// delivery rules run in the fixed order below whatever the stack's order
// (cheap before expensive, authentication before what is keyed by the
// authenticated identity); publish rules run protection by protection in
// the stack's order, as stacked hooks do. It changes nothing in st: the
// caller commits the rate state and the engine together, or neither.
func compile(p *Policy, layers []Protection, st *state, out *output, custom []Rule, now func() time.Time) (*engine, *rateState, error) {
	e := &engine{policy: p, enforce: p.Mode == Enforce, st: st, out: out, now: now, layers: layers}
	id, err := compileIdentity(p)
	if err != nil {
		return nil, nil, err
	}
	e.id = id
	rs, err := st.ratesFor(p.Rates)
	if err != nil {
		return nil, nil, fmt.Errorf("rates: %w", err)
	}
	pubRates := &publishRates{st: rs, now: now}
	for _, tr := range p.Rates.Publish.Topics {
		var ts []*Template
		for _, s := range tr.Topics {
			t, _ := CompileTemplate(s) // validated
			ts = append(ts, t)
		}
		pubRates.topics = append(pubRates.topics, ts)
	}
	pl, err := compilePayloads(p, now, st.viewKey)
	if err != nil {
		return nil, nil, err
	}
	if slices.Contains(layers, ProtectRedact) {
		e.views = compileViews(p, id, pl)
		pl.views = e.views
	}
	topics := &topicLimits{maxLen: p.Limits.Topic.MaxLength, maxLevels: p.Limits.Topic.MaxLevels}
	const (
		H, A, R, I = ProtectHardening, ProtectAntiFlood, ProtectRateLimit, ProtectIdentity
	)
	type tagged struct {
		prot Protection
		rule Rule
	}
	builtin := []tagged{
		// Transport first: cheap, and they protect everything after them.
		{H, &connectionCaps{p: p}},
		{A, &banCheck{bans: st.bans, now: now}},
		{I, &lockoutCheck{l: st.lockouts, id: id}},
		{A, &connectRates{st: rs, now: now}},
		{H, &keepaliveClamp{p: p}},
		{H, &sessionExpiryClamp{p: p}},
		// Shape and rate of what the client sends, before any expensive work.
		{H, &clientIDLimits{max: p.Limits.ClientID.MaxLength}},
		{H, topics},
		{H, &userPropertyLimits{maxCount: p.Limits.UserProperties.MaxCount, maxBytes: int(p.Limits.UserProperties.MaxBytes)}},
		{H, &propertyLimits{topic: topics, maxContentType: p.Limits.ContentType.MaxLength, maxCorrelation: int(p.Limits.CorrelationData.MaxBytes)}},
		{R, pubRates},
		{R, &subscribeRates{st: rs, now: now}},
		// Who the client is, then what it may do.
		{I, &authenticate{id: id, p: p, lockouts: st.lockouts, passwords: st.passwords}},
		{I, &bindClientID{id: id}},
	}
	// The takeover guard comes before flapping: a CONNECT another identity
	// may not make with this client ID must not count towards the client
	// ID's flapping ban, or any identity could get a device it cannot take
	// over banned by trying. The guard's Redis call may spend the
	// new-client-ID budget (one round trip for both); a CONNECT that
	// flapping then bans has spent at most that one slot, and only for a
	// client ID new to the shared state.
	var guard *takeoverGuard
	if p.Sessions.Takeover == "same_identity" {
		guard = &takeoverGuard{claims: &st.claims, shared: st.owners, refuseUnknown: p.Sessions.OwnerUnknown == "refuse",
			ttl: p.Connections.ConnectTimeout.D(), max: 2 * p.Broker.MaxConnections, now: now}
		builtin = append(builtin, tagged{H, guard})
	}
	newIDs := &newClientIDs{st: rs, now: now}
	builtin = append(builtin,
		tagged{A, &flapping{st: rs, now: now}},
		tagged{A, newIDs},
		tagged{I, &acl{id: id, roles: compileRoles(p)}},
		tagged{A, &newTopics{st: rs, now: now}},
		tagged{R, &retainedBudget{st: rs}},
		// Payload rules run on what the ACL let through, normalisation first so
		// later payload rules see the canonical bytes.
		tagged{ProtectNormalize, &payloadFormat{pl}},
		tagged{ProtectSchema, &payloadSchema{pl}},
		tagged{ProtectRedact, &payloadRedact{pl}},
	)
	if name := p.Provenance.UserProperty; name != "" {
		builtin = append(builtin, tagged{ProtectProvenance, &provenance{name: name}})
	}
	var rules []Rule
	steps := make([][]PublishRule, len(layers)+1) // the last step: custom rules
	for _, t := range builtin {
		i := slices.Index(layers, t.prot)
		if i < 0 || p.Rates.Off && (t.prot == A && t.rule.ID() != "bans" || t.prot == R) {
			continue
		}
		rules = append(rules, t.rule)
		if r, ok := t.rule.(PublishRule); ok {
			steps[i] = append(steps[i], r)
		}
	}
	for _, r := range custom {
		if r != nil {
			if pr, ok := r.(PublishRule); ok {
				steps[len(layers)] = append(steps[len(layers)], pr)
			}
		}
	}
	ids := map[string]bool{}
	for _, r := range append(rules, custom...) {
		if r == nil {
			return nil, nil, fmt.Errorf("mqttwaf: Options.Rules contains a nil rule")
		}
		if ids[r.ID()] {
			return nil, nil, fmt.Errorf("mqttwaf: two rules share the id %q; rule ids must be unique", r.ID())
		}
		ids[r.ID()] = true
		if !e.add(r) {
			return nil, nil, fmt.Errorf("mqttwaf: rule %q implements no stage interface (AcceptRule, ConnectRule, SubscribeRule, PublishRule or DeliverRule)", r.ID())
		}
	}
	// With both in force and the state in Redis, the guard's claim also
	// asks for the new-client-ID budget (one round trip before CONNACK).
	if guard != nil && guard.shared != nil && slices.Contains(rules, Rule(guard)) && slices.Contains(rules, Rule(newIDs)) {
		guard.newIDs = newIDs
	}
	// Publish rules run in the stack's order, step by step.
	e.steps = steps
	e.publish = slices.Concat(steps...)
	return e, rs, nil
}

// add files r under every stage it implements.
func (e *engine) add(r Rule) bool {
	n := len(e.accept) + len(e.connect) + len(e.subscribe) + len(e.publish) + len(e.deliver)
	if x, ok := r.(AcceptRule); ok {
		e.accept = append(e.accept, x)
	}
	if x, ok := r.(ConnectRule); ok {
		e.connect = append(e.connect, x)
	}
	if x, ok := r.(SubscribeRule); ok {
		e.subscribe = append(e.subscribe, x)
	}
	if x, ok := r.(PublishRule); ok {
		e.publish = append(e.publish, x)
	}
	if x, ok := r.(DeliverRule); ok {
		e.deliver = append(e.deliver, x)
	}
	e.rules = append(e.rules, r)
	return len(e.accept)+len(e.connect)+len(e.subscribe)+len(e.publish)+len(e.deliver) > n
}

// subject is who and what an event is about. It holds pointers and plain
// values only, so building one costs nothing on the allow path; strings are
// made when an event is recorded.
type subject struct {
	client   *Client
	listener string     // when client is nil (accept stage)
	ip       netip.Addr // when client is nil
	addr     string     // "ip:port" when client is nil, for the event's port
	topic    string
	size     int
}

// record counts a rule's decision and sends its event; v.Rule falls back
// to the rule's id.
func (e *engine) record(stage Stage, r Rule, v *Verdict, s subject) {
	if v.Rule == "" && r != nil {
		v.Rule = r.ID()
	}
	if v.Blocked() {
		*v = verdictFor(*v)
	}
	if v.Action == Ban && e.enforce {
		e.ban(v, s)
	}
	e.emit(stage, v, s, e.enforce)
}

// ban puts what v.BanKeys names on the ban list: for v.BanFor, or for the
// list's growing back-off. The ban applies from the next CONNECT (CONNACK
// 0x8A); the adapter ends the current connection.
func (e *engine) ban(v *Verdict, s subject) {
	c, now := s.client, e.now()
	keys := v.BanKeys
	if keys == 0 {
		keys = BanClientID | BanUsername
	}
	var targets []ratelimit.Target
	if c != nil && keys&BanClientID != 0 && c.ID != "" && len(c.ID) <= ratelimit.MaxTargetValue {
		targets = append(targets, ratelimit.ClientIDTarget(c.ID))
	}
	if c != nil && keys&BanUsername != 0 && c.Username != "" && len(c.Username) <= ratelimit.MaxTargetValue {
		targets = append(targets, ratelimit.UsernameTarget(c.Username))
	}
	ip := s.ip
	if c != nil {
		ip = c.RemoteIP
	}
	if keys&BanIP != 0 && ip.IsValid() {
		targets = append(targets, ratelimit.PrefixTarget(e.st.addrs.network(ip)))
	}
	for _, t := range targets {
		if v.BanFor > 0 {
			_ = e.st.bans.Add(now, ratelimit.Ban{Target: t, Reason: v.Reason, Since: now, Until: now.Add(v.BanFor)})
		} else {
			_, _ = e.st.bans.Strike(now, t, v.Reason)
		}
	}
}

// emit counts a decision and, if the event level wants it, sends its event.
func (e *engine) emit(stage Stage, v *Verdict, s subject, enforced bool) {
	e.st.counters.add(v.Rule, v.Action, v.Reason, enforced)
	if e.out.sink == nil || (e.out.blocksOnly && !v.Blocked()) {
		return
	}
	now := e.now()
	if !e.out.lim.AllowN(now, 1) {
		e.out.suppressed.Add(1)
		return
	}
	ev := Event{
		Time: now, Stage: stage, Rule: v.Rule, Action: v.Action, Enforced: enforced,
		Reason: v.Reason, Code: codeOf(v), Listener: s.listener, Topic: s.topic, Size: s.size,
		Limit: v.Limit, Value: v.Value, Detail: v.Detail,
	}
	if v.explain != nil {
		ev.Detail = v.explain.detail()
	}
	ip, addr := s.ip, s.addr
	if c := s.client; c != nil {
		ev.Listener, ev.ClientID, ev.Username, ip, addr = c.Listener, c.ID, c.Username, c.RemoteIP, c.RemoteAddr
	}
	if ip.IsValid() {
		ev.RemoteIP = ip.String()
		if ap, err := netip.ParseAddrPort(addr); err == nil {
			ev.RemotePort = int(ap.Port())
		}
	}
	if n := e.out.suppressed.Swap(0); n > 0 {
		note := "events_suppressed_before=" + itoa(n)
		if ev.Detail != "" {
			note = ev.Detail + "; " + note
		}
		ev.Detail = note
	}
	e.out.sink.Emit(ev)
}

// codeOf is the reason code an action sends, or 0 if it sends none.
func codeOf(v *Verdict) ReasonCode {
	switch v.Action {
	case Reject, Disconnect, Ban:
		return verdictFor(*v).Code
	}
	return 0
}

// verdictFor normalises a blocking verdict: Ban without a code means banned,
// anything else without a code is unspecified.
func verdictFor(v Verdict) Verdict {
	if v.Code == 0 {
		v.Code = CodeUnspecifiedError
		if v.Action == Ban {
			v.Code = CodeBanned
		}
	}
	return v
}

// stage runs check over rules, recording every non-allow verdict. In
// Enforce it stops at the first blocking verdict and returns it; in
// DetectionOnly it runs every rule, so every would-be block is reported,
// and returns the zero (allow) verdict.
func stage[R Rule](e *engine, st Stage, rules []R, s subject, check func(R) Verdict) Verdict {
	for _, r := range rules {
		if v := check(r); v.Action != Allow && e.decided(st, r, &v, s) {
			return v
		}
	}
	return Verdict{}
}

// decided records rule r's verdict v (not allow) and reports whether it
// ends the stage: a block, in enforce.
func (e *engine) decided(st Stage, r Rule, v *Verdict, s subject) bool {
	e.record(st, r, v, s)
	return v.Blocked() && e.enforce
}

// ruleIDs lists the compiled rules, for introspection and tests.
func (e *engine) ruleIDs() []string {
	ids := make([]string, len(e.rules))
	for i, r := range e.rules {
		ids[i] = r.ID()
	}
	return slices.Clip(ids)
}
