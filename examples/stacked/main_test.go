package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"

	"github.com/mqttwaf/mqttwaf/mqttwaf/mqtttest"
)

// MQTT 5 reason codes the test expects.
const (
	codeBadCredentials = 0x86 // CONNACK: bad user name or password (mochi's ledger)
	codeNotAuthorized  = 0x87 // PUBACK: the ledger's ACL
	codeQuotaExceeded  = 0x97 // PUBACK: hooks.RateLimit (0x96 is not allowed in a PUBACK)
	codeFormatInvalid  = 0x99 // PUBACK: hooks.Normalize
)

// wait bounds every network exchange of the test.
const wait = 5 * time.Second

func TestStacked(t *testing.T) {
	var log lockedBuffer
	addr := start(t, &log)

	t.Run("ledger refuses a wrong password", func(t *testing.T) {
		c, err := dial(t, addr, "sensor1-bad", "sensor1", "wrong")
		if err == nil {
			t.Fatal("connected with a wrong password")
		}
		if c.connack == nil || c.connack.ReasonCode != codeBadCredentials {
			t.Fatalf("CONNACK %+v, want reason code %#x (err %v)", c.connack, codeBadCredentials, err)
		}
		// The right one still works: the refusal was the password's.
		must(t, addr, "sensor1-good", "sensor1", "s3cret")
	})

	t.Run("the listener checks frames before mochi reads them", func(t *testing.T) {
		// A CONNECT announcing 1 MiB: plain mochi would wait for the bytes
		// (it sets no deadline before CONNECT); the listener refuses it from
		// its fixed header, over the 256 KiB default.
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := conn.Write([]byte{0x10, 0x80, 0x80, 0x40, 0x00, 0x04, 'M', 'Q', 'T', 'T'}); err != nil {
			t.Fatal(err)
		}
		_ = conn.SetReadDeadline(time.Now().Add(wait))
		if _, err := io.ReadAll(conn); err != nil && !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("oversized CONNECT not refused: %v", err)
		}
		// The event is written as the socket closes: wait for it.
		deadline := time.Now().Add(wait)
		for log.events("connections.max_packet_size", "packet_too_large", "") == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("no connections.max_packet_size event; log:\n%s", log.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
	})

	t.Run("ledger ACL still decides", func(t *testing.T) {
		ops := must(t, addr, "ops-acl", "ops", "ops-pass")
		pr, err := ops.publish(t, "fleet/sensor1/telemetry", []byte(`{"lat":1,"lon":1}`))
		if err == nil || pr == nil || pr.ReasonCode != codeNotAuthorized {
			t.Fatalf("ops published on fleet/: %+v, %v; want reason code %#x", pr, err, codeNotAuthorized)
		}
	})

	t.Run("telemetry arrives normalised and redacted", func(t *testing.T) {
		ops := must(t, addr, "ops-view", "ops", "ops-pass")
		ops.subscribe(t, "fleet/#")
		sensor := must(t, addr, "sensor1-view", "sensor1", "s3cret")

		// Spaces and an escaped key ("ph\u006fne" is "phone"): Normalize
		// decodes it, so Redact finds the phone number.
		sent := `{ "ph\u006fne" : "+4915112345678", "lat": 52.520008, "lon" : 13.404954, "temp": 21.5 }`
		if _, err := sensor.publish(t, "fleet/sensor1/telemetry", []byte(sent)); err != nil {
			t.Fatal(err)
		}
		m := ops.next(t)
		if m.Topic != "fleet/sensor1/telemetry" {
			t.Fatalf("topic %q", m.Topic)
		}
		got := string(m.Payload)
		if strings.ContainsAny(got, " \\") {
			t.Errorf("payload not normalised (whitespace or escapes left): %s", got)
		}
		var doc struct {
			Phone    string
			Lat, Lon float64
			Temp     *float64
		}
		if err := json.Unmarshal(m.Payload, &doc); err != nil {
			t.Fatalf("payload %s: %v", got, err)
		}
		if doc.Phone != "**********5678" {
			t.Errorf("phone %q, want masked but for its last 4 digits", doc.Phone)
		}
		if strings.Contains(got, "4915112345678") {
			t.Errorf("phone number delivered: %s", got)
		}
		// Coarsened to the centre of a 1 km cell: moved, but by less than a cell.
		if doc.Lat == 52.520008 || doc.Lon == 13.404954 {
			t.Errorf("position not coarsened: %s", got)
		}
		if d := doc.Lat - 52.520008; d > 0.01 || d < -0.01 {
			t.Errorf("lat %v moved by %v degrees, more than a 1 km cell", doc.Lat, d)
		}
		if d := doc.Lon - 13.404954; d > 0.02 || d < -0.02 {
			t.Errorf("lon %v moved by %v degrees, more than a 1 km cell", doc.Lon, d)
		}
		if doc.Temp == nil || *doc.Temp != 21.5 {
			t.Errorf("temp not kept as published: %s", got)
		}
		// All of it: compact, keys decoded and in their order, the position
		// snapped to its cell's centre.
		if want := `{"phone":"**********5678","lat":52.52248,"lon":13.3977,"temp":21.5}`; got != want {
			t.Errorf("delivered %s\nwant      %s", got, want)
		}
	})

	t.Run("malformed telemetry is refused and not delivered", func(t *testing.T) {
		ops := must(t, addr, "ops-bad", "ops", "ops-pass")
		ops.subscribe(t, "fleet/#")
		sensor := must(t, addr, "sensor1-bad-json", "sensor1", "s3cret")
		for _, bad := range []string{
			`{"phone": "+4915112345678", "lat": 52.52`, // truncated
			`{"lat": 52.52, "lat": 0}`,                 // duplicate key
			`{"lat": 52.52, "LAT": 0}`,                 // case-variant key
			`lat=52.52`,                                // not JSON at all
		} {
			pr, err := sensor.publish(t, "fleet/sensor1/telemetry", []byte(bad))
			if err == nil || pr == nil || pr.ReasonCode != codeFormatInvalid {
				t.Errorf("publish %s: %+v, %v; want PUBACK reason code %#x", bad, pr, err, codeFormatInvalid)
			}
		}
		// The same connection's next message is the first the subscriber
		// gets (mochi handles one connection's packets in order).
		if _, err := sensor.publish(t, "fleet/sensor1/telemetry", []byte(`{"ok":true}`)); err != nil {
			t.Fatal(err)
		}
		if m := ops.next(t); string(m.Payload) != `{"ok":true}` {
			t.Fatalf("subscriber got %s before the valid message: a refused payload was delivered", m.Payload)
		}
	})

	t.Run("a burst over the rate limit is refused", func(t *testing.T) {
		ops := must(t, addr, "ops-burst", "ops", "ops-pass")
		ops.subscribe(t, "fleet/#")
		sensor := must(t, addr, "sensor1-burst", "sensor1", "s3cret")

		// 40 at once against 20/s with a burst of 20: about half must be
		// refused, fewer than the 50 refusals that would disconnect it.
		const n = 40
		began := time.Now()
		var wg sync.WaitGroup
		codes := make(chan byte, n)
		for range n {
			wg.Go(func() {
				pr, err := sensor.publish(t, "fleet/sensor1/status", []byte("up"))
				switch {
				case pr != nil:
					codes <- pr.ReasonCode
				default:
					t.Errorf("publish: %v", err)
				}
			})
		}
		wg.Wait()
		took := time.Since(began)
		close(codes)
		accepted, refused := 0, 0
		for c := range codes {
			switch c {
			case 0:
				accepted++
			case codeQuotaExceeded:
				refused++
			default:
				t.Errorf("PUBACK reason code %#x", c)
			}
		}
		t.Logf("%d accepted, %d refused with 0x97 in %s", accepted, refused, took)
		// The burst of 20, plus what the bucket refilled while it lasted.
		most := 20 + int(took.Seconds()*20) + 1
		if accepted < 20 || accepted > most || refused == 0 || accepted+refused != n {
			t.Fatalf("%d accepted, %d refused of %d in %s: want 20 to %d accepted and the rest refused", accepted, refused, n, took, most)
		}

		// A marker from the same connection, once the bucket has a token
		// again (one every 50ms): everything the subscriber gets before it
		// is what the burst delivered.
		ctx, cancel := context.WithTimeout(t.Context(), wait)
		defer cancel()
		for {
			pr, err := sensor.Publish(ctx, &paho.Publish{Topic: "fleet/sensor1/status", QoS: 1, Payload: []byte("end")})
			if err == nil {
				break
			}
			refused++
			if pr == nil || pr.ReasonCode != codeQuotaExceeded {
				t.Fatalf("marker: %+v, %v", pr, err)
			}
			select {
			case <-ctx.Done():
				t.Fatal("marker never accepted")
			case <-time.After(25 * time.Millisecond):
			}
		}
		delivered := 0
		for string(ops.next(t).Payload) != "end" {
			delivered++
		}
		if delivered != accepted {
			t.Fatalf("subscriber got %d messages of the burst, want the %d accepted", delivered, accepted)
		}
		// Every refusal (the marker's too) was the rate limit's: its events
		// name the connection's message rate (and code 0x96, message rate
		// too high, which a PUBACK cannot carry: the client got 0x97).
		if got := log.events("rates.publish", "connection_message_rate", "sensor1-burst"); got != refused {
			t.Fatalf("%d rates.publish events for sensor1-burst, want %d; log:\n%s", got, refused, log.String())
		}
	})
}

