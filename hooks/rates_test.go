package hooks

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/mqttwaf/mqttwaf/mqttwaf"
	"github.com/mqttwaf/mqttwaf/ratelimit"
)

// End-to-end tests of the rates section (issue 5) with a real broker and
// real paho clients: fairness under a flood, a client-ID churn attack, bans
// across reconnects with the reason codes clients see, and the retained
// budget.

// ratesLifted are the rates settings that tests connecting many clients
// from 127.0.0.1 within a second would hit, when they are not what a test is
// about (startBroker adds testRates only to policies without a rates
// section).
const ratesLifted = `  connect: {per_ip: 100000/s, per_network: 100000/s}
  flapping: {off: true}
  new_client_ids: {per_ip: 100000/min, per_username: 100000/min, global: 100000/min}
`

// pubResult publishes one message at QoS 1 and classifies the outcome:
// 0 for a successful PUBACK, the reason code of a refusing PUBACK, or -1 if
// the publish did not complete (the connection went away).
func pubResult(c *v5, topic string, payload []byte) int {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := c.Publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Payload: payload})
	switch {
	case resp == nil:
		return -1
	case err == nil && resp.ReasonCode == 0:
		return 0
	}
	return int(resp.ReasonCode)
}

// topicCounter counts what a subscriber receives, per topic.
type topicCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func countTopics(msgs <-chan *paho.Publish) *topicCounter {
	tc := &topicCounter{n: map[string]int{}}
	go func() {
		for m := range msgs {
			tc.mu.Lock()
			tc.n[m.Topic]++
			tc.mu.Unlock()
		}
	}()
	return tc
}

func (tc *topicCounter) get(topic string) int {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	return tc.n[topic]
}

// waitFor polls cond until it holds or d passes.
func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

