package hooks

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"
	mqtt3 "github.com/eclipse/paho.mqtt.golang"
	mqtt "github.com/mochi-mqtt/server/v2"
)

// soakPolicy keeps the broker's per-client stores smaller than the
// defaults (8192 messages, 8 MiB), so the overload test
// reaches them with a few thousand messages, and still large enough for a
// subscriber that keeps up with four publishers at full speed.
const soakPolicy = `broker: {max_inflight: 2048, max_inflight_bytes: 2MiB}
rates:
  connect: {per_ip: 100000/s, per_network: 100000/s}
  flapping: {off: true}
  new_client_ids: {per_ip: 100000/min, per_username: 100000/min, global: 100000/min}
  publish:
    per_connection: {messages: 1000000/s, bytes: 10GiB/s}
    per_username: {messages: 1000000/s, bytes: 10GiB/s}
    per_ip: {messages: 1000000/s, bytes: 10GiB/s}
`

const (
	soakPublishers = 4
	soakMessages   = 1500 // per publisher
	soakPayload    = 1000 // bytes, about the seed telemetry message: 6 MB in all, more than loopback socket buffers hold
)

// tally is what one subscriber received: each message once, by its
// publisher and sequence number.
type tally struct {
	mu    sync.Mutex
	seen  map[string]int
	total atomic.Int64
	// slow, while set, makes the subscriber take this long per message
	// (and, through its client, acknowledge and read that slowly).
	slow atomic.Int64
}

func newTally() *tally { return &tally{seen: map[string]int{}} }

func (t *tally) add(payload []byte) {
	if d := time.Duration(t.slow.Load()); d > 0 {
		time.Sleep(d)
	}
	key, _, _ := strings.Cut(string(payload), " ")
	t.mu.Lock()
	t.seen[key]++
	t.mu.Unlock()
	t.total.Add(1)
}

func (t *tally) distinct() (n, dups int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, c := range t.seen {
		n++
		dups += c - 1
	}
	return n, dups
}

// slowConn reads at most 1 KiB per millisecond while its tally is slow.
type slowConn struct {
	net.Conn
	t *tally
}

func (c *slowConn) Read(b []byte) (int, error) {
	if c.t.slow.Load() > 0 {
		time.Sleep(time.Millisecond)
		b = b[:min(len(b), 1024)]
	}
	return c.Conn.Read(b)
}

// soakClient is what the test needs of an MQTT 5 or 3.1.1 client.
type soakClient interface {
	publish(topic string, qos byte, payload []byte) error
}

type soakV5 struct{ c *v5 }

func (s soakV5) publish(topic string, qos byte, payload []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := s.c.Publish(ctx, &paho.Publish{Topic: topic, QoS: qos, Payload: payload})
	return err
}

type soakV3 struct{ c mqtt3.Client }

func (s soakV3) publish(topic string, qos byte, payload []byte) error {
	tok := s.c.Publish(topic, qos, false, payload)
	if !tok.WaitTimeout(10 * time.Second) {
		return fmt.Errorf("publish to %s: no acknowledgement in 10s", topic)
	}
	return tok.Error()
}

// soakSubscriber connects a subscriber of the given protocol that counts
// into t.
func soakSubscriber(tb testing.TB, addr string, proto int, id string, qos byte, t *tally) {
	tb.Helper()
	if proto == 5 {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			tb.Fatal(err)
		}
		// paho.golang queues QoS 0 messages without bound while its
		// handler is busy, so a slow handler alone would not slow its
		// reading: the socket is read slowly too.
		conn = packets.NewThreadSafeConn(&slowConn{Conn: conn, t: t})
		c := &v5{msgs: make(chan *paho.Publish, 1), discon: make(chan *paho.Disconnect, 1)}
		c.Client = paho.NewClient(paho.ClientConfig{
			Conn: conn,
			OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
				t.add(pr.Packet.Payload)
				return true, nil
			}},
			PacketTimeout: 10 * time.Second,
		})
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := c.Connect(ctx, &paho.Connect{ClientID: id, CleanStart: true, KeepAlive: 30}); err != nil {
			tb.Fatalf("connect %s: %v", id, err)
		}
		tb.Cleanup(func() { _ = c.Disconnect(&paho.Disconnect{}) })
		c.subscribe(tb, qos, "soak/#")
		return
	}
	c := mustV3(tb, addr, id, "")
	waitToken(tb, c.Subscribe("soak/#", qos, func(_ mqtt3.Client, m mqtt3.Message) { t.add(m.Payload()) }))
}

// TestOverloadNoRace floods a fast and a slow subscriber, at each QoS and
// in both protocol versions, and checks the broker's delivery guarantees:
// the subscriber that keeps up receives every message exactly as often as
// its QoS promises; every message the slow one did not receive is a
// broker.delivery_dropped event for it (nothing is lost silently, QoS 0
// included); the slow subscriber's in-flight store stays within
// broker.max_inflight and max_inflight_bytes (plus one message per
// publisher racing for the last slot) during the flood; and a new client
// still connects promptly. It runs without the race detector, whose
// slowdown would measure the detector.
func TestOverloadNoRace(t *testing.T) {
	if raceEnabled {
		t.Skip("a load test: run without -race")
	}
	for _, proto := range []int{5, 4} {
		for qos := byte(0); qos <= 2; qos++ {
			t.Run(fmt.Sprintf("v%d/qos%d", proto, qos), func(t *testing.T) { overload(t, proto, qos) })
		}
	}
}

