package mqttwaf

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Policy is the whole declarative configuration of the WAF: which
// protections run with which settings. Every section's zero value is its
// secure default, so an empty document is a complete, hardened policy;
// Defaults shows every value. Read one with ParsePolicy or ReadPolicyFile.
type Policy struct {
	// Mode is enforce (the default) or detection_only, where every decision
	// is recorded as an event but no traffic is blocked or changed.
	Mode Mode `yaml:"mode" json:"mode"`
	// Events configures where security events go.
	Events EventsPolicy `yaml:"events" json:"events"`
	// Broker holds the broker-wide capabilities the WAF sets on the server
	// when it is created (hooks.HardenedOptions). Changing them needs a
	// restart; the other sections reload live.
	Broker BrokerPolicy `yaml:"broker" json:"broker"`
	// Connections are the transport protections of every listener.
	Connections ConnectionPolicy `yaml:"connections" json:"connections"`
	// Listeners overrides Connections for listeners by id ("tcp", "tls",
	// "ws" in examples/hardened-broker). Unset fields inherit.
	Listeners map[string]ConnectionPolicy `yaml:"listeners" json:"listeners"`
	// Limits bounds the size and shape of client IDs, topics and properties.
	Limits LimitsPolicy `yaml:"limits" json:"limits"`
	// Sessions protects persistent sessions against takeover.
	Sessions SessionsPolicy `yaml:"sessions" json:"sessions"`
	// Wills says what happens to Last Will messages that break the publish
	// rules (wills bypass every publish check in the broker).
	Wills WillsPolicy `yaml:"wills" json:"wills"`
	// Responses says how refusals are expressed where the protocol has no
	// way to say no.
	Responses ResponsesPolicy `yaml:"responses" json:"responses"`
}

// Mode is how the engine applies decisions.
type Mode string

const (
	// Enforce blocks and rewrites as the rules decide. It is the default.
	Enforce Mode = "enforce"
	// DetectionOnly records every decision as an event (Enforced=false) and
	// lets the traffic through exactly as it would flow without the WAF:
	// nothing is blocked and nothing is rewritten (no normalisation, no
	// redaction, no keepalive clamp, no will stripping).
	DetectionOnly Mode = "detection_only"
)

// EventsPolicy configures the event sink.
type EventsPolicy struct {
	// Log is where the default JSON-lines sink writes: stderr (default),
	// stdout or off. A Sink passed in Options replaces it.
	Log string `yaml:"log" json:"log"`
	// Level is info (default: blocks and rewrites) or warn (blocks only).
	Level string `yaml:"level" json:"level"`
	// MaxPerSecond caps the events written per second (default 100, burst
	// 10x), so a flood of bad packets cannot flood the log. Counters still
	// count every event.
	MaxPerSecond int `yaml:"max_per_second" json:"max_per_second"`
}

// BrokerPolicy holds broker capabilities (mochi's Capabilities).
type BrokerPolicy struct {
	// MaxPacketSize is the largest packet accepted (default 256KiB). Larger
	// packets are refused from their fixed header, before any allocation.
	MaxPacketSize ByteSize `yaml:"max_packet_size" json:"max_packet_size"`
	// MaxConnections caps connected clients broker-wide (default 10000); the
	// listeners also refuse sockets beyond it before CONNECT.
	MaxConnections int `yaml:"max_connections" json:"max_connections"`
	// TopicAliasMaximum is the number of topic aliases a client may set
	// (default 16; mochi's 65535 lets one client pin 65535 topics).
	TopicAliasMaximum int `yaml:"topic_alias_maximum" json:"topic_alias_maximum"`
	// MaxSessionExpiry caps how long a disconnected session is kept
	// (default 24h; mochi keeps them for 136 years).
	MaxSessionExpiry Duration `yaml:"max_session_expiry" json:"max_session_expiry"`
	// MaxMessageExpiry caps how long retained and queued messages live
	// (default 24h).
	MaxMessageExpiry Duration `yaml:"max_message_expiry" json:"max_message_expiry"`
	// ClientWriteQueue is the per-client outbound queue (default 1024
	// packets; mochi's 8192 costs 64 KiB per socket before CONNECT).
	ClientWriteQueue int `yaml:"client_write_queue" json:"client_write_queue"`
	// ReceiveMaximum is how many QoS>0 publishes a client may have in
	// flight towards the broker (default 128).
	ReceiveMaximum int `yaml:"receive_maximum" json:"receive_maximum"`
	// MaxInflight is how many QoS>0 messages the broker holds per client,
	// connected or not (default 1024; with 256KiB packets that bounds one
	// offline session at 256 MiB).
	MaxInflight int `yaml:"max_inflight" json:"max_inflight"`
}

