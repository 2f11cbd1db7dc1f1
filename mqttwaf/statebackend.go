package mqttwaf

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/mqttwaf/mqttwaf/ratelimit"
	"github.com/mqttwaf/mqttwaf/ratelimit/redisstate"
)

// StatePolicy says where the state several broker nodes must share lives:
// in this process (memory, the default) or in Redis, so that several nodes
// behind a load balancer act as one firewall. See the README, "Shared state
// in Redis", for what each protection shares and what happens when Redis is
// unreachable. Changing it needs a restart.
type StatePolicy struct {
	// Backend is memory (default) or redis.
	Backend string `yaml:"backend" json:"backend"`
	// Redis is the server used when Backend is redis.
	Redis RedisPolicy `yaml:"redis" json:"redis"`
	// Retained is whose retained store the retained budgets
	// (rates.retained) count: per_node (default), each node's own, right
	// for separate brokers, each with its store; shared, one store behind
	// every node, right for several proxies in front of one broker or
	// cluster (needs backend redis).
	Retained string `yaml:"retained" json:"retained"`
}

// RedisPolicy is a Redis (or Valkey) server: one address, or a primary
// found through Redis Sentinel.
type RedisPolicy struct {
	// Address is host:port; empty when Sentinel is set.
	Address string `yaml:"address" json:"address"`
	// Sentinel, when set, finds the primary through Redis Sentinel (high
	// availability); the zero value uses Address.
	Sentinel RedisSentinel `yaml:"sentinel" json:"sentinel"`
	// Username is the Redis ACL user; empty for the default user.
	Username string `yaml:"username" json:"username"`
	// PasswordFile holds the password (the file's first line), relative to
	// the policy file; empty for none. The password never appears in the
	// policy itself.
	PasswordFile string `yaml:"password_file" json:"password_file"`
	// DB is the database number (default 0).
	DB int `yaml:"db" json:"db"`
	// KeyPrefix starts every key and the events channel (default
	// "mqttwaf:"): nodes that act as one firewall share it, unrelated
	// deployments on one server do not.
	KeyPrefix string `yaml:"key_prefix" json:"key_prefix"`
	// TLS connects with TLS when Enabled, CA or ServerName is set.
	TLS RedisTLS `yaml:"tls" json:"tls"`
	// Timeout bounds every Redis command: a CONNECT that asks Redis (new
	// client IDs, password failures) waits at most this long before
	// deciding on this node's own counts (default 250ms).
	Timeout Duration `yaml:"timeout" json:"timeout"`
	// SyncInterval is how often rate counts are exchanged (default 100ms);
	// it sets the error of the shared rates (README).
	SyncInterval Duration `yaml:"sync_interval" json:"sync_interval"`
}

// RedisSentinel is the Redis Sentinel deployment that knows the primary.
// Username, password_file, db and tls of the redis section are the data
// nodes' (tls applies to the sentinels too); the sentinels may have their
// own credentials.
type RedisSentinel struct {
	// Master is the name the sentinels monitor the primary under (the
	// NAME of "sentinel monitor NAME host port quorum").
	Master string `yaml:"master" json:"master"`
	// Addresses are the sentinels' host:port: the nodes ask them for the
	// primary, and again after a failover.
	Addresses []string `yaml:"addresses" json:"addresses"`
	// Username is the sentinels' ACL user; empty for the default user.
	Username string `yaml:"username" json:"username"`
	// PasswordFile holds the sentinels' password (the file's first line),
	// relative to the policy file; empty for none.
	PasswordFile string `yaml:"password_file" json:"password_file"`
}

// set reports whether any sentinel setting is given.
func (s RedisSentinel) set() bool {
	return s.Master != "" || len(s.Addresses) > 0 || s.Username != "" || s.PasswordFile != ""
}

// RedisTLS is the TLS of the Redis connection.
type RedisTLS struct {
	Enabled bool `yaml:"enabled" json:"enabled"`
	// CA is a PEM file of the CAs that sign the server's certificate
	// (default: the system's).
	CA string `yaml:"ca" json:"ca"`
	// ServerName is the name in the server's certificate (default: the
	// address's host).
	ServerName string `yaml:"server_name" json:"server_name"`
}

func (s *StatePolicy) applyDefaults() {
	setDefault(&s.Backend, "memory")
	setDefault(&s.Retained, "per_node")
	r := &s.Redis
	setDefault(&r.KeyPrefix, "mqttwaf:")
	setDefault(&r.Timeout, Duration(250*time.Millisecond))
	setDefault(&r.SyncInterval, Duration(100*time.Millisecond))
}