func overload(t *testing.T, proto int, qos byte) {
	b := startBroker(t, soakPolicy, brokerOpts{})
	fast, slow := newTally(), newTally()
	slow.slow.Store(int64(2 * time.Millisecond))
	soakSubscriber(t, b.addr, proto, "fast", qos, fast)
	soakSubscriber(t, b.addr, proto, "slow", qos, slow)
	b.waitSubscribers(t, "soak/#", 2)

	pubs := make([]soakClient, soakPublishers)
	for i := range pubs {
		id := "pub-" + strconv.Itoa(i)
		if proto == 5 {
			pubs[i] = soakV5{mustV5(t, b.addr, id, "")}
		} else {
			pubs[i] = soakV3{mustV3(t, b.addr, id, "")}
		}
	}

	// Watch the slow subscriber's store while the flood runs.
	var slowCl *mqtt.Client
	if cl, ok := b.server.Clients.Get("slow"); ok {
		slowCl = cl
	} else {
		t.Fatal("slow subscriber not found")
	}
	var peakLen, peakBytes atomic.Int64
	stop := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
			peakLen.Store(max(peakLen.Load(), int64(slowCl.State.Inflight.Len())))
			peakBytes.Store(max(peakBytes.Load(), heldBytes(slowCl)))
		}
	}()

	var wg sync.WaitGroup
	var failed atomic.Int64
	padding := strings.Repeat("x", soakPayload)
	for i, p := range pubs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range soakMessages {
				payload := []byte(fmt.Sprintf("%d/%d %s", i, n, padding))
				if err := p.publish("soak/"+strconv.Itoa(i), qos, payload); err != nil {
					failed.Add(1)
					return
				}
				if qos == 0 && n%10 == 9 {
					// QoS 0 has no flow control: pace it to what a
					// subscriber that keeps up can read (~8,000/s in all,
					// in bursts well below the write queue).
					time.Sleep(5 * time.Millisecond)
				}
			}
		}()
	}

	// A new client connects during the flood.
	time.Sleep(50 * time.Millisecond)
	var connects []time.Duration
	for i := range 5 {
		start := time.Now()
		c := mustV5(t, b.addr, "newcomer-"+strconv.Itoa(i), "")
		connects = append(connects, time.Since(start))
		_ = c.Disconnect(&paho.Disconnect{})
	}
	wg.Wait()
	close(stop)
	<-watched
	if failed.Load() > 0 {
		t.Fatalf("%d publishers failed", failed.Load())
	}
	slow.slow.Store(0) // the flood is over: let the slow subscriber drain

	want := soakPublishers * soakMessages
	deadline := time.Now().Add(30 * time.Second)
	for fast.total.Load() < int64(want) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	// The slow subscriber is drained when it has everything it will get:
	// its store is empty and its count stopped moving.
	for last := int64(-1); time.Now().Before(deadline); {
		time.Sleep(200 * time.Millisecond)
		n := slow.total.Load()
		if n == last && slowCl.State.Inflight.Len() == 0 {
			break
		}
		last = n
	}

	drops := map[string]int{}
	for _, e := range b.events.all() {
		if e.Rule == "broker.delivery_dropped" {
			drops[e.ClientID+" "+e.Reason]++
		}
	}
	fastGot, fastDups := fast.distinct()
	slowGot, slowDups := slow.distinct()
	slowDropped := 0
	for k, n := range drops {
		if strings.HasPrefix(k, "slow ") {
			slowDropped += n
		}
	}
	t.Logf("fast %d/%d (dups %d); slow %d + %d dropped %v (dups %d); slow store peak %d messages, %d bytes; connects %v",
		fastGot, want, fastDups, slowGot, slowDropped, drops, slowDups, peakLen.Load(), peakBytes.Load(), connects)

	if fastGot != want {
		t.Errorf("the fast subscriber received %d of %d messages", fastGot, want)
	}
	if qos == 2 && (fastDups > 0 || slowDups > 0) {
		t.Errorf("QoS 2 delivered duplicates: fast %d, slow %d", fastDups, slowDups)
	}
	if slowGot+slowDropped != want {
		t.Errorf("slow subscriber: %d received + %d reported dropped != %d published: %d lost silently",
			slowGot, slowDropped, want, want-slowGot-slowDropped)
	}
	if slowDropped == 0 {
		t.Errorf("the slow subscriber lost nothing: the flood did not overload it, the test proves nothing")
	}
	for k := range drops {
		if !strings.HasPrefix(k, "slow ") {
			t.Errorf("dropped deliveries to another client: %v", drops)
		}
	}
	// The store's bounds hold (deliveries racing for the last slot may
	// each add one message).
	bp := b.waf.Broker()
	msg := int64(len("9/9999 ") + soakPayload + len("soak/9"))
	if peakLen.Load() > int64(bp.MaxInflight+soakPublishers) {
		t.Errorf("slow store peaked at %d messages, limit %d", peakLen.Load(), bp.MaxInflight)
	}
	if peakBytes.Load() > int64(bp.MaxInflightBytes)+soakPublishers*msg {
		t.Errorf("slow store peaked at %d bytes, limit %d", peakBytes.Load(), bp.MaxInflightBytes)
	}
	slices.Sort(connects)
	if median := connects[len(connects)/2]; median > 100*time.Millisecond {
		t.Errorf("a new client took %s (median of %v) to connect during the flood", median, connects)
	}
	// Every drop mochi itself counted is among the events (and counters).
	var counted uint64
	for _, c := range b.waf.Counters() {
		if c.Rule == "broker.delivery_dropped" {
			counted += c.N
		}
	}
	if mochi := b.server.Info.MessagesDropped + b.server.Info.InflightDropped; int64(counted) < mochi {
		t.Errorf("mochi dropped %d deliveries, the WAF counted %d", mochi, counted)
	}
}
