package mqttwaf

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mqttwaf/mqttwaf/ratelimit"
	"github.com/mqttwaf/mqttwaf/ratelimit/redisstate/redistest"
)

// The state section's errors speak policy terms and say what to write.
func TestStatePolicyErrors(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, yaml, want string }{
		{"backend", "state: {backend: etcd}", `state.backend: unknown value "etcd": use one of memory, redis`},
		{"retained", "state: {retained: everywhere}", `state.retained: unknown value "everywhere": use one of per_node, shared`},
		{"retained without redis", "state: {retained: shared}", "state.retained: shared needs state.backend: redis (the nodes share the retained counts through it); use per_node for one broker"},
		{"no address", "state: {backend: redis}", "state.redis.address: state.backend is redis: set the server's host:port, e.g. redis.internal:6379"},
		{"no port", "state: {backend: redis, redis: {address: redis.internal}}", `state.redis.address: "redis.internal" is not host:port: write it like redis.internal:6379`},
		{"prefix", `state: {backend: redis, redis: {address: "r:6379", key_prefix: "a*"}}`, `state.redis.key_prefix: "a*": at most 64 characters, no spaces or glob characters`},
		{"timeout", `state: {backend: redis, redis: {address: "r:6379", timeout: 1ms}}`, "state.redis.timeout: must be between 10ms and 10s, got 1ms"},
		{"sync", `state: {backend: redis, redis: {address: "r:6379", sync_interval: 1m}}`, "state.redis.sync_interval: must be between 10ms and 5s, got 1m"},
		{"password file", `state: {backend: redis, redis: {address: "r:6379", password_file: ` + filepath.Join(dir, "nope") + `}}`, "state.redis.password_file: open " + filepath.Join(dir, "nope")},
		{"empty password file", `state: {backend: redis, redis: {address: "r:6379", password_file: ` + empty + `}}`, "state.redis.password_file: " + empty + " is empty"},
		{"ca", `state: {backend: redis, redis: {address: "r:6379", tls: {ca: ` + empty + `}}}`, "state.redis.tls.ca: " + empty + " holds no PEM certificate"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := ParsePolicy([]byte(tc.yaml), "p.yaml")
			if err == nil {
				var w *WAF
				w, err = New(p, Options{Sink: SinkFunc(func(Event) {})})
				if err == nil {
					_ = w.Stop()
				}
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v\nwant %q", err, tc.want)
			}
		})
	}
}

// A reload cannot move the state: it is refused, and the running policy
// stays.
func TestStateReloadRefused(t *testing.T) {
	w, err := New(nil, Options{Sink: SinkFunc(func(Event) {})})
	if err != nil {
		t.Fatal(err)
	}
	p, err := ParsePolicy([]byte(`state: {backend: redis, redis: {address: "127.0.0.1:1"}}`), "p.yaml")
	if err != nil {
		t.Fatal(err)
	}
	err = w.Reload(p)
	if err == nil || !strings.Contains(err.Error(), "state: changed from backend memory to redis") || !strings.Contains(err.Error(), "restart the broker") {
		t.Fatalf("reload: %v", err)
	}
	if s := w.State(); s.Backend != "memory" || !s.Up {
		t.Fatalf("state after the refused reload: %+v", s)
	}
}

// A node whose Redis is not there at start runs on its local state (bans
// it makes are enforced) and says so; once Redis is there it connects and
// writes what it queued.
func TestStateRedisAbsentAtStart(t *testing.T) {
	srv := redistest.Start(t)
	addr := srv.Addr()
	srv.Stop()
	var events = make(chan Event, 16)
	p, err := ParsePolicy([]byte(`state: {backend: redis, redis: {address: "`+addr+`"}}`), "p.yaml")
	if err != nil {
		t.Fatal(err)
	}
	w, err := New(p, Options{Sink: SinkFunc(func(e Event) {
		if e.Stage == StageState {
			events <- e
		}
	})})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	e := <-events
	if e.Rule != "state.backend" || e.Reason != "redis_unavailable" || !strings.Contains(e.Detail, "redis unavailable at "+addr) {
		t.Fatalf("event %+v", e)
	}
	now := time.Now()
	if err := w.Bans().Add(now, ratelimit.Ban{Target: ratelimit.ClientIDTarget("c1"), Reason: "operator", Until: now.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	v := w.Connect(&Connect{Client: &Client{ID: "c1", Listener: "tcp", RemoteAddr: "127.0.0.1:5000", RemoteIP: ParseRemoteIP("127.0.0.1:5000")}})
	if v.Code != CodeBanned {
		t.Fatalf("banned client while redis is absent: %+v", v)
	}
	srv.Restart()
	select {
	case e = <-events:
	case <-time.After(15 * time.Second):
		t.Fatal("no redis_back event")
	}
	if e.Reason != "redis_back" || !w.State().Up {
		t.Fatalf("event %+v, state %+v", e, w.State())
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		if v, _ := srv.Do("EXISTS", "mqttwaf:bans:client:c1"); v == ":1" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the ban made while redis was absent is not in redis")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
