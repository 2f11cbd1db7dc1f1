package hooks

import (
	"bytes"
	"cmp"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/storage"
	"github.com/mochi-mqtt/server/v2/packets"
	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/mqttwaf/mqttwaf/mqttwaf"
	"github.com/mqttwaf/mqttwaf/ratelimit"
)

// Storage keeps a WAF-protected broker's state across restarts, in one
// bbolt file (StorageFile) in a directory: persistent sessions (clean start
// false, or a session expiry) with their subscriptions and the QoS 1/2
// messages queued or in flight for them, retained messages, the WAF's ban
// and lockout lists, and the key that marks stored redacted views
// (mqttwaf.Options.ViewKey).
//
// It is its own mochi storage hook rather than mochi's bolt hook, whose
// v2.7.9 records lose what the WAF relies on: it stores subscriptions the
// ACL refused (with the refusal code as their QoS), writes clean sessions
// too (deleted at disconnect, left behind by a crash), never deletes the
// subscriptions and queued messages of expired sessions (the file grows
// with every client ID an attacker invents, and a restart subscribes them
// again), and drops the packet identifier and expiry of queued messages
// (every queued message of a session comes back under identifier 0, and
// message expiry stops applying). Here:
//
//   - only persistent sessions are written, and only subscriptions the
//     broker granted; a session that expires, ends clean or is taken over
//     by a clean start takes its subscriptions and messages with it; a
//     session that expired while the broker was down is dropped at start;
//   - only what the WAF let through is written: mochi calls the storage
//     callbacks after the publish, subscribe and delivery checks, with the
//     message as the WAF rewrote it (the redacted view, when no role reads
//     raw);
//   - the WAF's view of each stored session (identity, role, listener) is
//     kept beside it, so deliveries queued for an offline session after a
//     restart are checked against the identity that subscribed, as before
//     the restart, and the retained budgets count stored retained messages
//     against their publishers again.
//
// Writes go through one writer goroutine that commits them in batches (one
// fsync for many changes), in order; a crash loses the changes of the batch
// being written (milliseconds), a clean shutdown loses nothing. Bans and
// lockouts are saved when they changed, every SaveEvery, and at shutdown.
//
// Use: OpenStorage before the WAF is built (for its ViewKey), Install after
// hooks.Install, on a server that has not started.
type Storage struct {
	mqtt.HookBase
	db       *bolt.DB
	path     string
	viewKey  []byte
	every    time.Duration
	log      *slog.Logger
	server   *mqtt.Server
	st       *stack
	waf      *mqttwaf.WAF
	maxIdle  int64                      // seconds an offline v3 session lives (broker.max_session_expiry)
	restored map[string]*mqttwaf.Client // client ID -> the WAF's view, until sessions are restored

	ops      chan storeOp
	done     chan struct{} // writer finished
	stopSave chan struct{}
	saved    chan struct{}
	mu       sync.Mutex // closed, loading
	closed   bool
	loading  bool
	stopOnce sync.Once
	stopErr  error
	lastSave [2][]byte // bans, lockouts as last written
}

// StorageFile is the name of the database file in StorageOptions.Dir.
const StorageFile = "mqttwaf.db"

// StorageOptions configures Storage. Only Dir must be set.
type StorageOptions struct {
	// Dir holds the database file; it is created (mode 0700) if missing.
	Dir string `yaml:"dir" json:"dir"`
	// SaveEvery is how often the ban and lockout lists are saved if they
	// changed (they are also saved at shutdown). Default 10s.
	SaveEvery time.Duration `yaml:"save_every" json:"save_every"`
	// LockTimeout is how long to wait for another process to release the
	// file before giving up. Default 1s.
	LockTimeout time.Duration `yaml:"lock_timeout" json:"lock_timeout"`
	// Logger receives write errors. Default: mochi's logger, once
	// installed.
	Logger *slog.Logger `yaml:"-" json:"-"`
}

