package redisstate

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mqttwaf/mqttwaf/ratelimit/redisstate/redistest"
)

// TestRetainedAcrossNodes keeps one retained store's accounting on two
// nodes: each node's changes reach the other's figures, a refusal is
// decided on the exact shared table (an owner at its limit may replace its
// own topic, not add one; another owner taking a topic over moves it),
// deletions free the budget, and entries expire with their lifetime.
func TestRetainedAcrossNodes(t *testing.T) {
	srv := redistest.Start(t)
	nodes := openNodes(t, srv, 2)
	life := 3 * time.Second
	a, b := nodes[0].Retained("retained", life, 100), nodes[1].Retained("retained", life, 100)
	lim := Limits{OwnerTopics: 3, OwnerBytes: 1000, TotalTopics: 5, TotalBytes: 10000}
	prefix := "t:" + t.Name() + ":retained:"
	hget := func(field string) int64 {
		s, err := srv.Do("HGET", prefix+"use", field)
		if err != nil {
			t.Fatal(err)
		}
		if s == "" || s == "(nil)" {
			return 0
		}
		n, _ := strconv.ParseInt(strings.TrimPrefix(s, ":"), 10, 64)
		return n
	}
	waitUse := func(field string, want int64) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); hget(field) != want; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s = %d in redis, want %d", field, hget(field), want)
			}
		}
	}
	admit := func(r *Retained, owner, topic string, size int, want int) {
		t.Helper()
		got, _, err := r.Admit(time.Now(), owner, topic, size, lim)
		if err != nil || got != want {
			t.Fatalf("admit %s %s: reason %d %v, want %d", owner, topic, got, err, want)
		}
	}
	now := time.Now()
	a.Set(now, "dev1", "t/1", 10, Held{})
	a.Set(now, "dev1", "t/2", 10, Held{})
	b.Set(now, "dev1", "t/3", 10, Held{})
	waitUse("t:dev1", 3)
	if got := hget("b:dev1"); got != 30 {
		t.Fatalf("dev1 holds %d bytes, want 30", got)
	}
	// Either node's figures show the other's changes after a sync.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if m, tot, _, ok := b.Use(time.Now(), "dev1"); ok && m.Topics == 3 && tot.Topics == 3 {
			if _, _, _, ok := a.Use(time.Now(), "dev1"); ok {
				break
			}
		}
		if time.Now().After(deadline) {
			m, tot, _, ok := b.Use(time.Now(), "dev1")
			t.Fatalf("node b sees dev1 %v of %v (%v), want 3 topics", m, tot, ok)
		}
	}
	admit(b, "dev1", "t/4", 10, OverOwnerTopics) // a fourth topic, through either node
	admit(a, "dev1", "t/4", 10, OverOwnerTopics)
	admit(b, "dev1", "t/1", 20, WithinLimits)    // replacing its own topic, retained through the other node
	admit(a, "dev1", "t/1", 991, OverOwnerBytes) // 30 - 10 + 991 > 1000
	admit(a, "dev2", "t/1", 10, WithinLimits)    // another owner may take it over
	// Deleting frees the budget; taking a topic over moves it.
	a.Set(time.Now(), "broker", "t/2", 0, Held{Owner: "dev1", Size: 10})
	b.Set(time.Now(), "dev2", "t/3", 10, Held{Owner: "dev1", Size: 10})
	waitUse("t:dev1", 1)
	waitUse("t:dev2", 1)
	waitUse("#t", 2)
	admit(a, "dev1", "t/4", 10, WithinLimits)
	// The store's total: 2 held, 3 more fit.
	b.Set(time.Now(), "dev3", "u/1", 10, Held{})
	b.Set(time.Now(), "dev3", "u/2", 10, Held{})
	b.Set(time.Now(), "dev3", "u/3", 10, Held{})
	waitUse("#t", 5)
	admit(a, "dev4", "u/4", 10, OverTotalTopics)
	// Every key expires; an entry nobody rewrites stops counting after its
	// lifetime (the broker expired it unseen).
	for _, k := range []string{"topics", "expiry", "use"} {
		s, err := srv.Do("PTTL", prefix+k)
		if err != nil {
			t.Fatal(err)
		}
		if n, _ := strconv.Atoi(strings.TrimPrefix(s, ":")); n <= 0 || time.Duration(n)*time.Millisecond > life+time.Hour {
			t.Fatalf("%s TTL %s, want at most the lifetime plus an hour", k, s)
		}
	}
	waitUse("#t", 0)
	if got := hget("t:dev3"); got != 0 {
		t.Fatalf("dev3 still holds %d topics after they expired", got)
	}
}

