package hooks

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/mqttwaf/mqttwaf/mqttwaf"
)

// fleetRawLine is the line of fleet.yaml that gives the back end its raw view.
const fleetRawLine = "    view: raw                          # receives payloads unredacted\n"

// fleetExamplePolicy reads examples/hardened-broker/fleet.yaml as edit changes it,
// from a copy beside its credentials and pseudonym key.
func fleetExamplePolicy(t *testing.T, edit func(string) string) *mqttwaf.Policy {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join("..", "examples", "hardened-broker")
	for _, f := range []string{"fleet.creds", "fleet.pseudonym.key"} {
		if err := os.WriteFile(filepath.Join(dir, f), readFile(t, src, f), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	doc := string(readFile(t, src, "fleet.yaml"))
	if edit != nil {
		doc = edit(doc)
	}
	path := filepath.Join(dir, "fleet.yaml")
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := mqttwaf.ReadPolicyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// withoutRawView is fleet.yaml whose only change is that backend loses
// view: raw, so no role has a raw view.
func withoutRawView(t *testing.T) func(string) string {
	return func(doc string) string {
		if !strings.Contains(doc, fleetRawLine) {
			t.Fatalf("fleet.yaml no longer has the line %q", fleetRawLine)
		}
		return strings.Replace(doc, fleetRawLine, "", 1)
	}
}

// The message: personal data in the payload and in every property
// a publisher fills freely.
var (
	personalStatus = []byte(`{"DATA":{"USER_NAME":"Hong Gildong","USER_MOBILE":"010-8378-1234","USER_ID":"01012344321","LAT":37.566535,"LON":126.977969}}`)
	personalProps  = &paho.PublishProperties{
		User:            paho.UserProperties{{Key: "owner-phone", Value: "010-8378-1234"}},
		ResponseTopic:   "fleet/dev1/reply/Hong-Gildong-010-8378-1234",
		CorrelationData: []byte("name=Hong Gildong"),
		ContentType:     "application/json; owner=Hong Gildong",
	}
	personalSecrets = []string{"Hong", "Gildong", "010-8378", "01012344321", "37.566535", "126.977969", "홍길수", "37.4057689"}
)

// publishPersonal publishes payload with personalProps at QoS 1.
func publishPersonal(t *testing.T, c *v5, topic string, retain bool, payload []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := c.Publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Retain: retain, Payload: payload, Properties: personalProps})
	if err != nil || res.ReasonCode != 0 {
		t.Fatalf("publish %s: %v %+v", topic, err, res)
	}
}

// checkRedacted fails unless m is a redacted view: no personal value in
// its payload or properties, and of the user properties only the
// provenance one.
func checkRedacted(t *testing.T, who string, m *paho.Publish) {
	t.Helper()
	for _, s := range personalSecrets {
		if bytes.Contains(m.Payload, []byte(s)) {
			t.Errorf("%s received %q on %s: %s", who, s, m.Topic, m.Payload)
		}
	}
	if m.Properties == nil {
		t.Errorf("%s: no properties on %s (want the provenance property)", who, m.Topic)
		return
	}
	p := m.Properties
	if want := (paho.UserProperties{{Key: "x-identity", Value: "dev1"}}); !slices.Equal(p.User, want) {
		t.Errorf("%s: user properties %q on %s, want %q", who, p.User, m.Topic, want)
	}
	if p.ResponseTopic != "" || p.CorrelationData != nil || p.ContentType != "" {
		t.Errorf("%s: response topic %q, correlation data %q, content type %q on %s", who, p.ResponseTopic, p.CorrelationData, p.ContentType, m.Topic)
	}
}

// persistent connects id as user with a session that outlives the
// connection (300 s), subscribed to filter at QoS 1 if clean.
func persistent(t *testing.T, addr, id, user, password string, clean bool, filter string) *v5 {
	t.Helper()
	expiry := uint32(300)
	c, err := dialV5(t, addr, &paho.Connect{ClientID: id, Username: user, Password: []byte(password), PasswordFlag: true,
		// RequestProblemInfo: paho sends 0 when properties are given, and
		// mochi then encodes no user properties, even on PUBLISH.
		CleanStart: clean, Properties: &paho.ConnectProperties{SessionExpiryInterval: &expiry, RequestProblemInfo: true}})
	if err != nil {
		t.Fatalf("connect %s: %v", id, err)
	}
	if !clean && !c.connack.SessionPresent {
		t.Fatalf("%s: session lost", id)
	}
	if clean {
		c.subscribe(t, 1, filter)
	}
	return c
}

// goOffline disconnects c and waits until the broker holds its session
// offline.
func (b *testBroker) goOffline(t *testing.T, c *v5, id string) {
	t.Helper()
	_ = c.Disconnect(&paho.Disconnect{})
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if cl, ok := b.server.Clients.Get(id); ok && cl.Closed() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still connected", id)
		}
	}
}