// Buckets of the database. Subscriptions and in-flight messages have one
// nested bucket per client ID, so a session's records go with one delete.
var (
	bucketSessions = []byte("sessions")      // client ID -> storedSession
	bucketSubs     = []byte("subscriptions") // client ID -> filter -> storage.Subscription
	bucketInflight = []byte("inflight")      // client ID -> packet ID (2 bytes) -> storedMessage
	bucketRetained = []byte("retained")      // topic -> storedMessage
	bucketWAF      = []byte("waf")           // keys below
	keyFormat      = []byte("format")
	keyViewKey     = []byte("view-key")
	keyBans        = []byte("bans")
	keyLockouts    = []byte("lockouts")
	allBuckets     = [][]byte{bucketSessions, bucketSubs, bucketInflight, bucketRetained, bucketWAF}
)

// storageFormat is written to a new file and checked on every open, so a
// file of another format is refused rather than misread.
const storageFormat = "mqttwaf-storage-1"

// storedSession is a persistent session: mochi's record, the WAF's view of
// the client, and when it went offline (unix seconds, 0 while connected).
type storedSession struct {
	Client       storage.Client  `json:"client"`
	View         *mqttwaf.Client `json:"view,omitempty"`
	Disconnected int64           `json:"disconnected,omitempty"`
}

// storedMessage is mochi's message record with what mochi's own record
// leaves out: the packet identifier (ToPacket reads it, mochi's hooks never
// set it), the expiry and the protocol version (message expiry checks both),
// and, for a retained message, its publisher's identity (the retained
// budgets' owner; empty for the broker's own).
type storedMessage struct {
	storage.Message
	Expiry   int64  `json:"expiry,omitempty"`
	Protocol byte   `json:"protocol,omitempty"`
	Owner    string `json:"owner,omitempty"`
	OwnerID  string `json:"owner_id,omitempty"`
}

type storeOp struct {
	del    bool
	bucket []byte
	sub    string // nested bucket (client ID); "" for none
	drop   bool   // delete the nested bucket sub
	key    []byte
	value  []byte
	msg    *storedMessage // encoded by the writer, unless a later change in its batch makes it moot
	skip   bool           // superseded within its batch
}

// opKey names the record a change writes.
type opKey struct{ bucket, sub, key string }

// OpenStorage opens (or creates) the database in o.Dir. It fails, naming
// the file, if the directory cannot be created or written, another process
// holds the file, or the file is not a database of this format or is
// damaged: a broker asked to keep state must not run without it.
func OpenStorage(o StorageOptions) (*Storage, error) {
	if o.Dir == "" {
		return nil, errors.New("hooks: storage needs a directory")
	}
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("cannot create the data directory: %w", err)
	}
	path := filepath.Join(o.Dir, StorageFile)
	// The free-page list is rebuilt at open instead of written at every
	// commit: less to write per batch, as etcd runs bbolt.
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: cmp.Or(o.LockTimeout, time.Second),
		NoFreelistSync: true, FreelistType: bolt.FreelistMapType})
	switch {
	case errors.Is(err, bolterrors.ErrTimeout):
		return nil, fmt.Errorf("%s is in use by another process (another broker on the same data directory?)", path)
	case err != nil:
		return nil, fmt.Errorf("cannot open %s: %w", path, err)
	}
	s := &Storage{db: db, path: path, every: cmp.Or(o.SaveEvery, 10*time.Second), log: o.Logger}
	if err := s.prepare(); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// prepare creates the buckets and the view key of a new file, and reads
