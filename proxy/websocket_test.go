package proxy

import (
	"net/http"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/gorilla/websocket"
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
	c, err := connectV5(t, &wsConn{Conn: ws.UnderlyingConn(), c: ws}, &paho.Connect{ClientID: "wsdev", CleanStart: true})
	if err != nil {
		t.Fatalf("MQTT over WebSocket: %v", err)
	}
	c.subscribe(t, 1, "guest/#")
	if _, err := c.publish(t, &paho.Publish{Topic: "guest/wsdev/x", QoS: 1, Payload: []byte("over ws")}); err != nil {
		t.Fatal(err)
	}
	if m := expectMsg(t, c.msgs, 5*time.Second); string(m.Payload) != "over ws" {
		t.Fatalf("got %q", m.Payload)
	}
	if _, resp, err := dial(http.Header{"Origin": {"https://evil.example"}}); err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("foreign origin: %v %v, want HTTP 403", err, resp)
	}
	ev.wait(t, "connections.websocket", "", 5*time.Second)
	resp, err := http.Get("http://" + px.Addr() + "/mqtt")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("plain GET: HTTP %d, want 400", resp.StatusCode)
	}
	ev.wait(t, "connections.protocol", "no_websocket_upgrade", 5*time.Second)
}