// ConnectionPolicy is the transport protection of a listener.
type ConnectionPolicy struct {
	// ConnectTimeout is how long a socket may take to complete its CONNECT,
	// TLS handshake and WebSocket upgrade included (default 10s).
	ConnectTimeout Duration `yaml:"connect_timeout" json:"connect_timeout"`
	// MaxConnectionsPerIP caps open sockets from one remote address
	// (default 256: enough for a fleet behind carrier-grade NAT, small
	// enough that one host cannot hold the whole broker).
	MaxConnectionsPerIP int `yaml:"max_connections_per_ip" json:"max_connections_per_ip"`
	// MaxKeepalive is the longest keepalive granted (default 20m). A client
	// asking for 0 (no keepalive at all) or more gets this value, announced
	// to MQTT 5 clients as Server Keep Alive; an idle 3.1.1 client is
	// disconnected after 1.5 times it.
	MaxKeepalive Duration `yaml:"max_keepalive" json:"max_keepalive"`
}

// LimitsPolicy bounds identifiers, topics and properties.
type LimitsPolicy struct {
	ClientID       ClientIDLimits     `yaml:"client_id" json:"client_id"`
	Topic          TopicLimits        `yaml:"topic" json:"topic"`
	UserProperties UserPropertyLimits `yaml:"user_properties" json:"user_properties"`
}

// ClientIDLimits bounds client identifiers. Client IDs containing control
// characters, '/', '+' or '#' are always refused (0x85): they are how IDs
// smuggle themselves into topic templates and log lines.
type ClientIDLimits struct {
	MaxLength int `yaml:"max_length" json:"max_length"` // bytes, default 128
}

// TopicLimits bounds topic names and filters (publish, subscribe, will).
// Topics with control characters are always refused.
type TopicLimits struct {
	MaxLength int `yaml:"max_length" json:"max_length"` // bytes, default 256
	MaxLevels int `yaml:"max_levels" json:"max_levels"` // default 8
}

// UserPropertyLimits bounds MQTT 5 user properties per packet.
type UserPropertyLimits struct {
	MaxCount int      `yaml:"max_count" json:"max_count"` // default 16
	MaxBytes ByteSize `yaml:"max_bytes" json:"max_bytes"` // keys plus values, default 4KiB
}

// SessionsPolicy protects sessions.
type SessionsPolicy struct {
	// Takeover is same_identity (default): a connection may take over an
	// existing session (and its queued messages) only when it has the same
	// identity as the session's owner. allow restores plain MQTT, where any
	// client that knows a client ID takes its session.
	Takeover string `yaml:"takeover" json:"takeover"`
}

// WillsPolicy says what happens to Last Will messages.
type WillsPolicy struct {
	// OnViolation is refuse (default: a CONNECT whose will breaks a publish
	// rule is refused with that rule's reason code) or strip (the client
	// connects without its will).
	OnViolation string `yaml:"on_violation" json:"on_violation"`
	// StripAll removes every will at CONNECT.
	StripAll bool `yaml:"strip_all" json:"strip_all"`
}