// every record of an existing one, so a damaged file is found here and not
// halfway through the broker's start.
func (s *Storage) prepare() (err error) {
	defer func() {
		if r := recover(); r != nil { // bbolt panics on some damaged pages
			err = fmt.Errorf("damaged database: %v", r)
		}
	}()
	return s.db.Update(func(tx *bolt.Tx) error {
		w := tx.Bucket(bucketWAF)
		if w == nil {
			if k, _ := tx.Cursor().First(); k != nil {
				return errors.New("not an mqttwaf storage file (no waf bucket)")
			}
			for _, b := range allBuckets {
				if _, err := tx.CreateBucket(b); err != nil {
					return err
				}
			}
			key := make([]byte, 32)
			_, _ = rand.Read(key)
			w = tx.Bucket(bucketWAF)
			if err := w.Put(keyFormat, []byte(storageFormat)); err != nil {
				return err
			}
			s.viewKey = key
			return w.Put(keyViewKey, key)
		}
		if f := w.Get(keyFormat); string(f) != storageFormat {
			return fmt.Errorf("format %q, this build reads %q", f, storageFormat)
		}
		for _, b := range allBuckets {
			if tx.Bucket(b) == nil {
				return fmt.Errorf("bucket %s missing", b)
			}
		}
		s.viewKey = bytes.Clone(w.Get(keyViewKey))
		if len(s.viewKey) < 32 {
			return errors.New("view key missing or short")
		}
		return checkRecords(tx)
	})
}

// checkRecords decodes every record once.
func checkRecords(tx *bolt.Tx) error {
	check := func(what string, k, v []byte, into any) error {
		if err := json.Unmarshal(v, into); err != nil {
			return fmt.Errorf("damaged %s record %q: %w", what, k, err)
		}
		return nil
	}
	if err := tx.Bucket(bucketSessions).ForEach(func(k, v []byte) error { return check("session", k, v, &storedSession{}) }); err != nil {
		return err
	}
	if err := tx.Bucket(bucketRetained).ForEach(func(k, v []byte) error { return check("retained", k, v, &storedMessage{}) }); err != nil {
		return err
	}
	for _, name := range [][]byte{bucketSubs, bucketInflight} {
		b := tx.Bucket(name)
		err := b.ForEach(func(id, v []byte) error {
			nb := b.Bucket(id)
			if nb == nil {
				return fmt.Errorf("damaged %s record %q", name, id)
			}
			return nb.ForEach(func(k, v []byte) error {
				if name[0] == 's' {
					return check("subscription", k, v, &storage.Subscription{})
				}
				return check("in-flight", k, v, &storedMessage{})
			})
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// ViewKey is the key to give the WAF (mqttwaf.Options.ViewKey), kept in the
// file so stored redacted views are recognised after a restart.
func (s *Storage) ViewKey() []byte { return bytes.Clone(s.viewKey) }

// Path is the database file.
func (s *Storage) Path() string { return s.path }

// Backup writes a consistent copy of the database to w while the broker
// runs (changes still queued for the writer are not in it) and returns its
// size. The copy is a database file: put it in a data directory as
// StorageFile to restore it.
func (s *Storage) Backup(w io.Writer) (n int64, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		n, err = tx.WriteTo(w)
		return err
	})
	return n, err
}

// Install restores w's bans and lockouts from the file, adds s to server as
// its storage hook (after the WAF's hooks, which must be installed), and
// starts saving. mochi reads the sessions and retained messages back when
// the server starts (Serve). A damaged ban or lockout snapshot is an error.
func (s *Storage) Install(server *mqtt.Server, w *mqttwaf.WAF) error {
	if server == nil || server.Options == nil || server.Options.Capabilities == nil || w == nil {
		return errors.New("hooks: Storage.Install needs a server made by mqtt.New and its WAF")
	}
	st := stackFor(server.Options.Capabilities, false)
	if st == nil || st.waf != w || st.started.Load() {
		return errors.New("hooks: install the WAF on the server first (hooks.Install), then the storage, before Serve")
	}
	s.server, s.st, s.waf = server, st, w
	s.maxIdle = int64(server.Options.Capabilities.MaximumSessionExpiryInterval)
	if s.log == nil {
		s.log = server.Log
	}
	now := time.Now()
	for i, l := range []struct {
		key   []byte
		store ratelimit.BanStore
		what  string
	}{{keyBans, w.Bans(), "bans"}, {keyLockouts, w.Lockouts(), "lockouts"}} {
		var data []byte
		_ = s.db.View(func(tx *bolt.Tx) error { data = bytes.Clone(tx.Bucket(bucketWAF).Get(l.key)); return nil })
		if _, _, err := ratelimit.RestoreBans(l.store, now, data); err != nil {
			return fmt.Errorf("%s: %s: %w", s.path, l.what, err)
		}
		s.lastSave[i] = data
	}
	s.ops = make(chan storeOp, maxBatch)
	s.done, s.stopSave, s.saved = make(chan struct{}), make(chan struct{}), make(chan struct{})
	s.loading = true
	go s.writer()
	go s.saver()
	if err := server.AddHook(s, nil); err != nil {
		_ = s.Stop()
		return err
	}
	return nil
}

// Close closes the file of a Storage that was never installed (a start-up
// that failed on the way); an installed one is closed by the server.
func (s *Storage) Close() error {
	if s.ops != nil {
		return s.Stop()
	}
	return s.db.Close()
}

// ID implements mqtt.Hook.
func (s *Storage) ID() string { return "mqttwaf.storage" }

// Provides implements mqtt.Hook.
func (s *Storage) Provides(b byte) bool {
	switch b {
	case mqtt.OnSessionEstablished, mqtt.OnDisconnect, mqtt.OnSubscribed, mqtt.OnUnsubscribed,
		mqtt.OnRetainMessage, mqtt.OnRetainedExpired, mqtt.OnQosPublish, mqtt.OnQosComplete,
		mqtt.OnQosDropped, mqtt.OnClientExpired, mqtt.OnStarted,
		mqtt.StoredClients, mqtt.StoredSubscriptions, mqtt.StoredInflightMessages, mqtt.StoredRetainedMessages:
		return true
	}
	return false
}

// persistentSession reports whether cl's session outlives its connection (the
// test mochi makes when the connection ends).
func persistentSession(cl *mqtt.Client) bool {
	if cl.Net.Inline {
		return false
	}
	if cl.Properties.ProtocolVersion == 5 {
		return cl.Properties.Props.SessionExpiryInterval > 0
	}
	return !cl.Properties.Clean
}

// current reports whether cl is the client mochi holds under its ID (not a
// connection another one took over, nor one being replaced).
func (s *Storage) current(cl *mqtt.Client) bool {
	// StopCause is set before the old connection's goroutine ends, where
	// IsTakenOver is set by the new one a moment later.
	if cl.IsTakenOver() || cl.StopCause() == packets.ErrSessionTakenOver {
		return false
	}
	cur, ok := s.server.Clients.Get(cl.ID)
	return !ok || cur == cl
}

func (s *Storage) enqueue(op storeOp) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		s.log.Error("mqttwaf storage: a change arrived after shutdown and is not kept", "bucket", string(op.bucket))
		return
	}
	s.ops <- op // blocks when the writer is behind: back-pressure, never a lost change
}