// lockedBuffer collects the program's log (mochi's and the WAF's events).
type lockedBuffer struct{ mqtttest.SyncBuffer }

// events counts the WAF's events (JSON lines) with rule, reason and client ID.
func (l *lockedBuffer) events(rule, reason, clientID string) int {
	n := 0
	for line := range strings.Lines(l.String()) {
		var e struct {
			Msg, Rule, Reason string
			ClientID          string `json:"client_id"`
		}
		if json.Unmarshal([]byte(line), &e) == nil && e.Msg == "mqttwaf" &&
			e.Rule == rule && e.Reason == reason && e.ClientID == clientID {
			n++
		}
	}
	return n
}

// start runs the program on a free port until the test ends, its log to stderr.
func start(t *testing.T, stderr io.Writer) string {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	addrc := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-addr", "127.0.0.1:0"}, stderr, func(a string) { addrc <- a })
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	select {
	case addr := <-addrc:
		return addr
	case err := <-done:
		t.Fatalf("run: %v", err)
	case <-time.After(wait):
		t.Fatal("not ready")
	}
	return ""
}

// client is a connected MQTT 5 client and the messages it receives.
type client struct {
	*paho.Client
	connack *paho.Connack
	msgs    chan *paho.Publish
}

// dial connects an MQTT 5 client; it returns the client (with its CONNACK)
// even when the connection is refused.
func dial(t *testing.T, addr, id, user, pass string) (*client, error) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c := &client{msgs: make(chan *paho.Publish, 100)}
	c.Client = paho.NewClient(paho.ClientConfig{
		Conn: packets.NewThreadSafeConn(conn), // publishes come from several goroutines
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			c.msgs <- pr.Packet
			return true, nil
		}},
		PacketTimeout: wait,
	})
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	defer cancel()
	c.connack, err = c.Connect(ctx, &paho.Connect{ClientID: id, CleanStart: true, KeepAlive: 30,
		Username: user, UsernameFlag: true, Password: []byte(pass), PasswordFlag: true})
	if err != nil {
		_ = conn.Close()
		return c, err
	}
	t.Cleanup(func() { _ = c.Disconnect(&paho.Disconnect{}) })
	return c, nil
}

func must(t *testing.T, addr, id, user, pass string) *client {
	t.Helper()
	c, err := dial(t, addr, id, user, pass)
	if err != nil {
		t.Fatalf("connect %s as %s: %v", id, user, err)
	}
	return c
}

func (c *client) subscribe(t *testing.T, filter string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	defer cancel()
	sa, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: 1}}})
	if err != nil {
		t.Fatalf("subscribe %s: %v", filter, err)
	}
	if len(sa.Reasons) != 1 || sa.Reasons[0] != 1 {
		t.Fatalf("subscribe %s: SUBACK %v, want QoS 1 granted", filter, sa.Reasons)
	}
}

// publish sends a QoS 1 message and returns its PUBACK.
func (c *client) publish(t *testing.T, topic string, payload []byte) (*paho.PublishResponse, error) {
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	defer cancel()
	pr, err := c.Publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Payload: payload})
	if pr == nil && err == nil {
		err = errors.New("no PUBACK")
	}
	return pr, err
}

// next returns the next message c receives.
func (c *client) next(t *testing.T) *paho.Publish {
	t.Helper()
	select {
	case m := <-c.msgs:
		return m
	case <-time.After(wait):
		t.Fatal("no message")
		return nil
	}
}
