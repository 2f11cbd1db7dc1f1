package mqttwaf

import (
	"net/netip"
	"reflect"
	"sync"
	"time"

	"github.com/mqttwaf/mqttwaf/ratelimit"
	"github.com/mqttwaf/mqttwaf/ratelimit/redisstate"
)

// clientKeys are the strings a client's limits are keyed by, built once at
// CONNECT so the publish path allocates nothing.
type clientKeys struct {
	client   string // client ID
	identity string // "u:" + user name, or "c:" + client ID for anonymous clients
	ip       string // remote network (AddressesPolicy), or "" if none
	// recent remembers the last topics this client published to, so the
	// new-topic budget (which needs identity+topic keys) is only consulted
	// for topics it has not used lately. Only the client's own read
	// goroutine touches it.
	recent [8]string
	next   int
}

// limitKeys returns c's keys, building them on first use; a grouping the
// addresses by network (a WAF's is fixed for its lifetime).
func (c *Client) limitKeys(a addressing) *clientKeys {
	if c.keys == nil {
		k := &clientKeys{client: c.ID, identity: "c:" + c.ID, ip: a.key(c.RemoteIP)}
		if c.Username != "" {
			k.identity = "u:" + c.Username
		}
		c.keys = k
	}
	return c.keys
}

// rateState is the limiters and counters of a rates section. It is kept
// across reloads as long as the rates section is unchanged, so a reload does
// not refill every bucket; a changed section starts afresh.
type rateState struct {
	policy RatesPolicy
	addrs  addressing

	connMsgs, connBytes, userMsgs, userBytes, ipMsgs, ipBytes *ratelimit.Limiter
	topicRates                                                []*ratelimit.Limiter
	subscribes, connectsIP, connectsNet, connectsListener     *ratelimit.Limiter
	connectRefusals                                           *ratelimit.Counter
	flapClient, flapUser, flapIP                              *ratelimit.Counter
	violations, disconnects                                   *ratelimit.Counter
	newIDs, newTopics                                         *ratelimit.Novelty
	retained                                                  *retainedTable // the WAF's, shared by every rateState
	// shared is the Redis backend (state.backend redis), nil for memory;
	// sharedRates are the publish rates it shares.
	shared      *redisstate.Backend
	sharedRates *sharedRates
}

func newRateState(r RatesPolicy, addrs addressing, retained *retainedTable, shared *redisstate.Backend) (*rateState, error) {
	st := &rateState{policy: r, addrs: addrs, retained: retained, shared: shared,
		sharedRates: newSharedRates(shared, r)}
	var firstErr error
	lim := func(rate Rate, burst int) *ratelimit.Limiter {
		l, err := ratelimit.NewLimiter(ratelimit.LimiterOptions{Rate: rate, Burst: burst, MaxKeys: r.MaxKeys})
		if err != nil && firstErr == nil {
			firstErr = err
		}
		return l
	}
	counter := func(rate Rate) *ratelimit.Counter {
		c, err := ratelimit.NewCounter(ratelimit.CounterOptions{Window: rate.Per, Limit: int(rate.N), MaxKeys: r.MaxKeys})
		if err != nil && firstErr == nil {
			firstErr = err
		}
		return c
	}
	p := r.Publish
	st.connMsgs, st.connBytes = lim(p.PerConnection.Messages, p.PerConnection.Burst), lim(p.PerConnection.Bytes, int(p.PerConnection.BurstB))
	st.userMsgs, st.userBytes = lim(p.PerUsername.Messages, p.PerUsername.Burst), lim(p.PerUsername.Bytes, int(p.PerUsername.BurstB))
	st.ipMsgs, st.ipBytes = lim(p.PerIP.Messages, p.PerIP.Burst), lim(p.PerIP.Bytes, int(p.PerIP.BurstB))
	for _, t := range p.Topics {
		st.topicRates = append(st.topicRates, lim(t.Messages, t.Burst))
	}
	st.subscribes = lim(r.Subscribe.PerConnection, 0)
	st.connectsIP, st.connectsListener = lim(r.Connect.PerIP, 0), lim(r.Connect.PerListener, 0)
	st.connectsNet = lim(r.Connect.PerNetwork, 0)
	st.connectRefusals = counter(Rate{N: int64(r.Connect.BanAfter), Per: time.Minute})
	st.flapClient, st.flapUser, st.flapIP = counter(r.Flapping.Connects), counter(r.Flapping.Connects), counter(r.Flapping.PerIP)
	st.violations = counter(Rate{N: int64(r.Escalation.DisconnectAfter), Per: time.Minute})
	st.disconnects = counter(Rate{N: int64(r.Escalation.BanAfter), Per: escalationWindow})
	var err error
	if st.newIDs, err = ratelimit.NewNovelty(ratelimit.NoveltyOptions{Window: r.NewClientIDs.Global.Per, MaxGroups: r.MaxKeys}); err != nil {
		return nil, err
	}
	if st.newTopics, err = ratelimit.NewNovelty(ratelimit.NoveltyOptions{Window: r.NewTopics.PerIdentity.Per, MaxGroups: r.MaxKeys}); err != nil {
		return nil, err
	}
	return st, firstErr
}

