package hooks

import (
	"crypto/tls"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	mqtt3 "github.com/eclipse/paho.mqtt.golang"

	"github.com/mqttwaf/mqttwaf/mqttwaf"
)

// fleetPolicy is the worked example of the README: devices publish their
// own telemetry and read their own commands; the back end reads all
// telemetry and writes commands; nobody else gets in.
const fleetPolicy = `
identity:
  credentials_file: %s
  anonymous: {allow: never}
  certificate: {identity: cn}
  lockout: {max_failures: 100}
roles:
  device:
    publish: ["fleet/{username}/telemetry", "fleet/{username}/status"]
    subscribe: ["fleet/{username}/cmd"]
    retain: ["fleet/{username}/status"]
  backend:
    publish: ["fleet/+/cmd"]
    subscribe: ["fleet/+/telemetry", "fleet/+/status"]
  ops:
    subscribe: ["fleet/#"]
    sys: true
`

func fleetBroker(t *testing.T, extra string, o brokerOpts) *testBroker {
	t.Helper()
	creds := credsFile(t, "dev1:device:dev1-secret", "dev2:device:dev2-secret", "dev3:device:-",
		"backend:backend:backend-secret", "ops:ops:ops-secret")
	return startBroker(t, strings.Replace(fleetPolicy, "%s", creds, 1)+extra, o)
}

func TestSnoopingOnHashIsRefused(t *testing.T) {
	t.Run("fleet policy: anonymous CONNECT refused", func(t *testing.T) {
		b := fleetBroker(t, "", brokerOpts{})
		c, err := dialV5(t, b.addr, &paho.Connect{ClientID: "snoop", CleanStart: true})
		if err == nil || c.connack.ReasonCode != byte(mqttwaf.CodeNotAuthorized) {
			t.Fatalf("anonymous v5 connect: %v %+v", err, c.connack)
		}
		if _, code, err := dialV3(t, b.addr, "snoop3", "", nil); err == nil || code != v3NotAuthorized {
			t.Fatalf("anonymous 3.1.1 connect: code %d, %v", code, err)
		}
		out, err := mosquittoSub(t, b.addr, "-t", "#", "-C", "1", "-W", "3")()
		if err == nil || out != "" {
			t.Fatalf("mosquitto_sub -t '#' got %q, %v", out, err)
		}
	})
	t.Run("default policy: '#' refused in the SUBACK", func(t *testing.T) {
		b := startBroker(t, "identity: {}\n", brokerOpts{}) // the defaults: anonymous guests on loopback
		c := mustV5(t, b.addr, "guest1", "")
		if sa := c.subscribe(t, 0, "#", "+/#", "guest/#"); sa.Reasons[0] != 0x87 || sa.Reasons[1] != 0x87 || sa.Reasons[2] != 0 {
			t.Fatalf("SUBACK %x", sa.Reasons)
		}
		c3 := mustV3(t, b.addr, "guest3", "")
		tok := c3.Subscribe("#", 0, nil)
		waitToken(t, tok)
		if code := tok.(*mqtt3.SubscribeToken).Result()["#"]; code != 0x80 {
			t.Fatalf("3.1.1 SUBACK for '#': 0x%02x", code)
		}
		before := b.events.count("acl", "wildcard_too_broad")
		wait := mosquittoSub(t, b.addr, "-V", "mqttv5", "-i", "snoop", "-t", "#", "-C", "1", "-W", "2")
		b.events.waitCount(t, "acl", "wildcard_too_broad", before+1, 5*time.Second)
		e, _ := b.events.find("acl", "wildcard_too_broad")
		if e.Stage != mqttwaf.StageSubscribe || e.Topic != "#" {
			t.Fatalf("event %+v", e)
		}
		// The sandbox the default policy gives a guest works, and the snoop
		// does not see it.
		if out, err := mosquittoPub(t, b.addr, "-i", "guest9", "-t", "guest/guest9/hello", "-m", "hi", "-q", "1"); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		if out, _ := wait(); out != "" {
			t.Fatalf("mosquitto_sub -t '#' received %q", out)
		}
	})
}