// TestRetainedQueueBounded: while Redis is unreachable changes are queued
// up to MaxPending topics, later ones dropped and counted, and Use and
// Admit leave the decision to the caller's own table.
func TestRetainedQueueBounded(t *testing.T) {
	b, err := Open(Options{Address: "127.0.0.1:1", MaxPending: 10})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	r := b.Retained("retained", time.Hour, 10)
	now := time.Now()
	for i := range 15 {
		r.Set(now, "dev1", "t/"+strconv.Itoa(i), 10, Held{})
	}
	r.Set(now, "dev1", "t/1", 20, Held{}) // a topic already queued is replaced, not dropped
	if got := r.Dropped(); got != 5 {
		t.Fatalf("dropped %d, want 5", got)
	}
	if _, _, _, ok := r.Use(now, "dev1"); ok {
		t.Fatal("Use answered without Redis")
	}
	if _, _, err := r.Admit(now, "dev1", "t/99", 10, Limits{}); err != ErrUnavailable {
		t.Fatalf("Admit without Redis: %v, want ErrUnavailable", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.pending) != 10 || r.pendUse.total.Topics != 10 || r.pendUse.total.Bytes != 110 {
		t.Fatalf("queue %d topics, sums %+v", len(r.pending), r.pendUse.total)
	}
}

// TestRetainedOutage: while Redis is away a node's changes wait in its
// queue and Use leaves the decision to the node's own table; when Redis is
// back (empty: no persistence) the queued changes are written.
func TestRetainedOutage(t *testing.T) {
	srv := redistest.Start(t)
	nodes := openNodes(t, srv, 1)
	r := nodes[0].Retained("retained", time.Hour, 100)
	srv.Stop()
	for deadline := time.Now().Add(5 * time.Second); nodes[0].Up(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the node did not notice Redis going away")
		}
	}
	r.Set(time.Now(), "dev1", "t/1", 10, Held{})
	r.Set(time.Now(), "dev1", "t/2", 10, Held{})
	if _, _, _, ok := r.Use(time.Now(), "dev1"); ok {
		t.Fatal("Use answered while Redis was away")
	}
	srv.Restart()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if m, _, _, ok := r.Use(time.Now(), "dev1"); ok && m.Topics == 2 {
			if s, _ := srv.Do("HGET", "t:"+t.Name()+":retained:use", "t:dev1"); s == "2" {
				break
			}
		}
		if time.Now().After(deadline) {
			m, tot, _, ok := r.Use(time.Now(), "dev1")
			t.Fatalf("after Redis came back: dev1 %v of %v (%v), want the 2 queued topics written", m, tot, ok)
		}
	}
}