// ratesFor returns the rate state a policy with rates section r runs on:
// the running one if r is unchanged (so a reload does not refill every
// bucket), a fresh one otherwise. It changes nothing: the fresh state
// replaces the running one only when the whole policy has compiled and is
// committed (see WAF.Reload), so a reload that fails leaves no trace.
func (s *state) ratesFor(r RatesPolicy) (*rateState, error) {
	s.ratesMu.Lock()
	running := s.rates
	s.ratesMu.Unlock()
	if running != nil && reflect.DeepEqual(running.policy, r) {
		return running, nil
	}
	return newRateState(r, s.addrs, &s.retained, s.shared)
}

// commitRates makes rs the running rate state.
func (s *state) commitRates(rs *rateState) {
	s.ratesMu.Lock()
	old := s.rates
	s.rates = rs
	s.ratesMu.Unlock()
	if s.shared != nil && old != rs {
		if old != nil {
			s.shared.Untrack(old.sharedRates.windows()...)
		}
		s.shared.Track(rs.sharedRates.windows()...)
	}
}

func (s *state) currentRates() *rateState {
	s.ratesMu.Lock()
	defer s.ratesMu.Unlock()
	return s.rates
}

// banCheck refuses CONNECTs from banned client IDs, user names and
// addresses (CONNACK 0x8A), first of all connect rules.
type banCheck struct {
	bans banStore
	now  func() time.Time
}

func (*banCheck) ID() string { return "bans" }

func (r *banCheck) CheckConnect(c *Connect) Verdict {
	b, banned := r.bans.Check(r.now(), c.Client.ID, c.Client.Username, c.Client.RemoteIP)
	if !banned {
		return Verdict{}
	}
	until := "permanently"
	if !b.Until.IsZero() {
		until = "until " + b.Until.UTC().Format(time.RFC3339)
	}
	return Verdict{Action: Reject, Reason: "banned", Code: CodeBanned, Detail: b.Target.String() + " banned " + until + ": " + b.Reason}
}

// connectRates limits CONNECTs per remote IP and per listener (0x9F).
type connectRates struct {
	st  *rateState
	now func() time.Time
}

func (*connectRates) ID() string { return "rates.connect" }

// CheckConnect checks the address, then its network, then the listener:
// a refusal never spends a budget shared with others. Repeated refusals of
// one address ban it.
func (r *connectRates) CheckConnect(c *Connect) Verdict {
	now := r.now()
	ip := c.Client.limitKeys(r.st.addrs).ip
	if ip != "" && !r.st.connectsIP.Allow(now, ip) {
		return r.refused(now, ip, "ip_connect_rate")
	}
	if n := r.network(c.Client.RemoteIP); n != "" && !r.st.connectsNet.Allow(now, n) {
		return r.refused(now, ip, "network_connect_rate")
	}
	if !r.st.connectsListener.Allow(now, c.Client.Listener) {
		return Deny("", "listener_connect_rate", CodeConnectionRateExceeded)
	}
	return Verdict{}
}

// network is the key of the address's network for rates.connect.per_network.
func (r *connectRates) network(ip netip.Addr) string {
	if !ip.IsValid() {
		return ""
	}
	cr := r.st.policy.Connect
	return addressing{v4: cr.NetworkPrefixV4, v6: cr.NetworkPrefixV6}.key(ip)
}

