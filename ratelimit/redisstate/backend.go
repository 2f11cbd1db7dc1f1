// Package redisstate keeps the state several mqttwaf nodes must share in
// Redis (or Valkey): bans and lockouts, password-failure counts, budgets of
// new client IDs, and the per-identity and per-address publish rates. Each
// node keeps enforcing from local state, so nothing on the publish path waits
// for Redis:
//
//   - bans and lockouts are held in a local ratelimit.BanList that every
//     check reads; changes are written to Redis (one key per ban, with the
//     ban's own TTL), announced on the <prefix>events channel, and every node
//     reloads the whole list (SCAN) when it (re)connects;
//   - rates are counted locally and the counts are added to per-window Redis
//     keys every sync interval (one pipeline), which returns the global
//     totals each node then enforces on (global_last + local_since_sync);
//   - password failures and new client IDs take one round trip at CONNECT,
//     with a short timeout, and fall back to local counting when Redis does
//     not answer.
//
// When Redis is unreachable nothing fails open: local bans keep being
// enforced, new bans are kept in a bounded queue and written when Redis is
// back, and every limit falls back to the node's own counts. Reconnects are
// paced by a jittered exponential back-off so a fleet of nodes does not
// stampede a Redis that just came back. Every key written has a TTL.
//
// The package knows nothing of MQTT or policy files; mqttwaf wires it from
// the policy's state section.
package redisstate

