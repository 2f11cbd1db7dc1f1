package hooks

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	mqtt3 "github.com/eclipse/paho.mqtt.golang"
	"github.com/gorilla/websocket"

	"github.com/mqttwaf/mqttwaf/mqttwaf"
)

// binaryPayload is every byte value, invalid UTF-8 and NULs included: the
// WAF must not touch payloads no rule is about.
func binaryPayload() []byte {
	b := make([]byte, 0, 600)
	for i := 0; i < 600; i++ {
		b = append(b, byte(i*7+i/256))
	}
	return b
}

func TestPassThroughByteExact(t *testing.T) {
	b := startBroker(t, "", brokerOpts{})
	payload := binaryPayload()

	sub5 := mustV5(t, b.addr, "sub5", "")
	sub5.subscribe(t, 1, "fleet/+/telemetry")
	sub3 := mustV3(t, b.addr, "sub3", "")
	got3 := make(chan []byte, 10)
	waitToken(t, sub3.Subscribe("fleet/+/telemetry", 1, func(_ mqtt3.Client, m mqtt3.Message) { got3 <- m.Payload() }))

	pub5 := mustV5(t, b.addr, "pub5", "")
	pub3 := mustV3(t, b.addr, "pub3", "")
	for _, qos := range []byte{0, 1, 2} {
		if _, err := pub5.publish(t, "fleet/d5/telemetry", qos, payload); err != nil {
			t.Fatalf("v5 qos %d: %v", qos, err)
		}
		waitToken(t, pub3.Publish("fleet/d3/telemetry", qos, false, payload))
		for i := 0; i < 2; i++ {
			if m := expectMsg(t, sub5.msgs, 5*time.Second); !bytes.Equal(m.Payload, payload) {
				t.Fatalf("v5 subscriber, qos %d: payload changed (%d bytes)", qos, len(m.Payload))
			}
			select {
			case p := <-got3:
				if !bytes.Equal(p, payload) {
					t.Fatalf("3.1.1 subscriber, qos %d: payload changed", qos)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("3.1.1 subscriber, qos %d: no message", qos)
			}
		}
	}
	if n := len(b.events.all()); n != 0 {
		t.Fatalf("legitimate traffic produced %d events: %v", n, b.events.all())
	}
}

func TestPassThroughMosquittoClients(t *testing.T) {
	b := startBroker(t, "", brokerOpts{})
	for _, version := range []string{"mqttv311", "mqttv5"} {
		t.Run(version, func(t *testing.T) {
			payload := `{"DATA":{"LAT":37.4057689,"LON":126.9720319},"note":"  spaces \u00e9 kept  "}`
			topic := "fleet/mosq-" + version + "/telemetry"
			wait := mosquittoSub(t, b.addr, "-V", version, "-t", topic, "-C", "1", "-W", "10", "-N", "-q", "1")
			b.waitSubscribed(t, topic)
			if out, err := mosquittoPub(t, b.addr, "-V", version, "-t", topic, "-m", payload, "-q", "1"); err != nil {
				t.Fatalf("mosquitto_pub: %v: %s", err, out)
			}
			got, err := wait()
			if err != nil {
				t.Fatal(err)
			}
			if got != payload {
				t.Fatalf("mosquitto_sub got %q, want %q", got, payload)
			}
		})
	}
}

func TestConnectDeadline(t *testing.T) {
	b := startBroker(t, "connections: {connect_timeout: 500ms}\n", brokerOpts{tls: true, ws: true})
	cases := []struct {
		name  string
		addr  string
		first []byte // bytes sent before going idle
	}{
		{"tcp idle", b.addr, nil},
		{"tcp partial connect", b.addr, []byte{0x10, 0x20, 0x00, 0x04, 'M'}},
		{"tls no handshake", b.tlsAddr, nil},
		{"websocket no upgrade", b.wsAddr, []byte("GET / HTTP/1.1\r\nHost: x\r\n")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := b.events.count("connections.connect_timeout", "")
			conn, err := net.Dial("tcp", tc.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if tc.first != nil {
				if _, err := conn.Write(tc.first); err != nil {
					t.Fatal(err)
				}
			}
			start := time.Now()
			_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, err = io.ReadAll(conn) // returns when the broker closes
			if ne := (net.Error)(nil); errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("socket still open after 5s")
			}
			if d := time.Since(start); d < 400*time.Millisecond || d > 4*time.Second {
				t.Fatalf("closed after %s, want about 500ms", d)
			}
			b.events.waitCount(t, "connections.connect_timeout", "connect_timeout", before+1, 2*time.Second)
		})
	}
	// A client that does connect in time is not cut off by the deadline.
	c := mustV5(t, b.addr, "punctual", "")
	time.Sleep(time.Second)
	if _, err := c.publish(t, "still/here", 1, []byte("ok")); err != nil {
		t.Fatalf("connected client was cut off: %v", err)
	}
}

