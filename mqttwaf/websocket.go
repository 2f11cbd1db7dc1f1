package mqttwaf

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/gorilla/websocket"
	"golang.org/x/net/idna"
)

// CheckWebSocket checks the HTTP request that opens an MQTT-over-WebSocket
// connection on listener against the listener's allowed_hosts and
// allowed_origins. host is the request's Host (with or without a port);
// origins are the values of its Origin headers, none for clients that are
// not browsers (those pass the origin check). A refusal is counted and
// recorded as an event (rule connections.websocket, stage accept) and must
// be answered with HTTP 403 and the socket closed. In DetectionOnly the
// event is recorded with Enforced false and the allow verdict is returned.
// It is safe for concurrent use.
func (w *WAF) CheckWebSocket(listener, remoteAddr, host string, origins []string) Verdict {
	e := w.engine.Load()
	v := e.policy.checkWebSocket(listener, host, origins)
	if v.Action == Allow {
		return v
	}
	e.record(StageAccept, nil, &v, subject{listener: listener, ip: ParseRemoteIP(remoteAddr), addr: remoteAddr})
	if !e.enforce {
		return Verdict{}
	}
	return v
}

// checkWebSocket is CheckWebSocket's decision, without recording it.
func (p *Policy) checkWebSocket(listener, host string, origins []string) Verdict {
	c := p.listener(listener)
	section := "connections"
	if _, ok := p.Listeners[listener]; ok {
		section = "listeners." + listener
	}
	refuse := func(reason, format string, args ...any) Verdict {
		return Verdict{Action: Disconnect, Rule: "connections.websocket", Reason: reason, Detail: fmt.Sprintf(format, args...)}
	}
	hostName, _, ok := splitHostPort(host)
	reqHost, err := parseHost(hostName)
	switch {
	case isAny(c.AllowedHosts):
		// Any Host at all; one that does not parse matches no Origin below.
	case !ok || err != nil:
		return refuse("host_not_allowed", "Host %s is not a host name or IP address", quoteShort(host))
	case !c.allowsHost(reqHost):
		return refuse("host_not_allowed", "Host %s is not in %s.allowed_hosts: add it there if clients reach the broker by that name",
			quoteShort(reqHost.String()), section)
	}
	switch len(origins) {
	case 0:
		return Verdict{} // not a browser: nothing a web page could abuse
	case 1:
	default:
		return refuse("origin_not_allowed", "%d Origin headers: a browser sends one", len(origins))
	}
	o, err := parseOrigin(origins[0])
	if err != nil {
		return refuse("origin_not_allowed", "Origin %s is not an origin: %v", quoteShort(origins[0]), err)
	}
	if !c.allowsOrigin(o, reqHost) {
		return refuse("origin_not_allowed", "Origin %s is not allowed by %s.allowed_origins: add it there if pages from it may connect",
			quoteShort(o.String()), section)
	}
	return Verdict{}
}

// loopbackHosts is what an empty allowed_hosts means: this machine only.
func loopbackHosts() []string { return []string{"localhost", "127.0.0.1", "::1"} }

// allowsHost reports whether h is one of c.AllowedHosts (entries that do
// not parse never match; Validate reports them).
func (c *ConnectionPolicy) allowsHost(h hostKey) bool {
	hosts := c.AllowedHosts
	if len(hosts) == 0 {
		hosts = loopbackHosts()
	}
	for _, e := range hosts {
		if e == "*" {
			return true
		}
		if k, err := parseHostEntry(e); err == nil && k == h {
			return true
		}
	}
	return false
}

// allowsOrigin reports whether a page from origin o may connect to a
// request sent to reqHost.
func (c *ConnectionPolicy) allowsOrigin(o originKey, reqHost hostKey) bool {
	if len(c.AllowedOrigins) == 0 {
		if o.scheme != "http" && o.scheme != "https" {
			return false
		}
		if isAny(c.AllowedHosts) {
			// Every host is allowed, so "a page from an allowed host" would
			// be every page on the web. Keep the browser's same-origin rule
			// instead: pages from the host the request was sent to.
			return o.host == reqHost
		}
		return c.allowsHost(o.host)
	}
	for _, e := range c.AllowedOrigins {
		if e == "*" {
			return true
		}
		if k, err := parseOrigin(e); err == nil && k == o {
			return true
		}
	}
	return false
}

func isAny(list []string) bool {
	for _, e := range list {
		if e == "*" {
			return true
		}
	}
	return false
}

// hostKey is a host in the form hosts are compared in: an IP address
// (IPv4-mapped IPv6 unmapped), or a lower-case ASCII name (IDNA A-labels)
// without a trailing dot.
type hostKey struct {
	ip   netip.Addr
	name string
}

