package hooks

import (
	"sync"
	"sync/atomic"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/mqttwaf/mqttwaf/mqttwaf"
)

// session is what the hook keeps per admitted connection: the WAF's view of
// the client, built once at CONNECT so the per-packet path allocates
// nothing, and the precise SUBACK codes of a SUBSCRIBE in progress.
type session struct {
	client mqttwaf.Client
	// replaces is the session of the same client ID this one takes over,
	// forgotten once this one is established.
	replaces *mqtt.Client
	// handoverDone ends this connection's hold on its client ID (set from
	// OnSessionEstablish to OnSessionEstablished; see handover).
	handoverDone func()
	// closedByWAF is set when the WAF disconnects the client, so the
	// disconnect is not reported again as a protocol error.
	closedByWAF atomic.Bool
	// queue counts what mochi holds in flight for the client (queue.go).
	queue queue

	mu          sync.Mutex
	subackID    uint16
	subackCodes []byte // MQTT 5 codes by filter index; 0 = leave mochi's
}

// sessions maps mochi clients to sessions. An entry is added when OnConnect
// admits a client and lives as long as mochi keeps the client: a persistent
// session stays while its device is offline (deliveries queued for it are
// checked against its identity), and goes when mochi expires it, when a new
// connection takes it over, or when a clean session disconnects. So the
// table is bounded by mochi's own session table (broker.max_connections
// connected, plus offline sessions within broker.max_session_expiry).
//
// mochi skips its hooks on a few failure paths (a CONNACK that cannot be
// written), so when the table has doubled since the last sweep it drops
// entries of clients mochi no longer holds.
type sessions struct {
	m         sync.Map // *mqtt.Client -> *session
	n         atomic.Int64
	max       int
	nextSweep atomic.Int64
	held      func(*mqtt.Client) bool // does mochi still hold this client?
}

func (t *sessions) add(cl *mqtt.Client, s *session) {
	if _, loaded := t.m.Swap(cl, s); loaded {
		return
	}
	n := t.n.Add(1)
	if next := t.nextSweep.Load(); n > max(next, int64(2*t.max)) && t.nextSweep.CompareAndSwap(next, 2*n) {
		t.m.Range(func(k, _ any) bool {
			if c := k.(*mqtt.Client); c.Closed() && (t.held == nil || !t.held(c)) {
				t.remove(c)
			}
			return true
		})
	}
}

func (t *sessions) get(cl *mqtt.Client) *session {
	if v, ok := t.m.Load(cl); ok {
		return v.(*session)
	}
	return nil
}

func (t *sessions) remove(cl *mqtt.Client) {
	if _, ok := t.m.LoadAndDelete(cl); ok {
		t.n.Add(-1)
	}
}

// clientOf returns the WAF's view of cl: the session's, or one built now for
// a client without a session (an offline persistent session).
func (t *sessions) clientOf(cl *mqtt.Client) *mqttwaf.Client {
	if s := t.get(cl); s != nil {
		return &s.client
	}
	c := newClient(cl)
	return &c
}

// newClient builds the WAF's view of a mochi client.
func newClient(cl *mqtt.Client) mqttwaf.Client {
	c := mqttwaf.Client{
		ID:         cl.ID,
		Username:   string(cl.Properties.Username),
		Listener:   cl.Net.Listener,
		RemoteAddr: cl.Net.Remote,
		RemoteIP:   mqttwaf.ParseRemoteIP(cl.Net.Remote),
		Protocol:   cl.Properties.ProtocolVersion,
	}
	if tc := findTLS(cl.Net.Conn); tc != nil {
		c.TLS = mqttwaf.TLSInfoOf(tc.ConnectionState())
	}
	return c
}

// mochiProps converts user properties back to mochi's type.
func mochiProps(in []mqttwaf.UserProperty) []packets.UserProperty {
	if len(in) == 0 {
		return nil
	}
	out := make([]packets.UserProperty, len(in))
	for i, p := range in {
		out[i] = packets.UserProperty{Key: p.Key, Val: p.Value}
	}
	return out
}

// userProps converts mochi user properties; it allocates only when there
// are some.
func userProps(in []packets.UserProperty) []mqttwaf.UserProperty {
	if len(in) == 0 {
		return nil
	}
	out := make([]mqttwaf.UserProperty, len(in))
	for i, p := range in {
		out[i] = mqttwaf.UserProperty{Key: p.Key, Value: p.Val}
	}
	return out
}
