package hooks

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/gorilla/websocket"
	"github.com/mochi-mqtt/server/v2/listeners"

	"github.com/mqttwaf/mqttwaf/mqttwaf"
)

// addWSS adds a secure WebSocket listener "wss" to a running test broker
// and returns its address.
func addWSS(t *testing.T, b *testBroker) string {
	t.Helper()
	if b.pki == nil {
		b.pki = newPKI(t)
		b.tlsCA = b.pki.pool
	}
	l, err := NewListener(b.waf, listeners.Config{ID: "wss", Type: TypeWebsocket, Address: "127.0.0.1:0", TLSConfig: b.pki.serverTLS(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.server.AddListener(l); err != nil {
		t.Fatal(err)
	}
	b.server.Listeners.Serve("wss", b.server.EstablishConnection)
	return l.Address()
}

// wsTarget is a WebSocket listener of a test broker: ws, or wss when tls.
type wsTarget struct {
	addr string
	tls  *tls.Config // client config for wss, nil for ws
}

// dial opens a socket to the listener (TLS handshake done for wss).
func (w wsTarget) dial() (net.Conn, error) {
	if w.tls != nil {
		return tls.Dial("tcp", w.addr, w.tls)
	}
	return net.Dial("tcp", w.addr)
}

func (w wsTarget) dialRaw(t *testing.T) net.Conn {
	t.Helper()
	c, err := w.dial()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (w wsTarget) url() string {
	if w.tls != nil {
		return "wss://" + w.addr + "/mqtt"
	}
	return "ws://" + w.addr + "/mqtt"
}

// wsTargets starts a WebSocket and a secure WebSocket listener on b.
func wsTargets(t *testing.T, b *testBroker) map[string]wsTarget {
	t.Helper()
	wss := addWSS(t, b)
	return map[string]wsTarget{
		"ws":  {addr: b.wsAddr},
		"wss": {addr: wss, tls: &tls.Config{RootCAs: b.tlsCA, ServerName: "127.0.0.1"}},
	}
}

// dialWS opens an MQTT WebSocket (subprotocol mqtt) with the given Host and
// Origin headers ("" leaves Host at the URL's and sends no Origin).
func (w wsTarget) dialWS(host, origin string) (*websocket.Conn, *http.Response, error) {
	d := websocket.Dialer{Subprotocols: []string{"mqtt"}, TLSClientConfig: w.tls, HandshakeTimeout: 5 * time.Second}
	h := http.Header{}
	if host != "" {
		h.Set("Host", host)
	}
	if origin != "" {
		h.Set("Origin", origin)
	}
	return d.Dial(w.url(), h)
}

// upgradeRequest is a well-formed MQTT WebSocket upgrade request.
func upgradeRequest(host, origin string) string {
	r := "GET /mqtt HTTP/1.1\r\nHost: " + host + "\r\n"
	if origin != "" {
		r += "Origin: " + origin + "\r\n"
	}
	return r + "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" +
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n"
}

// wsFrame is a masked client frame (opcode op) carrying payload, masked with
// the zero key so the payload bytes are sent as they are.
func wsFrame(op byte, payload []byte) []byte {
	if len(payload) > 125 {
		panic("wsFrame: payload too long for a short frame")
	}
	return append([]byte{0x80 | op, 0x80 | byte(len(payload)), 0, 0, 0, 0}, payload...)
}

// connectPacket is an MQTT 3.1.1 CONNECT for client ID "ev".
var connectPacket = []byte{0x10, 14, 0, 4, 'M', 'Q', 'T', 'T', 4, 2, 0, 60, 0, 2, 'e', 'v'}

// drip writes data a byte at a time every interval until it is written, the
// socket fails, or the test ends.
func drip(t *testing.T, c net.Conn, data string, every time.Duration) {
	var wg sync.WaitGroup
	wg.Add(1)
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop); _ = c.Close(); wg.Wait() })
	go func() {
		defer wg.Done()
		tick := time.NewTicker(every)
		defer tick.Stop()
		for i := 0; i < len(data); i++ {
			if _, err := c.Write([]byte{data[i]}); err != nil {
				return
			}
			select {
			case <-tick.C:
			case <-stop:
				return
			}
		}
	}()
}

// TestWebSocketConnectDeadlineHolds: whatever an HTTP client does on a
// WebSocket listener (ws and wss), its socket is closed by the CONNECT
// deadline unless it completes an MQTT CONNECT, and the close is reported.
func TestWebSocketConnectDeadlineHolds(t *testing.T) {
	// Long enough for a TLS handshake under -race on a loaded machine.
	const timeout = time.Second
	const get = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
	pad := strings.Repeat("X-Pad: a\r\n", 200)
	// run does what the client does; an error from the socket is the
	// broker closing it.
	cases := []struct {
		name         string
		run          func(t *testing.T, c net.Conn, br *bufio.Reader) error
		rule, reason string // the event the close must produce
	}{
		{"request without upgrade, then keep-alive", func(t *testing.T, c net.Conn, br *bufio.Reader) error {
			if _, err := io.WriteString(c, get); err != nil {
				return err
			}
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				return err
			}
			if resp.StatusCode != http.StatusBadRequest || !resp.Close {
				t.Errorf("response %s, Connection: close %v; want 400 and close", resp.Status, resp.Close)
			}
			return nil
		}, "connections.protocol", "no_websocket_upgrade"},
		{"second request on the keep-alive socket", func(t *testing.T, c net.Conn, br *bufio.Reader) error {
			if _, err := io.WriteString(c, get); err != nil {
				return err
			}
			if _, err := http.ReadResponse(br, nil); err != nil {
				return err
			}
			_, _ = io.WriteString(c, get) // fails if the broker has closed it, as it should
			return nil
		}, "connections.protocol", "no_websocket_upgrade"},
		{"pipelined requests", func(t *testing.T, c net.Conn, br *bufio.Reader) error {
			_, err := io.WriteString(c, get+get+get)
			return err
		}, "connections.protocol", "no_websocket_upgrade"},
		{"slow headers", func(t *testing.T, c net.Conn, br *bufio.Reader) error {
			drip(t, c, "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n"+pad, 100*time.Millisecond)
			return nil
		}, "connections.connect_timeout", "connect_timeout"},
		{"slow body", func(t *testing.T, c net.Conn, br *bufio.Reader) error {
			if _, err := io.WriteString(c, "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000\r\n\r\n"); err != nil {
				return err
			}
			drip(t, c, pad, 100*time.Millisecond)
			return nil
		}, "connections.connect_timeout", "connect_timeout"},
		{"slow body on an upgrade request", func(t *testing.T, c net.Conn, br *bufio.Reader) error {
			req := upgradeRequest("127.0.0.1", "")
			if _, err := io.WriteString(c, strings.TrimSuffix(req, "\r\n")+"Content-Length: 100000\r\n\r\n"); err != nil {
				return err
			}
			drip(t, c, pad, 100*time.Millisecond)
			return nil
		}, "", ""},
		{"upgrade, then silence", func(t *testing.T, c net.Conn, br *bufio.Reader) error {
			return upgrade(c, br)
		}, "connections.connect_timeout", "connect_timeout"},
		{"upgrade, then pings", func(t *testing.T, c net.Conn, br *bufio.Reader) error {
			if err := upgrade(c, br); err != nil {
				return err
			}
			drip(t, c, strings.Repeat(string(wsFrame(websocket.PingMessage, nil)), 50), 20*time.Millisecond)
			return nil
		}, "connections.connect_timeout", "connect_timeout"},
		{"upgrade, then a slow CONNECT", func(t *testing.T, c net.Conn, br *bufio.Reader) error {
			if err := upgrade(c, br); err != nil {
				return err
			}
			drip(t, c, string(wsFrame(websocket.BinaryMessage, connectPacket)), 100*time.Millisecond)
			return nil
		}, "connections.connect_timeout", "connect_timeout"},
	}
	b := startBroker(t, "connections: {connect_timeout: 1s}\n", brokerOpts{ws: true})
	targets := wsTargets(t, b)
	for _, proto := range []string{"ws", "wss"} {
		for _, tc := range cases {
			t.Run(proto+"/"+tc.name, func(t *testing.T) {
				rule, reason := tc.rule, tc.reason
				before := b.events.count(rule, reason)
				timeouts := b.events.count("connections.connect_timeout", "connect_timeout")
				noUpgrades := b.events.count("connections.protocol", "no_websocket_upgrade")
				start := time.Now()
				c, err := targets[proto].dial()
				if err == nil {
					defer c.Close()
					err = tc.run(t, c, bufio.NewReader(c))
				}
				if err != nil {
					if time.Since(start) < timeout {
						t.Fatal(err)
					}
					// The deadline closed the socket before this client got
					// through its first steps (a loaded machine): the very
					// property under test.
					t.Logf("closed at the deadline before the client was done: %v", err)
					// Reported as a timeout, or (a handshake cut short) a
					// socket closed without an upgrade.
					rule, reason, before = "connections.protocol", "no_websocket_upgrade", noUpgrades
				}
				if c != nil {
					// Closed well before "never": within 5 deadlines.
					bound := 5 * timeout
					_ = c.SetReadDeadline(start.Add(bound))
					_, err = io.Copy(io.Discard, c)
					var ne net.Error
					if errors.As(err, &ne) && ne.Timeout() {
						t.Fatalf("socket still open %s after connecting (connect_timeout %s)", bound, timeout)
					}
				}
				if rule == "" {
					return
				}
				// The close is reported. A request answered and closed at
				// once is no_websocket_upgrade, unless a loaded machine took
				// until the deadline: then it is a timeout, rightly.
				for end := time.Now().Add(2 * time.Second); b.events.count(rule, reason) == before; {
					if rule == "connections.protocol" && b.events.count("connections.connect_timeout", "connect_timeout") > timeouts {
						break
					}
					if time.Now().After(end) {
						t.Fatalf("no event %s/%s for the close; events %v", rule, reason, b.events.all())
					}
					time.Sleep(10 * time.Millisecond)
				}
			})
		}
	}
	// A client that does connect in time is not cut off by the deadline.
	ws, _, err := targets["wss"].dialWS("", "")
	if err != nil {
		t.Fatal(err)
	}
	c := mqttOverWS(t, ws, "punctual")
	time.Sleep(2 * timeout)
	if _, err := c.publish(t, "still/here", 1, []byte("ok")); err != nil {
		t.Fatalf("connected client was cut off: %v", err)
	}
}

