package mqttwaf

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
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
	// Addresses says what counts as one address for per-address limits
	// (IPv6 networks are grouped, by default into /64s).
	Addresses AddressesPolicy `yaml:"addresses" json:"addresses"`
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
	// Identity says who a client is: per-device credentials, certificate
	// identities, anonymous access, client-ID binding.
	Identity IdentityPolicy `yaml:"identity" json:"identity"`
	// Roles grant topic permissions to identities, by role name.
	Roles map[string]RolePolicy `yaml:"roles" json:"roles"`
	// Provenance stamps the authenticated identity into accepted publishes.
	Provenance ProvenancePolicy `yaml:"provenance" json:"provenance"`
	// Payloads say what messages on given topics must look like; the first
	// entry whose topics cover a message's topic applies.
	Payloads []PayloadPolicy `yaml:"payloads" json:"payloads"`
	// Rates limit message rates, connects, new identities and topics, and
	// the retained store.
	Rates RatesPolicy `yaml:"rates" json:"rates"`
	// Redaction holds what all payload redaction rule sets share.
	Redaction RedactionPolicy `yaml:"redaction" json:"redaction"`
	// State says where bans, lockouts, budgets and rates live: in memory
	// (default) or in Redis, shared by several nodes. Needs a restart.
	State StatePolicy `yaml:"state" json:"state"`

	// baseDir is the directory relative file names in the policy are
	// resolved against (the policy file's own directory).
	baseDir string
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
	// Format is json (default: the snake_case keys of Event, through
	// log/slog) or ecs (Elastic Common Schema field names: @timestamp,
	// event.action, source.ip..., see ECSSink), for SIEMs that read ECS
	// without a parser of their own. A Sink passed in Options replaces it.
	Format string `yaml:"format" json:"format"`
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
	// connected or not, sent and not yet acknowledged or queued for a
	// client that is offline or whose receive maximum is reached (default
	// 8192, mochi's own: a subscriber that keeps up with a burst never
	// reaches it). A delivery that would exceed it or MaxInflightBytes is
	// dropped and reported (broker.delivery_dropped), never lost silently.
	MaxInflight int `yaml:"max_inflight" json:"max_inflight"`
	// MaxInflightBytes bounds the same store in bytes (topic and payload of
	// the messages held; default 2MiB), so memory per client is bounded
	// whatever the message sizes: a limit in messages alone lets one client
	// hold 8192 x max_packet_size.
	MaxInflightBytes ByteSize `yaml:"max_inflight_bytes" json:"max_inflight_bytes"`
	// MaxUnsentBytes bounds the QoS 0 messages the broker holds for a
	// client whose socket does not take them (default 1MiB). Writes to a
	// client never wait for its socket (a subscriber that stops reading
	// would otherwise stall every publisher whose messages it receives);
	// what the kernel does not take waits in a per-connection queue. QoS 1
	// and 2 messages in it are held in the in-flight store too, bounded by
	// MaxInflightBytes; QoS 0 deliveries are dropped and reported
	// (broker.delivery_dropped, subscriber_unsent_bytes) while this much
	// waits. A client with more than MaxUnsentBytes + MaxInflightBytes + two
	// packets waiting is disconnected (broker.max_unsent_bytes).
	MaxUnsentBytes ByteSize `yaml:"max_unsent_bytes" json:"max_unsent_bytes"`
	// WriteTimeout disconnects a client whose socket takes nothing of what
	// waits for it for this long (default 30s; broker.write_timeout): it
	// has stopped reading.
	WriteTimeout Duration `yaml:"write_timeout" json:"write_timeout"`
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
	// RequireClientCertificate refuses clients without a verified client
	// certificate on this listener (0x87), even when the TLS configuration
	// only asks for one. Set under connections it holds for every listener
	// (a listener section cannot turn it off); to require certificates on
	// some listeners only, set it in their listeners sections.
	RequireClientCertificate bool `yaml:"require_client_certificate" json:"require_client_certificate"`
	// TLSHandshakesPerIP is how many TLS handshakes one address (network,
	// see addresses) may start per period on a TLS listener (default 20/s,
	// as many as rates.connect.per_ip lets it CONNECT). The check runs
	// when the ClientHello has been read, before the server's key exchange
	// and signature (the expensive part, which needs no client certificate
	// to be forced): a handshake over the budget is aborted there with a
	// TLS internal_error alert and a connections.tls event
	// (tls_handshake_rate). Listeners without their own listeners section
	// share one budget per address.
	TLSHandshakesPerIP Rate `yaml:"tls_handshakes_per_ip" json:"tls_handshakes_per_ip"`
	// TLSHandshakeBurst is how many handshakes an address may start at
	// once (default 0: the rate's count, 20 for 20/s).
	TLSHandshakeBurst int `yaml:"tls_handshake_burst" json:"tls_handshake_burst"`
	// MaxKeepalive is the longest keepalive granted (default 20m). A client
	// asking for 0 (no keepalive at all) or more gets this value, announced
	// to MQTT 5 clients as Server Keep Alive; an idle 3.1.1 client is
	// disconnected after 1.5 times it.
	MaxKeepalive Duration `yaml:"max_keepalive" json:"max_keepalive"`
	// AllowedHosts (WebSocket listeners) lists the host names and IP
	// addresses clients may reach the listener by. The Host of every HTTP
	// request (the host of its ws:// or wss:// URL) must be one of them, on
	// any port; case, a trailing dot and internationalised names (compared
	// in their xn-- form) do not matter. Other requests get HTTP 403 and an
	// event (connections.websocket, host_not_allowed). Empty (default) means
	// this machine only: localhost, 127.0.0.1 and ::1. This is what stops DNS
	// rebinding: a web page on evil.example whose name the attacker points
	// at the broker still sends Host: evil.example. List every name and
	// address your devices and web pages put in their URLs. "*" allows any
	// host and so re-opens DNS rebinding.
	AllowedHosts []string `yaml:"allowed_hosts" json:"allowed_hosts"`
	// AllowedOrigins (WebSocket listeners) lists the web origins whose pages
	// may connect, written as browsers send them in the Origin header:
	// scheme://host, or scheme://host:port for a port other than the
	// scheme's default. Requests without an Origin header come from devices
	// and servers, not browsers, and are not checked; a request whose Origin
	// is not allowed gets HTTP 403 and an event (connections.websocket,
	// origin_not_allowed). Empty (default) allows http and https pages from
	// the hosts in AllowedHosts, on any port (with AllowedHosts "*": from
	// the host the request was sent to, the browser's same-origin rule).
	// "*" allows every origin: any page a user visits could then use the
	// user's browser, its place in the network and its client certificate
	// to reach the broker (cross-site WebSocket hijacking).
	AllowedOrigins []string `yaml:"allowed_origins" json:"allowed_origins"`
}

