package mqttwaf

import (
	"os"
	"path/filepath"
	"slices"
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
		{"address and sentinel", `state: {backend: redis, redis: {address: "r:6379", sentinel: {master: m, addresses: ["s1:26379"]}}}`, "state.redis.address: state.redis.sentinel finds the primary: remove address, or remove the sentinel section to use one server"},
		{"sentinel without master", `state: {backend: redis, redis: {sentinel: {addresses: ["s1:26379"]}}}`, "state.redis.sentinel.master: set the name the sentinels monitor the primary under (sentinel monitor NAME ...), e.g. mymaster"},
		{"sentinel without addresses", `state: {backend: redis, redis: {sentinel: {master: m}}}`, `state.redis.sentinel.addresses: list the sentinels' host:port, e.g. ["sentinel1:26379"`},
		{"sentinel address", `state: {backend: redis, redis: {sentinel: {master: m, addresses: ["s1:26379", "s2"]}}}`, `state.redis.sentinel.addresses[1]: "s2" is not host:port: write it like sentinel1:26379`},
		{"sentinel only username", `state: {backend: redis, redis: {sentinel: {username: u}}}`, "state.redis.sentinel.master: set the name"},
		{"sentinel password file", `state: {backend: redis, redis: {sentinel: {master: m, addresses: ["s1:26379"], password_file: ` + empty + `}}}`, "state.redis.sentinel.password_file: " + empty + " is empty"},
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
	w, events := newStateWAF(t, `state: {backend: redis, redis: {address: "`+addr+`"}}`)
	e := <-events
	if e.Rule != "state.backend" || e.Reason != "redis_unavailable" || !strings.Contains(e.Detail, "redis unavailable at "+addr) {
		t.Fatalf("event %+v", e)
	}
	banC1(t, w)
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
	waitBanC1(t, srv, "the ban made while redis was absent")
}

// newStateWAF starts a WAF with the state section state and returns it with
// its state events; it stops at the test's end.
func newStateWAF(t *testing.T, state string) (*WAF, <-chan Event) {
	t.Helper()
	events := make(chan Event, 16)
	p, err := ParsePolicy([]byte(state), "p.yaml")
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
	t.Cleanup(func() { _ = w.Stop() })
	return w, events
}

// banC1 bans client ID c1 for a minute.
func banC1(t *testing.T, w *WAF) {
	t.Helper()
	now := time.Now()
	if err := w.Bans().Add(now, ratelimit.Ban{Target: ratelimit.ClientIDTarget("c1"), Reason: "operator", Until: now.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
}

// waitBanC1 waits (2s at most) for c1's ban in srv.
func waitBanC1(t *testing.T, srv *redistest.Server, what string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		if v, _ := srv.Do("EXISTS", "mqttwaf:bans:client:c1"); v == ":1" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s is not in redis at %s", what, srv.Addr())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A sentinel section: the backend gets the master, the sentinels and their
// own credentials (apart from the data nodes'), each connection checks the
// TLS name of the host it dials, and a reload that changes the sentinels is
// refused like any change of the state section.
func TestStateSentinelPolicy(t *testing.T) {
	dir := t.TempDir()
	for name, pw := range map[string]string{"data.pw": "data-secret\n", "sentinel.pw": "sentinel-secret\r\nignored\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(pw), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	const yaml = `state:
  backend: redis
  redis:
    username: waf
    password_file: data.pw
    tls: {enabled: true}
    sentinel:
      master: mymaster
      addresses: ["s1:26379", "s2:26379", "[::1]:26379"]
      username: watcher
      password_file: sentinel.pw
`
	file := filepath.Join(dir, "p.yaml")
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := ReadPolicyFile(file) // password files are relative to it
	if err != nil {
		t.Fatal(err)
	}
	o, err := p.State.redisOptions(p.baseDir)
	if err != nil {
		t.Fatal(err)
	}
	if o.Address != "" || o.SentinelMaster != "mymaster" || strings.Join(o.SentinelAddresses, ",") != "s1:26379,s2:26379,[::1]:26379" ||
		o.Username != "waf" || o.Password != "data-secret" || o.SentinelUsername != "watcher" || o.SentinelPassword != "sentinel-secret" {
		t.Fatalf("options %+v", o)
	}
	if o.TLS == nil || o.TLS.ServerName != "" {
		t.Fatalf("TLS %+v: want enabled, with the name of each host dialled", o.TLS)
	}

	w, err := New(nil, Options{Sink: SinkFunc(func(Event) {})})
	if err != nil {
		t.Fatal(err)
	}
	same, other := p.State, p.State
	same.Redis.Sentinel.Addresses = slices.Clone(p.State.Redis.Sentinel.Addresses)
	other.Redis.Sentinel.Addresses = []string{"s1:26379"}
	w.st.statePolicy = p.State
	if err := w.st.checkStateUnchanged(same); err != nil {
		t.Fatalf("the same state section refused: %v", err)
	}
	if err := w.st.checkStateUnchanged(other); err == nil || !strings.Contains(err.Error(), "restart the broker") {
		t.Fatalf("changed sentinels: %v", err)
	}
}

// A WAF finds its Redis through a real sentinel and says so.
func TestStateSentinelConnects(t *testing.T) {
	primary := redistest.Start(t)
	sentinel := redistest.StartSentinel(t, primary, "mymaster")
	w, events := newStateWAF(t, `state: {backend: redis, redis: {sentinel: {master: mymaster, addresses: ["`+sentinel.Addr()+`"]}}}`)
	select {
	case e := <-events:
		if e.Reason != "redis_connected" || !strings.Contains(e.Detail, "redis at sentinel mymaster via "+sentinel.Addr()+" connected") {
			t.Fatalf("event %+v", e)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no redis_connected event")
	}
	banC1(t, w)
	waitBanC1(t, primary, "the ban made through the sentinel")
}