import (
	"context"
	crand "crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Options configure a Backend. The zero value is not usable: Address, or
// SentinelMaster and SentinelAddresses, are required.
type Options struct {
	// Address is host:port of the Redis server; empty with Sentinel.
	Address string
	// SentinelMaster, if set, finds the primary through Redis Sentinel:
	// it is the name the sentinels at SentinelAddresses (host:port each)
	// monitor it under. After a failover the backend reconnects to the
	// primary they promoted, as after any outage.
	SentinelMaster    string
	SentinelAddresses []string
	// SentinelUsername and SentinelPassword authenticate to the sentinels,
	// which may use other credentials than the data nodes.
	SentinelUsername, SentinelPassword string
	// Username and Password authenticate (Redis ACL); empty means none.
	Username, Password string
	// DB is the database number. Default 0.
	DB int
	// KeyPrefix starts every key and the events channel. Default "mqttwaf:".
	KeyPrefix string
	// TLS, if set, connects with TLS.
	TLS *tls.Config
	// Timeout bounds every Redis command (and the dial). Default 250ms.
	Timeout time.Duration
	// SyncInterval is how often local rate counts are written and the global
	// totals read back. Default 100ms.
	SyncInterval time.Duration
	// MaxPending caps the ban changes kept while Redis is unreachable.
	// Default 20000.
	MaxPending int
	// MaxBackoff caps the wait between reconnect attempts. Default 5s.
	MaxBackoff time.Duration
	// OnChange is called (from the backend's own goroutine) when Redis is
	// first reached (Connected), becomes unreachable (Unavailable) or
	// reachable again (Back), with what happened in operator terms.
	OnChange func(c Change, detail string)
	// Now is the clock (time.Now if nil).
	Now func() time.Time
}

// Backend is one node's connection to the shared state. Create it with
// Open and stop it with Close.
type Backend struct {
	opts   Options
	rdb    *redis.Client
	prefix string
	node   string // this node's id, to skip its own announcements
	now    func() time.Time

	up    atomic.Bool
	nodes atomic.Int64 // nodes that synced lately (at least 1: this one)
	// lastSync is when the last completed sync started, Unix ns
	lastSync atomic.Int64
	kick     chan struct{}
	stop     chan struct{}
	done     sync.WaitGroup

	mu       sync.Mutex
	bans     map[string]*Bans // by namespace
	windows  []*Window
	owners   []*Owners
	retained []*Retained

	startOnce sync.Once

	psMu    sync.Mutex
	ps      *redis.PubSub
	closing bool // Close was called
}

// Open returns a Backend; Start starts it. It does not wait for Redis: a node whose Redis is
// not reachable at start runs on its local state (and says so through
// OnChange) until it is.
func Open(o Options) (*Backend, error) {
	switch {
	case o.SentinelMaster != "" && o.Address != "":
		return nil, errors.New("redisstate: both an address and a sentinel master")
	case o.SentinelMaster != "" && len(o.SentinelAddresses) == 0:
		return nil, errors.New("redisstate: a sentinel master but no sentinel addresses")
	case o.SentinelMaster == "" && o.Address == "":
		return nil, errors.New("redisstate: no address")
	}
	if o.KeyPrefix == "" {
		o.KeyPrefix = "mqttwaf:"
	}
	if o.Timeout <= 0 {
		o.Timeout = 250 * time.Millisecond
	}
	if o.SyncInterval <= 0 {
		o.SyncInterval = 100 * time.Millisecond
	}
	if o.MaxPending <= 0 {
		o.MaxPending = 20000
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 5 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	var id [8]byte
	_, _ = crand.Read(id[:])
	b := &Backend{
		opts: o, prefix: o.KeyPrefix, node: hex.EncodeToString(id[:]), now: o.Now,
		kick: make(chan struct{}, 1), stop: make(chan struct{}), bans: map[string]*Bans{},
	}
	b.nodes.Store(1)
	// The same settings for one server and for a primary found through
	// Sentinel (the same *redis.Client either way).
	const poolSize, minIdle = 8, 1
	if o.SentinelMaster != "" {
		b.rdb = redis.NewFailoverClient(&redis.FailoverOptions{
			MasterName: o.SentinelMaster, SentinelAddrs: o.SentinelAddresses,
			SentinelUsername: o.SentinelUsername, SentinelPassword: o.SentinelPassword,
			Username: o.Username, Password: o.Password, DB: o.DB, TLSConfig: o.TLS,
			DialTimeout: o.Timeout, ReadTimeout: o.Timeout, WriteTimeout: o.Timeout,
			MaxRetries: -1, DialerRetries: 1, PoolSize: poolSize, MinIdleConns: minIdle,
			DisableIdentity: true,
		})
		return b, nil
	}
	b.rdb = redis.NewClient(&redis.Options{
		Addr: o.Address, Username: o.Username, Password: o.Password, DB: o.DB, TLSConfig: o.TLS,
		DialTimeout: o.Timeout, ReadTimeout: o.Timeout, WriteTimeout: o.Timeout,
		// The backend retries on its own schedule (the sync loop and the
		// reconnect back-off); a retry inside a command would only hold a
		// CONNECT longer; so would go-redis's five dial attempts.
		MaxRetries: -1, DialerRetries: 1, PoolSize: poolSize, MinIdleConns: minIdle,
		DisableIdentity: true, // no CLIENT SETINFO (older servers and Valkey log errors)
	})
	return b, nil
}

// Start starts the backend's loop: connecting, syncing, reconnecting.
// Until then the backend is down and its users decide on local state.
func (b *Backend) Start() {
	b.startOnce.Do(func() {
		b.done.Add(1)
		go b.run()
	})
}

// Close stops the backend's goroutines and closes its connections. Pending
// changes not yet written are lost (they are in the node's local state).
func (b *Backend) Close() error {
	select {
	case <-b.stop:
		return nil
	default:
	}
	close(b.stop)
	b.psMu.Lock()
	b.closing = true // a connect under way must not start a listener now
	if b.ps != nil {
		_ = b.ps.Close()
		b.ps = nil
	}
	b.psMu.Unlock()
	b.done.Wait()
	return b.rdb.Close()
}

// Up reports whether Redis answered the last sync.
func (b *Backend) Up() bool { return b.up.Load() }

// Nodes is the number of nodes (this one included) that synced with Redis
// in the last second, as of the last sync.
func (b *Backend) Nodes() int { return int(b.nodes.Load()) }

// Address is where Redis is, for messages: host:port, or "sentinel
// mymaster via s1:26379,s2:26379".
func (b *Backend) Address() string {
	if b.opts.SentinelMaster != "" {
		return "sentinel " + b.opts.SentinelMaster + " via " + strings.Join(b.opts.SentinelAddresses, ",")
	}
	return b.opts.Address
}

// checkHint is what an operator should check when Redis is unreachable.
func (b *Backend) checkHint() string {
	if b.opts.SentinelMaster != "" {
		return "check state.redis.sentinel, the sentinels and the primary they name (a failover under way ends by itself)"
	}
	return "check state.redis.address and the server"
}

func (b *Backend) key(parts ...string) string {
	n := len(b.prefix)
	for _, p := range parts {
		n += len(p) + 1
	}
	k := make([]byte, 0, n)
	k = append(k, b.prefix...)
	for i, p := range parts {
		if i > 0 {
			k = append(k, ':')
		}
		k = append(k, p...)
	}
	return string(k)
}

func (b *Backend) channel() string { return b.prefix + "events" }

// ctx is a context bounded by the command timeout.
func (b *Backend) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), b.opts.Timeout)
}