// LimitsPolicy bounds identifiers, topics and properties.
type LimitsPolicy struct {
	ClientID       ClientIDLimits     `yaml:"client_id" json:"client_id"`
	Topic          TopicLimits        `yaml:"topic" json:"topic"`
	UserProperties UserPropertyLimits `yaml:"user_properties" json:"user_properties"`
	// ContentType and CorrelationData bound the MQTT 5 properties of the
	// same names on PUBLISH; the response topic is held to Topic. Every
	// byte a client makes the broker hold counts in byte rates and retained
	// budgets as well (see Message.Size).
	ContentType     ContentTypeLimits     `yaml:"content_type" json:"content_type"`
	CorrelationData CorrelationDataLimits `yaml:"correlation_data" json:"correlation_data"`
}

// ContentTypeLimits bounds the MQTT 5 content type of a PUBLISH. Control
// characters are always refused.
type ContentTypeLimits struct {
	MaxLength int `yaml:"max_length" json:"max_length"` // bytes, default 128
}

// CorrelationDataLimits bounds the MQTT 5 correlation data of a PUBLISH:
// an opaque token a requester gets back with the response.
type CorrelationDataLimits struct {
	MaxBytes ByteSize `yaml:"max_bytes" json:"max_bytes"` // default 1KiB
}

