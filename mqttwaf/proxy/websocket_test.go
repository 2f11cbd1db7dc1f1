package proxy

import (
	"net/http"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/gorilla/websocket"

	"github.com/mqttwaf/mqttwaf/mqttwaf"
	"github.com/mqttwaf/mqttwaf/mqttwaf/frame"
)

// MQTT over WebSocket through the proxy: a device (no Origin) connects and
// its messages flow; a page from a foreign origin gets HTTP 403 and a
// request that is not an upgrade HTTP 400, each an event.
func TestWebSocket(t *testing.T) {
	up := startMosquitto(t)
	px, ev := startProxy(t, "", up, func(o *Options) { o.WebSocket = true })
	dial := func(h http.Header) (*websocket.Conn, *http.Response, error) {
		d := websocket.Dialer{Subprotocols: []string{"mqtt"}, HandshakeTimeout: 5 * time.Second}
		return d.Dial("ws://"+px.Addr()+"/mqtt", h)
	}
	ws, _, err := dial(nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := connectV5(t, mqttwaf.WebSocketConn(ws), &paho.Connect{ClientID: "wsdev", CleanStart: true})
	if err != nil {
		t.Fatalf("MQTT over WebSocket: %v", err)
	}
	subscribe5(t, c, 1, "guest/#")
	if _, err := publish5(t, c, &paho.Publish{Topic: "guest/wsdev/x", QoS: 1, Payload: []byte("over ws")}); err != nil {
		t.Fatal(err)
	}
	if m := expectMsg(t, c.Msgs, 5*time.Second); string(m.Payload) != "over ws" {
		t.Fatalf("got %q", m.Payload)
	}
	if _, resp, err := dial(http.Header{"Origin": {"https://evil.example"}}); err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("foreign origin: %v %v, want HTTP 403", err, resp)
	}
	ev.Wait(t, "connections.websocket", "", 5*time.Second)
	resp, err := http.Get("http://" + px.Addr() + "/mqtt")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("plain GET: HTTP %d, want 400", resp.StatusCode)
	}
	ev.Wait(t, "connections.protocol", "no_websocket_upgrade", 5*time.Second)
}

// A subscriber that stops reading is disconnected after
// broker.write_timeout, with an event, as by the embedded broker; the
// proxy does not hold its upstream connection forever.
func TestStalledSubscriber(t *testing.T) {
	up := startMosquitto(t)
	px, ev := startProxy(t, "broker: {write_timeout: 1s}\n", up, nil)
	stuck := rawClient(t, px.Addr(), 5, "stuck")
	stuck.send(t, rawSubscribe(5, 1, "guest/#", 0))
	if pk := stuck.next(t); pk[0]>>4 != frame.TypeSuback {
		t.Fatalf("want SUBACK, got %x", pk)
	}
	// stuck reads nothing from here on.
	pub := mustV5(t, up, "flood", "", "") // directly into mosquitto
	payload := make([]byte, 200<<10)
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, ok := ev.Find("broker.write_timeout", "write_timeout"); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no broker.write_timeout event")
		}
		if _, err := publish5(t, pub, &paho.Publish{Topic: "guest/flood/x", QoS: 0, Payload: payload}); err != nil {
			t.Fatal(err)
		}
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if n, _ := px.waf.OpenConnections(); n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the stalled client's connection is still open")
		}
	}
}
