package proxy

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"
	mqtt3 "github.com/eclipse/paho.mqtt.golang"

	"github.com/mqttwaf/mqttwaf/mqttwaf"
)

// events is a sink tests wait on.
type events struct {
	mu     sync.Mutex
	list   []mqttwaf.Event
	signal chan struct{}
}

func (r *events) Emit(e mqttwaf.Event) {
	r.mu.Lock()
	r.list = append(r.list, e)
	r.mu.Unlock()
	select {
	case r.signal <- struct{}{}:
	default:
	}
}

func (r *events) find(rule, reason string) (mqttwaf.Event, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.list {
		if (rule == "" || e.Rule == rule) && (reason == "" || e.Reason == reason) {
			return e, true
		}
	}
	return mqttwaf.Event{}, false
}

// wait waits up to d for an event with rule and reason ("" matches any).
func (r *events) wait(t testing.TB, rule, reason string, d time.Duration) mqttwaf.Event {
	t.Helper()
	deadline := time.After(d)
	for {
		if e, ok := r.find(rule, reason); ok {
			return e
		}
		select {
		case <-r.signal:
		case <-deadline:
			r.mu.Lock()
			defer r.mu.Unlock()
			t.Fatalf("no event rule=%q reason=%q within %s; events: %+v", rule, reason, d, r.list)
		}
	}
}

// needMosquitto returns the path of a mosquitto tool (the broker, or
// mosquitto_pub/sub), skipping the test if it is not installed, failing it
// with MQTTWAF_REQUIRE_MOSQUITTO set (CI), as hooks/helpers_test.go does.
func needMosquitto(t testing.TB, tool string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err != nil && tool == "mosquitto" {
		p, err = exec.LookPath("/usr/sbin/mosquitto") // Debian installs the broker outside a user's PATH
	}
	if err != nil {
		if os.Getenv("MQTTWAF_REQUIRE_MOSQUITTO") != "" {
			t.Fatalf("%s not found (apt-get install mosquitto mosquitto-clients)", tool)
		}
		t.Skipf("%s not installed (apt-get install mosquitto mosquitto-clients)", tool)
	}
	return p
}

// freePort returns a loopback port nothing listens on right now.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startMosquitto runs a real mosquitto on a free loopback port with the
// given extra configuration lines (allow_anonymous true when none) and
// returns its address; it is killed at cleanup.
func startMosquitto(t testing.TB, conf ...string) string {
	t.Helper()
	bin := needMosquitto(t, "mosquitto")
	if len(conf) == 0 {
		conf = []string{"allow_anonymous true"}
	}
	for try := 0; ; try++ {
		port := freePort(t)
		dir := t.TempDir()
		path := filepath.Join(dir, "mosquitto.conf")
		// user: run as root, mosquitto switches to the mosquitto user,
		// which cannot read the test's private temporary files.
		text := fmt.Sprintf("listener %d 127.0.0.1\npersistence false\nlog_dest stderr\nlog_type error\nlog_type warning\nuser %s\n%s\n",
			port, currentUser(), strings.Join(conf, "\n"))
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		var stderr bytes.Buffer
		cmd := exec.Command(bin, "-c", path)
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		deadline := time.Now().Add(10 * time.Second)
		for {
			if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
				_ = c.Close()
				t.Cleanup(func() { _ = cmd.Process.Kill(); <-done })
				return addr
			}
			select {
			case <-done: // exited: the port was taken meanwhile, or the configuration is wrong
				if try < 3 {
					break
				}
				t.Fatalf("mosquitto exited: %s", stderr.String())
			case <-time.After(20 * time.Millisecond):
				if time.Now().After(deadline) {
					_ = cmd.Process.Kill()
					t.Fatalf("mosquitto did not listen on %s: %s", addr, stderr.String())
				}
				continue
			}
			break
		}
	}
}

// startProxy runs a proxy with policyYAML (the default policy if empty) in
// front of upstream and returns it with its event sink.
func startProxy(t testing.TB, policyYAML, upstream string, mod func(*Options)) (*Proxy, *events) {
	t.Helper()
	var p *mqttwaf.Policy
	var err error
	if policyYAML != "" {
		p, err = mqttwaf.ParsePolicy([]byte(policyYAML), "test-policy.yaml")
		if err != nil {
			t.Fatal(err)
		}
	}
	return startProxyWith(t, p, upstream, mod)
}

func startProxyWith(t testing.TB, p *mqttwaf.Policy, upstream string, mod func(*Options)) (*Proxy, *events) {
	t.Helper()
	ev := &events{signal: make(chan struct{}, 1)}
	w, err := mqttwaf.New(p, mqttwaf.Options{Sink: ev})
	if err != nil {
		t.Fatal(err)
	}
	o := Options{Listen: "127.0.0.1:0", Upstream: upstream}
	if mod != nil {
		mod(&o)
	}
	px, err := New(w, o)
	if err != nil {
		t.Fatal(err)
	}
	if err := px.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = px.Close() })
	return px, ev
}