func TestDevicesAreIsolated(t *testing.T) {
	b := fleetBroker(t, "", brokerOpts{})
	dev1 := mustV5Pass(t, b.addr, "dev1", "dev1", "dev1-secret")
	dev2 := mustV5Pass(t, b.addr, "dev2", "dev2", "dev2-secret")
	backend := mustV5Pass(t, b.addr, "backend", "backend", "backend-secret")
	backend.subscribe(t, 1, "fleet/+/telemetry")
	dev2.subscribe(t, 1, "fleet/dev2/cmd")

	// dev1 cannot subscribe to dev2's commands or telemetry, nor to everything.
	sa := dev1.subscribe(t, 1, "fleet/dev2/cmd", "fleet/dev2/telemetry", "fleet/+/cmd", "fleet/dev1/cmd")
	if want := []byte{0x87, 0x87, 0x87, 1}; string(sa.Reasons) != string(want) {
		t.Fatalf("dev1 SUBACK %x, want %x", sa.Reasons, want)
	}
	// dev1 cannot publish as dev2, nor commands to dev2.
	for _, topic := range []string{"fleet/dev2/telemetry", "fleet/dev2/cmd"} {
		if resp, err := dev1.publish(t, topic, 1, []byte("spoof")); err == nil || resp.ReasonCode != 0x87 {
			t.Fatalf("dev1 -> %s: %v %+v", topic, err, resp)
		}
	}
	expectNoMsg(t, backend.msgs, 200*time.Millisecond)
	expectNoMsg(t, dev2.msgs, 10*time.Millisecond)
	// Its own telemetry flows to the back end, and commands reach it.
	if _, err := dev1.publish(t, "fleet/dev1/telemetry", 1, []byte(`{"t":21}`)); err != nil {
		t.Fatal(err)
	}
	if m := expectMsg(t, backend.msgs, 5*time.Second); m.Topic != "fleet/dev1/telemetry" {
		t.Fatalf("backend got %q", m.Topic)
	}
	if _, err := backend.publish(t, "fleet/dev2/cmd", 1, []byte("reboot")); err != nil {
		t.Fatal(err)
	}
	expectMsg(t, dev2.msgs, 5*time.Second)
	// Retained messages need the retain permission.
	ctxPub := func(topic string, retain bool) byte {
		t.Helper()
		resp, _ := dev1.Publish(t.Context(), &paho.Publish{Topic: topic, QoS: 1, Retain: retain, Payload: []byte("x")})
		if resp == nil {
			t.Fatalf("no response for %s", topic)
		}
		return resp.ReasonCode
	}
	if rc := ctxPub("fleet/dev1/telemetry", true); rc != 0x87 {
		t.Fatalf("retained telemetry: 0x%02x", rc)
	}
	if rc := ctxPub("fleet/dev1/status", true); rc != 0 {
		t.Fatalf("retained status: 0x%02x", rc)
	}
	b.events.wait(t, "acl", "retain_not_permitted", time.Second)
}

func TestBadCredentialsRefused(t *testing.T) {
	b := fleetBroker(t, "", brokerOpts{})
	for _, tc := range []struct{ user, pass string }{
		{"dev1", "wrong"}, {"nobody", "dev1-secret"}, {"dev3", "anything"}, // dev3 is certificate-only
	} {
		c, err := dialV5(t, b.addr, &paho.Connect{ClientID: tc.user, Username: tc.user, Password: []byte(tc.pass), PasswordFlag: true, CleanStart: true})
		if err == nil || c.connack.ReasonCode != byte(mqttwaf.CodeBadUsernameOrPassword) {
			t.Fatalf("%s/%s v5: %v %+v", tc.user, tc.pass, err, c.connack)
		}
		// The client learns nothing about which part was wrong.
		if rs := c.connack.Properties.ReasonString; rs != "bad_credentials" {
			t.Fatalf("reason string %q", rs)
		}
		_, code, err := dialV3(t, b.addr, tc.user, tc.user, func(o *mqtt3.ClientOptions) { o.SetPassword(tc.pass) })
		if err == nil || code != v3BadUsernamePassword {
			t.Fatalf("%s/%s 3.1.1: code %d, %v", tc.user, tc.pass, code, err)
		}
	}
	e := b.events.wait(t, "identity.authenticate", "bad_credentials", time.Second)
	if e.Username == "" || strings.Contains(e.Detail, "secret") {
		t.Fatalf("event %+v", e)
	}
	if out, err := mosquittoPub(t, b.addr, "-u", "dev1", "-P", "nope", "-t", "fleet/dev1/telemetry", "-m", "x"); err == nil {
		t.Fatalf("mosquitto_pub with a wrong password succeeded: %s", out)
	}
	if out, err := mosquittoPub(t, b.addr, "-i", "dev1", "-u", "dev1", "-P", "dev1-secret", "-t", "fleet/dev1/telemetry", "-m", "x"); err != nil {
		t.Fatalf("mosquitto_pub with the right password: %v %s", err, out)
	}
}