// wake asks the loop to sync now (a ban to write).
func (b *Backend) wake() {
	select {
	case b.kick <- struct{}{}:
	default:
	}
}

// run is the backend's loop: connect (with back-off), then sync every
// interval or when woken, until a sync fails.
func (b *Backend) run() {
	defer b.done.Done()
	tick := time.NewTicker(b.opts.SyncInterval)
	defer tick.Stop()
	backoff := b.opts.SyncInterval
	var retryAt time.Time
	reported := false // whether "unavailable" was reported since the last "up"
	everUp := false
	for {
		select {
		case <-b.stop:
			return
		case <-tick.C:
		case <-b.kick:
		}
		now := time.Now()
		if !b.up.Load() {
			if now.Before(retryAt) {
				continue
			}
			if err := b.connect(); err != nil {
				if !reported {
					b.reportUnavailable(err)
					reported = true
				}
				// Full jitter: a fleet of nodes that lost Redis together
				// comes back spread over the whole interval.
				retryAt = now.Add(time.Duration(rand.Int64N(int64(backoff)) + 1))
				backoff = min(backoff*2, b.opts.MaxBackoff)
				continue
			}
			backoff = b.opts.SyncInterval
			b.up.Store(true)
			if everUp || reported {
				b.report(Back, fmt.Sprintf("redis at %s is back: shared bans, lockouts and budgets in force again (state reloaded, queued changes written)", b.Address()))
			} else {
				b.report(Connected, fmt.Sprintf("redis at %s connected: bans, lockouts, budgets and rates shared with the other nodes", b.Address()))
			}
			everUp, reported = true, false
		}
		if err := b.sync(); err != nil {
			b.markDown()
			b.reportUnavailable(err)
			reported = true
			retryAt = now.Add(time.Duration(rand.Int64N(int64(backoff)) + 1))
		} else {
			b.lastSync.Store(now.UnixNano())
		}
	}
}

// LastSync is when the last sync that completed started: every count this
// node had made before then has reached Redis, and every total it read back
// was Redis's at that time or later. Zero before the first.
func (b *Backend) LastSync() time.Time {
	if ns := b.lastSync.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}

// Change is what happened to the connection, for Options.OnChange.
type Change string

// The changes OnChange reports.
const (
	Connected   Change = "redis_connected"
	Unavailable Change = "redis_unavailable"
	Back        Change = "redis_back"
)

func (b *Backend) reportUnavailable(err error) {
	b.report(Unavailable, fmt.Sprintf("redis unavailable at %s (%v): enforcing this node's local state (bans and lockouts it knows, its own rate counts) and retrying with back-off; %s", b.Address(), err, b.checkHint()))
}

func (b *Backend) report(c Change, detail string) {
	if b.opts.OnChange != nil {
		b.opts.OnChange(c, detail)
	}
}

// markDown notes that Redis stopped answering; the subscription is dropped
// and re-made on reconnect (announcements missed meanwhile are made good by
// the resync).
func (b *Backend) markDown() { b.markDownIf(nil) }