func (s *StatePolicy) validate(fe *fieldErrors) {
	fe.oneOf("state.backend", s.Backend, "memory", "redis")
	fe.oneOf("state.retained", s.Retained, "per_node", "shared")
	if s.Retained == "shared" && s.Backend != "redis" {
		fe.add("state.retained", "shared needs state.backend: redis (the nodes share the retained counts through it); use per_node for one broker")
	}
	r := s.Redis
	hostPort := func(field, addr, example string) {
		if _, port, err := net.SplitHostPort(addr); err != nil || port == "" {
			fe.add(field, "%s is not host:port: write it like %s", quoteShort(addr), example)
		}
	}
	switch sn := r.Sentinel; {
	case sn.set():
		if r.Address != "" {
			fe.add("state.redis.address", "state.redis.sentinel finds the primary: remove address, or remove the sentinel section to use one server")
		}
		if sn.Master == "" {
			fe.add("state.redis.sentinel.master", "set the name the sentinels monitor the primary under (sentinel monitor NAME ...), e.g. mymaster")
		}
		if len(sn.Addresses) == 0 {
			fe.add("state.redis.sentinel.addresses", "list the sentinels' host:port, e.g. [\"sentinel1:26379\", \"sentinel2:26379\", \"sentinel3:26379\"]")
		}
		for i, a := range sn.Addresses {
			hostPort(fmt.Sprintf("state.redis.sentinel.addresses[%d]", i), a, "sentinel1:26379")
		}
	case s.Backend != "redis":
	case r.Address == "":
		fe.add("state.redis.address", "state.backend is redis: set the server's host:port, e.g. redis.internal:6379 (or a state.redis.sentinel section)")
	default:
		hostPort("state.redis.address", r.Address, "redis.internal:6379")
	}
	fe.intRange("state.redis.db", int64(r.DB), 0, 1000)
	if len(r.KeyPrefix) > 64 || strings.ContainsAny(r.KeyPrefix, " \t\r\n*?[]") {
		fe.add("state.redis.key_prefix", "%s: at most 64 characters, no spaces or glob characters (* ? [ ]), e.g. \"mqttwaf:\"", quoteShort(r.KeyPrefix))
	}
	fe.durRange("state.redis.timeout", r.Timeout, 10*time.Millisecond, 10*time.Second)
	fe.durRange("state.redis.sync_interval", r.SyncInterval, 10*time.Millisecond, 5*time.Second)
}