func (s *Storage) put(bucket []byte, sub string, key []byte, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		s.log.Error("mqttwaf storage: cannot encode a record", "error", err)
		return
	}
	s.enqueue(storeOp{bucket: bucket, sub: sub, key: key, value: data})
}

// putMessage queues a message record. It is encoded by the writer, off
// the delivery path, and not at all when the same batch deletes it again (a
// delivery the subscriber acknowledged at once): the slices of a message
// mochi holds are never written to, so they can be read later.
func (s *Storage) putMessage(bucket []byte, sub string, key []byte, m storedMessage) {
	s.enqueue(storeOp{bucket: bucket, sub: sub, key: key, msg: &m})
}

func (s *Storage) del(bucket []byte, sub string, key []byte) {
	s.enqueue(storeOp{del: true, bucket: bucket, sub: sub, key: key})
}

// forget removes a session and everything it holds.
func (s *Storage) forget(id string) {
	s.del(bucketSessions, "", []byte(id))
	s.enqueue(storeOp{drop: true, bucket: bucketSubs, sub: id})
	s.enqueue(storeOp{drop: true, bucket: bucketInflight, sub: id})
}

// maxBatch bounds the changes queued for the writer and committed in one
// transaction: a slow fsync is absorbed by a larger batch, not by the
// deliveries waiting to queue theirs.
const maxBatch = 8192