// TestViewsAcrossReloads: messages stored (retained, and queued for
// offline persistent sessions at QoS 1) under one policy reach redacted
// views redacted under the next, whichever way the reload goes: removing
// every raw role (the broker stored them raw) or adding one (it stored
// them redacted). A redacted view receives the same bytes as a live
// subscriber got before the reload (the pseudonyms still join), and none
// of the personal properties; mosquitto_sub sees the same.
func TestViewsAcrossReloads(t *testing.T) {
	for _, tc := range []struct {
		name          string
		before, after func(*testing.T) *mqttwaf.Policy
		rawAfter      bool // backend has view: raw after the reload
	}{
		{"every raw role removed", func(t *testing.T) *mqttwaf.Policy { return fleetExamplePolicy(t, nil) },
			func(t *testing.T) *mqttwaf.Policy { return fleetExamplePolicy(t, withoutRawView(t)) }, false},
		{"a raw role added", func(t *testing.T) *mqttwaf.Policy { return fleetExamplePolicy(t, withoutRawView(t)) },
			func(t *testing.T) *mqttwaf.Policy { return fleetExamplePolicy(t, nil) }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := startBrokerWith(t, tc.before(t), brokerOpts{})
			// Offline persistent sessions: ops (redacted view) and backend.
			ops := persistent(t, b.addr, "ops", "ops", "ops-demo-pass", true, "fleet/#")
			b.goOffline(t, ops, "ops")
			backend := persistent(t, b.addr, "backend", "backend", "backend-demo-pass", true, "fleet/+/telemetry")
			b.goOffline(t, backend, "backend")
			// A live redacted view: what the reload must not change.
			live := mustV5Pass(t, b.addr, "ops-live", "ops", "ops-demo-pass")
			live.subscribe(t, 1, "fleet/#")

			dev1 := mustV5Pass(t, b.addr, "dev1", "dev1", "dev1-demo-pass")
			publishPersonal(t, dev1, "fleet/dev1/status", true, personalStatus)
			publishPersonal(t, dev1, "fleet/dev1/telemetry", false, personalStatus)
			want := map[string][]byte{}
			for range 2 {
				m := expectMsg(t, live.msgs, 5*time.Second)
				checkRedacted(t, "live ops before the reload", m)
				want[m.Topic] = m.Payload
			}

			if err := b.waf.Reload(tc.after(t)); err != nil {
				t.Fatal(err)
			}
			b.events.Reset()

			// Queued: ops resumes its session and receives both.
			ops = persistent(t, b.addr, "ops", "ops", "ops-demo-pass", false, "")
			for range 2 {
				m := expectMsg(t, ops.msgs, 5*time.Second)
				checkRedacted(t, "ops (queued)", m)
				if !bytes.Equal(m.Payload, want[m.Topic]) {
					t.Errorf("ops (queued) %s: %s, want %s as before the reload", m.Topic, m.Payload, want[m.Topic])
				}
			}
			// Retained: a new redacted subscriber, paho and mosquitto_sub.
			late := mustV5Pass(t, b.addr, "ops-late", "ops", "ops-demo-pass")
			late.subscribe(t, 1, "fleet/+/status")
			m := expectMsg(t, late.msgs, 5*time.Second)
			checkRedacted(t, "ops (retained)", m)
			if !bytes.Equal(m.Payload, want["fleet/dev1/status"]) {
				t.Errorf("ops (retained): %s, want %s as before the reload", m.Payload, want["fleet/dev1/status"])
			}
			got, err := mosquittoSub(t, b.addr, "-V", "mqttv5", "-i", "ops-mosquitto", "-u", "ops", "-P", "ops-demo-pass",
				"-t", "fleet/dev1/status", "-C", "1", "-W", "10", "-F", "C=%C|D=%D|R=%R|P=%P|p=%p")()
			if wantOut := "C=|D=|R=|P=x-identity:dev1|p=" + string(want["fleet/dev1/status"]) + "\n"; err != nil || got != wantOut {
				t.Errorf("mosquitto_sub (retained):\n got %q, %v\nwant %q", got, err, wantOut)
			}

			// The back end's queued telemetry: the raw bytes exist only if
			// the broker stored them raw, i.e. if it had a raw role before.
			backend = persistent(t, b.addr, "backend", "backend", "backend-demo-pass", false, "")
			m = expectMsg(t, backend.msgs, 5*time.Second)
			switch {
			case !tc.rawAfter:
				checkRedacted(t, "backend (queued, no longer raw)", m)
			case !bytes.Equal(m.Payload, want["fleet/dev1/telemetry"]) ||
				!slices.Equal(m.Properties.User, paho.UserProperties{{Key: "x-identity", Value: "dev1"}}):
				// Stored as the redacted view, whose user properties are
				// stored filtered too; and never the WAF's marker.
				t.Errorf("backend (queued, raw now): %s %q, want the stored redacted %s", m.Payload, m.Properties.User, want["fleet/dev1/telemetry"])
			}

			// Views made at delivery are reported, properties by name only.
			if !tc.rawAfter {
				e := b.events.wait(t, "redact", "redacted", time.Second)
				if e.Stage != mqttwaf.StageDeliver || !strings.Contains(e.Detail, "properties_removed=") ||
					strings.Contains(e.Detail, "010-8378") || strings.Contains(e.Detail, "Hong") {
					t.Errorf("redact event %+v", e)
				}
			}
			for _, e := range b.events.all() {
				if strings.Contains(e.Detail, "Hong") || strings.Contains(e.Detail, "010-8378") {
					t.Errorf("event with a personal value: %+v", e)
				}
			}

			// And messages published after the reload follow it too.
			publishPersonal(t, dev1, "fleet/dev1/telemetry", false, personalStatus)
			checkRedacted(t, "ops (after the reload)", expectMsg(t, ops.msgs, 5*time.Second))
			m = expectMsg(t, backend.msgs, 5*time.Second)
			if tc.rawAfter {
				if !bytes.Contains(m.Payload, []byte("Hong Gildong")) || m.Properties.ResponseTopic != personalProps.ResponseTopic {
					t.Errorf("backend (raw) after the reload: %s %+v", m.Payload, m.Properties)
				}
			} else {
				checkRedacted(t, "backend (after the reload)", m)
			}
		})
	}
}