// TestRatesFairness: one client floods at ten times its per-connection
// limit while another publishes at half of it, both MQTT 5 at QoS 1, for two
// seconds. The well-behaved client loses nothing; the flooder's accepted rate
// (beyond its burst) is within 10% of the configured rate; every refusal is
// a PUBACK 0x97 and an event; the subscriber receives exactly what was
// accepted. Escalation is set high so the flooder stays connected.
func TestRatesFairness(t *testing.T) {
	const (
		limit    = 50 // messages per second per connection
		burst    = 10
		floodBy  = 10 // times the limit
		flooders = 10 // goroutines sharing the flood
		goodRate = limit / 2
		dur      = 2 * time.Second
	)
	b := startBroker(t, fmt.Sprintf("rates:\n  publish: {per_connection: {messages: %d/s, burst: %d}}\n"+
		"  escalation: {disconnect_after: 1000000}\n", limit, burst)+ratesLifted, brokerOpts{})
	sub := mustV5(t, b.addr, "fair-sub", "")
	sub.subscribe(t, 1, "fair/#")
	got := countTopics(sub.msgs)
	flooder := mustV5(t, b.addr, "flooder", "")
	good := mustV5(t, b.addr, "good", "")
	payload := []byte(`{"t":21.5}`)

	var accepted, refused, other atomic.Int64
	var goodOK, goodBad atomic.Int64
	var wg, floodWG sync.WaitGroup
	var floodEnd time.Time
	start := time.Now()
	interval := time.Second / (limit * floodBy) // between flood messages, all goroutines together
	for g := range flooders {
		floodWG.Add(1)
		go func() {
			defer floodWG.Done()
			for k := g; time.Duration(k)*interval < dur; k += flooders {
				if d := time.Until(start.Add(time.Duration(k) * interval)); d > 0 {
					time.Sleep(d)
				}
				switch rc := pubResult(flooder, "fair/flood", payload); rc {
				case 0:
					accepted.Add(1)
				case 0x97:
					refused.Add(1)
				default:
					other.Add(1)
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		floodWG.Wait()
		floodEnd = time.Now()
	}()
	wantGood := int64(dur * goodRate / time.Second)
	wg.Add(1)
	go func() {
		defer wg.Done()
		// On schedule, and never faster than the limit when catching up
		// after a stall: within its rate by construction.
		var last time.Time
		for k := range wantGood {
			at := start.Add(time.Duration(k) * time.Second / goodRate)
			if earliest := last.Add(time.Second / limit); at.Before(earliest) {
				at = earliest
			}
			if d := time.Until(at); d > 0 {
				time.Sleep(d)
			}
			last = time.Now()
			if pubResult(good, "fair/good", payload) == 0 {
				goodOK.Add(1)
			} else {
				goodBad.Add(1)
			}
		}
	}()
	wg.Wait()
	elapsed := floodEnd.Sub(start)

	if goodOK.Load() != wantGood || goodBad.Load() != 0 {
		t.Fatalf("well-behaved client: %d accepted, %d refused; want all %d accepted", goodOK.Load(), goodBad.Load(), wantGood)
	}
	if other.Load() != 0 {
		t.Fatalf("flooder: %d publishes neither accepted nor refused with 0x97", other.Load())
	}
	attempts := accepted.Load() + refused.Load()
	rate := float64(accepted.Load()-burst) / elapsed.Seconds()
	t.Logf("flooder: %d attempts (%.0f/s), %d accepted, %d refused in %v: %.1f/s accepted beyond the burst (limit %d/s)",
		attempts, float64(attempts)/elapsed.Seconds(), accepted.Load(), refused.Load(), elapsed.Round(time.Millisecond), rate, limit)
	if float64(attempts)/elapsed.Seconds() < 3*limit {
		t.Fatalf("the flood reached only %.0f/s; it must exceed the limit to measure it", float64(attempts)/elapsed.Seconds())
	}
	if rate < 0.9*limit || rate > 1.1*limit {
		t.Fatalf("flooder's accepted rate %.1f/s, want within 10%% of %d/s", rate, limit)
	}
	if n := b.events.count("rates.publish", "connection_message_rate"); int64(n) != refused.Load() {
		t.Fatalf("%d refusal events, %d refusals", n, refused.Load())
	}
	if !waitFor(5*time.Second, func() bool {
		return got.get("fair/good") >= int(wantGood) && got.get("fair/flood") >= int(accepted.Load())
	}) {
		t.Fatalf("subscriber got %d good (want %d) and %d flood (want %d)", got.get("fair/good"), wantGood, got.get("fair/flood"), accepted.Load())
	}
	time.Sleep(100 * time.Millisecond)
	if g, f := got.get("fair/good"), got.get("fair/flood"); g != int(wantGood) || f != int(accepted.Load()) {
		t.Fatalf("subscriber got %d good (want %d) and %d flood (want %d)", g, wantGood, f, accepted.Load())
	}
}

// TestRatesChurnStoppedByNovelty: a client-ID churn attack (hundreds of new
// client IDs from one address and one user name, each connecting briefly)
// is stopped by the default new-client-ID budget (20 per user name per
// minute): CONNACK 0x97. Meanwhile an existing device keeps publishing and
// every one of its messages arrives. Only the CONNECT rate per IP (20/s) and
// flapping are lifted, so the novelty budget is what stops the churn.
func TestRatesChurnStoppedByNovelty(t *testing.T) {
	creds := credsFile(t, "mallory:device:mallory-pw", "device1:device:device1-pw", "backend:backend:backend-pw")
	b := startBroker(t, fmt.Sprintf(`identity: {credentials_file: %q, anonymous: {allow: never}}
roles:
  device: {publish: ["fleet/{username}/#"]}
  backend: {subscribe: ["fleet/#"]}
rates:
  connect: {per_ip: 100000/s, per_network: 100000/s}
  flapping: {off: true}
`, creds), brokerOpts{})
	sub := mustV5Pass(t, b.addr, "backend-1", "backend", "backend-pw")
	sub.subscribe(t, 1, "fleet/#")
	got := countTopics(sub.msgs)
	dev := mustV5Pass(t, b.addr, "device1", "device1", "device1-pw")

	const attempts, workers = 200, 4
	var accepted, quota, other atomic.Int64
	var wg sync.WaitGroup
	// The workers must not outlive the test: a t.Fatalf below would
	// otherwise leave them dialling a closed broker and failing a finished
	// test, which panics and takes the whole package run down with it.
	var quit atomic.Bool
	defer func() { quit.Store(true); wg.Wait() }()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < attempts && !quit.Load(); i += workers {
				conn, err := net.Dial("tcp", b.addr) // not dialV5: its t.Fatal is for the test goroutine
				if err != nil {
					t.Errorf("churn %d: %v", i, err)
					other.Add(1)
					continue
				}
				c, err := connectV5(t, conn, &paho.Connect{ClientID: fmt.Sprintf("churn-%04d", i), Username: "mallory",
					Password: []byte("mallory-pw"), PasswordFlag: true, CleanStart: true})
				switch {
				case err == nil:
					accepted.Add(1)
					_ = c.Disconnect(&paho.Disconnect{})
				case c.connack != nil && c.connack.ReasonCode == byte(mqttwaf.CodeQuotaExceeded):
					quota.Add(1)
				default:
					other.Add(1)
				}
			}
		}()
	}
	// The device publishes every 10ms while the churn lasts.
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	sent := 0
	for stop := false; !stop; {
		if rc := pubResult(dev, "fleet/device1/telemetry", []byte(`{"n":1}`)); rc != 0 {
			t.Fatalf("device publish %d during the churn: reason 0x%02x", sent, rc)
		}
		sent++
		select {
		case <-done:
			stop = true
		case <-time.After(10 * time.Millisecond):
		}
	}
	t.Logf("churn: %d accepted, %d refused with 0x97, %d other; device sent %d", accepted.Load(), quota.Load(), other.Load(), sent)
	if other.Load() != 0 {
		t.Fatalf("%d churn CONNECTs ended otherwise than accepted or 0x97", other.Load())
	}
	// 20 per minute; the sliding window may have let one more through if
	// a minute boundary fell within the test.
	if a := accepted.Load(); a < 20 || a > 22 {
		t.Fatalf("%d churn CONNECTs accepted, want the budget of 20", a)
	}
	if n := b.events.count("rates.new_client_ids", "new_client_id_budget"); int64(n) != quota.Load() {
		t.Fatalf("%d budget events for %d refusals", n, quota.Load())
	}
	if !waitFor(5*time.Second, func() bool { return got.get("fleet/device1/telemetry") >= sent }) {
		t.Fatalf("subscriber got %d of the device's %d messages", got.get("fleet/device1/telemetry"), sent)
	}
	// The device's client ID is known: it reconnects despite the spent budget.
	mustV5Pass(t, b.addr, "device1", "device1", "device1-pw")
	if c, err := dialV5(t, b.addr, &paho.Connect{ClientID: "device1-b", Username: "device1", Password: []byte("device1-pw"),
		PasswordFlag: true, CleanStart: true}); err != nil {
		t.Fatalf("device1's own budget is untouched by mallory's churn: %v %+v", err, c.connack)
	}
}

// TestRatesFlappingBan: repeated CONNECTs of one client ID get CONNACK 0x8A
// (the flapping ban, then the bans rule); a 3.1.1 client with that client ID
// gets return code 0x05.
func TestRatesFlappingBan(t *testing.T) {
	b := startBroker(t, "rates:\n  flapping: {connects: 5/min, per_ip: 100000/min}\n"+
		"  connect: {per_ip: 100000/s, per_network: 100000/s}\n  new_client_ids: {per_ip: 100000/min, per_username: 100000/min, global: 100000/min}\n", brokerOpts{})
	for i := range 5 {
		c, err := dialV5(t, b.addr, &paho.Connect{ClientID: "flappy", CleanStart: true})
		if err != nil {
			t.Fatalf("CONNECT %d: %v", i+1, err)
		}
		_ = c.Disconnect(&paho.Disconnect{})
	}
	for i, rule := range []string{"rates.flapping", "bans"} {
		c, err := dialV5(t, b.addr, &paho.Connect{ClientID: "flappy", CleanStart: true})
		if err == nil || c.connack == nil || c.connack.ReasonCode != byte(mqttwaf.CodeBanned) {
			t.Fatalf("CONNECT %d: %v %+v, want CONNACK 0x8A", 6+i, err, c.connack)
		}
		if e := b.events.wait(t, rule, "", time.Second); e.Code != mqttwaf.CodeBanned {
			t.Fatalf("event %+v", e)
		}
	}
	if _, code, err := dialV3(t, b.addr, "flappy", "", nil); err == nil || code != v3NotAuthorized {
		t.Fatalf("3.1.1 CONNECT of a banned client ID: code %d err %v, want 0x05", code, err)
	}
	mustV5(t, b.addr, "steady", "") // only the client ID is banned
	bans, _ := b.waf.Bans().List(time.Now())
	if len(bans) != 1 || bans[0].Target != ratelimit.ClientIDTarget("flappy") {
		t.Fatalf("bans %+v", bans)
	}
}

// TestRatesFloodEscalatesToBan: a client publishing over its rate gets PUBACK
// 0x97 for disconnect_after refusals, then DISCONNECT 0x96; after ban_after
// such disconnects the next one carries 0x87 (0x8A is not a DISCONNECT code)
// and reconnecting gets CONNACK 0x8A (MQTT 5) or 0x05 (3.1.1). An operator
// removing the ban through WAF.Bans() lets the client back in.
func TestRatesFloodEscalatesToBan(t *testing.T) {
	const disconnectAfter = 10
	b := startBroker(t, fmt.Sprintf("rates:\n  publish: {per_connection: {messages: 5/s, burst: 5}}\n"+
		"  escalation: {disconnect_after: %d, ban_after: 2}\n", disconnectAfter)+ratesLifted, brokerOpts{})
	for round, wantDiscon := range []byte{0x96, 0x96, 0x87} {
		d, accepted, refused := floodToDisconnect(t, mustV5(t, b.addr, "flooder", ""))
		if d == nil {
			t.Fatalf("round %d: no DISCONNECT after %d accepted and %d refused", round+1, accepted, refused)
		}
		if d.ReasonCode != wantDiscon {
			t.Fatalf("round %d: DISCONNECT 0x%02x, want 0x%02x", round+1, d.ReasonCode, wantDiscon)
		}
		t.Logf("round %d: %d accepted, %d refused with 0x97, then DISCONNECT 0x%02x", round+1, accepted, refused, wantDiscon)
		if round == 0 && accepted < 5 {
			t.Errorf("round 1: %d accepted, want at least the burst of 5", accepted)
		}
		// Each round starts a fresh count of refusals (see
		// TestRatesEscalation in package mqttwaf).
		if refused != disconnectAfter {
			t.Errorf("round %d: %d refusals before the DISCONNECT, want %d", round+1, refused, disconnectAfter)
		}
	}
	if e := b.events.wait(t, "rates.publish", "", time.Second); e.Rule != "rates.publish" {
		t.Fatal(e)
	}
	c, err := dialV5(t, b.addr, &paho.Connect{ClientID: "flooder", CleanStart: true})
	if err == nil || c.connack == nil || c.connack.ReasonCode != byte(mqttwaf.CodeBanned) {
		t.Fatalf("reconnect after the ban: %v %+v, want CONNACK 0x8A", err, c.connack)
	}
	if _, code, err := dialV3(t, b.addr, "flooder", "", nil); err == nil || code != v3NotAuthorized {
		t.Fatalf("3.1.1 reconnect after the ban: code %d err %v, want 0x05", code, err)
	}
	if ok, err := b.waf.Bans().Remove(ratelimit.ClientIDTarget("flooder")); !ok || err != nil {
		t.Fatalf("Remove: %v %v", ok, err)
	}
	c = mustV5(t, b.addr, "flooder", "")
	time.Sleep(300 * time.Millisecond) // a token or more at 5/s
	if rc := pubResult(c, "flood/x", []byte("x")); rc != 0 {
		t.Fatalf("publish after the ban was lifted: 0x%02x", rc)
	}
}

// TestRatesRetainedBudgetEndToEnd: a client beyond its retained-topics
// budget gets PUBACK 0x97 and the message is not retained (a late
// subscriber does not get it); deleting one of its retained messages frees
// the budget.
func TestRatesRetainedBudgetEndToEnd(t *testing.T) {
	// openAccess explicitly: startBroker would take "per_identity:" for an
	// identity section and leave it out.
	b := startBroker(t, openAccess+"rates:\n  retained: {per_identity: {topics: 2, bytes: 1MiB}}\n"+ratesLifted, brokerOpts{})
	keeper := mustV5(t, b.addr, "keeper", "")
	retain := func(topic, payload string) int {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		resp, err := keeper.Publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Retain: true, Payload: []byte(payload)})
		if resp == nil {
			t.Fatalf("retain %s: %v", topic, err)
		}
		return int(resp.ReasonCode)
	}
	for _, topic := range []string{"state/1", "state/2"} {
		if rc := retain(topic, topic); rc != 0 {
			t.Fatalf("retain %s: 0x%02x", topic, rc)
		}
	}
	if rc := retain("state/3", "state/3"); rc != 0x97 {
		t.Fatalf("third retained topic: 0x%02x, want 0x97", rc)
	}
	b.events.wait(t, "rates.retained", "retained_topics_per_identity", time.Second)
	late := func(id string) map[string]string {
		c := mustV5(t, b.addr, id, "")
		c.subscribe(t, 1, "state/#")
		out := map[string]string{}
		for {
			select {
			case m := <-c.msgs:
				out[m.Topic] = string(m.Payload)
			case <-time.After(300 * time.Millisecond):
				return out
			}
		}
	}
	if got := late("late-1"); len(got) != 2 || got["state/1"] != "state/1" || got["state/2"] != "state/2" {
		t.Fatalf("late subscriber got %v, want state/1 and state/2 only", got)
	}
	if rc := retain("state/1", ""); rc != 0 { // deletes the retained message
		t.Fatalf("delete state/1: 0x%02x", rc)
	}
	if rc := retain("state/3", "state/3"); rc != 0 {
		t.Fatalf("state/3 after a delete: 0x%02x", rc)
	}
	if got := late("late-2"); len(got) != 2 || got["state/2"] != "state/2" || got["state/3"] != "state/3" {
		t.Fatalf("late subscriber got %v, want state/2 and state/3 only", got)
	}
}