// writer commits queued changes, as many per transaction as are waiting.
func (s *Storage) writer() {
	defer close(s.done)
	batch := make([]storeOp, 0, 256)
	seen, dropped := map[opKey]bool{}, map[opKey]bool{}
	for op := range s.ops {
		batch = append(batch[:0], op)
	more:
		for len(batch) < maxBatch {
			select {
			case op, ok := <-s.ops:
				if !ok {
					break more
				}
				batch = append(batch, op)
			default:
				break more
			}
		}
		s.prepareBatch(batch, seen, dropped)
		if err := s.db.Update(func(tx *bolt.Tx) error { return apply(tx, batch) }); err != nil {
			s.log.Error("mqttwaf storage: write failed; the broker runs on, but these changes are not kept", "file", s.path, "changes", len(batch), "error", err)
		}
	}
}

// prepareBatch marks the changes a later one in the batch makes moot (the
// same record written or deleted again, or its client's bucket dropped),
// and encodes the message records that remain.
func (s *Storage) prepareBatch(batch []storeOp, seen, dropped map[opKey]bool) {
	clear(seen)
	clear(dropped)
	for i := len(batch) - 1; i >= 0; i-- {
		op := &batch[i]
		if op.drop {
			dropped[opKey{bucket: string(op.bucket), sub: op.sub}] = true
			continue
		}
		k := opKey{string(op.bucket), op.sub, string(op.key)}
		if seen[k] || op.sub != "" && dropped[opKey{bucket: k.bucket, sub: k.sub}] {
			op.skip = true
			continue
		}
		seen[k] = true
		if op.msg != nil {
			data, err := json.Marshal(op.msg)
			if err != nil {
				s.log.Error("mqttwaf storage: cannot encode a message", "error", err)
				op.skip = true
				continue
			}
			op.value = data
		}
	}
}

func apply(tx *bolt.Tx, batch []storeOp) error {
	for _, op := range batch {
		if op.skip {
			continue
		}
		b := tx.Bucket(op.bucket)
		if op.drop {
			if err := b.DeleteBucket([]byte(op.sub)); err != nil && !errors.Is(err, bolterrors.ErrBucketNotFound) {
				return err
			}
			continue
		}
		if op.sub != "" {
			if op.del {
				if b = b.Bucket([]byte(op.sub)); b == nil {
					continue
				}
			} else {
				var err error
				if b, err = b.CreateBucketIfNotExists([]byte(op.sub)); err != nil {
					return err
				}
			}
		}
		var err error
		if op.del {
			err = b.Delete(op.key)
		} else {
			err = b.Put(op.key, op.value)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// saver saves the ban and lockout lists when they changed.
func (s *Storage) saver() {
	defer close(s.saved)
	t := time.NewTicker(s.every)
	defer t.Stop()
	for {
		select {
		case <-s.stopSave:
			return
		case <-t.C:
			if err := s.saveBans(); err != nil {
				s.log.Error("mqttwaf storage: cannot save bans and lockouts", "file", s.path, "error", err)
			}
		}
	}
}

func (s *Storage) saveBans() error {
	now := time.Now()
	for i, l := range []struct {
		key   []byte
		store ratelimit.BanStore
	}{{keyBans, s.waf.Bans()}, {keyLockouts, s.waf.Lockouts()}} {
		data, err := ratelimit.SaveBans(l.store, now)
		if err != nil {
			return err
		}
		if bytes.Equal(data, s.lastSave[i]) {
			continue
		}
		if err := s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketWAF).Put(l.key, data) }); err != nil {
			return err
		}
		s.lastSave[i] = data
	}
	return nil
}

// Stop implements mqtt.Hook: mochi calls it when the server closes. It
// writes what is queued, saves the bans and lockouts and closes the file.
func (s *Storage) Stop() error {
	s.stopOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		close(s.ops)
		s.mu.Unlock()
		<-s.done
		close(s.stopSave)
		<-s.saved
		err := s.saveBans()
		if err != nil {
			s.log.Error("mqttwaf storage: cannot save bans and lockouts at shutdown", "file", s.path, "error", err)
		}
		s.stopErr = errors.Join(err, s.db.Close())
	})
	return s.stopErr
}

