package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"
	"golang.org/x/crypto/bcrypt"

	"github.com/mqttwaf/mqttwaf/hooks"
)

// storePolicy is fleet.yaml's setting with a few changes for the test: the
// back end's view is raw or redacted (rawBackend), lockouts and flapping
// bans trip after a few CONNECTs, and dev1 may retain its status.
func storePolicy(t *testing.T, rawBackend bool) string {
	t.Helper()
	abs := func(name string) string {
		p, err := filepath.Abs(name)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	view := ""
	if rawBackend {
		view = ", view: raw"
	}
	// fleet.creds's users and passwords, at bcrypt's lowest cost: the test
	// connects often, under the race detector, on a shared machine.
	var creds strings.Builder
	for _, u := range [][2]string{{"dev1", "device"}, {"dev2", "device"}, {"backend", "backend"}, {"analytics", "analytics"}, {"ops", "ops"}} {
		h, err := bcrypt.GenerateFromPassword([]byte(u[0]+"-demo-pass"), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		creds.WriteString(u[0] + ":" + u[1] + ":" + string(h) + "\n")
	}
	dir := t.TempDir()
	credsPath := filepath.Join(dir, "test.creds")
	if err := os.WriteFile(credsPath, []byte(creds.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	doc := `identity:
  credentials_file: ` + credsPath + `
  anonymous: {allow: never}
  client_id: {bind: ["{username}", "{username}-*"]}
  lockout: {max_failures: 2}
roles:
  device: {publish: ["fleet/{username}/telemetry", "fleet/{username}/status"], retain: ["fleet/{username}/status"]}
  backend: {subscribe: ["fleet/#"]` + view + `}
  analytics: {subscribe: ["fleet/#"]}
  ops: {subscribe: ["fleet/#"]}
rates:
  flapping: {connects: 2/min}
provenance: {user_property: x-identity}
payloads:
  - topics: ["fleet/+/telemetry", "fleet/+/status"]
    format: json
    redact:
      rules:
        - {path: DATA.USER_NAME, op: remove}
        - {path: DATA.USER_MOBILE, op: mask, keep_last: 4}
        - {path: DATA.USER_ID, op: pseudonym}
        - {paths: [DATA.LAT, DATA.LON], op: coarsen, cell_metres: 1000}
redaction:
  pseudonym_key_file: ` + abs("fleet.pseudonym.key") + `
`
	path := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// client is a paho.golang MQTT 5 client that collects what it receives.
type client struct {
	*paho.Client
	msgs    chan *paho.Publish
	connack *paho.Connack
}

// connect connects (MQTT 5) with a session that lives an hour after the
// connection when persist is set.
func connect(t *testing.T, addr, id, user, pass string, persist, clean bool) (*client, error) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	conn = packets.NewThreadSafeConn(conn)
	c := &client{msgs: make(chan *paho.Publish, 100)}
	c.Client = paho.NewClient(paho.ClientConfig{Conn: conn, PacketTimeout: 60 * time.Second,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			c.msgs <- pr.Packet
			return true, nil
		}}})
	expiry := uint32(0)
	if persist {
		expiry = 3600
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c.connack, err = c.Connect(ctx, &paho.Connect{ClientID: id, Username: user, UsernameFlag: true, Password: []byte(pass),
		PasswordFlag: true, CleanStart: clean, KeepAlive: 30,
		Properties: &paho.ConnectProperties{SessionExpiryInterval: &expiry, RequestProblemInfo: true}})
	if err != nil {
		_ = conn.Close()
		return c, err
	}
	t.Cleanup(func() { _ = c.Disconnect(&paho.Disconnect{}) })
	return c, nil
}

func mustConnect(t *testing.T, addr, user string, persist, clean bool) *client {
	t.Helper()
	c, err := connect(t, addr, user, user, user+"-demo-pass", persist, clean)
	if err != nil {
		t.Fatalf("%s: %v", user, err)
	}
	return c
}

// refusedWith returns the CONNACK reason code of a CONNECT (0: admitted).
func refusedWith(t *testing.T, addr, user, pass string) byte {
	t.Helper()
	_, code := mqtt5(t, addr, user, user, pass)
	return code
}

func (c *client) subscribe(t *testing.T, filter string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ack, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: 1}}})
	if err != nil || len(ack.Reasons) != 1 || ack.Reasons[0] != 1 {
		t.Fatalf("subscribe %s: %v %+v", filter, err, ack)
	}
}