// markDownIf is markDown, if ps (unless nil) is still the subscription: a
// subscription that fails after it was replaced changes nothing.
func (b *Backend) markDownIf(ps *redis.PubSub) {
	b.psMu.Lock()
	defer b.psMu.Unlock()
	if ps != nil && b.ps != ps {
		return
	}
	b.up.Store(false)
	if b.ps != nil {
		_ = b.ps.Close()
		b.ps = nil
	}
}

// connect subscribes to the events channel, then writes what was queued
// and reloads the ban lists: subscribing first means no announcement made
// after the reload is missed.
func (b *Backend) connect() error {
	ctx, cancel := b.ctx()
	defer cancel()
	if err := b.rdb.Ping(ctx).Err(); err != nil {
		return err
	}
	ps := b.rdb.Subscribe(context.Background())
	if err := ps.Subscribe(ctx, b.channel()); err != nil {
		_ = ps.Close()
		return err
	}
	if _, err := ps.ReceiveTimeout(ctx, b.opts.Timeout); err != nil { // the subscription's confirmation
		_ = ps.Close()
		return err
	}
	b.psMu.Lock()
	if b.closing {
		b.psMu.Unlock()
		_ = ps.Close()
		return errors.New("closed")
	}
	b.ps = ps
	b.done.Add(1) // before Close can wait: it takes psMu first
	b.psMu.Unlock()
	go b.listen(ps)
	for _, bl := range b.banLists() {
		if err := bl.flush(); err != nil {
			b.markDown()
			return err
		}
		if err := bl.resync(); err != nil {
			b.markDown()
			return err
		}
	}
	b.mu.Lock()
	for _, o := range b.owners {
		o.mu.Lock()
		o.lastRefresh = time.Time{} // records may have expired meanwhile: write them at the next sync
		o.mu.Unlock()
	}
	b.mu.Unlock()
	return nil
}

// listen applies other nodes' announcements until ps is closed or fails.
func (b *Backend) listen(ps *redis.PubSub) {
	defer b.done.Done()
	for {
		msg, err := ps.ReceiveMessage(context.Background())
		if err != nil {
			select {
			case <-b.stop:
			default:
				// Announcements may have been missed: reconnect, which
				// subscribes again and reloads the lists.
				b.markDownIf(ps)
				b.wake()
			}
			return
		}
		b.apply(msg.Payload)
	}
}

func (b *Backend) banLists() []*Bans {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]*Bans, 0, len(b.bans))
	for _, bl := range b.bans {
		out = append(out, bl)
	}
	return out
}

// sync writes queued ban changes and local rate counts and reads back the
// global rate totals.
func (b *Backend) sync() error {
	for _, bl := range b.banLists() {
		if err := bl.flush(); err != nil {
			return err
		}
	}
	if err := b.present(); err != nil { // also how a quiet node notices Redis going away
		return err
	}
	now := b.now()
	b.mu.Lock() // what is tracked now; Track and Untrack may change it meanwhile
	windows, owners, retained := slices.Clone(b.windows), slices.Clone(b.owners), slices.Clone(b.retained)
	b.mu.Unlock()
	for _, w := range windows {
		if _, err := w.sync(now); err != nil {
			return err
		}
	}
	for _, o := range owners {
		if err := o.refresh(now); err != nil {
			return err
		}
	}
	for _, r := range retained {
		if err := r.sync(now); err != nil {
			return err
		}
	}
	return nil
}

// present records this node in the presence set and counts the nodes that
// synced within the last second (or five intervals): the shares of the
// shared rates are split between them.
func (b *Backend) present() error {
	ctx, cancel := b.ctx()
	defer cancel()
	now := time.Now().UnixMilli()
	recent := max(time.Second, 5*b.opts.SyncInterval)
	key := b.key("nodes")
	pipe := b.rdb.Pipeline()
	pipe.ZAdd(ctx, key, redis.Z{Score: float64(now), Member: b.node})
	pipe.ZRemRangeByScore(ctx, key, "-inf", strconv.FormatInt(now-recent.Milliseconds(), 10))
	n := pipe.ZCard(ctx, key)
	pipe.PExpire(ctx, key, 2*recent)
	if _, err := pipe.Exec(ctx); err != nil {
		return err
	}
	b.nodes.Store(max(1, n.Val()))
	return nil
}
