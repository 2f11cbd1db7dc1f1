package proxy

import (
	"bytes"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	mqtt3 "github.com/eclipse/paho.mqtt.golang"

	"github.com/mqttwaf/mqttwaf/mqttwaf"
	"github.com/mqttwaf/mqttwaf/mqttwaf/frame"
)

// Through the proxy, an allowed MQTT 5 message reaches a subscriber at
// every QoS with its payload and properties as sent.
func TestPassthroughV5(t *testing.T) {
	up := startMosquitto(t)
	px, _ := startProxy(t, "", up, nil)
	sub := mustV5(t, px.Addr(), "sub5", "", "")
	if sa := subscribe5(t, sub, 2, "guest/#"); sa.Reasons[0] != 2 {
		t.Fatalf("SUBACK %v, want granted QoS 2", sa.Reasons)
	}
	pub := mustV5(t, px.Addr(), "pub5", "", "")
	for qos := byte(0); qos <= 2; qos++ {
		payload := []byte{0, 1, 2, 0xFF, qos} // binary, as sent
		_, err := publish5(t, pub, &paho.Publish{Topic: "guest/pub5/q", QoS: qos, Payload: payload, Properties: &paho.PublishProperties{
			ContentType: "application/octet-stream", CorrelationData: []byte("corr"), ResponseTopic: "guest/pub5/reply",
			User: paho.UserProperties{{Key: "k", Value: "v"}},
		}})
		if err != nil {
			t.Fatalf("QoS %d publish: %v", qos, err)
		}
		m := expectMsg(t, sub.Msgs, 5*time.Second)
		if m.Topic != "guest/pub5/q" || !bytes.Equal(m.Payload, payload) || m.QoS != qos ||
			m.Properties.ContentType != "application/octet-stream" || string(m.Properties.CorrelationData) != "corr" ||
			m.Properties.ResponseTopic != "guest/pub5/reply" || m.Properties.User.Get("k") != "v" {
			t.Fatalf("QoS %d: got %+v %+v", qos, m, m.Properties)
		}
	}
}

// The same for MQTT 3.1.1 clients (paho.mqtt.golang).
func TestPassthroughV311(t *testing.T) {
	up := startMosquitto(t)
	px, _ := startProxy(t, "", up, nil)
	sub, _, err := dialV3(t, px.Addr(), "sub3", "", "")
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan mqtt3.Message, 10)
	waitToken(t, sub.Subscribe("guest/#", 2, func(_ mqtt3.Client, m mqtt3.Message) { got <- m }))
	pub, _, err := dialV3(t, px.Addr(), "pub3", "", "")
	if err != nil {
		t.Fatal(err)
	}
	for qos := byte(0); qos <= 2; qos++ {
		payload := []byte{'x', 0, 0xFE, qos}
		waitToken(t, pub.Publish("guest/pub3/q", qos, false, payload))
		select {
		case m := <-got:
			if m.Topic() != "guest/pub3/q" || !bytes.Equal(m.Payload(), payload) || m.Qos() != qos {
				t.Fatalf("QoS %d: got %q %q QoS %d", qos, m.Topic(), m.Payload(), m.Qos())
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("QoS %d: nothing delivered", qos)
		}
	}
}

// A PUBLISH the proxy relays reaches a subscriber byte for byte as it
// reaches one connected to mosquitto directly: the proxy adds, removes and
// reorders nothing.
func TestDeliveryBytesEqualDirect(t *testing.T) {
	up := startMosquitto(t)
	px, _ := startProxy(t, "", up, nil)
	for _, ver := range []byte{4, 5} {
		direct := rawClient(t, up, ver, "direct")
		proxied := rawClient(t, px.Addr(), ver, "proxied")
		for _, c := range []*raw{direct, proxied} {
			c.send(t, rawSubscribe(ver, 1, "guest/#", 1))
			if pk := c.next(t); pk[0]>>4 != frame.TypeSuback {
				t.Fatalf("want SUBACK, got %x", pk)
			}
		}
		pub := rawClient(t, px.Addr(), ver, "pub")
		m := publish{qos: 1, id: 7, topic: "guest/pub/bytes", payload: []byte("exact \x00 bytes")}
		if ver == 5 {
			m.props.User = []mqttwaf.UserProperty{{Key: "a", Value: "b"}}
			m.props.ContentType = "text/plain"
		}
		sent := m.encode(ver)
		pub.send(t, sent)
		if pk := pub.next(t); pk[0]>>4 != frame.TypePuback {
			t.Fatalf("want PUBACK, got %x", pk)
		}
		a, b := direct.next(t), proxied.next(t)
		if !bytes.Equal(a, b) {
			t.Fatalf("MQTT %d: direct delivery %x, through the proxy %x", ver, a, b)
		}
		if !bytes.Contains(b, []byte("exact \x00 bytes")) {
			t.Fatalf("MQTT %d: delivery %x lacks the payload", ver, b)
		}
	}
}