// ClientIDLimits bounds client identifiers. Client IDs containing control
// characters, '/', '+' or '#' are always refused (0x85): they are how IDs
// smuggle themselves into topic templates and log lines.
type ClientIDLimits struct {
	MaxLength int `yaml:"max_length" json:"max_length"` // bytes, default 128
}

// TopicLimits bounds topic names and filters (publish, subscribe, will)
// and MQTT 5 response topics. Topics with control characters are always
// refused.
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
	// OwnerUnknown is what a CONNECT gets, with state.backend redis and
	// Redis unreachable, when no session of its client ID is known on this
	// node (so its owner on other nodes cannot be checked): local (default)
	// decides on this node's sessions alone, as with the memory backend;
	// refuse answers 0x88 server unavailable until Redis is back.
	OwnerUnknown string `yaml:"owner_unknown" json:"owner_unknown"`
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

// IdentityPolicy says who clients are.
type IdentityPolicy struct {
	// CredentialsFile holds one identity per line, "name:role:hash", with a
	// bcrypt or argon2id hash of a person's password, a device-secret hash
	// ($mqttwaf-secret$v=1$...) of a generated device secret, or "-" for
	// certificate-only identities. Plaintext is refused. Relative paths are
	// relative to the policy file.
	CredentialsFile string `yaml:"credentials_file" json:"credentials_file"`
	// Anonymous says whether clients without credentials may connect.
	Anonymous AnonymousPolicy `yaml:"anonymous" json:"anonymous"`
	// Certificate makes a verified client certificate an identity.
	Certificate CertificatePolicy `yaml:"certificate" json:"certificate"`
	// ClientID binds client IDs to identities.
	ClientID ClientIDBinding `yaml:"client_id" json:"client_id"`
	// Lockout stops password guessing.
	Lockout LockoutPolicy `yaml:"lockout" json:"lockout"`
	// ExternalRole is the role of clients the application's own
	// authentication admits, when the WAF wraps an existing auth hook
	// (hooks.IdentityOptions.Wrap). Empty refuses them.
	ExternalRole string `yaml:"external_role" json:"external_role"`
}

// LockoutPolicy locks out remote IPs and user names after repeated failed
// authentications. It applies from the policy the WAF starts with; a reload
// keeps the running lockouts and their settings.
type LockoutPolicy struct {
	// More than MaxFailures failed authentications for one user name within
	// Window lock that user name out (default 5 in 5m).
	MaxFailures int `yaml:"max_failures" json:"max_failures"`
	// More than MaxFailuresPerAddress failed authentications from one
	// address (network, see addresses) within Window lock that address out
	// (default 10 x MaxFailures: one device with a wrong password must not
	// lock out every device behind the same NAT). With PerUsername on, one
	// user name adds at most MaxFailures to its address's count (its own
	// lockout answers the rest), so only a guesser trying several user
	// names locks an address out.
	MaxFailuresPerAddress int      `yaml:"max_failures_per_address" json:"max_failures_per_address"`
	Window                Duration `yaml:"window" json:"window"`
	// Duration is the first lockout (default 1m); each repeat doubles it, up
	// to MaxDuration (default 1h).
	Duration    Duration `yaml:"duration" json:"duration"`
	MaxDuration Duration `yaml:"max_duration" json:"max_duration"`
	// PerUsername is on (default) or off. On, a user name under attack is
	// locked out for everyone, its real device included, until the lockout
	// ends: that stops a guesser who rotates IPs, at the price of a denial of
	// service on that one identity. Off, only IPs are locked out.
	PerUsername string `yaml:"per_username" json:"per_username"`
	// MaxEntries bounds the failure counters and the lockout list (default
	// 20000 each).
	MaxEntries int `yaml:"max_entries" json:"max_entries"`
}

