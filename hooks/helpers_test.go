package hooks

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	mqtt3 "github.com/eclipse/paho.mqtt.golang"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"golang.org/x/crypto/bcrypt"

	"github.com/mqttwaf/mqttwaf/mqttwaf"
	"github.com/mqttwaf/mqttwaf/mqttwaf/mqtttest"
)

// recorder is the shared test sink (mqtttest.Events) under the names the
// hooks tests use.
type recorder struct{ *mqtttest.Events }

func newRecorder() *recorder { return &recorder{mqtttest.NewEvents()} }

func (r *recorder) find(rule, reason string) (mqttwaf.Event, bool) { return r.Find(rule, reason) }
func (r *recorder) count(rule, reason string) int                  { return r.Count(rule, reason) }
func (r *recorder) all() []mqttwaf.Event                           { return r.All() }

func (r *recorder) wait(t testing.TB, rule, reason string, d time.Duration) mqttwaf.Event {
	t.Helper()
	return r.Wait(t, rule, reason, d)
}

func (r *recorder) waitCount(t testing.TB, rule, reason string, n int, d time.Duration) {
	t.Helper()
	r.WaitCount(t, rule, reason, n, d)
}

// Shared test support (mqttwaf/mqtttest).
var (
	expectMsg     = mqtttest.ExpectMsg
	expectNoMsg   = mqtttest.ExpectNoMsg
	waitToken     = mqtttest.WaitToken
	needMosquitto = mqtttest.NeedMosquitto
)

// testBroker is a real mochi server with the WAF installed, listening on
// 127.0.0.1 with random ports.
type testBroker struct {
	server  *mqtt.Server
	waf     *mqttwaf.WAF
	events  *recorder
	addr    string // TCP
	tlsAddr string // TLS, when brokerOpts.tls is set
	wsAddr  string // WebSocket, when brokerOpts.ws is set
	tlsCA   *x509.CertPool
	pki     *testPKI // the CA behind the TLS listener
	storage *Storage // when brokerOpts.storageDir is set

	closeOnce sync.Once
}

type brokerOpts struct {
	tls, ws bool
	rules   []mqttwaf.Rule
	// bench keeps the policy's own event rate (100/s by default) and
	// discards events, as a production sink would cost: benchmarks measure
	// the WAF, not the test recorder.
	bench bool
	// sink, if set, receives the events instead of the recorder.
	sink mqttwaf.Sink
	// unvalidated turns the frame validator off (BenchmarkBrokerFrames'
	// baseline).
	unvalidated bool
	// storageDir, if set, keeps the broker's state there (Storage).
	storageDir string
}

// testPolicy prefixes every test policy: events unthrottled so tests see
// them all.
const testPolicy = "events: {max_per_second: 1000000}\n"

// openAccess lets anonymous clients do anything topic permissions allow.
// startBroker adds it to test policies that say nothing about identity or
// roles, so tests of other protections need no credentials.
const openAccess = `identity: {anonymous: {allow: anywhere, role: open}}
roles: {open: {publish: ["#"], subscribe: ["#"], retain: ["#"], broad_wildcards: true}}
`

// testRates lifts the connect-rate, flapping and novelty limits that a
// test connecting dozens of clients from 127.0.0.1 within a second would
// hit. startBroker adds it to test policies without a rates section.
const testRates = `rates:
  connect: {per_ip: 100000/s, per_network: 100000/s}
  flapping: {off: true}
  new_client_ids: {per_ip: 100000/min, per_username: 100000/min, global: 100000/min}
`

// hasSection reports whether a policy has the top-level section name
// (a key at the start of a line; "per_identity:" is not "identity:").
func hasSection(policyYAML, name string) bool {
	for line := range strings.SplitSeq(policyYAML, "\n") {
		if strings.HasPrefix(line, name+":") {
			return true
		}
	}
	return false
}

func startBroker(t testing.TB, policyYAML string, o brokerOpts) *testBroker {
	t.Helper()
	if !hasSection(policyYAML, "identity") && !hasSection(policyYAML, "roles") {
		policyYAML = openAccess + policyYAML
	}
	if !hasSection(policyYAML, "rates") {
		policyYAML = testRates + policyYAML
	}
	prefix := testPolicy
	if o.bench {
		prefix = ""
	}
	p, err := mqttwaf.ParsePolicy([]byte(prefix+policyYAML), t.Name())
	if err != nil {
		t.Fatal(err)
	}
	return startBrokerWith(t, p, o)
}

