package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"

	"github.com/mqttwaf/mqttwaf/mqttwaf/testpki"
)

// listenerAddr is the bound address of listener id, from the broker's
// "hardened-broker ready" line.
func listenerAddr(t *testing.T, stderr *syncBuffer, id string) string {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(stderr.String()))
	for sc.Scan() {
		var line struct {
			Msg       string            `json:"msg"`
			Listeners map[string]string `json:"listeners"`
		}
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "hardened-broker ready" && line.Listeners[id] != "" {
			return line.Listeners[id]
		}
	}
	t.Fatalf("no listener %q in the ready line:\n%s", id, stderr.String())
	return ""
}

// waitStderr waits until the broker's stderr contains each of want.
func waitStderr(t *testing.T, stderr *syncBuffer, want ...string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for _, w := range want {
		for !strings.Contains(stderr.String(), w) {
			if time.Now().After(deadline) {
				t.Fatalf("no %q on stderr:\n%s", w, stderr.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// hup sends SIGHUP to this process, where the broker under test runs.
func hup(t *testing.T) {
	t.Helper()
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
}

// tlsPeer completes a TLS handshake with addr, trusting ca and presenting
// client, and returns the common name of the certificate the broker served.
func tlsPeer(t *testing.T, addr string, ca *testpki.CA, client tls.Certificate) string {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr,
		&tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{client}, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatalf("TLS handshake with %s: %v", addr, err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].Subject.CommonName
}

// tlsClient is an MQTT 5 client (paho.golang) over TLS, with the messages
// it receives.
type tlsClient struct {
	*paho.Client
	msgs chan *paho.Publish
}

// dialMQTTS connects an MQTT 5 client over TLS to addr as clientID.
func dialMQTTS(t *testing.T, addr string, ca *testpki.CA, client tls.Certificate, clientID string) (*tlsClient, error) {
	t.Helper()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr,
		&tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{client}, MinVersion: tls.VersionTLS12})
	if err != nil {
		return nil, err
	}
	c := &tlsClient{msgs: make(chan *paho.Publish, 16)}
	c.Client = paho.NewClient(paho.ClientConfig{
		Conn: packets.NewThreadSafeConn(conn),
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			c.msgs <- pr.Packet
			return true, nil
		}},
		PacketTimeout: 5 * time.Second,
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Connect(ctx, &paho.Connect{ClientID: clientID, KeepAlive: 30, CleanStart: true}); err != nil {
		_ = conn.Close()
		return nil, err
	}
	t.Cleanup(func() { _ = c.Disconnect(&paho.Disconnect{}) })
	return c, nil
}

// roundTrip subscribes c to its own sandbox, publishes there at QoS 1 and
// waits for the message to come back: the connection works both ways.
func (c *tlsClient) roundTrip(t *testing.T, clientID, payload string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	topic := "guest/" + clientID + "/t"
	if _, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: topic, QoS: 1}}}); err != nil {
		t.Fatalf("%s: subscribe: %v", clientID, err)
	}
	if _, err := c.Publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Payload: []byte(payload)}); err != nil {
		t.Fatalf("%s: publish: %v", clientID, err)
	}
	select {
	case m := <-c.msgs:
		if string(m.Payload) != payload {
			t.Fatalf("%s: got %q, want %q", clientID, m.Payload, payload)
		}
	case <-ctx.Done():
		t.Fatalf("%s: own message did not come back", clientID)
	}
}

// TestTLSCertificateReload swaps the certificate, key and client CA under a
// running broker: after SIGHUP the next connections on the TLS and secure
// WebSocket listeners get the new certificate and are checked against the
// new client CA, while an MQTT connection established before keeps working;
// then a broken certificate leaves the new one in force and produces a
// tls.reload event saying what is wrong.
func TestTLSCertificateReload(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, caFile := filepath.Join(dir, "broker.pem"), filepath.Join(dir, "broker.key"), filepath.Join(dir, "clients-ca.pem")
	ca1, ca2 := testpki.NewCA(t, "CA one"), testpki.NewCA(t, "CA two")
	from, until := testpki.Valid()
	install := func(ca *testpki.CA, cn string) {
		cert, key := ca.Issue(t, cn, true, from, until)
		testpki.WriteFile(t, certFile, cert)
		testpki.WriteFile(t, keyFile, key)
		testpki.WriteFile(t, caFile, ca.PEM) // the same CA signs the clients
	}
	clientOf := func(ca *testpki.CA) tls.Certificate {
		c, k := ca.Issue(t, "device", false, from, until)
		pair, err := tls.X509KeyPair(c, k)
		if err != nil {
			t.Fatal(err)
		}
		return pair
	}
	client1, client2 := clientOf(ca1), clientOf(ca2)

	install(ca1, "broker one")
	_, stderr := startBroker(t, "-tls-addr", "127.0.0.1:0", "-ws-addr", "127.0.0.1:0",
		"-tls-cert", certFile, "-tls-key", keyFile, "-tls-client-ca", caFile)
	tlsAddr, wssAddr := listenerAddr(t, stderr, "tls"), listenerAddr(t, stderr, "ws")
	for _, addr := range []string{tlsAddr, wssAddr} {
		if cn := tlsPeer(t, addr, ca1, client1); cn != "broker one" {
			t.Fatalf("%s serves %q at start", addr, cn)
		}
	}
	before, err := dialMQTTS(t, tlsAddr, ca1, client1, "before")
	if err != nil {
		t.Fatal(err)
	}
	before.roundTrip(t, "before", "one")

	install(ca2, "broker two")
	hup(t)
	waitStderr(t, stderr, `"msg":"policy reloaded"`, `"tls_certificate":"CN=broker two"`)
	for _, addr := range []string{tlsAddr, wssAddr} {
		if cn := tlsPeer(t, addr, ca2, client2); cn != "broker two" {
			t.Fatalf("%s serves %q after the reload, want the new certificate", addr, cn)
		}
	}
	after, err := dialMQTTS(t, tlsAddr, ca2, client2, "after")
	if err != nil {
		t.Fatalf("MQTT over TLS with the new certificate and client CA: %v", err)
	}
	after.roundTrip(t, "after", "two")
	if c, err := dialMQTTS(t, tlsAddr, ca2, client1, "old-client-ca"); err == nil {
		_ = c.Disconnect(&paho.Disconnect{})
		t.Fatal("a client certificate of the replaced client CA was admitted")
	}
	// The connection made before the swap goes on with its session.
	before.roundTrip(t, "before", "still here")

	// A broken certificate: the reload fails, says so, and the new one stays.
	testpki.WriteFile(t, certFile, []byte("-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n"))
	hup(t)
	waitStderr(t, stderr, `"msg":"reload failed`, `"rule":"tls.reload"`, `"reason":"certificate_invalid"`)
	if cn := tlsPeer(t, tlsAddr, ca2, client2); cn != "broker two" {
		t.Fatalf("after a broken certificate the broker serves %q, want the previous one", cn)
	}
	for _, line := range strings.Split(stderr.String(), "\n") {
		if strings.Contains(line, `"rule":"tls.reload"`) &&
			(!strings.Contains(line, "-tls-cert "+certFile) || !strings.Contains(line, `previous certificate \"CN=broker two\"`)) {
			t.Fatalf("the tls.reload event does not name the file and the certificate still served: %s", line)
		}
		if strings.Contains(line, "reload failed") || strings.Contains(line, `"rule":"tls.reload"`) {
			t.Logf("%s", line) // README samples
		}
	}
}
