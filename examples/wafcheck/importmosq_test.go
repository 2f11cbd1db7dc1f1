package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	pahomqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/mqttwaf/mqttwaf/mqttwaf"
	"github.com/mqttwaf/mqttwaf/mqttwaf/mqtttest"
)

// The realistic mosquitto configuration the importer is tested on: a
// password file made by mosquitto_passwd ($7$ hashes; every user's password
// is "<user>-password") and an ACL file with user sections, an anonymous
// read line, denies and pattern lines with %u and %c.
const (
	mosqPasswdFile = "testdata/mosquitto/passwd"
	mosqACLFile    = "testdata/mosquitto/acl"
)

// mosqCase is one decision mosquitto makes with that configuration: may
// the client publish to topic (pub), or does it receive a message
// published there after subscribing to exactly that topic (read)?
type mosqCase struct {
	user, clientID string // user "" is anonymous
	op             string // pub or read
	topic          string
	allowed        bool
}

var mosqCases = []mosqCase{
	// pattern write fleet/%u/telemetry, for every user, grouped or not
	{"dev1", "dev1", "pub", "fleet/dev1/telemetry", true},
	{"dev1", "dev1", "pub", "fleet/dev2/telemetry", false},
	{"dev2", "dev2", "pub", "fleet/dev2/telemetry", true},
	{"sensor3", "sensor3", "pub", "fleet/sensor3/telemetry", true},
	{"backend", "backend", "pub", "fleet/dev1/telemetry", false},
	// pattern readwrite clients/%c/#: the client ID, not the user name
	{"dev1", "gps-7", "pub", "clients/gps-7/scratch", true},
	{"dev1", "gps-7", "pub", "clients/dev1/scratch", false},
	{"", "anon-1", "pub", "clients/anon-1/x", true},
	// user sections, with deny winning over the user's own grant
	{"backend", "backend", "pub", "fleet/dev1/cmd", true},
	{"backend", "backend", "pub", "fleet/lab/cmd", false},
	{"dashboard", "dashboard", "pub", "fleet/dev1/cmd", false},
	{"admin", "admin", "pub", "anything/at/all", true},
	// anonymous: read-only public/status
	{"", "anon-1", "pub", "public/status", false},
	{"", "anon-1", "read", "public/status", true},
	{"", "anon-1", "read", "fleet/dev1/telemetry", false},
	{"", "anon-1", "read", "fleet/anon-1/cmd", false}, // %u pattern: no user name, no grant
	// reading
	{"dev1", "dev1", "read", "fleet/dev1/cmd", true},
	{"dev1", "dev1", "read", "fleet/dev2/cmd", false},
	{"sensor3", "sensor3", "read", "fleet/sensor3/cmd", true},
	{"backend", "backend", "read", "fleet/dev1/telemetry", true},
	{"backend", "backend", "read", "fleet/lab/telemetry", false},
	{"dashboard", "dashboard", "read", "fleet/dev1/telemetry", true},
	{"dashboard", "dashboard", "read", "fleet/dev2/telemetry", false},
	{"admin", "admin", "read", "fleet/dev2/telemetry", true},
}

func (c mosqCase) String() string {
	who := c.user
	if who == "" {
		who = "anonymous"
	}
	return fmt.Sprintf("%s(%s) %s %s", who, c.clientID, c.op, c.topic)
}

// importFixture imports the test configuration into a fresh directory,
// requiring no warnings, and returns the directory.
func importFixture(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	var stdout, stderr bytes.Buffer
	if rc := run([]string{"import-mosquitto", "-passwd", mosqPasswdFile, "-acl", mosqACLFile, "-out", dir}, nil, &stdout, &stderr); rc != 0 {
		t.Fatalf("exit %d: %s", rc, stderr.String())
	}
	if strings.Contains(stderr.String(), "warning:") {
		t.Fatalf("warnings for a configuration that imports completely:\n%s", stderr.String())
	}
	return dir
}