// startBrokerWith starts a broker running policy p as given.
func startBrokerWith(t testing.TB, p *mqttwaf.Policy, o brokerOpts) *testBroker {
	t.Helper()
	var err error
	b := &testBroker{events: newRecorder()}
	var sink mqttwaf.Sink = b.events
	if o.bench {
		sink = mqttwaf.SinkFunc(func(mqttwaf.Event) {})
	}
	if o.sink != nil {
		sink = o.sink
	}
	wo := mqttwaf.Options{Sink: sink, Rules: o.rules}
	if o.storageDir != "" {
		if b.storage, err = OpenStorage(StorageOptions{Dir: o.storageDir}); err != nil {
			t.Fatal(err)
		}
		wo.ViewKey = b.storage.ViewKey()
	}
	b.waf, err = mqttwaf.New(p, wo)
	if err != nil {
		t.Fatal(err)
	}
	opts := HardenedOptions(p)
	opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	b.server = mqtt.New(opts)
	if err := Install(b.server, b.waf); err != nil {
		t.Fatal(err)
	}
	if b.storage != nil {
		if err := b.storage.Install(b.server, b.waf); err != nil {
			t.Fatal(err)
		}
	}
	add := func(cfg listeners.Config) string {
		l, err := NewListener(b.waf, cfg)
		if err != nil {
			t.Fatal(err)
		}
		l.unvalidated = o.unvalidated
		if err := b.server.AddListener(l); err != nil {
			t.Fatal(err)
		}
		return l.Address()
	}
	b.addr = add(listeners.Config{ID: "tcp", Type: TypeTCP, Address: "127.0.0.1:0"})
	if o.tls {
		b.pki = newPKI(t)
		b.tlsCA = b.pki.pool
		b.tlsAddr = add(listeners.Config{ID: "tls", Type: TypeTCP, Address: "127.0.0.1:0", TLSConfig: b.pki.serverTLS(t)})
	}
	if o.ws {
		b.wsAddr = add(listeners.Config{ID: "ws", Type: TypeWebsocket, Address: "127.0.0.1:0"})
	}
	if err := b.server.Serve(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.close)
	return b
}

// close closes the server once (mochi's Close panics the second time).
func (b *testBroker) close() {
	b.closeOnce.Do(func() { _ = b.server.Close() })
}

// testPKI is a throwaway CA that signs the broker's certificate and client
// certificates.
type testPKI struct {
	ca    *x509.Certificate
	caKey *ecdsa.PrivateKey
	pool  *x509.CertPool
}

func newPKI(t testing.TB) *testPKI {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "mqttwaf test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageCertSign, IsCA: true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return &testPKI{ca: ca, caKey: key, pool: pool}
}

var serial atomic.Int64

// issue returns a certificate signed by the CA: a server certificate for
// 127.0.0.1, or a client certificate with common name cn.
func (p *testPKI) issue(t testing.TB, cn string, server bool) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(100 + serial.Add(1)), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// serverTLS returns a server TLS config for 127.0.0.1 that asks for (but
// does not require) client certificates from the same CA.
func (p *testPKI) serverTLS(t testing.TB) *tls.Config {
	t.Helper()
	return &tls.Config{Certificates: []tls.Certificate{p.issue(t, "127.0.0.1", true)}, MinVersion: tls.VersionTLS12,
		ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: p.pool}
}