// refused is the refusal of a CONNECT over its address's or network's rate,
// or a ban of the address once it has been refused rates.connect.ban_after
// times within a minute.
func (r *connectRates) refused(now time.Time, ip, reason string) Verdict {
	v := Deny("", reason, CodeConnectionRateExceeded)
	if ip != "" && r.st.connectRefusals.AddN(now, ip, 1) > float64(r.st.policy.Connect.BanAfter) {
		r.st.connectRefusals.Reset(ip)
		v.Action, v.Code, v.BanKeys = Ban, CodeBanned, BanIP
		v.Detail = "repeatedly over the connect rate"
	}
	return v
}

// flapping bans client IDs, user names and IPs that connect more often
// than rates.flapping allows: the ban starts with this CONNECT (0x8A) and
// grows for repeat offenders.
type flapping struct {
	st  *rateState
	now func() time.Time
}

func (*flapping) ID() string { return "rates.flapping" }

func (r *flapping) CheckConnect(c *Connect) Verdict {
	if r.st.policy.Flapping.Off {
		return Verdict{}
	}
	now, cl := r.now(), c.Client
	ip := cl.limitKeys(r.st.addrs).ip
	limit := float64(r.st.policy.Flapping.Connects.N)
	v := Verdict{Action: Ban, Reason: "flapping", Code: CodeBanned}
	// With a shared state each count is kept locally (what decides while
	// Redis is away) and across nodes; either over its threshold bans.
	sh := r.st.sharedRates
	switch {
	case r.st.flapClient.AddN(now, cl.ID, 1) > limit || sh.over(flapClientWin, now, cl.ID, limit):
		v.BanKeys = BanClientID
	case cl.Username != "" && (r.st.flapUser.AddN(now, cl.Username, 1) > limit || sh.over(flapUserWin, now, cl.Username, limit)):
		v.BanKeys = BanUsername
	case ip != "" && (r.st.flapIP.AddN(now, ip, 1) > float64(r.st.policy.Flapping.PerIP.N) || sh.over(flapIPWin, now, ip, float64(r.st.policy.Flapping.PerIP.N))):
		v.BanKeys = BanIP
	default:
		return Verdict{}
	}
	return v
}

// newClientIDs budgets client IDs not seen recently: globally, per IP, per
// user name and per client-ID prefix. A client ID seen in the last window
// or two reconnects freely.
type newClientIDs struct {
	st  *rateState
	now func() time.Time
}

func (*newClientIDs) ID() string { return "rates.new_client_ids" }

// sharedAdmit is the new-client-ID decision Redis made for a CONNECT
// together with its session claim (takeoverGuard), so that new_client_ids
// needs no round trip of its own.
type sharedAdmit uint8

const (
	admitNotAsked   sharedAdmit = iota // new_client_ids asks (or decides locally) itself
	admitAllowed                       // Redis admitted (and counted) the client ID
	admitRefused                       // over a budget across nodes
	admitUnanswered                    // Redis did not answer: the local budgets decide
)

// budgets are the budgets a CONNECT of c's client ID spends if it is new.
func (r *newClientIDs) budgets(cl *Client) []ratelimit.Budget {
	n := r.st.policy.NewClientIDs
	budgets := make([]ratelimit.Budget, 0, 4)
	budgets = append(budgets, ratelimit.Budget{Group: "", Limit: int(n.Global.N)})
	if ip := cl.limitKeys(r.st.addrs).ip; ip != "" {
		budgets = append(budgets, ratelimit.Budget{Group: "i:" + ip, Limit: int(n.PerIP.N)})
	}
	if cl.Username != "" {
		budgets = append(budgets, ratelimit.Budget{Group: "u:" + cl.Username, Limit: int(n.PerUsername.N)})
	}
	if !n.PerPrefix.IsZero() {
		prefix := cl.ID
		if len(prefix) > n.PrefixLength {
			prefix = prefix[:n.PrefixLength]
		}
		budgets = append(budgets, ratelimit.Budget{Group: "p:" + prefix, Limit: int(n.PerPrefix.N)})
	}
	return budgets
}