// casesPolicy imports the test configuration and loads the policy as
// mosquitto runs it for mosqCases: anonymous clients allowed (the policy
// says never by default), and the flood limits lifted, which are not what
// the cases are about (they connect some 70 clients from one address within
// a second, two dozen of them as admin).
func casesPolicy(t *testing.T) *mqttwaf.Policy {
	t.Helper()
	path := filepath.Join(importFixture(t), importedPolicyName)
	p, err := mqttwaf.ReadPolicyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if p.Identity.Anonymous.Allow != "never" {
		t.Fatalf("identity.anonymous.allow = %q, want never by default", p.Identity.Anonymous.Allow)
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.WriteString("rates:\n  connect: {per_ip: 1000/s}\n  flapping: {off: true}\n" +
		"  new_client_ids: {per_ip: 10000/min, per_username: 10000/min}\n")
	if err := errors.Join(err, f.Close()); err != nil {
		t.Fatal(err)
	}
	if p, err = mqttwaf.ReadPolicyFile(path); err != nil {
		t.Fatal(err)
	}
	p.Identity.Anonymous.Allow = "loopback" // allow_anonymous true
	return p
}

// The imported policy loads, keeps every user with its mosquitto hash, and
// makes the same decisions as mosquitto, through the broker's own engine
// with real password checks of the copied $7$ hashes.
func TestImportMosquittoDecisions(t *testing.T) {
	p := casesPolicy(t)
	w, err := mqttwaf.New(p, mqttwaf.Options{Sink: mqttwaf.SinkFunc(func(mqttwaf.Event) {})})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range mosqCases {
		t.Run(c.String(), func(t *testing.T) {
			id := identity{Username: c.user, ClientID: c.clientID, Listener: "tcp"}
			if c.user != "" {
				id.Password, id.PasswordSet = []byte(c.user+"-password"), true
			}
			cl, v, _ := connectAs(w, id, localRemote)
			if v.Blocked() {
				t.Fatalf("CONNECT refused: %s (%s)", v.Reason, v.Rule)
			}
			defer w.Close(localRemote)
			var why string
			switch c.op {
			case "pub":
				v, _ = w.PublishLayers(cl, &mqttwaf.Message{Topic: c.topic, QoS: 1, Payload: []byte("x")})
				why = "publish: " + v.Reason
			case "read":
				if v = w.Subscribe(cl, &mqttwaf.Subscription{Filter: c.topic, QoS: 1}); v.Blocked() {
					why = "subscribe: " + v.Reason
				} else {
					v = w.Deliver(cl, c.topic)
					why = "delivery: " + v.Reason
				}
			}
			if got := !v.Blocked(); got != c.allowed {
				t.Errorf("allowed = %v (%s), mosquitto: %v", got, why, c.allowed)
			}
		})
	}
}

// The same cases over the network, with MQTT 3.1.1 clients, against a
// real mosquitto running the original files (so the table is mosquitto's
// own behaviour) and against the mochi broker with the imported policy.
func TestImportMosquittoParity(t *testing.T) {
	t.Run("mosquitto", func(t *testing.T) { playNetworkCases(t, startMosquittoACL(t)) })
	t.Run("mqttwaf", func(t *testing.T) {
		p := casesPolicy(t)
		addr, _ := startFleetBroker(t, p)
		playNetworkCases(t, addr)
	})
}

// playNetworkCases plays mosqCases against the broker at addr.
func playNetworkCases(t *testing.T, addr string) {
	connect := func(t *testing.T, user, clientID string, onMsg pahomqtt.MessageHandler) pahomqtt.Client {
		t.Helper()
		o := pahomqtt.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(clientID).SetAutoReconnect(false).
			SetConnectRetry(false).SetDefaultPublishHandler(onMsg)
		if user != "" {
			o.SetUsername(user).SetPassword(user + "-password")
		}
		c := pahomqtt.NewClient(o)
		if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("%s cannot connect: %v", user, tok.Error())
		}
		t.Cleanup(func() { c.Disconnect(0) })
		return c
	}
	wait := func(t *testing.T, tok pahomqtt.Token) {
		t.Helper()
		if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("no acknowledgement: %v", tok.Error())
		}
	}
	for i, c := range mosqCases {
		t.Run(c.String(), func(t *testing.T) {
			got := make(chan pahomqtt.Message, 16)
			handler := func(_ pahomqtt.Client, m pahomqtt.Message) { got <- m }
			// The marker follows the case's message on the same connection,
			// so it is routed after it: once the marker arrives, the
			// message has arrived or never will. Every client may use
			// clients/<client ID>/# (pattern readwrite clients/%c/#).
			payload, marker := fmt.Sprintf("case-%d", i), fmt.Sprintf("marker-%d", i)
			markerTopic := "clients/" + c.clientID + "/marker"
			switch c.op {
			case "pub":
				// admin reads everything (topic readwrite #)
				watch := connect(t, "admin", fmt.Sprintf("watch-%d", i), handler)
				wait(t, watch.Subscribe("#", 1, nil))
				pub := connect(t, c.user, c.clientID, func(pahomqtt.Client, pahomqtt.Message) {})
				wait(t, pub.Publish(c.topic, 1, false, payload)) // a refused 3.1.1 publish is acknowledged and dropped
				wait(t, pub.Publish(markerTopic, 1, false, marker))
			case "read":
				sub := connect(t, c.user, c.clientID, handler)
				wait(t, sub.SubscribeMultiple(map[string]byte{c.topic: 1, markerTopic: 1}, nil))
				send := connect(t, "admin", fmt.Sprintf("send-%d", i), func(pahomqtt.Client, pahomqtt.Message) {})
				wait(t, send.Publish(c.topic, 1, false, payload))
				wait(t, send.Publish(markerTopic, 1, false, marker))
			}
			received := false
			for {
				select {
				case m := <-got:
					switch string(m.Payload()) {
					case payload:
						received = true
					case marker:
						if received != c.allowed {
							t.Errorf("allowed = %v, the table says %v", received, c.allowed)
						}
						return
					}
				case <-time.After(5 * time.Second):
					t.Fatal("the marker never arrived")
				}
			}
		})
	}
}