// AnonymousPolicy governs clients that present no credentials.
type AnonymousPolicy struct {
	// Allow is loopback (default: only from 127.0.0.0/8 and ::1, so a
	// broker tried on a laptop works and one exposed to a network is closed),
	// never, networks (from Networks only) or anywhere.
	Allow string `yaml:"allow" json:"allow"`
	// Networks lists the CIDRs anonymous clients may come from when Allow is
	// networks.
	Networks []string `yaml:"networks" json:"networks"`
	// Role is the role anonymous clients get (default guest).
	Role string `yaml:"role" json:"role"`
}

// CertificatePolicy turns verified client certificates into identities.
type CertificatePolicy struct {
	// Identity is the certificate field that becomes the identity: none
	// (default), cn, san_dns, san_email or san_uri. The certificate must
	// have exactly one value there: a subject with several CNs (separate or
	// in one multi-valued RDN), or several SANs of that kind, is refused
	// (0x87, certificate_identity_ambiguous) rather than resolved by taking
	// the first or the last, which a CA that signs what it is asked would
	// let a device choose. A client that also sends a user name must send
	// this identity.
	Identity string `yaml:"identity" json:"identity"`
	// Role is the role of certificate identities that have no line in the
	// credentials file; empty (default) refuses them.
	Role string `yaml:"role" json:"role"`
}

// ClientIDBinding binds client IDs to identities.
type ClientIDBinding struct {
	// Bind lists templates one of which the client ID must match, with
	// {username} and {cn} and a final '*' for any suffix:
	// ["{username}", "{username}-*"] lets dev1 use dev1 and dev1-gps, not
	// dev10. Empty (default) binds nothing; sessions.takeover still protects
	// sessions. Anonymous clients are not bound.
	Bind []string `yaml:"bind" json:"bind"`
}

// RolePolicy grants topic permissions. Templates are topic filters whose
// levels may use {clientid}, {username} and {cn}. Deny overrides allow.
type RolePolicy struct {
	// Publish lists where the role may publish.
	Publish []string `yaml:"publish" json:"publish"`
	// Subscribe lists what the role may subscribe to and receive. Read
	// permission is checked again at every delivery, so removing a grant
	// stops delivery on existing subscriptions at once.
	Subscribe []string `yaml:"subscribe" json:"subscribe"`
	// Retain lists where the role may publish retained messages.
	Retain []string `yaml:"retain" json:"retain"`
	// Deny lists topics the role may neither publish to nor receive.
	Deny []string `yaml:"deny" json:"deny"`
	// Sys allows subscribing to and receiving $SYS topics.
	Sys bool `yaml:"sys" json:"sys"`
	// MinLiteralLevels is how many leading levels of a wildcard
	// subscription must be literal (default 1: '#' and '+/#' are refused).
	MinLiteralLevels int `yaml:"min_literal_levels" json:"min_literal_levels"`
	// BroadWildcards lifts MinLiteralLevels (a back end that must see
	// everything its grants cover).
	BroadWildcards bool `yaml:"broad_wildcards" json:"broad_wildcards"`
	// View is redacted (default: payload redaction applies) or raw: this
	// role receives payloads as published (normalised, not redacted), for
	// the operator's own back end.
	View string `yaml:"view" json:"view"`
}

// ProvenancePolicy stamps identities into publishes.
type ProvenancePolicy struct {
	// UserProperty, if set, is the name of an MQTT 5 user property the
	// broker adds to every accepted publish, carrying the publisher's
	// identity ("anonymous" for anonymous clients). Any property of that name
	// the client sent is removed first, so subscribers can trust it. MQTT
	// 3.1.1 subscribers receive no user properties at all.
	UserProperty string `yaml:"user_property" json:"user_property"`
}