func TestConnectDeadlineTLSAndWebsocketClientsWork(t *testing.T) {
	b := startBroker(t, "connections: {connect_timeout: 1s}\n", brokerOpts{tls: true, ws: true})
	sub := mustV5(t, b.addr, "sub", "")
	sub.subscribe(t, 1, "x/#")

	tc, err := tls.Dial("tcp", b.tlsAddr, &tls.Config{RootCAs: b.tlsCA, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	ct, err := connectV5(t, tc, &paho.Connect{ClientID: "over-tls", CleanStart: true})
	if err != nil {
		t.Fatal(err)
	}
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+b.wsAddr+"/", map[string][]string{"Sec-WebSocket-Protocol": {"mqtt"}})
	if err != nil {
		t.Fatal(err)
	}
	cw, err := connectV5(t, mqttwaf.WebSocketConn(ws), &paho.Connect{ClientID: "over-ws", CleanStart: true})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(1200 * time.Millisecond) // past the CONNECT deadline
	for _, c := range []*v5{ct, cw} {
		if _, err := c.publish(t, "x/"+c.ClientID(), 1, []byte("hello")); err != nil {
			t.Fatalf("%s: %v", c.ClientID(), err)
		}
		if m := expectMsg(t, sub.msgs, 5*time.Second); string(m.Payload) != "hello" {
			t.Fatalf("got %q", m.Payload)
		}
	}
}

func TestOversizedHeaderRefusedWithoutAllocation(t *testing.T) {
	b := startBroker(t, "", brokerOpts{})
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	conn, err := net.Dial("tcp", b.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// CONNECT whose remaining length says 268,435,455 bytes (256 MiB).
	if _, err := conn.Write([]byte{0x10, 0xFF, 0xFF, 0xFF, 0x7F}); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadAll(conn); err != nil {
		t.Fatalf("broker did not close the socket: %v", err)
	}
	e := b.events.wait(t, "connections.max_packet_size", "packet_too_large", 2*time.Second)
	if e.Code != mqttwaf.CodePacketTooLarge || e.RemoteIP != "127.0.0.1" {
		t.Fatalf("event %+v", e)
	}
	runtime.ReadMemStats(&after)
	if grown := after.TotalAlloc - before.TotalAlloc; grown > 16<<20 {
		t.Fatalf("broker allocated %d MiB for a refused header", grown>>20)
	}

	// After CONNECT the same: a PUBLISH header announcing 1 MiB closes the
	// connection, with an event.
	c := mustV5(t, b.addr, "big", "")
	if _, err := c.conn.Write([]byte{0x30, 0x80, 0x80, 0x40}); err != nil {
		t.Fatal(err)
	}
	b.events.waitCount(t, "connections.max_packet_size", "packet_too_large", 2, 2*time.Second)
}

func TestWillHeldToPublishRules(t *testing.T) {
	forbidden := "fleet/a/b/c/d/e/f/g/h" // 9 levels: over limits.topic.max_levels
	for _, tc := range []struct {
		name, policy string
		topic        string
		refused      bool
		delivered    bool
	}{
		{"valid will is delivered", "", "fleet/dev/status", false, true},
		{"refuse", "", forbidden, true, false},
		{"strip", "wills: {on_violation: strip}\n", forbidden, false, false},
		{"reserved topic", "", "$SYS/broker/fake", true, false},
		{"strip_all", "wills: {strip_all: true}\n", "fleet/dev/status", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := startBroker(t, tc.policy, brokerOpts{})
			sub := mustV5(t, b.addr, "watcher", "")
			sub.subscribe(t, 1, "fleet/#", "$SYS/broker/fake")

			conn, err := net.Dial("tcp", b.addr)
			if err != nil {
				t.Fatal(err)
			}
			dev, err := connectV5(t, conn, &paho.Connect{ClientID: "dev", CleanStart: true,
				WillMessage: &paho.WillMessage{Topic: tc.topic, QoS: 1, Payload: []byte("offline")}})
			if tc.refused {
				if err == nil || dev.connack == nil || dev.connack.ReasonCode < 0x80 {
					t.Fatalf("CONNECT with will on %q accepted", tc.topic)
				}
				b.events.wait(t, "", "", time.Second)
				return
			}
			if err != nil {
				t.Fatalf("connect: %v", err)
			}
			_ = conn.Close() // abrupt: mochi sends the will
			if tc.delivered {
				if m := expectMsg(t, sub.msgs, 5*time.Second); m.Topic != tc.topic || string(m.Payload) != "offline" {
					t.Fatalf("will: %q %q", m.Topic, m.Payload)
				}
				return
			}
			expectNoMsg(t, sub.msgs, 500*time.Millisecond)
			b.events.wait(t, "wills", "", time.Second)
		})
	}
}

func TestWillRefusedOnMQTT311(t *testing.T) {
	b := startBroker(t, "", brokerOpts{})
	_, code, err := dialV3(t, b.addr, "dev3", "", func(o *mqtt3.ClientOptions) {
		o.SetWill("fleet/a/b/c/d/e/f/g/h", "offline", 1, false)
	})
	if err == nil || code != v3NotAuthorized {
		t.Fatalf("3.1.1 CONNECT with forbidden will: code %d err %v", code, err)
	}
}

func TestTakeoverByOtherIdentityRefused(t *testing.T) {
	creds := credsFile(t, "alice:dev:alice-pw-1", "mallory:dev:mallory-pw", "ops:dev:ops-pw-123")
	b := startBroker(t, "identity: {credentials_file: "+creds+", anonymous: {allow: never}}\n"+
		"roles: {dev: {publish: ['fleet/#'], subscribe: ['fleet/#']}}\n", brokerOpts{})
	sessionExpiry := uint32(300)
	alice := func(clean bool) *paho.Connect {
		return &paho.Connect{ClientID: "dev1", Username: "alice", Password: []byte("alice-pw-1"), PasswordFlag: true,
			CleanStart: clean, Properties: &paho.ConnectProperties{SessionExpiryInterval: &sessionExpiry}}
	}
	mallory := &paho.Connect{ClientID: "dev1", Username: "mallory", Password: []byte("mallory-pw"), PasswordFlag: true}
	owner, err := dialV5(t, b.addr, alice(false))
	if err != nil {
		t.Fatal(err)
	}
	owner.subscribe(t, 1, "fleet/dev1/cmd")

	// Another identity (authenticated, but not the owner), same client ID:
	// refused on both protocol versions.
	thief, err := dialV5(t, b.addr, mallory)
	if err == nil || thief.connack == nil || thief.connack.ReasonCode != byte(mqttwaf.CodeClientIDNotValid) {
		t.Fatalf("takeover by mallory (v5) not refused with 0x85: %v %+v", err, thief.connack)
	}
	if _, code, err := dialV3(t, b.addr, "dev1", "mallory", func(o *mqtt3.ClientOptions) { o.SetPassword("mallory-pw") }); err == nil || code != v3IdentifierRejected {
		t.Fatalf("takeover by mallory (3.1.1) not refused with 0x02: code %d err %v", code, err)
	}
	b.events.wait(t, "sessions.takeover", "session_owned_by_other_identity", time.Second)

	// The owner still has its session.
	pub := mustV5Pass(t, b.addr, "backend", "ops", "ops-pw-123")
	if _, err := pub.publish(t, "fleet/dev1/cmd", 1, []byte("reboot")); err != nil {
		t.Fatal(err)
	}
	if m := expectMsg(t, owner.msgs, 5*time.Second); string(m.Payload) != "reboot" {
		t.Fatalf("owner got %q", m.Payload)
	}
	// paho hands the message over before it sends the PUBACK. Disconnecting
	// before the broker has the PUBACK would leave "reboot" unacknowledged,
	// and the resumed session would rightly redeliver it (DUP) ahead of
	// "queued" [MQTT-4.4.0-1]. Wait for the acknowledgement, so the only
	// message the resumed session can owe is the one queued while offline.
	b.waitInflightEmpty(t, "dev1")

	// While the owner is offline, its queued messages stay out of reach too.
	_ = owner.Disconnect(&paho.Disconnect{})
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if cl, ok := b.server.Clients.Get("dev1"); ok && cl.Closed() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("owner still connected")
		}
	}
	if _, err := pub.publish(t, "fleet/dev1/cmd", 1, []byte("queued")); err != nil {
		t.Fatal(err)
	}
	mallory.Password = []byte("mallory-pw") // paho may have consumed it
	if _, err := dialV5(t, b.addr, mallory); err == nil {
		t.Fatal("mallory took over the offline session")
	}
	// The same identity resumes it and gets the queued message.
	back, err := dialV5(t, b.addr, alice(false))
	if err != nil {
		t.Fatalf("owner could not resume: %v", err)
	}
	if !back.connack.SessionPresent {
		t.Fatal("owner's session was lost")
	}
	if m := expectMsg(t, back.msgs, 5*time.Second); string(m.Payload) != "queued" {
		t.Fatalf("got %q", m.Payload)
	}
	// Exactly once: an acknowledged message is not delivered again.
	expectNoMsg(t, back.msgs, 100*time.Millisecond)
}

