package proxy

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/mqttwaf/mqttwaf/mqttwaf"
	"github.com/mqttwaf/mqttwaf/ratelimit/redisstate/redistest"
)

// Two proxies in front of one broker (as in front of a clustered broker),
// sharing one redis-server: another identity may not take over a session
// connected through the other proxy, which alone knows it; the owner may
// move between the proxies.
func TestRedisSessionTakeoverAcrossProxies(t *testing.T) {
	up := startMosquitto(t)
	srv := redistest.Start(t)
	dir := t.TempDir()
	secretA, hashA, err := mqttwaf.NewDeviceSecret()
	if err != nil {
		t.Fatal(err)
	}
	secretB, hashB, err := mqttwaf.NewDeviceSecret()
	if err != nil {
		t.Fatal(err)
	}
	creds := filepath.Join(dir, "devices.creds")
	if err := os.WriteFile(creds, []byte("a:device:"+hashA+"\nb:device:"+hashB+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	policy := fmt.Sprintf(`
identity: {credentials_file: %s, anonymous: {allow: never}}
roles: {device: {publish: ["dev/{username}/#"], subscribe: ["dev/{username}/#"]}}
state: {backend: redis, redis: {address: %q, key_prefix: "t:", timeout: 2s}}
`, creds, srv.Addr())
	var proxies []*Proxy
	for range 2 {
		px, _ := startProxy(t, policy, up, nil)
		t.Cleanup(func() { _ = px.waf.Stop() })
		proxies = append(proxies, px)
	}
	for _, px := range proxies {
		for deadline := time.Now().Add(5 * time.Second); !px.waf.State().Up || px.waf.State().Nodes < 2; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("the proxies did not both reach redis")
			}
		}
	}
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