// guestRole is the role anonymous clients get when the policy defines no
// roles at all: each may publish under its own client ID, and read what
// all guests publish.
var guestRole = RolePolicy{
	Publish:   []string{"guest/{clientid}/#"},
	Subscribe: []string{"guest/#"},
	Retain:    []string{"guest/{clientid}/#"},
	View:      "redacted",
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
	setDefault(&p.Events.Format, "json")
	setDefault(&p.Events.MaxPerSecond, 100)
	p.State.applyDefaults()

	b := &p.Broker
	setDefault(&b.MaxPacketSize, 256<<10)
	setDefault(&b.MaxConnections, 10000)
	setDefault(&b.TopicAliasMaximum, 16)
	setDefault(&b.MaxSessionExpiry, Duration(24*time.Hour))
	setDefault(&b.MaxMessageExpiry, Duration(24*time.Hour))
	setDefault(&b.ClientWriteQueue, 1024)
	setDefault(&b.ReceiveMaximum, 128)
	setDefault(&b.MaxInflight, 8192)
	setDefault(&b.MaxInflightBytes, 2<<20)
	setDefault(&b.MaxUnsentBytes, 1<<20)
	setDefault(&b.WriteTimeout, Duration(30*time.Second))

	c := &p.Connections
	setDefault(&c.ConnectTimeout, Duration(10*time.Second))
	setDefault(&c.MaxConnectionsPerIP, 256)
	setDefault(&c.MaxKeepalive, Duration(20*time.Minute))
	rateDefault(&c.TLSHandshakesPerIP, "20/s")
	if len(c.AllowedHosts) == 0 {
		c.AllowedHosts = loopbackHosts()
	}
	if len(p.Listeners) == 0 {
		p.Listeners = nil // "listeners: {}" and no listeners section mean the same
	}
	for id, l := range p.Listeners {
		setDefault(&l.ConnectTimeout, c.ConnectTimeout)
		setDefault(&l.MaxConnectionsPerIP, c.MaxConnectionsPerIP)
		setDefault(&l.MaxKeepalive, c.MaxKeepalive)
		setDefault(&l.TLSHandshakesPerIP, c.TLSHandshakesPerIP)
		setDefault(&l.TLSHandshakeBurst, c.TLSHandshakeBurst)
		// A bool cannot say "unset": a listener section that does not
		// mention require_client_certificate must not turn off the
		// broker-wide true. So it can only add the requirement.
		l.RequireClientCertificate = l.RequireClientCertificate || c.RequireClientCertificate
		if len(l.AllowedHosts) == 0 {
			l.AllowedHosts = slices.Clone(c.AllowedHosts)
		}
		if len(l.AllowedOrigins) == 0 {
			l.AllowedOrigins = slices.Clone(c.AllowedOrigins)
		}
		p.Listeners[id] = l
	}

	p.Addresses.applyDefaults()

	l := &p.Limits
	setDefault(&l.ClientID.MaxLength, 128)
	setDefault(&l.Topic.MaxLength, 256)
	setDefault(&l.Topic.MaxLevels, 8)
	setDefault(&l.UserProperties.MaxCount, 16)
	setDefault(&l.UserProperties.MaxBytes, min(4<<10, p.Broker.MaxPacketSize)) // a small max_packet_size lowers it
	setDefault(&l.ContentType.MaxLength, 128)
	setDefault(&l.CorrelationData.MaxBytes, 1<<10)

	setDefault(&p.Sessions.Takeover, "same_identity")
	setDefault(&p.Sessions.OwnerUnknown, "local")
	setDefault(&p.Wills.OnViolation, "refuse")
	setDefault(&p.Responses.MQTT311Publish, "drop")

	id := &p.Identity
	setDefault(&id.Anonymous.Allow, "loopback")
	setDefault(&id.Anonymous.Role, "guest")
	setDefault(&id.Certificate.Identity, "none")
	lo := &id.Lockout
	setDefault(&lo.MaxFailures, 5)
	setDefault(&lo.MaxFailuresPerAddress, 10*lo.MaxFailures)
	setDefault(&lo.Window, Duration(5*time.Minute))
	setDefault(&lo.Duration, Duration(time.Minute))
	setDefault(&lo.MaxDuration, Duration(time.Hour))
	setDefault(&lo.PerUsername, "on")
	setDefault(&lo.MaxEntries, 20000)
	if len(p.Roles) == 0 {
		p.Roles = map[string]RolePolicy{"guest": guestRole}
	}
	for name, r := range p.Roles {
		setDefault(&r.MinLiteralLevels, 1)
		setDefault(&r.View, "redacted")
		p.Roles[name] = r
	}
	for i := range p.Payloads {
		p.Payloads[i].applyDefaults()
	}
	p.Rates.applyDefaults()
}