func (h hostKey) String() string {
	if h.ip.IsValid() {
		return h.ip.String()
	}
	return h.name
}

// maxHostLen bounds the host names parsed (DNS allows 253 characters).
const maxHostLen = 253

// parseHost parses a host name or IP address (no port; an IPv6 address may
// be in brackets).
func parseHost(s string) (hostKey, error) {
	if len(s) > 2 && s[0] == '[' && s[len(s)-1] == ']' {
		a, err := netip.ParseAddr(s[1 : len(s)-1])
		if err != nil || !a.Is6() {
			return hostKey{}, errors.New("is not an IPv6 address in brackets")
		}
		return hostKey{ip: a.Unmap()}, nil
	}
	// Only what can be an address goes to ParseAddr: its error allocates.
	if strings.IndexByte(s, ':') >= 0 || strings.Trim(s, "0123456789.") == "" {
		if a, err := netip.ParseAddr(s); err == nil {
			return hostKey{ip: a.Unmap()}, nil
		}
	}
	name := strings.TrimSuffix(s, ".") // "localhost." is localhost
	if name == "" {
		return hostKey{}, errors.New("is empty")
	}
	if len(name) > 4*maxHostLen {
		return hostKey{}, errors.New("is too long")
	}
	for i := 0; i < len(name); i++ {
		if name[i] >= 0x80 {
			// An internationalised name: compare its A-label form, which is
			// what browsers send.
			a, err := idna.Lookup.ToASCII(name)
			if err != nil {
				return hostKey{}, fmt.Errorf("is not a valid internationalised name (%v)", err)
			}
			name = a
			break
		}
	}
	name = strings.ToLower(name)
	if len(name) > maxHostLen {
		return hostKey{}, fmt.Errorf("is longer than %d characters", maxHostLen)
	}
	last := ""
	for label := range strings.SplitSeq(name, ".") {
		if label == "" || len(label) > 63 {
			return hostKey{}, errors.New("has an empty label or one longer than 63 characters")
		}
		for i := 0; i < len(label); i++ {
			if c := label[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return hostKey{}, fmt.Errorf("has %q, which a host name cannot contain", rune(c))
			}
		}
		last = label
	}
	if strings.Trim(last, "0123456789") == "" || strings.HasPrefix(last, "0x") && strings.Trim(last[2:], "0123456789abcdef") == "" {
		// Browsers read "127.1" or "0x7f.1" as IPv4 addresses, never as names.
		return hostKey{}, errors.New("is not a dotted-decimal IP address, and a host name cannot end in a number")
	}
	return hostKey{name: name}, nil
}

// parseHostEntry parses an allowed_hosts entry: a host without a port.
func parseHostEntry(s string) (hostKey, error) {
	if strings.Contains(s, "://") {
		return hostKey{}, errors.New("is a URL: write only its host (origins go in allowed_origins)")
	}
	if strings.Contains(s, "*") {
		return hostKey{}, errors.New(`has a wildcard: list each name, or use "*" alone for any host (which re-opens DNS rebinding)`)
	}
	if _, port, ok := splitHostPort(s); ok && port != "" {
		return hostKey{}, errors.New("has a port: write the host alone, it matches on every port")
	}
	h, err := parseHost(s)
	if err != nil {
		return h, fmt.Errorf("%v: write a host name (broker.example) or an IP address (192.0.2.10)", err)
	}
	return h, nil
}

// splitHostPort splits a Host header (host, host:port, [v6]:port, or an
// IPv6 address without brackets) into host and port. ok is false if the
// port is not a port number.
func splitHostPort(s string) (host, port string, ok bool) {
	if strings.HasPrefix(s, "[") {
		i := strings.IndexByte(s, ']')
		if i < 0 {
			return s, "", false
		}
		host, rest := s[:i+1], s[i+1:]
		if rest == "" {
			return host, "", true
		}
		if rest[0] != ':' {
			return s, "", false
		}
		return host, rest[1:], validPort(rest[1:])
	}
	i := strings.LastIndexByte(s, ':')
	if i < 0 || strings.IndexByte(s, ':') != i {
		return s, "", true // no port, or an IPv6 address without one
	}
	return s[:i], s[i+1:], validPort(s[i+1:])
}

// validPort reports whether p is a port number; "" (as in "host:") is too.
func validPort(p string) bool {
	if p == "" {
		return true
	}
	if len(p) > 5 {
		return false
	}
	n, err := strconv.Atoi(p)
	return err == nil && n >= 0 && n <= 65535 && p[0] != '+' && p[0] != '-'
}

