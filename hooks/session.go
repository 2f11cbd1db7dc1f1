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

	mu          sync.Mutex
	subackID    uint16
	subackCodes []byte // MQTT 5 codes by filter index; 0 = leave mochi's
}

// sessions maps mochi clients to sessions. Entries are added when OnConnect
// admits a client and removed in OnDisconnect. mochi skips OnDisconnect on a
// few failure paths (a CONNACK that cannot be written), so when the table
// holds more than twice the connection cap it drops entries of closed
// clients: it is bounded by broker.max_connections.
type sessions struct {
	m   sync.Map // *mqtt.Client -> *session
	n   atomic.Int64
	max int
}

func (t *sessions) add(cl *mqtt.Client, s *session) {
	if _, loaded := t.m.Swap(cl, s); loaded {
		return
	}
	if t.n.Add(1) > int64(2*t.max) {
		t.m.Range(func(k, _ any) bool {
			if k.(*mqtt.Client).Closed() {
				t.remove(k.(*mqtt.Client))
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
		st := tc.ConnectionState()
		info := &mqttwaf.TLSInfo{Verified: len(st.VerifiedChains) > 0}
		if len(st.PeerCertificates) > 0 {
			leaf := st.PeerCertificates[0]
			info.CommonName = leaf.Subject.CommonName
			info.DNSNames = leaf.DNSNames
			info.Emails = leaf.EmailAddresses
			for _, u := range leaf.URIs {
				info.URIs = append(info.URIs, u.String())
			}
		}
		c.TLS = info
	}
	return c
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
