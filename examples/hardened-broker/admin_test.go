package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/mqttwaf/mqttwaf/mqttwaf/testpki"
)

// startAdminBroker runs the example with an admin listener on a free
// loopback port and a token file, and returns the MQTT address, the admin
// base URL, the token and stderr.
func startAdminBroker(t *testing.T, args ...string) (mqttAddr, adminURL, token string, stderr *syncBuffer) {
	t.Helper()
	token = "test-admin-token-0123456789"
	tokenFile := filepath.Join(t.TempDir(), "admin.token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	mqttAddr, stderr = startBroker(t, append([]string{"-admin-addr", "127.0.0.1:0", "-admin-token-file", tokenFile}, args...)...)
	return mqttAddr, adminBase(t, stderr), token, stderr
}

// adminBase is the admin listener's base URL, from its "admin API ready"
// log line.
func adminBase(t *testing.T, stderr *syncBuffer) string {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(stderr.String()))
	for sc.Scan() {
		var line struct{ Msg, Admin, Scheme string }
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "admin API ready" {
			return line.Scheme + "://" + line.Admin
		}
	}
	t.Fatalf("no admin listener:\n%s", stderr.String())
	return ""
}

// adminDo sends one admin request and returns the status and body.
func adminDo(t *testing.T, method, url, token, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// mqtt5 connects an MQTT 5 client and returns it with the CONNACK's
// reason code (0 = accepted); a refused client is closed already.
func mqtt5(t *testing.T, addr, clientID, user, pass string) (*paho.Client, byte) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c := paho.NewClient(paho.ClientConfig{Conn: packets.NewThreadSafeConn(conn), PacketTimeout: 5 * time.Second})
	cp := &paho.Connect{ClientID: clientID, KeepAlive: 30, CleanStart: true}
	if user != "" {
		cp.Username, cp.UsernameFlag, cp.Password, cp.PasswordFlag = user, true, []byte(pass), true
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ca, err := c.Connect(ctx, cp)
	if ca == nil {
		_ = conn.Close()
		t.Fatalf("%s: no CONNACK: %v", clientID, err)
	}
	if ca.ReasonCode != 0 {
		_ = conn.Close()
		return nil, ca.ReasonCode
	}
	t.Cleanup(func() { _ = c.Disconnect(&paho.Disconnect{}) })
	return c, 0
}

// scrape fetches /metrics and parses it.
func scrape(t *testing.T, adminURL, token string) map[string]*dto.MetricFamily {
	t.Helper()
	status, body := adminDo(t, "GET", adminURL+"/metrics", token, "")
	if status != 200 {
		t.Fatalf("/metrics: %d %s", status, body)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v\n%s", err, body)
	}
	return fams
}

// sample is the value of the series of name whose labels include labels
// ("k=v" pairs), and whether there is one.
func sample(fams map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
metric:
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for _, kv := range labels {
			k, v, _ := strings.Cut(kv, "=")
			if have[k] != v {
				continue metric
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Untyped != nil:
			return m.Untyped.GetValue(), true
		}
	}
	return 0, false
}

// TestAdminMetricsAfterSession runs a scripted session against the real
// broker (accepted, refused, rate-limited and banned MQTT clients), then
// scrapes /metrics and finds each of them in the series, with the values
// the clients saw.
func TestAdminMetricsAfterSession(t *testing.T) {
	creds, err := filepath.Abs("fleet.creds")
	if err != nil {
		t.Fatal(err)
	}
	policy := filepath.Join(t.TempDir(), "session.yaml")
	if err := os.WriteFile(policy, []byte(`identity:
  credentials_file: `+creds+`
  anonymous: {allow: never}
  client_id: {bind: ["{username}", "{username}-*"]}
roles:
  device: {publish: ["fleet/{username}/telemetry"], subscribe: ["fleet/{username}/cmd"]}
  backend: {subscribe: ["fleet/+/telemetry"], view: raw}
  ops: {subscribe: ["fleet/#"]}
  analytics: {subscribe: ["fleet/+/telemetry"]}
rates:
  publish: {per_connection: {messages: 5/h}}
  flapping: {connects: 3/min}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	addr, adminURL, token, _ := startAdminBroker(t, "-policy", policy)

	// Accepted: the back end subscribes, dev1 connects.
	backend, code := mqtt5(t, addr, "backend", "backend", "backend-demo-pass")
	if code != 0 {
		t.Fatalf("backend refused: 0x%02X", code)
	}
	ctx := context.Background()
	if _, err := backend.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "fleet/+/telemetry", QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	dev1, code := mqtt5(t, addr, "dev1", "dev1", "dev1-demo-pass")
	if code != 0 {
		t.Fatalf("dev1 refused: 0x%02X", code)
	}
	// Refused: a wrong password (0x86), twice.
	for range 2 {
		if _, code := mqtt5(t, addr, "dev2", "dev2", "not-the-password"); code != 0x86 {
			t.Fatalf("wrong password: 0x%02X, want 0x86", code)
		}
	}
	// Rate-limited: 8 QoS 1 publishes against 5/h; count what the
	// client was told.
	accepted, limited := 0, 0
	for i := range 8 {
		resp, err := dev1.Publish(ctx, &paho.Publish{Topic: "fleet/dev1/telemetry", QoS: 1, Payload: []byte(fmt.Sprintf(`{"n":%d}`, i))})
		switch {
		case err == nil && resp.ReasonCode == 0:
			accepted++
		case resp != nil && resp.ReasonCode == 0x97:
			limited++
		default:
			t.Fatalf("publish %d: %v %+v", i, err, resp)
		}
	}
	if accepted != 5 || limited != 3 {
		t.Fatalf("publishes: %d accepted, %d rate-limited; want 5 and 3", accepted, limited)
	}
	// Banned: dev2 connects (right password) more than 3 times a minute.
	codes := ""
	for range 4 {
		c, code := mqtt5(t, addr, "dev2", "dev2", "dev2-demo-pass")
		codes += fmt.Sprintf(" %02X", code)
		if c != nil {
			_ = c.Disconnect(&paho.Disconnect{})
		}
	}
	if codes != " 00 00 00 8A" {
		t.Fatalf("dev2 CONNACKs%s, want 00 00 00 8A", codes)
	}

	// The WAF's sockets close asynchronously after a refusal or a
	// DISCONNECT: wait until only backend and dev1 remain.
	var fams map[string]*dto.MetricFamily
	deadline := time.Now().Add(10 * time.Second)
	for {
		fams = scrape(t, adminURL, token)
		open, _ := sample(fams, "mqttwaf_connections_open")
		clients, _ := sample(fams, "mqttwaf_broker_clients_connected")
		if open == 2 && clients == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("connections_open %v, broker_clients_connected %v; want 2 and 2", open, clients)
		}
		time.Sleep(20 * time.Millisecond)
	}
	_, status := adminDo(t, "GET", adminURL+"/v1/status", token, "")
	var st struct{ Policy struct{ SHA256 string } }
	if err := json.Unmarshal([]byte(status), &st); err != nil || len(st.Policy.SHA256) != 64 {
		t.Fatalf("status %s: %v", status, err)
	}
	for _, tc := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"mqttwaf_decisions_total", []string{"rule=identity.authenticate", "action=reject", "reason=bad_credentials", "enforced=true"}, 2},
		{"mqttwaf_decisions_total", []string{"rule=rates.publish", "action=reject", "enforced=true"}, float64(limited)},
		{"mqttwaf_decisions_total", []string{"rule=rates.flapping", "action=ban", "reason=flapping", "enforced=true"}, 1},
		{"mqttwaf_bans_active", []string{"kind=client"}, 1},
		{"mqttwaf_bans_active", []string{"kind=ip"}, 0},
		{"mqttwaf_lockouts_active", []string{"kind=user"}, 0},
		{"mqttwaf_policy_info", []string{"sha256=" + st.Policy.SHA256, "mode=enforce"}, 1},
		{"mqttwaf_policy_reloads_total", []string{"result=failed"}, 0},
		{"mqttwaf_broker_messages_received_total", nil, float64(accepted + limited)},
		{"mqttwaf_broker_subscriptions", nil, 1},
	} {
		if tc.name == "mqttwaf_broker_subscriptions" { // updated on mochi's 1 s $SYS tick
			for time.Now().Before(deadline) {
				if v, _ := sample(fams, tc.name, tc.labels...); v == tc.want {
					break
				}
				time.Sleep(100 * time.Millisecond)
				fams = scrape(t, adminURL, token)
			}
		}
		if got, ok := sample(fams, tc.name, tc.labels...); !ok || got != tc.want {
			t.Errorf("%s%v = %v (present %v), want %v", tc.name, tc.labels, got, ok, tc.want)
		}
	}
	// Labels carry no client-controlled values.
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if v := l.GetValue(); strings.HasPrefix(v, "dev") || strings.Contains(v, "fleet/") {
					t.Errorf("%s: label %s=%q is a client's", name, l.GetName(), v)
				}
			}
		}
	}
}

// TestAdminAPIEndToEnd drives the admin API against the real broker with
// fleet.yaml, as the README shows: wrong passwords lock dev1 out (and only
// dev1: backend at the same address still gets in, the bug of issue 15),
// lifting the lockout lets dev1 in; banning a client ID refuses it; an
// unauthenticated request is refused with 401 and recorded as an event.
func TestAdminAPIEndToEnd(t *testing.T) {
	addr, adminURL, token, stderr := startAdminBroker(t, "-policy", "fleet.yaml")

	for i := range 6 { // identity.lockout.max_failures is 5: the sixth locks dev1 out
		if _, code := mqtt5(t, addr, "dev1", "dev1", "mistyped"); code != 0x86 {
			t.Fatalf("wrong password %d: 0x%02X, want 0x86", i, code)
		}
	}
	if _, code := mqtt5(t, addr, "dev1", "dev1", "dev1-demo-pass"); code != 0x8A {
		t.Fatalf("dev1 after 6 wrong passwords: 0x%02X, want 0x8A (locked out)", code)
	}
	if _, code := mqtt5(t, addr, "backend", "backend", "backend-demo-pass"); code != 0 {
		t.Fatalf("backend, same address, after dev1's typos: 0x%02X, want accepted", code)
	}
	status, body := adminDo(t, "GET", adminURL+"/v1/lockouts", token, "")
	if status != 200 || !strings.Contains(body, `"target": "user:dev1"`) || strings.Contains(body, `"ip:`) {
		t.Fatalf("lockouts: %d %s", status, body)
	}
	if status, body := adminDo(t, "DELETE", adminURL+"/v1/lockouts?target=user:dev1", token, ""); status != 200 || !strings.Contains(body, `"lifted": true`) {
		t.Fatalf("lift: %d %s", status, body)
	}
	if _, code := mqtt5(t, addr, "dev1", "dev1", "dev1-demo-pass"); code != 0 {
		t.Fatalf("dev1 after the lift: 0x%02X, want accepted", code)
	}

	if status, body := adminDo(t, "POST", adminURL+"/v1/bans", token, `{"target":"client:dev2","duration":"1h","reason":"stolen device"}`); status != 201 {
		t.Fatalf("ban: %d %s", status, body)
	}
	if _, code := mqtt5(t, addr, "dev2", "dev2", "dev2-demo-pass"); code != 0x8A {
		t.Fatalf("banned dev2: 0x%02X, want 0x8A", code)
	}
	if status, body := adminDo(t, "GET", adminURL+"/v1/bans", token, ""); status != 200 || !strings.Contains(body, `"reason": "stolen device"`) {
		t.Fatalf("bans: %d %s", status, body)
	}

	if status, _ := adminDo(t, "GET", adminURL+"/v1/bans", "", ""); status != 401 {
		t.Fatalf("no token: %d, want 401", status)
	}
	if status, _ := adminDo(t, "DELETE", adminURL+"/v1/bans?target=client:dev2", "wrong-token", ""); status != 401 {
		t.Fatalf("wrong token: %d, want 401", status)
	}
	if _, code := mqtt5(t, addr, "dev2", "dev2", "dev2-demo-pass"); code != 0x8A {
		t.Fatalf("dev2 after a refused lift: 0x%02X, want still banned", code)
	}
	if status, body := adminDo(t, "POST", adminURL+"/v1/reload", token, ""); status != 200 || !strings.Contains(body, `"reloads_ok": 1`) {
		t.Fatalf("reload: %d %s", status, body)
	}

	// Every action and refusal is an event on stderr.
	want := map[string]bool{
		`"rule":"admin.lockout_lift"`: false, `"rule":"admin.ban_add"`: false,
		`"rule":"admin.auth","action":"reject","enforced":true,"reason":"unauthenticated"`: false,
		`"rule":"admin.reload","action":"allow","enforced":true,"reason":"ok"`:             false,
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		missing := []string{}
		for w := range want {
			if !strings.Contains(stderr.String(), w) {
				missing = append(missing, w)
			}
		}
		if len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no events %v on stderr:\n%s", missing, stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := strings.Count(stderr.String(), `"rule":"admin.auth"`); n != 2 {
		t.Fatalf("%d admin.auth events, want 2 (one per refused request)", n)
	}
}

// TestAdminFlags: the admin listener refuses what it cannot secure.
func TestAdminFlags(t *testing.T) {
	dir := t.TempDir()
	open := filepath.Join(dir, "open.token")
	if err := os.WriteFile(open, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-admin-addr", "127.0.0.1:0"}, "no way to authenticate"},
		{[]string{"-admin-addr", "127.0.0.1:0", "-admin-token-file", open}, "readable by every user"},
		{[]string{"-admin-token-file", open}, "need -admin-addr"},
		{[]string{"-admin-addr", "127.0.0.1:0", "-admin-client-ca", "ca.pem"}, "needs a certificate"},
	} {
		err := run(context.Background(), append([]string{"-addr", "127.0.0.1:0"}, tc.args...), io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want %q", tc.args, err, tc.want)
		}
	}
}

// TestAdminMutualTLS: with -admin-client-ca (and no token file) the admin
// listener speaks TLS and admits clients with a certificate from that CA
// only; one without a certificate does not complete the handshake.
func TestAdminMutualTLS(t *testing.T) {
	dir := t.TempDir()
	ca := testpki.NewCA(t, "admin CA")
	from, until := testpki.Valid()
	cert, key := ca.Issue(t, "127.0.0.1", true, from, until)
	files := map[string][]byte{"ca.pem": ca.PEM, "cert.pem": cert, "key.pem": key}
	for name, b := range files {
		testpki.WriteFile(t, filepath.Join(dir, name), b)
	}
	_, stderr := startBroker(t, "-admin-addr", "127.0.0.1:0", "-admin-client-ca", filepath.Join(dir, "ca.pem"),
		"-admin-tls-cert", filepath.Join(dir, "cert.pem"), "-admin-tls-key", filepath.Join(dir, "key.pem"))
	base := adminBase(t, stderr)
	if !strings.HasPrefix(base, "https://") {
		t.Fatalf("admin listener %s, want https", base)
	}
	operator, err := tls.X509KeyPair(ca.Issue(t, "operator-1", false, from, until))
	if err != nil {
		t.Fatal(err)
	}
	other := testpki.NewCA(t, "another CA")
	stranger, err := tls.X509KeyPair(other.Issue(t, "operator-1", false, from, until))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		certs []tls.Certificate
		ok    bool
	}{
		{"certificate from the admin CA", []tls.Certificate{operator}, true},
		{"no certificate", nil, false},
		{"certificate from another CA", []tls.Certificate{stranger}, false},
	} {
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool(), Certificates: tc.certs}}}
		resp, err := c.Get(base + "/v1/status")
		if err == nil {
			_ = resp.Body.Close()
		}
		if ok := err == nil && resp.StatusCode == 200; ok != tc.ok {
			t.Errorf("%s: %v %v, want admitted %v", tc.name, resp, err, tc.ok)
		}
	}
}