// TestRetainedUnwritten: what a node's unwritten changes add to the last
// synced figures, as far as it knows what they replace.
func TestRetainedUnwritten(t *testing.T) {
	b, err := Open(Options{Address: "127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	type set struct {
		owner, topic string
		size         int
		was          Held
	}
	tests := []struct {
		name        string
		sets        []set
		topic       string // left out, as Admit does
		mine, total Use    // for dev1
	}{
		{"new topic", []set{{"dev1", "t/1", 10, Held{}}}, "", Use{1, 10}, Use{1, 10}},
		{"own topic replaced", []set{{"dev1", "t/1", 30, Held{"dev1", 10}}}, "", Use{0, 20}, Use{0, 20}},
		{"taken over from dev2", []set{{"dev1", "t/1", 10, Held{"dev2", 5}}}, "", Use{1, 10}, Use{0, 5}},
		{"taken over by dev2", []set{{"dev2", "t/1", 10, Held{"dev1", 5}}}, "", Use{-1, -5}, Use{0, 5}},
		{"deleted", []set{{"broker", "t/1", 0, Held{"dev1", 10}}}, "", Use{-1, -10}, Use{-1, -10}},
		{"queued twice: the first base stays", []set{{"dev1", "t/1", 10, Held{}}, {"dev1", "t/1", 20, Held{"dev1", 10}}}, "", Use{1, 20}, Use{1, 20}},
		{"queued, then deleted", []set{{"dev1", "t/1", 10, Held{}}, {"broker", "t/1", 0, Held{"dev1", 10}}}, "", Use{}, Use{}},
		{"the topic left out", []set{{"dev1", "t/1", 10, Held{}}, {"dev1", "t/2", 10, Held{}}}, "t/1", Use{1, 10}, Use{1, 10}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := b.Retained("retained", time.Hour, 10)
			for _, s := range tc.sets {
				r.Set(time.Now(), s.owner, s.topic, s.size, s.was)
			}
			r.mu.Lock()
			mine, total := r.unwritten("dev1", tc.topic)
			r.mu.Unlock()
			if mine != tc.mine || total != tc.total {
				t.Fatalf("dev1 %+v of %+v, want %+v of %+v", mine, total, tc.mine, tc.total)
			}
		})
	}
}

// TestRetainedStaleOwnerNotFresh: an owner that filled its budget through
// one node, publishing through another that never read its use (or not in
// the last minute), must not be waved through on the other's cached
// figures: Use says they are not fresh, and Admit refuses.
func TestRetainedStaleOwnerNotFresh(t *testing.T) {
	srv := redistest.Start(t)
	nodes := openNodes(t, srv, 2)
	a, b := nodes[0].Retained("retained", time.Hour, 100), nodes[1].Retained("retained", time.Hour, 100)
	lim := Limits{OwnerTopics: 3, OwnerBytes: 1000, TotalTopics: 100, TotalBytes: 100000}
	waitSynced := func(r *Retained, owner string, topics int64) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
			if _, tot, _, ok := r.Use(time.Now(), owner); ok && tot.Topics == topics {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("the store's total did not reach %d topics", topics)
			}
		}
	}
	tests := []struct {
		name  string
		owner string
		// on b before a fills the budget: the time b last asked about owner
		// (zero: never)
		askedAgo time.Duration
	}{
		{"never asked on this node", "dev1", 0},
		{"idle here for two minutes", "dev2", 2 * time.Minute},
	}
	var held int64
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.askedAgo > 0 {
				b.Use(time.Now().Add(-tc.askedAgo), tc.owner) // followed, read once (use 0), then idle
				waitSynced(b, "x", held)
			}
			for i := range 3 {
				a.Set(time.Now(), tc.owner, tc.owner+"/"+strconv.Itoa(i), 10, Held{})
			}
			held += 3
			waitSynced(b, "x", held) // b has synced since a's changes were written
			mine, _, fresh, ok := b.Use(time.Now(), tc.owner)
			if !ok {
				t.Fatal("Use did not answer")
			}
			if fresh && mine.Topics+1 <= lim.OwnerTopics {
				t.Fatalf("node b calls %s's use %+v fresh: a fourth topic would pass without asking Redis", tc.owner, mine)
			}
			if got, _, err := b.Admit(time.Now(), tc.owner, tc.owner+"/3", 10, lim); err != nil || got != OverOwnerTopics {
				t.Fatalf("admit a fourth topic through b: reason %d %v, want OverOwnerTopics", got, err)
			}
		})
	}
}

