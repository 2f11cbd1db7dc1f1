package mqtttest

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"
	mqtt3 "github.com/eclipse/paho.mqtt.golang"
)

// ConnectTimeout bounds a test client's CONNECT: generous, because a
// password check (bcrypt) alone can take seconds under -race on a loaded
// 2-core machine; a refused CONNECT is answered at once.
const ConnectTimeout = 30 * time.Second

// KeepAliveZeroID is a client ID for which ConnectV5 sends keep alive 0 as
// given (tests of the keepalive clamp). Other CONNECTs with keep alive 0
// get 30 s, so that test clients are not held to the policy's minimum.
const KeepAliveZeroID = "keepalive-zero"

// V5 is a connected paho.golang (MQTT 5) client and what it received.
type V5 struct {
	*paho.Client
	Connack *paho.Connack
	Msgs    chan *paho.Publish
	Discon  chan *paho.Disconnect
	Conn    net.Conn // the connection under the client (writes are whole packets)
}

// DialV5 connects an MQTT 5 client over TCP to addr; see ConnectV5.
func DialV5(t testing.TB, addr string, cp *paho.Connect) (*V5, error) {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return ConnectV5(t, nc, cp)
}

// ConnectV5 connects an MQTT 5 client over nc (TCP, TLS, WebSocket...). It
// returns the client even when the CONNACK refuses, with err set and
// Connack holding the refusal; an admitted client disconnects at cleanup.
// The user name and password flags follow the fields that are set.
func ConnectV5(t testing.TB, nc net.Conn, cp *paho.Connect) (*V5, error) {
	t.Helper()
	// paho writes a packet in several Writes, from several goroutines: a
	// sync.Locker conn makes it hold the lock for the whole packet.
	conn := packets.NewThreadSafeConn(nc)
	c := &V5{Msgs: make(chan *paho.Publish, 1000), Discon: make(chan *paho.Disconnect, 1), Conn: conn}
	c.Client = paho.NewClient(paho.ClientConfig{
		Conn: conn,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			c.Msgs <- pr.Packet
			return true, nil
		}},
		OnServerDisconnect: func(d *paho.Disconnect) { c.Discon <- d },
		PacketTimeout:      5 * time.Second,
	})
	if cp.KeepAlive == 0 && cp.ClientID != KeepAliveZeroID {
		cp.KeepAlive = 30
	}
	cp.UsernameFlag = cp.UsernameFlag || cp.Username != ""
	cp.PasswordFlag = cp.PasswordFlag || cp.Password != nil
	ctx, cancel := context.WithTimeout(context.Background(), ConnectTimeout)
	defer cancel()
	ca, err := c.Connect(ctx, cp)
	c.Connack = ca
	if err == nil {
		t.Cleanup(func() { _ = c.Disconnect(&paho.Disconnect{}) })
	} else {
		_ = conn.Close()
	}
	return c, err
}

// Subscribe subscribes c to filters at qos and returns the SUBACK, failing
// the test if none comes within 5 s.
func Subscribe(t testing.TB, c *paho.Client, qos byte, filters ...string) *paho.Suback {
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

// ExpectMsg waits up to d for one message.
func ExpectMsg(t testing.TB, msgs <-chan *paho.Publish, d time.Duration) *paho.Publish {
	t.Helper()
	select {
	case m := <-msgs:
		return m
	case <-time.After(d):
		t.Fatalf("no message within %s", d)
		return nil
	}
}

// ExpectNoMsg fails if a message arrives within d.
func ExpectNoMsg(t testing.TB, msgs <-chan *paho.Publish, d time.Duration) {
	t.Helper()
	select {
	case m := <-msgs:
		t.Fatalf("unexpected message on %q: %q", m.Topic, m.Payload)
	case <-time.After(d):
	}
}

// DialV3 connects an MQTT 3.1.1 client (paho.mqtt.golang) with a clean
// session, keep alive 30 s and no reconnection, after mod (if set) has
// changed its options. It returns the CONNACK return code; an admitted
// client disconnects at cleanup.
func DialV3(t testing.TB, addr, clientID, username, password string, mod func(*mqtt3.ClientOptions)) (mqtt3.Client, byte, error) {
	t.Helper()
	o := mqtt3.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(clientID).SetUsername(username).SetPassword(password).
		SetProtocolVersion(4).SetAutoReconnect(false).SetConnectRetry(false).SetCleanSession(true).
		SetConnectTimeout(ConnectTimeout).SetKeepAlive(30 * time.Second)
	if mod != nil {
		mod(o)
	}
	c := mqtt3.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(ConnectTimeout + 5*time.Second) {
		t.Fatal("3.1.1 connect timed out")
	}
	code := tok.(*mqtt3.ConnectToken).ReturnCode()
	if tok.Error() == nil {
		t.Cleanup(func() { c.Disconnect(100) })
	}
	return c, code, tok.Error()
}

// WaitToken waits up to 5 s for a 3.1.1 operation and fails on its error.
func WaitToken(t testing.TB, tok mqtt3.Token) {
	t.Helper()
	if !tok.WaitTimeout(5 * time.Second) {
		t.Fatal("3.1.1 token timed out")
	}
	if err := tok.Error(); err != nil {
		t.Fatal(err)
	}
}