func write(t *testing.T, c net.Conn, s string) {
	t.Helper()
	if _, err := io.WriteString(c, s); err != nil {
		t.Fatal(err)
	}
}

// upgrade sends an MQTT WebSocket upgrade request and reads the 101.
func upgrade(c net.Conn, br *bufio.Reader) error {
	if _, err := io.WriteString(c, upgradeRequest("127.0.0.1", "")); err != nil {
		return err
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		return fmt.Errorf("upgrade answered %s", resp.Status)
	}
	return nil
}

// mqttOverWS connects an MQTT 5 client over an open WebSocket.
func mqttOverWS(t *testing.T, ws *websocket.Conn, clientID string) *v5 {
	t.Helper()
	c, err := connectV5(t, mqttwaf.WebSocketConn(ws), &paho.Connect{ClientID: clientID, CleanStart: true})
	if err != nil {
		t.Fatalf("MQTT over WebSocket: %v", err)
	}
	return c
}

// TestWebSocketHTTPSocketsDoNotLockOutDevices: 300 keep-alive HTTP sockets
// from one address (more than max_connections_per_ip, which the TCP and
// WebSocket listeners share) leave no lasting lock-out: once the CONNECT
// deadline has passed, a real MQTT client from that address connects over
// TCP and over WebSocket.
func TestWebSocketHTTPSocketsDoNotLockOutDevices(t *testing.T) {
	const timeout = time.Second
	b := startBroker(t, "connections: {connect_timeout: 1s}\n", brokerOpts{ws: true})
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	for range 300 {
		c, err := net.Dial("tcp", b.wsAddr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		// Sockets over the cap are closed at accept; the write may fail.
		_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n")
	}
	bound := time.Now().Add(5 * timeout)
	var err error
	for {
		var c *v5
		if c, err = dialV5(t, b.addr, &paho.Connect{ClientID: "device", CleanStart: true}); err == nil {
			_ = c.Disconnect(&paho.Disconnect{})
			break
		}
		if time.Now().After(bound) {
			sockets, _ := b.waf.OpenConnections()
			t.Fatalf("MQTT client still locked out %s after the last HTTP socket (%d sockets open): %v", 5*timeout, sockets, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The HTTP sockets close at their deadlines, a few at a time: the TCP
	// client may have taken the first free slot, so the WebSocket client
	// gets the same grace.
	for {
		var ws *websocket.Conn
		if ws, _, err = websocket.DefaultDialer.Dial("ws://"+b.wsAddr+"/", http.Header{"Sec-WebSocket-Protocol": {"mqtt"}}); err == nil {
			mqttOverWS(t, ws, "ws-device")
			return
		}
		if time.Now().After(bound) {
			t.Fatalf("WebSocket client locked out %s after the last HTTP socket: %v", 5*timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestWebSocketDNSRebinding: a page whose name was rebound to the broker
// (Host and Origin evil.example) gets 403 and no MQTT session; devices and
// loopback pages work, over ws and wss; allowed_hosts names the broker.
func TestWebSocketDNSRebinding(t *testing.T) {
	b := startBroker(t, "", brokerOpts{ws: true})
	sub := mustV5(t, b.addr, "sub", "")
	sub.subscribe(t, 1, "x/#")
	targets := wsTargets(t, b)
	for _, proto := range []string{"ws", "wss"} {
		tgt := targets[proto]
		_, port := hostPort(t, tgt.addr)
		cases := []struct {
			name, host, origin string
			want               string // refusal reason, "" for a working MQTT session
		}{
			{"rebinding page", "evil.example:" + port, "http://evil.example:" + port, "host_not_allowed"},
			{"rebinding page without port", "evil.example", "https://evil.example", "host_not_allowed"},
			{"device by address", "127.0.0.1:" + port, "", ""},
			{"device by name", "localhost:" + port, "", ""},
			{"loopback page", "127.0.0.1:" + port, "http://localhost:" + port, ""},
			{"loopback page on another port", "localhost:" + port, "http://127.0.0.1:3000", ""},
			{"cross-site page", "127.0.0.1:" + port, "https://evil.example", "origin_not_allowed"},
			{"sandboxed page", "127.0.0.1:" + port, "null", "origin_not_allowed"},
		}
		for _, tc := range cases {
			t.Run(proto+"/"+tc.name, func(t *testing.T) {
				before := b.events.count("connections.websocket", tc.want)
				ws, resp, err := tgt.dialWS(tc.host, tc.origin)
				if tc.want != "" {
					if err == nil {
						_ = ws.Close()
						t.Fatal("upgrade accepted")
					}
					if resp == nil || resp.StatusCode != http.StatusForbidden {
						t.Fatalf("response %v, error %v; want 403", resp, err)
					}
					b.events.waitCount(t, "connections.websocket", tc.want, before+1, 2*time.Second)
					e := lastEvent(b.events, "connections.websocket", tc.want)
					if e.Stage != mqttwaf.StageAccept || e.Listener != proto || e.RemoteIP != "127.0.0.1" || !e.Enforced {
						t.Fatalf("event %+v", e)
					}
					return
				}
				if err != nil {
					t.Fatalf("upgrade refused: %v (response %v)", err, resp)
				}
				id := strings.NewReplacer(" ", "-", "/", "-").Replace(proto + "-" + tc.name)
				c := mqttOverWS(t, ws, id)
				if _, err := c.publish(t, "x/"+id, 1, []byte("hello")); err != nil {
					t.Fatal(err)
				}
				if m := expectMsg(t, sub.msgs, 5*time.Second); string(m.Payload) != "hello" {
					t.Fatalf("got %q", m.Payload)
				}
			})
		}
		// A rebinding page that sends its CONNECT right behind the upgrade
		// request gets the 403 and nothing else: no session, no CONNACK.
		t.Run(proto+"/rebinding page with pipelined CONNECT", func(t *testing.T) {
			c := tgt.dialRaw(t)
			defer c.Close()
			host := "evil.example:" + port
			write(t, c, upgradeRequest(host, "http://"+host)+string(wsFrame(websocket.BinaryMessage, connectPacket)))
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			br := bufio.NewReader(c)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			rest, err := io.ReadAll(br)
			if ne := (net.Error)(nil); errors.As(err, &ne) && ne.Timeout() {
				t.Fatal("socket still open 5s after a 403")
			}
			if resp.StatusCode != http.StatusForbidden || !resp.Close || len(rest) != 0 {
				t.Fatalf("response %s (close %v) %q, then %q; want 403, close, nothing more", resp.Status, resp.Close, body, rest)
			}
			if cl, ok := b.server.Clients.Get("ev"); ok {
				t.Fatalf("MQTT session %q exists", cl.ID)
			}
		})
		t.Run(proto+"/plain request from a rebinding page", func(t *testing.T) {
			c := tgt.dialRaw(t)
			defer c.Close()
			write(t, c, "GET / HTTP/1.1\r\nHost: evil.example:"+port+"\r\n\r\n")
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != http.StatusForbidden {
				t.Fatalf("response %s, want 403", resp.Status)
			}
		})
	}
	// Each refusal is one event: the socket closing afterwards is not
	// reported again as a failed upgrade.
	if n := b.events.count("connections.protocol", "no_websocket_upgrade"); n != 0 {
		t.Fatalf("%d no_websocket_upgrade events after refusals; events %v", n, b.events.all())
	}
}

// lastEvent returns the latest event with rule and reason.
func lastEvent(r *recorder, rule, reason string) mqttwaf.Event {
	evs := r.all()
	for i := len(evs) - 1; i >= 0; i-- {
		if evs[i].Rule == rule && evs[i].Reason == reason {
			return evs[i]
		}
	}
	return mqttwaf.Event{}
}

// TestWebSocketAllowedHosts: with allowed_hosts naming the broker, clients
// that use that name work and clients that use the loopback address are
// refused; listeners.<id> overrides connections for that listener only.
func TestWebSocketAllowedHosts(t *testing.T) {
	b := startBroker(t, "connections: {allowed_hosts: [broker.example]}\nlisteners: {wss: {allowed_hosts: [\"*\"]}}\n", brokerOpts{ws: true})
	targets := wsTargets(t, b)
	_, port := hostPort(t, b.wsAddr)
	ws, _, err := targets["ws"].dialWS("broker.example:"+port, "https://broker.example")
	if err != nil {
		t.Fatalf("Host broker.example refused: %v", err)
	}
	mqttOverWS(t, ws, "by-name")
	_, resp, err := targets["ws"].dialWS("127.0.0.1:"+port, "")
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("Host 127.0.0.1: response %v, error %v; want 403", resp, err)
	}
	e := b.events.wait(t, "connections.websocket", "host_not_allowed", 2*time.Second)
	if !strings.Contains(e.Detail, `Host "127.0.0.1" is not in connections.allowed_hosts`) {
		t.Fatalf("detail %q", e.Detail)
	}
	// "*" on wss: any host, still no foreign pages.
	ws, _, err = targets["wss"].dialWS("anything.example", "")
	if err != nil {
		t.Fatalf("wss with allowed_hosts *: %v", err)
	}
	mqttOverWS(t, ws, "any-host")
	if _, resp, err := targets["wss"].dialWS("anything.example", "https://evil.example"); err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("foreign page with allowed_hosts *: response %v, error %v; want 403", resp, err)
	}

	// A reload applies to the next request.
	p, err := mqttwaf.ParsePolicy([]byte(testPolicy+openAccess+testRates+"connections: {allowed_hosts: [127.0.0.1]}\n"), "reload")
	if err != nil {
		t.Fatal(err)
	}
	if err := b.waf.Reload(p); err != nil {
		t.Fatal(err)
	}
	ws, _, err = targets["ws"].dialWS("127.0.0.1:"+port, "")
	if err != nil {
		t.Fatalf("Host 127.0.0.1 after the reload: %v", err)
	}
	mqttOverWS(t, ws, "after-reload")
	if _, resp, err := targets["ws"].dialWS("broker.example:"+port, ""); err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("Host broker.example after the reload: response %v, error %v; want 403", resp, err)
	}
}

// TestWebSocketDetectionOnly: in detection_only a rebinding page is
// reported (enforced: false) and let through.
func TestWebSocketDetectionOnly(t *testing.T) {
	b := startBroker(t, "mode: detection_only\n", brokerOpts{ws: true})
	_, port := hostPort(t, b.wsAddr)
	ws, _, err := wsTarget{addr: b.wsAddr}.dialWS("evil.example:"+port, "http://evil.example:"+port)
	if err != nil {
		t.Fatalf("detection_only refused: %v", err)
	}
	mqttOverWS(t, ws, "detected")
	if e := b.events.wait(t, "connections.websocket", "host_not_allowed", 2*time.Second); e.Enforced {
		t.Fatalf("event %+v, want enforced false", e)
	}
}