// TestRetainedSyncWritesWholeQueue: one sync writes every queued change,
// however many script calls it takes, so a fleet changing more topics per
// interval than one call carries does not fill the queue and have its
// changes dropped (uncounted).
func TestRetainedSyncWritesWholeQueue(t *testing.T) {
	srv := redistest.Start(t)
	b, err := Open(Options{Address: srv.Addr(), KeyPrefix: "t:" + t.Name() + ":", Timeout: 2 * time.Second, MaxPending: 5 * maxBatch})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() }) // not started: the test syncs itself
	r := b.Retained("retained", time.Hour, 10)
	for _, n := range []int{maxBatch - 1, 3*maxBatch + 7, 5 * maxBatch} {
		now := time.Now()
		for i := range n {
			r.Set(now, "dev"+strconv.Itoa(n), "t/"+strconv.Itoa(n)+"/"+strconv.Itoa(i), 10, Held{})
		}
		if err := r.sync(now); err != nil {
			t.Fatal(err)
		}
		s, err := srv.Do("HGET", "t:"+t.Name()+":retained:use", "t:dev"+strconv.Itoa(n))
		if err != nil {
			t.Fatal(err)
		}
		if s != strconv.Itoa(n) {
			t.Fatalf("%d changes queued, %s written by one sync", n, s)
		}
		if r.Dropped() != 0 || len(r.pending)+len(r.sending) != 0 {
			t.Fatalf("after the sync: %d dropped, %d still queued", r.Dropped(), len(r.pending)+len(r.sending))
		}
	}
}

// TestRetainedOrphanExpiry: an expiry entry whose topic the table no longer
// holds (a key evicted or edited by hand) is dropped at the next sync, not
// read again at every sync, where 1,000 of them would stop real entries
// from ever expiring.
func TestRetainedOrphanExpiry(t *testing.T) {
	srv := redistest.Start(t)
	b, err := Open(Options{Address: srv.Addr(), KeyPrefix: "t:" + t.Name() + ":", Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() }) // not started: the test syncs itself
	r := b.Retained("retained", time.Hour, 10)
	prefix := "t:" + t.Name() + ":retained:"
	if _, err := srv.Do("ZADD", prefix+"expiry", "1", "orphan"); err != nil {
		t.Fatal(err)
	}
	if err := r.sync(time.Now()); err != nil {
		t.Fatal(err)
	}
	if s, err := srv.Do("ZSCORE", prefix+"expiry", "orphan"); err != nil || (s != "" && s != "(nil)") {
		t.Fatalf("the orphan expiry entry is still there: %q %v", s, err)
	}
}

// TestRetainedUnknownEntriesCorrected: a node deleting or replacing a topic
// it never saw retained (another node did) cannot count what that frees;
// Admit has the script take the topic's entry out, so room freed through
// this node is usable at once, before the change is written.
func TestRetainedUnknownEntriesCorrected(t *testing.T) {
	srv := redistest.Start(t)
	nodes := openNodes(t, srv, 1)
	a := nodes[0].Retained("retained", time.Hour, 100)
	// Node b is not started: its changes stay unwritten for the test.
	nb, err := Open(Options{Address: srv.Addr(), KeyPrefix: "t:" + t.Name() + ":", Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nb.Close() })
	nb.up.Store(true)
	b := nb.Retained("retained", time.Hour, 100)
	lim := Limits{OwnerTopics: 3, OwnerBytes: 1000, TotalTopics: 100, TotalBytes: 10000}
	now := time.Now()
	for _, topic := range []string{"t/1", "t/2", "t/3"} {
		a.Set(now, "dev1", topic, 10, Held{})
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if s, _ := srv.Do("HGET", "t:"+t.Name()+":retained:use", "t:dev1"); s == "3" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("node a's topics never written")
		}
	}
	b.Set(now, "broker", "t/1", 0, Held{}) // deleted through b, which never saw it
	b.Set(now, "dev1", "t/2", 10, Held{})  // replaced through b, which takes it for new
	for _, tc := range []struct {
		topic string
		want  int
	}{
		{"t/9", WithinLimits}, // 3 - t/1 - t/2 + t/2 again = 2, one more fits
		{"t/3", WithinLimits}, // a replacement
		{"t/2", WithinLimits}, // the topic itself is not taken out twice
	} {
		got, value, err := b.Admit(now, "dev1", tc.topic, 10, lim)
		if err != nil || got != tc.want {
			t.Fatalf("admit %s: reason %d (at %d) %v, want %d", tc.topic, got, value, err, tc.want)
		}
	}
	b.Set(now, "dev1", "t/9", 10, Held{})
	if got, _, _ := b.Admit(now, "dev1", "t/10", 10, lim); got != OverOwnerTopics {
		t.Fatalf("a fourth topic: reason %d, want OverOwnerTopics", got)
	}
}