func (r *newClientIDs) CheckConnect(c *Connect) Verdict {
	now, cl := r.now(), c.Client
	var allowed, answered bool
	budgets := r.budgets(cl)
	switch c.newID {
	case admitAllowed:
		allowed, answered = r.sharedAdmitted(now, cl.ID), true
	case admitRefused:
		answered = true
	case admitUnanswered:
	default:
		allowed, answered = r.shared(now, cl.ID, budgets)
	}
	if !answered {
		allowed = r.st.newIDs.Allow(now, cl.ID, budgets...)
	}
	if !allowed {
		return Deny("", "new_client_id_budget", CodeQuotaExceeded)
	}
	return Verdict{}
}

// publishRates limits publishes per connection, per identity, per IP and
// per topic, in messages and bytes. Refusals are counted; too many in a
// minute disconnect the client (0x96), and repeated disconnects ban it.
type publishRates struct {
	st     *rateState
	topics [][]*Template
	now    func() time.Time
}

func (*publishRates) ID() string { return "rates.publish" }

func (r *publishRates) CheckPublish(p *Publish) Verdict {
	if p.Will {
		return Verdict{} // a will is checked at CONNECT, not spent then
	}
	now, k, n := r.now(), p.Client.limitKeys(r.st.addrs), p.Message.Size()
	st := r.st
	reason := ""
	switch {
	case !st.connMsgs.Allow(now, k.client):
		reason = "connection_message_rate"
	case !st.connBytes.AllowN(now, k.client, n):
		reason = "connection_byte_rate"
	case p.Client.Username != "" && !st.userMsgs.Allow(now, p.Client.Username):
		reason = "username_message_rate"
	case p.Client.Username != "" && !st.userBytes.AllowN(now, p.Client.Username, n):
		reason = "username_byte_rate"
	case k.ip != "" && !st.ipMsgs.Allow(now, k.ip):
		reason = "ip_message_rate"
	case k.ip != "" && !st.ipBytes.AllowN(now, k.ip, n):
		reason = "ip_byte_rate"
	case st.sharedRates != nil:
		reason = st.sharedRates.check(now, p.Client.Username, k.ip, n)
		if reason != "" {
			break
		}
		fallthrough
	default:
		for i, ts := range r.topics {
			for _, t := range ts {
				if t.Covers(p.Message.Topic, p.Client) {
					if !st.topicRates[i].Allow(now, k.client) {
						reason = "topic_message_rate"
					}
					break
				}
			}
		}
	}
	if reason == "" {
		return Verdict{}
	}
	return st.escalate(now, k, Deny("", reason, CodeMessageRateTooHigh))
}

// escalationWindow is the window rates.escalation.ban_after counts
// disconnects in.
const escalationWindow = 10 * time.Minute

// escalate turns a refusal into a disconnect, and repeated disconnects into
// a ban, as rates.escalation says.
func (st *rateState) escalate(now time.Time, k *clientKeys, v Verdict) Verdict {
	e := st.policy.Escalation
	if st.violations.AddN(now, k.client, 1) <= float64(e.DisconnectAfter) {
		return v
	}
	st.violations.Reset(k.client) // a fresh count after the disconnect
	v.Action, v.Code = Disconnect, CodeMessageRateTooHigh
	v.Detail = "repeated rate violations"
	// The refusals are counted per node (a connection lives on one node);
	// the disconnects they lead to also across nodes, as a client
	// disconnected on one node may reconnect to another.
	if st.disconnects.AddN(now, k.client, 1) > float64(e.BanAfter) || st.sharedRates.over(escalationWin, now, k.client, float64(e.BanAfter)) {
		v.Action, v.Code, v.BanKeys = Ban, CodeBanned, BanClientID|BanUsername
		v.Detail = "repeatedly disconnected for rate violations"
	}
	return v
}

// newTopics budgets topics an identity has not published to recently.
type newTopics struct {
	st  *rateState
	now func() time.Time
}

func (*newTopics) ID() string { return "rates.new_topics" }