func TestHostileNamesCannotWidenTemplates(t *testing.T) {
	creds := credsFile(t, "dev1:device:dev1-secret")
	b := startBroker(t, `
identity: {credentials_file: `+creds+`, anonymous: {allow: anywhere, role: guest}}
roles:
  device: {publish: ["fleet/{username}/#"], subscribe: ["fleet/{username}/#"]}
  guest: {publish: ["guest/{clientid}/#"], subscribe: ["guest/{clientid}/#"]}
`, brokerOpts{})
	for _, id := range []string{"+", "#", "a/b", "x/#"} {
		c, err := dialV5(t, b.addr, &paho.Connect{ClientID: id, CleanStart: true})
		if err == nil || c.connack.ReasonCode != byte(mqttwaf.CodeClientIDNotValid) {
			t.Fatalf("client ID %q: %v %+v", id, err, c.connack)
		}
		c, err = dialV5(t, b.addr, &paho.Connect{ClientID: "ok", Username: id, Password: []byte("dev1-secret"), PasswordFlag: true, CleanStart: true})
		if err == nil || c.connack.ReasonCode != byte(mqttwaf.CodeBadUsernameOrPassword) {
			t.Fatalf("username %q: %v %+v", id, err, c.connack)
		}
	}
	// A guest gets exactly its own sandbox.
	g := mustV5(t, b.addr, "g1", "")
	if sa := g.subscribe(t, 0, "guest/g1/#", "guest/+/x", "guest/#"); string(sa.Reasons) != "\x00\x87\x87" {
		t.Fatalf("guest SUBACK %x", sa.Reasons)
	}
}

func TestCertificateIdentity(t *testing.T) {
	b := fleetBroker(t, "listeners: {tls: {require_client_certificate: true}}\n", brokerOpts{tls: true})
	dial := func(cert *tls.Certificate, cp *paho.Connect) (*v5, error) {
		cfg := &tls.Config{RootCAs: b.tlsCA, ServerName: "127.0.0.1"}
		if cert != nil {
			cfg.Certificates = []tls.Certificate{*cert}
		}
		conn, err := tls.Dial("tcp", b.tlsAddr, cfg)
		if err != nil {
			t.Fatal(err)
		}
		return connectV5(t, conn, cp)
	}
	backend := mustV5Pass(t, b.addr, "backend", "backend", "backend-secret")
	backend.subscribe(t, 1, "fleet/+/telemetry")

	// dev3 has no password: its certificate is its identity.
	cert := b.pki.issue(t, "dev3", false)
	dev3, err := dial(&cert, &paho.Connect{ClientID: "dev3-sensor", CleanStart: true})
	if err != nil {
		t.Fatalf("certificate-only client: %v", err)
	}
	if _, err := dev3.publish(t, "fleet/dev3/telemetry", 1, []byte("{}")); err != nil {
		t.Fatal(err)
	}
	if m := expectMsg(t, backend.msgs, 5*time.Second); m.Topic != "fleet/dev3/telemetry" {
		t.Fatalf("got %q", m.Topic)
	}
	if resp, err := dev3.publish(t, "fleet/dev1/telemetry", 1, []byte("{}")); err == nil || resp.ReasonCode != 0x87 {
		t.Fatalf("dev3 publishing as dev1: %v %+v", err, resp)
	}
	// A user name that contradicts the certificate is refused.
	if c, err := dial(&cert, &paho.Connect{ClientID: "x", Username: "dev1", CleanStart: true, UsernameFlag: true}); err == nil || c.connack.ReasonCode != 0x86 {
		t.Fatalf("username contradicting the certificate: %v", err)
	}
	// On this listener a certificate is required, even with a good password.
	if c, err := dial(nil, &paho.Connect{ClientID: "dev1", Username: "dev1", Password: []byte("dev1-secret"), PasswordFlag: true, CleanStart: true}); err == nil || c.connack.ReasonCode != 0x87 {
		t.Fatalf("no certificate on a listener that requires one: %v", err)
	}
	// A certificate from another CA is refused by TLS itself.
	other := newPKI(t).issue(t, "dev1", false)
	if _, err := dial(&other, &paho.Connect{ClientID: "dev1", CleanStart: true}); err == nil {
		t.Fatal("certificate from an unknown CA accepted")
	}
}

