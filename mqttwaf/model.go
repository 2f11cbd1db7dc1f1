package mqttwaf

import (
	"net/netip"
)

// Protocol versions as carried in CONNECT.
const (
	MQTT31  byte = 3
	MQTT311 byte = 4
	MQTT5   byte = 5
)

// Client is what a rule knows about the other end of an MQTT connection. The
// adapter builds it once per connection; rules must treat it as read-only.
type Client struct {
	ID         string     // client identifier (after the broker assigned one, if it did)
	Username   string     // the identity: the authenticated user name, or the certificate identity
	Listener   string     // id of the listener the connection arrived on
	RemoteAddr string     // "ip:port" as the listener saw it
	RemoteIP   netip.Addr // zero when the address is not IP (unix sockets, tests)
	Protocol   byte       // MQTT31, MQTT311 or MQTT5
	TLS        *TLSInfo   // nil on plain TCP and plain WebSocket
	// Auth says how the identity was established, and Role is the role it
	// had at CONNECT (rules look the role up again at every check, so a
	// reload that changes it applies at once).
	Auth AuthMethod
	Role string

	keys *clientKeys // rate-limit keys, built at CONNECT (see limitKeys)
	// stepJSON carries the normalize protection's finding from one stacked
	// hook to the next (see WAF.PublishLayer).
	stepJSON jsonOf
}

// TLSInfo is the TLS peer identity of a connection, as the adapter read it
// from the leaf certificate. It describes; the identity rules decide (a
// subject with several CNs, or several SANs of the kind that names the
// identity, is refused: see identity.certificate.identity).
type TLSInfo struct {
	Verified bool // a client certificate was presented and verified against the client CA
	// CommonName is the subject's CN when the subject has exactly one, and
	// "" when it has none or several: crypto/x509 keeps the last of several,
	// which a CA that signs what it is asked would let a device choose.
	CommonName string
	// CommonNames are every CN attribute of the subject, in order, those
	// in multi-valued RDNs ("CN=a+CN=b") included. Adapters must fill it;
	// when it is empty, CommonName stands for the subject's only CN.
	CommonNames []string
	DNSNames    []string // SAN DNS names
	Emails      []string // SAN e-mail addresses
	URIs        []string // SAN URIs, as strings
}

// UserProperty is one MQTT 5 user property (a name/value pair of UTF-8
// strings that may repeat).
type UserProperty struct {
	Key   string
	Value string
}

// Properties are the MQTT 5 properties of a PUBLISH (or a Last Will) that
// rules may look at. For MQTT 3.1.1 all fields are zero.
type Properties struct {
	PayloadFormat    byte   // 1 = UTF-8 text, 0 = unspecified bytes
	PayloadFormatSet bool   // the payload format indicator was present
	ContentType      string // MIME type announced by the publisher
	ResponseTopic    string
	CorrelationData  []byte
	MessageExpiry    uint32 // seconds; 0 = none
	TopicAlias       uint16 // alias used on the wire; 0 = none
	User             []UserProperty
}

// Message is an application message: a PUBLISH, or the Last Will a client
// registers in CONNECT.
type Message struct {
	Topic   string
	QoS     byte
	Retain  bool
	Payload []byte
	Props   Properties
}

// Size is what the message makes the broker hold and forward, in bytes:
// topic, payload, and every property whose size the client chooses (content
// type, response topic, correlation data, user properties). Byte rates and
// retained budgets count it, so properties cannot carry what the payload
// may not.
func (m *Message) Size() int {
	n := len(m.Topic) + len(m.Payload) + len(m.Props.ContentType) + len(m.Props.ResponseTopic) + len(m.Props.CorrelationData)
	for _, u := range m.Props.User {
		n += len(u.Key) + len(u.Value)
	}
	return n
}