// credsFile writes a credentials file with "name:role:password" entries
// (bcrypt at the minimum cost, so tests stay fast) and returns its path.
func credsFile(t testing.TB, entries ...string) string {
	t.Helper()
	var b strings.Builder
	for _, e := range entries {
		parts := strings.SplitN(e, ":", 3)
		hash := "-"
		if parts[2] != "-" {
			h, err := bcrypt.GenerateFromPassword([]byte(parts[2]), bcrypt.MinCost)
			if err != nil {
				t.Fatal(err)
			}
			hash = string(h)
		}
		fmt.Fprintf(&b, "%s:%s:%s\n", parts[0], parts[1], hash)
	}
	path := filepath.Join(t.TempDir(), "devices.creds")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// v5 is a connected paho.golang (MQTT 5) client with its received messages.
type v5 struct {
	*paho.Client
	connack *paho.Connack
	msgs    chan *paho.Publish
	discon  chan *paho.Disconnect
	conn    net.Conn
}

// dialV5 connects an MQTT 5 client over TCP to addr (mqtttest.DialV5). It
// returns the client even when the CONNACK refuses, with err set.
func dialV5(t testing.TB, addr string, cp *paho.Connect) (*v5, error) {
	t.Helper()
	c, err := mqtttest.DialV5(t, addr, cp)
	return asV5(c), err
}

// connectV5 is dialV5 over conn (TLS, WebSocket...).
func connectV5(t testing.TB, conn net.Conn, cp *paho.Connect) (*v5, error) {
	t.Helper()
	c, err := mqtttest.ConnectV5(t, conn, cp)
	return asV5(c), err
}

// asV5 gives the shared client the field names these tests use.
func asV5(c *mqtttest.V5) *v5 {
	return &v5{Client: c.Client, connack: c.Connack, msgs: c.Msgs, discon: c.Discon, conn: c.Conn}
}

// connectCode connects (MQTT 5) as user with pass, client ID user, and
// returns the CONNACK's reason code (0 when admitted, then disconnects).
func connectCode(t testing.TB, addr, user, pass string) byte {
	t.Helper()
	return connackOf(t, addr, user, user, pass)
}

// connackOf connects (MQTT 5) as clientID, with user and pass if not
// empty, and returns the CONNACK's reason code (0 when admitted, then
// disconnects).
func connackOf(t testing.TB, addr, clientID, user, pass string) byte {
	t.Helper()
	cp := &paho.Connect{ClientID: clientID, Username: user, CleanStart: true}
	if pass != "" {
		cp.Password, cp.PasswordFlag = []byte(pass), true
	}
	c, err := dialV5(t, addr, cp)
	if err == nil {
		_ = c.Disconnect(&paho.Disconnect{})
		return 0
	}
	if c.connack == nil {
		t.Fatalf("%s: no CONNACK: %v", clientID, err)
	}
	return c.connack.ReasonCode
}

func mustV5(t testing.TB, addr, clientID, username string) *v5 {
	t.Helper()
	return mustV5Pass(t, addr, clientID, username, "")
}

func mustV5Pass(t testing.TB, addr, clientID, username, password string) *v5 {
	t.Helper()
	cp := &paho.Connect{ClientID: clientID, Username: username, CleanStart: true}
	if password != "" {
		cp.Password, cp.PasswordFlag = []byte(password), true
	}
	c, err := dialV5(t, addr, cp)
	if err != nil {
		t.Fatalf("connect %s: %v", clientID, err)
	}
	return c
}

func (c *v5) subscribe(t testing.TB, qos byte, filters ...string) *paho.Suback {
	t.Helper()
	return mqtttest.Subscribe(t, c.Client, qos, filters...)
}

func (c *v5) publish(t testing.TB, topic string, qos byte, payload []byte) (*paho.PublishResponse, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return c.Publish(ctx, &paho.Publish{Topic: topic, QoS: qos, Payload: payload})
}

// dialV3 connects an MQTT 3.1.1 client (paho.mqtt.golang).
func dialV3(t testing.TB, addr, clientID, username string, mod func(*mqtt3.ClientOptions)) (mqtt3.Client, byte, error) {
	t.Helper()
	return mqtttest.DialV3(t, addr, clientID, username, "", mod)
}

func mustV3(t testing.TB, addr, clientID, username string) mqtt3.Client {
	t.Helper()
	c, _, err := dialV3(t, addr, clientID, username, nil)
	if err != nil {
		t.Fatalf("3.1.1 connect %s: %v", clientID, err)
	}
	return c
}

func hostPort(t testing.TB, addr string) (string, string) {
	t.Helper()
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return h, p
}

// mosquittoSub starts mosquitto_sub and returns a function that waits for it
// and returns its output.
func mosquittoSub(t testing.TB, addr string, args ...string) func() (string, error) {
	t.Helper()
	h, p := hostPort(t, addr)
	var out, errb bytes.Buffer
	cmd := exec.Command(needMosquitto(t, "mosquitto_sub"), append([]string{"-h", h, "-p", p}, args...)...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	return func() (string, error) {
		err := cmd.Wait()
		if err != nil {
			err = fmt.Errorf("%v: %s", err, strings.TrimSpace(errb.String()))
		}
		return out.String(), err
	}
}

func mosquittoPub(t testing.TB, addr string, args ...string) (string, error) {
	t.Helper()
	h, p := hostPort(t, addr)
	out, err := exec.Command(needMosquitto(t, "mosquitto_pub"), append([]string{"-h", h, "-p", p}, args...)...).CombinedOutput()
	return string(out), err
}

// waitSubscribed waits until the broker holds a subscription for filter, so
// a test does not publish before an external subscriber is ready.
func (b *testBroker) waitSubscribed(t testing.TB, filter string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		for _, cl := range b.server.Clients.GetAll() {
			if _, ok := cl.State.Subscriptions.Get(filter); ok {
				return
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("nobody subscribed to %q", filter)
}

// waitSubscribers waits until n clients hold a subscription for filter.
func (b *testBroker) waitSubscribers(t testing.TB, filter string, n int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		got := 0
		for _, cl := range b.server.Clients.GetAll() {
			if _, ok := cl.State.Subscriptions.Get(filter); ok {
				got++
			}
		}
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d subscribers to %q ready", got, n, filter)
		}
	}
}

// waitGone waits until the broker no longer holds a connected client id.
func (b *testBroker) waitGone(t testing.TB, id string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if cl, ok := b.server.Clients.Get(id); !ok || cl.Closed() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("client %q still connected", id)
		}
	}
}
