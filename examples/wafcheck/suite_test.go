package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"

	"github.com/mqttwaf/mqttwaf/hooks"
	"github.com/mqttwaf/mqttwaf/mqttwaf"
)

var fleetSuite = filepath.Join("..", "hardened-broker", "fleet.suite.yaml")

// TestFleetSuite runs the shipped suite for fleet.yaml, as CI would, with
// both reports.
func TestFleetSuite(t *testing.T) {
	// One run for every report: the suite's password cases run bcrypt,
	// slow under the race detector.
	junitPath := filepath.Join(t.TempDir(), "junit.xml")
	var stdout, stderr bytes.Buffer
	if code := run([]string{"test", "-report", "json", "-junit", junitPath, fleetSuite}, nil, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d\n%s%s", code, stdout.String(), stderr.String())
	}
	s, err := readSuite(fleetSuite)
	if err != nil {
		t.Fatal(err)
	}
	var rep report
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Passed != len(s.Cases) || rep.Failed != 0 {
		t.Fatalf("json report: %+v", rep)
	}
	first := rep.Suites[0].Cases[0]
	if first.Got.Verdict != "allow" || len(first.Got.Deliveries) == 0 || first.Got.Deliveries[0].Payload == nil || len(first.Events) == 0 {
		t.Fatalf("first case: %+v", first)
	}
	j, data := readJUnit(t, junitPath)
	if j.Tests != len(s.Cases) || j.Failures != 0 || len(j.Suites) != 1 || len(j.Suites[0].Cases) != len(s.Cases) {
		t.Fatalf("junit: %s", data)
	}
	var human bytes.Buffer
	writeHuman(&human, &rep)
	if want := fmt.Sprintf("%d passed, 0 failed\n", len(s.Cases)); !strings.HasSuffix(human.String(), want) ||
		strings.Count(human.String(), "ok   "+fleetSuite) != len(s.Cases) {
		t.Fatalf("report:\n%s", human.String())
	}
}

func readJUnit(t *testing.T, path string) (junitSuites, []byte) {
	t.Helper()
	var j junitSuites
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := xml.Unmarshal(data, &j); err != nil {
		t.Fatal(err)
	}
	return j, data
}