// redisOptions are the backend options of a validated redis state section;
// files are read relative to baseDir.
func (s StatePolicy) redisOptions(baseDir string) (redisstate.Options, error) {
	r := s.Redis
	o := redisstate.Options{Address: r.Address, Username: r.Username, DB: r.DB, KeyPrefix: r.KeyPrefix,
		Timeout: r.Timeout.D(), SyncInterval: r.SyncInterval.D()}
	path := func(f string) string {
		if !filepath.IsAbs(f) && baseDir != "" {
			return filepath.Join(baseDir, f)
		}
		return f
	}
	// password reads the first line of a password file.
	password := func(field, file string) (string, error) {
		b, err := os.ReadFile(path(file))
		if err != nil {
			return "", fmt.Errorf("%s: %v", field, err)
		}
		pw, _, _ := strings.Cut(strings.TrimRight(string(b), "\r\n"), "\n")
		if pw = strings.TrimRight(pw, "\r"); pw == "" {
			return "", fmt.Errorf("%s: %s is empty: put the password on its first line, or remove password_file", field, file)
		}
		return pw, nil
	}
	var err error
	if r.PasswordFile != "" {
		if o.Password, err = password("state.redis.password_file", r.PasswordFile); err != nil {
			return o, err
		}
	}
	if sn := r.Sentinel; sn.set() {
		o.SentinelMaster, o.SentinelAddresses, o.SentinelUsername = sn.Master, slices.Clone(sn.Addresses), sn.Username
		if sn.PasswordFile != "" {
			if o.SentinelPassword, err = password("state.redis.sentinel.password_file", sn.PasswordFile); err != nil {
				return o, err
			}
		}
	}
	if t := r.TLS; t.Enabled || t.CA != "" || t.ServerName != "" {
		// With Sentinel the address is empty, and so is the name: each
		// connection then checks the host it dials (a sentinel or the
		// primary it named), as crypto/tls does.
		host, _, _ := net.SplitHostPort(r.Address)
		o.TLS = &tls.Config{MinVersion: tls.VersionTLS12, ServerName: host}
		if t.ServerName != "" {
			o.TLS.ServerName = t.ServerName
		}
		if t.CA != "" {
			pem, err := os.ReadFile(path(t.CA))
			if err != nil {
				return o, fmt.Errorf("state.redis.tls.ca: %v", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return o, fmt.Errorf("state.redis.tls.ca: %s holds no PEM certificate", t.CA)
			}
			o.TLS.RootCAs = pool
		}
	}
	return o, nil
}

// ownerLiveTTL is how long the record of a connected client's session
// owner outlives this node's last refresh (every third of it): a node that
// dies leaves its clients' records for at most this long.
const ownerLiveTTL = time.Minute

// StageState is the stage of events about the state backend (Redis going
// away and coming back).
const StageState Stage = "state"

// openState connects the WAF's shared state as p's state section says:
// nothing for memory; for redis, the ban and lockout lists become replicas
// of shared ones, and the lockouts, budgets and rates consult Redis. The
// backend starts (connects) only once the WAF runs (startState).
func (w *WAF) openState(p *Policy) error {
	w.st.statePolicy = p.State
	if p.State.Backend != "redis" || w.opts.LocalState {
		return nil
	}
	o, err := p.State.redisOptions(p.baseDir)
	if err != nil {
		return err
	}
	o.Now = w.opts.Now
	o.OnChange = w.stateChanged
	b, err := redisstate.Open(o)
	if err != nil {
		return fmt.Errorf("state.redis: %v", err)
	}
	w.st.shared = b
	w.st.owners = b.Owners("sessions", ownerLiveTTL, 2*p.Broker.MaxConnections)
	bans := b.Bans("bans", w.st.bans.(*ratelimit.BanList))
	bans.OnLifted = w.st.forgiveBan
	w.st.bans = bans
	lo := w.st.lockouts
	lockouts := b.Bans("lockouts", lo.bans.(*ratelimit.BanList))
	lockouts.OnLifted = lo.forgive
	lo.bans, lo.shared = lockouts, b
	if p.State.Retained == "shared" {
		w.st.retained.shared = b.Retained("retained", p.Broker.MaxMessageExpiry.D(), p.Rates.MaxKeys)
		w.st.retained.now = time.Now
		if w.opts.Now != nil {
			w.st.retained.now = w.opts.Now // the backend's clock
		}
	}
	return nil
}

// stateChanged reports Redis connected, going away or coming back as an
// event (stage state, rule state.backend, reason redis_connected,
// redis_unavailable or redis_back), always emitted: an operator must see
// it.
func (w *WAF) stateChanged(c redisstate.Change, detail string) {
	e := w.engine.Load()
	if e == nil {
		return
	}
	v := Verdict{Action: Allow, Rule: "state.backend", Reason: string(c), Detail: detail}
	e.st.counters.add(v.Rule, v.Action, v.Reason, true)
	if e.out.sink != nil {
		e.out.sink.Emit(Event{Time: e.now(), Stage: StageState, Rule: v.Rule, Action: v.Action, Enforced: true, Reason: v.Reason, Detail: v.Detail})
	}
}

// equal reports whether two state sections are the same (== cannot
// compare them: the sentinel addresses are a list; an empty list is no
// list).
func (s StatePolicy) equal(o StatePolicy) bool {
	sa, oa := s.Redis.Sentinel.Addresses, o.Redis.Sentinel.Addresses
	s.Redis.Sentinel.Addresses, o.Redis.Sentinel.Addresses = nil, nil
	return reflect.DeepEqual(s, o) && slices.Equal(sa, oa)
}

// checkStateUnchanged refuses a reload that changes the state section.
func (s *state) checkStateUnchanged(p StatePolicy) error {
	if !p.equal(s.statePolicy) {
		return fmt.Errorf("state: changed from backend %s to %s (or its redis settings changed): the running bans, lockouts and counters cannot move while running; restart the broker to apply it", s.statePolicy.Backend, p.Backend)
	}
	return nil
}

// StateStatus is where the WAF's shared state lives and whether it is
// reachable.
type StateStatus struct {
	// Backend is memory or redis.
	Backend string `json:"backend"`
	// Up is false while Redis is unreachable (always true for memory).
	Up bool `json:"up"`
	// Nodes is how many nodes share the state (synced with Redis in the
	// last second, this one included); 1 for memory.
	Nodes int `json:"nodes"`
	// LastSync is when this node's last completed exchange with Redis
	// started (counts sent, totals read back); zero for memory. An
	// operator alerts on it falling behind.
	LastSync time.Time `json:"last_sync,omitzero"`
}

// State returns the state backend and whether it is reachable.
func (w *WAF) State() StateStatus {
	if w.st.shared == nil {
		return StateStatus{Backend: "memory", Up: true, Nodes: 1}
	}
	return StateStatus{Backend: "redis", Up: w.st.shared.Up(), Nodes: w.st.shared.Nodes(), LastSync: w.st.shared.LastSync()}
}

// Stop stops what the WAF runs in the background (the Redis state
// backend's connections and sync) and releases it. A WAF with the memory
// backend has nothing to stop. The WAF must not be used afterwards.
func (w *WAF) Stop() error {
	if w.st.shared == nil {
		return nil
	}
	return w.st.shared.Close()
}

// banStore is a ban list the WAF keeps: in memory (ratelimit.BanList) or
// a replica of a shared one (redisstate.Bans).
type banStore interface {
	ratelimit.BanStore
	Forgive(t ratelimit.Target) bool
	Len() int
}

// forgiveBan clears the counters that led to t's ban: its flapping and
// escalation counts, so its next CONNECT is not banned again at once (an
// operator lifted the ban, here or on another node).
func (s *state) forgiveBan(t ratelimit.Target) {
	rs := s.currentRates()
	if rs == nil {
		return
	}
	sh, now := rs.sharedRates, time.Now()
	switch t.Kind {
	case ratelimit.KindClientID:
		rs.flapClient.Reset(t.Value)
		rs.violations.Reset(t.Value)
		rs.disconnects.Reset(t.Value)
		if sh != nil {
			sh.flapClient.Reset(now, t.Value)
			sh.escalation.Reset(now, t.Value)
		}
	case ratelimit.KindUsername:
		rs.flapUser.Reset(t.Value)
		if sh != nil {
			sh.flapUser.Reset(now, t.Value)
		}
	case ratelimit.KindIP:
		if n := s.addrs.network(t.Prefix.Addr()); n.Bits() >= t.Prefix.Bits() {
			k := s.addrs.key(t.Prefix.Addr())
			rs.flapIP.Reset(k)
			if sh != nil {
				sh.flapIP.Reset(now, k)
			}
		}
	}
}

// sharedRates are the publish rates shared across nodes (per user name and
// per address, messages and bytes), the flapping counts and the
// escalation's disconnect counts; nil with the memory backend. A node writes to Redis only the keys its own tables hold
// (rates.max_keys each), so what they hold in Redis is bounded by nodes x
// max_keys x two windows per table.
type sharedRates struct {
	userMsgs, userBytes, ipMsgs, ipBytes *redisstate.Window
	// flapping counts (rates.flapping), compared with its thresholds
	flapClient, flapUser, flapIP *redisstate.Window
	// new topics per identity (rates.new_topics), topics new to this node
	newTopics *redisstate.Window
	// disconnects for rate violations per client ID (rates.escalation),
	// compared with ban_after; the violations that lead to them are counted
	// per node, where the connection is
	escalation *redisstate.Window
}

func newSharedRates(b *redisstate.Backend, r RatesPolicy) *sharedRates {
	if b == nil {
		return nil
	}
	win := func(name string, rt Rate) *redisstate.Window { return b.Window("rate:"+name, rt.N, rt.Per, r.MaxKeys) }
	p, f := r.Publish, r.Flapping
	return &sharedRates{
		userMsgs: win("user_msgs", p.PerUsername.Messages), userBytes: win("user_bytes", p.PerUsername.Bytes),
		ipMsgs: win("ip_msgs", p.PerIP.Messages), ipBytes: win("ip_bytes", p.PerIP.Bytes),
		flapClient: win("flap_client", f.Connects), flapUser: win("flap_user", f.Connects), flapIP: win("flap_ip", f.PerIP),
		newTopics:  win("new_topics", r.NewTopics.PerIdentity),
		escalation: win("escalation", Rate{N: int64(r.Escalation.BanAfter), Per: escalationWindow}),
	}
}

func (s *sharedRates) windows() []*redisstate.Window {
	if s == nil {
		return nil
	}
	return []*redisstate.Window{s.userMsgs, s.userBytes, s.ipMsgs, s.ipBytes, s.flapClient, s.flapUser, s.flapIP, s.newTopics, s.escalation}
}

// over counts one CONNECT of key in w (a flapping count) and reports
// whether the count across nodes is over limit; false for the memory
// backend, or a key the shared table has no room for (the local count
// decides).
func (s *sharedRates) over(w func(*sharedRates) *redisstate.Window, now time.Time, key string, limit float64) bool {
	if s == nil {
		return false
	}
	n, ok := w(s).AddN(now, key, 1)
	return ok && n > limit
}

// shared decides on a client ID the local novelty state does not know:
// across nodes when Redis answers, on the local budgets otherwise. ok
// reports whether Redis answered.
func (r *newClientIDs) shared(now time.Time, id string, budgets []ratelimit.Budget) (allowed, ok bool) {
	b := r.st.shared
	if b == nil {
		return false, false
	}
	bs := r.sharedBudgets(now, id, budgets)
	if bs == nil { // admitted through this node lately: counted already
		return true, true
	}
	allowed, err := b.AdmitNew(now, "new_ids", id, r.st.policy.NewClientIDs.Global.Per, bs)
	if err != nil {
		return false, false
	}
	if allowed {
		r.sharedAdmitted(now, id)
	}
	return allowed, true
}

// sharedAdmitted remembers a client ID Redis admitted, so that its
// reconnects through this node skip the round trip; it returns true.
func (r *newClientIDs) sharedAdmitted(now time.Time, id string) bool {
	r.st.newIDs.Allow(now, id)
	return true
}

// sharedBudgets are budgets as Redis counts them, nil when id was admitted
// through this node lately (its CONNECT spends none: nothing to ask Redis).
func (r *newClientIDs) sharedBudgets(now time.Time, id string, budgets []ratelimit.Budget) []redisstate.Budget {
	if r.st.newIDs.Seen(now, id) {
		return nil
	}
	bs := make([]redisstate.Budget, len(budgets))
	for i, x := range budgets {
		bs[i] = redisstate.Budget{Group: x.Group, Limit: x.Limit}
	}
	return bs
}

// sharedFailure counts a failed authentication of key across nodes and
// reports whether the count is over limit; false when Redis does not answer
// (the local count decides alone).
func (l *lockouts) sharedFailure(now time.Time, ns, key string, limit int) bool {
	if l.shared == nil {
		return false
	}
	n, err := l.shared.AddFailure(now, ns, key, l.window)
	return err == nil && n > float64(limit)
}

// forgive clears t's failure counts here and in Redis (its lockout was
// lifted, here or on another node).
func (l *lockouts) forgive(t ratelimit.Target) {
	l.bans.Forgive(t)
	now := l.now()
	switch t.Kind {
	case ratelimit.KindUsername:
		l.userFailures.Reset(t.Value)
		if l.shared != nil {
			l.shared.ResetFailures(now, "fail:user", t.Value, l.window)
		}
	case ratelimit.KindIP:
		if n := l.addrs.network(t.Prefix.Addr()); n.Bits() >= t.Prefix.Bits() {
			k := l.addrs.key(t.Prefix.Addr())
			l.addrFailures.Reset(k)
			if l.shared != nil {
				l.shared.ResetFailures(now, "fail:addr", k, l.window)
			}
		}
	}
}

// check counts a publish of n bytes against the shared rates and returns
// the reason it is refused, "" if it is not: the same reasons as the local
// limits, which still apply first (they bound what one node admits, and
// are all that applies while Redis is unreachable).
func (s *sharedRates) check(now time.Time, user, ip string, n int) string {
	switch {
	case user != "" && !s.userMsgs.AllowN(now, user, 1):
		return "username_message_rate"
	case user != "" && !s.userBytes.AllowN(now, user, n):
		return "username_byte_rate"
	case ip != "" && !s.ipMsgs.AllowN(now, ip, 1):
		return "ip_message_rate"
	case ip != "" && !s.ipBytes.AllowN(now, ip, n):
		return "ip_byte_rate"
	}
	return ""
}

func flapClientWin(s *sharedRates) *redisstate.Window { return s.flapClient }
func flapUserWin(s *sharedRates) *redisstate.Window   { return s.flapUser }
func flapIPWin(s *sharedRates) *redisstate.Window     { return s.flapIP }
func escalationWin(s *sharedRates) *redisstate.Window { return s.escalation }