// OnStarted ends the loading phase: from now on a disconnect is a real one.
func (s *Storage) OnStarted() {
	s.mu.Lock()
	s.loading = false
	s.restored = nil
	s.mu.Unlock()
}

// OnSessionEstablished writes a persistent session (mochi's record and the
// WAF's view of the client); a connection that is not persistent ends any
// session stored under its client ID (a clean start).
func (s *Storage) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	if cl.Net.Inline {
		return
	}
	if !persistentSession(cl) {
		s.forget(cl.ID)
		return
	}
	s.put(bucketSessions, "", []byte(cl.ID), s.session(cl, 0))
}

func (s *Storage) session(cl *mqtt.Client, disconnected int64) storedSession {
	rec := storedSession{Disconnected: disconnected, Client: storage.Client{
		ID: cl.ID, T: storage.ClientKey, Remote: cl.Net.Remote, Listener: cl.Net.Listener,
		Username: cl.Properties.Username, Clean: cl.Properties.Clean, ProtocolVersion: cl.Properties.ProtocolVersion,
		Properties: storage.ClientProperties{
			SessionExpiryInterval:     cl.Properties.Props.SessionExpiryInterval,
			SessionExpiryIntervalFlag: cl.Properties.Props.SessionExpiryIntervalFlag,
			ReceiveMaximum:            cl.Properties.Props.ReceiveMaximum,
			MaximumPacketSize:         cl.Properties.Props.MaximumPacketSize,
			RequestProblemInfo:        cl.Properties.Props.RequestProblemInfo,
			RequestProblemInfoFlag:    cl.Properties.Props.RequestProblemInfoFlag,
			RequestResponseInfo:       cl.Properties.Props.RequestResponseInfo,
		},
		// No will: mochi never sends the will of a session it loads, and
		// a will is often personal data.
	}}
	if ss := s.st.sessions.get(cl); ss != nil {
		rec.View = &ss.client // encoded by put, on this goroutine (the client's own)
	}
	return rec
}

// OnDisconnect records when a persistent session went offline (its expiry
// counts from then, across restarts too); a session that ends with its
// connection is forgotten.
func (s *Storage) OnDisconnect(cl *mqtt.Client, _ error, expire bool) {
	s.mu.Lock()
	loading := s.loading
	s.mu.Unlock()
	if loading || cl.Net.Inline || !s.current(cl) {
		return // mochi "disconnects" the sessions it loads; and a taken-over connection owns nothing
	}
	if expire {
		s.forget(cl.ID)
		return
	}
	s.put(bucketSessions, "", []byte(cl.ID), s.session(cl, time.Now().Unix()))
}

// OnSubscribed writes the subscriptions the broker granted to a persistent
// session; a refused filter (reason code 0x80 and up) is never written.
func (s *Storage) OnSubscribed(cl *mqtt.Client, pk packets.Packet, codes []byte) {
	if !persistentSession(cl) {
		return
	}
	for i, f := range pk.Filters {
		if i >= len(codes) || codes[i] >= packets.ErrUnspecifiedError.Code || f.Filter == deniedFilter {
			continue
		}
		s.put(bucketSubs, cl.ID, []byte(f.Filter), storage.Subscription{
			T: storage.SubscriptionKey, Client: cl.ID, Filter: f.Filter, Qos: codes[i],
			Identifier: f.Identifier, NoLocal: f.NoLocal, RetainHandling: f.RetainHandling, RetainAsPublished: f.RetainAsPublished,
		})
	}
}

// OnUnsubscribed removes subscriptions (mochi also calls it when a session
// ends, with all of them).
func (s *Storage) OnUnsubscribed(cl *mqtt.Client, pk packets.Packet) {
	if cl.Net.Inline {
		return
	}
	for _, f := range pk.Filters {
		s.del(bucketSubs, cl.ID, []byte(f.Filter))
	}
}

