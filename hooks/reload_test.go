package hooks

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/mqttwaf/mqttwaf/mqttwaf"
)

// TestFailedReloadChangesNothing: compiling a policy has no side effects.
// A reload that fails late (its rates section changed, so it needs fresh
// rate state, and its schema file is missing) is tried again and again
// while a client retains messages; every attempt fails, the running policy
// stays in force (its retained budget still refuses the 21st topic) and,
// under -race, no state is shared between the running policy and the
// failed one.
func TestFailedReloadChangesNothing(t *testing.T) {
	dir := t.TempDir()
	schema := filepath.Join(dir, "reading.json")
	if err := os.WriteFile(schema, []byte(`{"type": "object", "required": ["v"]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	policy := func(perConnection, schemaFile string) string {
		return fmt.Sprintf(`rates:
  connect: {per_ip: 100000/s, per_network: 100000/s}
  flapping: {off: true}
  new_client_ids: {per_ip: 100000/min, per_username: 100000/min, global: 100000/min}
  publish: {per_connection: {messages: %s, bytes: 100MiB/s}}
  retained: {per_identity: {topics: 20, bytes: 1MiB}}
payloads:
  - {topics: ["r/#"], format: json, schema: %q}
`, perConnection, schemaFile)
	}
	b := startBroker(t, policy("100000/s", schema), brokerOpts{})
	broken, err := mqttwaf.ParsePolicy([]byte(testPolicy+openAccess+policy("50000/s", filepath.Join(dir, "missing.json"))), "broken.yaml")
	if err != nil {
		t.Fatal(err)
	}

	pubs := []*v5{mustV5(t, b.addr, "pub1", ""), mustV5(t, b.addr, "pub2", "")}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	reloads, failures := 0, 0
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			reloads++
			if err := b.waf.Reload(broken); err != nil {
				failures++
				if !strings.Contains(err.Error(), "missing.json") {
					t.Errorf("reload error %q does not name the missing schema", err)
					return
				}
			}
			time.Sleep(time.Millisecond)
		}
	}()
	// Two publishers retain and replace messages at once, so the retained
	// table is read and written from several connections while reloads run.
	var pubWG sync.WaitGroup
	for n, pub := range pubs {
		pubWG.Add(1)
		go func() {
			defer pubWG.Done()
			for i := range 20 {
				topic := fmt.Sprintf("r/%d/%d", n, i)
				for _, payload := range []string{`{"v":1}`, `{"v":22}`} {
					if res, err := pub.publishRetained(t, topic, []byte(payload)); err != nil || res.ReasonCode != 0 {
						t.Errorf("retained publish on %s: %v %+v", topic, err, res)
						return
					}
				}
			}
		}()
	}
	pubWG.Wait()
	cancel()
	wg.Wait()
	if t.Failed() {
		return
	}
	if reloads == 0 || failures != reloads {
		t.Fatalf("%d of %d reloads of a broken policy failed", failures, reloads)
	}
	pub := pubs[0]
	// The running policy's budget: 20 topics held, the 21st is refused.
	res, _ := pub.publishRetained(t, "r/0/20", []byte(`{"v":1}`))
	if res == nil || res.ReasonCode != byte(mqttwaf.CodeQuotaExceeded) {
		t.Fatalf("21st retained topic: %+v, want 0x97", res)
	}
	// And its schema still applies.
	res, _ = pub.publishRetained(t, "r/0/0", []byte(`{"w":1}`))
	if res == nil || res.ReasonCode != byte(mqttwaf.CodePayloadFormatInvalid) {
		t.Fatalf("payload against the running schema: %+v, want 0x99", res)
	}
	if got := b.waf.Policy().Rates.Publish.PerConnection.Messages.String(); got != "100000/s" {
		t.Fatalf("running per-connection rate %s after failed reloads", got)
	}
}

// publishRetained publishes a retained QoS 1 message.
func (c *v5) publishRetained(t testing.TB, topic string, payload []byte) (*paho.PublishResponse, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return c.Publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Retain: true, Payload: payload})
}