// ResponsesPolicy chooses how refusals reach clients that cannot be told.
type ResponsesPolicy struct {
	// MQTT311Publish is what a refused QoS 1 or 2 PUBLISH from an MQTT 3.1.1
	// client gets (3.1.1 has no negative PUBACK): drop (default) acknowledges
	// and discards it, so the device does not resend it forever; disconnect
	// closes the connection, as mochi itself does for ACL denials. Refused
	// QoS 0 publishes are always dropped, and MQTT 5 clients always get the
	// reason code.
	MQTT311Publish string `yaml:"mqtt311_publish" json:"mqtt311_publish"`
}

// Defaults returns the policy with every default filled in: the policy an
// empty document means.
func Defaults() *Policy {
	p := &Policy{}
	p.applyDefaults()
	return p
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// applyDefaults fills every zero field with its default.
func (p *Policy) applyDefaults() {
	setDefault(&p.Mode, Enforce)
	setDefault(&p.Events.Log, "stderr")
	setDefault(&p.Events.Level, "info")
	setDefault(&p.Events.MaxPerSecond, 100)

	b := &p.Broker
	setDefault(&b.MaxPacketSize, 256<<10)
	setDefault(&b.MaxConnections, 10000)
	setDefault(&b.TopicAliasMaximum, 16)
	setDefault(&b.MaxSessionExpiry, Duration(24*time.Hour))
	setDefault(&b.MaxMessageExpiry, Duration(24*time.Hour))
	setDefault(&b.ClientWriteQueue, 1024)
	setDefault(&b.ReceiveMaximum, 128)
	setDefault(&b.MaxInflight, 1024)

	c := &p.Connections
	setDefault(&c.ConnectTimeout, Duration(10*time.Second))
	setDefault(&c.MaxConnectionsPerIP, 256)
	setDefault(&c.MaxKeepalive, Duration(20*time.Minute))
	if len(p.Listeners) == 0 {
		p.Listeners = nil // "listeners: {}" and no listeners section mean the same
	}
	for id, l := range p.Listeners {
		setDefault(&l.ConnectTimeout, c.ConnectTimeout)
		setDefault(&l.MaxConnectionsPerIP, c.MaxConnectionsPerIP)
		setDefault(&l.MaxKeepalive, c.MaxKeepalive)
		p.Listeners[id] = l
	}

	l := &p.Limits
	setDefault(&l.ClientID.MaxLength, 128)
	setDefault(&l.Topic.MaxLength, 256)
	setDefault(&l.Topic.MaxLevels, 8)
	setDefault(&l.UserProperties.MaxCount, 16)
	setDefault(&l.UserProperties.MaxBytes, 4<<10)

	setDefault(&p.Sessions.Takeover, "same_identity")
	setDefault(&p.Wills.OnViolation, "refuse")
	setDefault(&p.Responses.MQTT311Publish, "drop")
}

// clone returns a deep copy of p, so defaults can be applied without
// changing the caller's policy.
func (p *Policy) clone() *Policy {
	q := *p
	if p.Listeners != nil {
		q.Listeners = make(map[string]ConnectionPolicy, len(p.Listeners))
		for k, v := range p.Listeners {
			q.Listeners[k] = v
		}
	}
	return &q
}

// WithDefaults returns a copy of p with every unset field at its default.
func (p *Policy) WithDefaults() *Policy {
	q := p.clone()
	q.applyDefaults()
	return q
}

// Validate checks every value and returns all problems at once, each naming
// the field and the fix. It validates the policy as completed by defaults.
func (p *Policy) Validate() error {
	q := p.clone()
	q.applyDefaults()
	return q.validate()
}

// fieldErrors collects validation errors with their field paths.
type fieldErrors []error

func (fe *fieldErrors) add(field, format string, args ...any) {
	*fe = append(*fe, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
}

func (fe *fieldErrors) oneOf(field, got string, allowed ...string) {
	if !slices.Contains(allowed, got) {
		fe.add(field, "unknown value %q: use one of %s", got, strings.Join(allowed, ", "))
	}
}

func (fe *fieldErrors) intRange(field string, got, lo, hi int64) {
	if got < lo || got > hi {
		fe.add(field, "must be between %d and %d, got %d", lo, hi, got)
	}
}

func (fe *fieldErrors) durRange(field string, got Duration, lo, hi time.Duration) {
	if got.D() < lo || got.D() > hi {
		fe.add(field, "must be between %s and %s, got %s", Duration(lo), Duration(hi), got)
	}
}

func (p *Policy) validate() error {
	var fe fieldErrors
	fe.oneOf("mode", string(p.Mode), string(Enforce), string(DetectionOnly))
	fe.oneOf("events.log", p.Events.Log, "stderr", "stdout", "off")
	fe.oneOf("events.level", p.Events.Level, "info", "warn")
	fe.intRange("events.max_per_second", int64(p.Events.MaxPerSecond), 1, 1_000_000)

	b := p.Broker
	fe.intRange("broker.max_packet_size", int64(b.MaxPacketSize), 64, 256<<20) // MQTT's own ceiling is 256 MiB
	fe.intRange("broker.max_connections", int64(b.MaxConnections), 1, 10_000_000)
	fe.intRange("broker.topic_alias_maximum", int64(b.TopicAliasMaximum), 1, 65535)
	fe.durRange("broker.max_session_expiry", b.MaxSessionExpiry, time.Second, 365*24*time.Hour)
	fe.durRange("broker.max_message_expiry", b.MaxMessageExpiry, time.Second, 365*24*time.Hour)
	fe.intRange("broker.client_write_queue", int64(b.ClientWriteQueue), 16, 65536)
	fe.intRange("broker.receive_maximum", int64(b.ReceiveMaximum), 1, 65535)
	fe.intRange("broker.max_inflight", int64(b.MaxInflight), 1, 65535)

	validateConn := func(prefix string, c ConnectionPolicy) {
		fe.durRange(prefix+".connect_timeout", c.ConnectTimeout, 100*time.Millisecond, 5*time.Minute)
		fe.intRange(prefix+".max_connections_per_ip", int64(c.MaxConnectionsPerIP), 1, int64(b.MaxConnections))
		fe.durRange(prefix+".max_keepalive", c.MaxKeepalive, time.Second, 65535*time.Second)
	}
	validateConn("connections", p.Connections)
	ids := make([]string, 0, len(p.Listeners))
	for id := range p.Listeners {
		ids = append(ids, id)
	}
	slices.Sort(ids) // report errors in a stable order
	for _, id := range ids {
		if id == "" {
			fe.add("listeners", "a listener id must not be empty")
		}
		validateConn("listeners."+id, p.Listeners[id])
	}

	l := p.Limits
	fe.intRange("limits.client_id.max_length", int64(l.ClientID.MaxLength), 1, 65535)
	fe.intRange("limits.topic.max_length", int64(l.Topic.MaxLength), 1, 65535)
	fe.intRange("limits.topic.max_levels", int64(l.Topic.MaxLevels), 1, 1024)
	fe.intRange("limits.user_properties.max_count", int64(l.UserProperties.MaxCount), 1, 65535)
	fe.intRange("limits.user_properties.max_bytes", int64(l.UserProperties.MaxBytes), 1, int64(b.MaxPacketSize))

	fe.oneOf("sessions.takeover", p.Sessions.Takeover, "same_identity", "allow")
	fe.oneOf("wills.on_violation", p.Wills.OnViolation, "refuse", "strip")
	fe.oneOf("responses.mqtt311_publish", p.Responses.MQTT311Publish, "drop", "disconnect")
	return errors.Join(fe...)
}

// listener returns the connection policy for a listener id.
func (p *Policy) listener(id string) ConnectionPolicy {
	if c, ok := p.Listeners[id]; ok {
		return c
	}
	return p.Connections
}
