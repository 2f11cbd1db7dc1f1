package proxy

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/mqttwaf/mqttwaf/mqttwaf"
	"github.com/mqttwaf/mqttwaf/mqttwaf/mqtttest"
	"github.com/mqttwaf/mqttwaf/ratelimit/redisstate/redistest"
)

// Two proxies in front of one broker (as in front of a clustered broker),
// sharing one redis-server: another identity may not take over a session
// connected through the other proxy, which alone knows it; the owner may
// move between the proxies.
func TestRedisSessionTakeoverAcrossProxies(t *testing.T) {
	up := startMosquitto(t)
	srv := redistest.Start(t)
	creds, secrets := deviceCreds(t, "a", "b")
	secretA, secretB := secrets["a"], secrets["b"]
	policy := fmt.Sprintf(`
identity: {credentials_file: %s, anonymous: {allow: never}}
roles: {device: {publish: ["dev/{username}/#"], subscribe: ["dev/{username}/#"]}}
state: {backend: redis, redis: {address: %q, key_prefix: "t:", timeout: 2s}}
`, creds, srv.Addr())
	proxies, _ := startProxyPair(t, policy, up)
	pa, pb := proxies[0], proxies[1]
	first := mustV5(t, pa.Addr(), "shared", "a", secretA)
	if c, err := dialV5(t, pb.Addr(), &paho.Connect{ClientID: "shared", Username: "b", Password: []byte(secretB), CleanStart: true}); err == nil || c.Connack == nil || c.Connack.ReasonCode != 0x85 {
		t.Fatalf("b taking over a's client ID through the other proxy: %v, want CONNACK 0x85", err)
	}
	select {
	case <-first.Done():
		t.Fatal("a's connection through the first proxy was taken over")
	default:
	}
	mustV5(t, pb.Addr(), "shared", "a", secretA) // a itself moves
	select {
	case <-first.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the connection taken over is still open")
	}
}

// deviceCreds writes a credentials file with a fresh device secret for
// each name and returns its path and the secrets.
func deviceCreds(t *testing.T, names ...string) (string, map[string]string) {
	t.Helper()
	secrets, lines := map[string]string{}, ""
	for _, n := range names {
		secret, hash, err := mqttwaf.NewDeviceSecret()
		if err != nil {
			t.Fatal(err)
		}
		secrets[n], lines = secret, lines+n+":device:"+hash+"\n"
	}
	path := filepath.Join(t.TempDir(), "devices.creds")
	if err := os.WriteFile(path, []byte(lines), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, secrets
}

// startProxyPair starts two proxies in front of upstream with one policy
// whose state is in Redis, and waits until both have reached it and see
// each other.
func startProxyPair(t *testing.T, policy, upstream string) ([]*Proxy, []*mqtttest.Events) {
	t.Helper()
	var proxies []*Proxy
	var events []*mqtttest.Events
	for range 2 {
		px, ev := startProxy(t, policy, upstream, nil)
		t.Cleanup(func() { _ = px.waf.Stop() })
		proxies, events = append(proxies, px), append(events, ev)
	}
	for _, px := range proxies {
		for deadline := time.Now().Add(5 * time.Second); !px.waf.State().Up || px.waf.State().Nodes < 2; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("the proxies did not both reach redis")
			}
		}
	}
	return proxies, events
}