// originKey is a web origin in the form origins are compared in: the port
// is explicit (the scheme's default when the origin names none).
type originKey struct {
	scheme string
	host   hostKey
	port   int // 0: none and no default for the scheme
}

func (o originKey) String() string {
	h := o.host.String()
	if o.host.ip.Is6() {
		h = "[" + h + "]"
	}
	if o.port != 0 && o.port != defaultPort(o.scheme) {
		h += ":" + strconv.Itoa(o.port)
	}
	return o.scheme + "://" + h
}

// defaultPort is the port of a scheme's URLs that name none (0: unknown).
func defaultPort(scheme string) int {
	switch scheme {
	case "http", "ws":
		return 80
	case "https", "wss":
		return 443
	}
	return 0
}

// parseOrigin parses an origin as browsers serialise it, scheme://host or
// scheme://host:port; a trailing "/" is tolerated.
func parseOrigin(s string) (originKey, error) {
	if s == "null" {
		return originKey{}, errors.New(`"null" is the origin of sandboxed frames and local files, which any page can create`)
	}
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok || scheme == "" {
		return originKey{}, errors.New("not scheme://host[:port]")
	}
	for i := 0; i < len(scheme); i++ {
		c := scheme[i]
		letter := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
		if !(letter || i > 0 && (c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.')) {
			return originKey{}, errors.New("the scheme is not a URL scheme")
		}
	}
	rest = strings.TrimSuffix(rest, "/")
	if strings.ContainsAny(rest, "/?#@") {
		return originKey{}, errors.New("an origin has no user, path, query or fragment")
	}
	h, p, ok := splitHostPort(rest)
	if !ok {
		return originKey{}, errors.New("the port is not a port number")
	}
	hk, err := parseHost(h)
	if err != nil {
		return originKey{}, fmt.Errorf("its host %v", err)
	}
	o := originKey{scheme: strings.ToLower(scheme), host: hk}
	if p != "" {
		o.port, _ = strconv.Atoi(p)
	}
	if o.port == 0 {
		o.port = defaultPort(o.scheme)
	}
	return o, nil
}

// parseOriginEntry parses an allowed_origins entry.
func parseOriginEntry(s string) (originKey, error) {
	if strings.Contains(s, "*") {
		return originKey{}, errors.New(`has a wildcard: list each origin, or use "*" alone for any origin`)
	}
	return parseOrigin(s)
}

// quoteShort quotes a client-supplied value for an event: at most 64
// bytes, escaped so it cannot forge log lines.
func quoteShort(s string) string {
	const max = 64
	if len(s) > max {
		return strconv.QuoteToASCII(s[:max]) + "..."
	}
	return strconv.QuoteToASCII(s)
}

// WebSocketConn presents an upgraded WebSocket as the byte stream MQTT is
// read from, for any front end (the mochi listener, the proxy): it reads
// binary messages with their boundaries ignored (a packet may span
// several) and writes each Write as one binary message (front ends write
// whole packets). Addresses and deadlines are those of the socket under it
// (NetConn), and a deadline that expires reads as os.ErrDeadlineExceeded,
// so it is reported as connect_timeout like on a plain socket.
func WebSocketConn(ws *websocket.Conn) net.Conn {
	return &wsConn{Conn: ws.UnderlyingConn(), c: ws}
}

type wsConn struct {
	net.Conn // the socket under the WebSocket framing
	c        *websocket.Conn
	r        io.Reader  // the current message, or nil
	wmu      sync.Mutex // gorilla allows one writer at a time
}

// NetConn returns the connection under the WebSocket framing.
func (ws *wsConn) NetConn() net.Conn { return ws.Conn }

func (ws *wsConn) Read(p []byte) (int, error) {
	for {
		if ws.r == nil {
			op, r, err := ws.c.NextReader()
			if err != nil {
				return 0, deadlineError(err)
			}
			if op != websocket.BinaryMessage {
				return 0, errors.New("websocket: MQTT needs binary messages")
			}
			ws.r = r
		}
		n, err := ws.r.Read(p)
		if errors.Is(err, io.EOF) {
			ws.r = nil // end of this message; MQTT packets may continue in the next
			if n == 0 {
				continue
			}
			err = nil
		}
		return n, deadlineError(err)
	}
}

func (ws *wsConn) Write(p []byte) (int, error) {
	ws.wmu.Lock()
	defer ws.wmu.Unlock()
	if err := ws.c.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (ws *wsConn) Close() error { return ws.c.Close() }

// deadlineError restores os.ErrDeadlineExceeded in err, which gorilla hides
// in its own type.
func deadlineError(err error) error {
	var ne net.Error
	if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) && errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("%w: %v", os.ErrDeadlineExceeded, err)
	}
	return err
}