// OnRetainMessage writes (or, r == -1, deletes) a retained message, as the
// WAF let it through.
func (s *Storage) OnRetainMessage(cl *mqtt.Client, pk packets.Packet, r int64) {
	if r == -1 || len(pk.Payload) == 0 {
		s.del(bucketRetained, "", []byte(pk.TopicName))
		return
	}
	m := messageRecord(&pk)
	if cl != nil && !cl.Net.Inline {
		c := s.st.sessions.clientOf(cl)
		m.Owner, m.OwnerID = cmp.Or(c.Username, "-"), c.ID
	}
	s.putMessage(bucketRetained, "", []byte(pk.TopicName), m)
}

// OnRetainedExpired deletes a retained message mochi expired.
func (s *Storage) OnRetainedExpired(topic string) { s.del(bucketRetained, "", []byte(topic)) }

// OnQosPublish writes a message held in flight for a persistent session.
func (s *Storage) OnQosPublish(cl *mqtt.Client, pk packets.Packet, sent int64, _ int) {
	if !persistentSession(cl) {
		return
	}
	m := messageRecord(&pk)
	m.Sent = sent
	s.putMessage(bucketInflight, cl.ID, packetKey(pk.PacketID), m)
}

// OnQosComplete deletes a message the subscriber acknowledged.
func (s *Storage) OnQosComplete(cl *mqtt.Client, pk packets.Packet) {
	if persistentSession(cl) {
		s.del(bucketInflight, cl.ID, packetKey(pk.PacketID))
	}
}

// OnQosDropped deletes a message mochi discarded, unless the connection was
// taken over: then the new connection holds it under the same identifier.
func (s *Storage) OnQosDropped(cl *mqtt.Client, pk packets.Packet) {
	if cl.Net.Inline || cl.IsTakenOver() {
		return
	}
	s.del(bucketInflight, cl.ID, packetKey(pk.PacketID))
}

// OnClientExpired forgets a session mochi expired, with its subscriptions
// and messages (mochi's own store keeps those for good).
func (s *Storage) OnClientExpired(cl *mqtt.Client) { s.forget(cl.ID) }

func packetKey(id uint16) []byte { return binary.BigEndian.AppendUint16(nil, id) }

func messageRecord(pk *packets.Packet) storedMessage {
	p := &pk.Properties
	return storedMessage{Expiry: pk.Expiry, Protocol: pk.ProtocolVersion, Message: storage.Message{
		FixedHeader: pk.FixedHeader, TopicName: pk.TopicName, Payload: pk.Payload, PacketID: pk.PacketID,
		Origin: pk.Origin, Created: pk.Created,
		Properties: storage.MessageProperties{
			PayloadFormat: p.PayloadFormat, PayloadFormatFlag: p.PayloadFormatFlag,
			MessageExpiryInterval: p.MessageExpiryInterval, ContentType: p.ContentType,
			ResponseTopic: p.ResponseTopic, CorrelationData: p.CorrelationData,
			SubscriptionIdentifier: p.SubscriptionIdentifier, User: p.User,
		},
	}}
}

func (m *storedMessage) packet() packets.Packet {
	pk := m.ToPacket()
	pk.Expiry, pk.ProtocolVersion = m.Expiry, m.Protocol
	return pk
}

// StoredClients returns the persistent sessions for mochi to load. Sessions
// that expired while the broker was down are deleted instead. mochi loads
// them before their subscriptions, whose call (StoredSubscriptions) then
// gives each loaded session its WAF view back.
func (s *Storage) StoredClients() ([]storage.Client, error) {
	now := time.Now().Unix()
	var out []storage.Client
	var expired []string
	s.restored = map[string]*mqttwaf.Client{}
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketSessions).ForEach(func(k, v []byte) error {
			var rec storedSession
			if err := json.Unmarshal(v, &rec); err != nil {
				return fmt.Errorf("session %q: %w", k, err)
			}
			expiry := s.maxIdle
			if rec.Client.ProtocolVersion == 5 {
				expiry = min(expiry, int64(rec.Client.Properties.SessionExpiryInterval))
			}
			if rec.Disconnected > 0 && rec.Disconnected+expiry < now {
				expired = append(expired, string(k))
				return nil
			}
			out = append(out, rec.Client)
			if rec.View != nil {
				s.restored[rec.Client.ID] = rec.View
			}
			return nil
		})
	})
	for _, id := range expired {
		s.forget(id)
	}
	return out, err
}

