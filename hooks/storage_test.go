package hooks

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	mqtt3 "github.com/eclipse/paho.mqtt.golang"
	bolt "go.etcd.io/bbolt"

	"github.com/mqttwaf/mqttwaf/mqttwaf"
)

// storagePolicy admits anyone, and lets them subscribe and retain under
// ok/ only.
const storagePolicy = `identity: {anonymous: {allow: anywhere, role: r}}
roles: {r: {publish: ["#"], subscribe: ["ok/#"], retain: ["ok/#"], broad_wildcards: true}}
`

// dialSession connects id anonymously (MQTT 5) with the given session
// expiry (0: the session ends with the connection).
func dialSession(t *testing.T, addr, id string, expiry uint32, clean bool) *v5 {
	t.Helper()
	c, err := dialV5(t, addr, &paho.Connect{ClientID: id, CleanStart: clean,
		Properties: &paho.ConnectProperties{SessionExpiryInterval: &expiry, RequestProblemInfo: true}})
	if err != nil {
		t.Fatalf("connect %s: %v", id, err)
	}
	return c
}

// storedKeys lists what the database holds: session IDs, and per client
// the subscription filters and the in-flight packet identifiers.
type storedKeys struct {
	sessions []string
	retained []string
	subs     map[string][]string
	inflight map[string][]uint16
}