// A refused publish is answered by the proxy and never reaches mosquitto:
// a subscriber connected to mosquitto directly gets the allowed message
// published after it, and nothing before.
func TestRefusedPublishNeverReachesBroker(t *testing.T) {
	up := startMosquitto(t)
	px, ev := startProxy(t, "", up, nil)
	watcher := mustV5(t, up, "watcher", "", "") // directly on mosquitto
	subscribe5(t, watcher, 1, "#")
	pub := mustV5(t, px.Addr(), "dev", "", "")
	res, err := publish5(t, pub, &paho.Publish{Topic: "other/dev/x", QoS: 1, Payload: []byte("refused")})
	if err == nil && (res == nil || res.ReasonCode != 0x87) {
		t.Fatalf("refused QoS 1 publish: %+v %v, want PUBACK 0x87", res, err)
	}
	if res, err := publish5(t, pub, &paho.Publish{Topic: "other/dev/x", QoS: 2, Payload: []byte("refused2")}); err == nil && (res == nil || res.ReasonCode != 0x87) {
		t.Fatalf("refused QoS 2 publish: %+v, want PUBREC 0x87", res)
	}
	ev.Wait(t, "acl", "", 5*time.Second)
	if _, err := publish5(t, pub, &paho.Publish{Topic: "guest/dev/ok", QoS: 1, Payload: []byte("allowed")}); err != nil {
		t.Fatal(err)
	}
	if m := expectMsg(t, watcher.Msgs, 5*time.Second); string(m.Payload) != "allowed" {
		t.Fatalf("mosquitto got %q on %q first: the refused publish went upstream", m.Payload, m.Topic)
	}
	// 3.1.1: drop (acknowledged, discarded) by default, at QoS 1 and 2.
	c3, _, err := dialV3(t, px.Addr(), "dev3", "", "")
	if err != nil {
		t.Fatal(err)
	}
	waitToken(t, c3.Publish("other/dev3/x", 1, false, "refused3"))
	waitToken(t, c3.Publish("other/dev3/x", 2, false, "refused4"))
	waitToken(t, c3.Publish("guest/dev3/ok", 2, false, "allowed3"))
	if m := expectMsg(t, watcher.Msgs, 5*time.Second); string(m.Payload) != "allowed3" {
		t.Fatalf("mosquitto got %q first: a refused 3.1.1 publish went upstream", m.Payload)
	}
}

// Refused filters get their code from the proxy, the rest the broker's,
// in the order of the SUBSCRIBE.
func TestSubackMerge(t *testing.T) {
	up := startMosquitto(t)
	px, _ := startProxy(t, "", up, nil)
	c := mustV5(t, px.Addr(), "merge", "", "")
	sa := subscribe5(t, c, 1, "secret/x", "guest/a", "#", "guest/b")
	if want := []byte{0x87, 1, 0x87, 1}; !bytes.Equal(sa.Reasons, want) {
		t.Fatalf("SUBACK %x, want %x", sa.Reasons, want)
	}
	sa = subscribe5(t, c, 0, "secret/y") // every filter refused: answered by the proxy alone
	if !bytes.Equal(sa.Reasons, []byte{0x87}) {
		t.Fatalf("SUBACK %x, want 87", sa.Reasons)
	}
	c3, _, err := dialV3(t, px.Addr(), "merge3", "", "")
	if err != nil {
		t.Fatal(err)
	}
	tok := c3.SubscribeMultiple(map[string]byte{"secret/x": 1, "guest/a": 1}, nil)
	waitToken(t, tok)
	res := tok.(*mqtt3.SubscribeToken).Result()
	if res["secret/x"] != 0x80 || res["guest/a"] != 1 {
		t.Fatalf("3.1.1 SUBACK %v, want secret/x 0x80 and guest/a 1", res)
	}
}