// clone returns a deep copy of p, so defaults can be applied without
// changing the caller's policy.
func (p *Policy) clone() *Policy {
	q := *p
	q.Connections = p.Connections.clone()
	if p.Listeners != nil {
		q.Listeners = make(map[string]ConnectionPolicy, len(p.Listeners))
		for id, l := range p.Listeners {
			q.Listeners[id] = l.clone()
		}
	}
	if p.Roles != nil {
		q.Roles = make(map[string]RolePolicy, len(p.Roles))
		for k, r := range p.Roles {
			r.Publish, r.Subscribe = slices.Clone(r.Publish), slices.Clone(r.Subscribe)
			r.Retain, r.Deny = slices.Clone(r.Retain), slices.Clone(r.Deny)
			q.Roles[k] = r
		}
	}
	q.Identity.Anonymous.Networks = slices.Clone(p.Identity.Anonymous.Networks)
	q.Identity.ClientID.Bind = slices.Clone(p.Identity.ClientID.Bind)
	q.State.Redis.Sentinel.Addresses = slices.Clone(p.State.Redis.Sentinel.Addresses)
	if p.Rates.Publish.Topics != nil {
		q.Rates.Publish.Topics = make([]TopicRate, len(p.Rates.Publish.Topics))
		for i, t := range p.Rates.Publish.Topics {
			t.Topics = slices.Clone(t.Topics)
			q.Rates.Publish.Topics[i] = t
		}
	}
	if p.Payloads != nil {
		q.Payloads = make([]PayloadPolicy, len(p.Payloads))
		for i, pp := range p.Payloads {
			pp.Topics, pp.ContentTypes = slices.Clone(pp.Topics), slices.Clone(pp.ContentTypes)
			q.Payloads[i] = pp
		}
	}
	return &q
}