// waitInflightEmpty waits until the broker holds no unacknowledged packet
// for the connected client id, i.e. it has processed the client's acks.
func (b *testBroker) waitInflightEmpty(t testing.TB, id string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		cl, ok := b.server.Clients.Get(id)
		if !ok {
			t.Fatalf("client %q not connected", id)
		}
		if cl.State.Inflight.Len() == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("client %q still has %d unacknowledged packets", id, cl.State.Inflight.Len())
		}
	}
}

func TestKeepaliveClamped(t *testing.T) {
	b := startBroker(t, "connections: {max_keepalive: 60s}\n", brokerOpts{})
	c, err := dialV5(t, b.addr, &paho.Connect{ClientID: "keepalive-zero", CleanStart: true, KeepAlive: 0})
	if err != nil {
		t.Fatal(err)
	}
	ka := c.connack.Properties.ServerKeepAlive
	if ka == nil || *ka != 60 {
		t.Fatalf("server keepalive %v, want 60", ka)
	}
	e := b.events.wait(t, "connections.keepalive", "keepalive_clamped", time.Second)
	if e.Action != mqttwaf.Rewrite || e.Value != 0 || e.Limit != 60 {
		t.Fatalf("event %+v", e)
	}
	ok := mustV5(t, b.addr, "keepalive-30", "")
	if ok.connack.Properties.ServerKeepAlive != nil {
		t.Fatal("a keepalive within the limit was changed")
	}
}