// startMosquittoACL runs mosquitto on a free loopback port with the test's
// password and ACL files and anonymous clients allowed (mqtttest).
func startMosquittoACL(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range []string{mosqPasswdFile, mosqACLFile} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		// mosquitto 2 refuses to read a password file others can read
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(f)), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return mqtttest.StartMosquitto(t, "allow_anonymous true", "password_file "+filepath.Join(dir, "passwd"),
		"acl_file "+filepath.Join(dir, "acl"))
}

// What cannot be carried over is a warning naming the file and line, and
// nothing else of the file is lost.
func TestImportMosquittoWarnings(t *testing.T) {
	dir := t.TempDir()
	passwd := filepath.Join(dir, "passwd")
	acl := filepath.Join(dir, "acl")
	writeFile(t, passwd, "dev1:$7$101$CtK4bicxEEXkdMEC$xHqhxCLz9sE7GIp5eNZUsbsuDgVoMpIOgY6TMU0+NA9E8nmHFXm2mY3sHgEnOtlKEZfZ8SUCl02INEAwFzbl/Q==\n"+
		"plain:secret\n"+
		"a/b:$7$101$CtK4bicxEEXkdMEC$xHqhxCLz9sE7GIp5eNZUsbsuDgVoMpIOgY6TMU0+NA9E8nmHFXm2mY3sHgEnOtlKEZfZ8SUCl02INEAwFzbl/Q==\n")
	writeFile(t, acl, strings.Join([]string{
		"user dev1",                   // 1
		"topic write $SYS/broker/x",   // 2
		"topic read a/{b}",            // 3
		"topic read a/b#",             // 4
		"bogus line",                  // 5
		"topic read $SYS/broker/load", // 6
		"topic readwrite ok/topic",    // 7
		"user ghost",                  // 8
		"topic read ghost/#",          // 9
		"pattern deny secret/%u",      // 10
	}, "\n")+"\n")
	out := t.TempDir()
	var stdout, stderr bytes.Buffer
	if rc := run([]string{"import-mosquitto", "-passwd", passwd, "-acl", acl, "-out", out}, nil, &stdout, &stderr); rc != 0 {
		t.Fatalf("exit %d: %s", rc, stderr.String())
	}
	for _, want := range []string{
		passwd + ":2: user \"plain\": the password is not a mosquitto $6$ or $7$ hash",
		passwd + ":3: ", // a/b: not an identity name
		acl + ":2: write access to \"$SYS/broker/x\" cannot be granted",
		acl + ":3: topic \"a/{b}\" contains '{' or '}'",
		acl + ":4: topic \"a/b#\" is not a valid topic filter",
		acl + ":5: \"bogus line\" is not a user, topic or pattern line",
		acl + ":6: \"$SYS/broker/load\" became sys: true for role \"dev1\"",
		acl + ":8: user \"ghost\" has ACL rules but no password",
		acl + ":10: pattern deny \"secret/%u\" is a deny in every role",
	} {
		if !strings.Contains(stderr.String(), "warning: "+want) {
			t.Errorf("no warning %q in:\n%s", want, stderr.String())
		}
	}
	policy, err := os.ReadFile(filepath.Join(out, importedPolicyName))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"ok/topic"`, `"ghost/#"`, `"secret/{username}"`, "sys: true", "9 warning(s)"} {
		if !bytes.Contains(policy, []byte(want)) {
			t.Errorf("policy lacks %s:\n%s", want, policy)
		}
	}
	creds, err := os.ReadFile(filepath.Join(out, importedCredsName))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(creds, []byte("\ndev1:dev1:$7$101$")) || bytes.Contains(creds, []byte("plain")) || bytes.Contains(creds, []byte("a/b")) {
		t.Errorf("credentials file:\n%s", creds)
	}
	if _, err := mqttwaf.ReadPolicyFile(filepath.Join(out, importedPolicyName)); err != nil {
		t.Fatalf("the imported policy does not load: %v", err)
	}
}

func TestImportMosquittoUsage(t *testing.T) {
	dir := importFixture(t)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no acl", []string{"-passwd", mosqPasswdFile}, importUsage},
		{"no passwd", []string{"-acl", mosqACLFile}, importUsage},
		{"missing file", []string{"-passwd", mosqPasswdFile, "-acl", "testdata/mosquitto/nope", "-out", t.TempDir()}, "no such file"},
		{"never overwrites", []string{"-passwd", mosqPasswdFile, "-acl", mosqACLFile, "-out", dir}, "exists: remove it or choose another -out"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if rc := run(append([]string{"import-mosquitto"}, tc.args...), nil, &stdout, &stderr); rc != 2 || !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("exit %d, stderr %q; want 2 and %q", rc, stderr.String(), tc.want)
			}
		})
	}
}

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}