// clone returns a copy of c that shares no slices with it.
func (c ConnectionPolicy) clone() ConnectionPolicy {
	c.AllowedHosts, c.AllowedOrigins = slices.Clone(c.AllowedHosts), slices.Clone(c.AllowedOrigins)
	return c
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
	fe.oneOf("events.format", p.Events.Format, "json", "ecs")
	fe.intRange("events.max_per_second", int64(p.Events.MaxPerSecond), 1, 1_000_000)
	p.State.validate(&fe)

	b := p.Broker
	fe.intRange("broker.max_packet_size", int64(b.MaxPacketSize), 64, 256<<20) // MQTT's own ceiling is 256 MiB
	fe.intRange("broker.max_connections", int64(b.MaxConnections), 1, 10_000_000)
	fe.intRange("broker.topic_alias_maximum", int64(b.TopicAliasMaximum), 1, 65535)
	fe.durRange("broker.max_session_expiry", b.MaxSessionExpiry, time.Second, 365*24*time.Hour)
	fe.durRange("broker.max_message_expiry", b.MaxMessageExpiry, time.Second, 365*24*time.Hour)
	fe.intRange("broker.client_write_queue", int64(b.ClientWriteQueue), 16, 65536)
	fe.intRange("broker.receive_maximum", int64(b.ReceiveMaximum), 1, 65535)
	fe.intRange("broker.max_inflight", int64(b.MaxInflight), 1, 65535)
	fe.intRange("broker.max_inflight_bytes", int64(b.MaxInflightBytes), 1<<10, 1<<40)
	fe.intRange("broker.max_unsent_bytes", int64(b.MaxUnsentBytes), 16<<10, 1<<30)
	fe.durRange("broker.write_timeout", b.WriteTimeout, time.Second, time.Hour)

	validateConn := func(prefix string, c ConnectionPolicy) {
		fe.durRange(prefix+".connect_timeout", c.ConnectTimeout, 100*time.Millisecond, 5*time.Minute)
		fe.intRange(prefix+".max_connections_per_ip", int64(c.MaxConnectionsPerIP), 1, int64(b.MaxConnections))
		fe.durRange(prefix+".max_keepalive", c.MaxKeepalive, time.Second, 65535*time.Second)
		if r := c.TLSHandshakesPerIP; r.N < 1 || r.N > 1_000_000 || r.Per < time.Second || r.Per > 24*time.Hour {
			fe.add(prefix+".tls_handshakes_per_ip", "%q is out of range: write 1 to 1000000 handshakes per 1s to 1d, e.g. 20/s", r.String())
		}
		fe.intRange(prefix+".tls_handshake_burst", int64(c.TLSHandshakeBurst), 0, 1_000_000)
		for i, h := range c.AllowedHosts {
			if h == "*" {
				continue
			}
			if _, err := parseHostEntry(h); err != nil {
				fe.add(fmt.Sprintf("%s.allowed_hosts[%d]", prefix, i), "%s %v", quoteShort(h), err)
			}
		}
		for i, o := range c.AllowedOrigins {
			if o == "*" {
				continue
			}
			if _, err := parseOriginEntry(o); err != nil {
				fe.add(fmt.Sprintf("%s.allowed_origins[%d]", prefix, i), "%s: %v; write scheme://host or scheme://host:port, as browsers send it (https://app.example.com)", quoteShort(o), err)
			}
		}
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

	p.Addresses.validate(&fe)

	l := p.Limits
	fe.intRange("limits.client_id.max_length", int64(l.ClientID.MaxLength), 1, 65535)
	fe.intRange("limits.topic.max_length", int64(l.Topic.MaxLength), 1, 65535)
	fe.intRange("limits.topic.max_levels", int64(l.Topic.MaxLevels), 1, 1024)
	fe.intRange("limits.user_properties.max_count", int64(l.UserProperties.MaxCount), 1, 65535)
	fe.intRange("limits.user_properties.max_bytes", int64(l.UserProperties.MaxBytes), 1, int64(b.MaxPacketSize))
	fe.intRange("limits.content_type.max_length", int64(l.ContentType.MaxLength), 1, 65535)
	fe.intRange("limits.correlation_data.max_bytes", int64(l.CorrelationData.MaxBytes), 1, 65535)

	fe.oneOf("sessions.takeover", p.Sessions.Takeover, "same_identity", "allow")
	fe.oneOf("sessions.owner_unknown", p.Sessions.OwnerUnknown, "local", "refuse")
	fe.oneOf("wills.on_violation", p.Wills.OnViolation, "refuse", "strip")
	fe.oneOf("responses.mqtt311_publish", p.Responses.MQTT311Publish, "drop", "disconnect")
	p.validateIdentity(&fe)
	for i := range p.Payloads {
		p.Payloads[i].validate(&fe, p.Payloads[i].path(i), p.Broker.MaxPacketSize)
	}
	p.Rates.validate(&fe)
	return errors.Join(fe...)
}

// listener returns the connection policy for a listener id.
func (p *Policy) listener(id string) ConnectionPolicy {
	if c, ok := p.Listeners[id]; ok {
		return c
	}
	return p.Connections
}

func (p *Policy) validateIdentity(fe *fieldErrors) {
	id := p.Identity
	fe.oneOf("identity.anonymous.allow", id.Anonymous.Allow, "loopback", "never", "networks", "anywhere")
	for i, n := range id.Anonymous.Networks {
		if _, err := netip.ParsePrefix(n); err != nil {
			fe.add(fmt.Sprintf("identity.anonymous.networks[%d]", i), "%q is not a CIDR: write it like 10.0.0.0/8 or fd00::/8", n)
		}
	}
	if id.Anonymous.Allow == "networks" && len(id.Anonymous.Networks) == 0 {
		fe.add("identity.anonymous.networks", "allow: networks needs at least one CIDR here")
	}
	if _, ok := p.Roles[id.Anonymous.Role]; !ok && id.Anonymous.Allow != "never" {
		fe.add("identity.anonymous.role", "unknown role %q: define it under roles, or set identity.anonymous.allow: never", id.Anonymous.Role)
	}
	fe.oneOf("identity.certificate.identity", id.Certificate.Identity, "none", "cn", "san_dns", "san_email", "san_uri")
	if r := id.Certificate.Role; r != "" {
		if _, ok := p.Roles[r]; !ok {
			fe.add("identity.certificate.role", "unknown role %q: define it under roles", r)
		}
	}
	if r := id.ExternalRole; r != "" {
		if _, ok := p.Roles[r]; !ok {
			fe.add("identity.external_role", "unknown role %q: define it under roles", r)
		}
	}
	for i, b := range id.ClientID.Bind {
		if _, err := compileBinding(b); err != nil {
			fe.add(fmt.Sprintf("identity.client_id.bind[%d]", i), "%v", err)
		}
	}
	lo := id.Lockout
	fe.intRange("identity.lockout.max_failures", int64(lo.MaxFailures), 1, 1000)
	fe.intRange("identity.lockout.max_failures_per_address", int64(lo.MaxFailuresPerAddress), 1, 100000)
	fe.durRange("identity.lockout.window", lo.Window, time.Second, 24*time.Hour)
	fe.durRange("identity.lockout.duration", lo.Duration, time.Second, 24*time.Hour)
	fe.durRange("identity.lockout.max_duration", lo.MaxDuration, lo.Duration.D(), 30*24*time.Hour)
	fe.oneOf("identity.lockout.per_username", lo.PerUsername, "on", "off")
	fe.intRange("identity.lockout.max_entries", int64(lo.MaxEntries), 100, 10_000_000)
	names := slices.Sorted(maps.Keys(p.Roles))
	for _, name := range names {
		r := p.Roles[name]
		if err := checkIdentityName(name); err != nil {
			fe.add("roles", "role name: %v", err)
		}
		for _, g := range r.grants() {
			for i, t := range g.list {
				if _, err := CompileTemplate(t); err != nil {
					fe.add(fmt.Sprintf("roles.%s.%s[%d]", name, g.field, i), "%v", err)
				}
			}
		}
		fe.intRange("roles."+name+".min_literal_levels", int64(r.MinLiteralLevels), 0, 64)
		fe.oneOf("roles."+name+".view", r.View, "redacted", "raw")
	}
	if u := p.Provenance.UserProperty; u != "" && (len(u) > 128 || hasControl(u)) {
		fe.add("provenance.user_property", "must be at most 128 printable characters")
	}
}

// grants lists the role's template lists with their field names, in a
// fixed order.
func (r RolePolicy) grants() []struct {
	field string
	list  []string
} {
	return []struct {
		field string
		list  []string
	}{{"publish", r.Publish}, {"subscribe", r.Subscribe}, {"retain", r.Retain}, {"deny", r.Deny}}
}