func TestConnectionCapPerIP(t *testing.T) {
	b := startBroker(t, "connections: {max_connections_per_ip: 2}\n", brokerOpts{})
	mustV5(t, b.addr, "one", "")
	mustV5(t, b.addr, "two", "")
	conn, err := net.Dial("tcp", b.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadAll(conn); err != nil {
		t.Fatalf("third socket from one IP was not closed: %v", err)
	}
	e := b.events.wait(t, "connections.caps", "max_connections_per_ip", time.Second)
	if e.Limit != 2 || e.Value != 3 {
		t.Fatalf("event %+v", e)
	}
	if open, ips := b.waf.OpenConnections(); open != 2 || ips != 1 {
		t.Fatalf("open %d from %d IPs, want 2 from 1", open, ips)
	}
}

func TestSubscribeRefusalsAreFilterPrecise(t *testing.T) {
	b := startBroker(t, "", brokerOpts{})
	long := "a/" + strings.Repeat("x", 300)
	c := mustV5(t, b.addr, "s5", "")
	sa := c.subscribe(t, 1, "ok/#", long, "$mqttwaf/#", "a/b/c/d/e/f/g/h/i")
	want := []byte{1, byte(mqttwaf.CodeTopicFilterInvalid), byte(mqttwaf.CodeNotAuthorized), byte(mqttwaf.CodeTopicFilterInvalid)}
	if !bytes.Equal(sa.Reasons, want) {
		t.Fatalf("SUBACK %x, want %x", sa.Reasons, want)
	}
	c3 := mustV3(t, b.addr, "s3", "")
	tok := c3.SubscribeMultiple(map[string]byte{"ok/#": 1, long: 1}, nil)
	waitToken(t, tok)
	res := tok.(*mqtt3.SubscribeToken).Result()
	if res["ok/#"] != 1 || res[long] != 0x80 {
		t.Fatalf("3.1.1 SUBACK %v", res)
	}
	// The granted filter works.
	p := mustV5(t, b.addr, "p", "")
	if _, err := p.publish(t, "ok/go", 1, []byte("x")); err != nil {
		t.Fatal(err)
	}
	expectMsg(t, c.msgs, 5*time.Second)
}