// floodToDisconnect publishes at QoS 1 through c, each as soon as the last
// is acknowledged, until the server disconnects it (at most 200
// publishes). It returns the DISCONNECT, nil if none came within 5 s, and
// how many publishes were accepted and refused with 0x97 before it.
func floodToDisconnect(t testing.TB, c *v5) (d *paho.Disconnect, accepted, refused int) {
	t.Helper()
	// Publishes stop waiting when the server's DISCONNECT arrives.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	discon := make(chan *paho.Disconnect, 1)
	go func() {
		select {
		case d := <-c.discon:
			discon <- d
			cancel()
		case <-ctx.Done():
		}
	}()
	for i := 0; i < 200 && ctx.Err() == nil; i++ {
		pctx, pcancel := context.WithTimeout(ctx, 5*time.Second)
		resp, err := c.Publish(pctx, &paho.Publish{Topic: "flood/x", QoS: 1, Payload: []byte("x")})
		pcancel()
		switch {
		case resp != nil && err == nil && resp.ReasonCode == 0:
			accepted++
		case resp != nil && resp.ReasonCode == 0x97:
			refused++
		default:
			i = 200 // the connection is going away
		}
	}
	select {
	case d = <-discon:
	case <-time.After(5 * time.Second):
	}
	return d, accepted, refused
}