// TestViewsUnderReloadChurn: while the policy flips between a raw role and
// none every few milliseconds, every message reaches the redacted views
// (paho and mosquitto_sub) redacted, with no personal property, and the
// same pseudonyms throughout: whichever policy was in force at publish and
// at delivery, nothing raw and nothing redacted twice.
func TestViewsUnderReloadChurn(t *testing.T) {
	const n = 60
	withRaw, withoutRaw := fleetExamplePolicy(t, nil), fleetExamplePolicy(t, withoutRawView(t))
	b := startBrokerWith(t, withRaw, brokerOpts{})
	analytics := mustV5Pass(t, b.addr, "analytics", "analytics", "analytics-demo-pass")
	analytics.subscribe(t, 1, "fleet/+/telemetry")
	wait := mosquittoSub(t, b.addr, "-V", "mqttv5", "-i", "analytics-mosquitto", "-u", "analytics", "-P", "analytics-demo-pass",
		"-t", "fleet/+/telemetry", "-C", strconv.Itoa(n), "-W", "60", "-q", "1", "-F", mosquittoProps)
	b.waitSubscribers(t, "fleet/+/telemetry", 2)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int)
	go func() {
		reloads := 0
		for ctx.Err() == nil {
			p := withRaw
			if reloads%2 == 0 {
				p = withoutRaw
			}
			if err := b.waf.Reload(p); err != nil {
				t.Error(err)
				break
			}
			reloads++
			time.Sleep(2 * time.Millisecond)
		}
		done <- reloads
	}()
	dev1 := mustV5Pass(t, b.addr, "dev1", "dev1", "dev1-demo-pass")
	for range n {
		publishPersonal(t, dev1, "fleet/dev1/telemetry", false, personalStatus)
	}
	var first []byte
	for i := range n {
		m := expectMsg(t, analytics.msgs, 10*time.Second)
		checkRedacted(t, "analytics", m)
		if first == nil {
			first = m.Payload
		} else if !bytes.Equal(m.Payload, first) {
			t.Errorf("message %d: %s, the first was %s", i, m.Payload, first)
		}
	}
	cancel()
	if reloads := <-done; reloads < 2 {
		t.Fatalf("only %d reloads during the run", reloads)
	}
	got, err := wait()
	want := strings.Repeat("C=|D=|R=|P=x-identity:dev1|p="+string(first)+"\n", n)
	if err != nil || got != want {
		t.Errorf("mosquitto_sub got %q, %v; want %d times %q", got, err, n, "C=|D=|R=|P=x-identity:dev1|p="+string(first))
	}
}