// StoredSubscriptions returns the subscriptions of the loaded sessions, and
// gives each loaded session the WAF's view of its client back.
func (s *Storage) StoredSubscriptions() ([]storage.Subscription, error) {
	for id, view := range s.restored {
		if cl, ok := s.server.Clients.Get(id); ok {
			s.st.sessions.add(cl, &session{client: *view})
		}
	}
	var out []storage.Subscription
	err := s.eachNested(bucketSubs, func(_ string, v []byte) error {
		var sub storage.Subscription
		if err := json.Unmarshal(v, &sub); err != nil {
			return err
		}
		out = append(out, sub)
		return nil
	})
	return out, err
}

// StoredInflightMessages puts the messages held for the loaded sessions
// back into their in-flight stores itself and returns none: mochi's own
// loading (ToPacket) would drop their expiry and protocol version, and with
// them message expiry.
//
// Each restored session's in-flight byte count (queue.go) starts at what
// its store now holds, so broker.max_inflight_bytes applies to deliveries
// queued for it after the restart as before.
func (s *Storage) StoredInflightMessages() ([]storage.Message, error) {
	err := s.eachNested(bucketInflight, func(id string, v []byte) error {
		var m storedMessage
		if err := json.Unmarshal(v, &m); err != nil {
			return err
		}
		if cl, ok := s.server.Clients.Get(id); ok {
			cl.State.Inflight.Set(m.packet())
			atomic.AddInt64(&s.server.Info.Inflight, 1)
		}
		return nil
	})
	for id := range s.restored {
		if cl, ok := s.server.Clients.Get(id); ok {
			if ss := s.st.sessions.get(cl); ss != nil {
				ss.queue.bytes.Store(heldBytes(cl))
			}
		}
	}
	return nil, err
}

// eachNested calls fn for each record of a per-client bucket whose session
// mochi loaded; the records of any other client (a session dropped as
// expired, or left by a crash) are deleted.
func (s *Storage) eachNested(name []byte, fn func(id string, v []byte) error) error {
	var orphans []string
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(name)
		return b.ForEach(func(k, _ []byte) error {
			id := string(k)
			if _, ok := s.server.Clients.Get(id); !ok {
				orphans = append(orphans, id)
				return nil
			}
			return b.Bucket(k).ForEach(func(_, v []byte) error { return fn(id, v) })
		})
	})
	for _, id := range orphans {
		s.enqueue(storeOp{drop: true, bucket: name, sub: id})
	}
	return err
}

// StoredRetainedMessages puts the retained messages back itself (keeping
// their expiry, see StoredInflightMessages) and returns none; each is
// counted against its publisher's retained budget (rates.retained) again.
func (s *Storage) StoredRetainedMessages() ([]storage.Message, error) {
	return nil, s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketRetained).ForEach(func(k, v []byte) error {
			var m storedMessage
			if err := json.Unmarshal(v, &m); err != nil {
				return fmt.Errorf("retained %q: %w", k, err)
			}
			pk := m.packet()
			var owner *mqttwaf.Client
			if m.OwnerID != "" {
				owner = &mqttwaf.Client{ID: m.OwnerID}
				if m.Owner != "-" {
					owner.Username = m.Owner
				}
			}
			msg := messageOf(pk)
			s.waf.Retained(owner, pk.TopicName, msg.Size())
			atomic.AddInt64(&s.server.Info.Retained, s.server.Topics.RetainMessage(pk))
			return nil
		})
	})
}