// v5 is a connected paho.golang (MQTT 5) client with what it received.
type v5 struct {
	*paho.Client
	connack *paho.Connack
	msgs    chan *paho.Publish
	discon  chan *paho.Disconnect
}

// dialV5 connects an MQTT 5 client; it returns the client even when the
// CONNACK refuses, with err set.
func dialV5(t testing.TB, addr string, cp *paho.Connect) (*v5, error) {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return connectV5(t, nc, cp)
}

// connectV5 is dialV5 over an open connection (TLS, say).
func connectV5(t testing.TB, nc net.Conn, cp *paho.Connect) (*v5, error) {
	t.Helper()
	// paho writes a packet in several Writes, from several goroutines: a
	// sync.Locker conn makes it hold the lock for the whole packet.
	conn := packets.NewThreadSafeConn(nc)
	c := &v5{msgs: make(chan *paho.Publish, 1000), discon: make(chan *paho.Disconnect, 1)}
	c.Client = paho.NewClient(paho.ClientConfig{
		Conn: conn,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			c.msgs <- pr.Packet
			return true, nil
		}},
		OnServerDisconnect: func(d *paho.Disconnect) { c.discon <- d },
		PacketTimeout:      5 * time.Second,
	})
	if cp.KeepAlive == 0 {
		cp.KeepAlive = 30
	}
	cp.UsernameFlag = cp.Username != ""
	cp.PasswordFlag = cp.Password != nil
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // bcrypt under -race on a loaded machine
	defer cancel()
	ca, err := c.Connect(ctx, cp)
	c.connack = ca
	if err == nil {
		t.Cleanup(func() { _ = c.Disconnect(&paho.Disconnect{}) })
	} else {
		_ = conn.Close()
	}
	return c, err
}

func mustV5(t testing.TB, addr, clientID, user, pass string) *v5 {
	t.Helper()
	cp := &paho.Connect{ClientID: clientID, Username: user, CleanStart: true}
	if pass != "" {
		cp.Password = []byte(pass)
	}
	c, err := dialV5(t, addr, cp)
	if err != nil {
		t.Fatalf("connect %s: %v", clientID, err)
	}
	return c
}

func (c *v5) subscribe(t testing.TB, qos byte, filters ...string) *paho.Suback {
	t.Helper()
	s := &paho.Subscribe{}
	for _, f := range filters {
		s.Subscriptions = append(s.Subscriptions, paho.SubscribeOptions{Topic: f, QoS: qos})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	sa, err := c.Subscribe(ctx, s)
	if sa == nil {
		t.Fatalf("subscribe %v: %v", filters, err)
	}
	return sa
}

func (c *v5) publish(t testing.TB, pb *paho.Publish) (*paho.PublishResponse, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return c.Publish(ctx, pb)
}

func expectMsg(t testing.TB, msgs <-chan *paho.Publish, d time.Duration) *paho.Publish {
	t.Helper()
	select {
	case m := <-msgs:
		return m
	case <-time.After(d):
		t.Fatalf("no message within %s", d)
		return nil
	}
}

// dialV3 connects an MQTT 3.1.1 client (paho.mqtt.golang) and returns the
// CONNACK return code.
func dialV3(t testing.TB, addr, clientID, user, pass string) (mqtt3.Client, byte, error) {
	t.Helper()
	o := mqtt3.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(clientID).SetUsername(user).SetPassword(pass).
		SetProtocolVersion(4).SetAutoReconnect(false).SetConnectRetry(false).SetCleanSession(true).
		SetConnectTimeout(30 * time.Second).SetKeepAlive(30 * time.Second)
	c := mqtt3.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(35 * time.Second) {
		t.Fatal("3.1.1 connect timed out")
	}
	code := tok.(*mqtt3.ConnectToken).ReturnCode()
	if tok.Error() == nil {
		t.Cleanup(func() { c.Disconnect(100) })
	}
	return c, code, tok.Error()
}

func waitToken(t testing.TB, tok mqtt3.Token) {
	t.Helper()
	if !tok.WaitTimeout(5 * time.Second) {
		t.Fatal("3.1.1 token timed out")
	}
	if err := tok.Error(); err != nil {
		t.Fatal(err)
	}
}

// runTool runs a mosquitto client tool against addr.
func runTool(t testing.TB, addr, tool string, args ...string) (string, error) {
	t.Helper()
	h, p, _ := net.SplitHostPort(addr)
	out, err := exec.Command(needMosquitto(t, tool), append([]string{"-h", h, "-p", p}, args...)...).CombinedOutput()
	return string(out), err
}

// currentUser is the name of the user running the tests.
func currentUser() string {
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return "root"
}