// TestReadmeSuite runs the example suite of README.md, so it stays true.
func TestReadmeSuite(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, sec, ok := strings.Cut(string(readme), "\n## Policy regression suites\n")
	_, block, ok2 := strings.Cut(sec, "```yaml\n")
	block, _, ok3 := strings.Cut(block, "```")
	if !ok || !ok2 || !ok3 {
		t.Fatal("README.md has no yaml example under Policy regression suites")
	}
	s, err := parseSuite([]byte(block), filepath.Join("..", "hardened-broker", "README.suite.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := mqttwaf.ReadPolicyFile(s.Policy)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range s.Cases {
		if r := runCase(p, &c); !r.Passed {
			t.Errorf("README case %q: %s", c.Name, strings.Join(r.Failures, "; "))
		}
	}
}

// writeSuite writes files into a temporary directory next to a copy of the
// fleet policy and returns the path of the first.
func writeSuite(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range []string{"fleet.yaml", "fleet.creds", "fleet.pseudonym.key"} {
		data, err := os.ReadFile(filepath.Join("..", "hardened-broker", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(dir, "s.yaml")
}

func TestSuiteFileErrors(t *testing.T) {
	const good = "policy: fleet.yaml\ncases:\n  - name: snoop\n    connect: {client_id: snoop}\n    expect: {verdict: reject}\n"
	for _, tc := range []struct {
		name, suite string
		extra       map[string]string
		want        string // in stderr, after the file name
	}{
		{"no policy", "cases: []\n", nil, `s.yaml:1: policy: is missing`},
		{"missing policy file", strings.Replace(good, "fleet.yaml", "nope.yaml", 1), nil, `s.yaml: policy: open `},
		{"broken policy", good, map[string]string{"fleet.yaml": "mode: enforcing\n"}, `s.yaml: policy: `},
		{"no cases", "policy: fleet.yaml\ncases: []\n", nil, `s.yaml:1: cases: a suite needs a list of at least one case`},
		{"unknown top key", "policy: fleet.yaml\npolcy: x\n", nil, `s.yaml:2: polcy: unknown key; known keys here: policy, cases`},
		{"unknown case key", strings.Replace(good, "expect:", "expct:", 1), nil,
			`s.yaml:5: cases[0] "snoop": expct: unknown key; known keys here: name, client, connect`},
		{"unknown nested key", strings.Replace(good, "client_id", "clientid", 1), nil,
			`s.yaml:4: cases[0] "snoop": connect.clientid: unknown key; known keys here: username, password, client_id, listener`},
		{"unnamed case", strings.Replace(good, "name: snoop\n    ", "", 1), nil, `s.yaml:3: cases[0]: name: missing`},
		{"bad verdict", strings.Replace(good, "verdict: reject", "verdict: rejected", 1), nil,
			`s.yaml:5: cases[0] "snoop": expect.verdict: unknown value "rejected"; use one of allow, drop, reject, disconnect, ban`},
		{"bad code", strings.Replace(good, "verdict: reject", "verdict: reject, code: 0x100", 1), nil,
			`s.yaml:5: cases[0] "snoop": expect.code: must be a whole number from 0 to 255 (0x hex allowed), got "0x100"`},
		{"bad qos", strings.Replace(good, "connect: {client_id: snoop}", "publish: {topic: a, qos: 3}", 1), nil,
			`cases[0] "snoop": publish.qos: must be a whole number from 0 to 2`},
		{"bad retain", strings.Replace(good, "connect: {client_id: snoop}", "publish: {topic: a, retain: yes please}", 1), nil,
			`cases[0] "snoop": publish.retain: must be true or false, got "yes please"`},
		{"both payloads", strings.Replace(good, "connect: {client_id: snoop}", "publish: {topic: a, payload: x, payload_file: f}", 1), nil,
			`cases[0] "snoop": publish.payload_file: give payload: or payload_file:, not both`},
		{"missing payload file", strings.Replace(good, "connect: {client_id: snoop}", "publish: {topic: a, payload_file: nope.json}", 1), nil,
			`cases[0] "snoop": publish.payload_file: open `},
		{"deliveries without publish", strings.Replace(good, "verdict: reject", "verdict: reject, deliveries: []", 1), nil,
			`cases[0] "snoop": expect.deliveries: only a case that publishes delivers`},
		{"delivery without payload", strings.Replace(good, "connect: {client_id: snoop}\n    expect: {verdict: reject}",
			"publish: {topic: a}\n    expect:\n      verdict: reject\n      deliveries: [{username: ops}]", 1), nil,
			`s.yaml:7: cases[0] "snoop": expect.deliveries[0]: give payload:, payload_file: or none: true`},
		{"publish and subscribe", strings.Replace(good, "connect: {client_id: snoop}", "publish: {topic: a}\n    subscribe: {filter: a}", 1), nil,
			`cases[0] "snoop": subscribe: a case publishes or subscribes, not both`},
		{"repeat on a publish", strings.Replace(good, "connect: {client_id: snoop}", "publish: {topic: a}\n    repeat: 2", 1), nil,
			`cases[0] "snoop": repeat: only for connect-only cases`},
		{"duplicate key", strings.Replace(good, "{client_id: snoop}", "{client_id: snoop, client_id: x}", 1), nil,
			`cases[0] "snoop": connect.client_id: given twice`},
		{"bad user property", strings.Replace(good, "connect: {client_id: snoop}", "publish: {topic: a, user_properties: [{name: a}]}", 1), nil,
			`s.yaml:4: cases[0] "snoop": publish.user_properties[0].value: missing`},
		{"not yaml", "policy: [\n", nil, `s.yaml: yaml: `},
	} {
		t.Run(tc.name, func(t *testing.T) {
			files := map[string]string{"s.yaml": tc.suite}
			for k, v := range tc.extra {
				files[k] = v
			}
			path := writeSuite(t, files)
			var stdout, stderr bytes.Buffer
			if code := run([]string{"test", path}, nil, &stdout, &stderr); code != 2 {
				t.Fatalf("exit %d, want 2; stdout %s; stderr %s", code, stdout.String(), stderr.String())
			}
			if stdout.Len() != 0 {
				t.Fatalf("a bad suite ran: %s", stdout.String())
			}
			if !strings.Contains(stderr.String(), tc.want) {
				t.Fatalf("stderr %q lacks %q", stderr.String(), tc.want)
			}
		})
	}
	var stderr bytes.Buffer
	if code := run([]string{"test"}, nil, io.Discard, &stderr); code != 2 || !strings.Contains(stderr.String(), "usage: wafcheck test") {
		t.Fatalf("no suite: exit %d, %s", code, stderr.String())
	}
}

// A case whose expectation is wrong fails, says what differs, and the
// others still pass.
func TestSuiteFailingCase(t *testing.T) {
	path := writeSuite(t, map[string]string{"s.yaml": `policy: fleet.yaml
cases:
  - name: right
    connect: {client_id: snoop}
    expect: {verdict: reject, reason: anonymous_not_allowed, code: 0x87}
  - name: wrong verdict, reason and code
    connect: {client_id: snoop}
    expect: {verdict: allow, reason: "", code: 0}
  - name: wrong bytes and a delivery that does not happen
    client: {username: dev1}
    publish: {topic: fleet/dev1/status, qos: 1, payload: '{"a": 1}'}
    expect:
      verdict: allow
      deliveries:
        - {username: backend, payload: '{"a": 1}', user_properties: []}
        - {username: analytics, payload: '{"a":1}'}
        - {username: ops, none: true}
`})
	junitPath := filepath.Join(t.TempDir(), "junit.xml")
	var stdout, stderr bytes.Buffer
	if code := run([]string{"test", "-junit", junitPath, path}, nil, &stdout, &stderr); code != 1 {
		t.Fatalf("exit %d, want 1\n%s%s", code, stdout.String(), stderr.String())
	}
	out := stdout.String()
	for _, want := range []string{
		"ok   " + path + ":3 cases[0] right\n",
		"FAIL " + path + ":6 cases[1] wrong verdict, reason and code\n",
		"verdict: got reject, want allow (anonymous_not_allowed at connect by identity.authenticate, 0x87)\n",
		`reason: got "anonymous_not_allowed", want ""`,
		"code: got 0x87, want 0x00 (success)",
		"FAIL " + path + ":9 cases[2] wrong bytes and a delivery that does not happen\n",
		"deliveries[0] (backend): payload differs from the payload at byte 5 (got 7 bytes, want 8): got …`{\"a\":1}`…, want …`{\"a\": 1}`…",
		`deliveries[0] (backend): user properties x-identity="dev1", want none`,
		"deliveries[1] (analytics): receives nothing (cannot subscribe: subscribe_not_permitted), want 7 bytes",
		"deliveries[2] (ops): receives 7 bytes, want nothing",
		"1 passed, 2 failed\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	j, data := readJUnit(t, junitPath)
	if j.Tests != 3 || j.Failures != 2 || j.Suites[0].Cases[0].Failure != nil || j.Suites[0].Cases[1].Failure == nil ||
		!strings.Contains(j.Suites[0].Cases[2].Failure.Text, "deliveries[2] (ops)") {
		t.Fatalf("junit: %s", data)
	}
}

// TestSameReasonAsBroker connects the same clients to a real broker running
// fleet.yaml and through wafcheck: the reason and code must be the same.
// (wafcheck once said unknown_identity where the broker said
// anonymous_not_allowed: it skipped the broker's authentication path.)
func TestSameReasonAsBroker(t *testing.T) {
	p, err := mqttwaf.ReadPolicyFile(filepath.Join("..", "hardened-broker", "fleet.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	addr, events := startFleetBroker(t, p)
	for _, tc := range []struct {
		name string
		id   identity
	}{
		{"anonymous", identity{ClientID: "snoop"}},
		{"wrong password", identity{Username: "dev1", ClientID: "dev1", Password: []byte("guess"), PasswordSet: true}},
		{"unknown user", identity{Username: "eve", ClientID: "eve", Password: []byte("guess"), PasswordSet: true}},
		{"client ID of another device", identity{Username: "dev1", ClientID: "dev2", Password: []byte("dev1-demo-pass"), PasswordSet: true}},
		{"right password", identity{Username: "dev1", ClientID: "dev1", Password: []byte("dev1-demo-pass"), PasswordSet: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.id.Listener = "tcp"
			r := runCase(p, &testCase{Name: tc.name, Client: tc.id, Repeat: 1, Expect: expectation{Verdict: "allow"}})

			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			c := paho.NewClient(paho.ClientConfig{Conn: packets.NewThreadSafeConn(conn), PacketTimeout: 5 * time.Second})
			cp := &paho.Connect{ClientID: tc.id.ClientID, KeepAlive: 30, CleanStart: true, Username: tc.id.Username,
				UsernameFlag: tc.id.Username != "", Password: tc.id.Password, PasswordFlag: tc.id.PasswordSet}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			ca, err := c.Connect(ctx, cp)
			if ca == nil {
				t.Fatalf("no CONNACK: %v", err)
			}
			if err == nil {
				_ = c.Disconnect(&paho.Disconnect{})
			}
			brokerCode := mqttwaf.ReasonCode(ca.ReasonCode)
			if got, _ := brokerCode.MarshalText(); r.Got.Code != string(got) {
				t.Errorf("code: wafcheck %s, broker %s", r.Got.Code, got)
			}
			if brokerCode == mqttwaf.CodeSuccess {
				if r.Got.Verdict != "allow" {
					t.Errorf("wafcheck refuses (%s), the broker accepts", r.Got.Reason)
				}
				return
			}
			e := events.wait(t, tc.id.ClientID, 30*time.Second)
			if e.Reason != r.Got.Reason || e.Rule != r.Got.Rule {
				t.Errorf("wafcheck %s by %s, broker %s by %s", r.Got.Reason, r.Got.Rule, e.Reason, e.Rule)
			}
		})
	}
}

// connectEvents records the broker's connect-stage refusals by client ID.
type connectEvents struct {
	mu     sync.Mutex
	byID   map[string]mqttwaf.Event
	signal chan struct{}
}

func (r *connectEvents) Emit(e mqttwaf.Event) {
	if e.Stage != mqttwaf.StageConnect || !e.Action.Blocks() {
		return
	}
	r.mu.Lock()
	r.byID[e.ClientID] = e
	r.mu.Unlock()
	select {
	case r.signal <- struct{}{}:
	default:
	}
}

func (r *connectEvents) wait(t *testing.T, clientID string, d time.Duration) mqttwaf.Event {
	t.Helper()
	deadline := time.After(d)
	for {
		r.mu.Lock()
		e, ok := r.byID[clientID]
		delete(r.byID, clientID)
		r.mu.Unlock()
		if ok {
			return e
		}
		select {
		case <-r.signal:
		case <-deadline:
			t.Fatalf("no connect refusal event for %q within %s", clientID, d)
		}
	}
}

// startFleetBroker runs a real mochi broker with policy p installed, as
// hardened-broker does, on 127.0.0.1.
func startFleetBroker(t *testing.T, p *mqttwaf.Policy) (string, *connectEvents) {
	t.Helper()
	events := &connectEvents{byID: map[string]mqttwaf.Event{}, signal: make(chan struct{}, 1)}
	w, err := mqttwaf.New(p, mqttwaf.Options{Sink: events})
	if err != nil {
		t.Fatal(err)
	}
	opts := hooks.HardenedOptions(p)
	opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	server := mqtt.New(opts)
	if err := hooks.Install(server, w); err != nil {
		t.Fatal(err)
	}
	l, err := hooks.NewListener(w, listeners.Config{ID: "tcp", Type: hooks.TypeTCP, Address: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	if err := server.AddListener(l); err != nil {
		t.Fatal(err)
	}
	if err := server.Serve(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := server.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			t.Error(err)
		}
	})
	return l.Address(), events
}
