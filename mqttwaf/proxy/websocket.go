package proxy

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"

	"github.com/gorilla/websocket"

	"github.com/mqttwaf/mqttwaf/mqttwaf"
)

// upgrade reads the one HTTP request a WebSocket listener's socket may
// carry, checks its Host and Origin (connections.allowed_hosts,
// allowed_origins; DNS rebinding and cross-site WebSocket hijacking), and
// upgrades it to MQTT over WebSocket (subprotocol mqtt). All of it runs
// under the CONNECT deadline already set on the socket. It returns the
// stream MQTT is read from, or nil after answering and recording a
// refusal.
func (c *conn) upgrade(stream net.Conn) net.Conn {
	w, id := c.p.waf, c.p.opts.ListenerID
	br := bufio.NewReaderSize(stream, 4<<10)
	req, err := http.ReadRequest(br)
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, io.EOF) {
			c.recordEarly(err) // connect_timeout, or a port scan (nothing)
			return nil
		}
		w.Record(mqttwaf.StageAccept, nil, id, c.remote, "", 0, mqttwaf.Verdict{Action: mqttwaf.Disconnect,
			Rule: "connections.protocol", Reason: "no_websocket_upgrade", Detail: "not an HTTP request: " + err.Error()})
		return nil
	}
	hw := &hijacker{conn: stream, br: br, header: http.Header{}}
	if v := w.CheckWebSocket(id, c.remote, req.Host, req.Header.Values("Origin")); v.Blocked() {
		hw.refuse(http.StatusForbidden)
		return nil
	}
	up := websocket.Upgrader{
		Subprotocols: []string{"mqtt"},
		// CheckWebSocket has checked Origin against allowed_origins;
		// gorilla's own check (Origin's host equals Host) is what DNS
		// rebinding passes.
		CheckOrigin: func(*http.Request) bool { return true },
		Error: func(w http.ResponseWriter, _ *http.Request, status int, _ error) {
			w.(*hijacker).refuse(status)
		},
	}
	ws, err := up.Upgrade(hw, req, nil)
	if err != nil {
		w.Record(mqttwaf.StageAccept, nil, id, c.remote, "", 0, mqttwaf.Verdict{Action: mqttwaf.Disconnect,
			Rule: "connections.protocol", Reason: "no_websocket_upgrade", Detail: "HTTP request on a WebSocket listener is not an MQTT WebSocket upgrade"})
		return nil
	}
	// A WebSocket message carries MQTT packets; one far larger than the
	// largest packet is refused by gorilla before it is buffered.
	ws.SetReadLimit(int64(2*c.lim().MaxPacketSize) + 1024)
	return mqttwaf.WebSocketConn(ws)
}

// hijacker is the http.ResponseWriter gorilla upgrades through: the
// request was read from the socket by hand, one per socket.
type hijacker struct {
	conn   net.Conn
	br     *bufio.Reader
	header http.Header
	status int
}

func (h *hijacker) Header() http.Header { return h.header }

func (h *hijacker) WriteHeader(status int) { h.status = status }

func (h *hijacker) Write(b []byte) (int, error) { return len(b), nil } // refuse writes the answer

func (h *hijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return h.conn, bufio.NewReadWriter(h.br, bufio.NewWriter(h.conn)), nil
}

// refuse answers with status and nothing else; the socket then closes.
func (h *hijacker) refuse(status int) {
	text := http.StatusText(status)
	extra := ""
	if status != http.StatusForbidden {
		extra = "Sec-WebSocket-Version: 13\r\n"
	}
	_, _ = fmt.Fprintf(h.conn, "HTTP/1.1 %d %s\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\n%sContent-Length: %s\r\n\r\n%s",
		status, text, extra, strconv.Itoa(len(text)), text)
}