func (c *client) publish(t *testing.T, topic string, retain bool, payload []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if r, err := c.Publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Retain: retain, Payload: payload}); err != nil || r.ReasonCode != 0 {
		t.Fatalf("publish %s: %v %+v", topic, err, r)
	}
}

// next returns the next message c receives on topic.
func (c *client) next(t *testing.T, who, topic string) *paho.Publish {
	t.Helper()
	timeout := time.After(60 * time.Second)
	for {
		select {
		case m := <-c.msgs:
			if m.Topic == topic {
				return m
			}
		case <-timeout:
			t.Fatalf("%s: nothing on %s", who, topic)
			return nil
		}
	}
}

// TestDurableState runs the broker twice on one -data-dir with real clients.
// Before the restart: two persistent sessions subscribe and go offline, a
// device publishes telemetry they miss and retains its status, a user name
// is locked out by wrong passwords and another banned for flapping. After
// it: each session gets its queued message on reconnecting, and one
// published after the restart while it was still offline, in its view
// (raw for the raw back end, redacted for analytics; a message stored as
// its redacted view is not pseudonymised twice), new subscriptions get the
// retained status in their view, and the lockout and the ban still refuse.
func TestDurableState(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "mqttwaf", "testdata", "komdi-alarm.json"))
	if err != nil {
		t.Fatal(err)
	}
	const (
		name       = "홍길수"         // DATA.USER_NAME: removed in the redacted view
		userID     = "01012344321" // DATA.USER_ID: pseudonymised
		telemetry  = "fleet/dev1/telemetry"
		status     = "fleet/dev1/status"
		bannedCode = 0x8A
	)
	isRaw := func(p []byte) bool { return bytes.Contains(p, []byte(name)) && bytes.Contains(p, []byte(userID)) }
	isRedacted := func(p []byte) bool {
		return len(p) > 0 && !bytes.Contains(p, []byte(name)) && !bytes.Contains(p, []byte(userID)) && bytes.Contains(p, []byte("USER_ID"))
	}
	for _, tc := range []struct {
		name       string
		rawBackend bool
	}{{"stored raw", true}, {"stored redacted", false}} {
		t.Run(tc.name, func(t *testing.T) {
			dataDir := filepath.Join(t.TempDir(), "data")
			args := []string{"-policy", storePolicy(t, tc.rawBackend), "-data-dir", dataDir}

			addr, _, stop := launchBroker(t, args...)
			for _, user := range []string{"backend", "analytics"} {
				c := mustConnect(t, addr, user, true, true)
				c.subscribe(t, "fleet/+/telemetry")
				if err := c.Disconnect(&paho.Disconnect{}); err != nil {
					t.Fatal(err)
				}
			}
			dev1 := mustConnect(t, addr, "dev1", false, true)
			dev1.publish(t, telemetry, false, raw) // queued for the offline sessions
			dev1.publish(t, status, true, raw)
			for range 3 {
				if code := refusedWith(t, addr, "dev2", "guess"); code == 0 {
					t.Fatal("dev2 admitted with a wrong password")
				}
			}
			if code := refusedWith(t, addr, "dev2", "dev2-demo-pass"); code != bannedCode {
				t.Fatalf("dev2 not locked out before the restart: 0x%02X", code)
			}
			flapped := false
			for range 6 {
				if code := refusedWith(t, addr, "ops", "ops-demo-pass"); code == bannedCode {
					flapped = true
					break
				}
			}
			if !flapped {
				t.Fatal("ops was not banned for flapping")
			}
			stop()

			addr, _, stop = launchBroker(t, args...)
			defer stop()
			// Published after the restart while the sessions are still
			// offline: delivered (the read ACL knows who subscribed) and
			// queued.
			dev1 = mustConnect(t, addr, "dev1", false, true)
			dev1.publish(t, telemetry, false, raw)
			if code := refusedWith(t, addr, "ops", "ops-demo-pass"); code != bannedCode {
				t.Errorf("ops's ban did not survive the restart: CONNACK 0x%02X", code)
			}
			if code := refusedWith(t, addr, "dev2", "dev2-demo-pass"); code != bannedCode {
				t.Errorf("dev2's lockout did not survive the restart: CONNACK 0x%02X", code)
			}
			backend := mustConnect(t, addr, "backend", true, false)
			analytics := mustConnect(t, addr, "analytics", true, false)
			if !backend.connack.SessionPresent || !analytics.connack.SessionPresent {
				t.Fatalf("sessions lost in the restart: backend %v, analytics %v", backend.connack.SessionPresent, analytics.connack.SessionPresent)
			}
			queuedB := backend.next(t, "backend (queued)", telemetry).Payload
			queuedA := analytics.next(t, "analytics (queued)", telemetry).Payload
			if again := backend.next(t, "backend (queued after the restart)", telemetry).Payload; !bytes.Equal(again, queuedB) {
				t.Errorf("backend: queued before the restart %s, after %s", queuedB, again)
			}
			if again := analytics.next(t, "analytics (queued after the restart)", telemetry).Payload; !bytes.Equal(again, queuedA) {
				t.Errorf("analytics: queued before the restart %s, after %s", queuedA, again)
			}
			if tc.rawBackend != isRaw(queuedB) || !tc.rawBackend && !isRedacted(queuedB) {
				t.Errorf("backend's queued message, raw view %v: %s", tc.rawBackend, queuedB)
			}
			if !isRedacted(queuedA) {
				t.Errorf("analytics's queued message is not redacted: %s", queuedA)
			}
			backend.subscribe(t, status)
			analytics.subscribe(t, status)
			retainedB := backend.next(t, "backend (retained)", status).Payload
			retainedA := analytics.next(t, "analytics (retained)", status).Payload
			if tc.rawBackend != isRaw(retainedB) || !tc.rawBackend && !isRedacted(retainedB) {
				t.Errorf("backend's retained message, raw view %v: %s", tc.rawBackend, retainedB)
			}
			if !isRedacted(retainedA) {
				t.Errorf("analytics's retained message is not redacted: %s", retainedA)
			}
			// The same message published now is delivered exactly as the
			// stored ones were: one pseudonym, the same redaction.
			dev1.publish(t, telemetry, false, raw)
			if live := backend.next(t, "backend (live)", telemetry).Payload; !bytes.Equal(live, queuedB) {
				t.Errorf("backend: queued %s, live %s", queuedB, live)
			}
			if live := analytics.next(t, "analytics (live)", telemetry).Payload; !bytes.Equal(live, queuedA) {
				t.Errorf("analytics: queued %s, live %s", queuedA, live)
			}
			if !bytes.Equal(retainedA, queuedA) {
				t.Errorf("analytics: retained %s, queued %s", retainedA, queuedA)
			}
		})
	}
}

// TestDataDirErrors: a data directory that cannot be used stops the broker
// at start with an error naming -data-dir, never a broker running without
// its state.
func TestDataDirErrors(t *testing.T) {
	dir := t.TempDir()
	locked := filepath.Join(dir, "locked")
	s, err := hooks.OpenStorage(hooks.StorageOptions{Dir: locked}) // as another broker would
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	corrupt := filepath.Join(dir, "corrupt")
	if err := os.MkdirAll(corrupt, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(corrupt, hooks.StorageFile), bytes.Repeat([]byte("not a database "), 2000), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, dir, want string
	}{
		{"locked by another process", locked, "in use by another process"},
		{"not a directory", file, "cannot create the data directory"},
		{"not a database", corrupt, "cannot open"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			err := run(ctx, []string{"-addr", "127.0.0.1:0", "-data-dir", tc.dir}, io.Discard, io.Discard)
			if err == nil || !strings.HasPrefix(err.Error(), "-data-dir "+tc.dir) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("run = %v, want an error naming -data-dir %s: %s", err, tc.dir, tc.want)
			}
		})
	}
}