// Connect is a CONNECT request as rules see it. The fields a rule may change
// are Keepalive and Will; the engine undoes such changes in DetectionOnly.
type Connect struct {
	Client         *Client
	Clean          bool   // clean start (MQTT 5) / clean session (3.1.1)
	Keepalive      uint16 // seconds; 0 = the client asked for no keepalive
	SessionExpiry  uint32 // seconds (MQTT 5); 3.1.1 persistent sessions report 0
	UsernameSet    bool   // the CONNECT carried a user name field
	Password       []byte // never logged, never put into events
	Will           *Message
	UserProperties []UserProperty
	// AuthMethod is the MQTT 5 Authentication Method of the CONNECT (a
	// request for enhanced authentication, such as SCRAM), or "".
	AuthMethod string
	// Session describes the session that already exists under this client
	// ID, or is nil. A connection that would take it over is checked against
	// its owner.
	Session *SessionInfo
	// Authenticate, when set, is the embedding application's own
	// authentication (an existing mochi auth hook wrapped by hooks.Identity):
	// identity.authenticate calls it in place of the credentials file and the
	// anonymous policy, and a client it admits gets identity.external_role.
	// Lockouts, rates and the ACL still apply: its answer is ANDed with the
	// WAF's, never ORed.
	Authenticate func() bool
	// claimed is set by the engine when this CONNECT holds the client-ID
	// claim (see sessions.go) and must release it.
	claimed bool
	// sharedClaim is set when the claim is also held in Redis.
	sharedClaim bool
	// newID is what Redis answered for the new-client-ID budgets when
	// sessions.takeover asked it together with the claim.
	newID sharedAdmit
}

// SessionInfo describes an existing session for a client ID.
type SessionInfo struct {
	Owner     string // identity (Client.Username) of the connection that owns the session
	Connected bool   // the owner is connected right now
}

// Subscription is one topic filter of a SUBSCRIBE.
type Subscription struct {
	Filter            string
	QoS               byte
	NoLocal           bool
	RetainAsPublished bool
	RetainHandling    byte
	Identifier        int
	// Existing is how many subscriptions the session holds before this one.
	Existing int
	// Index is the filter's position in its SUBSCRIBE packet and Count the
	// number of filters the packet carries.
	Index, Count int
}

// Publish is a message on its way into the broker, from Client. Message is
// the engine's working copy: rules that transform the payload write into
// Scratch and call SetPayload, and the caller's message is never modified.
type Publish struct {
	Client  *Client
	Message *Message
	// Will is true when Message is the Last Will registered in CONNECT, which
	// is checked against the publish rules at CONNECT time.
	Will bool

	msg  Message   // the working copy Message points to
	bufs [2][]byte // ping-pong scratch buffers for rewrites
	cur  int       // index of the buffer backing Message.Payload, or -1
	// changed and userChanged say whether a rule of the step under way
	// replaced the payload or the user properties (a step is all the rules,
	// or one protection's: see engine.publishSteps).
	changed, userChanged bool
	json                 jsonState  // what the normalize protection found
	redacted             redactNote // what the redaction did, for its event's detail
}

// Scratch returns an empty buffer that does not alias the current payload,
// for a rule to append its rewritten payload into.
func (p *Publish) Scratch() []byte {
	i := 0
	if p.cur == 0 {
		i = 1
	}
	return p.bufs[i][:0]
}

// SetPayload replaces the payload with b, which must have been built on a
// buffer from Scratch (or be a slice the rule owns and will not touch again).
func (p *Publish) SetPayload(b []byte) {
	i := 0
	if p.cur == 0 {
		i = 1
	}
	p.bufs[i] = b[:0]
	p.cur, p.changed = i, true
	p.Message.Payload = b
}

// Recycle hands back a buffer from Scratch that the rule did not make the
// payload, so its capacity is reused by the next message.
func (p *Publish) Recycle(b []byte) {
	i := 0
	if p.cur == 0 {
		i = 1
	}
	p.bufs[i] = b[:0]
}

// SetUserProperties replaces the message's MQTT 5 user properties.
func (p *Publish) SetUserProperties(u []UserProperty) {
	p.Message.Props.User = u
	p.userChanged = true
}

// Changed reports whether a rule replaced the payload.
func (p *Publish) Changed() bool { return p.changed }

// reset prepares p for a new message, keeping its buffers.
func (p *Publish) reset(c *Client, m *Message, will bool) {
	p.msg = *m
	p.Client, p.Message, p.Will = c, &p.msg, will
	p.cur = -1
	p.changed, p.userChanged = false, false
	p.json = jsonUnchecked
}