func (r *newTopics) CheckPublish(p *Publish) Verdict {
	if p.Will {
		return Verdict{}
	}
	k, topic := p.Client.limitKeys(r.st.addrs), p.Message.Topic
	for _, t := range k.recent {
		if t == topic {
			return Verdict{}
		}
	}
	key := k.identity + "\x00" + topic
	now := r.now()
	// With a shared state a topic new to this node is also counted against
	// the identity's budget across nodes (a topic the identity used through
	// another node counts again here: fail closed).
	if sh := r.st.sharedRates; sh != nil && !r.st.newTopics.Seen(now, key) && !sh.newTopics.AllowN(now, k.identity, 1) {
		return Deny("", "new_topic_budget", CodeQuotaExceeded)
	}
	if !r.st.newTopics.Allow(now, key, ratelimit.Budget{Group: k.identity, Limit: int(r.st.policy.NewTopics.PerIdentity.N)}) {
		return Deny("", "new_topic_budget", CodeQuotaExceeded)
	}
	k.recent[k.next] = topic
	k.next = (k.next + 1) % len(k.recent)
	return Verdict{}
}

// subscribeRates limits filters per SUBSCRIBE, subscriptions per
// connection and the subscribe rate (0x97).
type subscribeRates struct {
	st  *rateState
	now func() time.Time
}

func (*subscribeRates) ID() string { return "rates.subscribe" }

func (r *subscribeRates) CheckSubscribe(c *Client, s *Subscription) Verdict {
	sp := r.st.policy.Subscribe
	switch {
	case s.Count > sp.MaxFilters:
		return OverLimit("", "too_many_filters", CodeQuotaExceeded, int64(s.Count), int64(sp.MaxFilters))
	case s.Existing >= sp.MaxSubscriptions:
		return OverLimit("", "too_many_subscriptions", CodeQuotaExceeded, int64(s.Existing+1), int64(sp.MaxSubscriptions))
	case !r.st.subscribes.Allow(r.now(), c.limitKeys(r.st.addrs).client):
		return Deny("", "subscribe_rate", CodeQuotaExceeded)
	}
	return Verdict{}
}

// retainedTable mirrors the broker's retained store: which identity owns
// each retained topic and how many bytes it holds (topic, payload and
// properties), so retained budgets can be kept. It belongs to the WAF, not
// to a policy: the store does not change when the policy does. It holds
// only topics that passed the budget, so it is bounded by
// rates.retained.total.topics (plus retained wills and messages the broker
// retains itself, which are counted when reported).
type retainedTable struct {
	mu      sync.Mutex
	byTopic map[string]retainedEntry
	owners  map[string]*retainedUse
	total   retainedUse
	// shared, with state.retained: shared, is the accounting of the one
	// store behind every node; it decides while Redis answers (this
	// table, which sees only this node's publishes, decides otherwise).
	shared *redisstate.Retained
	now    func() time.Time // the clock, with shared
}

type retainedEntry struct {
	owner string
	bytes int
}

type retainedUse struct{ topics, bytes int }

