package ratelimit

import (
	"net/netip"
	"strings"
	"unicode/utf8"
)

// Kind is what a ban applies to.
type Kind uint8

// The kinds of ban target.
const (
	KindClientID Kind = iota + 1 // an MQTT client identifier
	KindUsername                 // an MQTT username
	KindIP                       // an IP address or network
)

func (k Kind) String() string {
	switch k {
	case KindClientID:
		return "client"
	case KindUsername:
		return "user"
	case KindIP:
		return "ip"
	}
	return "invalid"
}

// MaxTargetValue is the longest client ID or username a ban may name. Longer
// identities cannot be banned by name (ban their IP or username instead); the
// cap keeps the ban list's memory bounded whatever clients send.
const MaxTargetValue = 256

// Target is what a ban applies to: a client ID, a username, or an IP address
// or network. Prefix is kept masked and with IPv4-mapped IPv6 addresses
// unmapped, so "ip:::ffff:192.0.2.1" and "ip:192.0.2.1" are the same target.
// The zero Target is invalid. Target is a comparable value, safe to copy.
type Target struct {
	Kind   Kind
	Value  string       // KindClientID and KindUsername
	Prefix netip.Prefix // KindIP
}

// ClientIDTarget returns the target for a client ID.
func ClientIDTarget(id string) Target { return Target{Kind: KindClientID, Value: id} }

// UsernameTarget returns the target for a username.
func UsernameTarget(name string) Target { return Target{Kind: KindUsername, Value: name} }

// IPTarget returns the target for one address (a /32 or /128), with any
// IPv6 zone dropped and IPv4-mapped addresses unmapped.
func IPTarget(addr netip.Addr) Target {
	addr = addr.Unmap().WithZone("")
	return Target{Kind: KindIP, Prefix: netip.PrefixFrom(addr, addr.BitLen())}
}

// PrefixTarget returns the target for a network, masked and unmapped.
func PrefixTarget(p netip.Prefix) Target { return Target{Kind: KindIP, Prefix: canonicalPrefix(p)} }

func canonicalPrefix(p netip.Prefix) netip.Prefix {
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p.Masked()
}

// ParseTarget reads "client:ID", "user:NAME", "ip:ADDRESS" or "ip:NETWORK"
// (CIDR, IPv4 or IPv6). The value after the first colon is taken literally,
// so client IDs may contain colons. Networks are masked ("ip:10.1.2.3/8"
// means 10.0.0.0/8), zones are dropped and IPv4-mapped IPv6 forms unmapped.
func ParseTarget(s string) (Target, error) {
	if len(s) > len("client:")+MaxTargetValue {
		return Target{}, parseErr("ban target", s, "longer than 263 bytes")
	}
	kind, value, ok := strings.Cut(s, ":")
	if !ok {
		return Target{}, parseErr("ban target", s, `want KIND:VALUE with KIND client, user or ip, e.g. "ip:192.0.2.0/24"`)
	}
	var t Target
	switch kind {
	case "client":
		t = ClientIDTarget(value)
	case "user":
		t = UsernameTarget(value)
	case "ip":
		if strings.Contains(value, "/") {
			p, err := netip.ParsePrefix(value)
			if err != nil {
				return Target{}, parseErr("ban target", s, "bad network: want CIDR like 192.0.2.0/24 or 2001:db8::/32")
			}
			t = PrefixTarget(p)
		} else {
			a, err := netip.ParseAddr(value)
			if err != nil {
				return Target{}, parseErr("ban target", s, "bad address: want an IPv4 or IPv6 address")
			}
			t = IPTarget(a)
		}
	default:
		return Target{}, parseErr("ban target", s, "unknown kind: want client, user or ip")
	}
	if err := t.check(); err != "" {
		return Target{}, parseErr("ban target", s, err)
	}
	return t, nil
}

// Validate reports whether t is a well-formed, canonical target.
func (t Target) Validate() error {
	if err := t.check(); err != "" {
		return &OptionError{Field: "Target", Problem: err}
	}
	return nil
}

func (t Target) check() string {
	switch t.Kind {
	case KindClientID, KindUsername:
		switch {
		case t.Value == "":
			return "empty " + t.Kind.String()
		case len(t.Value) > MaxTargetValue:
			return "value longer than 256 bytes: ban the IP or username instead"
		case !utf8.ValidString(t.Value) || strings.IndexByte(t.Value, 0) >= 0:
			return "value must be UTF-8 without NUL, as in MQTT"
		case t.Prefix.IsValid():
			return "client and user targets carry no Prefix"
		}
	case KindIP:
		switch {
		case !t.Prefix.IsValid():
			return "invalid IP prefix"
		case t.Value != "":
			return "ip targets carry no Value"
		case t.Prefix != canonicalPrefix(t.Prefix):
			return "prefix not canonical: use IPTarget or PrefixTarget"
		}
	default:
		return "unknown kind: want client, user or ip"
	}
	return ""
}

// String returns the form ParseTarget reads back to t: "client:ID",
// "user:NAME", "ip:192.0.2.1", "ip:192.0.2.0/24". The zero Target prints "".
func (t Target) String() string {
	switch t.Kind {
	case KindClientID, KindUsername:
		return t.Kind.String() + ":" + t.Value
	case KindIP:
		if t.Prefix.Bits() == t.Prefix.Addr().BitLen() {
			return "ip:" + t.Prefix.Addr().String()
		}
		return "ip:" + t.Prefix.String()
	}
	return ""
}

// MarshalText implements encoding.TextMarshaler.
func (t Target) MarshalText() ([]byte, error) { return []byte(t.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (t *Target) UnmarshalText(b []byte) error {
	v, err := ParseTarget(string(b))
	if err != nil {
		return err
	}
	*t = v
	return nil
}