func readStored(t *testing.T, s *Storage) storedKeys {
	t.Helper()
	k := storedKeys{subs: map[string][]string{}, inflight: map[string][]uint16{}}
	err := s.db.View(func(tx *bolt.Tx) error {
		_ = tx.Bucket(bucketSessions).ForEach(func(id, _ []byte) error { k.sessions = append(k.sessions, string(id)); return nil })
		_ = tx.Bucket(bucketRetained).ForEach(func(topic, _ []byte) error { k.retained = append(k.retained, string(topic)); return nil })
		subs := tx.Bucket(bucketSubs)
		_ = subs.ForEach(func(id, _ []byte) error {
			return subs.Bucket(id).ForEach(func(f, _ []byte) error {
				k.subs[string(id)] = append(k.subs[string(id)], string(f))
				return nil
			})
		})
		in := tx.Bucket(bucketInflight)
		return in.ForEach(func(id, _ []byte) error {
			return in.Bucket(id).ForEach(func(key, v []byte) error {
				var m storedMessage
				if err := json.Unmarshal(v, &m); err != nil {
					return err
				}
				if string(key) != string(packetKey(m.PacketID)) || m.PacketID == 0 {
					t.Errorf("in-flight record %x holds packet id %d", key, m.PacketID)
				}
				k.inflight[string(id)] = append(k.inflight[string(id)], m.PacketID)
				return nil
			})
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// waitStored waits until the database satisfies ok (writes are batched by
// a goroutine).
func waitStored(t *testing.T, s *Storage, what string, ok func(storedKeys) bool) {
	t.Helper()
	if !waitFor(10*time.Second, func() bool { return ok(readStored(t, s)) }) {
		t.Fatalf("database never held %s: %+v", what, readStored(t, s))
	}
}

// TestStorageKeepsWhatTheWAFAllowed: only persistent sessions and the
// subscriptions the ACL granted are written, queued messages keep their
// packet identifiers; after a restart the session's WAF view and in-flight
// byte count are back, a message published while it is still offline is
// queued for it and counted, the reconnecting client gets everything and
// the count returns to zero; a clean start ends the stored session.
func TestStorageKeepsWhatTheWAFAllowed(t *testing.T) {
	dir := t.TempDir()
	b := startBroker(t, storagePolicy, brokerOpts{storageDir: dir})
	p1 := dialSession(t, b.addr, "p1", 300, true)
	if sa := p1.subscribe(t, 1, "ok/a", "no/b"); !slices.Equal(sa.Reasons, []byte{1, 0x87}) {
		t.Fatalf("SUBACK %v, want [1 0x87]", sa.Reasons)
	}
	c1 := dialSession(t, b.addr, "c1", 0, true)
	c1.subscribe(t, 1, "ok/a")
	b.goOffline(t, p1, "p1")
	pub := dialSession(t, b.addr, "pub", 0, true)
	if _, err := pub.publish(t, "ok/a", 1, []byte("one")); err != nil {
		t.Fatal(err)
	}
	expectMsg(t, c1.msgs, 5*time.Second)
	for _, topic := range []string{"no/r", "ok/r"} { // the first is refused (retain_not_permitted)
		_, _ = pub.Publish(context.Background(), &paho.Publish{Topic: topic, QoS: 1, Retain: true, Payload: []byte("r")})
	}
	waitStored(t, b.storage, "p1's queued message", func(k storedKeys) bool { return len(k.inflight["p1"]) == 1 && len(k.retained) > 0 })
	k := readStored(t, b.storage)
	if !slices.Equal(k.sessions, []string{"p1"}) || len(k.subs) != 1 || !slices.Equal(k.subs["p1"], []string{"ok/a"}) || len(k.inflight) != 1 {
		t.Fatalf("stored %+v: want p1 alone, subscribed to ok/a only", k)
	}
	if !slices.Equal(k.retained, []string{"ok/r"}) {
		t.Fatalf("retained %q stored, want ok/r only", k.retained)
	}
	b.close()

	b = startBroker(t, storagePolicy, brokerOpts{storageDir: dir})
	cl, ok := b.server.Clients.Get("p1")
	if !ok || cl.State.Inflight.Len() != 1 {
		t.Fatalf("p1 not restored with its queued message: %v", ok)
	}
	st := stackFor(b.server.Options.Capabilities, false)
	s := st.sessions.get(cl)
	if s == nil || s.client.ID != "p1" || s.client.Auth != mqttwaf.AuthAnonymous || s.client.Role != "r" {
		t.Fatalf("p1's WAF view not restored: %+v", s)
	}
	if got, want := s.queue.bytes.Load(), heldBytes(cl); got != want || want == 0 {
		t.Fatalf("restored in-flight bytes %d, held %d", got, want)
	}
	pub = dialSession(t, b.addr, "pub", 0, true)
	if _, err := pub.publish(t, "ok/a", 1, []byte("two")); err != nil {
		t.Fatal(err)
	}
	if !waitFor(10*time.Second, func() bool { return cl.State.Inflight.Len() == 2 }) {
		t.Fatal("the message published after the restart was not queued for p1")
	}
	if got, want := s.queue.bytes.Load(), heldBytes(cl); got != want {
		t.Fatalf("in-flight bytes %d, held %d", got, want)
	}
	p1 = dialSession(t, b.addr, "p1", 300, false)
	if !p1.connack.SessionPresent {
		t.Fatal("p1's session not present")
	}
	var got []string
	for range 2 {
		got = append(got, string(expectMsg(t, p1.msgs, 5*time.Second).Payload))
	}
	slices.Sort(got)
	if !slices.Equal(got, []string{"one", "two"}) {
		t.Fatalf("p1 received %q", got)
	}
	cur, _ := b.server.Clients.Get("p1")
	if !waitFor(10*time.Second, func() bool {
		s := st.sessions.get(cur)
		return s != nil && cur.State.Inflight.Len() == 0 && s.queue.bytes.Load() == 0
	}) {
		t.Fatal("p1's acknowledged messages still counted")
	}
	waitStored(t, b.storage, "no message left for p1", func(k storedKeys) bool { return len(k.inflight) == 0 })

	// A takeover by a new connection of the session leaves it stored as
	// connected (the old connection's end is not recorded as the session's).
	dialSession(t, b.addr, "p1", 300, false)
	waitStored(t, b.storage, "p1 connected", func(storedKeys) bool {
		var rec storedSession
		_ = b.storage.db.View(func(tx *bolt.Tx) error {
			return json.Unmarshal(tx.Bucket(bucketSessions).Get([]byte("p1")), &rec)
		})
		return rec.Client.ID == "p1" && rec.Disconnected == 0
	})

	// A backup taken now is a database with p1's session in it.
	backup := t.TempDir()
	f, err := os.Create(filepath.Join(backup, StorageFile))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.storage.Backup(f); errors.Join(err, f.Close()) != nil {
		t.Fatal(err)
	}
	copied, err := OpenStorage(StorageOptions{Dir: backup})
	if err != nil {
		t.Fatal(err)
	}
	if k := readStored(t, copied); !slices.Equal(k.sessions, []string{"p1"}) {
		t.Fatalf("backup holds %+v", k)
	}
	if err := copied.Close(); err != nil {
		t.Fatal(err)
	}

	dialSession(t, b.addr, "p1", 0, true) // a clean start ends the session
	waitStored(t, b.storage, "p1 forgotten", func(k storedKeys) bool { return len(k.sessions) == 0 && len(k.subs) == 0 })
}

// TestStorageMQTT311Session: a 3.1.1 session with clean session false is
// kept like an MQTT 5 one: its message queued before the restart arrives
// when it reconnects after it.
func TestStorageMQTT311Session(t *testing.T) {
	dir := t.TempDir()
	b := startBroker(t, storagePolicy, brokerOpts{storageDir: dir})
	got := make(chan string, 10)
	persist := func(o *mqtt3.ClientOptions) {
		o.SetCleanSession(false).SetDefaultPublishHandler(func(_ mqtt3.Client, m mqtt3.Message) { got <- string(m.Payload()) })
	}
	c, _, err := dialV3(t, b.addr, "v3", "", persist)
	if err != nil {
		t.Fatal(err)
	}
	waitToken(t, c.Subscribe("ok/v3", 1, nil))
	c.Disconnect(100)
	if !waitFor(5*time.Second, func() bool { cl, ok := b.server.Clients.Get("v3"); return ok && cl.Closed() }) {
		t.Fatal("v3 still connected")
	}
	pub := dialSession(t, b.addr, "pub", 0, true)
	if _, err := pub.publish(t, "ok/v3", 1, []byte("queued")); err != nil {
		t.Fatal(err)
	}
	waitStored(t, b.storage, "v3's queued message", func(k storedKeys) bool { return len(k.inflight["v3"]) == 1 })
	b.close()

	b = startBroker(t, storagePolicy, brokerOpts{storageDir: dir})
	if _, _, err := dialV3(t, b.addr, "v3", "", persist); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-got:
		if m != "queued" {
			t.Fatalf("v3 got %q", m)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("v3's queued message did not arrive after the restart")
	}
}

// TestStorageForgetsEndedSessions: what mochi's expiry removes from memory
// goes from the file too; a session that expired while the broker was down
// is not loaded and its records go; records of a client without a session
// (left by a crash) are dropped at start, not loaded as subscriptions.
func TestStorageForgetsEndedSessions(t *testing.T) {
	dir := t.TempDir()
	b := startBroker(t, storagePolicy, brokerOpts{storageDir: dir})
	short := dialSession(t, b.addr, "short", 1, true)
	short.subscribe(t, 1, "ok/x")
	long := dialSession(t, b.addr, "long", 300, true)
	long.subscribe(t, 1, "ok/x")
	b.goOffline(t, short, "short")
	b.goOffline(t, long, "long")
	pub := dialSession(t, b.addr, "pub", 0, true)
	if _, err := pub.publish(t, "ok/x", 1, []byte("m")); err != nil {
		t.Fatal(err)
	}
	waitStored(t, b.storage, "both sessions' messages", func(k storedKeys) bool {
		return len(k.inflight["short"]) == 1 && len(k.inflight["long"]) == 1
	})
	waitStored(t, b.storage, "the short session expired", func(k storedKeys) bool {
		return slices.Equal(k.sessions, []string{"long"}) && len(k.subs["short"]) == 0 && len(k.inflight["short"]) == 0
	})
	b.close()

	// As if the broker had been down for an hour, with a crash's leftovers.
	db, err := bolt.Open(filepath.Join(dir, StorageFile), 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		sb := tx.Bucket(bucketSessions)
		var rec storedSession
		if err := json.Unmarshal(sb.Get([]byte("long")), &rec); err != nil {
			return err
		}
		rec.Disconnected = time.Now().Add(-time.Hour).Unix()
		v, _ := json.Marshal(rec)
		if err := sb.Put([]byte("long"), v); err != nil {
			return err
		}
		ghost, err := tx.Bucket(bucketSubs).CreateBucket([]byte("ghost"))
		if err != nil {
			return err
		}
		return ghost.Put([]byte("ok/#"), []byte(`{"client":"ghost","filter":"ok/#","qos":1}`))
	})
	if err := errors.Join(err, db.Close()); err != nil {
		t.Fatal(err)
	}
	b = startBroker(t, storagePolicy, brokerOpts{storageDir: dir})
	if _, ok := b.server.Clients.Get("long"); ok {
		t.Fatal("a session that expired while the broker was down was loaded")
	}
	if subs := b.server.Topics.Subscribers("ok/x"); len(subs.Subscriptions) != 0 {
		t.Fatalf("subscriptions loaded without a session: %+v", subs.Subscriptions)
	}
	waitStored(t, b.storage, "nothing", func(k storedKeys) bool {
		return len(k.sessions) == 0 && len(k.subs) == 0 && len(k.inflight) == 0
	})
}

// TestOpenStorageRefusesDamage: a file that is not this format's, or holds
// a record that does not decode, is refused at open, naming the file.
func TestOpenStorageRefusesDamage(t *testing.T) {
	for _, tc := range []struct {
		name string
		harm func(tx *bolt.Tx) error
		want string
	}{
		{"other format", func(tx *bolt.Tx) error { return tx.Bucket(bucketWAF).Put(keyFormat, []byte("mqttwaf-storage-0")) }, `format "mqttwaf-storage-0"`},
		{"damaged session", func(tx *bolt.Tx) error { return tx.Bucket(bucketSessions).Put([]byte("x"), []byte("{")) }, `damaged session record "x"`},
		{"damaged retained", func(tx *bolt.Tx) error { return tx.Bucket(bucketRetained).Put([]byte("t"), []byte("[")) }, `damaged retained record "t"`},
		{"no view key", func(tx *bolt.Tx) error { return tx.Bucket(bucketWAF).Delete(keyViewKey) }, "view key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s, err := OpenStorage(StorageOptions{Dir: dir})
			if err != nil {
				t.Fatal(err)
			}
			if err := s.db.Update(tc.harm); err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			_, err = OpenStorage(StorageOptions{Dir: dir})
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), filepath.Join(dir, StorageFile)) {
				t.Fatalf("OpenStorage = %v, want an error naming the file: %s", err, tc.want)
			}
		})
	}
	// A new directory is created private.
	dir := filepath.Join(t.TempDir(), "new")
	s, err := OpenStorage(StorageOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("data directory mode %v, %v; want 0700", fi.Mode().Perm(), err)
	}
}

// BenchmarkBrokerStorage runs the same load through the hardened broker
// (default policy) without and with Storage, the subscriber holding a
// persistent session so every delivery is written (stored when sent,
// deleted when acknowledged):
//
//	flock /work/bench.lock go test -run '^$' -bench BrokerStorage -benchtime 20000x -count 3 ./hooks/
func BenchmarkBrokerStorage(b *testing.B) {
	l := benchLoad
	l.subscriber = func(tb testing.TB, addr string) *v5 {
		expiry := uint32(3600)
		sub, err := dialV5(tb, addr, &paho.Connect{ClientID: "bench-sub", CleanStart: true,
			Properties: &paho.ConnectProperties{SessionExpiryInterval: &expiry}})
		if err != nil {
			tb.Fatal(err)
		}
		sub.subscribe(tb, 1, "bench/#")
		return sub
	}
	compareLoads(b, l, []string{"memory", "stored"}, []string{
		startBroker(b, benchRates, brokerOpts{bench: true}).addr,
		startBroker(b, benchRates, brokerOpts{bench: true, storageDir: b.TempDir()}).addr,
	})
}

// TestStorageBatchSupersedes: within one batch, only the last change to a
// record is written (a message stored and acknowledged at once is never
// encoded), and dropping a client's bucket makes its earlier changes moot,
// not its later ones.
func TestStorageBatchSupersedes(t *testing.T) {
	msg := func(key string) storeOp {
		return storeOp{bucket: bucketInflight, sub: "c", key: []byte(key), msg: &storedMessage{}}
	}
	del := func(key string) storeOp {
		return storeOp{del: true, bucket: bucketInflight, sub: "c", key: []byte(key)}
	}
	drop := storeOp{drop: true, bucket: bucketInflight, sub: "c"}
	session := storeOp{bucket: bucketSessions, key: []byte("c"), value: []byte("{}")}
	for _, tc := range []struct {
		name  string
		batch []storeOp
		kept  []bool // by position
	}{
		{"stored then acknowledged", []storeOp{msg("1"), del("1")}, []bool{false, true}},
		{"deleted then stored", []storeOp{del("1"), msg("1")}, []bool{false, true}},
		{"other records", []storeOp{msg("1"), msg("2"), del("3")}, []bool{true, true, true}},
		{"dropped after", []storeOp{msg("1"), session, drop}, []bool{false, true, true}},
		{"dropped before", []storeOp{drop, msg("1")}, []bool{true, true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &Storage{}
			batch := slices.Clone(tc.batch)
			for i := range batch {
				if batch[i].msg != nil {
					m := *batch[i].msg
					batch[i].msg = &m
				}
			}
			s.prepareBatch(batch, map[opKey]bool{}, map[opKey]bool{})
			for i, op := range batch {
				if op.skip == tc.kept[i] {
					t.Errorf("change %d kept %v, want %v", i, !op.skip, tc.kept[i])
				}
				if !op.skip && op.msg != nil && len(op.value) == 0 {
					t.Errorf("change %d kept but not encoded", i)
				}
				if op.skip && op.msg != nil && len(op.value) != 0 {
					t.Errorf("change %d encoded though moot", i)
				}
			}
		})
	}
}