// admit reports whether owner may retain size bytes on topic.
func (t *retainedTable) admit(budget RetainedBudget, owner, topic string, size int) (Verdict, bool) {
	if t.shared != nil {
		if v, ok, decided := t.admitShared(budget, owner, topic, size); decided {
			return v, ok
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	old, exists := t.byTopic[topic]
	use := t.owners[owner]
	if use == nil {
		use = &retainedUse{}
	}
	// What the owner's share and the store's total would grow by.
	addTopics, addBytes := 1, size
	totTopics, totBytes := 1, size
	if exists {
		totTopics, totBytes = 0, size-old.bytes
		addTopics, addBytes = 0, size-old.bytes
		if old.owner != owner { // taking over a topic moves it to the new owner
			addTopics, addBytes = 1, size
		}
	}
	pi, tot := budget.PerIdentity, budget.Total
	switch {
	case use.topics+addTopics > pi.Topics:
		return OverLimit("", "retained_topics_per_identity", CodeQuotaExceeded, int64(use.topics+addTopics), int64(pi.Topics)), false
	case use.bytes+addBytes > int(pi.Bytes):
		return OverLimit("", "retained_bytes_per_identity", CodeQuotaExceeded, int64(use.bytes+addBytes), int64(pi.Bytes)), false
	case t.total.topics+totTopics > tot.Topics:
		return OverLimit("", "retained_topics_total", CodeQuotaExceeded, int64(t.total.topics+totTopics), int64(tot.Topics)), false
	case t.total.bytes+totBytes > int(tot.Bytes):
		return OverLimit("", "retained_bytes_total", CodeQuotaExceeded, int64(t.total.bytes+totBytes), int64(tot.Bytes)), false
	}
	return Verdict{}, true
}

// admitShared decides on the shared accounting: at once while the owner
// and the store are clear of their budgets (as last synced, plus this
// node's changes since), on the exact shared table (one round trip)
// otherwise, so an owner at its limit may still replace its own topic.
// decided is false while Redis does not answer: this node's table decides.
func (t *retainedTable) admitShared(budget RetainedBudget, owner, topic string, size int) (v Verdict, ok, decided bool) {
	now := t.now()
	pi, tot := budget.PerIdentity, budget.Total
	mine, total, fresh, known := t.shared.Use(now, owner)
	if !known {
		return Verdict{}, false, false
	}
	// Every publish counts as a new topic here: this node's table may be
	// stale (another node may have seen the topic deleted, or taken over),
	// and trusting it would let an identity delete its topics through one
	// node and retain them again through another, past its budget. An
	// owner within one topic of its limit is decided on the exact table,
	// which knows a replacement from a new topic.
	addT, addB := int64(1), int64(size)
	// An owner whose use the last sync did not read (new to this node, or
	// idle here a minute) may have filled its budget through other nodes:
	// only the exact table may allow it.
	if fresh && mine.Topics+addT <= int64(pi.Topics) && mine.Bytes+addB <= int64(pi.Bytes) && total.Topics+addT <= int64(tot.Topics) && total.Bytes+addB <= int64(tot.Bytes) {
		return Verdict{}, true, true
	}
	reason, value, err := t.shared.Admit(now, owner, topic, size, redisstate.Limits{
		OwnerTopics: int64(pi.Topics), OwnerBytes: int64(pi.Bytes), TotalTopics: int64(tot.Topics), TotalBytes: int64(tot.Bytes)})
	if err != nil {
		return Verdict{}, false, false
	}
	switch reason {
	case redisstate.OverOwnerTopics:
		return OverLimit("", "retained_topics_per_identity", CodeQuotaExceeded, value, int64(pi.Topics)), false, true
	case redisstate.OverOwnerBytes:
		return OverLimit("", "retained_bytes_per_identity", CodeQuotaExceeded, value, int64(pi.Bytes)), false, true
	case redisstate.OverTotalTopics:
		return OverLimit("", "retained_topics_total", CodeQuotaExceeded, value, int64(tot.Topics)), false, true
	case redisstate.OverTotalBytes:
		return OverLimit("", "retained_bytes_total", CodeQuotaExceeded, value, int64(tot.Bytes)), false, true
	}
	return Verdict{}, true, true
}

// set records that owner's message of size bytes is now retained on topic
// (size 0: the retained message was deleted).
func (t *retainedTable) set(owner, topic string, size int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.shared != nil {
		old := t.byTopic[topic]
		t.shared.Set(t.now(), owner, topic, size, redisstate.Held{Owner: old.owner, Size: old.bytes})
	}
	if old, ok := t.byTopic[topic]; ok {
		if u := t.owners[old.owner]; u != nil {
			u.topics--
			u.bytes -= old.bytes
			if u.topics <= 0 {
				delete(t.owners, old.owner)
			}
		}
		t.total.topics--
		t.total.bytes -= old.bytes
		delete(t.byTopic, topic)
	}
	if size == 0 {
		return
	}
	if t.byTopic == nil {
		t.byTopic, t.owners = map[string]retainedEntry{}, map[string]*retainedUse{}
	}
	t.byTopic[topic] = retainedEntry{owner: owner, bytes: size}
	u := t.owners[owner]
	if u == nil {
		u = &retainedUse{}
		t.owners[owner] = u
	}
	u.topics++
	u.bytes += size
	t.total.topics++
	t.total.bytes += size
}

// retainedBudget enforces rates.retained on retained publishes.
type retainedBudget struct{ st *rateState }

func (*retainedBudget) ID() string { return "rates.retained" }

func (r *retainedBudget) CheckPublish(p *Publish) Verdict {
	m := p.Message
	if !m.Retain || len(m.Payload) == 0 { // an empty retained message deletes
		return Verdict{}
	}
	v, ok := r.st.retained.admit(r.st.policy.Retained, p.Client.limitKeys(r.st.addrs).identity, m.Topic, m.Size())
	if ok {
		return Verdict{}
	}
	return v
}