// A dead upstream gets the client a CONNACK 0x88 (3.1.1: 0x03) within the
// CONNECT deadline, and an event.
func TestDeadUpstream(t *testing.T) {
	dead := net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
	px, ev := startProxy(t, "", dead, nil)
	start := time.Now()
	c, err := dialV5(t, px.Addr(), &paho.Connect{ClientID: "early", CleanStart: true})
	if err == nil || c.Connack == nil || c.Connack.ReasonCode != 0x88 {
		t.Fatalf("connect through a dead upstream: %v %+v, want CONNACK 0x88", err, c.Connack)
	}
	if _, code, err := dialV3(t, px.Addr(), "early3", "", ""); err == nil || code != 3 {
		t.Fatalf("3.1.1 connect through a dead upstream: %v code %d, want 3", err, code)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("refusals took %s", d)
	}
	ev.Wait(t, "proxy.upstream", "upstream_unavailable", time.Second)
}

// The frame validator refuses a malformed packet before the proxy decodes
// it: an MQTT 5 client gets DISCONNECT 0x81 and nothing reaches mosquitto.
func TestMalformedPacketRefused(t *testing.T) {
	up := startMosquitto(t)
	px, ev := startProxy(t, "", up, nil)
	c := rawClient(t, px.Addr(), 5, "bad")
	// SUBSCRIBE whose filter has no subscription options byte (mochi
	// issue #501's crasher).
	c.send(t, []byte{0x82, 0x08, 0, 1, 0, 0, 3, 'a', '/', 'b'})
	pk := c.next(t)
	if pk[0]>>4 != frame.TypeDisconnect || len(pk) < 3 || pk[2] != 0x81 {
		t.Fatalf("got %x, want DISCONNECT 0x81", pk)
	}
	ev.Wait(t, "connections.protocol", "malformed_packet", 5*time.Second)
	// Before CONNECT: a first packet that is not CONNECT.
	nc, err := net.Dial("tcp", px.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_, _ = nc.Write([]byte{0xC0, 0}) // PINGREQ
	_ = nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadAll(nc); err != nil {
		t.Fatalf("socket not closed: %v", err)
	}
}

// A topic alias is resolved before any check: an aliased publish to a
// forbidden topic is refused, an aliased allowed one arrives with its topic.
func TestTopicAliasResolved(t *testing.T) {
	up := startMosquitto(t, "allow_anonymous true", "max_topic_alias 10")
	px, _ := startProxy(t, "", up, nil)
	sub := mustV5(t, px.Addr(), "asub", "", "")
	subscribe5(t, sub, 1, "guest/#")
	c := rawClient(t, px.Addr(), 5, "apub")
	set := publish{qos: 1, id: 1, topic: "guest/apub/t", alias: 1, payload: []byte("one")}
	set.props.TopicAlias = 1
	c.send(t, encodeAliased(set))
	if pk := c.next(t); pk[0]>>4 != frame.TypePuback || len(pk) > 4 && pk[4] != 0 {
		t.Fatalf("got %x, want PUBACK success", pk)
	}
	use := publish{qos: 1, id: 2, alias: 1, payload: []byte("two")}
	use.props.TopicAlias = 1
	c.send(t, encodeAliased(use))
	if pk := c.next(t); pk[0]>>4 != frame.TypePuback || len(pk) > 4 && pk[4] != 0 {
		t.Fatalf("got %x, want PUBACK success", pk)
	}
	for _, want := range []string{"one", "two"} {
		if m := expectMsg(t, sub.Msgs, 5*time.Second); m.Topic != "guest/apub/t" || string(m.Payload) != want {
			t.Fatalf("got %q %q, want guest/apub/t %q", m.Topic, m.Payload, want)
		}
	}
	bad := publish{qos: 1, id: 3, topic: "secret/t", alias: 2, payload: []byte("no")}
	bad.props.TopicAlias = 2
	c.send(t, encodeAliased(bad))
	badUse := publish{qos: 1, id: 4, alias: 2, payload: []byte("no")}
	badUse.props.TopicAlias = 2
	c.send(t, encodeAliased(badUse))
	for i := 0; i < 2; i++ {
		if pk := c.next(t); pk[0]>>4 != frame.TypePuback || len(pk) < 5 || pk[4] != 0x87 {
			t.Fatalf("got %x, want PUBACK 0x87", pk)
		}
	}
}

// Rate limits apply through the proxy as in the broker: over the rate, a
// QoS 1 publish gets 0x97 and does not reach mosquitto.
func TestRateLimit(t *testing.T) {
	up := startMosquitto(t)
	px, ev := startProxy(t, "rates: {publish: {per_connection: {messages: 1/min, burst: 2}}}\n", up, nil)
	pub := mustV5(t, px.Addr(), "fast", "", "")
	var codes []byte
	for i := 0; i < 3; i++ {
		res, err := publish5(t, pub, &paho.Publish{Topic: "guest/fast/x", QoS: 1, Payload: []byte("m")})
		switch {
		case err == nil:
			codes = append(codes, res.ReasonCode)
		case res != nil:
			codes = append(codes, res.ReasonCode)
		default:
			codes = append(codes, 0xFF)
		}
	}
	// mosquitto acknowledges with 0x10 (no matching subscribers): success.
	if codes[0] >= 0x80 || codes[1] >= 0x80 || codes[2] != 0x97 {
		t.Fatalf("PUBACK codes %x, want two successes then 97", codes)
	}
	ev.Wait(t, "rates.publish", "connection_message_rate", time.Second)
}

// A delivery the read check refuses (here: the policy was reloaded after
// the subscription) is acknowledged upstream by the proxy and never
// reaches the client; the connection goes on.
func TestRefusedDelivery(t *testing.T) {
	up := startMosquitto(t)
	policy := "roles: {guest: {publish: ['#'], subscribe: ['a/#', 'b/#'], min_literal_levels: 1}}\n"
	px, _ := startProxy(t, policy, up, nil)
	sub := mustV5(t, px.Addr(), "reader", "", "")
	subscribe5(t, sub, 2, "a/#", "b/#")
	p, err := mqttwaf.ParsePolicy([]byte("roles: {guest: {publish: ['#'], subscribe: ['b/#']}}\n"), "reload.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := px.waf.Reload(p); err != nil {
		t.Fatal(err)
	}
	direct := mustV5(t, up, "direct-pub", "", "") // straight into mosquitto
	for qos := byte(0); qos <= 2; qos++ {
		if _, err := publish5(t, direct, &paho.Publish{Topic: "a/x", QoS: qos, Payload: []byte("hidden")}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := publish5(t, direct, &paho.Publish{Topic: "b/x", QoS: 1, Payload: []byte("shown")}); err != nil {
		t.Fatal(err)
	}
	if m := expectMsg(t, sub.Msgs, 5*time.Second); string(m.Payload) != "shown" {
		t.Fatalf("subscriber got %q on %q: a refused delivery reached it", m.Payload, m.Topic)
	}
}

// The fleet example's README lines give the same results through the
// proxy in front of mosquitto as against hardened-broker: the snoop and a
// wrong password are refused, dev1 cannot publish as dev2, the back end
// reads telemetry raw with the publisher's identity stamped, analytics
// reads it redacted (byte for byte what wafcheck prints), and the JSON
// firewall refuses what is not JSON.
func TestFleetExampleThroughProxy(t *testing.T) {
	up := startMosquitto(t)
	p, err := mqttwaf.ReadPolicyFile(filepath.Join("..", "..", "examples", "hardened-broker", "fleet.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	px, ev := startProxyWith(t, p, up, nil)
	seed := filepath.Join("..", "testdata", "komdi-alarm.json")
	golden, err := os.ReadFile(filepath.Join("..", "..", "examples", "wafcheck", "testdata", "komdi-alarm.fleet-redacted.json"))
	if err != nil {
		t.Fatal(err)
	}
	watcher := mustV5(t, up, "watcher", "", "") // directly on mosquitto: what got through
	subscribe5(t, watcher, 1, "#")

	backend := mustV5(t, px.Addr(), "backend", "backend", "backend-demo-pass")
	subscribe5(t, backend, 1, "fleet/+/telemetry")
	analytics := mustV5(t, px.Addr(), "analytics", "analytics", "analytics-demo-pass")
	subscribe5(t, analytics, 1, "fleet/+/telemetry")
	analytics3, _, err := dialV3(t, px.Addr(), "analytics-3", "analytics", "analytics-demo-pass")
	if err != nil {
		t.Fatal(err)
	}
	got3 := make(chan []byte, 1)
	waitToken(t, analytics3.Subscribe("fleet/+/telemetry", 1, func(_ mqtt3.Client, m mqtt3.Message) { got3 <- m.Payload() }))

	// The anonymous snoop and a wrong password.
	if out, err := runTool(t, px.Addr(), "mosquitto_sub", "-t", "#", "-C", "1", "-W", "5"); err == nil || !strings.Contains(out, "not authorised") {
		t.Fatalf("anonymous '#' snoop: %v %s", err, out)
	}
	if out, err := runTool(t, px.Addr(), "mosquitto_sub", "-i", "dev1", "-u", "dev1", "-P", "guess", "-t", "fleet/dev1/cmd", "-C", "1", "-W", "5"); err == nil || !strings.Contains(out, "bad user name or password") {
		t.Fatalf("wrong password: %v %s", err, out)
	}
	// dev1 masquerading as dev2, and a client ID not bound to it.
	if out, _ := runTool(t, px.Addr(), "mosquitto_pub", "-V", "mqttv5", "-q", "1", "-i", "dev1", "-u", "dev1", "-P", "dev1-demo-pass",
		"-t", "fleet/dev2/telemetry", "-m", `{"spoofed":true}`); !strings.Contains(out, "Not authorized") {
		t.Fatalf("dev1 publishing as dev2: %s", out)
	}
	// The JSON firewall.
	if out, _ := runTool(t, px.Addr(), "mosquitto_pub", "-V", "mqttv5", "-q", "1", "-i", "dev1", "-u", "dev1", "-P", "dev1-demo-pass",
		"-t", "fleet/dev1/telemetry", "-m", `{"a":1,"a":2}`); !strings.Contains(out, "Payload format invalid") &&
		!strings.Contains(strings.ToLower(out), "payload format invalid") {
		t.Fatalf("duplicate keys: %s", out)
	}
	ev.Wait(t, "", "duplicate_key", time.Second)
	// dev1's own telemetry: delivered, stamped, raw for the back end and
	// redacted for analytics.
	if out, err := runTool(t, px.Addr(), "mosquitto_pub", "-V", "mqttv5", "-q", "1", "-i", "dev1", "-u", "dev1", "-P", "dev1-demo-pass",
		"-t", "fleet/dev1/telemetry", "-f", seed); err != nil {
		t.Fatalf("dev1 telemetry: %v %s", err, out)
	}
	m := expectMsg(t, watcher.Msgs, 5*time.Second)
	if m.Topic != "fleet/dev1/telemetry" || m.Properties.User.Get("x-identity") != "dev1" {
		t.Fatalf("mosquitto got %q with %v first: a refused publish went upstream, or the stamp is missing", m.Topic, m.Properties.User)
	}
	raw := expectMsg(t, backend.Msgs, 5*time.Second)
	if !bytes.Contains(raw.Payload, []byte("홍길수")) || bytes.Contains(raw.Payload, []byte(": ")) || raw.Properties.User.Get("x-identity") != "dev1" {
		t.Fatalf("back end (raw view): %s %v", raw.Payload, raw.Properties.User)
	}
	if got := expectMsg(t, analytics.Msgs, 5*time.Second).Payload; !bytes.Equal(got, golden) {
		t.Fatalf("analytics (redacted view, MQTT 5):\n got %s\nwant %s", got, golden)
	}
	select {
	case got := <-got3:
		if !bytes.Equal(got, golden) {
			t.Fatalf("analytics (redacted view, 3.1.1):\n got %s\nwant %s", got, golden)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("3.1.1 analytics got nothing")
	}
}

// Upstream identity: a mosquitto that accepts only the proxy's service
// account serves the proxy's clients in service mode, and refuses them in
// forward mode (its CONNACK is relayed as it sent it) and directly.
func TestUpstreamIdentityModes(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "passwd")
	if out, err := exec.Command(needMosquitto(t, "mosquitto_passwd"), "-b", "-c", pw, "waf-proxy", "service-secret").CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_passwd: %v %s", err, out)
	}
	up := startMosquitto(t, "allow_anonymous false", "password_file "+pw)
	service, _ := startProxy(t, "", up, func(o *Options) {
		o.Identity = Identity{Mode: IdentityService, Username: "waf-proxy", Password: "service-secret"}
	})
	forward, _ := startProxy(t, "", up, nil)

	sub := mustV5(t, service.Addr(), "svc-sub", "", "")
	subscribe5(t, sub, 1, "guest/#")
	c3, _, err := dialV3(t, service.Addr(), "svc-pub", "", "")
	if err != nil {
		t.Fatalf("3.1.1 client through the service account: %v", err)
	}
	waitToken(t, c3.Publish("guest/svc-pub/x", 1, false, "via service account"))
	if m := expectMsg(t, sub.Msgs, 5*time.Second); string(m.Payload) != "via service account" {
		t.Fatalf("got %q", m.Payload)
	}
	if c, err := dialV5(t, forward.Addr(), &paho.Connect{ClientID: "fwd", CleanStart: true}); err == nil || c.Connack == nil || c.Connack.ReasonCode != 0x87 {
		t.Fatalf("forward mode, anonymous client, broker that wants a password: %v %+v, want the broker's CONNACK 0x87", err, c.Connack)
	}
	if _, code, err := dialV3(t, up, "direct", "", ""); err == nil || code != 5 {
		t.Fatalf("anonymous client directly on mosquitto: %v code %d, want 5", err, code)
	}
}

// An upstream that accepts the connection but never answers the CONNECT
// gets the client CONNACK 0x88 at the CONNECT deadline, not a hang.
func TestSilentUpstream(t *testing.T) {
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			defer c.Close() // held open, never answered
		}
	}()
	px, ev := startProxy(t, "connections: {connect_timeout: 1s}\n", silent.Addr().String(), nil)
	start := time.Now()
	c, err := dialV5(t, px.Addr(), &paho.Connect{ClientID: "waits", CleanStart: true})
	if err == nil || c.Connack == nil || c.Connack.ReasonCode != 0x88 {
		t.Fatalf("connect through a silent upstream: %v %+v, want CONNACK 0x88", err, c.Connack)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("refused after %s, the deadline is 1s", d)
	}
	ev.Wait(t, "proxy.upstream", "upstream_unavailable", time.Second)
}

// MQTT 3.1 (MQIsdp, level 3) passes too: mosquitto_pub -V mqttv31.
func TestMQTT31(t *testing.T) {
	up := startMosquitto(t)
	px, _ := startProxy(t, "", up, nil)
	watcher := mustV5(t, up, "watcher", "", "")
	subscribe5(t, watcher, 1, "#")
	if out, err := runTool(t, px.Addr(), "mosquitto_pub", "-V", "mqttv31", "-q", "1", "-i", "old", "-t", "other/old/x", "-m", "refused"); err != nil {
		t.Fatalf("3.1 refused publish: %v %s", err, out) // acknowledged and dropped (responses.mqtt311_publish: drop)
	}
	if out, err := runTool(t, px.Addr(), "mosquitto_pub", "-V", "mqttv31", "-q", "1", "-i", "old", "-t", "guest/old/x", "-m", "v3.1"); err != nil {
		t.Fatalf("3.1 publish: %v %s", err, out)
	}
	if m := expectMsg(t, watcher.Msgs, 5*time.Second); m.Topic != "guest/old/x" || string(m.Payload) != "v3.1" {
		t.Fatalf("got %q %q", m.Topic, m.Payload)
	}
}