func TestWillToForbiddenTopicRefused(t *testing.T) {
	b := fleetBroker(t, "", brokerOpts{})
	c, err := dialV5(t, b.addr, &paho.Connect{ClientID: "dev1", Username: "dev1", Password: []byte("dev1-secret"), PasswordFlag: true, CleanStart: true,
		WillMessage: &paho.WillMessage{Topic: "fleet/dev2/status", Payload: []byte("dev2 is dead")}})
	if err == nil || c.connack.ReasonCode != 0x87 {
		t.Fatalf("will on another device's topic: %v %+v", err, c.connack)
	}
	e := b.events.wait(t, "acl", "publish_not_permitted", time.Second)
	if e.Stage != mqttwaf.StageConnect || !strings.Contains(e.Detail, "last will") {
		t.Fatalf("event %+v", e)
	}
	// Its own status topic is fine.
	if _, err := dialV5(t, b.addr, &paho.Connect{ClientID: "dev1", Username: "dev1", Password: []byte("dev1-secret"), PasswordFlag: true, CleanStart: true,
		WillMessage: &paho.WillMessage{Topic: "fleet/dev1/status", Payload: []byte("offline")}}); err != nil {
		t.Fatal(err)
	}
}

func TestRemovedGrantStopsExistingSubscription(t *testing.T) {
	creds := credsFile(t, "dev1:device:dev1-secret", "backend:backend:backend-secret")
	policy := func(backendSub string) *mqttwaf.Policy {
		p, err := mqttwaf.ParsePolicy([]byte(testPolicy+`
identity: {credentials_file: `+creds+`, anonymous: {allow: never}}
roles:
  device: {publish: ["fleet/{username}/telemetry"]}
  backend: {subscribe: [`+backendSub+`]}
`), "p")
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	b := startBroker(t, "identity: {credentials_file: "+creds+", anonymous: {allow: never}}\nroles: {device: {publish: [\"fleet/{username}/telemetry\"]}, backend: {subscribe: [\"fleet/+/telemetry\"]}}\n", brokerOpts{})
	backend := mustV5Pass(t, b.addr, "backend", "backend", "backend-secret")
	backend.subscribe(t, 1, "fleet/+/telemetry")
	dev1 := mustV5Pass(t, b.addr, "dev1", "dev1", "dev1-secret")
	if _, err := dev1.publish(t, "fleet/dev1/telemetry", 1, []byte("1")); err != nil {
		t.Fatal(err)
	}
	expectMsg(t, backend.msgs, 5*time.Second)

	if err := b.waf.Reload(policy(`"fleet/other/telemetry"`)); err != nil {
		t.Fatal(err)
	}
	if _, err := dev1.publish(t, "fleet/dev1/telemetry", 1, []byte("2")); err != nil {
		t.Fatal(err)
	}
	expectNoMsg(t, backend.msgs, 300*time.Millisecond)
	b.events.wait(t, "acl", "read_not_permitted", time.Second)

	if err := b.waf.Reload(policy(`"fleet/+/telemetry"`)); err != nil {
		t.Fatal(err)
	}
	if _, err := dev1.publish(t, "fleet/dev1/telemetry", 1, []byte("3")); err != nil {
		t.Fatal(err)
	}
	if m := expectMsg(t, backend.msgs, 5*time.Second); string(m.Payload) != "3" {
		t.Fatalf("got %q", m.Payload)
	}
}

func TestStampedIdentityCannotBeForged(t *testing.T) {
	b := fleetBroker(t, "provenance: {user_property: x-identity}\n", brokerOpts{})
	backend := mustV5Pass(t, b.addr, "backend", "backend", "backend-secret")
	backend.subscribe(t, 1, "fleet/+/telemetry")
	backend3, _, err := dialV3(t, b.addr, "backend3", "backend", func(o *mqtt3.ClientOptions) { o.SetPassword("backend-secret") })
	if err != nil {
		t.Fatal(err)
	}
	got3 := make(chan []byte, 1)
	waitToken(t, backend3.Subscribe("fleet/+/telemetry", 1, func(_ mqtt3.Client, m mqtt3.Message) { got3 <- m.Payload() }))

	dev1 := mustV5Pass(t, b.addr, "dev1", "dev1", "dev1-secret")
	if _, err := dev1.Publish(t.Context(), &paho.Publish{Topic: "fleet/dev1/telemetry", QoS: 1, Payload: []byte(`{"t":1}`),
		Properties: &paho.PublishProperties{User: paho.UserProperties{{Key: "x-identity", Value: "backend"}, {Key: "unit", Value: "C"}}}}); err != nil {
		t.Fatal(err)
	}
	m := expectMsg(t, backend.msgs, 5*time.Second)
	var ids []string
	for _, u := range m.Properties.User {
		if u.Key == "x-identity" {
			ids = append(ids, u.Value)
		}
	}
	if len(ids) != 1 || ids[0] != "dev1" || m.Properties.User.Get("unit") != "C" {
		t.Fatalf("user properties %+v", m.Properties.User)
	}
	b.events.wait(t, "provenance", "forged_identity_property_removed", time.Second)
	// 3.1.1 subscribers get the payload (3.1.1 has no user properties).
	select {
	case p := <-got3:
		if string(p) != `{"t":1}` {
			t.Fatalf("3.1.1 payload %q", p)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("3.1.1 subscriber got nothing")
	}
}

func TestPasswordGuessingLocksOut(t *testing.T) {
	creds := credsFile(t, "dev1:device:dev1-secret", "dev2:device:dev2-secret")
	b := startBroker(t, `
identity: {credentials_file: `+creds+`, anonymous: {allow: never}, lockout: {max_failures: 3, duration: 1m}}
roles: {device: {publish: ["fleet/{username}/telemetry"]}}
`, brokerOpts{})
	connect := func(user, pass string) byte {
		t.Helper()
		return connectCode(t, b.addr, user, pass)
	}
	if rc := connect("dev1", "dev1-secret"); rc != 0 {
		t.Fatalf("right password before any failure: 0x%02x", rc)
	}
	for i := 0; i < 4; i++ { // three failures are tolerated, the fourth locks out
		if rc := connect("dev1", "guess"); rc != 0x86 {
			t.Fatalf("guess %d: 0x%02x", i, rc)
		}
	}
	// Locked out: the right password is refused too, with 0x8A. Another
	// identity from the same address is not: the address has its own, much
	// higher threshold (identity.lockout.max_failures_per_address).
	if rc := connect("dev1", "dev1-secret"); rc != 0x8A {
		t.Fatalf("right password while locked out: 0x%02x", rc)
	}
	if rc := connect("dev2", "dev2-secret"); rc != 0 {
		t.Fatalf("other user from the same address: 0x%02x", rc)
	}
	if _, code, err := dialV3(t, b.addr, "dev1", "dev1", func(o *mqtt3.ClientOptions) { o.SetPassword("dev1-secret") }); err == nil || code != v3NotAuthorized {
		t.Fatalf("3.1.1 while locked out: code %d, %v", code, err)
	}
	b.events.waitCount(t, "identity.lockout", "authentication_locked_out", 2, time.Second)
	e, _ := b.events.find("identity.lockout", "authentication_locked_out")
	if e.Action != mqttwaf.Reject || e.Code != mqttwaf.CodeBanned {
		t.Fatalf("event %+v", e)
	}
}
